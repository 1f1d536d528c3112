"""policy_node: the trained goal-conditioned policy at the control rate.

In: ``observation`` (sensor_msgs/Image rgb8, from camera_node) and ``goal_image``
(latched, from goal_node; 0x0 = no goal). Out: ``action`` (std_msgs/Float32MultiArray,
crl_ros layout: [dx, dy, dz, droll, dpitch, dyaw, gripper], see nodes/common.py),
``goal_score`` (std_msgs/Float32, the critic's logit; higher = closer to the goal) and
``debug_image`` (goal | observation side by side with the score written on it; its
header stamp is the observation's, so latency can be measured end to end).

It acts every 1/``rate_hz`` s on the first observation that arrives after the tick,
waiting at most ``frame_wait_ms`` (then on the newest one; the newest at the tick is
already up to a camera period old, half of one on average: 17 ms at 30 Hz), or on every
new observation with ``act_on_observation``; with a sample of N(mean, std^2) or the
policy mean as ``sample_actions`` says (``auto``: the model's ``eval_sample`` setting;
the authors' evaluation samples), the gripper
opening as the network says or snapped fully open/closed as ``gripper_mode`` says
(``auto``: the model's ``eval_gripper``),
and publishes NOTHING when there is no goal, no observation, the newest observation is
older than ``max_observation_age_ms`` (by its header stamp), or an image does not have
the model's input shape -- so arm_node's watchdog holds the arm.

The goal score and the debug image of an action are computed on a thread of their own,
after the action is out: the critic's forward pass (~3x the policy's) and drawing the
debug image no longer hold the executor, which on a loaded machine delayed the next
frames (and, in the one-process graph, every other node's callbacks).

With ``hold_on_goal`` (default off) the goal score also decides when the goal is reached:
once ``hold_ticks`` scores in a row are at or above the threshold stored in the model by
`crl calibrate`, the node publishes no more actions (arm_node's watchdog then holds the arm
where it is, gripper unchanged) and ``goal_reached`` (std_msgs/Bool, latched) turns true; a
new goal image resets it to false and the node acts again.
"""
from __future__ import annotations

import collections
import queue
import threading
import time

import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import Image
from std_msgs.msg import Bool, Float32, Float32MultiArray

from crl_ros.nodes import common
from crl_ros.robot import camera

ACTED_HISTORY = 1000  # (stamp, age) of the observations acted on last, for benchmarks and diagnostics

PARAMETERS = [
    ("model_path", "", "checkpoint (model.pt or run directory); relative names are looked up in models/"),
    ("device", "auto", "auto | cpu | cuda | cuda:N"),
    ("rate_hz", 5.0, "control rate"),
    ("max_observation_age_ms", 300.0, "never act on an observation older than this"),
    ("act_on_observation", False, "act on every new observation instead of on a timer"),
    ("frame_wait_ms", 50.0, "on a tick, wait up to this long for the next observation and act on it (fresher "
                            "than the newest one); then act on the newest. 0 = act on the newest at the tick"),
    ("sample_actions", common.AnyType("auto"), "auto = the model's eval_sample setting | true = sample "
                                               "N(mean, std^2), clipped | false = the policy mean"),
    ("gripper_mode", "auto", "auto = the model's eval_gripper setting | continuous = the opening as the "
                             "network says | binary = fully open or closed, split at 0.5"),
    ("publish_debug_image", True, "publish debug_image (goal | observation, score overlay)"),
    ("debug_scale", 4, "upscaling of the debug image"),
    ("torch_threads", 1, "CPU threads for inference (0 = torch's default); batch-1 inference gains little "
                         "from more, and the other nodes need the cores"),
    common.NICE_PARAMETER,
    ("hold_on_goal", False, "stop acting once the goal score stayed at or above the model's calibrated threshold "
                            "(crl calibrate) for hold_ticks scores: arm_node's watchdog holds the arm, goal_reached "
                            "is published; a new goal resumes. Refused for a model without a threshold"),
    ("hold_ticks", 0, "hold_on_goal: consecutive goal scores at or above the threshold (0 = the model's calibrated count)"),
]


def sample_setting(value) -> bool | None:
    """The ``sample_actions`` parameter: None (``auto``: the model decides), True or False."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("auto", ""):
        return None
    if text in ("true", "false"):
        return text == "true"
    raise ValueError(f"policy_node: sample_actions must be auto, true or false, got {value!r}")


def gripper_setting(value) -> str | None:
    """The ``gripper_mode`` parameter: None (``auto``: the model decides), "continuous" or "binary"."""
    text = str(value).strip().lower()
    if text in ("auto", ""):
        return None
    if text in ("continuous", "binary"):
        return text
    raise ValueError(f"policy_node: gripper_mode must be auto, continuous or binary, got {value!r}")


class PolicyNode(Node):
    def __init__(self, name: str = "policy_node", policy=None, **kwargs):
        super().__init__(name, **kwargs)
        self._follow_up_thread: threading.Thread | None = None  # started once the node is set up
        p = common.declare_parameters(self, PARAMETERS, "policy_node")
        common.apply_nice(self, int(p["nice"]))
        self.sample = sample_setting(p["sample_actions"])
        gripper = gripper_setting(p["gripper_mode"])
        if int(p["torch_threads"]) > 0:
            import torch
            torch.set_num_threads(int(p["torch_threads"]))
        if policy is None:
            from crl_ros.learning.checkpoint import CheckpointError
            from crl_ros.learning.policy import Policy

            if not p["model_path"]:
                raise ValueError("policy_node: parameter model_path is not set")
            path = common.resolve_model_path(p["model_path"])
            try:
                policy = Policy.load(path, device=p["device"], gripper=gripper)
            except CheckpointError as exc:
                raise ValueError(f"policy_node: cannot load {path}: {exc}") from exc
        elif gripper is not None and hasattr(policy, "gripper_mode"):
            policy.gripper_mode = gripper
        self.policy = policy
        self.max_age_ns = int(float(p["max_observation_age_ms"]) * 1e6)
        self.debug = bool(p["publish_debug_image"])
        self.debug_scale = int(p["debug_scale"])
        self.observation: Image | None = None
        self.observation_received_ns = 0
        self.goal: np.ndarray | None = None
        self.counts = {"acted": 0, "no_goal": 0, "no_observation": 0, "stale": 0, "bad_input": 0}
        self.last_latency_ms: float | None = None
        # (header stamp ns, age at the action ms) of each observation acted on; also a debug
        # log line per action (bench/ros_latency.py reads it with --log-level policy_node:=debug)
        self.acted: collections.deque = collections.deque(maxlen=ACTED_HISTORY)
        self.action_pub = self.create_publisher(Float32MultiArray, "action", common.reliable_qos())
        self.score_pub = self.create_publisher(Float32, "goal_score", common.reliable_qos())
        self.debug_pub = self.create_publisher(Image, "debug_image", common.sensor_qos())
        self._setup_goal_hold(bool(p["hold_on_goal"]), int(p["hold_ticks"]))
        self.create_subscription(Image, "observation", self.on_observation, common.sensor_qos())
        self.create_subscription(Image, "goal_image", self.on_goal, common.latched_qos())
        self.act_on_observation = bool(p["act_on_observation"])
        self._tick_waiting = False   # a tick waits for the next observation
        self._frame_deadline = None  # ... until this one-shot timer fires
        if not self.act_on_observation:
            self._start_ticks(float(p["rate_hz"]), float(p["frame_wait_ms"]))
        self._follow_ups: queue.Queue = queue.Queue(maxsize=1)
        self._follow_up_thread = threading.Thread(target=self._follow_up_loop, name="policy_follow_up", daemon=True)
        self._follow_up_thread.start()
        sampled = getattr(policy, "samples_by_default", False) if self.sample is None else self.sample
        self.get_logger().info(f"loaded {policy!r}; acting with {'sampled' if sampled else 'mean'} actions "
                               f"(sample_actions={p['sample_actions']}), "
                               f"{getattr(policy, 'gripper_mode', 'continuous')} gripper "
                               f"(gripper_mode={p['gripper_mode']})")

    def _start_ticks(self, rate_hz: float, frame_wait_ms: float) -> None:
        period = 1.0 / rate_hz
        if not 0.0 <= frame_wait_ms / 1e3 < period:
            raise ValueError(f"policy_node: frame_wait_ms must be >= 0 and shorter than the control period "
                             f"({period * 1e3:.0f} ms), got {frame_wait_ms}")
        self.create_timer(period, self.on_tick)
        if frame_wait_ms > 0:
            self._frame_deadline = self.create_timer(frame_wait_ms / 1e3, self.on_frame_deadline)
            self._frame_deadline.cancel()

    def on_tick(self) -> None:
        if self._frame_deadline is None:
            self.step()
            return
        self._tick_waiting = True
        self._frame_deadline.reset()

    def on_frame_deadline(self) -> None:
        """No observation came within frame_wait_ms of the tick: act on the newest (if fresh)."""
        self._frame_deadline.cancel()
        if self._tick_waiting:
            self._tick_waiting = False
            self.step()

    def on_observation(self, msg: Image) -> None:
        self.observation = msg
        self.observation_received_ns = time.time_ns()
        if self._tick_waiting:
            self._tick_waiting = False
            self._frame_deadline.cancel()
            self.step()
        elif self.act_on_observation:
            self.step()

    def on_goal(self, msg: Image) -> None:
        self._reset_goal_hold()
        if msg.width == 0 or msg.height == 0:
            self.goal = None
            self.get_logger().info("goal cleared")
            return
        try:
            goal = np.array(common.image_from_msg(msg))  # an owned copy (the decoder returns a view)
            self._check_shape(goal, "goal_image")
        except ValueError as exc:
            self.goal = None
            self.get_logger().error(f"goal ignored: {exc}")
            return
        self.goal = goal
        self.get_logger().info("new goal")

    def _check_shape(self, image: np.ndarray, what: str) -> None:
        if image.shape != tuple(self.policy.image_shape):
            raise ValueError(f"{what} is {image.shape} but the model expects {tuple(self.policy.image_shape)} "
                             f"(check camera_node's size/crop)")

    def step(self) -> None:
        """One control step: act if (and only if) there is a goal and a fresh observation."""
        if self.goal is None:
            self.counts["no_goal"] += 1
            self.get_logger().info("waiting for a goal (goal_image)", throttle_duration_sec=5.0)
            return
        msg = self.observation
        if msg is None:
            self.counts["no_observation"] += 1
            self.get_logger().info("waiting for an observation", throttle_duration_sec=5.0)
            return
        stamp_ns = common.stamp_to_ns(msg.header.stamp) or self.observation_received_ns
        age_ns = time.time_ns() - stamp_ns
        if age_ns > self.max_age_ns:
            self.counts["stale"] += 1
            self.get_logger().warning(f"observation is {age_ns / 1e6:.0f} ms old (max {self.max_age_ns / 1e6:.0f}); "
                                      "not acting", throttle_duration_sec=2.0)
            return
        try:
            obs = np.array(common.image_from_msg(msg))
            self._check_shape(obs, "observation")
            action = self.policy.act(obs, self.goal, sample=self.sample)
        except (ValueError, FloatingPointError) as exc:
            self.counts["bad_input"] += 1
            self.get_logger().error(f"not acting: {exc}", throttle_duration_sec=2.0)
            return
        with self._hold_lock:  # hold_on_goal: not one action once goal_reached is decided
            if self._goal_reached:
                self.counts["holding"] += 1
                return
            self.action_pub.publish(common.action_msg(action))
        self.counts["acted"] += 1
        self.last_latency_ms = (time.time_ns() - stamp_ns) / 1e6
        self.acted.append((stamp_ns, self.last_latency_ms))
        self.get_logger().debug(f"acted on observation {stamp_ns} ({self.last_latency_ms:.1f} ms old)")
        self._queue_follow_up((obs, self.goal, msg.header.stamp))

    # --- goal score and debug image, off the action path ------------------------------------
    def _queue_follow_up(self, job) -> None:
        """Hand the acted-on frame to the follow-up thread. A job still waiting there (the
        thread is behind, starved on a loaded machine) is replaced: the score of the newest
        action is the one worth publishing, and a backlog would only make it later."""
        while True:
            try:
                self._follow_ups.put_nowait(job)
                return
            except queue.Full:
                try:
                    self._follow_ups.get_nowait()
                except queue.Empty:
                    pass

    def _follow_up_loop(self) -> None:
        while (job := self._follow_ups.get()) is not None:
            try:
                self._publish_score_and_debug(*job)
            except Exception as exc:  # the context went at shutdown, or a bug: say it, keep the thread
                if self.context.ok():
                    self.get_logger().error(f"goal score / debug image failed: {exc!r}", throttle_duration_sec=2.0)

    def _publish_score_and_debug(self, obs: np.ndarray, goal: np.ndarray, stamp) -> None:
        try:
            score = self.policy.score(obs, goal)
        except FloatingPointError as exc:
            self.get_logger().error(f"goal score: {exc}", throttle_duration_sec=2.0)
            score = None
        if score is not None:
            self.score_pub.publish(Float32(data=float(score)))
            self._update_goal_hold(float(score), goal)
        if self.debug and self.debug_pub.get_subscription_count() > 0:
            self.debug_pub.publish(common.image_msg(debug_image(obs, goal, score, self.debug_scale), stamp, "debug"))

    # --- goal reached: hold_on_goal ------------------------------------------------------------
    def _setup_goal_hold(self, enabled: bool, ticks: int) -> None:
        """goal_reached (latched) and, with hold_on_goal, the model's calibrated threshold;
        a model without one is refused here, at start, rather than never holding."""
        from crl_ros.learning.calibration import GoalCalibration

        self.goal_reached_pub = self.create_publisher(Bool, "goal_reached", common.latched_qos())
        self.hold_on_goal = enabled
        self._hold_lock = threading.Lock()  # step() and the follow-up thread: no action after the decision
        self._goal_reached = False
        self._scores_above = 0
        self.counts["holding"] = 0
        self.goal_threshold: float | None = None
        self.hold_ticks = 0
        if not enabled:
            return
        if ticks < 0:
            raise ValueError(f"policy_node: hold_ticks must be >= 0 (0 = the model's), got {ticks}")
        calibration = GoalCalibration.from_meta(getattr(getattr(self.policy, "meta", None), "calibration", None))
        if calibration is None:
            raise ValueError("policy_node: hold_on_goal is true but the model has no goal-reached threshold; "
                             "calibrate it first (crl calibrate --model MODEL, README 'Knowing the goal is "
                             "reached') or set hold_on_goal:=false")
        self.goal_threshold = calibration.threshold
        self.hold_ticks = ticks or calibration.ticks
        self.get_logger().info(f"hold_on_goal: holding once the goal score is >= {self.goal_threshold:+.3f} "
                               f"for {self.hold_ticks} scores")

    def _reset_goal_hold(self) -> None:
        """A new (or cleared) goal: not reached, act again."""
        with self._hold_lock:
            self._goal_reached = False
            self._scores_above = 0
        self.goal_reached_pub.publish(Bool(data=False))

    def _update_goal_hold(self, score: float, goal: np.ndarray) -> None:
        """Count the scores at or above the threshold in a row; at hold_ticks, stop acting and
        say goal_reached. A score computed for a goal that has since been replaced counts for nothing."""
        if not self.hold_on_goal or goal is not self.goal:
            return
        with self._hold_lock:
            if self._goal_reached:
                return
            self._scores_above = self._scores_above + 1 if score >= self.goal_threshold else 0
            if self._scores_above < self.hold_ticks:
                return
            self._goal_reached = True
        self.goal_reached_pub.publish(Bool(data=True))
        self.get_logger().info(f"goal reached: score {score:+.2f} >= {self.goal_threshold:+.2f} for "
                               f"{self.hold_ticks} scores; holding (no more actions until a new goal)")

    def close(self) -> None:
        """Stop the follow-up thread after the job in hand (run_node and the bringups call this)."""
        if self._follow_up_thread is not None and self._follow_up_thread.is_alive():
            self._queue_follow_up(None)
            self._follow_up_thread.join(10)

    def destroy_node(self) -> None:
        self.close()
        super().destroy_node()


def debug_image(obs: np.ndarray, goal: np.ndarray, score: float | None, scale: int = 4) -> np.ndarray:
    """goal | observation, upscaled, captioned; the goal score is the observation's caption."""
    return camera.goal_beside_view(goal, obs, scale=scale,
                                   view_label="camera, score n/a" if score is None else f"camera, score {score:+.2f}")


def main(args=None) -> int:
    return common.run_node(PolicyNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
