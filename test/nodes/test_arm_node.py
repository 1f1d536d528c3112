"""arm_node as a process, fed fake joint states: starts disabled; moves only on valid
actions after enable, with the targets the shared kinematics give; holds on watchdog,
NaN / out-of-bounds actions and stop; go_home only when enabled."""
import json

import numpy as np
import pytest

from crl_ros.nodes import common
from crl_ros.robot import actions, kinematics

Q0 = np.array([0.0, -0.3, 0.3, 0.0, 0.5, 0.0])


@pytest.fixture(scope="module")
def arm(ros):
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Float32MultiArray, String
    from trajectory_msgs.msg import JointTrajectory

    ros.start("arm_node", watchdog_timeout_s=0.4, control_rate_hz=5.0)
    js_pub = ros.node.create_publisher(JointState, "joint_states", common.sensor_qos(depth=5))

    def publish_joints():
        msg = JointState(name=kinematics.JOINT_STATE_NAMES, position=[*Q0, 0.0, 0.03, -0.03])
        msg.header.stamp = ros.node.get_clock().now().to_msg()
        js_pub.publish(msg)

    timer = ros.node.create_timer(0.02, publish_joints)
    arm_cmds, grip_cmds, status = [], [], []
    ros.node.create_subscription(JointTrajectory, "arm_controller/joint_trajectory", arm_cmds.append, common.reliable_qos())
    ros.node.create_subscription(JointTrajectory, "gripper_controller/joint_trajectory", grip_cmds.append, common.reliable_qos())
    ros.node.create_subscription(String, "arm_status", lambda m: status.append(json.loads(m.data)), common.reliable_qos())
    act_pub = ros.node.create_publisher(Float32MultiArray, "action", common.reliable_qos())
    ros.wait_for(lambda: status and status[-1]["joint_states_fresh"], 20, "arm_node status with fresh joints")
    ros.wait_for(lambda: act_pub.get_subscription_count() > 0, 10, "arm_node subscribed to action")
    yield type("Arm", (), dict(ros=ros, arm_cmds=arm_cmds, grip_cmds=grip_cmds, status=status, act_pub=act_pub))
    ros.node.destroy_timer(timer)


def send(arm, values):
    arm.act_pub.publish(common.action_msg(values))


def enable(arm, on=True):
    from std_srvs.srv import SetBool
    reply = arm.ros.call(SetBool, "enable", SetBool.Request(data=on))
    assert reply.success


GOOD = [0.02, 0.0, -0.01, 0.0, 0.0, 0.05, 0.0]


def test_01_starts_disabled_and_ignores_actions(arm):
    assert arm.status[-1]["enabled"] is False
    for _ in range(5):
        send(arm, GOOD)
        arm.ros.spin_for(0.1)
    arm.ros.spin_for(0.3)
    assert arm.arm_cmds == []


def test_02_enabled_actions_move_with_the_shared_kinematics(arm):
    enable(arm)
    for _ in range(5):
        send(arm, GOOD)
        arm.ros.spin_for(0.2)
    arm.ros.wait_for(lambda: len(arm.arm_cmds) >= 5, 5, "5 arm commands")
    expected_q, expected_grip, _ = actions.apply_ee_delta(Q0, np.array(GOOD), 0.2)
    cmd = arm.arm_cmds[0]
    assert list(cmd.joint_names) == kinematics.JOINT_NAMES
    np.testing.assert_allclose(cmd.points[0].positions, expected_q, atol=1e-6)
    assert cmd.points[0].time_from_start.nanosec == pytest.approx(2e8, abs=1e3)
    assert not np.allclose(expected_q, Q0)  # it really moves
    assert arm.grip_cmds and arm.grip_cmds[0].points[0].positions[0] == pytest.approx(0.015)  # gripper 0 = closed
    assert arm.status[-1]["holding"] is False or arm.status[-1]["accepted"] >= 5


def test_03_watchdog_holds_when_actions_stop(arm):
    n = len(arm.arm_cmds)
    arm.ros.wait_for(lambda: any(s["reason"].startswith("watchdog") for s in arm.status[-3:]), 3, "watchdog hold")
    hold = arm.arm_cmds[n:]
    assert len(hold) == 1, "exactly one hold command after actions stop"
    np.testing.assert_allclose(hold[0].points[0].positions, Q0)  # stays where it is
    arm.ros.spin_for(1.0)
    assert len(arm.arm_cmds) == n + 1, "no further commands while holding"


@pytest.mark.parametrize("bad,why", [
    ([0.0, np.nan, 0.0, 0.0, 0.0, 0.0, 1.0], "NaN"),
    ([0.0, 0.0, np.inf, 0.0, 0.0, 0.0, 1.0], "NaN/inf"),
    ([0.3, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0], "outside per-step bounds"),
    ([0.0, 0.0, 0.0], "7 values"),
])
def test_04_bad_actions_are_rejected_and_the_arm_holds(arm, bad, why):
    rejected = arm.status[-1]["rejected"]
    n = len(arm.arm_cmds)
    send(arm, bad)
    arm.ros.wait_for(lambda: arm.status[-1]["rejected"] == rejected + 1, 5, "rejection")
    assert why in arm.status[-1]["reason"]
    for cmd in arm.arm_cmds[n:]:  # only hold commands: the current position
        np.testing.assert_allclose(cmd.points[0].positions, Q0)


def test_05_stop_disables_and_holds(arm):
    from std_srvs.srv import Trigger
    send(arm, GOOD)
    arm.ros.wait_for(lambda: arm.status[-1]["holding"] is False, 5, "moving again")
    reply = arm.ros.call(Trigger, "stop")
    assert reply.success
    n = len(arm.arm_cmds)
    arm.ros.wait_for(lambda: arm.status[-1]["enabled"] is False and arm.status[-1]["reason"] == "stopped", 5, "stopped")
    for _ in range(3):
        send(arm, GOOD)
        arm.ros.spin_for(0.2)
    assert arm.arm_cmds[n:] == [], "no motion after stop"


def test_06_go_home_needs_enable(arm):
    from std_srvs.srv import Trigger
    reply = arm.ros.call(Trigger, "go_home")
    assert not reply.success and "disabled" in reply.message
    enable(arm)
    n = len(arm.arm_cmds)
    reply = arm.ros.call(Trigger, "go_home")
    assert reply.success, reply.message
    arm.ros.wait_for(lambda: len(arm.arm_cmds) > n, 5, "home command")
    q_home = np.array(arm.arm_cmds[n].points[0].positions)
    pose = kinematics.fk(q_home)
    np.testing.assert_allclose(pose[:3, 3], [0.3, 0.0, 0.15], atol=2e-3)
    assert arm.arm_cmds[n].points[0].time_from_start.sec >= 2


# The interbotix backend: test_interbotix_backend.py (stand-in API, CI) and
# test_interbotix_upstream.py (the upstream API and a stand-in xs_sdk, where available).
