"""sim_node: the simulated WidowX 250 behind the interfaces of the real robot driver.

In: trajectory_msgs/JointTrajectory on ``arm_controller/joint_trajectory`` (arm joints,
rad) and ``gripper_controller/joint_trajectory`` (``left_finger``, m) -- what arm_node's
ros2_control backend sends; the last point of each trajectory is the position target.
Out: ``joint_states`` (sensor_msgs/JointState, the driver's 9 names), camera
``image_raw`` (sensor_msgs/Image rgb8, sensor QoS) and ``task_success``
(std_msgs/Bool). Services: ``reset`` (std_srvs/Trigger: next seed of the task).

Physics follows wall-clock time: every joint-state tick advances the simulation by the
real time elapsed (at most 50 ms, so a stalled process does not jump).
"""
from __future__ import annotations

import time

import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Bool
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from crl_ros.nodes import common
from crl_ros.robot import kinematics
from crl_ros.robot.safety import finger_to_gripper

PARAMETERS = [
    ("task", "reach", "simulated task (crl_ros.sim.widowx.TASKS)"),
    ("seed", 0, "seed of the first episode; reset uses seed + episode index"),
    ("image_width", 640, "camera image width"),
    ("image_height", 480, "camera image height"),
    ("camera", "overhead", "MuJoCo camera name"),
    ("camera_rate_hz", 30.0, "image_raw rate"),
    ("joint_state_rate_hz", 100.0, "joint_states rate (and physics stepping)"),
    ("frame_id", "camera", "frame_id of image_raw"),
]


class SimNode(Node):
    def __init__(self, name: str = "sim_node", **kwargs):
        super().__init__(name, **kwargs)
        p = common.declare_parameters(self, PARAMETERS, "sim_node")
        from crl_ros.sim.widowx import TASKS, WidowXSim

        if p["task"] not in TASKS and p["task"] != "play":
            raise ValueError(f"sim_node: unknown task {p['task']!r}; choose one of {TASKS}")
        self.width, self.height = int(p["image_width"]), int(p["image_height"])
        self.camera = p["camera"]
        self.frame_id = p["frame_id"]
        self.seed = int(p["seed"])
        self.episode = 0
        self.sim = WidowXSim(p["task"], max_render_size=max(512, self.width, self.height))
        self.sim.reset(seed=self.seed)
        self._targets = (self.sim.arm_joints(), self.sim.gripper_opening())
        self._last_step = time.monotonic()
        self.joint_pub = self.create_publisher(JointState, "joint_states", common.sensor_qos(depth=5))
        self.image_pub = self.create_publisher(Image, "image_raw", common.sensor_qos())
        self.success_pub = self.create_publisher(Bool, "task_success", common.reliable_qos())
        self.create_subscription(JointTrajectory, "arm_controller/joint_trajectory", self.on_arm, common.reliable_qos())
        self.create_subscription(JointTrajectory, "gripper_controller/joint_trajectory", self.on_gripper,
                                 common.reliable_qos())
        self.create_service(Trigger, "reset", self.on_reset)
        self.create_timer(1.0 / float(p["joint_state_rate_hz"]), self.on_physics)
        self.create_timer(1.0 / float(p["camera_rate_hz"]), self.on_camera)
        self.create_timer(0.2, self.on_success)
        self.get_logger().info(f"task={self.sim.task.name} camera {self.width}x{self.height}")

    # --- commands -------------------------------------------------------------------------
    def on_arm(self, msg: JointTrajectory) -> None:
        if not msg.points:
            return
        index = {n: i for i, n in enumerate(msg.joint_names)}
        if not all(n in index for n in kinematics.JOINT_NAMES):
            self.get_logger().error(f"arm trajectory must name {kinematics.JOINT_NAMES}, got {list(msg.joint_names)}")
            return
        positions = msg.points[-1].positions
        q = np.array([positions[index[n]] for n in kinematics.JOINT_NAMES], dtype=float)
        if not np.isfinite(q).all():
            self.get_logger().error("arm trajectory with NaN/inf ignored")
            return
        self._targets = (q, self._targets[1])
        self.sim.set_joint_targets(*self._targets)

    def on_gripper(self, msg: JointTrajectory) -> None:
        if not msg.points or not msg.joint_names:
            return
        names = list(msg.joint_names)
        joint = "left_finger" if "left_finger" in names else names[0]
        value = float(msg.points[-1].positions[names.index(joint)])
        if not np.isfinite(value):
            return
        self._targets = (self._targets[0], finger_to_gripper(value))
        self.sim.set_joint_targets(*self._targets)

    def on_reset(self, request, response):
        self.episode += 1
        self.sim.reset(seed=self.seed + self.episode)
        self._targets = (self.sim.arm_joints(), self.sim.gripper_opening())
        self._last_step = time.monotonic()
        response.success, response.message = True, f"episode {self.episode} of {self.sim.task.name} (seed {self.seed + self.episode})"
        return response

    # --- outputs --------------------------------------------------------------------------
    def on_physics(self) -> None:
        now = time.monotonic()
        dt = min(now - self._last_step, 0.05)
        self._last_step = now
        if dt > 0:
            self.sim.step(dt)
        names, positions = self.sim.joint_state()
        msg = JointState(name=names, position=[float(v) for v in positions])
        msg.header.stamp = self.get_clock().now().to_msg()
        self.joint_pub.publish(msg)

    def on_camera(self) -> None:
        stamp = self.get_clock().now().to_msg()
        image = self.sim.render(self.width, self.height, self.camera)
        self.image_pub.publish(common.image_msg(image, stamp, self.frame_id))

    def on_success(self) -> None:
        self.success_pub.publish(Bool(data=bool(self.sim.success())))

    def goal_image(self) -> np.ndarray:
        """The current task's goal, rendered like image_raw (full camera frame)."""
        return self.sim.goal_image(self.width, self.height, self.camera)

    def close(self) -> None:
        self.sim.close()


def main(args=None) -> int:
    return common.run_node(SimNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
