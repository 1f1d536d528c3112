"""Shared by bench/convert_speed.py and bench/ros_latency.py: the machine a result was
measured on, and writing the result JSON."""
from __future__ import annotations

import json
import os
import platform
from pathlib import Path


def machine(**extra) -> dict:
    model = ""
    try:
        model = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": model or platform.processor(), "cores": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), "load_average_at_start": os.getloadavg(), **extra}


def write_result(path: str | os.PathLike, result: dict) -> None:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
