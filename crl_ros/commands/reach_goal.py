"""`crl reach-goal`: the deploy graph composed in one process. The composition uses rclpy, so
it lives beside the nodes (crl_ros/nodes/reach_goal_bringup.py): only nodes/ imports ROS."""
from crl_ros.nodes.reach_goal_bringup import HELP, add_arguments, run  # noqa: F401
