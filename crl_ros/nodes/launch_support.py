"""What the launch files (launch/*.launch.py) share: every node stops with its `ros2 launch`,
and a launch whose nodes need a ROS package that is not installed stops before starting any.

Imports only ROS 2's launch packages, so it loads in the `ros2 launch` process.
"""
from __future__ import annotations

import os
import shutil

from launch.actions import OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch.utilities import normalize_to_list_of_substitutions, perform_substitutions

# util-linux's setpriv (Debian, Ubuntu and their ROS images have it)
SETPRIV = shutil.which("setpriv")


class MissingPackage(RuntimeError):
    """A node the launch would start comes from a ROS package that is not installed."""


def stops_with_launch(executable: str) -> dict:
    """Keyword arguments for a launch_ros ``Node`` so the kernel stops the node when its
    `ros2 launch` process ends, however it ends.

    Ctrl-C (SIGINT) to `ros2 launch` stops every node, but on SIGTERM (what systemd, `docker
    stop` and `kill` send) upstream launch (3.7.1, and Humble's) exits at once and leaves the
    nodes running (its log says "using SIGTERM can result in orphaned processes";
    ros2/launch#666); a launch that fails while nodes are starting leaves them behind too.
    ``setpriv --pdeathsig TERM`` has the kernel send the node SIGTERM when the launch process
    exits; the nodes stop on SIGTERM as they do on Ctrl-C. A ``--launch-prefix`` (gdb, valgrind)
    still applies, after setpriv, to every node (a prefix set here replaces
    launch-prefix-filter). ``exec_name`` keeps the node's name in the log ([sim_node-1], not
    [setpriv-1]). Without setpriv (not Linux) the nodes are started as launch starts them.
    """
    if SETPRIV is None:
        return {"exec_name": executable}
    return {"exec_name": executable,
            "prefix": [f"{SETPRIV} --pdeathsig TERM ", LaunchConfiguration("launch-prefix", default="")]}


def check_packages(nodes: list, hints: dict[str, str]) -> OpaqueFunction:
    """An action to put before ``nodes``: when a node that would start (its condition holds)
    comes from a package missing from the ament index, the launch stops right there, before
    any node has started, saying what to install; ``hints[package]`` says more (what needs
    it, what to use instead) around ``{install}``.

    Without it the launch fails with launch_ros's "package 'joy' not found" only when it
    reaches that node, and the nodes started before it keep running after `ros2 launch`
    has exited.
    """
    from ament_index_python.packages import PackageNotFoundError, get_package_prefix
    from launch_ros.actions import Node

    def check(context):
        for node in nodes:
            if not isinstance(node, Node) or (node.condition is not None and not node.condition.evaluate(context)):
                continue
            package = perform_substitutions(context, normalize_to_list_of_substitutions(node.node_package))
            try:
                get_package_prefix(package)
            except PackageNotFoundError:
                apt_name = f"ros-{os.environ.get('ROS_DISTRO', '<distro>')}-{package.replace('_', '-')}"
                install = f"install it (sudo apt install {apt_name})"
                raise MissingPackage(f"the ROS package '{package}' is not installed (not in AMENT_PREFIX_PATH); "
                                     f"{hints.get(package, '{install}').format(install=install)}. "
                                     "Nothing was started.") from None
        return []

    return OpaqueFunction(function=check)
