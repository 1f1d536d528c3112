"""How a trained policy's gripper command is executed: torch-free, so the arm node and the
simulator share the rule without importing the learning stack."""
from __future__ import annotations

import numpy as np

#: how `Policy` executes the action named "gripper" (see AgentConfig.eval_gripper)
GRIPPER_MODES = ("continuous", "binary")


def snap_gripper(value, low: float = 0.0, high: float = 1.0):
    """The ``binary`` gripper rule, the one place it is written: a command at or above the middle
    of [low, high] becomes ``high`` (open), below it ``low`` (closed). `value` is a float (a float
    comes back) or an array (an array of its shape comes back). `Policy`, the evaluation's
    `BinaryGripper` and the real arm's Interbotix backend (grasp/release) all use it."""
    snapped = np.where(np.asarray(value, dtype=np.float64) >= 0.5 * (low + high), high, low)
    return snapped if snapped.ndim else float(snapped)
