"""crl_ros: Stable Contrastive RL for goal-image reaching on the WidowX 250.

Layers (lower never import higher): learning/, sim/, robot/ -> bags/ -> nodes/ -> cli.
Only crl_ros/nodes/ imports rclpy and ROS messages.
"""
__version__ = "0.1.0"
