"""Train from .h5 datasets or recorded bags: trainer_node runs `crl convert` (bags only) then
`crl train` and publishes `training_progress` and, when done, `checkpoint` (the model.pt for
policy_node).

    ros2 launch crl_ros train.launch.py data:=data/play.h5 out_dir:=runs/play
    ros2 launch crl_ros train.launch.py bag_dir:=bags out_dir:=runs/widowx crop:="20 0 140 120" size:="48 48"
    ros2 launch crl_ros train.launch.py bag_dir:=bags profile:=paper steps:=50000 device:=cuda
    ros2 topic echo /training_progress

Empty arguments leave the choice to crl convert / crl train (profile auto: cpu on a CPU,
paper with CUDA; steps 0: the profile's). The defaults are config/trainer_node.yaml's.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

from crl_ros.nodes.launch_support import stops_with_launch

PACKAGE = "crl_ros"

ARGUMENTS = [
    ("data", "", ".h5 datasets (files or folders, space separated) to train on without conversion"),
    ("bag_dir", "bags", "a folder of episode bags, or one bag (used when data is empty)"),
    ("out_dir", "runs/trainer", "training run directory (a run already there is renamed aside)"),
    ("dataset", "", "dataset the bags are converted to; empty = <out_dir>.h5"),
    ("algo", "stable_crl", "stable_crl | gcbc | gciql"),
    ("profile", "auto", "auto | cpu | paper; auto = cpu when training runs on a CPU, else paper"),
    ("steps", "0", "gradient steps; 0 = the profile's"),
    ("device", "auto", "auto | cpu | cuda"),
    ("settings", "", "agent config overrides, space separated key=value"),
    ("seed", "", "training seed; empty = crl train's default"),
    ("image_topic", "", "camera topic in the bags; empty = guess"),
    ("action_topic", "", "action topic in the bags; empty = 'action' or FK from joint states"),
    ("joint_topic", "", "joint state topic in the bags; empty = joint_states"),
    ("rate_hz", "5.0", "control rate the bags are sampled at"),
    ("crop", "", "crop 'x0 y0 x1 y1' of the camera frames; empty = camera_node.yaml's"),
    ("size", "", "dataset image size 'H W'; empty = camera_node.yaml's"),
    ("max_gap", "", "seconds a topic may go silent in a bag; empty = crl convert's default"),
    ("gap_policy", "", "error | split; empty = crl convert's default"),
    ("convert_args", "", "more crl convert options, e.g. '--min-fragment 2'"),
]


def _config(name):
    return PathJoinSubstitution([FindPackageShare(PACKAGE), "config", name])


def _string(name):
    return ParameterValue(LaunchConfiguration(name), value_type=str)


def generate_launch_description():
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=text) for name, default, text in ARGUMENTS]
        + [Node(package=PACKAGE, executable="trainer_node", name="trainer_node", output="screen",
                **stops_with_launch("trainer_node"),
                parameters=[_config("trainer_node.yaml"),
                            {"data": _string("data"), "bag_dir": _string("bag_dir"), "out_dir": _string("out_dir"),
                             "dataset": _string("dataset"), "algo": _string("algo"), "profile": _string("profile"),
                             "steps": ParameterValue(LaunchConfiguration("steps"), value_type=int),
                             "device": _string("device"), "settings": _string("settings"), "seed": _string("seed"),
                             "image_topic": _string("image_topic"), "action_topic": _string("action_topic"),
                             "joint_topic": _string("joint_topic"),
                             "rate_hz": ParameterValue(LaunchConfiguration("rate_hz"), value_type=float),
                             "crop": _string("crop"), "size": _string("size"), "max_gap": _string("max_gap"),
                             "gap_policy": _string("gap_policy"), "convert_args": _string("convert_args")}])])
