"""arm_node: end-effector delta actions in, safe joint commands out.

In: ``action`` (std_msgs/Float32MultiArray, crl_ros layout, see nodes/common.py),
``joint_states`` (sensor_msgs/JointState). Out, backend ``ros2_control``:
trajectory_msgs/JointTrajectory on ``arm_controller/joint_trajectory`` (the 6 arm joints)
and ``gripper_controller/joint_trajectory`` (``left_finger``, metres) -- what the
Interbotix ros2_control bringup and sim_node listen to. Backend ``interbotix``: the
InterbotixManipulatorXS Python API (imported only when chosen). ``arm_status``
(std_msgs/String, JSON) reports enabled/holding/reason/counts.

Every action goes through crl_ros.robot.safety before anything moves: shape, NaN/inf
and per-step bounds (ActionGuard); the shared kinematics turn it into joint targets
(workspace clamp, IK, velocity limit: crl_ros.robot.actions.apply_ee_delta); the joint
targets are checked against joint limits and a per-step bound (JointGuard). A failed
check rejects the action and holds the arm where it is. The arm starts disabled
(``start_enabled``) and moves only after ``enable`` (std_srvs/SetBool). ``stop``
(Trigger) holds and disables; ``go_home`` (Trigger) moves to ``home_pose`` when enabled.
A watchdog holds the arm when no action arrived for ``watchdog_timeout_s``, and actions
are refused while joint states are older than ``joint_state_timeout_s``.
"""
from __future__ import annotations

import json
import time

import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Float32MultiArray, String
from std_srvs.srv import SetBool, Trigger
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from crl_ros.nodes import common
from crl_ros.robot import actions, kinematics
from crl_ros.robot.safety import ActionGuard, ArmState, JointGuard, UnsafeCommand, Watchdog, gripper_to_finger

PARAMETERS = [
    ("backend", "ros2_control", "ros2_control (JointTrajectory topics) or interbotix (InterbotixManipulatorXS API)"),
    ("robot_model", "wx250s", "Interbotix robot model (interbotix backend)"),
    ("arm_command_topic", "arm_controller/joint_trajectory", "ros2_control arm trajectory topic"),
    ("gripper_command_topic", "gripper_controller/joint_trajectory", "ros2_control gripper trajectory topic"),
    ("gripper_joint", "left_finger", "joint commanded by the gripper controller (finger position, m)"),
    ("start_enabled", False, "accept actions right away; otherwise call the enable service first"),
    ("control_rate_hz", 5.0, "action rate; each command spans one period"),
    ("watchdog_timeout_s", 0.5, "hold the arm when no action arrived for this long"),
    ("joint_state_timeout_s", 0.5, "refuse actions while joint_states are older than this"),
    ("out_of_bounds", "reject", "actions outside the per-step bounds: reject or clip"),
    ("home_pose", [0.3, 0.0, 0.15, 0.0, 0.0, 0.0], "go_home target [x, y, z, roll, pitch, yaw] of the gripper (m, rad)"),
    ("home_time_s", 2.0, "duration of the go_home motion (lengthened to respect velocity limits)"),
    ("interbotix_reply_timeout_s", 0.2, "interbotix backend: longest wait for the API's answer to a command"),
    ("interbotix_startup_timeout_s", 60.0, "interbotix backend: longest wait for the API to find the xs_sdk"),
]


class RosControlBackend:
    """JointTrajectory messages to the arm and gripper controllers (ros2_control, sim_node)."""

    def __init__(self, node: Node, arm_topic: str, gripper_topic: str, gripper_joint: str):
        self.node = node
        self.arm_pub = node.create_publisher(JointTrajectory, arm_topic, common.reliable_qos())
        self.gripper_pub = node.create_publisher(JointTrajectory, gripper_topic, common.reliable_qos())
        self.gripper_joint = gripper_joint

    def send(self, q6: np.ndarray, gripper01: float | None, seconds: float) -> tuple[bool, str]:
        stamp = self.node.get_clock().now().to_msg()
        self.arm_pub.publish(_trajectory(kinematics.JOINT_NAMES, q6, seconds, stamp))
        if gripper01 is not None:
            self.gripper_pub.publish(_trajectory([self.gripper_joint], [gripper_to_finger(gripper01)], seconds, stamp))
        return True, ""

    def hold(self, q6: np.ndarray) -> tuple[bool, str]:
        return self.send(q6, None, 0.1)

    def close(self) -> None:
        pass


def _trajectory(names, positions, seconds: float, stamp) -> JointTrajectory:
    msg = JointTrajectory()
    msg.header.stamp = stamp
    msg.joint_names = list(names)
    point = JointTrajectoryPoint()
    point.positions = [float(v) for v in positions]
    point.time_from_start.sec = int(seconds)
    point.time_from_start.nanosec = int((seconds - int(seconds)) * 1e9)
    msg.points = [point]
    return msg


class ArmNode(Node):
    def __init__(self, name: str = "arm_node", **kwargs):
        super().__init__(name, **kwargs)
        p = common.declare_parameters(self, PARAMETERS, "arm_node")
        self.period = 1.0 / float(p["control_rate_hz"])
        self.action_guard = ActionGuard(actions.ACTION_LOW, actions.ACTION_HIGH, actions.ACTION_NAMES,
                                        out_of_bounds=p["out_of_bounds"])
        # apply_ee_delta already limits each joint to its velocity x period; the guard re-checks.
        self.joint_guard = JointGuard(kinematics.JOINT_LIMITS, max_step=float(kinematics.VELOCITY_LIMITS.max()) * self.period + 1e-6)
        self.watchdog = Watchdog(float(p["watchdog_timeout_s"]))
        self.joint_state_timeout = float(p["joint_state_timeout_s"])
        self.state = ArmState()
        self.home_pose = np.asarray(p["home_pose"], dtype=float)
        self.home_time = float(p["home_time_s"])
        self.q: np.ndarray | None = None
        self.gripper: float | None = None
        self.q_time = -np.inf
        if p["backend"] == "ros2_control":
            self.backend = RosControlBackend(self, p["arm_command_topic"], p["gripper_command_topic"], p["gripper_joint"])
        elif p["backend"] == "interbotix":
            from crl_ros.nodes.interbotix_backend import InterbotixBackend
            self.backend = InterbotixBackend(p["robot_model"], moving_time=self.period,
                                             reply_timeout_s=float(p["interbotix_reply_timeout_s"]),
                                             startup_timeout_s=float(p["interbotix_startup_timeout_s"]))
            self.get_logger().info(f"Interbotix API, {self.backend.generation} generation, running in its own process "
                                   f"(pid {self.backend.process.pid})")
        else:
            raise ValueError(f"arm_node: unknown backend {p['backend']!r} (ros2_control or interbotix)")
        self.status_pub = self.create_publisher(String, "arm_status", common.latched_qos())
        self.create_subscription(JointState, "joint_states", self.on_joint_state, common.sensor_qos(depth=5))
        self.create_subscription(Float32MultiArray, "action", self.on_action, common.reliable_qos())
        self.create_service(SetBool, "enable", self.on_enable)
        self.create_service(Trigger, "stop", self.on_stop)
        self.create_service(Trigger, "go_home", self.on_go_home)
        self.create_timer(0.05, self.on_watchdog)
        self.create_timer(0.2, self.publish_status)
        if p["start_enabled"]:
            self.state.enable()
        self.get_logger().info(f"backend={p['backend']} enabled={self.state.enabled}")

    # --- inputs -----------------------------------------------------------------------
    def on_joint_state(self, msg: JointState) -> None:
        index = {n: i for i, n in enumerate(msg.name)}
        if not all(n in index for n in kinematics.JOINT_NAMES):
            self.get_logger().error(f"joint_states lacks arm joints {kinematics.JOINT_NAMES}", throttle_duration_sec=5.0)
            return
        q = np.array([msg.position[index[n]] for n in kinematics.JOINT_NAMES], dtype=float)
        if not np.isfinite(q).all():
            self.get_logger().error(f"joint_states has NaN/inf: {q.tolist()}", throttle_duration_sec=2.0)
            return
        self.q = q
        self.q_time = time.monotonic()
        if "left_finger" in index:
            finger = msg.position[index["left_finger"]]
            lo, hi = kinematics.FINGER_LIMITS
            self.gripper = float(np.clip((finger - lo) / (hi - lo), 0.0, 1.0))

    def on_action(self, msg: Float32MultiArray) -> None:
        now = time.monotonic()
        ok, why = self.state.may_move()
        if not ok:
            self.get_logger().warning(f"action ignored: {why}", throttle_duration_sec=5.0)
            return
        try:
            action = self.action_guard.check(common.action_from_msg(msg))
            q = self.current_joints(now)
            q_target, gripper, info = actions.apply_ee_delta(q, action, self.period)
            q_target = self.joint_guard.check(q_target, current=q)
        except (UnsafeCommand, ValueError) as exc:
            self.reject(str(exc))
            return
        sent, why = self.backend.send(q_target, gripper, self.period)
        if not sent:  # the driver did nothing: treat it as an unsafe action
            self.reject(f"arm driver refused the command: {why}")
            return
        self.watchdog.feed(now)
        self.state.accept()
        if info.get("clamped"):
            self.get_logger().info("target clamped to the workspace", throttle_duration_sec=5.0)

    def current_joints(self, now: float) -> np.ndarray:
        if self.q is None:
            raise UnsafeCommand("no joint_states received yet")
        if now - self.q_time > self.joint_state_timeout:
            raise UnsafeCommand(f"joint_states are {now - self.q_time:.2f}s old (max {self.joint_state_timeout}s)")
        return self.q

    # --- holding ------------------------------------------------------------------------
    def hold(self, reason: str) -> None:
        """Command the current position (the arm stops where it is) and remember why."""
        self.state.hold(reason)
        self.watchdog.reset()
        if self.q is not None and time.monotonic() - self.q_time <= self.joint_state_timeout:
            held, why = self.backend.hold(self.q)
            if not held:
                self.get_logger().error(f"hold command not carried out ({why}): the arm finishes its last "
                                        "accepted command", throttle_duration_sec=2.0)
        self.publish_status()

    def reject(self, reason: str) -> None:
        self.get_logger().error(f"action rejected, holding: {reason}")
        self.state.reject(reason)
        self.hold(f"rejected: {reason}")

    def on_watchdog(self) -> None:
        now = time.monotonic()
        if self.state.enabled and self.watchdog.expired(now):
            self.get_logger().warning(f"watchdog: no action for {self.watchdog.age(now):.2f}s, holding")
            self.hold("watchdog: actions stopped")

    # --- services -----------------------------------------------------------------------
    def on_enable(self, request, response):
        if request.data:
            self.state.enable()
            response.message = "enabled"
        else:
            self.state.disable("disabled by request")
            self.hold("disabled by request")
            response.message = "disabled"
        response.success = True
        self.publish_status()
        return response

    def on_stop(self, request, response):
        self.state.stop()
        self.hold("stopped")
        response.success, response.message = True, "stopped and disabled; call enable to move again"
        return response

    def on_go_home(self, request, response):
        ok, why = self.state.may_move()
        if not ok:
            response.success, response.message = False, why
            return response
        try:
            q = self.current_joints(time.monotonic())
            q_home, solved = kinematics.ik(kinematics.xyzrpy_to_pose(self.home_pose), q)
            if not solved:
                raise UnsafeCommand(f"home_pose {self.home_pose.tolist()} is out of reach")
            q_home = JointGuard(kinematics.JOINT_LIMITS, max_step=np.inf).check(q_home)
        except UnsafeCommand as exc:
            response.success, response.message = False, str(exc)
            return response
        seconds = max(self.home_time, float(np.max(np.abs(q_home - q) / kinematics.VELOCITY_LIMITS)) * 1.5)
        sent, why = self.backend.send(q_home, 1.0, seconds)
        if not sent:
            response.success, response.message = False, f"arm driver refused the home move: {why}"
            return response
        self.watchdog.reset()  # a long move is not a stalled policy
        self.state.hold("going home")
        response.success, response.message = True, f"moving home over {seconds:.1f}s"
        return response

    def publish_status(self) -> None:
        status = self.state.as_dict()
        status["joint_states_fresh"] = self.q is not None and time.monotonic() - self.q_time <= self.joint_state_timeout
        self.status_pub.publish(String(data=json.dumps(status)))

    def close(self) -> None:
        self.backend.close()


def main(args=None) -> int:
    return common.run_node(ArmNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
