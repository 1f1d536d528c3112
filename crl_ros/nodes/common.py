"""Shared by all crl_ros nodes: where config/ and models/ are, parameter declaration from
config/<node>.yaml, QoS profiles, message <-> numpy conversions and the `main()` runner.

rclpy and message packages are imported inside the functions that need them, so
`crl convert` (which reads the camera settings from the same YAML) runs without ROS.

The action message (topic ``action``) is std_msgs/Float32MultiArray with ONE layout
dimension whose label is the comma-joined action names and whose size is 7::

    data = [dx, dy, dz, droll, dpitch, dyaw, gripper]

(crl_ros.robot.actions: base-frame metres / radians per control step, gripper opening
in [0, 1]). A goal_image of size 0x0 means "no goal" (what clear_goal publishes).
"""
from __future__ import annotations

import array
import contextlib
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from crl_ros.robot import camera

PACKAGE = "crl_ros"
SOURCE_ROOT = Path(__file__).resolve().parents[2]


# --- files: installed share/ (ament index) first, the source tree otherwise -------------

def share_path(kind: str, name: str = "") -> Path:
    """Path of ``<share>/crl_ros/<kind>/<name>`` (kind: config, models, launch).

    Uses the ament index when crl_ros is installed in a prefix on AMENT_PREFIX_PATH and
    the file is there; falls back to the source tree (``pip install -e .`` installs no
    data files). Raises FileNotFoundError naming every place it looked.
    """
    looked = []
    if os.environ.get("AMENT_PREFIX_PATH"):
        try:
            from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
            try:
                candidate = Path(get_package_share_directory(PACKAGE)) / kind / name
                if candidate.exists():
                    return candidate
                looked.append(str(candidate))
            except PackageNotFoundError:
                looked.append(f"ament index ({PACKAGE} not installed)")
        except ImportError:
            pass
    candidate = SOURCE_ROOT / kind / name
    if candidate.exists():
        return candidate
    looked.append(str(candidate))
    raise FileNotFoundError(f"{kind}/{name} not found; looked in: {', '.join(looked)}")


def resolve_model_path(value: str) -> Path:
    """A model path as given, or relative to the package's models/ folder."""
    p = Path(os.path.expanduser(value))
    if p.exists():
        return p
    try:
        return share_path("models", value)
    except FileNotFoundError:
        raise FileNotFoundError(f"model {value!r} not found (neither a file nor in models/)") from None


def node_config_file(node_name: str) -> Path:
    return share_path("config", f"{node_name}.yaml")


def load_params_file(path: str | os.PathLike, node_name: str | None = None) -> dict[str, Any]:
    """Parameters from a ROS 2 params YAML: ``/**`` first, then the node's own section."""
    import yaml

    with open(path) as f:
        data = yaml.safe_load(f) or {}
    params: dict[str, Any] = {}
    for key in ("/**", "**"):
        params.update((data.get(key) or {}).get("ros__parameters", {}))
    if node_name:
        for key in (node_name, "/" + node_name, f"/**/{node_name}"):
            params.update((data.get(key) or {}).get("ros__parameters", {}))
    return params


def node_defaults(node_name: str) -> dict[str, Any]:
    """The packaged config/<node_name>.yaml as a dict (empty when the file does not exist)."""
    try:
        return load_params_file(node_config_file(node_name), node_name)
    except FileNotFoundError:
        return {}


def crop_from_param(values: Sequence[int]) -> tuple[int, int, int, int] | None:
    """The crop parameter: [x0, y0, x1, y1] pixels, all zeros meaning no crop (ROS
    parameters cannot hold an empty typed list)."""
    values = [int(v) for v in values]
    if not any(values):
        return None
    if len(values) != 4:
        raise ValueError(f"crop must be [x0, y0, x1, y1] (all 0 = none), got {values}")
    return values[0], values[1], values[2], values[3]


# --- parameters ---------------------------------------------------------------------------

class AnyType(str):
    """A parameter default (a string) whose parameter accepts any type: ``auto`` or
    ``true``/``false`` alike (``-p x:=true`` arrives as a bool, which a string parameter refuses)."""


def declare_parameters(node, specs: Sequence[tuple[str, Any, str]], config_name: str | None = None) -> dict[str, Any]:
    """Declare (name, builtin default, description) parameters on ``node``.

    The default each parameter gets is the value in config/<config_name>.yaml when that
    file sets it (the one place users edit), else the builtin one. Values given on the
    command line (``-p``), in a launch file or a ``--params-file`` override both. A default
    that is an `AnyType` declares a dynamically typed parameter.
    """
    from rcl_interfaces.msg import ParameterDescriptor

    yaml_defaults = node_defaults(config_name or node.get_name())
    values = {}
    for name, default, description in specs:
        dynamic = isinstance(default, AnyType)
        value = yaml_defaults.get(name, default)
        value = value if dynamic else _coerce_like(value, default, name)
        if isinstance(value, AnyType):
            value = str(value)
        node.declare_parameter(name, value, ParameterDescriptor(description=description, dynamic_typing=dynamic))
        values[name] = node.get_parameter(name).value
    return values


def _coerce_like(value: Any, default: Any, name: str) -> Any:
    if isinstance(default, bool):
        return bool(value)
    if isinstance(default, float) and isinstance(value, (int, float)):
        return float(value)
    if isinstance(default, list) and isinstance(value, list) and default:
        kind = type(default[0])
        return [kind(v) for v in value]
    return value


NICE_PARAMETER = ("nice", 0, "CPU priority of this node's process, as nice(1): 0 = leave it; negative (e.g. -10) "
                             "= ahead of ordinary processes when the cores are busy (needs root or CAP_SYS_NICE); "
                             "in a one-process graph (crl reach-goal) it applies to the whole process")


def apply_nice(node, nice: int) -> None:
    """Set every thread of this process (and so the threads it starts later) to ``nice``.

    Linux keeps a nice value per thread, so the process's existing threads (DDS, a
    simulator thread) are set one by one. On 2 busy cores this is what keeps a graph's
    ticks on time (docs/benchmarks.md); off (0) by default, since it takes CPU from
    everything else on the machine. A refusal (no privilege) is a warning, not an error.
    """
    if nice == 0:
        return
    try:
        for tid in os.listdir("/proc/self/task"):
            os.setpriority(os.PRIO_PROCESS, int(tid), nice)
    except FileNotFoundError:  # not Linux: the process's own call
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    except PermissionError:
        node.get_logger().warning(f"nice {nice} refused (needs root, CAP_SYS_NICE or a RLIMIT_NICE allowing it); "
                                  f"running at nice {os.getpriority(os.PRIO_PROCESS, 0)}")
        return
    node.get_logger().info(f"running at nice {nice}")


# --- QoS ----------------------------------------------------------------------------------

def sensor_qos(depth: int = 2):
    """Images: best effort, keep last (a dropped frame is better than a late one)."""
    from rclpy.qos import QoSProfile, ReliabilityPolicy, HistoryPolicy, DurabilityPolicy
    return QoSProfile(depth=depth, reliability=ReliabilityPolicy.BEST_EFFORT,
                      history=HistoryPolicy.KEEP_LAST, durability=DurabilityPolicy.VOLATILE)


def reliable_qos(depth: int = 10):
    """Actions, commands, scores: reliable, volatile."""
    from rclpy.qos import QoSProfile, ReliabilityPolicy, HistoryPolicy, DurabilityPolicy
    return QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE,
                      history=HistoryPolicy.KEEP_LAST, durability=DurabilityPolicy.VOLATILE)


def frame_qos(depth: int = 2):
    """Full camera frames a node of this package publishes (sim_node, camera_node's
    image_raw): reliable, keep last. Fast DDS splits a 640x480 rgb8 frame (900 KB) into
    ~15 fragments, and a best-effort reader loses the whole frame when one fragment is
    late; on 2 busy cores a recorder in another process got 14-24 of 30 frames/s, with gaps
    up to 0.8 s (bench/record_rate.py). A reliable reader (recorder_node) now gets lost
    fragments resent; keep-last never blocks the publisher, and best-effort readers
    (sensor_qos) match it as before."""
    return reliable_qos(depth)


def latched_qos(depth: int = 1):
    """Reliable + transient local with the last ``depth`` messages kept, so a late joiner gets
    the current state at once: the goal image and every status topic (arm_status,
    recorder_status, training_progress, goal_reached) use depth 1."""
    from rclpy.qos import QoSProfile, ReliabilityPolicy, HistoryPolicy, DurabilityPolicy
    return QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE,
                      history=HistoryPolicy.KEEP_LAST, durability=DurabilityPolicy.TRANSIENT_LOCAL)


# --- messages <-> numpy ---------------------------------------------------------------------

def stamp_to_ns(stamp) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def ns_to_stamp(ns: int):
    from builtin_interfaces.msg import Time
    return Time(sec=int(ns // 1_000_000_000), nanosec=int(ns % 1_000_000_000))


def image_msg(image: np.ndarray, stamp=None, frame_id: str = ""):
    """sensor_msgs/Image (rgb8) from an RGB uint8 [H, W, 3] array."""
    from sensor_msgs.msg import Image

    data, width, height, step, encoding = camera.encode_raw(image)
    msg = Image(height=height, width=width, encoding=encoding, is_bigendian=0, step=step)
    msg.data = array.array("B", data)  # the array fast path; a bytes object is checked per byte
    if stamp is not None:
        msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    return msg


# CompressedImage.format of JPEG frames, as compressed_image_transport writes it: the raw
# encoding, then what the JPEG holds (decoders such as cv::imdecode hand back BGR). The
# same as crl_ros.bags.writer.JPEG_FORMAT (not imported: that loads the bag typestore).
JPEG_FORMAT = "rgb8; jpeg compressed bgr8"


def jpeg_image_msg(image: np.ndarray, stamp=None, frame_id: str = "", quality: int = 90):
    """sensor_msgs/CompressedImage (JPEG of ``quality``) from an RGB uint8 [H, W, 3] array:
    what an ``image_raw/compressed`` topic carries."""
    from sensor_msgs.msg import CompressedImage

    msg = CompressedImage(format=JPEG_FORMAT)
    msg.data = array.array("B", camera.encode_compressed(image, "jpeg", quality))
    if stamp is not None:
        msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    return msg


def empty_image_msg(stamp=None, frame_id: str = ""):
    from sensor_msgs.msg import Image
    msg = Image(height=0, width=0, encoding="rgb8", step=0)
    if stamp is not None:
        msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    return msg


def image_from_msg(msg) -> np.ndarray:
    """RGB uint8 [H, W, 3] from a sensor_msgs/Image or CompressedImage (ValueError if unusable)."""
    if hasattr(msg, "format") and not hasattr(msg, "encoding"):
        return camera.decode_compressed(memoryview(msg.data), msg.format)
    return camera.decode_raw(memoryview(msg.data), msg.width, msg.height, msg.step, msg.encoding)


def action_msg(values: Sequence[float]):
    """std_msgs/Float32MultiArray in the crl_ros action layout (see module docstring)."""
    from std_msgs.msg import Float32MultiArray, MultiArrayDimension
    from crl_ros.robot.actions import ACTION_NAMES

    values = np.asarray(values, dtype=np.float32).reshape(-1)
    msg = Float32MultiArray()
    label = ",".join(ACTION_NAMES) if len(values) == len(ACTION_NAMES) else "action"
    msg.layout.dim = [MultiArrayDimension(label=label, size=len(values), stride=len(values))]
    msg.data = array.array("f", values.tobytes())
    return msg


def action_from_msg(msg) -> np.ndarray:
    return np.asarray(msg.data, dtype=np.float64)


# --- running a node -------------------------------------------------------------------------

def call_service(client, request, timeout: float = 10.0, retry: bool = True, attempt_timeout: float = 2.0):
    """Blocking service call from a node spun by another thread; None when no reply came.

    Fast DDS drops a reply when the server has not yet matched the client's reply reader
    ("failed to send response (timeout)"), which a loaded machine hits right after
    discovery. An idempotent request (``retry=True``) is therefore sent again when no
    reply comes within ``attempt_timeout``, until ``timeout``.
    """
    import time

    end = time.monotonic() + timeout
    if not client.wait_for_service(timeout_sec=timeout):
        return None
    while True:
        left = end - time.monotonic()
        if left <= 0:
            return None
        try:
            result = client.call(request, timeout_sec=min(attempt_timeout, left) if retry else left)
        except TimeoutError:  # rclpy 9 raises where earlier ones returned None
            result = None
        if result is not None or not retry:
            return result


@contextlib.contextmanager
def interrupts_in_main_thread(ros_args: Sequence[str] = ()):
    """For one-process bringups (`crl demo`, `crl reach-goal`, `crl record`): rclpy is
    initialised without its own signal handlers, so Ctrl-C raises KeyboardInterrupt in the
    main thread, and SIGTERM does the same, instead of shutting the context down under the
    nodes while they run (which ended in tracebacks from the executor thread and from the
    next service call). The caller's ``finally`` then closes nodes and bags in order.
    ``ros_args``: for rclpy.init, e.g. ``["--disable-stdout-logs"]`` (`crl demo`)."""
    import rclpy
    from rclpy.signals import SignalHandlerOptions

    def on_signal(signum, frame):
        raise KeyboardInterrupt

    in_main = threading.current_thread() is threading.main_thread()
    # SIGINT too: a process started in the background inherits it ignored, and rclpy's own
    # handler (which this replaces) took it regardless.
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)} if in_main else {}
    rclpy.init(args=["--ros-args", *ros_args] if ros_args else [], signal_handler_options=SignalHandlerOptions.NO)
    try:
        yield
    finally:
        rclpy.try_shutdown()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


SPIN_POLL_S = 0.1


def spin_until_shutdown(node, poll_s: float = SPIN_POLL_S) -> None:
    """``rclpy.spin(node)`` on the global executor, but waking every ``poll_s`` to look at the context.

    rclpy's signal thread triggers the executors' guard condition first and shuts the contexts
    down after, in C, which wakes no executor. An executor that woke on the guard and looked at
    the context in between (still valid) goes back to an endless wait, and a node with no timer
    (sim_node, goal_node) then never sees the shutdown: a rare race, seen once in CI as a sim_node
    still running 60 s after Ctrl-C. A bounded wait sees the context gone within ``poll_s``.
    """
    import rclpy

    executor = rclpy.get_global_executor()
    executor.add_node(node)
    try:
        while executor.context.ok():
            executor.spin_once(timeout_sec=poll_s)
    finally:
        executor.remove_node(node)


def run_node(factory: Callable[[], Any], args: list[str] | None = None) -> int:
    """rclpy.init, build the node, spin until Ctrl-C / SIGTERM, then clean up.

    The node's ``close()`` (if any) runs on every exit path, so e.g. the recorder closes
    its bag when interrupted.
    """
    import rclpy
    from rclpy.executors import ExternalShutdownException

    # rclpy's SIGINT handler shuts the context down (which ends spin) and then calls the handler
    # it found installed: Python's default one raises KeyboardInterrupt wherever the main thread
    # is. During a slow start (policy_node imports torch and loads its model after joining the
    # graph) that can be inside Python code a C extension runs through PyRun_*; CPython then
    # marks the interrupt "unhandled" although run_node catches it, and `python -m` (how
    # `ros2 run` starts a node) exits by re-raising SIGINT: exit -2, no output, the node's
    # cleanup skipped. So the first Ctrl-C is left to rclpy alone; a second one, if the stop
    # hangs, raises KeyboardInterrupt as usual.
    interrupted = []
    previous_sigint = None
    if threading.current_thread() is threading.main_thread():
        def first_ctrl_c_stops_rclpy_only(signum, frame):
            if interrupted:
                raise KeyboardInterrupt
            interrupted.append(signum)
        previous_sigint = signal.signal(signal.SIGINT, first_ctrl_c_stops_rclpy_only)
    try:
        rclpy.init(args=sys.argv if args is None else args)
    except BaseException:  # bad arguments: rclpy's error as before, the handler put back
        if previous_sigint is not None:
            signal.signal(signal.SIGINT, previous_sigint)
        raise
    node = None
    try:
        try:
            node = factory()
        except Exception as exc:
            if interrupted or not rclpy.ok():  # Ctrl-C / SIGTERM while starting: the context went first
                return 0
            if not isinstance(exc, (ValueError, FileNotFoundError, ImportError, RuntimeError)):
                raise
            # Bad parameters or a missing model/driver: say so in one line, exit non-zero.
            print(f"[crl_ros] cannot start: {exc}", file=sys.stderr)
            return 1
        if interrupted or not rclpy.ok():  # stopped while starting: the node came up regardless
            return 0
        spin_until_shutdown(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except RuntimeError:  # rclpy's RCLError ("context is not valid") subclasses it
        # A signal can shut the context down between two of spin's waits; the next wait set
        # then fails with RCLError instead of ExternalShutdownException (seen on a loaded
        # machine). That is the same clean stop; anything with the context still up is not.
        if rclpy.ok():
            raise
    finally:
        if node is not None:
            close = getattr(node, "close", None)
            if close:
                close()
            node.destroy_node()
        rclpy.try_shutdown()
        if previous_sigint is not None:
            signal.signal(signal.SIGINT, previous_sigint)
    return 0
