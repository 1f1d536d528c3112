"""Safety logic arm_node relies on: action validation, joint guard, watchdog, enable state."""
import numpy as np
import pytest

from crl_ros.robot.safety import ActionGuard, ArmState, JointGuard, UnsafeCommand, Watchdog, finger_to_gripper, gripper_to_finger

LOW = [-0.05] * 3 + [-0.25] * 3 + [0.0]
HIGH = [0.05] * 3 + [0.25] * 3 + [1.0]
NAMES = ["dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper"]


def test_valid_action_passes_unchanged():
    guard = ActionGuard(LOW, HIGH, NAMES)
    a = [0.01, -0.02, 0.0, 0.1, 0.0, -0.1, 0.5]
    np.testing.assert_allclose(guard.check(a), a)


@pytest.mark.parametrize("bad,field", [(np.nan, "dy"), (np.inf, "dy"), (-np.inf, "dy")])
def test_non_finite_actions_are_rejected_naming_the_field(bad, field):
    guard = ActionGuard(LOW, HIGH, NAMES, out_of_bounds="clip")
    with pytest.raises(UnsafeCommand, match=field):
        guard.check([0, bad, 0, 0, 0, 0, 1])


def test_shape_and_bounds():
    guard = ActionGuard(LOW, HIGH, NAMES)
    with pytest.raises(UnsafeCommand, match="7 values"):
        guard.check([0.0] * 6)
    with pytest.raises(UnsafeCommand, match="dz=0.2"):
        guard.check([0, 0, 0.2, 0, 0, 0, 1])
    clip = ActionGuard(LOW, HIGH, NAMES, out_of_bounds="clip")
    np.testing.assert_allclose(clip.check([0, 0, 0.2, 0, 0, -3, 2]), [0, 0, 0.05, 0, 0, -0.25, 1])


def test_joint_guard_limits_and_step():
    limits = np.array([[-1.0, 1.0], [-2.0, 2.0]])
    guard = JointGuard(limits, max_step=0.3)
    np.testing.assert_allclose(guard.check([0.5, -1.0], current=[0.4, -0.9]), [0.5, -1.0])
    np.testing.assert_allclose(guard.check([1.01, 0.0]), [1.0, 0.0])  # round-off clamped
    with pytest.raises(UnsafeCommand, match="joint 0 target 1.5"):
        guard.check([1.5, 0.0])
    with pytest.raises(UnsafeCommand, match="NaN"):
        guard.check([np.nan, 0.0])
    with pytest.raises(UnsafeCommand, match="joint 1 would move"):
        guard.check([0.0, 1.0], current=[0.0, 0.0])
    with pytest.raises(UnsafeCommand, match="current joint state"):
        guard.check([0.0, 0.0], current=[np.nan, 0.0])


def test_watchdog_expires_only_after_a_feed_goes_stale():
    dog = Watchdog(0.5)
    assert not dog.expired(100.0)
    dog.feed(100.0)
    assert not dog.expired(100.4)
    assert dog.expired(100.6)
    dog.feed(100.6)
    assert not dog.expired(101.0)
    dog.reset()
    assert not dog.expired(1000.0)


def test_arm_state_starts_disabled_and_stop_disables():
    s = ArmState()
    assert s.may_move()[0] is False and "disabled" in s.may_move()[1]
    s.enable()
    assert s.may_move()[0]
    s.accept()
    assert not s.holding
    s.reject("NaN")
    assert s.holding and s.rejected == 1 and "NaN" in s.reason
    s.stop()
    assert not s.enabled and s.holding and s.reason == "stopped"


def test_gripper_mapping_round_trips():
    for g in [0.0, 0.3, 1.0]:
        assert finger_to_gripper(gripper_to_finger(g)) == pytest.approx(g)
    assert gripper_to_finger(5.0) == pytest.approx(0.037)
