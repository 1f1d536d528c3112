"""The API process's command handling (crl_ros.nodes.interbotix_backend.ApiServer) in-process,
on a recording stand-in for the upstream arm object: stale and refused commands leave the
arm and the gripper alone, go_home's longer timing is written once and put back once, and a
hold commands the measured position."""
import math
import time
from types import SimpleNamespace

import pytest

from crl_ros.nodes.interbotix_backend import ApiServer
from interbotix_helpers import REPO

Q = [0.1, -0.2, 0.3, 0.0, 0.4, 0.0]


class RecordingArm:
    def __init__(self, accept=True):
        self.accept, self.calls = accept, []
        self.group_name, self.moving_time, self.accel_time = "arm", 0.2, 0.05
        self.joint_commands = [0.0] * 6
        self.group_info = SimpleNamespace(joint_names=["waist", "shoulder", "elbow", "forearm_roll", "wrist_angle",
                                                       "wrist_rotate"],
                                          joint_lower_limits=[-1.0] * 6, joint_upper_limits=[1.0] * 6,
                                          joint_velocity_limits=[3.14] * 6)
        done = SimpleNamespace(done=lambda: True)

        def call_async(request):
            self.calls.append(("register", request.reg, request.value))
            return done
        self.core = SimpleNamespace(srv_set_reg=SimpleNamespace(call_async=call_async),
                                    robot_write_commands=lambda group, q: self.calls.append(("group", list(q))))

    def set_joint_positions(self, q, moving_time=None, accel_time=None, blocking=True):
        assert moving_time is None and accel_time is None and blocking is False
        self.calls.append(("set_joint_positions", list(q)))
        if self.accept:
            self.joint_commands = list(q)
        return self.accept


@pytest.fixture
def server(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "test" / "nodes" / "fake_interbotix"))  # interbotix_xs_msgs.srv
    api = ApiServer.__new__(ApiServer)  # everything __init__ sets, without the upstream API
    api.arm = RecordingArm()
    api.bot = SimpleNamespace(arm=api.arm, gripper=SimpleNamespace(
        grasp=lambda delay: api.arm.calls.append(("grasp",)), release=lambda delay: api.arm.calls.append(("release",))))
    api.control_timing = api.timing = (0.2, 0.05)
    api.gripper_open = None
    return api


def test_a_stale_command_is_refused_before_the_api_sees_it(server):
    ok, why = server.move(time.monotonic() - 0.01, Q, True, 0.2)
    assert not ok and "stale" in why
    ok, why = server.hold(time.monotonic() - 0.01, Q)
    assert not ok and "stale" in why
    assert server.arm.calls == []


def test_a_refused_target_moves_neither_arm_nor_gripper(server):
    server.arm.accept = False
    ok, why = server.move(time.monotonic() + 5, [1.5, *Q[1:]], False, 0.2)
    assert not ok and "waist 1.500 outside [-1.000, 1.000]" in why
    assert server.arm.calls == [("set_joint_positions", [1.5, *Q[1:]])]


def test_control_moves_write_no_registers_and_go_home_timing_is_put_back_once(server):
    for _ in range(3):
        assert server.move(time.monotonic() + 5, Q, None, 0.2) == (True, "")
    assert [c for c in server.arm.calls if c[0] == "register"] == []
    assert server.move(time.monotonic() + 5, Q, True, 2.4) == (True, "")  # go_home
    assert server.arm.moving_time == 2.4  # the API's speed check uses the time the motors run on
    for _ in range(3):
        server.move(time.monotonic() + 5, Q, True, 0.2)
    assert [c[1:] for c in server.arm.calls if c[0] == "register"] == [
        ("Profile_Velocity", 2400), ("Profile_Acceleration", 600), ("Profile_Velocity", 200),
        ("Profile_Acceleration", 50)]
    assert [c for c in server.arm.calls if c[0] in ("grasp", "release")] == [("release",)]


def test_hold_commands_the_measured_position(server):
    server.arm.joint_commands = [0.9] * 6  # far from where the arm is: upstream's check would refuse
    assert server.hold(time.monotonic() + 5, Q) == (True, "")
    assert server.arm.calls == [("group", Q)]
    assert server.arm.joint_commands == Q  # the next speed check starts from the hold


def upstream_speed_check(arm, q6):
    """What upstream's set_joint_positions checks (truncation to 1 mrad, then the speed)."""
    info = arm.group_info
    return all(abs(int(t * 1000) / 1000.0 - last) / arm.moving_time <= limit
               for t, last, limit in zip(q6, arm.joint_commands, info.joint_velocity_limits))


def test_a_full_speed_step_towards_zero_passes_upstreams_rounded_speed_check(server):
    # arm_node's full-speed step (pi rad/s for 0.2 s) 1.0 -> 0.3717: upstream truncates it to 0.371,
    # 3.145 rad/s > pi, and would refuse it
    server.arm.group_info.joint_velocity_limits = [math.pi] * 6
    server.arm.joint_commands = [1.0, *Q[1:]]
    step = [0.3717, *Q[1:]]
    assert not upstream_speed_check(server.arm, step)
    assert server.move(time.monotonic() + 5, step, None, 0.2) == (True, "")
    sent = server.arm.calls[-1][1]
    assert upstream_speed_check(SimpleNamespace(**{**vars(server.arm), "joint_commands": [1.0, *Q[1:]]}), sent)
    assert abs(sent[0] - step[0]) <= 0.001 + 1e-9 and sent[1:] == Q[1:]  # 1 mrad at most, other joints as asked
