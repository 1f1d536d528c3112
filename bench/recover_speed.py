"""What a hard kill costs at conversion time: a long JPEG bag (bench/convert_speed.py's),
converted intact and as a kill leaves it (no metadata.yaml, the .mcap cut inside its last
chunk, no summary), and `crl bag repair` of the killed copy.

The intact bag is read through its index; the killed one is first scanned record by
record (crl_ros/bags/recover.py), then read the same way. Writes
bench/results/recover_speed.json with the machine noted.

    python bench/recover_speed.py [--minutes 2]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

sys.path.insert(0, str(Path(__file__).parent))
from bench_common import machine, write_result  # noqa: E402
from convert_speed import measure, write_bag  # noqa: E402


def killed_copy(bag: Path, out: Path) -> dict:
    """The bag as a hard kill leaves it: the .mcap up to the middle of its last chunk."""
    from crl_ros.bags.mcap_index import McapIndex

    mcap = next(bag.glob("*.mcap"))
    index = McapIndex(mcap)
    last = index.chunks[-1]
    index.close()
    cut = last.start + last.length // 2
    out.mkdir()
    with open(mcap, "rb") as src, open(out / f"{out.name}.mcap", "wb") as dst:
        while src.tell() < cut:
            dst.write(src.read(min(1 << 24, cut - src.tell())))
    return {"cut_at_byte": cut, "intact_bytes": mcap.stat().st_size}


def in_child(call: str, mb: float) -> dict:
    """Run ``call`` (on crl_ros.bags.recover) in a fresh process: wall, CPU, peak memory.
    Memory is VmHWM, which starts anew at exec; ru_maxrss would carry this process's peak
    over (Linux keeps it across execve), which is also in convert_speed's peak_rss_mb."""
    code = f"""
import json, time
from crl_ros.bags import recover
t0, c0 = time.perf_counter(), time.process_time()
value = recover.{call}
wall, cpu = time.perf_counter() - t0, time.process_time() - c0
hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
scan = value[0] if isinstance(value, tuple) else value
print(json.dumps({{"wall_s": round(wall, 3), "cpu_s": round(cpu, 3), "peak_mb": round(hwm / 1024, 1),
                  "messages": scan.message_count, "chunks": len(scan.chunks)}}))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    out = json.loads(r.stdout.strip().splitlines()[-1])
    out["mb_per_wall_s"] = round(mb / out["wall_s"], 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=2.0, help="JPEG bag length")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "recover_speed.json"))
    args = parser.parse_args()

    result = {"machine": machine(), "command": f"python bench/recover_speed.py --minutes {args.minutes}"}
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        tmp = Path(tmp)
        result["bag"] = write_bag(tmp / "intact", args.minutes, "jpeg", with_actions=False)
        result["killed"] = killed_copy(tmp / "intact", tmp / "killed")
        mb = result["killed"]["cut_at_byte"] / 1e6
        killed = next((tmp / "killed").glob("*.mcap"))
        result["scan"] = in_child(f"scan_mcap({str(killed)!r})", mb)
        result["convert_intact"] = measure(tmp / "intact", tmp / "intact.h5", exact_jpeg=False)
        result["convert_killed"] = measure(tmp / "killed", tmp / "killed.h5", exact_jpeg=False)
        result["repair"] = in_child(f"repair_bag({str(tmp / 'killed')!r}, {str(tmp / 'repaired')!r})", mb)
    result["note"] = "convert_*.peak_rss_mb is this script's peak carried over exec (ru_maxrss), not the conversion's"
    write_result(args.out, result)


if __name__ == "__main__":
    main()
