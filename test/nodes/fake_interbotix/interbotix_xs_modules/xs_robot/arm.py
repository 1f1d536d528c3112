"""Stand-in InterbotixManipulatorXS with the upstream behaviours arm_node must survive:

- older generation ($CRL_FAKE_INTERBOTIX_GENERATION=older): the core calls rclpy.init()
  unconditionally (it raises where rclpy is already up), the manipulator spins its own thread
  (start_on_init) and shutdown() calls rclpy.shutdown();
- newer generation: a global node (rclpy.init only where rclpy is down), robot_startup() /
  robot_shutdown() in interbotix_common_modules.common_robot.robot, no start_on_init argument;
- set_joint_positions returns False and does nothing for a target outside the joint limits or
  one whose |target - last command| / moving_time (the time before the call) exceeds the
  velocity limit; a changed moving_time / accel_time writes the registers inside the call;
  the constructor writes none (it compares with the values it was given).

Register writes, commands and shutdowns are appended to $CRL_FAKE_INTERBOTIX_LOG (JSON lines).
$CRL_FAKE_INTERBOTIX_CONTROL (a JSON file, read on every command) sets ``velocity_limit`` and,
with ``shutdown_rclpy``, makes the API shut rclpy down by itself on the next command.
"""
import json
import os
import threading
from pathlib import Path

import numpy as np
import rclpy
from interbotix_xs_msgs.srv import RegisterValues
from rclpy.executors import SingleThreadedExecutor

from crl_ros.robot import kinematics

GENERATION = os.environ.get("CRL_FAKE_INTERBOTIX_GENERATION", "newer")
_spin = {}


def log(event: str, **fields) -> None:
    with open(os.environ["CRL_FAKE_INTERBOTIX_LOG"], "a") as f:
        f.write(json.dumps({"event": event, "pid": os.getpid(), **fields}) + "\n")


def control() -> dict:
    path = os.environ.get("CRL_FAKE_INTERBOTIX_CONTROL")
    return json.loads(Path(path).read_text()) if path and Path(path).exists() else {}


def start_spinning() -> None:
    executor = SingleThreadedExecutor()
    executor.add_node(_spin["node"])

    def spin():
        try:
            executor.spin()
        except Exception:  # rclpy shut down under it, as upstream's thread sees it
            pass
    _spin["executor"], _spin["thread"] = executor, threading.Thread(target=spin, daemon=True)
    _spin["thread"].start()


def stop_spinning() -> None:
    _spin["executor"].shutdown()
    _spin["thread"].join(5.0)


class _Done:
    def done(self):
        return True

    def result(self):
        return None


class Core:
    def __init__(self, robot_model: str):
        if GENERATION == "older" or not rclpy.ok():
            rclpy.init()
        _spin["node"] = rclpy.create_node("fake_interbotix", namespace=robot_model)
        self.srv_set_reg = self

    def call_async(self, request):  # srv_set_reg: the xs_sdk answers at once
        log("set_motor_registers", reg=request.reg, value=request.value)
        return _Done()

    def robot_write_commands(self, group_name, commands):
        if not rclpy.ok():
            raise RuntimeError("publish() on a shut-down context")  # what a real publisher does
        log("joint_group", name=group_name, cmd=[float(c) for c in commands])


class GroupInfo:
    joint_names = kinematics.JOINT_NAMES
    joint_lower_limits = kinematics.JOINT_LIMITS[:, 0].tolist()
    joint_upper_limits = kinematics.JOINT_LIMITS[:, 1].tolist()
    joint_velocity_limits = [np.pi] * 6


class Arm:
    def __init__(self, core, group_name, moving_time, accel_time):
        self.core, self.group_name = core, group_name
        self.moving_time, self.accel_time = moving_time, accel_time
        self.group_info = GroupInfo()
        self.joint_commands = json.loads(os.environ.get("CRL_FAKE_INTERBOTIX_START_Q", "[0, 0, 0, 0, 0, 0]"))
        self.set_trajectory_time(self.moving_time, self.accel_time)  # upstream: equal values, no write

    def set_trajectory_time(self, moving_time=None, accel_time=None):
        for reg, attr, value in (("Profile_Velocity", "moving_time", moving_time),
                                 ("Profile_Acceleration", "accel_time", accel_time)):
            if value is not None and value != getattr(self, attr):
                setattr(self, attr, value)
                self.core.call_async(RegisterValues.Request("group", self.group_name, reg, int(value * 1000)))

    def set_joint_positions(self, joint_positions, moving_time=None, accel_time=None, blocking=True):
        self.group_info.joint_velocity_limits = [control().get("velocity_limit", np.pi)] * 6
        theta = [int(x * 1000) / 1000.0 for x in joint_positions]
        info = self.group_info
        for i, (target, last) in enumerate(zip(theta, self.joint_commands)):
            if not info.joint_lower_limits[i] <= target <= info.joint_upper_limits[i] \
                    or abs(target - last) / self.moving_time > info.joint_velocity_limits[i]:
                log("refused", cmd=theta)
                return False
        if control().get("shutdown_rclpy") and rclpy.ok():
            log("api_shut_rclpy_down")
            rclpy.shutdown()
        self.set_trajectory_time(moving_time, accel_time)
        self.core.robot_write_commands(self.group_name, joint_positions)
        self.joint_commands = list(joint_positions)
        return True


class Gripper:
    def grasp(self, delay=1.0):
        log("grasp")

    def release(self, delay=1.0):
        log("release")


class _Manipulator:
    def __init__(self, robot_model, group_name="arm", gripper_name="gripper", moving_time=2.0, accel_time=0.3):
        self.core = Core(robot_model)
        self.arm = Arm(self.core, group_name, moving_time, accel_time)
        self.gripper = Gripper()
        log("started", generation=GENERATION)


class OlderManipulator(_Manipulator):
    def __init__(self, robot_model, start_on_init=True, **kwargs):
        super().__init__(robot_model, **kwargs)
        if start_on_init:
            start_spinning()

    def shutdown(self):
        log("shutdown")
        stop_spinning()
        rclpy.shutdown()


InterbotixManipulatorXS = OlderManipulator if GENERATION == "older" else _Manipulator
