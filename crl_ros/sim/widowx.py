"""The simulated WidowX 250 suite (see crl_ros.sim.suites): tasks, a gymnasium env,
scripted experts and play data.

Env: the action is the 7-D end-effector delta of crl_ros.robot.actions, turned into
joint targets by `apply_ee_delta` (from the measured joints) and tracked by the
position actuators for 0.2 s of simulated time. Observation: ``"image"`` (uint8
[S, S, 3] from the over-the-shoulder camera) and ``"state"`` (float32, STATE_NAMES:
six joint angles, ee x y z roll pitch yaw, gripper opening). ``reset`` info holds
``"goal_image"`` and ``"success"``, ``step`` info ``"success"``; an episode terminates
on success and is truncated after ``max_episode_steps``. ``options={"task": name}`` in
``reset`` switches the task. With ``shift`` (a crl_ros.sim.shifts.ShiftSpec) every reset
draws that episode's shift from its seed and applies it (reset info ``"shift"``: the draw).
"""
from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from crl_ros.robot import actions, kinematics
from crl_ros.sim import scripted
from crl_ros.sim.shifts import ShiftSpec
from crl_ros.sim.tasks import DATA_TASK_LIST, PLAY_TASK_NAME, TASK_LIST
from crl_ros.sim.widowx_sim import SUPERSAMPLE, WidowXSim

TASKS = [task.name for task in TASK_LIST]
DEFAULT_TASK = "pick_place_table"
#: play data mixes every sub-skill in one randomised scene (see crl_ros.sim.scripted.PlayPolicy)
play_tasks = [PLAY_TASK_NAME]
#: tasks recorded for training data only (never evaluated): `crl demos --task reach_near`
data_tasks = [task.name for task in DATA_TASK_LIST]
#: make_env takes ``shift=ShiftSpec`` (crl_ros.sim.shifts)
supports_shifts = True
#: agent-config overrides every training on this suite's data needs, whatever the profile:
#: WidowX end-effector deltas (metres, radians) and the gripper (0/1) differ in scale by ~25x,
#: so the policy std of 0.15 only means something per dimension on z-scored actions
#: (docs/algorithm.md, "Raw or normalised actions")
DATA_OVERRIDES = ["normalize_actions=true"]

STATE_NAMES = [*kinematics.JOINT_NAMES, "ee_x", "ee_y", "ee_z", "ee_roll", "ee_pitch", "ee_yaw", "gripper"]

__all__ = ["TASKS", "DEFAULT_TASK", "play_tasks", "data_tasks", "STATE_NAMES", "WidowXEnv", "WidowXSim",
           "make_env", "scripted_policy"]


class WidowXEnv(gym.Env):
    """Goal-image reaching on the simulated WidowX 250 (one task, goal drawn per reset seed)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": actions.CONTROL_RATE_HZ}
    control_rate_hz = actions.CONTROL_RATE_HZ
    action_names = list(actions.ACTION_NAMES)

    def __init__(self, task: str = DEFAULT_TASK, image_size: int = 48, seed: int | None = None,
                 max_episode_steps: int | None = None, camera: str = "overhead", render_size: int = 128,
                 supersample: int = SUPERSAMPLE, shift: ShiftSpec | None = None):
        self.shift = shift if shift else None  # an empty spec is the nominal world, built as today
        distractors = self.shift.max_distractors if self.shift else 0
        self.sim = WidowXSim(task, max_render_size=max(640, image_size, render_size), distractors=distractors)
        self.image_size = int(image_size)
        self.render_size = int(render_size)
        self.supersample = int(supersample)  # 1: direct small renders, faster but unlike camera_node's pixels
        self.camera = camera
        self.render_mode = "rgb_array"
        self._max_steps_override = max_episode_steps
        self.action_space = spaces.Box(actions.ACTION_LOW, actions.ACTION_HIGH, dtype=np.float32)
        self.observation_space = spaces.Dict({
            "image": spaces.Box(0, 255, (self.image_size, self.image_size, 3), np.uint8),
            "state": spaces.Box(-np.inf, np.inf, (len(STATE_NAMES),), np.float32),
        })
        self._seed_rng = np.random.default_rng(seed)
        self._steps = 0

    @property
    def task(self) -> str:
        return self.sim.task.name

    @property
    def max_episode_steps(self) -> int:
        return int(self._max_steps_override or self.sim.task.max_episode_steps)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is None:  # unseeded resets still follow the constructor's seed
            seed = int(self._seed_rng.integers(2 ** 31))
        if self.shift:
            self.sim.set_shift(self.shift.draw(seed))
        self.sim.reset((options or {}).get("task"), seed=seed)
        self._steps = 0
        nominal_goal = bool(self.shift) and self.shift.goal == "nominal"
        info = {"goal_image": self.sim.goal_image(self.image_size, self.image_size, self.camera, observation=True,
                                                   supersample=self.supersample, nominal=nominal_goal),
                "success": self.sim.success(), "task": self.task}
        if self.shift:
            info["shift"] = self.sim.shift
        return self._observation(), info

    def step(self, action):
        q_target, gripper, ik_info = actions.apply_ee_delta(self.sim.arm_joints(), np.asarray(action, np.float64))
        self.sim.set_joint_targets(q_target, gripper)
        self.sim.step(1.0 / self.control_rate_hz)
        self._steps += 1
        success = self.sim.success()
        info = {"success": success, "clamped": ik_info["clamped"], "ik_success": ik_info["ik_success"]}
        return self._observation(), float(success), success, self._steps >= self.max_episode_steps, info

    def render(self) -> np.ndarray:
        return self.sim.render(self.render_size, self.render_size, self.camera)

    def close(self) -> None:
        self.sim.close()

    def _observation(self) -> dict[str, np.ndarray]:
        pose = kinematics.pose_to_xyzrpy(self.sim.ee_pose())
        state = np.concatenate([self.sim.arm_joints(), pose, [self.sim.gripper_opening()]]).astype(np.float32)
        return {"image": self.sim.camera_image(self.image_size, self.camera, self.supersample), "state": state}


def make_env(task: str = DEFAULT_TASK, image_size: int = 48, seed: int | None = None, **kwargs: Any) -> WidowXEnv:
    """A WidowXEnv for ``task`` (one of TASKS, or "play"); kwargs go to WidowXEnv."""
    return WidowXEnv(task, image_size=image_size, seed=seed, **kwargs)


def scripted_policy(env: WidowXEnv, rng: np.random.Generator, noise: float = scripted.DEFAULT_NOISE):
    """The noisy scripted expert for the env's current task (the play policy for "play")."""
    return scripted.make_policy(env.unwrapped.sim, rng, noise)
