"""Observation -> action latency through the ROS graph, and the policy forward pass alone.

Graph: this process publishes 48x48 ``observation`` images at 30 Hz (stamped) and a
latched ``goal_image``; policy_node runs as its own process (act_on_observation, so it
acts on every frame it gets) and publishes ``action`` (no stamp: std_msgs), then the goal
score and ``debug_image``, whose header carries the observation's stamp. The debug
images say which frames were answered (the node skips frames while busy); actions are
reliable and in order, so the i-th action answers the i-th answered frame. Reported:
observation -> action, and observation -> debug image (after the critic's score too). Targets (CPU): p99 <= 20 ms over >= 1000
frames; policy forward p99 <= 10 ms. Writes bench/results/ros_latency.json.

    python bench/ros_latency.py [--model CKPT] [--frames 1000] [--device cpu] [--forward-only]

``--forward-only`` times the forward pass alone, without ROS (bench/gpu_check.sh on a GPU
machine that has torch but no rclpy).

``--graph launched`` / ``composed`` measures the whole deploy graph instead (sim_node,
camera_node, goal_node, policy_node on its timer, arm_node enabled; the bundled model and
the sim task's goal set through goal_node's goal_image_path): ``launched`` starts each
node as its own process like launch/reach_goal.launch.py use_sim:=true, ``composed`` runs
them in this process like `crl demo` / `crl reach-goal` (crl_ros/nodes/reach_goal_bringup.py).
For ``--seconds`` after the actions flow, quiet or with ``--busy N`` CPU-bound processes
(``while True: pass``) beside it, it reports control ticks and the ticks acted on (the
action stream's gaps: a gap of k periods is k - 1 ticks without an action), stale skips
and watchdog holds (node logs; policy_node's counts in the composed graph), the
observation and action rates, and the observation's age when it was acted on (header
stamp, taken before the frame is rendered -> action, so it includes rendering and waiting
for the control tick): ``observation_age_at_publish`` from policy_node's own record (its
``acted`` deque; in another process its debug log line), the figure the target (p99 <=
60 ms) is about, and ``observation_age_at_action``, stamp -> the action's arrival here,
paired through the debug image. Writes
bench/results/ros_graph_<graph>[_<label>].json, or ``--out FILE`` (one ``--graph`` per ``--out``).

    python bench/ros_latency.py --graph launched composed --seconds 40 --busy 0 1 [--label before]
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

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


# policy_node's debug line per action (its ``acted`` record): observation stamp, age at the action
ACTED_LINE = re.compile(r"acted on observation (\d+) \(([\d.]+) ms old\)")
POLICY_DEBUG_LOG = ["--log-level", "policy_node:=debug"]


def acted_in_log(text: str) -> list[tuple[int, float]]:
    """(observation stamp ns, age when the action was published ms) of each action in a policy_node log."""
    return [(int(m[1]), float(m[2])) for m in ACTED_LINE.finditer(text)]


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


def through_graph(model: Path, frames: int, rate_hz: float, device: str, nice: int = 0) -> dict:
    domain = 1 + (os.getpid() % 100)
    os.environ["ROS_DOMAIN_ID"] = str(domain)
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    import rclpy
    from sensor_msgs.msg import Image
    from std_msgs.msg import Float32MultiArray

    from crl_ros.nodes import common

    env = dict(os.environ, PYTHONUNBUFFERED="1", RCUTILS_COLORIZED_OUTPUT="0")
    log = Path(tempfile.mkdtemp(prefix="ros_latency_")) / "policy_node.log"
    proc = subprocess.Popen([sys.executable, "-m", "crl_ros.nodes.policy_node", "--ros-args", *POLICY_DEBUG_LOG,
                             "-p", f"model_path:={model}", "-p", f"device:={device}", "-p", "act_on_observation:=true",
                             "-p", "max_observation_age_ms:=1000.0", "-p", "debug_scale:=1",
                             *(["-p", f"nice:={nice}"] if nice else [])],
                            env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT)
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
        sent_stamps: set = set()
        period = 1.0 / rate_hz
        next_send = time.monotonic()
        while sent < frames:
            now = time.monotonic()
            if now >= next_send:
                t = time.time_ns()
                pending.add(t)
                sent_stamps.add(t)
                obs_pub.publish(common.image_msg(images[sent % 8], common.ns_to_stamp(t)))
                sent += 1
                next_send += period
            rclpy.spin_once(node, timeout_sec=max(0.0, next_send - time.monotonic()))
        end = time.monotonic() + 2.0
        while time.monotonic() < end and pending:
            rclpy.spin_once(node, timeout_sec=0.05)
        # policy_node's own record says which frames it acted on, in order: the i-th action
        # answers the i-th of them (actions are reliable and in order).
        acted = [a for a in acted_in_log(log.read_text()) if a[0] in sent_stamps]
        result = {"frames_sent": sent, "frames_acted": len(acted), "frames_with_debug_image": len(answered),
                  "actions_received": len(action_times), "rate_hz": rate_hz,
                  "observation_to_action_publish": percentiles([age for _, age in acted]) if acted else None,
                  "observation_to_debug_image": percentiles(latencies) if latencies else None}
        if acted and len(action_times) == len(acted):
            result["observation_to_action"] = percentiles([(t - s) / 1e6 for t, (s, _) in zip(action_times, acted)])
        else:  # an action or a log line went missing: pairing is unsafe, report the publish ages
            result["observation_to_action"] = dict(result["observation_to_action_publish"] or {}, at_publish=True)
        return result
    finally:
        node.destroy_node()
        rclpy.shutdown()
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


BUNDLED_MODEL = "widowx_stable_crl.pt"


class GraphObserver:
    """Subscribes like `ros2 topic hz`: observation (arrival times, stamps), action
    (arrival times) and debug_image (whose stamp is the observation an action answered)."""

    def __init__(self, node):
        from sensor_msgs.msg import Image
        from std_msgs.msg import Float32MultiArray
        from crl_ros.nodes import common

        self.recording = False
        self.observations: list[tuple[int, int]] = []   # (arrival ns, stamp ns)
        self.actions: list[int] = []                     # arrival ns
        self.answered_ages_ms: list[float] = []          # stamp of the answered observation -> its action
        node.create_subscription(Image, "observation", self.on_observation, common.sensor_qos(depth=10))
        node.create_subscription(Float32MultiArray, "action", self.on_action, common.reliable_qos(depth=100))
        node.create_subscription(Image, "debug_image", self.on_debug, common.sensor_qos(depth=10))

    def on_observation(self, msg) -> None:
        from crl_ros.nodes import common
        if self.recording:
            self.observations.append((time.time_ns(), common.stamp_to_ns(msg.header.stamp)))

    def on_action(self, msg) -> None:
        if self.recording:
            self.actions.append(time.time_ns())

    def on_debug(self, msg) -> None:
        from crl_ros.nodes import common
        # The debug image follows its action (from policy_node's follow-up thread, after the
        # critic's score): the latest action received answered this observation, unless that
        # thread lagged behind the next action (then this over-estimates the age).
        if self.recording and self.actions:
            self.answered_ages_ms.append((self.actions[-1] - common.stamp_to_ns(msg.header.stamp)) / 1e6)

    def clear(self) -> None:
        self.observations.clear()
        self.actions.clear()
        self.answered_ages_ms.clear()

    def summary(self, seconds: float, rate_hz: float, camera_hz: float, publish_ages_ms: list[float]) -> dict:
        """The window's rates and gaps; ``publish_ages_ms``: policy_node's own record of each
        action's observation age (stamp -> action published), the figure the targets use."""
        period_ns = 1e9 / rate_hz
        actions = np.asarray(self.actions, dtype=np.int64)
        gaps = np.diff(actions) if len(actions) > 1 else np.zeros(0)
        missed = int(np.clip(np.rint(gaps / period_ns) - 1, 0, None).sum())
        obs = np.asarray(self.observations, dtype=np.int64).reshape(-1, 2)
        obs_gaps_s = np.diff(obs[:, 0]) / 1e9 if len(obs) > 1 else np.zeros(0)
        return {"seconds": seconds,
                "actions": int(len(actions)), "ticks_without_action": missed,
                "ticks_acted_fraction": float(len(actions) / (len(actions) + missed)) if len(actions) else 0.0,
                "action_rate_hz": float(len(actions) / seconds), "action_rate_target_hz": rate_hz,
                "longest_action_gap_s": float(gaps.max() / 1e9) if gaps.size else None,
                "observation_rate_hz": float(len(obs) / seconds), "observation_rate_target_hz": camera_hz,
                "longest_observation_gap_s": float(obs_gaps_s.max()) if obs_gaps_s.size else None,
                "render_to_observation": percentiles(list((obs[:, 0] - obs[:, 1]) / 1e6)) if len(obs) else None,
                "observation_age_at_publish": percentiles(publish_ages_ms) if publish_ages_ms else None,
                "observation_age_at_action": percentiles(self.answered_ages_ms) if self.answered_ages_ms else None}


def count_lines(text: str, needle: str) -> int:
    return sum(needle in line for line in text.splitlines())


def burners(n: int) -> list:
    """CPU-bound processes at the ordinary priority (nice 0), whatever --nice gave this process."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"],
                             preexec_fn=lambda: os.setpriority(os.PRIO_PROCESS, 0, 0)) for _ in range(n)]


def graph_launched(seconds: float, busy: int, workdir: Path, extra_params: dict[str, list[str]]) -> dict:
    """The nodes of launch/reach_goal.launch.py use_sim:=true, each in its own process."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from crl_ros.nodes import common
    from crl_ros.nodes.reach_goal_bringup import set_goal_path
    from crl_ros.sim.widowx_sim import WidowXSim

    domain = 1 + (os.getpid() + 31) % 100
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
               PYTHONUNBUFFERED="1", RCUTILS_COLORIZED_OUTPUT="0")
    logs: dict[str, Path] = {}
    procs = []

    def start(module: str, *params: str) -> None:
        logs[module] = workdir / f"{module}-{time.monotonic_ns()}.log"
        args = [sys.executable, "-m", f"crl_ros.nodes.{module}", "--ros-args",
                *(POLICY_DEBUG_LOG if module == "policy_node" else [])]
        for p in (*params, *extra_params.get(module, [])):
            args += ["-p", p]
        procs.append(subprocess.Popen(args, env=env, cwd=REPO, stdout=open(logs[module], "w"),
                                      stderr=subprocess.STDOUT))

    sim = WidowXSim("reach", max_render_size=640)  # sim_node.yaml: task reach, seed 0, 640x480 overhead
    sim.reset(seed=0)
    goal_path = workdir / "goal.png"
    from PIL import Image as PILImage
    PILImage.fromarray(sim.goal_image(640, 480, "overhead")).save(goal_path)
    sim.close()

    start("sim_node")
    start("camera_node")
    start("goal_node")
    start("policy_node", f"model_path:={BUNDLED_MODEL}", "debug_scale:=1")
    start("arm_node", "start_enabled:=true")
    hogs = []
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain)
    node = rclpy.create_node("graph_bench", context=context)
    observer = GraphObserver(node)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    import threading
    spinning = threading.Event()
    spinning.set()

    def spin():
        while spinning.is_set():
            executor.spin_once(timeout_sec=0.05)

    spinner = threading.Thread(target=spin, daemon=True)
    spinner.start()
    try:
        ok, reason = set_goal_path(node, "goal_node", str(goal_path), timeout=120)
        if not ok:
            raise RuntimeError(f"goal not set: {reason}\n" + "\n".join(p.read_text()[-2000:] for p in logs.values()))
        observer.recording = True
        deadline = time.monotonic() + 120
        while len(observer.actions) < 10:
            if time.monotonic() > deadline:
                raise RuntimeError("no actions\n" + "\n".join(f"--- {m}\n{p.read_text()[-2000:]}" for m, p in logs.items()))
            time.sleep(0.1)
        hogs = burners(busy)
        time.sleep(2.0)
        offsets = {m: len(p.read_text()) for m, p in logs.items()}
        observer.clear()
        time.sleep(seconds)
        observer.recording = False
        window = {m: p.read_text()[offsets[m]:] for m, p in logs.items()}
        result = observer.summary(seconds, 5.0, 30.0, [age for _, age in acted_in_log(window["policy_node"])])
        result.update(stale_warnings=count_lines(window["policy_node"], "not acting"),
                      watchdog_holds=count_lines(window["arm_node"], "watchdog"),
                      node_params=extra_params)
        return result
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
        spinning.clear()
        spinner.join(5)
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=context)
        for p in procs:
            p.send_signal(2)
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()


def graph_composed(seconds: float, busy: int, workdir: Path, nice: int = 0) -> dict:
    """The nodes of `crl demo` / `crl reach-goal --sim` in this process, on the bringup's executor."""
    import logging
    import types
    import rclpy
    from crl_ros.nodes import common, reach_goal_bringup as bringup

    os.environ["ROS_DOMAIN_ID"] = str(1 + (os.getpid() + 57) % 100)
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    warnings: list[str] = []
    args = types.SimpleNamespace(sim=True, task=None, seed=None, device=None, enable=False, goal=None,
                                 model=BUNDLED_MODEL, gif=None)
    model, loaded = bringup.check_inputs(args)
    hogs = []
    with common.interrupts_in_main_thread():
        nodes: list = []
        executor = None
        try:
            sim, policy = bringup._start_nodes(args, model, loaded, nodes)
            arm = nodes[-1]
            node = rclpy.create_node("graph_bench")
            nodes.append(node)
            observer = GraphObserver(node)
            goal_path = workdir / "goal_composed.png"
            from PIL import Image as PILImage
            PILImage.fromarray(sim.goal_image()).save(goal_path)
            if nice:
                common.apply_nice(node, nice)  # what the nodes' nice parameter does to this one process
            executor = bringup.GraphExecutor(nodes)
            ok, reason = bringup.set_goal_path(node, "goal_node", str(goal_path))
            if not ok:
                raise RuntimeError(f"goal not set: {reason}")
            observer.recording = True
            deadline = time.monotonic() + 60
            while len(observer.actions) < 10:
                if time.monotonic() > deadline:
                    raise RuntimeError("no actions")
                time.sleep(0.1)
            hogs = burners(busy)
            time.sleep(2.0)
            counts0 = dict(policy.counts)
            holds0 = arm.state.as_dict()
            observer.clear()
            time.sleep(seconds)
            observer.recording = False
            counts = {k: policy.counts[k] - counts0[k] for k in counts0}
            acted = list(policy.acted)[-counts["acted"]:] if counts["acted"] else []
            result = observer.summary(seconds, 5.0, 30.0, [age for _, age in acted])
            result.update(policy_counts=counts,
                          policy_ticks=sum(counts.values()),
                          ticks_acted_fraction_policy_counts=counts["acted"] / max(1, sum(counts.values())),
                          arm_status_before=holds0, arm_status_after=arm.state.as_dict())
            return result
        finally:
            for hog in hogs:
                hog.kill()
                hog.wait()
            if executor is not None:
                executor.stop()
            for n in nodes:
                getattr(n, "close", lambda: None)()
                n.destroy_node()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="checkpoint (default: a fresh 48x48 stable_crl model)")
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=30.0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (policy_node's torch_threads)")
    parser.add_argument("--out", help="result JSON (default: bench/results/ros_latency.json; with --graph "
                                      "bench/results/ros_graph_<graph>[_<label>].json, and --out takes one graph)")
    parser.add_argument("--graph", nargs="+", choices=["launched", "composed"],
                        help="measure the whole deploy graph (see above) instead of policy_node alone")
    parser.add_argument("--seconds", type=float, default=40.0, help="--graph: measured seconds per run")
    parser.add_argument("--busy", type=int, nargs="+", default=[0, 1],
                        help="CPU-bound processes beside the graph: --graph runs one per value, policy_node alone uses the first")
    parser.add_argument("--node-param", action="append", default=[], metavar="NODE:NAME:=VALUE",
                        help="--graph launched: an extra parameter of one node, e.g. camera_node:input_transport:=compressed")
    parser.add_argument("--label", default="", help="--graph: a note stored in the JSON (e.g. before/after)")
    parser.add_argument("--forward-only", action="store_true", help="policy forward pass alone, no ROS graph")
    parser.add_argument("--nice", type=int, default=0,
                        help="the nodes' nice parameter (sim, camera, policy; composed: the graph's process); "
                             "the burners stay at nice 0")
    args = parser.parse_args()
    if args.out and args.graph and len(args.graph) > 1:
        parser.error("--out names one result file: give one --graph with it "
                     "(without --out each graph writes bench/results/ros_graph_<graph>.json)")
    if args.graph:
        extra: dict[str, list[str]] = {}
        for item in args.node_param:
            module, _, param = item.partition(":")
            extra.setdefault(module, []).append(param)
        if args.nice:
            for module in ("sim_node", "camera_node", "policy_node"):
                extra.setdefault(module, []).append(f"nice:={args.nice}")
        for graph in args.graph:
            result = {"machine": machine(), "graph": graph, "label": args.label, "nice": args.nice, "runs": []}
            with tempfile.TemporaryDirectory() as tmp:
                for busy in args.busy:
                    run = (graph_launched(args.seconds, busy, Path(tmp), extra) if graph == "launched"
                           else graph_composed(args.seconds, busy, Path(tmp), args.nice))
                    result["runs"].append({"busy_processes": busy, **run})
            result["load_average_at_end"] = os.getloadavg()
            result["targets"] = {"ticks_acted_fraction": 0.98, "observation_rate_fraction": 0.9,
                                 "observation_age_at_action_p99_ms": 60.0}
            write_result(result_path(args, graph), result)
        return
    write_result(result_path(args), policy_alone(args))


def policy_alone(args) -> dict:
    """The forward pass, then (unless --forward-only) policy_node acting on every frame."""
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(args.model) if args.model else tiny_model(Path(tmp))
        result = {"machine": machine(**torch_info()), "model": str(args.model or "fresh stable_crl 48x48 (default network)")}
        result["policy_forward"] = {args.device: forward_only(model, args.device, args.frames, args.threads)}
        import torch
        if torch.cuda.is_available() and not args.device.startswith("cuda"):
            result["policy_forward"]["cuda"] = forward_only(model, "cuda", args.frames, args.threads)
        result["targets"] = {"graph_p99_ms": 20.0, "forward_p99_ms": 10.0}
        result["meets_targets"] = {"forward": result["policy_forward"][args.device]["act"]["p99_ms"] <= 10.0}
        if not args.forward_only:
            hogs = burners(args.busy[0] if args.busy else 0)  # policy_node alone: the first --busy value
            try:
                result["ros_graph"] = through_graph(model, args.frames, args.rate, args.device, args.nice)
            finally:
                for hog in hogs:
                    hog.kill()
                    hog.wait()
            result["ros_graph"]["busy_processes"] = len(hogs)
            result["meets_targets"]["graph"] = result["ros_graph"]["observation_to_action"]["p99_ms"] <= 20.0
    result["load_average_at_end"] = os.getloadavg()
    return result


def result_path(args, graph: str | None = None) -> Path:
    """--out, else bench/results/ros_latency.json (policy_node alone) or ros_graph_<graph>[_<label>].json."""
    if args.out:
        return Path(args.out)
    name = "ros_latency" if graph is None else f"ros_graph_{graph}{'_' + args.label if args.label else ''}"
    return REPO / "bench" / "results" / f"{name}.json"


if __name__ == "__main__":
    main()
