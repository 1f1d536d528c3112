"""Sim recordings: bag size per episode and the recorded camera rate.

Two graphs (``--graph``): ``bringup`` runs `crl record --sim` (sim_node, arm_node,
recorder_node and the scripted teleoperator in one process) as a child process;
``processes`` starts the nodes of launch/record_demos.launch.py use_sim:=true as separate
processes (sim_node, arm_node, recorder_node) and this process is the teleoperator (small
random actions at 5 Hz, start_episode / end_episode). Both run on a private ROS domain,
quiet or with ``--busy N`` CPU-bound processes (``while True: pass``) beside them. Then
the bags are read: size per episode, the camera topic's message count and rate, and its
gaps (receive times: count of gaps > 0.1 s, longest gap). ``--where`` also times the
pieces of one camera frame in this process (MuJoCo render at the camera size, the rgb8
Image message, JPEG encoding and decoding). Writes bench/results/record_rate.json (or
``--out``); docs/benchmarks.md has the numbers.

    python bench/record_rate.py [--episodes 2] [--steps 40] [--busy 0 1] [--where]
        [--recorder-param image_transport:=compressed] [-- extra `crl record` args]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench_common import machine, write_result

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "record_rate.json"
CAMERA_TOPICS = ("/image_raw/compressed", "/image_raw")


def bag_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def camera_stats(bag: Path) -> dict:
    from crl_ros.bags.reader import BagReader
    with BagReader(bag) as reader:
        topics = reader.topics()
        topic = next(t for t in CAMERA_TOPICS if t in topics)
        times = np.array([t for _, t, _, _ in reader.raw_messages([topic])], dtype=np.int64)
        action_times = np.array([t for _, t, _, _ in reader.raw_messages(["/action"])], dtype=np.int64)
    gaps = np.diff(times) / 1e9
    span = (times[-1] - times[0]) / 1e9
    return {"topic": topic, "type": topics[topic].msgtype, "frames": int(len(times)),
            "rate_hz": float((len(times) - 1) / span) if span > 0 else 0.0,
            "gaps_over_0.1s": int((gaps > 0.1).sum()), "longest_gap_s": float(gaps.max()),
            "median_gap_s": float(np.median(gaps)), "episode_s": float((action_times[-1] - action_times[0]) / 1e9)}


def record(episodes: int, steps: int, busy: int, extra: list[str], workdir: Path) -> dict:
    out = workdir / f"bags_busy{busy}_{time.monotonic_ns()}"
    env = dict(os.environ, ROS_DOMAIN_ID=str(150 + os.getpid() % 50), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
               OMP_NUM_THREADS="1")
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
    try:
        start = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "crl_ros.cli", "record", "--sim", "--episodes", str(episodes),
                                 "--steps", str(steps), "--out", str(out), *extra],
                                env=env, capture_output=True, text=True, timeout=600)
        wall = time.perf_counter() - start
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    if result.returncode != 0:
        raise RuntimeError(f"crl record failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}")
    bags = sorted(out.glob("episode_*"))
    per_bag = [{"bag": b.name, "bytes": bag_size(b), **camera_stats(b)} for b in bags]
    return summary(per_bag, {"graph": "one process (crl record --sim)", "busy_processes": busy,
                             "extra_args": extra, "wall_s": wall})


def record_processes(episodes: int, steps: int, busy: int, recorder_params: list[str], workdir: Path) -> dict:
    """The graph of launch/record_demos.launch.py use_sim:=true: sim_node, arm_node and
    recorder_node each in its own process; this process is the teleoperator (small random
    actions at the control rate) and drives start_episode / end_episode."""
    import rclpy
    from std_msgs.msg import Float32MultiArray, String
    from std_srvs.srv import Trigger
    from crl_ros.nodes import common

    out = workdir / f"bags_proc_busy{busy}_{time.monotonic_ns()}"
    domain = 150 + (os.getpid() + 7) % 50
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", OMP_NUM_THREADS="1")

    def node(module, *params):
        args = [sys.executable, "-m", f"crl_ros.nodes.{module}", "--ros-args"]
        for p in params:
            args += ["-p", p]
        return subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    procs = [node("sim_node"), node("arm_node", "start_enabled:=true"),
             node("recorder_node", f"output_dir:={out}", *recorder_params)]
    hogs = []
    rclpy.init(domain_id=domain)
    client_node = rclpy.create_node("record_rate_teleop")
    try:
        pub = client_node.create_publisher(Float32MultiArray, "action", common.reliable_qos())
        status = []
        client_node.create_subscription(String, "recorder_status", lambda m: status.append(m.data), 10)
        start, end = client_node.create_client(Trigger, "start_episode"), client_node.create_client(Trigger, "end_episode")
        rng = np.random.default_rng(0)
        period = 0.2

        def spin_for(seconds, publish=True):
            until = time.monotonic() + seconds
            next_action = time.monotonic()
            while time.monotonic() < until:
                if publish and time.monotonic() >= next_action:
                    pub.publish(common.action_msg(list(rng.uniform(-0.005, 0.005, 6)) + [1.0]))
                    next_action += period
                rclpy.spin_once(client_node, timeout_sec=0.01)

        def call(client):
            if not client.wait_for_service(timeout_sec=60):
                raise RuntimeError(f"no {client.srv_name} service")
            future = client.call_async(Trigger.Request())
            until = time.monotonic() + 30
            while not future.done() and time.monotonic() < until:
                spin_for(0.05)
            if not future.done() or not future.result().success:
                raise RuntimeError(f"{client.srv_name} failed: {future.result() if future.done() else 'no reply'}")
            return future.result()

        deadline = time.monotonic() + 90
        import json
        while not (status and all(json.loads(status[-1])["topics"].values())):
            if time.monotonic() > deadline:
                raise RuntimeError(f"recorder did not see every topic: {status[-1:]}")
            spin_for(0.2)
        hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
        spin_for(1.0)
        for _ in range(episodes):
            call(start)
            spin_for(steps * period)
            call(end)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
        client_node.destroy_node()
        rclpy.shutdown()
        for p in procs:
            p.send_signal(2)
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
    bags = sorted(out.glob("episode_*"))
    per_bag = [{"bag": b.name, "bytes": bag_size(b), **camera_stats(b)} for b in bags]
    return summary(per_bag, {"graph": "processes (record_demos.launch.py)", "busy_processes": busy,
                             "recorder_params": recorder_params})


def summary(per_bag: list[dict], head: dict) -> dict:
    sizes = [b["bytes"] for b in per_bag]
    return {**head, "episodes": per_bag,
            "mean_mb_per_episode": float(np.mean(sizes) / 1e6),
            "mb_per_s": float(np.mean([b["bytes"] / b["episode_s"] for b in per_bag]) / 1e6),
            "gaps_over_0.1s": int(sum(b["gaps_over_0.1s"] for b in per_bag)),
            "longest_gap_s": float(max(b["longest_gap_s"] for b in per_bag)),
            "rate_hz": [round(b["rate_hz"], 1) for b in per_bag]}


def where_time_goes(width: int = 640, height: int = 480, n: int = 60) -> dict:
    """Milliseconds per camera frame for each piece, in this process (median of n)."""
    import rclpy  # noqa: F401  (message classes)
    from crl_ros.nodes import common
    from crl_ros.robot import camera
    from crl_ros.sim.widowx_sim import WidowXSim
    sim = WidowXSim("reach", max_render_size=max(512, width, height))
    sim.reset(seed=0)
    sim.render(width, height, "overhead")

    def median_ms(fn) -> float:
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
        return float(np.median(times))

    image = sim.render(width, height, "overhead")
    jpeg = camera.encode_compressed(image, "jpeg", 90)
    result = {"size": [height, width],
              "physics_step_10ms_ms": median_ms(lambda: sim.step(0.01)),
              "render_ms": median_ms(lambda: sim.render(width, height, "overhead")),
              "rgb8_image_msg_ms": median_ms(lambda: common.image_msg(image)),
              "jpeg_q90_encode_ms": median_ms(lambda: camera.encode_compressed(image, "jpeg", 90)),
              "jpeg_q90_decode_ms": median_ms(lambda: camera.decode_compressed(jpeg)),
              "raw_bytes": int(image.nbytes), "jpeg_q90_bytes": len(jpeg)}
    sim.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=2)
    parser.add_argument("--steps", type=int, default=40, help="actions per episode (40 at 5 Hz: 8 s)")
    parser.add_argument("--busy", type=int, nargs="+", default=[0, 1], help="CPU-bound processes beside the recording")
    parser.add_argument("--graph", choices=["bringup", "processes", "both"], default="both",
                        help="bringup: `crl record --sim` (one process); processes: the nodes of "
                        "record_demos.launch.py as separate processes")
    parser.add_argument("--recorder-param", action="append", default=[],
                        help="processes graph: extra recorder_node parameter NAME:=VALUE")
    parser.add_argument("--where", action="store_true", help="also time render / message / JPEG per frame")
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--label", default="", help="a note stored in the JSON (e.g. before/after)")
    parser.add_argument("extra", nargs="*", help="extra `crl record` arguments (after --)")
    args = parser.parse_args()
    result = {"machine": machine(), "label": args.label, "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        for busy in args.busy:
            if args.graph in ("bringup", "both"):
                result["runs"].append(record(args.episodes, args.steps, busy, args.extra, Path(tmp)))
            if args.graph in ("processes", "both"):
                result["runs"].append(record_processes(args.episodes, args.steps, busy, args.recorder_param,
                                                       Path(tmp)))
    if args.where:
        result["per_frame_ms"] = where_time_goes()
    write_result(args.out, result)


if __name__ == "__main__":
    main()
