"""Train from recorded bags: trainer_node runs `crl convert` then `crl train` and publishes
`training_progress` and, when done, `checkpoint` (the model.pt for policy_node).

    ros2 launch crl_ros train.launch.py bag_dir:=bags out_dir:=runs/widowx steps:=50000
    ros2 topic echo /training_progress
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

PACKAGE = "crl_ros"

ARGUMENTS = [
    ("bag_dir", "bags", "directory of episode bags"),
    ("out_dir", "runs/trainer", "training run directory"),
    ("algo", "stable_crl", "stable_crl | gcbc | gciql"),
    ("steps", "10000", "gradient steps"),
    ("device", "auto", "auto | cpu | cuda"),
    ("settings", "", "agent config overrides, space separated key=value"),
]


def _config(name):
    return PathJoinSubstitution([FindPackageShare(PACKAGE), "config", name])


def _string(name):
    return ParameterValue(LaunchConfiguration(name), value_type=str)


def generate_launch_description():
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=text) for name, default, text in ARGUMENTS]
        + [Node(package=PACKAGE, executable="trainer_node", name="trainer_node", output="screen",
                parameters=[_config("trainer_node.yaml"),
                            {"bag_dir": _string("bag_dir"), "out_dir": _string("out_dir"), "algo": _string("algo"),
                             "steps": ParameterValue(LaunchConfiguration("steps"), value_type=int),
                             "device": _string("device"), "settings": _string("settings")}])])
