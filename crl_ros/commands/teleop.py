"""`crl teleop`: drive the arm from a terminal's keyboard, for people without a gamepad
(against the simulator too: `ros2 launch crl_ros record_demos.launch.py` or any graph
with arm_node). It publishes ``action`` at the control rate like teleop_node does for a
gamepad; the keys and their hold time are in crl_ros.robot.teleop (KEY_MOTIONS,
KEY_COMMANDS). The ROS part is KeyboardTeleop in crl_ros/nodes/teleop_node.py."""
from __future__ import annotations

HELP = "teleoperate the arm from the keyboard (publishes `action`; 1/2 start/end recorder episodes)"


def add_arguments(parser) -> None:
    from crl_ros.argtypes import positive_float

    parser.add_argument("--hold", type=positive_float, default=0.3,
                        help="seconds a key press keeps moving; key auto-repeat extends it (set it above your "
                        "terminal's repeat delay for motion without a pause after the first press)")
    parser.add_argument("--namespace", default="", help="ROS namespace of the graph, e.g. wx250s next to the "
                        "Interbotix bringup (default: the root namespace)")


def run(args) -> int:
    from crl_ros.nodes.teleop_node import run_keyboard

    return run_keyboard(hold_s=args.hold, namespace=args.namespace)
