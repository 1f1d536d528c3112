"""`crl reach-goal`: the deploy graph composed in ONE process (rclpy MultiThreadedExecutor).

The same nodes and the same config/*.yaml as `ros2 launch crl_ros reach_goal.launch.py`:
camera_node (ingests image_raw), goal_node, policy_node, arm_node and, with ``--sim``,
sim_node standing in for the robot and camera. The goal goes in through the real
interface: goal_node's ``goal_image_path`` parameter, set with a SetParameters service
call (``--goal IMAGE``, or in sim the task's goal rendered by the simulator's camera).
Runs until the task succeeds (sim) or ``--timeout``; prints the result and saves a GIF
of goal | camera observation.
"""
from __future__ import annotations

import sys
import tempfile
import threading
import time
from pathlib import Path

HELP = "reach a goal image with a trained policy through the ROS graph (one process)"


def add_arguments(parser) -> None:
    parser.add_argument("--sim", action="store_true", help="use the simulated WidowX (sim_node)")
    parser.add_argument("--task", help="sim task (default: sim_node.yaml's)")
    parser.add_argument("--seed", type=int, help="sim episode seed (default: sim_node.yaml's)")
    parser.add_argument("--goal", help="goal image file (default in sim: the task's goal)")
    parser.add_argument("--model", help="checkpoint (default: policy_node.yaml's model_path)")
    parser.add_argument("--device", help="auto | cpu | cuda (default: policy_node.yaml's)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds before giving up")
    parser.add_argument("--gif", help="save goal | observation frames as this GIF")
    parser.add_argument("--enable", action="store_true",
                        help="real robot: enable the arm right away (in sim it always is)")


def _param(name, value):
    from rclpy.parameter import Parameter
    return Parameter(name, value=value)


def set_goal_path(client_node, goal_node_name: str, path: str, timeout: float = 10.0) -> tuple[bool, str]:
    """Set goal_node's goal_image_path through its parameter service, like `ros2 param set`."""
    from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
    from rcl_interfaces.srv import SetParameters

    from crl_ros.nodes import common

    client = client_node.create_client(SetParameters, f"{goal_node_name}/set_parameters")
    request = SetParameters.Request(parameters=[Parameter(
        name="goal_image_path", value=ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=path))])
    try:
        result = common.call_service(client, request, timeout=timeout)
    finally:
        client_node.destroy_client(client)
    if result is None:
        return False, f"no reply from {goal_node_name}/set_parameters within {timeout:.0f} s"
    return result.results[0].successful, result.results[0].reason


def run(args) -> int:
    import rclpy
    from rclpy.executors import MultiThreadedExecutor
    from sensor_msgs.msg import Image
    from std_msgs.msg import Bool, Float32

    from crl_ros.nodes import common
    from crl_ros.nodes.arm_node import ArmNode
    from crl_ros.nodes.camera_node import CameraNode
    from crl_ros.nodes.goal_node import GoalNode
    from crl_ros.nodes.policy_node import PolicyNode
    from crl_ros.robot import camera

    if not args.sim and not args.goal:
        print("crl reach-goal: give --goal IMAGE (or use --sim, whose task has a goal)", file=sys.stderr)
        return 2
    model = args.model or common.node_defaults("policy_node").get("model_path", "")
    if not model:
        print("crl reach-goal: no model: pass --model CKPT or set model_path in config/policy_node.yaml", file=sys.stderr)
        return 2

    rclpy.init(args=[])
    nodes = []
    executor = spinner = None
    try:
        sim = None
        if args.sim:
            from crl_ros.nodes.sim_node import SimNode
            overrides = [_param("task", args.task)] if args.task else []
            overrides += [_param("seed", args.seed)] if args.seed is not None else []
            sim = SimNode(parameter_overrides=overrides)
            nodes.append(sim)
        policy_overrides = [_param("model_path", str(model))]
        if args.device:
            policy_overrides.append(_param("device", args.device))
        try:
            nodes += [CameraNode(parameter_overrides=[_param("source", "topic")]),
                      GoalNode(),
                      PolicyNode(parameter_overrides=policy_overrides),
                      ArmNode(parameter_overrides=[_param("start_enabled", bool(args.sim or args.enable))])]
        except (ValueError, FileNotFoundError, RuntimeError) as exc:
            print(f"crl reach-goal: {exc}", file=sys.stderr)
            return 1
        policy = next(n for n in nodes if isinstance(n, PolicyNode))

        goal_path = args.goal
        if goal_path is None:
            # The simulator renders the goal scene with the robot's camera, full frame:
            # goal_node crops and resizes it exactly like camera_node does live.
            goal_path = str(Path(tempfile.mkdtemp(prefix="crl_goal_")) / f"{sim.task_name}_goal.png")
            from PIL import Image as PILImage
            PILImage.fromarray(sim.goal_image()).save(goal_path)

        monitor = rclpy.create_node("reach_goal_monitor")
        nodes.append(monitor)
        state = {"success": False, "goal": None, "obs": None, "score": None, "frames": [], "last_frame": 0.0}
        lock = threading.Lock()

        def on_obs(msg):
            with lock:
                state["obs"] = common.image_from_msg(msg)
                now = time.monotonic()
                if args.gif and state["goal"] is not None and now - state["last_frame"] >= 0.2:
                    state["frames"].append(camera.side_by_side(state["goal"], state["obs"], scale=4))
                    state["last_frame"] = now

        def on_goal(msg):
            with lock:
                state["goal"] = common.image_from_msg(msg) if msg.width else None

        monitor.create_subscription(Image, "observation", on_obs, common.sensor_qos())
        monitor.create_subscription(Image, "goal_image", on_goal, common.latched_qos())
        monitor.create_subscription(Float32, "goal_score", lambda m: state.update(score=m.data), common.reliable_qos())
        if sim is not None:
            monitor.create_subscription(Bool, "task_success", lambda m: state.update(success=bool(m.data)),
                                        common.reliable_qos())

        executor = MultiThreadedExecutor(num_threads=4)
        for node in nodes:
            executor.add_node(node)
        spinning = threading.Event()
        spinning.set()

        def spin() -> None:
            while spinning.is_set():
                executor.spin_once(timeout_sec=0.1)

        spinner = threading.Thread(target=spin, daemon=True)
        spinner.start()

        ok, reason = set_goal_path(monitor, "goal_node", goal_path)
        if not ok:
            print(f"crl reach-goal: goal_node refused the goal {goal_path}: {reason}", file=sys.stderr)
            return 1
        print(f"goal: {goal_path}; model: {model}; timeout {args.timeout:.0f}s", flush=True)

        start = time.monotonic()
        while time.monotonic() - start < args.timeout and not state["success"]:
            time.sleep(0.05)
        elapsed = time.monotonic() - start
        acted = policy.counts["acted"]
        score = "n/a" if state["score"] is None else f"{state['score']:+.2f}"
        if sim is not None:
            verdict = "SUCCESS" if state["success"] else "TIMEOUT"
            print(f"{verdict}: task {sim.task_name} after {elapsed:.1f}s, {acted} actions, last goal score {score}")
        else:
            print(f"stopped after {elapsed:.1f}s, {acted} actions, last goal score {score}")
        if args.gif:
            _save_gif(args.gif, state["frames"], lock)
        return 0 if (sim is None or state["success"]) else 1
    except KeyboardInterrupt:
        print("crl reach-goal: interrupted", file=sys.stderr)
        return 130
    finally:
        if executor is not None:
            if spinner is not None:
                spinning.clear()
                spinner.join(timeout=5.0)
            for node in nodes:
                executor.remove_node(node)
            # rclpy's MultiThreadedExecutor.shutdown destroys its guard condition without waiting
            # for callbacks already handed to its threads; give those a moment to finish so they
            # do not fail on the destroyed guard ("exception was never retrieved").
            time.sleep(0.3)
            executor.shutdown(timeout_sec=5.0)
        for node in nodes:
            getattr(node, "close", lambda: None)()
            node.destroy_node()
        rclpy.try_shutdown()


def _save_gif(path: str, frames: list, lock) -> None:
    from PIL import Image as PILImage

    with lock:
        frames = list(frames)
    if not frames:
        print(f"no frames to save in {path}", file=sys.stderr)
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    images = [PILImage.fromarray(f) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=200, loop=0)
    print(f"saved {len(images)} frames (goal | camera) to {path}")
