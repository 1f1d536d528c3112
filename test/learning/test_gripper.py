"""The binary gripper rule (crl_ros/learning/gripper.py), shared by Policy, the evaluation's
BinaryGripper and the arm node's Interbotix backend."""
import subprocess
import sys

import numpy as np

from crl_ros.learning.gripper import GRIPPER_MODES, snap_gripper
from crl_ros.sim.rollout import BinaryGripper


def test_snap_at_the_middle_of_the_bounds():
    assert snap_gripper(0.5) == 1.0 and snap_gripper(0.4999) == 0.0
    assert snap_gripper(-3.0) == 0.0 and snap_gripper(7.0) == 1.0
    assert isinstance(snap_gripper(0.7), float)
    # other bounds: the middle of [-1, 3] is 1
    assert snap_gripper(0.99, -1.0, 3.0) == -1.0 and snap_gripper(1.0, -1.0, 3.0) == 3.0
    out = snap_gripper(np.array([[0.1, 0.6], [0.5, 0.49]]))
    assert out.shape == (2, 2) and out.tolist() == [[0.0, 1.0], [1.0, 0.0]]
    assert GRIPPER_MODES == ("continuous", "binary")


def test_binary_gripper_wrapper_uses_the_env_bounds():
    class Env:
        action_names = ["x", "gripper"]

        class action_space:
            low = np.array([-1.0, -2.0])
            high = np.array([1.0, 2.0])

    wrapped = BinaryGripper(lambda obs, goal: np.array([0.3, 0.1]))
    wrapped.reset(Env())
    np.testing.assert_allclose(wrapped({}, None), [0.3, 2.0], rtol=1e-6)
    wrapped = BinaryGripper(lambda obs, goal: np.array([0.3, -0.1]))
    wrapped.reset(Env())
    np.testing.assert_allclose(wrapped({}, None), [0.3, -2.0], rtol=1e-6)


def test_the_rule_imports_no_torch():
    # the arm node imports it; the robot computer need not load PyTorch to drive the gripper
    code = "import sys, crl_ros.learning.gripper; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
