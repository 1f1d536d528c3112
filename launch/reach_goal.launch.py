"""Deploy graph: camera -> policy -> arm, with the goal from goal_node.

Simulated robot (no hardware):
    ros2 launch crl_ros reach_goal.launch.py use_sim:=true model_path:=/path/model.pt
    ros2 param set /goal_node goal_image_path /path/goal.png     # or: ros2 service call /capture_goal std_srvs/srv/Trigger
    ros2 service call /enable std_srvs/srv/SetBool "{data: true}"

Real WidowX 250 with the Interbotix ROS 2 stack (robot computer's workspace):
    ros2 launch interbotix_xsarm_ros_control xsarm_ros_control.launch.py robot_model:=wx250s   # ros2_control bringup
    ros2 launch realsense2_camera rs_launch.py            # or any driver publishing sensor_msgs/Image
    ros2 launch crl_ros reach_goal.launch.py use_sim:=false namespace:=wx250s \\
        image_topic:=/camera/camera/color/image_raw model_path:=/path/model.pt
  The Interbotix bringup lives in namespace /wx250s: with namespace:=wx250s, arm_node reads
  /wx250s/joint_states and commands /wx250s/arm_controller/joint_trajectory and
  /wx250s/gripper_controller/joint_trajectory. With the xs_sdk bringup
  (interbotix_xsarm_control xsarm_control.launch.py) use arm_backend:=interbotix instead:
  arm_node then drives InterbotixManipulatorXS. The arm starts disabled: call
  /wx250s/enable (std_srvs/SetBool) when the goal is set and the workspace is clear;
  /wx250s/stop holds and disables it.

Node parameters come from config/<node>.yaml; the arguments below override a few.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, GroupAction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node, PushRosNamespace
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

from crl_ros.nodes.launch_support import stops_with_launch

PACKAGE = "crl_ros"

ARGUMENTS = [
    ("use_sim", "true", "run sim_node (MuJoCo WidowX) instead of a real robot driver and camera"),
    ("robot_model", "wx250s", "Interbotix robot model (arm_backend:=interbotix)"),
    ("model_path", "widowx_stable_crl.pt", "trained checkpoint for policy_node (a path, or a name in the package's models/; default: the bundled sim model)"),
    ("camera_source", "topic", "camera_node source: topic (a driver's image_raw) | device:N | file:PATH | folder:DIR"),
    ("camera_transport", "raw", "with camera_source:=topic: raw or compressed"),
    ("image_topic", "image_raw", "the camera driver's image topic (remapped to camera_node's image_raw)"),
    ("namespace", "", "namespace of the whole graph (wx250s next to the Interbotix bringup)"),
    ("arm_backend", "ros2_control", "arm_node backend: ros2_control | interbotix"),
    ("enable_arm", "false", "start arm_node enabled (default: call the enable service)"),
    ("task", "reach", "sim task (use_sim:=true)"),
    ("device", "auto", "policy device: auto | cpu | cuda"),
    ("rate_hz", "5.0", "policy_node control rate in Hz (the rate the model was trained at)"),
    ("max_observation_age_ms", "300.0", "policy_node never acts on an observation older than this"),
    ("gripper_mode", "auto", "policy_node gripper: auto (the model's setting) | continuous | binary (fully open or closed)"),
]


def _config(name):
    return PathJoinSubstitution([FindPackageShare(PACKAGE), "config", name])


def _string(name):
    return ParameterValue(LaunchConfiguration(name), value_type=str)


def _float(name):
    return ParameterValue(LaunchConfiguration(name), value_type=float)


def generate_launch_description():
    use_sim = LaunchConfiguration("use_sim")
    nodes = [
        PushRosNamespace(LaunchConfiguration("namespace")),
        Node(package=PACKAGE, executable="sim_node", name="sim_node", output="screen",
             **stops_with_launch("sim_node"),
             condition=IfCondition(use_sim),
             parameters=[_config("sim_node.yaml"), {"task": _string("task")}]),
        Node(package=PACKAGE, executable="camera_node", name="camera_node", output="screen",
             **stops_with_launch("camera_node"),
             parameters=[_config("camera_node.yaml"),
                         {"source": _string("camera_source"), "input_transport": _string("camera_transport")}],
             remappings=[("image_raw", LaunchConfiguration("image_topic")),
                         ("image_raw/compressed", [LaunchConfiguration("image_topic"), "/compressed"])]),
        Node(package=PACKAGE, executable="goal_node", name="goal_node", output="screen",
             **stops_with_launch("goal_node"),
             parameters=[_config("goal_node.yaml")]),
        Node(package=PACKAGE, executable="policy_node", name="policy_node", output="screen",
             **stops_with_launch("policy_node"),
             parameters=[_config("policy_node.yaml"),
                         {"model_path": _string("model_path"), "device": _string("device"),
                          "rate_hz": _float("rate_hz"),
                          "max_observation_age_ms": _float("max_observation_age_ms"),
                          "gripper_mode": _string("gripper_mode")}]),
        Node(package=PACKAGE, executable="arm_node", name="arm_node", output="screen",
             **stops_with_launch("arm_node"),
             parameters=[_config("arm_node.yaml"),
                         {"backend": _string("arm_backend"), "robot_model": _string("robot_model"),
                          "start_enabled": ParameterValue(LaunchConfiguration("enable_arm"), value_type=bool)}]),
    ]
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=text) for name, default, text in ARGUMENTS]
        + [GroupAction(nodes)])
