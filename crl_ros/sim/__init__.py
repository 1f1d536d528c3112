"""Simulated environments. Kept light: suites load on demand, so importing the numpy-only
point-mass suite never imports MuJoCo."""
from __future__ import annotations


def make(task: str = "pick_place_table", image_size: int = 48, **kwargs):
    """The simulated WidowX 250 env for ``task`` (a gymnasium.Env; see crl_ros.sim.widowx)."""
    from crl_ros.sim.widowx import make_env

    return make_env(task, image_size=image_size, **kwargs)
