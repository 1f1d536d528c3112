"""Bag conversion speed: raw 640x480 camera frames (and JPEG ones) per second, one core.

Measures (a) THE preprocessing per frame (decode sensor_msgs/Image bytes + crop + resize,
what camera_node and the converter run), (b) the same for JPEG CompressedImage, and
(c) `convert_bag` end to end on a synthetic 30 Hz bag (reading every message, decoding
the frames the 5 Hz steps use). Target: >= 1000 raw frames/s per core.
Writes bench/results/convert_speed.json with the machine noted.

    python bench/convert_speed.py [--frames 600]
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from bench_common import machine, write_result  # noqa: E402
from crl_ros.bags.convert import ConvertOptions, convert_bag  # noqa: E402
from crl_ros.bags.writer import BagWriter, make_action, make_compressed_image, make_image  # noqa: E402
from crl_ros.robot import actions, camera  # noqa: E402

CROP = (80, 0, 560, 480)
SIZE = (48, 48)


def frames(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    return [np.roll(base, i, axis=1) for i in range(min(n, 30))]


def per_frame_rate(fn, inputs, repeats: int) -> dict:
    fn(inputs[0])
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(repeats):
        fn(inputs[i % len(inputs)])
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"frames": repeats, "frames_per_s": repeats / wall, "frames_per_cpu_s": repeats / cpu,
            "ms_per_frame": 1e3 * wall / repeats}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=600, help="frames per measurement (30 Hz bag length)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "convert_speed.json"))
    args = parser.parse_args()

    imgs = frames(args.frames)
    raw = [(im.tobytes(), 640, 480, 1920, "rgb8") for im in imgs]
    bgr = [(np.ascontiguousarray(im[:, :, ::-1]).tobytes(), 640, 480, 1920, "bgr8") for im in imgs]
    jpeg = [camera.encode_compressed(im, "jpeg", 90) for im in imgs]
    result = {"machine": machine(numpy=np.__version__), "crop": CROP, "size": SIZE}
    result["preprocess_rgb8"] = per_frame_rate(lambda m: camera.preprocess_image(camera.decode_raw(*m), CROP, SIZE),
                                               raw, args.frames)
    result["preprocess_bgr8"] = per_frame_rate(lambda m: camera.preprocess_image(camera.decode_raw(*m), CROP, SIZE),
                                               bgr, args.frames)
    result["preprocess_jpeg"] = per_frame_rate(lambda d: camera.preprocess_image(camera.decode_compressed(d), CROP, SIZE),
                                               jpeg, max(60, args.frames // 4))
    result["preprocess_rgb8_no_crop_non_integer_factor"] = per_frame_rate(
        lambda m: camera.preprocess_image(camera.decode_raw(*m), None, SIZE), raw, max(60, args.frames // 4))

    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("raw", "jpeg"):
            bag = Path(tmp) / kind
            t_ns = 1_700_000_000 * 10**9
            with BagWriter(bag, "mcap") as w:
                for i in range(args.frames):
                    t = t_ns + i * (10**9 // 30)
                    if kind == "raw":
                        w.write("image_raw", t, make_image(imgs[i % len(imgs)], t))
                    else:
                        w.write("image_raw/compressed", t, make_compressed_image(jpeg[i % len(jpeg)], t))
                    if i % 6 == 3:
                        w.write("action", t + 1, make_action([0.0] * 6 + [1.0], actions.ACTION_NAMES))
            opts = ConvertOptions(image_topic="image_raw" if kind == "raw" else "image_raw/compressed",
                                  crop=CROP, size=SIZE, progress=False)
            t0, c0 = time.perf_counter(), time.process_time()
            episode = convert_bag(bag, opts)
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            result[f"convert_bag_{kind}"] = {
                "bag_frames": args.frames, "steps": len(episode.images), "seconds": wall,
                "bag_frames_per_s": args.frames / wall, "bag_frames_per_cpu_s": args.frames / cpu}

    result["target_raw_frames_per_s_per_core"] = 1000
    result["meets_target"] = result["preprocess_rgb8"]["frames_per_cpu_s"] >= 1000
    write_result(args.out, result)


if __name__ == "__main__":
    main()
