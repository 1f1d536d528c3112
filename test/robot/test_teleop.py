"""Teleop input -> action mapping, without ROS: gamepad layouts and overrides, dead zone,
speed, NaN-free bounded actions, keyboard keys, hold time and escape sequences."""
import numpy as np
import pytest

from crl_ros.robot import teleop
from crl_ros.robot.actions import ACTION_HIGH, ACTION_LOW, MAX_ROTATION, MAX_TRANSLATION


def test_dead_zone_is_continuous_and_sanitises():
    assert teleop.apply_dead_zone(0.05, 0.1) == 0.0
    assert teleop.apply_dead_zone(-0.1, 0.1) == 0.0
    assert teleop.apply_dead_zone(0.1 + 1e-9, 0.1) == pytest.approx(0.0, abs=1e-6)
    assert teleop.apply_dead_zone(0.55, 0.1) == pytest.approx(0.5)
    assert teleop.apply_dead_zone(-1.0, 0.1) == -1.0
    assert teleop.apply_dead_zone(3.0, 0.1) == 1.0
    assert teleop.apply_dead_zone(float("nan"), 0.1) == 0.0
    assert teleop.apply_dead_zone(float("inf"), 0.1) == 0.0


@pytest.mark.parametrize("name", sorted(teleop.GAMEPADS))
def test_every_gamepad_maps_every_motion_and_button_to_distinct_inputs(name):
    pad = teleop.gamepad(name)
    assert set(pad.axes) == set(teleop.MOTIONS) and set(pad.buttons) == set(teleop.BUTTONS)
    assert len({index for index, _ in pad.axes.values()}) == 6
    assert len(set(pad.buttons.values())) == len(teleop.BUTTONS)
    # left stick up (+1 in joy_node) is forward, left stick left is +y
    axes = [0.0] * 8
    axes[pad.axes["dx"][0]] = 1.0
    axes[pad.axes["dy"][0]] = 1.0
    np.testing.assert_allclose(teleop.joy_motion(axes, pad, 0.1), [1, 1, 0, 0, 0, 0])


def test_xbox_layout_signs_and_a_short_axes_array():
    pad = teleop.gamepad("xbox")
    axes = [0.0, -0.55, 0, 0.55, 1.0, 0, -1.0, 1.0]   # stick back, right stick left+up, D-pad right+up
    np.testing.assert_allclose(teleop.joy_motion(axes, pad, 0.1), [-0.5, 0, 1.0, 1.0, -1.0, 0.5])
    # a device with one axis: the missing ones read 0 (no IndexError)
    np.testing.assert_allclose(teleop.joy_motion([0.55], pad, 0.1), [0, 0.5, 0, 0, 0, 0])
    with pytest.raises(ValueError, match="unknown gamepad"):
        teleop.gamepad("wiimote")


def test_overrides_replace_indices_and_scales_multiply_signs():
    pad = teleop.gamepad("xbox").with_overrides(axes={"dz": 5, "dx": -1}, scales={"dz": -1.0, "dyaw": 0.0},
                                                buttons={"deadman": 10, "gripper_open": -1})
    assert pad.axes["dz"] == (5, -1.0) and pad.axes["dx"] == teleop.GAMEPADS["xbox"].axes["dx"]
    assert pad.axes["dyaw"][1] == 0.0
    assert pad.buttons["deadman"] == 10 and pad.buttons["gripper_open"] == teleop.GAMEPADS["xbox"].buttons["gripper_open"]
    axes = [0.0] * 8
    axes[5], axes[3] = 1.0, 1.0
    np.testing.assert_allclose(teleop.joy_motion(axes, pad, 0.0), [0, 0, -1, 0, 0, 0])


def test_teleop_action_scales_to_the_bounds_and_is_never_nan():
    action = teleop.teleop_action([1, -1, 0.5, 1, -1, 0.5], 0.5, 0.0)
    np.testing.assert_allclose(action, [0.5 * MAX_TRANSLATION, -0.5 * MAX_TRANSLATION, 0.25 * MAX_TRANSLATION,
                                        0.5 * MAX_ROTATION, -0.5 * MAX_ROTATION, 0.25 * MAX_ROTATION, 0.0])
    bad = teleop.teleop_action([np.nan, np.inf, -np.inf, 5, -5, 0], 2.0, np.nan)
    assert np.isfinite(bad).all() and (bad >= ACTION_LOW).all() and (bad <= ACTION_HIGH).all()
    assert bad[0] == 0.0 and bad[6] == teleop.OPEN
    np.testing.assert_allclose(bad[1:5], [MAX_TRANSLATION, -MAX_TRANSLATION, MAX_ROTATION, -MAX_ROTATION])


def test_button_edges_fire_once_per_press():
    pad = teleop.gamepad("xbox")
    edges = teleop.ButtonEdges(pad)
    start = pad.buttons["start_episode"]
    held = [0] * 11
    held[start] = 1
    assert edges.update(held) == {"start_episode"}
    assert edges.update(held) == set()
    assert edges.update([0] * 11) == set()
    assert edges.update(held) == {"start_episode"}
    assert edges.update([1]) == {"gripper_close"}    # a short buttons array: the rest read up
    assert not teleop.pressed([1], 5) and not teleop.pressed([1], -1)


def test_speed_levels_step_and_saturate():
    speed = teleop.Speed([0.25, 0.5, 1.0], 1)
    assert speed.value == 0.5 and speed.step(1) == 1.0 and speed.step(1) == 1.0
    assert speed.step(-1) == 0.5 and speed.step(-1) == 0.25 and speed.step(-1) == 0.25
    with pytest.raises(ValueError):
        teleop.Speed([0.5, 1.5], 0)
    with pytest.raises(ValueError):
        teleop.Speed([0.5], 3)


# --- keyboard --------------------------------------------------------------------------------

def test_keys_cover_every_motion_both_ways_without_clashes():
    assert {(m, s) for m, s in teleop.KEY_MOTIONS.values()} == {(m, s) for m in teleop.MOTIONS for s in (1.0, -1.0)}
    assert not set(teleop.KEY_MOTIONS) & set(teleop.KEY_COMMANDS)
    assert {"gripper_close", "gripper_open", "speed_up", "speed_down", "start_episode", "end_episode",
            "quit", "stop"} <= set(teleop.KEY_COMMANDS.values())
    for key in [*teleop.KEY_MOTIONS, "c", "v", "1", "2", "q"]:
        assert key in teleop.KEYBOARD_HELP


def test_a_key_press_moves_for_the_hold_time_and_repeats_extend_it():
    keys = teleop.KeyboardMotion(hold_s=0.3)
    assert keys.press("w", 10.0) is None
    np.testing.assert_allclose(keys.motion(10.1), [1, 0, 0, 0, 0, 0])
    assert not keys.moving(10.31)
    keys.press("w", 10.2)                       # auto-repeat
    assert keys.moving(10.45) and not keys.moving(10.51)
    keys.press("a", 11.0)
    keys.press("j", 11.0)
    np.testing.assert_allclose(keys.motion(11.1), [0, 1, 0, 0, 0, 1])
    keys.press("d", 11.05)                      # the opposite key takes over at once
    np.testing.assert_allclose(keys.motion(11.1), [0, -1, 0, 0, 0, 1])
    assert keys.press(" ", 11.1) == "stop" and not keys.moving(11.1)
    assert keys.press("1", 12) == "start_episode" and keys.press("q", 12) == "quit"
    assert keys.press("%", 12) is None and not keys.moving(12)


def test_split_keys_drops_escape_sequences_and_lowercases():
    assert teleop.split_keys("wW a") == ["w", "w", " ", "a"]
    assert teleop.split_keys("\x1b[A\x1b[1;5Cd\x1bOPs\x1b") == ["d", "s"]   # arrows, F1, a lone Esc
    assert teleop.split_keys("+-\x04") == ["+", "-", "\x04"]


def test_terminal_keys_refuse_a_non_terminal(tmp_path):
    with open(tmp_path / "f", "w+") as f, pytest.raises(RuntimeError, match="needs a terminal"):
        with teleop.TerminalKeys(f):
            pass


def test_terminal_keys_read_a_pty_in_cbreak_mode_and_restore_it():
    import os
    import termios
    master, slave = os.openpty()
    try:
        before = termios.tcgetattr(slave)
        with open(slave, "rb", buffering=0, closefd=False) as stream:
            with teleop.TerminalKeys(stream) as keys:
                assert keys.read() == ""
                os.write(master, b"wq")   # no Enter needed
                import time
                time.sleep(0.05)
                assert keys.read() == "wq"
            assert termios.tcgetattr(slave) == before
    finally:
        os.close(master)
        os.close(slave)
