"""Scripted demonstrations for the WidowX suite: noisy experts per task, and play data.

A *skill* (reach, push, open/close drawer, pick, place) looks at the simulator's state
when it starts and returns waypoints for the end effector; a `WaypointPolicy` follows
them with a proportional controller in the 7-D action convention and adds Gaussian
noise. Per-task experts run a fixed list of skills; the play policy keeps drawing
random skills whose preconditions hold, so play episodes string sub-skills together
without task labels, like the paper's data.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from crl_ros.robot import actions, kinematics
from crl_ros.sim import tasks as task_defs
from crl_ros.sim import widowx_model as model

DEFAULT_NOISE = 0.1          # noise std as a fraction of the action bounds (translation, rotation)
POSITION_GAIN = 1.0          # action = gain * remaining error, then clipped
ROTATION_NOISE_SCALE = 0.3   # rotation noise is smaller: the tasks need no wrist motion
SAFE_HEIGHT = 0.12           # ee height for moving between skills, above cabinet and objects
FINGER_HALF_WIDTH_X = model.FINGER_HALF[2]    # closed fingers' extent along x when pointing down
CLOSED_FINGERS_HALF_Y = kinematics.FINGER_LIMITS[0] + 2 * model.FINGER_HALF[1]


@dataclass
class Waypoint:
    xyz: np.ndarray
    gripper: float
    tolerance: float = 0.012   # m: reached when closer than this
    hold_steps: int = 0        # steps to stay once reached (e.g. to let the gripper close)
    max_steps: int = 20        # move on after this many steps even if not reached


#: sim (a crl_ros.sim.widowx_sim.WidowXSim) -> waypoints, planned from the state when the skill starts
Skill = Callable[[object], list[Waypoint]]


# -- skills -------------------------------------------------------------------------------
def move_to(xyz, gripper: float = 1.0) -> Skill:
    def waypoints(sim) -> list[Waypoint]:
        return [Waypoint(np.asarray(xyz, float), gripper, hold_steps=1)]
    return waypoints


def _above(xy) -> np.ndarray:
    """The point at SAFE_HEIGHT over ``xy``."""
    return np.array([xy[0], xy[1], SAFE_HEIGHT])


def _lift(sim, gripper: float) -> Waypoint:
    return Waypoint(_above(sim.ee_pose()[:3, 3]), gripper, tolerance=0.02)


def pick_object(sim) -> list[Waypoint]:
    obj = sim.object_xyz()
    return [
        _lift(sim, 1.0),
        Waypoint(_above(obj), 1.0, tolerance=0.008),
        Waypoint(obj.copy(), 1.0, tolerance=0.006),
        Waypoint(obj.copy(), 0.0, hold_steps=2, tolerance=0.01),
        Waypoint(_above(obj), 0.0, tolerance=0.02),
    ]


def place_object_at(xyz) -> Skill:
    target = np.asarray(xyz, float)

    def waypoints(sim) -> list[Waypoint]:
        return [
            Waypoint(_above(target), 0.0, tolerance=0.01),
            Waypoint(target + [0, 0, 0.015], 0.0, tolerance=0.01),
            Waypoint(target + [0, 0, 0.015], 1.0, hold_steps=1, tolerance=0.02),
            Waypoint(_above(target), 1.0, tolerance=0.02),
        ]
    return waypoints


def push_block_to(goal_xy) -> Skill:
    """Push the block along the straight line from where it is to ``goal_xy`` with the
    closed fingers, approaching from behind it."""
    goal_xy = np.asarray(goal_xy, float)

    def waypoints(sim) -> list[Waypoint]:
        block = sim.block_xy()
        direction = goal_xy - block
        direction /= np.linalg.norm(direction) + 1e-9
        # how far the closed fingers reach towards the block along the push direction
        reach = abs(direction[0]) * FINGER_HALF_WIDTH_X + abs(direction[1]) * CLOSED_FINGERS_HALF_Y
        standoff = model.BLOCK_HALF + reach + 0.005
        behind = block - direction * (standoff + 0.015)
        end = goal_xy - direction * standoff
        z = model.BLOCK_HALF * 0.8
        return [
            _lift(sim, 0.0),
            Waypoint(_above(behind), 0.0, tolerance=0.01),
            Waypoint(np.array([*behind, z]), 0.0, tolerance=0.008),
            Waypoint(np.array([*end, z]), 0.0, tolerance=0.006, max_steps=30),
            Waypoint(_above(end - direction * 0.03), 0.0, tolerance=0.02),
        ]
    return waypoints


def _handle_slot_xy(drawer_opening: float) -> np.ndarray:
    """Middle of the gap between the handle bar and the drawer face."""
    face_x = model.DRAWER_FRONT_X - drawer_opening
    return np.array([face_x - model.HANDLE_OFFSET / 2 + 0.003, model.DRAWER_Y])


def move_drawer_to(opening: float) -> Skill:
    """Put the closed fingers between the handle and the drawer face, then pull (open) or
    push (close) the drawer to ``opening``."""
    def waypoints(sim) -> list[Waypoint]:
        slot = _handle_slot_xy(sim.drawer_opening())
        # overshoot a little: the slide's end stops do the rest
        end = _handle_slot_xy(opening) + [-0.01 if opening > sim.drawer_opening() else 0.01, 0.0]
        z = model.HANDLE_HEIGHT
        return [
            _lift(sim, 0.0),
            Waypoint(_above(slot), 0.0, tolerance=0.008),
            Waypoint(np.array([*slot, z]), 0.0, tolerance=0.008),
            Waypoint(np.array([*end, z]), 0.0, tolerance=0.008, max_steps=25),
            Waypoint(_above(end), 0.0, tolerance=0.02),
        ]
    return waypoints


def return_to_start(sim) -> list[Waypoint]:
    return [Waypoint(task_defs.START_EE.copy(), 1.0, tolerance=0.015, hold_steps=1)]


# -- per-task experts ---------------------------------------------------------------------
def expert_skills(sim) -> list[Skill]:
    """The skill sequence that solves the sim's current task from its start scene."""
    goal = sim.goal_scene
    name = sim.task.name
    if name in ("reach", "reach_near"):
        return [move_to(goal.ee_xyz)]
    if name == "push_block":
        return [push_block_to(goal.block_xy), return_to_start]
    if name in ("open_drawer", "close_drawer"):
        return [move_drawer_to(goal.drawer), return_to_start]
    if name == "pick_place_table":
        return [pick_object, place_object_at(goal.object_xyz), return_to_start]
    if name == "push_block_open_drawer":
        return [push_block_to(goal.block_xy), move_drawer_to(goal.drawer), return_to_start]
    if name == "pick_drawer_place_tray_close":
        return [pick_object, place_object_at(goal.object_xyz), move_drawer_to(goal.drawer), return_to_start]
    raise ValueError(f"no scripted expert for task {name!r}")


# -- play ---------------------------------------------------------------------------------
def _block_in_front_of_drawer(sim) -> bool:
    x, y = sim.block_xy()
    return y > task_defs.BLOCK_CLEAR_OF_DRAWER_Y and x < model.DRAWER_FRONT_X


#: probability that a play plan that changes the scene ends with the arm back at rest: goal
#: images show the changed scene with the arm at rest (crl_ros.sim.tasks), so the data needs
#: frames of that kind as future goals of the manipulation that led to them
PLAY_RETURN_PROB = 0.5


def feasible_play_plans(sim, rng: np.random.Generator) -> list[list[Skill]]:
    """Skill sequences that make sense from the current state (their preconditions hold).
    A plan that changes the scene ends with `return_to_start` with probability PLAY_RETURN_PROB."""
    plans = _manipulation_plans(sim, rng)
    if rng.random() < PLAY_RETURN_PROB:
        plans = [plan + [return_to_start] for plan in plans]
    return [[move_to(rng.uniform([0.15, -0.12, 0.06], [0.40, 0.20, 0.17]))]] + plans


def _manipulation_plans(sim, rng: np.random.Generator) -> list[list[Skill]]:
    plans: list[list[Skill]] = []
    block = sim.block_xy()
    drawer = sim.drawer_opening()
    if _block_in_front_of_drawer(sim):
        plans.append([push_block_to([block[0], task_defs.BLOCK_CLEAR_OF_DRAWER_Y - rng.uniform(0.01, 0.03)])])
    else:
        if 0.17 < block[0] < 0.31 and -0.04 < block[1] < 0.05:  # in the open area in front of the robot
            push_x = block[0] + rng.choice([-1.0, 1.0]) * rng.uniform(0.05, 0.09)
            plans.append([push_block_to([np.clip(push_x, 0.16, 0.32), block[1]])])
        plans.append([move_drawer_to(0.0 if drawer > model.DRAWER_TRAVEL / 2 else model.DRAWER_TRAVEL)])
    obj = sim.object_xyz()
    in_drawer = obj[0] > model.DRAWER_FRONT_X - drawer - 0.01 and abs(obj[1] - model.DRAWER_Y) < 0.06
    if not in_drawer or drawer > model.DRAWER_TRAVEL - 0.02:  # reachable
        if task_defs.object_in_tray(sim.reading()) or rng.random() < 0.3:
            place = np.array([*rng.uniform([0.15, -0.11], [0.20, -0.08]), model.OBJECT_HALF])
        else:
            place = task_defs.tray_drop_xyz(rng)
        plans.append([pick_object, place_object_at(place)])
    return plans


# -- the policy ---------------------------------------------------------------------------
class WaypointPolicy:
    """Follows skills' waypoints with a P controller in the 7-D action space, plus noise.

    ``next_plans(sim, rng)`` offers skill sequences to choose from at random when the
    queue runs dry (play); without it the policy holds still once its skills are done.
    Each skill is expanded into waypoints when it starts, from the state at that time.
    """

    def __init__(self, sim, rng: np.random.Generator, noise: float, skills: list[Skill],
                 next_plans: Callable | None = None):
        self.sim = sim
        self.rng = rng
        self.noise = float(noise)
        self.initial_skills = list(skills)
        self.next_plans = next_plans
        self.target_rotation = kinematics.rpy_to_matrix(*task_defs.TOP_DOWN_RPY)
        self.reset()

    @property
    def done(self) -> bool:
        """True once a policy without ``next_plans`` has followed all its skills (it holds still)."""
        return self.next_plans is None and not self._queue and not self._waypoints

    def reset(self) -> None:
        self._queue: list = list(self.initial_skills)
        self._waypoints: list = []
        self._steps_on_waypoint = 0
        self._held = 0
        self._gripper = 1.0

    def _current_waypoint(self) -> Waypoint | None:
        while not self._waypoints:
            if not self._queue and self.next_plans is not None:
                plans = self.next_plans(self.sim, self.rng)
                self._queue.extend(plans[self.rng.integers(len(plans))])
            if not self._queue:
                return None
            self._waypoints = self._queue.pop(0)(self.sim)
        return self._waypoints[0]

    def act(self, obs=None) -> np.ndarray:
        pose = self.sim.ee_pose()
        waypoint = self._current_waypoint()
        action = np.zeros(actions.ACTION_DIM)
        if waypoint is None:
            action[6] = self._gripper
            return action.astype(np.float32)
        error = waypoint.xyz - pose[:3, 3]
        action[:3] = POSITION_GAIN * error
        action[3:6] = kinematics.rotation_log(self.target_rotation @ pose[:3, :3].T)
        action[6] = self._gripper = waypoint.gripper
        self._steps_on_waypoint += 1
        if np.linalg.norm(error) < waypoint.tolerance:
            self._held += 1
        if self._held > waypoint.hold_steps or self._steps_on_waypoint >= waypoint.max_steps:
            self._waypoints.pop(0)
            self._steps_on_waypoint = self._held = 0
        noise = self.rng.normal(size=6) * self.noise * actions.ACTION_HIGH[:6]
        noise[3:] *= ROTATION_NOISE_SCALE
        action[:6] += noise
        return actions.clip_action(action).astype(np.float32)


def make_policy(sim, rng: np.random.Generator, noise: float = DEFAULT_NOISE) -> WaypointPolicy:
    """The scripted expert of the sim's task, or the play policy for the play task."""
    if sim.task.name == task_defs.PLAY_TASK_NAME:
        return WaypointPolicy(sim, rng, noise, [], next_plans=feasible_play_plans)
    return WaypointPolicy(sim, rng, noise, expert_skills(sim))
