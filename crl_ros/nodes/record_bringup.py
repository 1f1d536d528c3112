"""`crl record`: record demonstration episodes to rosbag2 through the ROS graph.

``--sim``: one process runs sim_node (the robot and camera), arm_node (enabled) and
recorder_node, plus a scripted teleoperator that publishes noisy expert actions on
``action`` at the control rate, exactly as a person with a teleop device would. Each
episode: reset the sim, start_episode, N actions, end_episode. Without ``--sim``:
recorder_node alone, on the robot's live topics; Enter starts/ends episodes.
"""
from __future__ import annotations

import sys

HELP = "record demonstration episodes to rosbag2 (one bag per episode)"


def add_arguments(parser) -> None:
    parser.add_argument("--sim", action="store_true", help="record the simulator driven by a scripted expert")
    parser.add_argument("--episodes", type=int, default=10, help="number of episodes (sim)")
    parser.add_argument("--steps", type=int, default=40, help="actions per episode (sim)")
    parser.add_argument("--task", help="sim task (default: sim_node.yaml's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--noise", type=float, default=0.1, help="expert action noise (fraction of bounds)")
    parser.add_argument("--image-size", type=int, nargs=2, metavar=("W", "H"),
                        help="sim camera size (default: sim_node.yaml's 640 480)")
    parser.add_argument("--out", required=True, help="directory for the episode bags")
    parser.add_argument("--storage", choices=["mcap", "sqlite3"], default="mcap")
    parser.add_argument("--compression", choices=["none", "zstd"], default="none")
    parser.add_argument("--topics", nargs="+", help="topics to record (default: recorder_node.yaml's)")


def _param(name, value):
    from rclpy.parameter import Parameter
    return Parameter(name, value=value)


def run(args) -> int:
    import rclpy
    from rclpy.executors import ExternalShutdownException

    rclpy.init(args=[])
    try:
        return _record_sim(args) if args.sim else _record_live(args)
    except (KeyboardInterrupt, ExternalShutdownException):
        print("crl record: interrupted; the open episode (if any) was closed", file=sys.stderr)
        return 130
    finally:
        rclpy.try_shutdown()


def _recorder_overrides(args) -> list:
    overrides = [_param("output_dir", args.out), _param("storage", args.storage),
                 _param("compression", args.compression)]
    if args.topics:
        overrides.append(_param("topics", list(args.topics)))
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
        sim_overrides += [_param("image_width", args.image_size[0]), _param("image_height", args.image_size[1])]
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
                self.saved.append(path)
                print(f"episode {self.episode + 1}/{args.episodes}: {path} ({count} messages, "
                      f"success={sim.success()})", flush=True)
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
    print(f"recorded {len(teleop.saved)} episode(s) in {args.out}")
    return 0


def _record_live(args) -> int:
    import threading

    import rclpy
    from rclpy.executors import MultiThreadedExecutor
    from std_srvs.srv import Trigger

    from crl_ros.nodes import common
    from crl_ros.nodes.recorder_node import RecorderNode

    recorder = RecorderNode(parameter_overrides=_recorder_overrides(args))
    client_node = rclpy.create_node("crl_record_client")
    start = client_node.create_client(Trigger, "start_episode")
    end = client_node.create_client(Trigger, "end_episode")
    executor = MultiThreadedExecutor()
    executor.add_node(recorder)
    executor.add_node(client_node)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    print(f"recording {recorder.topics} to {args.out}; Enter starts/ends an episode, Ctrl-D quits")
    try:
        recording = False
        while True:
            try:
                input()
            except EOFError:
                break
            reply = common.call_service(end if recording else start, Trigger.Request(), retry=False)
            if reply is None:
                print("no reply from the recorder (start_episode/end_episode); try again")
                continue
            print(("saved " if recording else "recording to ") + reply.message if reply.success else reply.message)
            recording = not recording if reply.success else recording
    finally:
        executor.shutdown()
        recorder.close()
        recorder.destroy_node()
        client_node.destroy_node()
    return 0
