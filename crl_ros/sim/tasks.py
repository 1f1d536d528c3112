"""The WidowX task family: for each task, how a start scene and its goal scene are drawn
from a seed, and the state-based success check.

A `Scene` is the movable state of the world in task terms (ee position, gripper, block,
object, drawer opening). A task draws ``(start, goal)`` from one random generator, so a
seed fixes both; the goal image is a render of the goal scene. Success is checked on the
simulator's state only (never on images). numpy only: the simulator applies scenes.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np

from crl_ros.sim import widowx_model as model

#: gripper pointing almost straight down (pitch just inside the +-1.57 workspace limit)
TOP_DOWN_RPY = np.array([0.0, 1.5, 0.0])
START_EE = np.array([0.12, 0.0, 0.18])  # rest pose: near the base, out of the way of the camera
START_JITTER = 0.02

# where the block and the object rest while a task does not use them: out of every path
BLOCK_PARKED = np.array([0.13, 0.20])
OBJECT_PARKED = np.array([0.15, -0.10])

DRAWER_OPEN_ENOUGH = 0.075   # m; the slide travels model.DRAWER_TRAVEL
DRAWER_CLOSED_ENOUGH = 0.02
PUSH_TOLERANCE = 0.03
REACH_TOLERANCE = 0.03
#: the block is clear of the opening drawer and its handle when its centre is at y below this
BLOCK_CLEAR_OF_DRAWER_Y = model.DRAWER_Y - (model.DRAWER_INNER[1] / 2 + model.DRAWER_WALL) - model.BLOCK_HALF - 0.005


@dataclass
class Scene:
    """Movable state: ee position (orientation is TOP_DOWN_RPY), gripper opening in [0, 1],
    block centre xy (it rests on the table), object centre xyz, drawer opening (m)."""
    ee_xyz: np.ndarray = field(default_factory=lambda: START_EE.copy())
    gripper: float = 1.0
    block_xy: np.ndarray = field(default_factory=lambda: BLOCK_PARKED.copy())
    object_xyz: np.ndarray = field(default_factory=lambda: np.array([*OBJECT_PARKED, model.OBJECT_HALF]))
    drawer: float = 0.0


@dataclass
class SceneReading:
    """What success checks read from the simulator."""
    ee_xyz: np.ndarray
    block_xy: np.ndarray
    object_xyz: np.ndarray
    drawer: float
    holding_object: bool


def object_in_drawer_xyz(drawer_opening: float, offset_xy=(0.0, 0.0)) -> np.ndarray:
    """Object centre resting on the drawer floor, ``offset_xy`` from the middle of the
    part of the drawer that is outside the cabinet when fully open."""
    front = model.DRAWER_FRONT_X - drawer_opening
    x = front + model.DRAWER_WALL + 0.045 + offset_xy[0]
    return np.array([x, model.DRAWER_Y + offset_xy[1], 0.0085 + model.OBJECT_HALF])


def object_in_tray(reading: SceneReading) -> bool:
    (cx, cy), (hx, hy) = model.TRAY_CENTER, model.TRAY_HALF
    x, y, z = reading.object_xyz
    inside = abs(x - cx) < hx - 0.008 and abs(y - cy) < hy - 0.008
    return bool(inside and z < 0.05 and not reading.holding_object)


def tray_drop_xyz(rng: np.random.Generator) -> np.ndarray:
    cx, cy = model.TRAY_CENTER
    return np.array([cx + rng.uniform(-0.02, 0.02), cy + rng.uniform(-0.01, 0.01), 0.004 + model.OBJECT_HALF])


@dataclass(frozen=True)
class Task:
    name: str
    description: str
    max_episode_steps: int
    #: rng -> (start scene, goal scene)
    sample: Callable[[np.random.Generator], tuple[Scene, Scene]]
    #: (reading of the simulator, goal scene) -> success
    success: Callable[[SceneReading, Scene], bool]


def _start(rng: np.random.Generator, **overrides) -> Scene:
    """A start scene: arm near START_EE, gripper open, unused things parked (with jitter)."""
    scene = Scene(
        ee_xyz=START_EE + rng.uniform(-START_JITTER, START_JITTER, 3),
        block_xy=BLOCK_PARKED + rng.uniform(-0.01, 0.01, 2),
        object_xyz=np.array([*(OBJECT_PARKED + rng.uniform(-0.01, 0.01, 2)), model.OBJECT_HALF]),
    )
    return replace(scene, **overrides)


def _goal(start: Scene, **changes) -> Scene:
    """The goal scene: the start with ``changes``, the arm back at START_EE, gripper open."""
    return replace(start, ee_xyz=START_EE.copy(), gripper=1.0, **changes)


REACH_MIN_DISTANCE = 0.10
#: where reach goals are drawn (m): low and high corners of a box
REACH_WORKSPACE = (np.array([0.15, -0.12, 0.10]), np.array([0.40, 0.20, 0.17]))
#: reach_near (data only): the start is this far from the goal position, in a random direction
REACH_NEAR_DISTANCE = (0.03, 0.09)


def _sample_reach(rng):
    start = _start(rng)
    target = start.ee_xyz
    while np.linalg.norm(target - start.ee_xyz) < REACH_MIN_DISTANCE:  # goals worth reaching for
        target = rng.uniform(*REACH_WORKSPACE)
    return start, replace(start, ee_xyz=target)


def _reached(reading, goal) -> bool:
    return bool(np.linalg.norm(reading.ee_xyz - goal.ee_xyz) < REACH_TOLERANCE)


def _sample_reach_near(rng):
    """A reach goal as in `reach`, with the arm starting 3-9 cm from it in any direction: the
    near misses a policy must correct from, which `reach` demonstrations (straight approaches
    from the rest pose, ended within 1.2 cm) hardly show."""
    target = rng.uniform(*REACH_WORKSPACE)
    direction = rng.normal(size=3)
    offset = direction / np.linalg.norm(direction) * rng.uniform(*REACH_NEAR_DISTANCE)
    start = _start(rng, ee_xyz=np.clip(target + offset, *REACH_WORKSPACE))
    return start, replace(start, ee_xyz=target)


def _sample_push_block(rng):
    block = rng.uniform([0.20, -0.02], [0.26, 0.03])
    start = _start(rng, block_xy=block)
    direction = rng.choice([-1.0, 1.0])
    goal_block = block + np.array([direction * rng.uniform(0.08, 0.10), 0.0])
    return start, _goal(start, block_xy=goal_block)


def _sample_open_drawer(rng):
    start = _start(rng, drawer=rng.uniform(0.0, 0.01))
    return start, _goal(start, drawer=model.DRAWER_TRAVEL)


def _sample_close_drawer(rng):
    start = _start(rng, drawer=rng.uniform(0.09, model.DRAWER_TRAVEL))
    return start, _goal(start, drawer=0.0)


def _sample_pick_place_table(rng):
    start = _start(rng, object_xyz=np.array([*rng.uniform([0.17, -0.08], [0.22, -0.01]), model.OBJECT_HALF]))
    return start, _goal(start, object_xyz=tray_drop_xyz(rng))


def _sample_push_block_open_drawer(rng):
    block = np.array([rng.uniform(0.22, 0.25), model.DRAWER_Y + rng.uniform(-0.01, 0.01)])
    start = _start(rng, block_xy=block, drawer=rng.uniform(0.0, 0.01))
    goal_block = np.array([block[0], BLOCK_CLEAR_OF_DRAWER_Y - 0.02])
    return start, _goal(start, block_xy=goal_block, drawer=model.DRAWER_TRAVEL)


def _sample_pick_drawer_place_tray_close(rng):
    drawer = model.DRAWER_TRAVEL
    start = _start(rng, drawer=drawer, object_xyz=object_in_drawer_xyz(drawer, rng.uniform(-0.01, 0.01, 2)))
    return start, _goal(start, drawer=0.0, object_xyz=tray_drop_xyz(rng))


TASK_LIST = [
    Task("reach", "move the gripper to the goal position", 40, _sample_reach, _reached),
    Task("push_block", "push the red block to the goal position", 60, _sample_push_block,
         lambda r, g: bool(np.linalg.norm(r.block_xy - g.block_xy) < PUSH_TOLERANCE)),
    Task("open_drawer", "pull the drawer open by its handle", 60, _sample_open_drawer,
         lambda r, g: r.drawer > DRAWER_OPEN_ENOUGH),
    Task("close_drawer", "push the drawer shut", 60, _sample_close_drawer,
         lambda r, g: r.drawer < DRAWER_CLOSED_ENOUGH),
    Task("pick_place_table", "pick the yellow cube from the table and place it in the tray", 80,
         _sample_pick_place_table, lambda r, g: object_in_tray(r)),
    Task("push_block_open_drawer", "push the block out of the drawer's way, then open the drawer", 120,
         _sample_push_block_open_drawer,
         lambda r, g: bool(r.block_xy[1] < BLOCK_CLEAR_OF_DRAWER_Y and r.drawer > DRAWER_OPEN_ENOUGH)),
    Task("pick_drawer_place_tray_close", "take the cube from the open drawer, place it in the tray, "
         "close the drawer", 150, _sample_pick_drawer_place_tray_close,
         lambda r, g: object_in_tray(r) and r.drawer < DRAWER_CLOSED_ENOUGH),
]
TASKS_BY_NAME = {task.name: task for task in TASK_LIST}

PLAY_TASK_NAME = "play"


def _sample_play(rng):
    """A random arrangement for play data; its 'goal' is another random arrangement (play
    episodes have no goal: the data is relabelled with future frames in training)."""
    def arrangement():
        drawer = float(rng.choice([0.0, model.DRAWER_TRAVEL]))
        if drawer == 0.0 and rng.random() < 0.4:  # in front of the closed drawer
            block = np.array([rng.uniform(0.22, 0.25), model.DRAWER_Y + rng.uniform(-0.01, 0.01)])
        else:
            block = rng.uniform([0.18, -0.02], [0.30, 0.03])
        if drawer > 0 and rng.random() < 0.4:
            obj = object_in_drawer_xyz(drawer, rng.uniform(-0.01, 0.01, 2))
        else:
            obj = np.array([*rng.uniform([0.15, -0.11], [0.20, -0.08]), model.OBJECT_HALF])
        return _start(rng, block_xy=block, object_xyz=obj, drawer=drawer)
    start = arrangement()
    return start, arrangement()


#: data-only tasks: demonstrations can be recorded for them (`crl demos --task reach_near`),
#: evaluation never uses them
DATA_TASK_LIST = [
    Task("reach_near", "reach: move the gripper to the goal position from 3-9 cm away (data only)", 20,
         _sample_reach_near, _reached),
]
DATA_TASKS_BY_NAME = {task.name: task for task in DATA_TASK_LIST}

PLAY_TASK = Task(PLAY_TASK_NAME, "play: a random sequence of sub-skills (no goal, never succeeds)", 100,
                 _sample_play, lambda r, g: False)


def get_task(name: str) -> Task:
    """The task called ``name``: one of TASKS_BY_NAME or the play task."""
    if name == PLAY_TASK_NAME:
        return PLAY_TASK
    if name in DATA_TASKS_BY_NAME:
        return DATA_TASKS_BY_NAME[name]
    if name not in TASKS_BY_NAME:
        raise ValueError(f"unknown widowx task {name!r}; choose one of {list(TASKS_BY_NAME)}, "
                         f"{PLAY_TASK_NAME!r} or (data only) {list(DATA_TASKS_BY_NAME)}")
    return TASKS_BY_NAME[name]
