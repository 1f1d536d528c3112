"""Simulated environment suites behind one interface, for `crl demos` and `crl eval`.

A suite is a module exposing:

- ``TASKS: list[str]`` and ``DEFAULT_TASK: str``
- ``make_env(task, image_size=48, seed=None, **kwargs) -> gymnasium.Env`` whose observation
  is a dict with ``"image"`` (uint8 [H, W, 3]) and ``"state"`` (float32), whose ``reset``
  info holds ``"goal_image"`` (uint8 [H, W, 3]) and ``"success"``, whose ``step`` info holds
  ``"success"``, and which has attributes ``control_rate_hz``, ``max_episode_steps`` and
  ``action_names``; ``action_space`` is a Box with the valid action bounds.
- ``scripted_policy(env, rng, noise=...) -> object`` with ``reset()`` and
  ``act(obs) -> np.ndarray``: a (noisy) expert for the env's current task/goal.
- ``play_tasks``: the task list a "play" dataset mixes (may equal TASKS).
"""
from __future__ import annotations

import importlib
from types import ModuleType

SUITES = {
    "pointmass": "crl_ros.sim.pointmass",
    "widowx": "crl_ros.sim.widowx",
}


def get_suite(name: str) -> ModuleType:
    if name not in SUITES:
        raise ValueError(f"unknown env suite {name!r}; choose one of {sorted(SUITES)}")
    return importlib.import_module(SUITES[name])


def task_names(name: str, play: bool = False) -> list[str]:
    """A suite's task names (with ``play``: and its play task names) for help texts and
    argument choices, without loading the simulator (the CLI builds every parser)."""
    if name == "widowx":
        from crl_ros.sim import tasks  # the WidowX task table; crl_ros.sim.widowx would load MuJoCo
        return [task.name for task in tasks.TASK_LIST] + ([tasks.PLAY_TASK_NAME] if play else [])
    suite = get_suite(name)
    return list(suite.TASKS) + (list(suite.play_tasks) if play else [])


def tasks_help(play: bool = False) -> str:
    """'pointmass: a, b; widowx: c, d': every suite's tasks, for --task help."""
    return "; ".join(f"{name}: {', '.join(task_names(name, play))}" for name in SUITES)
