"""`crl reach-goal`: the deploy graph composed in ONE process.

The same nodes and the same config/*.yaml as `ros2 launch crl_ros reach_goal.launch.py`:
camera_node (ingests image_raw), goal_node, policy_node, arm_node and, with ``--sim``,
sim_node standing in for the robot and camera. The goal goes in through the real
interface: goal_node's ``goal_image_path`` parameter, set with a SetParameters service
call (``--goal IMAGE``, or in sim the task's goal rendered by the simulator's camera,
written to a temporary folder that is removed once goal_node has loaded it). The goal
image and the model (loaded as a checkpoint, then handed to policy_node) are checked
before any node starts.

One episode runs until the simulator reports ``task_success`` (sim) or ``--timeout``; with
``--until-reached``, until policy_node (``hold_on_goal``) publishes ``goal_reached``, its
verdict SUCCESS only if the sim task was done at that moment (else FALSE REACHED).
The verdict is decided ONCE, at that moment, from the first ``task_success: true``;
then the goal is cleared and the arm stopped (hold and disable), and only then are the
result printed and the GIF (goal | camera) written: one frame per action policy_node
published, up to the verdict's count, each shown for one control period. (The verdict used to be re-read
after the GIF was written; by then the still-moving arm could have left the goal and a
later ``task_success: false`` turned a printed SUCCESS into exit code 1.)

Callbacks run on one SingleThreadedExecutor thread, in arrival order (the simulator
keeps its own thread for physics and rendering); the sim is seeded, and the policy acts
as policy_node's ``sample_actions`` and ``gripper_mode`` say (``auto``: the model's
settings; the bundled model samples and opens or closes its gripper fully). Physics
follows wall-clock time, so two runs of one seed can still differ by a step or two.
"""
from __future__ import annotations

import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

HELP = "reach a goal image with a trained policy through the ROS graph (one process)"


def _sim_tasks() -> list[str]:
    from crl_ros.sim.suites import task_names
    return task_names("widowx")


def add_arguments(parser) -> None:
    from crl_ros.argtypes import positive_float

    tasks = _sim_tasks()
    parser.add_argument("--sim", action="store_true", help="use the simulated WidowX (sim_node) as robot and camera")
    parser.add_argument("--task", choices=tasks, metavar="TASK",
                        help="sim task, one of: " + ", ".join(tasks) + " (default: sim_node.yaml's)")
    parser.add_argument("--seed", type=int, help="sim episode seed (default: sim_node.yaml's)")
    parser.add_argument("--goal", help="goal image file (default in sim: the task's goal)")
    parser.add_argument("--model", help="checkpoint (default: policy_node.yaml's model_path)")
    parser.add_argument("--device", help="auto | cpu | cuda (default: policy_node.yaml's)")
    parser.add_argument("--timeout", type=positive_float, default=60.0, help="seconds before giving up")
    parser.add_argument("--gif", help="save goal | camera as this GIF, one frame per action (at the control rate)")
    parser.add_argument("--enable", action="store_true",
                        help="real robot: enable the arm right away (in sim it always is)")
    parser.add_argument("--until-reached", action="store_true",
                        help="policy_node hold_on_goal: end the episode when it publishes goal_reached (the "
                             "model needs a goal threshold: crl calibrate); in sim, SUCCESS only if the task "
                             "was done then")


class ReachGoalError(Exception):
    """The episode could not run (bad arguments, a node that failed to start, no goal)."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


@dataclass
class ReachResult:
    """What one episode measured, fixed when it ended (first task_success, or the timeout)."""

    sim: bool
    task: str | None        # sim task (None on a robot)
    seed: int | None        # sim episode seed
    success: bool           # sim: task_success was true before the timeout; robot: always False
    seconds: float          # from the goal being set to success (or to the timeout)
    actions: int            # actions policy_node published in that time
    goal_score: float | None  # the critic's last goal score
    gif: str | None = None
    gif_frames: int = 0
    reached: bool | None = None  # --until-reached: goal_reached came (None: not asked for)

    @property
    def verdict(self) -> str:
        if self.reached and self.sim and not self.success:
            return "FALSE REACHED"  # policy_node stopped short of the goal
        if self.reached and not self.sim:
            return "REACHED"
        return "SUCCESS" if self.success else ("TIMEOUT" if self.sim else "STOPPED")

    @property
    def exit_code(self) -> int:
        """0 exactly when the verdict line says SUCCESS (sim) or the run simply ended (robot)."""
        return 0 if (self.success or not self.sim) else 1

    def summary(self) -> str:
        score = "n/a" if self.goal_score is None else f"{self.goal_score:+.2f}"
        what = f"task {self.task} (seed {self.seed})" if self.sim else "goal"
        reached = {None: "", True: ", ended on goal_reached", False: ", goal_reached never came"}[self.reached]
        return (f"{self.verdict}: {what} after {self.seconds:.1f}s, {self.actions} actions, "
                f"last goal score {score}{reached}")

    def as_dict(self) -> dict:
        return {**asdict(self), "verdict": self.verdict}


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


def _param(name, value):
    from rclpy.parameter import Parameter
    return Parameter(name, value=value)


def run(args) -> int:
    """`crl reach-goal`: one episode; exit 0 exactly when it printed SUCCESS (sim) or ended (robot)."""
    try:
        return reach(args).exit_code
    except ReachGoalError as exc:
        print(f"crl reach-goal: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        print("crl reach-goal: interrupted", file=sys.stderr)
        return 130


def reach(args) -> ReachResult:
    """Run one episode through the graph; print its verdict (and save the GIF); return what it measured.

    Raises ReachGoalError when the episode cannot run.
    """
    from crl_ros.nodes import common

    model, policy = check_inputs(args)
    with common.interrupts_in_main_thread():
        return run_episode(args, model, policy)


def check_inputs(args):
    """What an episode needs, checked before any node starts: the goal image (given, or the
    sim task's) and the model, loaded as a checkpoint. Returns (model path, loaded Policy)
    for `run_episode`; raises ReachGoalError naming the problem."""
    from crl_ros.learning.checkpoint import CheckpointError
    from crl_ros.learning.policy import Policy
    from crl_ros.nodes import common
    from crl_ros.robot import camera

    if not args.sim and not args.goal:
        raise ReachGoalError("give --goal IMAGE (or use --sim, whose task has a goal)", 2)
    if args.goal:
        try:
            camera.load_image_file(args.goal)
        except FileNotFoundError:
            raise ReachGoalError(f"goal image {args.goal} does not exist", 2) from None
        except ValueError as exc:
            raise ReachGoalError(str(exc), 2) from None
    defaults = common.node_defaults("policy_node")
    model = args.model or defaults.get("model_path", "")
    if not model:
        raise ReachGoalError("no model: pass --model CKPT or set model_path in config/policy_node.yaml", 2)
    try:
        path = common.resolve_model_path(str(model))
        # policy_node is handed this policy; it applies its gripper_mode and sample_actions to it
        policy = Policy.load(path, device=args.device or defaults.get("device", "auto"))
    except FileNotFoundError as exc:
        raise ReachGoalError(str(exc), 2) from None
    except (CheckpointError, ValueError) as exc:  # not a checkpoint; a device this machine lacks
        raise ReachGoalError(f"cannot use the model {model}: {exc}", 2) from None
    if getattr(args, "until_reached", False) and not policy.meta.calibration:
        raise ReachGoalError(f"--until-reached needs a goal-reached threshold in the model and {model} has none; "
                             f"calibrate it first: crl calibrate --model {model}", 2)
    return model, policy


def run_episode(args, model: str, policy, announce: bool = True) -> ReachResult:
    """One episode with the inputs `check_inputs` checked, inside an initialised rclpy;
    ``announce``: print the goal, the verdict and the GIF's path (`crl demo` prints its own)."""
    import rclpy

    nodes = []
    executor = None
    say = print if announce else (lambda *a, **k: None)
    try:
        sim, policy_node = _start_nodes(args, model, policy, nodes)
        until_reached = bool(getattr(args, "until_reached", False))
        monitor = _Monitor(rclpy.create_node("reach_goal_monitor"), policy_node, record_frames=bool(args.gif),
                           watch_success=sim is not None, watch_reached=until_reached)
        nodes.append(monitor.node)
        executor = GraphExecutor(nodes)

        if args.goal:
            goal = args.goal
            ok, reason = set_goal_path(monitor.node, "goal_node", goal)
        else:
            goal = f"the simulator's {sim.task_name} goal (seed {sim.seed})"
            ok, reason = _set_sim_goal(monitor.node, sim)
        if not ok:
            raise ReachGoalError(f"goal_node refused the goal ({goal}): {reason}")
        say(f"goal: {goal}; model: {model}; timeout {args.timeout:.0f}s", flush=True)
        monitor.start()
        monitor.finished.wait(args.timeout)
        seconds, actions, success = monitor.end(args.timeout)
        _end_episode(monitor.node)
        result = ReachResult(sim=sim is not None, task=sim.task_name if sim else None, seed=sim.seed if sim else None,
                             success=success, seconds=seconds, actions=actions, goal_score=monitor.score,
                             reached=monitor.reached if until_reached else None)
        say(result.summary(), flush=True)
        if args.gif:
            # one frame per action, up to the verdict's; 1/rate_hz seconds each, as the arm moved
            frame_ms = 1000.0 / float(policy_node.get_parameter("rate_hz").value)
            frames = monitor.frames_for(actions, wait_s=2.0)
            result.gif_frames = _save_gif(args.gif, frames, frame_ms, say)
            result.gif = args.gif if result.gif_frames else None
        return result
    finally:
        stop_nodes(executor, nodes)


def stop_nodes(executor, nodes: list) -> None:
    """Stop the executor thread, then close and destroy each node of a composed graph."""
    if executor is not None:
        executor.stop()
    for node in nodes:
        getattr(node, "close", lambda: None)()
        node.destroy_node()


def _set_sim_goal(client_node, sim) -> tuple[bool, str]:
    """The simulator renders the goal scene with the robot's camera, full frame; goal_node
    reads it from a file (and crops and resizes it exactly like camera_node does live). The
    file is only needed while goal_node loads it: its folder is removed right after."""
    from PIL import Image as PILImage

    with tempfile.TemporaryDirectory(prefix="crl_goal_") as folder:
        path = Path(folder) / f"{sim.task_name}_goal.png"
        PILImage.fromarray(sim.goal_image()).save(path)
        return set_goal_path(client_node, "goal_node", str(path))


def _start_nodes(args, model, policy, nodes: list):
    """sim_node (with --sim), camera_node, goal_node, policy_node (acting with ``policy``)
    and arm_node, appended to ``nodes``."""
    from crl_ros.nodes.arm_node import ArmNode
    from crl_ros.nodes.camera_node import CameraNode
    from crl_ros.nodes.goal_node import GoalNode
    from crl_ros.nodes.policy_node import PolicyNode

    sim = None
    policy_overrides = [_param("model_path", str(model))]
    if args.device:
        policy_overrides.append(_param("device", args.device))
    if getattr(args, "until_reached", False):
        policy_overrides.append(_param("hold_on_goal", True))
    try:
        if args.sim:
            from crl_ros.nodes.sim_node import SimNode
            overrides = [_param("task", args.task)] if args.task else []
            overrides += [_param("seed", args.seed)] if args.seed is not None else []
            sim = SimNode(parameter_overrides=overrides)
            nodes.append(sim)
        nodes.append(CameraNode(parameter_overrides=[_param("source", "topic")]))
        nodes.append(GoalNode())
        policy_node = PolicyNode(policy=policy, parameter_overrides=policy_overrides)
        nodes.append(policy_node)
        nodes.append(ArmNode(parameter_overrides=[_param("start_enabled", bool(args.sim or args.enable))]))
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        raise ReachGoalError(str(exc)) from exc
    return sim, policy_node


class GraphExecutor:
    """The executor of the one-process graph, spinning ``nodes`` in a background thread
    until `stop` (also used by bench/ros_latency.py --graph composed)."""

    def __init__(self, nodes):
        from rclpy.executors import SingleThreadedExecutor

        self.executor = SingleThreadedExecutor()
        for node in nodes:
            self.executor.add_node(node)
        self._spinning = threading.Event()
        self._spinning.set()
        self._thread = threading.Thread(target=self._spin, name="reach_goal_executor", daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        from rclpy.executors import ExternalShutdownException
        try:
            while self._spinning.is_set():
                self.executor.spin_once(timeout_sec=0.1)
        except ExternalShutdownException:
            pass

    def stop(self) -> None:
        self._spinning.clear()
        self._thread.join(timeout=5.0)
        self.executor.shutdown(timeout_sec=5.0)


class _Monitor:
    """Watches the graph from outside, like `ros2 topic echo`: a GIF frame of goal | camera
    for every action policy_node publishes (the camera's newest view when the action came),
    the last goal score and, in sim, the FIRST task_success that is true, which ends the
    episode. With ``watch_reached`` (--until-reached) the first goal_reached that is true
    ends it instead, and success is whether the newest task_success was true then. Its
    callbacks only record; the verdict is taken once, by ``end``."""

    def __init__(self, node, policy, record_frames: bool, watch_success: bool, watch_reached: bool = False):
        from sensor_msgs.msg import Image
        from std_msgs.msg import Bool, Float32, Float32MultiArray

        from crl_ros.nodes import common

        self.node, self.policy, self.record_frames = node, policy, record_frames
        self.lock = threading.Lock()
        self.finished = threading.Event()
        self.goal = None
        self.score: float | None = None
        self.frames: list = []
        self._observation = None  # the newest observation message, decoded only for a frame
        self._start: float | None = None
        self._ended = False
        self._success_at: tuple[float, int] | None = None
        self.watch_reached = watch_reached
        self.reached = False
        self._task_done = False  # the newest task_success
        self._reached_at: tuple[float, int, bool] | None = None
        if record_frames:
            node.create_subscription(Image, "observation", self.on_observation, common.sensor_qos())
            node.create_subscription(Float32MultiArray, "action", self.on_action, common.reliable_qos())
        node.create_subscription(Image, "goal_image", self.on_goal, common.latched_qos())
        node.create_subscription(Float32, "goal_score", self.on_score, common.reliable_qos())
        if watch_success:
            node.create_subscription(Bool, "task_success", self.on_success, common.reliable_qos())
        if watch_reached:
            node.create_subscription(Bool, "goal_reached", self.on_reached, common.latched_qos())

    def start(self) -> None:
        with self.lock:
            self._start = time.monotonic()

    def end(self, timeout: float) -> tuple[float, int, bool]:
        """Close the episode: (seconds, actions, success) at the first success, else now."""
        with self.lock:
            self._ended = True
            if self._reached_at is not None:
                return self._reached_at
            if self._success_at is not None and not self.watch_reached:
                seconds, actions = self._success_at
                return seconds, actions, True
            return min(time.monotonic() - self._start, timeout), self.policy.counts["acted"], False

    def frames_for(self, actions: int, wait_s: float) -> list:
        """The first ``actions`` frames. The count comes from policy_node itself, the frames
        from this node's subscription, so on a loaded machine the last actions may still be on
        their way: wait for them up to ``wait_s`` (the executor thread keeps receiving)."""
        deadline = time.monotonic() + wait_s
        while len(self.frames) < actions and time.monotonic() < deadline:
            time.sleep(0.02)
        with self.lock:
            return self.frames[:actions]

    def on_observation(self, msg) -> None:
        with self.lock:
            self._observation = msg

    def on_action(self, msg) -> None:
        """A frame per action. Actions still on their way when the episode ended are kept
        too (the caller trims the frames to the verdict's action count)."""
        from crl_ros.nodes import common
        from crl_ros.robot import camera

        with self.lock:
            if self.goal is None or self._observation is None:
                return
            view = common.image_from_msg(self._observation)
            self.frames.append(camera.goal_beside_view(self.goal, view, scale=4))

    def on_goal(self, msg) -> None:
        from crl_ros.nodes import common
        with self.lock:
            self.goal = common.image_from_msg(msg).copy() if msg.width else None

    def on_score(self, msg) -> None:
        with self.lock:
            if not self._ended:
                self.score = float(msg.data)

    def on_success(self, msg) -> None:
        with self.lock:
            if self._start is None or self._ended:
                return
            self._task_done = bool(msg.data)
            if not msg.data or self._success_at is not None:
                return
            self._success_at = (time.monotonic() - self._start, self.policy.counts["acted"])
        if not self.watch_reached:
            self.finished.set()

    def on_reached(self, msg) -> None:
        """--until-reached: the first goal_reached true of this episode ends it."""
        with self.lock:
            if not msg.data or self._start is None or self._ended or self._reached_at is not None:
                return
            self.reached = True
            self._reached_at = (time.monotonic() - self._start, self.policy.counts["acted"], self._task_done)
        self.finished.set()


def _end_episode(node, timeout: float = 5.0) -> None:
    """Through the graph's services: goal_node's ``clear_goal`` (policy_node stops acting),
    then arm_node's ``stop`` (hold where it is, disable). The episode is over; the arm stays put."""
    from std_srvs.srv import Trigger

    from crl_ros.nodes import common

    for service in ("clear_goal", "stop"):
        client = node.create_client(Trigger, service)
        try:
            if common.call_service(client, Trigger.Request(), timeout=timeout) is None:
                print(f"crl reach-goal: no reply from {service} within {timeout:.0f} s", file=sys.stderr)
        finally:
            node.destroy_client(client)


def _save_gif(path: str, frames: list, frame_ms: float, say=print) -> int:
    """Write the frames as a GIF, ``frame_ms`` each; returns how many."""
    from PIL import Image as PILImage

    if not frames:
        print(f"crl reach-goal: no frames to save in {path}", file=sys.stderr)
        return 0
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    images = [PILImage.fromarray(f) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=round(frame_ms), loop=0)
    say(f"saved {len(images)} frames (goal | camera, one per action) to {path}", flush=True)
    return len(images)
