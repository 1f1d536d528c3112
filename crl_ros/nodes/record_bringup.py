"""`crl record`: record demonstration episodes to rosbag2 through the ROS graph.

``--sim``: one process runs sim_node (the robot and camera), arm_node (enabled) and
recorder_node, plus a scripted teleoperator that publishes noisy expert actions on
``action`` at the control rate, exactly as a person with a teleop device would. Each
episode: reset the sim, start_episode, N actions, end_episode. The camera is recorded
compressed by default (sim_node's JPEG ``image_raw/compressed``: ~8 MB per 8-s episode of
640x480 frames instead of ~227 MB raw); ``--image-transport raw`` records rgb8
``image_raw``.

Without ``--sim``: recorder_node alone, on the robot's live topics. Each line read on
stdin starts or ends an episode (Enter at a terminal; or lines from a pipe or a script);
end of input (Ctrl-D, a closed pipe) ends the open episode and quits, as do Ctrl-C and
SIGTERM. ``--duration S`` records one episode of S seconds and needs no stdin. Other
programs can drive episodes meanwhile with the ``start_episode``/``end_episode``
services. An episode that recorded nothing is deleted, not kept; the exit code is 1 when
no episode was saved.
"""
from __future__ import annotations

import sys
import time

HELP = "record demonstration episodes to rosbag2 (one bag per episode)"


def add_arguments(parser) -> None:
    from crl_ros.argtypes import positive_float, positive_int
    from crl_ros.sim.suites import task_names

    tasks = task_names("widowx", play=True)
    parser.add_argument("--sim", action="store_true", help="record the simulator driven by a scripted expert")
    parser.add_argument("--episodes", type=positive_int, default=10, help="number of episodes (sim)")
    parser.add_argument("--steps", type=positive_int, default=40, help="actions per episode (sim)")
    parser.add_argument("--task", choices=tasks, metavar="TASK",
                        help="sim task, one of: " + ", ".join(tasks) + " (default: sim_node.yaml's)")
    parser.add_argument("--seed", type=int, default=0, help="sim seed of the first episode and of the expert's noise")
    parser.add_argument("--noise", type=float, default=0.1, help="expert action noise (fraction of bounds)")
    parser.add_argument("--image-size", type=positive_int, nargs=2, metavar=("H", "W"),
                        help="sim camera image HEIGHT WIDTH, in that order like every crl image size "
                        "(default: sim_node.yaml's 480 640)")
    parser.add_argument("--duration", type=positive_float,
                        help="live: record one episode of this many seconds, then exit (no stdin needed)")
    parser.add_argument("--out", required=True, help="directory for the episode bags")
    parser.add_argument("--storage", choices=["mcap", "sqlite3"], default="mcap", help="rosbag2 storage format")
    parser.add_argument("--compression", choices=["none", "zstd"], default="none",
                        help="per-message compression of the bags")
    parser.add_argument("--topics", nargs="+", help="topics to record (default: recorder_node.yaml's)")
    parser.add_argument("--image-transport", choices=["raw", "compressed"],
                        help="how image_raw is recorded: compressed records its image_raw/compressed twin "
                        "(JPEG CompressedImage), raw the rgb8 image_raw (default: compressed with --sim, "
                        "recorder_node.yaml's image_transport, raw, otherwise)")


def _param(name, value):
    from rclpy.parameter import Parameter
    return Parameter(name, value=value)


def run(args) -> int:
    from rclpy.executors import ExternalShutdownException

    from crl_ros.nodes import common

    try:
        with common.interrupts_in_main_thread():
            return _record_sim(args) if args.sim else _record_live(args)
    except (KeyboardInterrupt, ExternalShutdownException):
        print("crl record: interrupted; the open episode (if any) was closed", file=sys.stderr)
        return 130


def _recorder_overrides(args) -> list:
    overrides = [_param("output_dir", args.out), _param("storage", args.storage),
                 _param("compression", args.compression)]
    if args.topics:
        overrides.append(_param("topics", list(args.topics)))
    transport = args.image_transport or ("compressed" if args.sim else None)
    if transport:
        overrides.append(_param("image_transport", transport))
    return overrides


def _record_sim(args) -> int:
    import numpy as np
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from std_msgs.msg import Float32MultiArray
    from std_srvs.srv import Trigger

    from crl_ros.nodes import common
    from crl_ros.nodes.arm_node import ArmNode
    from crl_ros.nodes.recorder_node import RecorderNode
    from crl_ros.nodes.sim_node import SimNode
    from crl_ros.sim import scripted

    sim_overrides = [_param("seed", args.seed)]
    if args.task:
        sim_overrides.append(_param("task", args.task))
    if args.image_size:
        sim_overrides += [_param("image_height", args.image_size[0]), _param("image_width", args.image_size[1])]
    sim = SimNode(parameter_overrides=sim_overrides)
    arm = ArmNode(parameter_overrides=[_param("start_enabled", True)])
    recorder = RecorderNode(parameter_overrides=_recorder_overrides(args))
    rate = float(arm.get_parameter("control_rate_hz").value)

    class ScriptedTeleop(Node):
        """Publishes the scripted expert's actions and sequences the episodes."""

        def __init__(self):
            super().__init__("scripted_teleop")
            self.pub = self.create_publisher(Float32MultiArray, "action", common.reliable_qos())
            self.rng = np.random.default_rng(args.seed)
            self.phase, self.wait, self.episode, self.step_index = "reset", 0, 0, 0
            self.saved: list[str] = []
            self.expert = None
            self.create_timer(1.0 / rate, self.tick)

        def tick(self) -> None:
            if self.phase == "reset":
                sim.on_reset(Trigger.Request(), Trigger.Response())
                self.expert = sim.call(lambda: scripted.make_policy(sim.sim, self.rng, args.noise))
                # let arm_node's watchdog settle and the new scene reach every topic
                self.phase, self.wait = "settle", 3
            elif self.phase == "settle":
                self.wait -= 1
                if self.wait <= 0 and all(recorder.types.get(t) for t in recorder.topics):
                    recorder.start_episode()
                    self.phase, self.step_index = "run", 0
            elif self.phase == "run":
                # the expert reads the simulator's state: on the simulator's thread
                self.pub.publish(common.action_msg(sim.call(self.expert.act)))
                self.step_index += 1
                if self.step_index >= args.steps:
                    self.phase = "end"
            elif self.phase == "end":  # one more period so the last action's effect is recorded
                path, count = recorder.end_episode()
                if count:
                    self.saved.append(path)
                    print(f"episode {self.episode + 1}/{args.episodes}: {path} ({count} messages, "
                          f"success={sim.success()})", flush=True)
                else:
                    print(f"episode {self.episode + 1}/{args.episodes}: no messages recorded; deleted the "
                          f"empty bag {path}", flush=True)
                self.episode += 1
                self.phase = "done" if self.episode >= args.episodes else "reset"

    teleop = ScriptedTeleop()
    executor = SingleThreadedExecutor()
    nodes = [sim, arm, recorder, teleop]
    for node in nodes:
        executor.add_node(node)
    try:
        while teleop.phase != "done":
            executor.spin_once(timeout_sec=0.1)
    finally:
        for node in nodes:
            getattr(node, "close", lambda: None)()  # the recorder closes an open bag here
            node.destroy_node()
    print(f"recorded {len(teleop.saved)} of {args.episodes} episode(s) in {args.out}")
    return 0 if teleop.saved else 1


def _record_live(args) -> int:
    """recorder_node alone on the live topics: episodes for --duration, or per line on stdin."""
    import signal

    recording = _LiveRecording(args)

    def on_sigterm(signum, frame):
        raise KeyboardInterrupt  # leave like Ctrl-C: the open episode is closed below

    previous_sigterm = signal.signal(signal.SIGTERM, on_sigterm)
    recording.spin_in_background()
    try:
        if args.duration:
            recording.wait_for_topics(5.0)
            recording.start_episode()
            time.sleep(args.duration)
            recording.end_episode()
        else:
            how = ("Enter starts/ends an episode, Ctrl-D quits" if sys.stdin.isatty() else
                   "each line read on stdin starts/ends an episode; end of input quits")
            print(f"recording {', '.join(recording.recorder.topics)} to {args.out}; {how}", flush=True)
            while sys.stdin.readline():
                if recording.recorder.bag is None:
                    recording.start_episode()
                else:
                    recording.end_episode()
    finally:
        recording.stop_spinning()
        if recording.recorder.bag is not None:
            recording.end_episode()
        signal.signal(signal.SIGTERM, previous_sigterm)
        recording.close()
        if recording.saved:
            print(f"recorded {len(recording.saved)} episode(s) in {args.out}", flush=True)
        else:
            print("crl record: no episode was saved", file=sys.stderr, flush=True)
    return 0 if recording.saved else 1


class _LiveRecording:
    """recorder_node spun on a background thread; the main thread starts and ends its
    episodes, each on the executor's thread, in order with the message callbacks."""

    def __init__(self, args):
        import threading

        from rclpy.executors import SingleThreadedExecutor

        from crl_ros.nodes.recorder_node import RecorderNode

        self.recorder = RecorderNode(parameter_overrides=_recorder_overrides(args))
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.recorder)
        self.saved: list[str] = []
        self._spinning = threading.Event()
        self._spinning.set()
        self._thread = threading.Thread(target=self._spin, name="recorder_executor", daemon=True)

    def spin_in_background(self) -> None:
        self._thread.start()

    def _spin(self) -> None:
        from rclpy.executors import ExternalShutdownException
        try:
            while self._spinning.is_set():
                self.executor.spin_once(timeout_sec=0.1)
        except ExternalShutdownException:  # Ctrl-C: rclpy shut the context down
            pass

    def stop_spinning(self) -> None:
        self._spinning.clear()
        self._thread.join(timeout=5.0)

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=5.0)
        self.recorder.destroy_node()

    def wait_for_topics(self, timeout: float) -> None:
        """Until every topic has been discovered (its type known), at most ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not all(t in self.recorder.types for t in self.recorder.topics):
            time.sleep(0.1)

    def _on_executor(self, fn):
        """``fn()`` on the executor's thread, in order with the recorder's message callbacks
        (or right here once that thread has stopped); returns (result, BagWriteError or None)."""
        from crl_ros.bags.writer import BagWriteError

        def guarded():
            try:
                return fn(), None
            except BagWriteError as exc:
                return None, exc
        if self._thread.is_alive():
            task = self.executor.create_task(guarded)
            while self._thread.is_alive() and not task.done():
                time.sleep(0.01)
            if task.done():
                return task.result()
        return guarded()

    def start_episode(self) -> None:
        recorder = self.recorder
        missing = [t for t in recorder.topics if t not in recorder.types]
        path, error = self._on_executor(recorder.start_episode)
        if error:
            print(f"crl record: {error}", flush=True)
            return
        note = f" (not published yet: {', '.join(missing)})" if missing else ""
        print(f"recording to {path}{note}", flush=True)

    def end_episode(self) -> None:
        import rclpy

        result, error = self._on_executor(lambda: self.recorder.end_episode(publish=rclpy.ok()))
        if error:
            print(f"crl record: {error}", flush=True)
            return
        path, count = result
        if count:
            self.saved.append(path)
            print(f"saved {path} ({count} messages)", flush=True)
        else:
            print(f"no messages on {', '.join(self.recorder.topics)} during the episode: deleted the empty bag "
                  f"{path}", flush=True)
