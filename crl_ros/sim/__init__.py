"""Simulated environments. Kept light: suites load on demand, so importing the numpy-only
point-mass suite never imports MuJoCo."""
from __future__ import annotations

import os

# Headless rendering unless the user chose a backend; MuJoCo reads this when first imported,
# and any crl_ros.sim import comes before the WidowX modules import MuJoCo.
os.environ.setdefault("MUJOCO_GL", "egl")


def make(task: str = "pick_place_table", image_size: int = 48, **kwargs):
    """The simulated WidowX 250 env for ``task`` (a gymnasium.Env; see crl_ros.sim.widowx)."""
    from crl_ros.sim.widowx import make_env

    return make_env(task, image_size=image_size, **kwargs)
