"""The 7-D end-effector delta action convention."""
import numpy as np
import pytest

from crl_ros.robot import actions, kinematics as kin


def start_joints():
    q, ok = kin.ik(kin.xyzrpy_to_pose(actions.DEFAULT_START_XYZRPY), np.array([0, -0.3, 0.3, 0, 0.3, 0]))
    assert ok
    return q


def test_bounds_and_names():
    assert actions.ACTION_NAMES == ["dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper"]
    np.testing.assert_allclose(actions.ACTION_HIGH, [0.05] * 3 + [0.25] * 3 + [1.0])
    np.testing.assert_allclose(actions.ACTION_LOW, [-0.05] * 3 + [-0.25] * 3 + [0.0])


def test_clip_action_clips_and_rejects_nan():
    clipped = actions.clip_action(np.array([1.0, -1.0, 0.01, 2.0, -2.0, 0.1, 3.0]))
    np.testing.assert_allclose(clipped, [0.05, -0.05, 0.01, 0.25, -0.25, 0.1, 1.0])
    with pytest.raises(ValueError):
        actions.clip_action(np.array([np.nan, 0, 0, 0, 0, 0, 1]))
    with pytest.raises(ValueError):
        actions.clip_action(np.zeros(6))


def test_translation_delta_moves_the_ee_by_that_much():
    q = start_joints()
    q_target, gripper, info = actions.apply_ee_delta(q, np.array([0.03, -0.02, 0.01, 0, 0, 0, 0.4]))
    assert info["ik_success"] and not info["clamped"]
    before, after = kin.fk(q), kin.fk(q_target)
    np.testing.assert_allclose(after[:3, 3] - before[:3, 3], [0.03, -0.02, 0.01], atol=1.5e-3)
    np.testing.assert_allclose(after[:3, :3], before[:3, :3], atol=2e-2)
    assert gripper == pytest.approx(0.4)


def test_rotation_delta_is_about_the_base_axes():
    q = start_joints()
    q_target, _, info = actions.apply_ee_delta(q, np.array([0, 0, 0, 0, 0.2, 0, 1.0]))
    assert info["ik_success"]
    rpy = kin.matrix_to_rpy(kin.fk(q_target)[:3, :3])
    np.testing.assert_allclose(rpy, [0, 0.2, 0], atol=2e-2)
    np.testing.assert_allclose(kin.fk(q_target)[:3, 3], actions.DEFAULT_START_XYZRPY[:3], atol=1.5e-3)


def test_out_of_bounds_actions_are_clipped_before_use():
    q = start_joints()
    q_big, _, _ = actions.apply_ee_delta(q, np.array([0.5, 0, 0, 0, 0, 0, 1]))
    q_max, _, _ = actions.apply_ee_delta(q, np.array([0.05, 0, 0, 0, 0, 0, 1]))
    np.testing.assert_allclose(q_big, q_max, atol=1e-6)


def test_workspace_clamp_keeps_the_target_inside_the_box():
    q = start_joints()
    for _ in range(8):  # keep pushing up: z must stop at the ceiling 0.18
        q, _, info = actions.apply_ee_delta(q, np.array([0, 0, 0.05, 0, 0, 0, 1]))
    assert info["clamped"]
    assert kin.fk(q)[2, 3] == pytest.approx(actions.WORKSPACE_XYZ[1, 2], abs=2e-3)
    pose, clamped = actions.clamp_workspace(kin.xyzrpy_to_pose(np.array([0.6, -0.4, -0.3, 0.3, 0.2, 2.0])))
    assert clamped
    np.testing.assert_allclose(pose[:3, 3], [0.45, -0.15, -0.1])
    np.testing.assert_allclose(kin.matrix_to_rpy(pose[:3, :3]), [0.3, 0.2, 1.57], atol=1e-9)
    inside = kin.xyzrpy_to_pose(np.array([0.3, 0.0, 0.1, 0.1, 1.4, 0.2]))
    pose, clamped = actions.clamp_workspace(inside)
    assert not clamped and np.array_equal(pose, inside)


def test_joint_motion_per_step_respects_velocity_limits():
    q = start_joints()
    # a half-turn of roll asks wrist joints to move far; the per-step move must be bounded
    q_target, _, info = actions.apply_ee_delta(q, np.array([0, 0, 0, 0.25, 0, 0, 1]), step_seconds=0.05)
    assert np.all(np.abs(q_target - q) <= kin.VELOCITY_LIMITS * 0.05 + 1e-12)
    assert info["velocity_limited"]
