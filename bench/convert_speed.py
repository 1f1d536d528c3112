"""Bag conversion speed on a long bag this script writes: dataset frames per CPU-second.

The bag is what a real WidowX setup records: a 30 Hz VGA camera (JPEG CompressedImage, or
raw rgb8 Image with --kind raw) and 100 Hz joint_states (arm + gripper in one message),
``--minutes`` long; actions are derived from the joints through FK at 5 Hz (the harder
case), or taken from a 5 Hz ``action`` topic with --actions. `convert_bags` runs in a
child process per measurement so the peak memory (ru_maxrss) is that of the conversion;
memory flat in bag length shows as the same peak for 1x and 2x the length.
Targets (issue 10): >= 1000 dataset frames per CPU-second for JPEG, >= 2000 for raw.
Writes bench/results/convert_speed.json with the machine noted.

    python bench/convert_speed.py [--minutes 5] [--raw-minutes 1] [--kind jpeg raw] [--actions]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from bench_common import machine, write_result  # noqa: E402

T0 = 1_700_000_000 * 10**9
CROP = (80, 0, 560, 480)
SIZE = (48, 48)


def camera_frames(n: int = 30) -> list[np.ndarray]:
    """Textured VGA frames (gradients + sensor-like noise): ~100 KB as JPEG q90, like a real camera's."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:480, :640]
    base = np.stack([(xx * 0.4) % 256, (yy * 0.5) % 256, ((xx + yy) * 0.2) % 256], -1)
    return [np.clip(np.roll(base, 7 * i, axis=1) + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
            for i in range(n)]


def write_bag(path: Path, minutes: float, kind: str, with_actions: bool) -> dict:
    from crl_ros.bags.writer import BagWriter, make_action, make_compressed_image, make_image, make_joint_state, typestore
    from crl_ros.robot import actions, camera, kinematics

    store = typestore()
    if kind == "jpeg":
        topic, msgtype = "/camera/color/image_raw/compressed", "sensor_msgs/msg/CompressedImage"
        payloads = [bytearray(store.serialize_cdr(make_compressed_image(camera.encode_compressed(f, "jpeg", 90), 0),
                                                  msgtype)) for f in camera_frames()]
    else:
        topic, msgtype = "/camera/color/image_raw", "sensor_msgs/msg/Image"
        payloads = [bytearray(store.serialize_cdr(make_image(f, 0), msgtype)) for f in camera_frames()]
    n_frames = int(minutes * 60 * 30)
    t0 = time.perf_counter()
    joints = 0
    with BagWriter(path, "mcap") as w:
        w.add_topic(topic, msgtype)
        next_joint = next_action = T0
        for i in range(n_frames):
            t = T0 + i * 10**9 // 30
            while next_joint <= t:
                s = (next_joint - T0) / 1e9
                q = [0.3 * np.sin(0.2 * s), -0.2 + 0.1 * np.sin(0.3 * s), 0.3, 0.05 * np.sin(s), 0.4, -0.1 * s % 1]
                f = 0.026 + 0.01 * np.sin(0.5 * s)
                w.write("/joint_states", next_joint,
                        make_joint_state(kinematics.JOINT_STATE_NAMES, [*q, 0.0, f, -f], next_joint))
                joints += 1
                next_joint += 10**7
            if with_actions:
                while next_action <= t:
                    w.write("/action", next_action + 1, make_action([0.001, 0, 0, 0, 0, 0, 1.0], actions.ACTION_NAMES))
                    next_action += 2 * 10**8
            payload = payloads[i % len(payloads)]
            struct.pack_into("<iI", payload, 4, t // 10**9, t % 10**9)  # header stamp = receive time
            w.write_raw(topic, t, payload)
    size = sum(f.stat().st_size for f in path.iterdir())
    return {"minutes": minutes, "kind": kind, "camera_frames": n_frames, "joint_state_messages": joints,
            "camera_message_bytes": len(payloads[0]), "bag_bytes": size, "write_s": round(time.perf_counter() - t0, 1)}


def measure(bag: Path, out: Path, exact_jpeg: bool) -> dict:
    """`convert_bags` in a fresh process: wall, CPU, peak RSS and the dataset frames."""
    code = f"""
import json, os, resource, sys, time
t0, c0 = time.perf_counter(), time.process_time()
from crl_ros.bags.convert import ConvertOptions, convert_bags
from crl_ros.learning.dataset import load
t1, c1 = time.perf_counter(), time.process_time()
convert_bags([{str(bag)!r}], {str(out)!r}, ConvertOptions(crop={CROP!r}, size={SIZE!r}, progress=False,
             overwrite=True, fast_jpeg={not exact_jpeg!r}), log=lambda m: None)
t2, c2 = time.perf_counter(), time.process_time()
print(json.dumps({{"import_s": t1 - t0, "import_cpu_s": c1 - c0, "convert_s": t2 - t1, "convert_cpu_s": c2 - c1,
                   "dataset_frames": int(load({str(out)!r}).num_frames),
                   "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    res = json.loads(r.stdout.strip().splitlines()[-1])
    res["dataset_frames_per_cpu_s"] = res["dataset_frames"] / res["convert_cpu_s"]
    res["dataset_frames_per_s"] = res["dataset_frames"] / res["convert_s"]
    res["dataset_frames_per_cpu_s_with_import"] = res["dataset_frames"] / (res["convert_cpu_s"] + res["import_cpu_s"])
    return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in res.items()}


def per_frame(fn, inputs, repeats: int = 300) -> dict:
    fn(inputs[0])
    c0 = time.process_time()
    for i in range(repeats):
        fn(inputs[i % len(inputs)])
    cpu = time.process_time() - c0
    return {"frames": repeats, "frames_per_cpu_s": round(repeats / cpu, 1), "ms_per_frame": round(1e3 * cpu / repeats, 3)}


def frame_costs() -> dict:
    """One frame -> one observation, alone: what bounds the whole conversion."""
    from crl_ros.robot import camera

    imgs = camera_frames()
    raw = [(im.tobytes(), 640, 480, 1920, "rgb8") for im in imgs]
    jpeg = [camera.encode_compressed(im, "jpeg", 90) for im in imgs]
    return {
        "raw_rgb8_decode_crop_resize": per_frame(lambda m: camera.preprocess_image(camera.decode_raw(*m), CROP, SIZE), raw),
        "jpeg_full_decode_crop_resize": per_frame(lambda d: camera.preprocess_compressed(d, "jpeg", CROP, SIZE, fast=False), jpeg),
        "jpeg_scaled_decode_crop_resize": per_frame(lambda d: camera.preprocess_compressed(d, "jpeg", CROP, SIZE), jpeg),
        "jpeg_decode_only_at_1_8_scale": per_frame(lambda d: camera.decode_compressed(d, "jpeg", 8), jpeg),
        "jpeg_bytes": len(jpeg[0]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0, help="JPEG bag length (the memory check also writes 2x)")
    parser.add_argument("--raw-minutes", type=float, default=1.0,
                        help="raw bag length (1 min of raw VGA is 1.7 GB; the memory check also writes 2x)")
    parser.add_argument("--kind", nargs="+", default=["jpeg", "raw"], choices=["jpeg", "raw"])
    parser.add_argument("--actions", action="store_true", help="record a 5 Hz action topic (else FK from joints)")
    parser.add_argument("--no-memory-check", action="store_true", help="skip the 2x-length bag")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "convert_speed.json"))
    args = parser.parse_args()

    result = {"machine": machine(numpy=np.__version__), "crop": CROP, "size": SIZE,
              "actions": "topic" if args.actions else "fk from joint_states", "per_frame": frame_costs(), "runs": []}
    print(json.dumps(result["per_frame"]), file=sys.stderr)
    targets = {"jpeg": 1000, "raw": 2000}
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        for kind in args.kind:
            base = args.minutes if kind == "jpeg" else args.raw_minutes
            lengths = [base] if args.no_memory_check else [base, 2 * base]
            for minutes in lengths:
                bag = Path(tmp) / f"{kind}_{minutes}"
                info = write_bag(bag, minutes, kind, args.actions)
                modes = [False, True] if kind == "jpeg" and minutes == base else [False]
                for exact in modes:
                    run = {**info, "exact_jpeg": exact, **measure(bag, Path(tmp) / "d.h5", exact)}
                    run["target_dataset_frames_per_cpu_s"] = targets[kind]
                    run["meets_target"] = run["dataset_frames_per_cpu_s"] >= targets[kind]
                    result["runs"].append(run)
                    print(json.dumps(run), file=sys.stderr)
                # the bag is gone before the next one is written: one bag on disk at a time
                for f in bag.iterdir():
                    f.unlink()
                bag.rmdir()
    write_result(args.out, result)


if __name__ == "__main__":
    main()
