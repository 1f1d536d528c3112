"""Forward/inverse kinematics of the WidowX 250 6DOF against the published facts."""
import numpy as np
import pytest

from crl_ros.robot import kinematics as kin


def test_home_pose_matches_the_published_ee_frame():
    pose = kin.fk(np.zeros(6))
    np.testing.assert_allclose(pose[:3, 3], [0.458325, 0.0, 0.36065], atol=1e-9)
    np.testing.assert_allclose(pose[:3, :3], np.eye(3), atol=1e-9)


def test_single_joint_motions_rotate_about_the_documented_axes():
    # shoulder +90 deg about +y swings the arm from horizontal (pointing +x) to pointing down
    q = np.zeros(6)
    q[1] = np.pi / 2
    pose = kin.fk(q)
    # the shoulder axis passes through (0, 0, 0.11065): distance to the tip is preserved
    tip_home = np.array([0.458325, 0.0, 0.36065 - 0.11065])
    np.testing.assert_allclose(np.linalg.norm(pose[:3, 3] - [0, 0, 0.11065]), np.linalg.norm(tip_home), atol=1e-9)
    assert pose[2, 3] < 0.11065  # pointing downwards now
    # waist +90 deg turns the tip to +y
    q = np.zeros(6)
    q[0] = np.pi / 2
    np.testing.assert_allclose(kin.fk(q)[:3, 3], [0.0, 0.458325, 0.36065], atol=1e-9)
    # wrist_rotate spins about the tool axis without moving the tip
    q = np.zeros(6)
    q[5] = 1.0
    np.testing.assert_allclose(kin.fk(q)[:3, 3], [0.458325, 0.0, 0.36065], atol=1e-9)


def test_sleep_pose_is_within_limits_and_low():
    assert np.all(kin.SLEEP_POSE >= kin.JOINT_LIMITS[:, 0]) and np.all(kin.SLEEP_POSE <= kin.JOINT_LIMITS[:, 1])
    assert kin.fk(kin.SLEEP_POSE)[2, 3] < 0.2


def test_jacobian_matches_finite_differences():
    rng = np.random.default_rng(1)
    q = rng.uniform(-1, 1, 6)
    jac, pose = kin.geometric_jacobian(q)
    eps = 1e-6
    for i in range(6):
        dq = np.zeros(6)
        dq[i] = eps
        err = kin.pose_error(pose, kin.fk(q + dq)) / eps
        np.testing.assert_allclose(jac[:, i], err, atol=1e-4)


@pytest.mark.parametrize("seed", range(5))
def test_ik_round_trip_from_a_perturbed_start(seed):
    rng = np.random.default_rng(seed)
    limits = kin.JOINT_LIMITS * 0.7
    for _ in range(20):
        q = rng.uniform(limits[:, 0], limits[:, 1])
        target = kin.fk(q)
        q_start = np.clip(q + rng.normal(0, 0.2, 6), kin.JOINT_LIMITS[:, 0], kin.JOINT_LIMITS[:, 1])
        q_solved, ok = kin.ik(target, q_start)
        assert ok
        err = kin.pose_error(kin.fk(q_solved), target)
        assert np.linalg.norm(err[:3]) < 1e-3 and np.linalg.norm(err[3:]) < 1e-2


def test_ik_respects_joint_limits_and_reports_unreachable_targets():
    target = kin.xyzrpy_to_pose(np.array([1.5, 0.0, 0.3, 0.0, 0.0, 0.0]))  # far beyond reach
    q, ok = kin.ik(target, np.zeros(6))
    assert not ok
    assert np.all(q >= kin.JOINT_LIMITS[:, 0]) and np.all(q <= kin.JOINT_LIMITS[:, 1])
    # a target that needs the elbow beyond its limit: the solution must stay inside anyway
    rng = np.random.default_rng(0)
    for _ in range(20):
        q_wild = rng.uniform(-3, 3, 6)
        q, _ = kin.ik(kin.fk(q_wild), np.zeros(6))
        assert np.all(q >= kin.JOINT_LIMITS[:, 0] - 1e-12) and np.all(q <= kin.JOINT_LIMITS[:, 1] + 1e-12)


def test_rpy_round_trip_and_convention():
    rng = np.random.default_rng(2)
    for _ in range(50):
        rpy = rng.uniform([-np.pi, -1.5, -np.pi], [np.pi, 1.5, np.pi])
        np.testing.assert_allclose(kin.matrix_to_rpy(kin.rpy_to_matrix(*rpy)), rpy, atol=1e-9)
    # yaw alone turns x towards y; pitch alone turns x downwards
    np.testing.assert_allclose(kin.rpy_to_matrix(0, 0, np.pi / 2) @ [1, 0, 0], [0, 1, 0], atol=1e-12)
    np.testing.assert_allclose(kin.rpy_to_matrix(0, np.pi / 2, 0) @ [1, 0, 0], [0, 0, -1], atol=1e-12)
    xyzrpy = np.array([0.3, -0.1, 0.05, 0.2, 1.2, -0.4])
    np.testing.assert_allclose(kin.pose_to_xyzrpy(kin.xyzrpy_to_pose(xyzrpy)), xyzrpy, atol=1e-9)


def test_rotation_log_inverts_rodrigues_including_half_turns():
    rng = np.random.default_rng(3)
    for angle in [0.0, 0.3, 2.0, np.pi - 1e-8, np.pi]:
        axis = rng.normal(size=3)
        axis /= np.linalg.norm(axis)
        r = kin.rotation_about(axis, angle)
        np.testing.assert_allclose(kin.rotation_about(*_axis_angle(kin.rotation_log(r))), r, atol=1e-6)


def _axis_angle(rotvec):
    angle = np.linalg.norm(rotvec)
    return (rotvec / angle if angle > 0 else np.array([1.0, 0, 0])), angle


def test_fast_fk_equals_the_literal_product_of_exponentials():
    rng = np.random.default_rng(4)
    for _ in range(50):
        q = rng.uniform(-np.pi, np.pi, 6)
        np.testing.assert_allclose(kin.fk(q), kin.fk_reference(q), atol=1e-12)


def test_fk_of_many_steps_is_fk_of_each():
    q = np.random.default_rng(3).uniform(-2.0, 2.0, size=(50, 6))
    np.testing.assert_allclose(kin.fk_many(q), np.stack([kin.fk(x) for x in q]), rtol=0, atol=1e-12)
    r = kin.fk_many(q)[:, :3, :3]
    np.testing.assert_allclose(kin.matrix_to_rpy_many(r), np.stack([kin.matrix_to_rpy(x) for x in r]),
                               rtol=0, atol=1e-12)
