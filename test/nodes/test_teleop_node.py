"""teleop_node as a process, driven by a synthetic joy_node: actions only while the
deadman is held and the joy messages are fresh, with the layout's signs, the speed levels
and the gripper held; the episode buttons call the recorder's Trigger services once per
press. KeyboardTeleop in process with a fake key source; `crl teleop` on a pseudo-terminal."""
import numpy as np
import pytest

from crl_ros.nodes import common
from crl_ros.robot import teleop
from crl_ros.robot.actions import MAX_ROTATION, MAX_TRANSLATION

PAD = teleop.GAMEPADS["xbox"]
RATE_HZ = 10.0


class FakeJoy:
    """joy_node's stand-in: republishes its state at 20 Hz, stamped ``age_s`` in the past."""

    def __init__(self, ros):
        from sensor_msgs.msg import Joy
        self.ros, self.Joy = ros, Joy
        self.axes, self.buttons, self.age_s, self.on = [0.0] * 8, [0] * 11, 0.0, True
        self.pub = ros.node.create_publisher(Joy, "joy", 10)
        self.timer = ros.node.create_timer(0.05, self.publish)

    def publish(self):
        if not self.on:
            return
        msg = self.Joy(axes=[float(a) for a in self.axes], buttons=list(self.buttons))
        msg.header.stamp = common.ns_to_stamp(self.ros.node.get_clock().now().nanoseconds - int(self.age_s * 1e9))
        self.pub.publish(msg)

    def set(self, axes=None, **buttons):
        self.axes = [0.0] * 8
        for index, value in (axes or {}).items():
            self.axes[index] = value
        self.buttons = [0] * 11
        for name, down in buttons.items():
            self.buttons[PAD.buttons[name]] = int(down)


@pytest.fixture(scope="module")
def rig(ros):
    from std_msgs.msg import Float32MultiArray
    from std_srvs.srv import Trigger

    calls = {"start_episode": 0, "end_episode": 0}

    def service(name):
        def handle(request, response):
            calls[name] += 1
            response.success, response.message = True, f"{name} #{calls[name]}"
            return response
        return ros.node.create_service(Trigger, name, handle)

    services = [service("start_episode"), service("end_episode")]
    joy = FakeJoy(ros)
    actions = []
    ros.node.create_subscription(Float32MultiArray, "action", actions.append, common.reliable_qos())
    proc = ros.start("teleop_node", gamepad="xbox", rate_hz=RATE_HZ, joy_timeout_s=0.5, dead_zone=0.1)
    ros.wait_for(lambda: joy.pub.get_subscription_count() > 0, 30, "teleop_node subscribed to joy", procs=[proc])
    yield type("Rig", (), dict(ros=ros, joy=joy, actions=actions, calls=calls, proc=proc))
    for s in services:
        ros.node.destroy_service(s)


def values(msg):
    return np.asarray(msg.data, dtype=np.float64)


def run_for(rig, seconds):
    """Clear the actions, spin ``seconds``, return the values that arrived."""
    rig.actions.clear()
    rig.ros.spin_for(seconds)
    return [values(m) for m in rig.actions]


def settle(rig):
    rig.ros.spin_for(0.3)  # actions of the previous state still in flight


def test_1_no_action_while_the_deadman_is_released(rig):
    rig.joy.set({1: 1.0, 0: 1.0})          # sticks pushed, deadman up
    settle(rig)
    assert run_for(rig, 1.0) == []
    assert rig.proc.alive(), rig.proc.log()


def test_2_deadman_held_moves_with_the_layouts_signs_and_scales(rig):
    # left stick full up (forward), right stick half left past the dead zone (turn left), D-pad up (tip up)
    rig.joy.set({1: 1.0, 3: 0.55, 7: 1.0}, deadman=1)
    rig.ros.wait_for(lambda: len(rig.actions) >= 3, 10, "actions with the deadman held", procs=[rig.proc])
    got = run_for(rig, 1.0)
    assert 5 <= len(got) <= 13, len(got)                   # 10 Hz (fewer on a loaded machine)
    speed = 0.5                                           # initial_speed_level 1 of [0.25, 0.5, 1.0]
    expected = [speed * MAX_TRANSLATION, 0, 0, 0, -speed * MAX_ROTATION, 0.5 * speed * MAX_ROTATION, 1.0]
    np.testing.assert_allclose(got[-1], expected, atol=1e-6)
    assert rig.actions[-1].layout.dim[0].label == "dx,dy,dz,droll,dpitch,dyaw,gripper"
    rig.joy.set({1: 0.05, 4: -0.08}, deadman=1)           # inside the dead zone: zero motion, still published
    settle(rig)
    got = run_for(rig, 0.5)
    assert got and all(np.allclose(v, [0, 0, 0, 0, 0, 0, 1.0]) for v in got)


def test_3_releasing_the_deadman_stops_the_actions(rig):
    rig.joy.set({1: 1.0})
    settle(rig)
    assert run_for(rig, 1.0) == []


def test_4_stale_or_missing_joy_gives_no_action(rig):
    rig.joy.set({1: 1.0}, deadman=1)
    rig.joy.age_s = 2.0                                   # stamped 2 s ago
    settle(rig)
    assert run_for(rig, 1.0) == []
    rig.joy.age_s = 0.0
    rig.ros.wait_for(lambda: rig.actions, 5, "actions again with fresh joy")
    rig.joy.on = False                                    # joy_node died: stop within joy_timeout_s
    rig.ros.spin_for(0.7)
    assert run_for(rig, 1.0) == []
    rig.joy.on = True
    assert "stale" in rig.proc.log()


def test_5_gripper_buttons_set_a_held_opening_only_with_the_deadman(rig):
    rig.joy.set(gripper_close=1)                          # no deadman: ignored
    settle(rig)
    rig.joy.set(deadman=1)
    settle(rig)
    assert run_for(rig, 0.5)[-1][6] == 1.0
    rig.joy.set(deadman=1, gripper_close=1)
    settle(rig)
    rig.joy.set(deadman=1)                                # released: stays closed
    settle(rig)
    got = run_for(rig, 0.5)
    assert got and all(v[6] == 0.0 for v in got)
    rig.joy.set(deadman=1, gripper_open=1)
    settle(rig)
    assert run_for(rig, 0.5)[-1][6] == 1.0


def test_6_speed_buttons_step_through_the_levels(rig):
    def dx_after(**press):
        rig.joy.set({1: 1.0}, deadman=1, **press)
        settle(rig)
        rig.joy.set({1: 1.0}, deadman=1)
        settle(rig)
        return run_for(rig, 0.5)[-1][0]

    assert dx_after(speed_up=1) == pytest.approx(MAX_TRANSLATION)
    assert dx_after(speed_up=1) == pytest.approx(MAX_TRANSLATION)           # the top level
    assert dx_after(speed_down=1) == pytest.approx(0.5 * MAX_TRANSLATION)
    assert dx_after(speed_down=1) == pytest.approx(0.25 * MAX_TRANSLATION)
    rig.joy.set()
    settle(rig)


def test_7_episode_buttons_call_the_recorder_once_per_press(rig):
    rig.joy.set(start_episode=1)                          # held for 0.5 s = 10 joy messages: one call
    rig.ros.spin_for(0.5)
    rig.joy.set()
    rig.ros.wait_for(lambda: rig.calls["start_episode"] == 1, 10, "start_episode called")
    rig.joy.set(end_episode=1)
    rig.ros.spin_for(0.3)
    rig.joy.set()
    rig.ros.wait_for(lambda: rig.calls["end_episode"] == 1, 10, "end_episode called")
    rig.ros.spin_for(0.5)
    assert rig.calls == {"start_episode": 1, "end_episode": 1}
    rig.ros.wait_for(lambda: "end_episode: end_episode #1" in rig.proc.log(), 5, "the reply logged")
    assert "start_episode: start_episode #1" in rig.proc.log()


def test_an_unknown_gamepad_refuses_to_start(procs):
    proc = procs.start("teleop_node", name="teleop_bad", gamepad="wiimote")
    assert proc.proc.wait(30) == 1
    assert "unknown gamepad 'wiimote'" in proc.log()


# --- keyboard ---------------------------------------------------------------------------------

def test_keyboard_teleop_publishes_held_keys_and_decays_to_zero(rig):
    """KeyboardTeleop in this process, a list as its keyboard (rig's fake recorder services)."""
    import time
    from rclpy.executors import SingleThreadedExecutor
    from std_msgs.msg import Float32MultiArray
    from crl_ros.nodes.teleop_node import KeyboardTeleop

    ros = rig.ros
    starts = rig.calls["start_episode"]
    typed = []
    node = KeyboardTeleop(lambda: typed.pop(0) if typed else "", hold_s=0.3, context=ros.context)
    executor = SingleThreadedExecutor(context=ros.context)
    executor.add_node(node)
    actions = []
    sub = ros.node.create_subscription(Float32MultiArray, "action", lambda m: actions.append(values(m)),
                                       common.reliable_qos())

    def spin(seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            executor.spin_once(timeout_sec=0.005)
            ros.executor.spin_once(timeout_sec=0.005)

    try:
        spin(1.0)
        assert actions and all(np.allclose(a, [0, 0, 0, 0, 0, 0, 1]) for a in actions)  # idle: zero motion
        typed.append("c")                                     # close the gripper
        for _ in range(8):                                    # "w" held: auto-repeat every 50 ms
            typed.append("w")
            spin(0.05)
        spin(0.2)
        moving = [a for a in actions if a[0] > 0]
        assert moving and np.allclose(moving[-1], [0.5 * MAX_TRANSLATION, 0, 0, 0, 0, 0, 0.0], atol=1e-6)
        actions.clear()
        spin(0.8)                                             # released: back to zero within the hold time
        assert actions[-1][0] == 0.0 and actions[-1][6] == 0.0
        typed.append("\x1b[A+1")                              # an arrow key (ignored), faster, start_episode
        spin(0.3)
        actions.clear()
        typed.append("k")
        spin(0.45)
        assert node.speed.value == 1.0
        assert any(a[4] == pytest.approx(MAX_ROTATION) for a in actions)   # k: tip down, at full speed
        assert all(a[0] == 0.0 and a[1] == 0.0 for a in actions)           # the arrow's "A" was no key
        end = time.monotonic() + 5
        while rig.calls["start_episode"] == starts and time.monotonic() < end:
            spin(0.05)
        assert rig.calls["start_episode"] == starts + 1
        typed.append("q")
        spin(0.1)
        assert node.quit
    finally:
        ros.node.destroy_subscription(sub)
        executor.remove_node(node)
        node.destroy_node()


def test_crl_teleop_runs_in_a_terminal_and_quits_on_q(ros):
    """The real command on a pseudo-terminal: help printed, 'd' moves right, 'q' quits and
    the terminal gets its settings back."""
    import os
    import subprocess
    import sys
    import termios
    import time
    from std_msgs.msg import Float32MultiArray

    actions = []
    sub = ros.node.create_subscription(Float32MultiArray, "action", lambda m: actions.append(values(m)),
                                       common.reliable_qos())
    master, slave = os.openpty()
    before = termios.tcgetattr(slave)
    proc = subprocess.Popen([sys.executable, "-m", "crl_ros.cli", "teleop", "--hold", "0.5"], env=ros.env,
                            stdin=slave, stdout=slave, stderr=subprocess.STDOUT)
    try:
        ros.wait_for(lambda: actions, 30, "crl teleop publishing")
        end = time.monotonic() + 10
        while time.monotonic() < end and not any(a[1] < 0 for a in actions):
            os.write(master, b"d")
            ros.spin_for(0.1)
        assert any(np.allclose(a[:6], [0, -0.5 * MAX_TRANSLATION, 0, 0, 0, 0]) for a in actions)
        os.write(master, b"q")
        assert proc.wait(15) == 0
        assert termios.tcgetattr(slave) == before
        output = os.read(master, 65536).decode(errors="replace")
        assert "w/s forward/back" in output
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
        os.close(slave)
        ros.node.destroy_subscription(sub)


def test_crl_teleop_without_a_terminal_says_so(ros):
    import subprocess
    import sys
    result = subprocess.run([sys.executable, "-m", "crl_ros.cli", "teleop"], env=ros.env, stdin=subprocess.DEVNULL,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "needs a terminal" in result.stderr
