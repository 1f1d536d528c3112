"""Images for the arm matching analysis: the start and goal scenes of a task, and two
hybrids: the goal's arm with the start's objects, and the start's arm with the goal's objects."""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from crl_ros.sim import tasks as task_defs

#: tasks whose goal is about objects (in `reach` only the arm moves)
OBJECT_TASKS = [task.name for task in task_defs.TASK_LIST if task.name != "reach"]

_SIMS: dict = {}


def _sim():
    from crl_ros.sim.widowx_sim import WidowXSim
    if "sim" not in _SIMS:
        _SIMS["sim"] = WidowXSim()
    return _SIMS["sim"]


def arm_matching_images(task: str, seed: int, size: int = 48) -> dict[str, np.ndarray]:
    """uint8 [size, size, 3] images: start, goal, arm_matches, objects_match."""
    sim = _sim()
    sim.reset(task, seed=seed)
    start, goal = sim.start_scene, sim.goal_scene
    scenes = {
        "start": start,
        "goal": goal,
        "arm_matches": replace(start, ee_xyz=goal.ee_xyz.copy(), gripper=goal.gripper),
        "objects_match": replace(goal, ee_xyz=start.ee_xyz.copy(), gripper=start.gripper),
    }
    images = {}
    for name, scene in scenes.items():
        sim.set_scene(scene)
        images[name] = sim.render(size, size)
    sim.set_scene(start)
    return images
