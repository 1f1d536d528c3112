"""Record demonstrations: one rosbag2 per episode (recorder_node's start_episode / end_episode).

Simulated robot, teleoperated with a gamepad (joy_node from the ROS `joy` package +
teleop_node: hold the deadman LB to move, Start / Back start and end an episode; the
mapping is in config/teleop_node.yaml):
    ros2 launch crl_ros record_demos.launch.py use_sim:=true teleop:=joy gamepad:=xbox output_dir:=bags
    ros2 service call /enable std_srvs/srv/SetBool "{data: true}"
joy_node needs the ROS `joy` package (sudo apt install ros-$ROS_DISTRO-joy); without it
the launch stops before starting any node and says so.
teleop:=keyboard starts no teleop node: the keyboard needs a terminal, which launch cannot
give a node reliably, so run `crl teleop` in another terminal (1 / 2 start / end an
episode). teleop:=none (the default): your own teleop publishes `action`
(std_msgs/Float32MultiArray, [dx, dy, dz, droll, dpitch, dyaw, gripper]) and
    ros2 service call /start_episode std_srvs/srv/Trigger     # ... teleoperate ...
    ros2 service call /end_episode std_srvs/srv/Trigger
(`crl record --sim` does all of this in one process with a scripted expert.) With
use_sim:=true the camera is recorded compressed: sim_node's JPEG `image_raw/compressed`,
~8 MB per 8-s episode instead of ~225 MB of rgb8 `image_raw` (image_transport:=raw).

Real WidowX 250: start the Interbotix ros2_control bringup and the camera driver (see
reach_goal.launch.py), then
    ros2 launch crl_ros record_demos.launch.py use_sim:=false namespace:=wx250s teleop:=joy \\
        topics:="['image_raw', 'joint_states', 'action']"
This records what the driver publishes on `image_raw` (image_transport:=compressed records
its `image_raw/compressed` twin instead, when the driver offers one).
Without an `action` topic (kinesthetic teaching, arm_node not needed: enable_arm_node:=false)
`crl convert` derives the actions from joint_states through the kinematics.
"""
from typing import List

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, GroupAction, LogInfo
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution, PythonExpression
from launch_ros.actions import Node, PushRosNamespace
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

from crl_ros.nodes.launch_support import check_packages, stops_with_launch

PACKAGE = "crl_ros"

ARGUMENTS = [
    ("use_sim", "true", "run sim_node (MuJoCo WidowX) as robot and camera"),
    ("namespace", "", "namespace of the graph (wx250s next to the Interbotix bringup)"),
    ("output_dir", "bags", "directory for the episode bags"),
    ("storage", "mcap", "mcap | sqlite3"),
    ("compression", "none", "none | zstd"),
    ("topics", "['image_raw', 'joint_states', 'action']", "topics to record"),
    ("image_transport", "auto", "how image_raw is recorded: compressed (its image_raw/compressed twin, JPEG), raw, "
     "or auto: compressed with use_sim:=true, raw otherwise"),
    ("enable_arm_node", "true", "run arm_node to execute teleop actions"),
    ("arm_backend", "ros2_control", "arm_node backend: ros2_control | interbotix"),
    ("task", "reach", "sim task (use_sim:=true)"),
    ("teleop", "none", "joy: joy_node + teleop_node (gamepad) | keyboard: run `crl teleop` in a terminal | "
                       "none: your own teleop publishes action"),
    ("gamepad", "xbox", "teleop:=joy: button layout, xbox | ps4 | f710 (config/teleop_node.yaml)"),
]
CHOICES = {"teleop": ["joy", "keyboard", "none"], "gamepad": ["xbox", "ps4", "f710"]}
# what needs a package and what to use instead, when it is not installed (check_packages)
MISSING_PACKAGE_HINTS = {"joy": "teleop:=joy needs it for joy_node: {install}, or use teleop:=keyboard (run "
                                "`crl teleop` in another terminal) or teleop:=none (your own teleop publishes action)"}


def _config(name):
    return PathJoinSubstitution([FindPackageShare(PACKAGE), "config", name])


def _string(name):
    return ParameterValue(LaunchConfiguration(name), value_type=str)


def _teleop_is(value):
    return IfCondition(PythonExpression(["'", LaunchConfiguration("teleop"), f"' == '{value}'"]))


def _image_transport():
    """The image_transport argument, auto resolved: compressed with use_sim:=true, else raw."""
    transport, sim = LaunchConfiguration("image_transport"), LaunchConfiguration("use_sim")
    return PythonExpression(["'", transport, "' if '", transport, "' != 'auto' else ('compressed' if '", sim,
                             "'.lower() in ('true', '1') else 'raw')"])


def generate_launch_description():
    nodes = [
        PushRosNamespace(LaunchConfiguration("namespace")),
        Node(package=PACKAGE, executable="sim_node", name="sim_node", output="screen",
             **stops_with_launch("sim_node"),
             condition=IfCondition(LaunchConfiguration("use_sim")),
             parameters=[_config("sim_node.yaml"), {"task": _string("task")}]),
        Node(package=PACKAGE, executable="arm_node", name="arm_node", output="screen",
             **stops_with_launch("arm_node"),
             condition=IfCondition(LaunchConfiguration("enable_arm_node")),
             parameters=[_config("arm_node.yaml"), {"backend": _string("arm_backend")}]),
        Node(package=PACKAGE, executable="recorder_node", name="recorder_node", output="screen",
             **stops_with_launch("recorder_node"),
             parameters=[_config("recorder_node.yaml"),
                         {"output_dir": _string("output_dir"), "storage": _string("storage"),
                          "compression": _string("compression"),
                          "image_transport": ParameterValue(_image_transport(), value_type=str),
                          "topics": ParameterValue(LaunchConfiguration("topics"), value_type=List[str])}]),
        # joy_node repeats the pad's state at 20 Hz: teleop_node stops the arm when joy goes stale
        Node(package="joy", executable="joy_node", name="joy_node", output="screen",
             **stops_with_launch("joy_node"),
             condition=_teleop_is("joy"), parameters=[{"autorepeat_rate": 20.0}]),
        Node(package=PACKAGE, executable="teleop_node", name="teleop_node", output="screen",
             **stops_with_launch("teleop_node"),
             condition=_teleop_is("joy"),
             parameters=[_config("teleop_node.yaml"), {"gamepad": _string("gamepad")}]),
        LogInfo(msg="teleop:=keyboard: run `crl teleop` in another terminal (it needs the keyboard)",
                condition=_teleop_is("keyboard")),
    ]
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=text, choices=CHOICES.get(name))
         for name, default, text in ARGUMENTS]
        + [check_packages(nodes, MISSING_PACKAGE_HINTS), GroupAction(nodes)])
