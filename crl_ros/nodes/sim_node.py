"""sim_node: the simulated WidowX 250 behind the interfaces of the real robot driver.

In: trajectory_msgs/JointTrajectory on ``arm_controller/joint_trajectory`` (arm joints,
rad) and ``gripper_controller/joint_trajectory`` (``left_finger``, m) -- what arm_node's
ros2_control backend sends; the last point of each trajectory is the position target.
Out: ``joint_states`` (sensor_msgs/JointState, the driver's 9 names), camera
``image_raw`` (sensor_msgs/Image rgb8; reliable keep-last QoS, see
`common.frame_qos`, so sensor-QoS readers match too), its image_transport twin
``image_raw/compressed`` (sensor_msgs/CompressedImage, JPEG of quality ``jpeg_quality``,
format "rgb8; jpeg compressed bgr8" like compressed_image_transport; what sim recordings
store: ~28x smaller than rgb8) and ``task_success`` (std_msgs/Bool). A camera frame is
rendered, and JPEG-encoded, only while someone subscribes to the topic it goes out on.
Services: ``reset`` (std_srvs/Trigger: next seed of the task).

Physics follows wall-clock time: every joint-state tick advances the simulation by the
real time elapsed (at most 50 ms, so a stalled process does not jump). The simulator
lives on ONE thread of its own (physics, rendering, publishing): an OpenGL context
belongs to the thread that uses it, and executors run callbacks on any thread; callbacks
hand work to it with `call` (waits for the result) or `post` (does not). The trajectory
callbacks post: waiting would hold the executor for as long as a render in flight takes
(10-60 ms on 2 busy cores), and in the one-process graph (`crl reach-goal`) that executor
also runs camera_node, policy_node and arm_node.
"""
from __future__ import annotations

import queue
import threading
import time

import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import CompressedImage, Image, JointState
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
    ("camera_rate_hz", 30.0, "image_raw (and image_raw/compressed) rate"),
    ("publish_compressed", True, "also publish image_raw/compressed (JPEG CompressedImage)"),
    ("jpeg_quality", 90, "JPEG quality of image_raw/compressed (1-95)"),
    ("joint_state_rate_hz", 100.0, "joint_states rate (and physics stepping)"),
    ("frame_id", "camera", "frame_id of image_raw"),
    common.NICE_PARAMETER,
]


class SimNode(Node):
    def __init__(self, name: str = "sim_node", **kwargs):
        super().__init__(name, **kwargs)
        p = common.declare_parameters(self, PARAMETERS, "sim_node")
        common.apply_nice(self, int(p["nice"]))
        from crl_ros.sim.widowx import TASKS

        if p["task"] not in TASKS and p["task"] != "play":
            raise ValueError(f"sim_node: unknown task {p['task']!r}; choose one of {TASKS}")
        self.task_name = p["task"]
        self.width, self.height = int(p["image_width"]), int(p["image_height"])
        self.camera = p["camera"]
        self.frame_id = p["frame_id"]
        self.seed = int(p["seed"])
        self.joint_period = 1.0 / float(p["joint_state_rate_hz"])
        self.camera_period = 1.0 / float(p["camera_rate_hz"])
        self.jpeg_quality = int(p["jpeg_quality"])
        if not 1 <= self.jpeg_quality <= 95:
            raise ValueError(f"sim_node: jpeg_quality must be in 1..95, got {self.jpeg_quality}")
        self.episode = 0
        self.sim = None
        self.joint_pub = self.create_publisher(JointState, "joint_states", common.sensor_qos(depth=5))
        self.image_pub = self.create_publisher(Image, "image_raw", common.frame_qos())
        self.compressed_pub = (self.create_publisher(CompressedImage, "image_raw/compressed", common.frame_qos())
                               if p["publish_compressed"] else None)
        self.success_pub = self.create_publisher(Bool, "task_success", common.reliable_qos())
        self.create_subscription(JointTrajectory, "arm_controller/joint_trajectory", self.on_arm, common.reliable_qos())
        self.create_subscription(JointTrajectory, "gripper_controller/joint_trajectory", self.on_gripper,
                                 common.reliable_qos())
        self.create_service(Trigger, "reset", self.on_reset)
        self._jobs: queue.Queue = queue.Queue()
        self._running = True
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, name="sim_node", daemon=True)
        self._thread.start()
        self._started.wait(60)
        if self._error is not None:
            raise RuntimeError(f"sim_node: simulator failed to start: {self._error}") from self._error
        self.get_logger().info(f"task={self.task_name} camera {self.width}x{self.height}")

    # --- the simulator thread ------------------------------------------------------------
    def _loop(self) -> None:
        from crl_ros.sim.widowx import WidowXSim
        try:
            self.sim = WidowXSim(self.task_name, max_render_size=max(512, self.width, self.height))
            self.sim.reset(seed=self.seed)
            self._targets = (self.sim.arm_joints(), self.sim.gripper_opening())
        except BaseException as exc:  # reported by the constructor
            self._error = exc
            self._started.set()
            return
        self._started.set()
        try:
            self._run_loop()
        except Exception:
            # Ctrl-C / SIGTERM: rclpy shuts the context down while this thread may be
            # publishing; that ends the loop quietly. Anything else is a real error.
            if self.context.ok():
                raise
        finally:
            # The renderer's GL context belongs to this thread: close it here, not from
            # the main thread or a __del__ at exit (EGLError: eglMakeCurrent).
            self.sim.close()

    def _run_loop(self) -> None:
        last_step = next_joint = next_camera = next_success = time.monotonic()
        while self._running and self.context.ok():
            now = time.monotonic()
            timeout = max(0.0, min(next_joint, next_camera) - now)
            try:
                job = self._jobs.get(timeout=timeout)
            except queue.Empty:
                job = None
            if job is not None:
                fn, done = job
                try:
                    result = fn()
                except BaseException as exc:  # handed back to the caller of `call`; a posted job's is logged
                    if done is None:
                        self.get_logger().error(f"simulator job failed: {exc!r}")
                    else:
                        done.error = exc
                        done.set()
                else:
                    if done is not None:
                        done.result = result
                        done.set()
                if fn is self._reset_episode:
                    last_step = time.monotonic()
                continue
            now = time.monotonic()
            if now >= next_joint:
                self.sim.step(min(now - last_step, 0.05))
                last_step = now
                self._publish_joints()
                next_joint += self.joint_period
                next_joint = max(next_joint, now)  # never try to catch up a backlog
            if now >= next_camera:
                self._publish_image()
                next_camera = max(next_camera + self.camera_period, now)
            if now >= next_success:
                self.success_pub.publish(Bool(data=bool(self.sim.success())))
                next_success = now + 0.2

    def call(self, fn, timeout: float = 30.0):
        """Run ``fn()`` on the simulator thread and return its result."""
        if threading.current_thread() is self._thread:
            return fn()
        done = threading.Event()
        done.result, done.error = None, None
        self._jobs.put((fn, done))
        if not done.wait(timeout):
            raise TimeoutError("the simulator thread did not answer")
        if done.error is not None:
            raise done.error
        return done.result

    def post(self, fn) -> None:
        """Run ``fn()`` on the simulator thread, in order with other jobs, without waiting."""
        if threading.current_thread() is self._thread:
            fn()
        else:
            self._jobs.put((fn, None))

    def _publish_joints(self) -> None:
        names, positions = self.sim.joint_state()
        msg = JointState(name=names, position=[float(v) for v in positions])
        msg.header.stamp = self.get_clock().now().to_msg()
        self.joint_pub.publish(msg)

    def _publish_image(self) -> None:
        raw = self.image_pub.get_subscription_count() > 0
        compressed = self.compressed_pub is not None and self.compressed_pub.get_subscription_count() > 0
        if not (raw or compressed):
            return
        stamp = self.get_clock().now().to_msg()
        image = self.sim.render(self.width, self.height, self.camera)
        if raw:
            self.image_pub.publish(common.image_msg(image, stamp, self.frame_id))
        if compressed:
            self.compressed_pub.publish(common.jpeg_image_msg(image, stamp, self.frame_id, self.jpeg_quality))

    def _set_targets(self, q=None, gripper=None) -> None:
        q = self._targets[0] if q is None else q
        gripper = self._targets[1] if gripper is None else gripper
        self._targets = (q, gripper)
        self.sim.set_joint_targets(q, gripper)

    def _reset_episode(self) -> str:
        self.episode += 1
        self.sim.reset(seed=self.seed + self.episode)
        self._targets = (self.sim.arm_joints(), self.sim.gripper_opening())
        return f"episode {self.episode} of {self.sim.task.name} (seed {self.seed + self.episode})"

    # --- ROS callbacks (any executor thread) ---------------------------------------------
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
        self.post(lambda: self._set_targets(q=q))

    def on_gripper(self, msg: JointTrajectory) -> None:
        if not msg.points or not msg.joint_names:
            return
        names = list(msg.joint_names)
        joint = "left_finger" if "left_finger" in names else names[0]
        value = float(msg.points[-1].positions[names.index(joint)])
        if not np.isfinite(value):
            return
        self.post(lambda: self._set_targets(gripper=finger_to_gripper(value)))

    def on_reset(self, request, response):
        response.success, response.message = True, self.call(self._reset_episode)
        return response

    def goal_image(self) -> np.ndarray:
        """The current task's goal, rendered like image_raw (full camera frame)."""
        return self.call(lambda: self.sim.goal_image(self.width, self.height, self.camera))

    def success(self) -> bool:
        return bool(self.call(self.sim.success))

    def close(self) -> None:
        if self._running:
            self._running = False
            self._thread.join(30)  # a render in flight on a loaded machine; the GL context closes in that thread


def main(args=None) -> int:
    return common.run_node(SimNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
