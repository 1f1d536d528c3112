"""Newer generation's global-node functions; absent (ImportError) in the older generation."""
import os

import rclpy

if os.environ.get("CRL_FAKE_INTERBOTIX_GENERATION") == "older":
    raise ImportError("the older Interbotix API generation has no common_robot module")

from interbotix_xs_modules.xs_robot import arm as _arm  # noqa: E402


def robot_startup():
    _arm.start_spinning()


def robot_shutdown():
    _arm.log("robot_shutdown")
    _arm.stop_spinning()
    rclpy.shutdown()  # as upstream: the whole process's context
