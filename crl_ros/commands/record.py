"""`crl record`: record demonstrations to rosbag2 through the ROS graph. The recording graph
uses rclpy, so it lives beside the nodes (crl_ros/nodes/record_bringup.py): only nodes/ imports ROS."""
from crl_ros.nodes.record_bringup import HELP, add_arguments, run  # noqa: F401
