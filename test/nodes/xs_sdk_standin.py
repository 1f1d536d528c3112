"""A stand-in for the Interbotix xs_sdk driver node, written for crl_ros's tests from the
interbotix_xs_msgs definitions and the xs_sdk's documented ROS interface: run it in the robot's
namespace (``--ros-args -r __ns:=/wx250s``) and the Interbotix Python API finds what it needs:

services  get_robot_info, set_operating_modes, set_motor_registers, get_motor_registers,
          set_motor_pid_gains, torque_enable, reboot_motors
topics in commands/joint_group, commands/joint_single, commands/joint_trajectory
topic out joint_states (50 Hz): the arm joints, ``gripper``, ``left_finger``, ``right_finger``

The arm group runs in position mode with a time-based profile: a group command moves the
joints linearly to the target over Profile_Velocity milliseconds. The gripper runs in PWM mode:
a positive effort opens the fingers, a negative one closes them, until the finger limits.
Every service request and command is appended to the JSON-lines file given as the first
argument, which is how the tests see what the API did.

Needs interbotix_xs_msgs (generated from its .msg/.srv, see docs/interbotix.md).
"""
import json
import sys
import time

import numpy as np
import rclpy
from interbotix_xs_msgs.msg import JointGroupCommand, JointSingleCommand, JointTrajectoryCommand
from interbotix_xs_msgs.srv import MotorGains, OperatingModes, Reboot, RegisterValues, RobotInfo, TorqueEnable
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from sensor_msgs.msg import JointState

from crl_ros.robot import kinematics

ARM = kinematics.JOINT_NAMES
SLEEP = [0.0, -1.8, 1.55, 0.0, 0.8, 0.0]  # the WidowX's folded rest pose (rad)
FINGER_SPEED = 0.02  # m/s at full effort, a guess; only the direction matters to the tests


class XsSdkStandIn(Node):
    def __init__(self, log_path: str):
        super().__init__("xs_sdk")
        self.declare_parameter("velocity_limit", float(np.pi))  # rad/s, every arm joint (the URDF's)
        self.declare_parameter("start_positions", SLEEP)
        self.declare_parameter("wrist_rotate_limit", float(kinematics.JOINT_LIMITS[5, 1]))  # rad, +-
        self.log_path = log_path
        self.q = np.array(self.get_parameter("start_positions").value, dtype=float)
        self.q_from, self.q_to, self.move_start = self.q.copy(), self.q.copy(), 0.0
        self.finger, self.finger_effort = kinematics.FINGER_LIMITS[1], 0.0
        self.registers = {"Profile_Velocity": 2000, "Profile_Acceleration": 300}  # a mode config's defaults
        for srv_type, name in [(RobotInfo, "get_robot_info"), (OperatingModes, "set_operating_modes"),
                               (RegisterValues, "set_motor_registers"), (RegisterValues, "get_motor_registers"),
                               (MotorGains, "set_motor_pid_gains"), (TorqueEnable, "torque_enable"),
                               (Reboot, "reboot_motors")]:
            self.create_service(srv_type, name, getattr(self, "on_" + name))
        self.create_subscription(JointGroupCommand, "commands/joint_group", self.on_group, 10)
        self.create_subscription(JointSingleCommand, "commands/joint_single", self.on_single, 10)
        self.create_subscription(JointTrajectoryCommand, "commands/joint_trajectory",
                                 lambda m: self.record("joint_trajectory", name=m.name), 10)
        self.js_pub = self.create_publisher(JointState, "joint_states", 10)
        self.last_tick = time.monotonic()
        self.create_timer(0.02, self.tick)
        self.get_logger().info("xs_sdk stand-in up")

    def record(self, event: str, **fields) -> None:
        with open(self.log_path, "a") as f:
            f.write(json.dumps({"event": event, "t": time.monotonic(), **fields}) + "\n")

    # --- services -----------------------------------------------------------------------
    def on_get_robot_info(self, request, response):
        self.record("get_robot_info", cmd_type=request.cmd_type, name=request.name)
        if request.cmd_type == "group":
            response.mode, response.profile_type = "position", "time"
            response.joint_names = ARM
            response.joint_ids = list(range(1, 7))
            limits = kinematics.JOINT_LIMITS.copy()
            limits[5] = [-self.get_parameter("wrist_rotate_limit").value, self.get_parameter("wrist_rotate_limit").value]
            response.joint_lower_limits, response.joint_upper_limits = limits[:, 0].tolist(), limits[:, 1].tolist()
            response.joint_velocity_limits = [float(self.get_parameter("velocity_limit").value)] * 6
            response.joint_sleep_positions = SLEEP
            response.joint_state_indices = list(range(6))
        else:  # the gripper motor: the xs_sdk answers with its left finger (metres)
            response.mode, response.profile_type = "pwm", "velocity"
            response.joint_names = ["left_finger"]
            response.joint_ids = [9]
            response.joint_lower_limits, response.joint_upper_limits = [kinematics.FINGER_LIMITS[0]], [kinematics.FINGER_LIMITS[1]]
            response.joint_velocity_limits = [1.0]
            response.joint_sleep_positions = [kinematics.FINGER_LIMITS[0]]
            response.joint_state_indices = [7]
        response.num_joints = len(response.joint_names)
        response.name = [request.name]
        return response

    def on_set_operating_modes(self, request, response):
        self.record("set_operating_modes", name=request.name, mode=request.mode)
        return response

    def on_set_motor_registers(self, request, response):
        self.record("set_motor_registers", name=request.name, reg=request.reg, value=request.value)
        self.registers[request.reg] = request.value
        return response

    def on_get_motor_registers(self, request, response):
        response.values = [self.registers.get(request.reg, 0)] * 6
        return response

    def on_set_motor_pid_gains(self, request, response):
        self.record("set_motor_pid_gains", name=request.name)
        return response

    def on_torque_enable(self, request, response):
        self.record("torque_enable", name=request.name, enable=request.enable)
        return response

    def on_reboot_motors(self, request, response):
        self.record("reboot_motors", name=request.name)
        return response

    # --- commands and state ---------------------------------------------------------------
    def on_group(self, msg):
        self.record("joint_group", name=msg.name, cmd=[float(c) for c in msg.cmd],
                    profile_velocity=self.registers["Profile_Velocity"])
        if msg.name == "arm":
            self.q_from, self.q_to, self.move_start = self.q.copy(), np.array(msg.cmd, dtype=float), time.monotonic()

    def on_single(self, msg):
        self.record("joint_single", name=msg.name, cmd=float(msg.cmd))
        if msg.name == "gripper":
            self.finger_effort = float(msg.cmd)

    def tick(self):
        now = time.monotonic()
        duration = max(self.registers["Profile_Velocity"] / 1000.0, 1e-3)
        fraction = min(1.0, (now - self.move_start) / duration)
        self.q = self.q_from + fraction * (self.q_to - self.q_from)
        lo, hi = kinematics.FINGER_LIMITS
        self.finger = float(np.clip(self.finger + np.sign(self.finger_effort) * FINGER_SPEED * (now - self.last_tick), lo, hi))
        self.last_tick = now
        msg = JointState(name=kinematics.JOINT_STATE_NAMES,
                         position=[*self.q.tolist(), 0.0, self.finger, -self.finger],
                         velocity=[0.0] * 9, effort=[0.0] * 9)
        msg.header.stamp = self.get_clock().now().to_msg()
        self.js_pub.publish(msg)


def main() -> None:
    rclpy.init(args=sys.argv)
    args = rclpy.utilities.remove_ros_args(sys.argv)
    node = XsSdkStandIn(args[1])
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
