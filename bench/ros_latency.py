"""Observation -> action latency through the ROS graph, and the policy forward pass alone.

Graph: this process publishes 48x48 ``observation`` images at 30 Hz (stamped) and a
latched ``goal_image``; policy_node runs as its own process (act_on_observation, so it
acts on every frame it gets) and publishes ``action`` (no stamp: std_msgs), then the goal
score and ``debug_image``, whose header carries the observation's stamp. The debug
images say which frames were answered (the node skips frames while busy); actions are
reliable and in order, so the i-th action answers the i-th answered frame. Reported:
observation -> action, and observation -> debug image (after the critic's score too). Targets (CPU): p99 <= 20 ms over >= 1000
frames; policy forward p99 <= 10 ms. Writes bench/results/ros_latency.json.

    python bench/ros_latency.py [--model CKPT] [--frames 1000] [--device cpu]
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
from std_msgs.msg import Float32MultiArray

from bench_common import machine, write_result

REPO = Path(__file__).resolve().parents[1]


def torch_info() -> dict:
    import torch
    info = {"torch": torch.__version__, "torch_threads_default": torch.get_num_threads()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def percentiles(ms: list[float]) -> dict:
    a = np.asarray(ms)
    return {"n": int(a.size), "p50_ms": float(np.percentile(a, 50)), "p90_ms": float(np.percentile(a, 90)),
            "p99_ms": float(np.percentile(a, 99)), "max_ms": float(a.max()), "mean_ms": float(a.mean())}


def tiny_model(workdir: Path) -> Path:
    """A freshly initialised stable_crl checkpoint (2 training steps on random data): the
    forward cost does not depend on the weights."""
    from crl_ros.learning.dataset import DatasetMetadata, DatasetWriter
    from crl_ros.robot import actions
    rng = np.random.default_rng(0)
    meta = DatasetMetadata((48, 48, 3), 7, actions.ACTION_NAMES, [float(x) for x in actions.ACTION_LOW],
                           [float(x) for x in actions.ACTION_HIGH])
    data = workdir / "random.h5"
    with DatasetWriter(data, meta) as w:
        for _ in range(2):
            w.add_episode(rng.integers(0, 256, (20, 48, 48, 3), dtype=np.uint8),
                          rng.uniform(-0.01, 0.01, (20, 7)).astype(np.float32))
    run = workdir / "run"
    subprocess.run([sys.executable, "-m", "crl_ros.cli", "train", "--data", str(data), "--algo", "stable_crl",
                    "--out", str(run), "--steps", "2", "--batch-size", "16", "--device", "cpu", "--no-progress"],
                   check=True, capture_output=True)
    return run / "model.pt"


def forward_only(model: Path, device: str, n: int, threads: int) -> dict:
    import torch
    from crl_ros.learning.policy import Policy
    if threads > 0:
        torch.set_num_threads(threads)  # what policy_node does (its torch_threads parameter)
    policy = Policy.load(model, device=device)
    rng = np.random.default_rng(1)
    obs = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
    goal = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
    for _ in range(20):
        policy.act(obs, goal)
    act_ms, both_ms = [], []
    for _ in range(n):
        t0 = time.perf_counter()
        policy.act(obs, goal)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t1 = time.perf_counter()
        policy.score(obs, goal)
        t2 = time.perf_counter()
        act_ms.append(1e3 * (t1 - t0))
        both_ms.append(1e3 * (t2 - t0))
    return {"device": str(policy.device), "torch_threads": torch.get_num_threads(), "act": percentiles(act_ms),
            "act_plus_score": percentiles(both_ms)}


def through_graph(model: Path, frames: int, rate_hz: float, device: str) -> dict:
    domain = 1 + (os.getpid() % 100)
    os.environ["ROS_DOMAIN_ID"] = str(domain)
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    import rclpy
    from sensor_msgs.msg import Image

    from crl_ros.nodes import common

    env = dict(os.environ)
    proc = subprocess.Popen([sys.executable, "-m", "crl_ros.nodes.policy_node", "--ros-args",
                             "-p", f"model_path:={model}", "-p", f"device:={device}", "-p", "act_on_observation:=true",
                             "-p", "max_observation_age_ms:=1000.0", "-p", "debug_scale:=1"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    rclpy.init()
    node = rclpy.create_node("latency_bench")
    pending: set = set()
    latencies: list[float] = []      # observation -> debug image, ms
    answered: list[int] = []         # stamps of answered frames
    action_times: list[int] = []

    def on_answer(msg):
        now = time.time_ns()
        stamp = common.stamp_to_ns(msg.header.stamp)
        if stamp in pending:
            pending.discard(stamp)
            answered.append(stamp)
            latencies.append((now - stamp) / 1e6)

    def on_action(msg):
        action_times.append(time.time_ns())

    try:
        node.create_subscription(Image, "debug_image", on_answer, common.sensor_qos(depth=50))
        node.create_subscription(Float32MultiArray, "action", on_action, common.reliable_qos(depth=100))
        obs_pub = node.create_publisher(Image, "observation", common.sensor_qos(depth=5))
        goal_pub = node.create_publisher(Image, "goal_image", common.latched_qos())
        rng = np.random.default_rng(2)
        images = rng.integers(0, 256, (8, 48, 48, 3), dtype=np.uint8)
        goal_pub.publish(common.image_msg(images[0]))
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and obs_pub.get_subscription_count() == 0:
            rclpy.spin_once(node, timeout_sec=0.1)
        # warm-up until actions flow
        warm = 0
        while time.monotonic() < deadline and len(latencies) < 30:
            t = time.time_ns()
            pending.add(t)
            obs_pub.publish(common.image_msg(images[warm % 8], common.ns_to_stamp(t)))
            warm += 1
            end = time.monotonic() + 1 / rate_hz
            while time.monotonic() < end:
                rclpy.spin_once(node, timeout_sec=max(0.0, end - time.monotonic()))
        time.sleep(0.5)
        rclpy.spin_once(node, timeout_sec=0.1)
        pending.clear()
        latencies.clear()
        answered.clear()
        action_times.clear()
        sent = 0
        period = 1.0 / rate_hz
        next_send = time.monotonic()
        while sent < frames:
            now = time.monotonic()
            if now >= next_send:
                t = time.time_ns()
                pending.add(t)
                obs_pub.publish(common.image_msg(images[sent % 8], common.ns_to_stamp(t)))
                sent += 1
                next_send += period
            rclpy.spin_once(node, timeout_sec=max(0.0, next_send - time.monotonic()))
        end = time.monotonic() + 2.0
        while time.monotonic() < end and pending:
            rclpy.spin_once(node, timeout_sec=0.05)
        result = {"frames_sent": sent, "frames_answered": len(answered), "actions_received": len(action_times),
                  "unanswered": len(pending), "rate_hz": rate_hz,
                  "observation_to_debug_image": percentiles(latencies)}
        if len(action_times) == len(answered):
            stamps = sorted(answered)
            result["observation_to_action"] = percentiles(
                [(t - s) / 1e6 for t, s in zip(action_times, stamps)])
        else:  # a debug image was lost: pairing is unsafe, report the upper bound only
            result["observation_to_action"] = dict(result["observation_to_debug_image"], upper_bound=True)
        return result
    finally:
        node.destroy_node()
        rclpy.shutdown()
        proc.terminate()
        proc.wait(20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="checkpoint (default: a fresh 48x48 stable_crl model)")
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=30.0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (policy_node's torch_threads)")
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "ros_latency.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(args.model) if args.model else tiny_model(Path(tmp))
        result = {"machine": machine(**torch_info()), "model": str(args.model or "fresh stable_crl 48x48 (default network)")}
        result["policy_forward"] = {args.device: forward_only(model, args.device, args.frames, args.threads)}
        import torch
        if torch.cuda.is_available() and not args.device.startswith("cuda"):
            result["policy_forward"]["cuda"] = forward_only(model, "cuda", args.frames, args.threads)
        result["ros_graph"] = through_graph(model, args.frames, args.rate, args.device)
    result["targets"] = {"graph_p99_ms": 20.0, "forward_p99_ms": 10.0}
    result["meets_targets"] = {
        "graph": result["ros_graph"]["observation_to_action"]["p99_ms"] <= 20.0,
        "forward": result["policy_forward"][args.device]["act"]["p99_ms"] <= 10.0}
    write_result(args.out, result)


if __name__ == "__main__":
    main()
