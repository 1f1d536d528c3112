"""bench/ros_latency.py --out: the result goes where --out says, also with --graph (it used
to write bench/results/ros_graph_<graph>.json into the source tree whatever --out said)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench" / "ros_latency.py"

pytest.importorskip("rclpy")


def test_graph_result_goes_to_out_and_not_into_the_source_tree(tmp_path):
    default = ROOT / "bench" / "results" / "ros_graph_composed.json"
    before = default.stat().st_mtime_ns if default.exists() else None
    out = tmp_path / "composed.json"
    env = dict(os.environ, MUJOCO_GL=os.environ.get("MUJOCO_GL", "egl"))
    proc = subprocess.run([sys.executable, str(BENCH), "--graph", "composed", "--seconds", "1", "--busy", "0",
                           "--out", str(out)], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["graph"] == "composed" and [r["busy_processes"] for r in result["runs"]] == [0]
    assert result["runs"][0]["actions"] > 0
    assert (default.stat().st_mtime_ns if default.exists() else None) == before


def test_one_out_file_takes_one_graph(tmp_path):
    proc = subprocess.run([sys.executable, str(BENCH), "--graph", "launched", "composed", "--out",
                           str(tmp_path / "x.json")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "give one --graph with it" in proc.stderr
    assert not (tmp_path / "x.json").exists()
