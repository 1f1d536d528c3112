"""arm_node's interbotix backend against a stand-in Interbotix API (test/nodes/fake_interbotix,
both generations' shape and behaviours), as a process: registers written once at start-up
and never in the control loop, a refused command rejected with the arm held, the watchdog
still holding, the gripper rule, and the API's rclpy.shutdown() never ending arm_node."""
import importlib.util
import json

import numpy as np
import pytest

from crl_ros.robot import actions
from interbotix_helpers import GOOD, Q0, REPO, ArmClient, ArmNodeProcess

FAKE_API = REPO / "test" / "nodes" / "fake_interbotix"


@pytest.fixture(scope="module", params=["older", "newer"])
def arm(request, ros, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(f"fake_api_{request.param}")
    log, control = tmp / "api.jsonl", tmp / "control.json"
    env = {"PYTHONPATH": f"{FAKE_API}:{REPO}", "CRL_FAKE_INTERBOTIX_GENERATION": request.param,
           "CRL_FAKE_INTERBOTIX_LOG": str(log), "CRL_FAKE_INTERBOTIX_CONTROL": str(control),
           "CRL_FAKE_INTERBOTIX_START_Q": json.dumps(Q0.tolist())}
    node = ArmNodeProcess(ros, env, backend="interbotix", watchdog_timeout_s=0.4, control_rate_hz=5.0,
                          interbotix_reply_timeout_s=2.0)  # generous: a loaded machine, not a timing test
    client = ArmClient(ros)
    client.wait_ready(node)

    def events(kind=None):
        lines = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
        return [e for e in lines if kind is None or e["event"] == kind]

    yield type("Arm", (), dict(ros=ros, node=node, client=client, events=staticmethod(events), control=control,
                               generation=request.param))
    client.close()
    node.interrupt()


def test_01_api_started_in_its_own_process_with_its_generation(arm):
    [started] = arm.events("started")
    assert started["generation"] == arm.generation
    assert started["pid"] != arm.node.proc.pid  # the API's rclpy.init() ran elsewhere
    assert f"Interbotix API, {arm.generation} generation" in arm.node.log()


def test_02_timing_registers_written_once_at_start_up(arm):
    registers = arm.events("set_motor_registers")
    assert [(e["reg"], e["value"]) for e in registers] == [("Profile_Velocity", 200), ("Profile_Acceleration", 50)]
    arm.client.enable()
    arm.client.actions(5)
    arm.ros.wait_for(lambda: len(arm.events("joint_group")) >= 5, 10, "5 group commands")
    assert arm.events("set_motor_registers") == registers, "no register writes in the control loop"
    expected, _, _ = actions.apply_ee_delta(Q0, np.array(GOOD), 0.2)
    np.testing.assert_allclose(arm.events("joint_group")[0]["cmd"], expected, atol=1e-6)
    assert arm.events("grasp") and not arm.events("release")  # gripper 0: closed, commanded once
    assert arm.client.status[-1]["rejected"] == 0


def test_03_gripper_opens_at_or_above_one_half_commanded_only_on_change(arm):
    """crl_ros.learning.gripper.snap_gripper: >= 0.5 opens; the API is called when that changes."""
    before = len(arm.events())
    for opening in (0.5, 0.9, 0.49, 0.1, 0.7):
        arm.client.send(GOOD[:6] + [opening])
        arm.ros.spin_for(0.2)
    arm.ros.wait_for(lambda: len(arm.events("joint_group")) >= 10, 10, "10 group commands")
    grips = [e["event"] for e in arm.events()[before:] if e["event"] in ("grasp", "release")]
    assert grips == ["release", "grasp", "release"]


def test_04_watchdog_holds_at_the_measured_position(arm):
    arm.ros.wait_for(lambda: arm.client.status and arm.client.status[-1]["reason"].startswith("watchdog"), 5,
                     "watchdog hold")
    n = len(arm.events("joint_group"))
    np.testing.assert_allclose(arm.events("joint_group")[-1]["cmd"], Q0)
    arm.ros.spin_for(1.0)
    assert len(arm.events("joint_group")) == n, "nothing after the hold"


def test_05_refused_command_is_rejected_and_the_arm_holds(arm):
    arm.control.write_text(json.dumps({"velocity_limit": 0.01}))  # every step is now too fast for the API
    try:
        rejected = arm.client.status[-1]["rejected"]
        n = len(arm.events("joint_group"))
        arm.client.send(GOOD)
        arm.ros.wait_for(lambda: arm.client.status[-1]["rejected"] == rejected + 1, 10, "rejection")
        assert "refused" in arm.client.status[-1]["reason"] and "rad/s" in arm.client.status[-1]["reason"]
        assert arm.events("refused")
        after = arm.events("joint_group")[n:]
        assert len(after) == 1, "only the hold, never the refused target"
        np.testing.assert_allclose(after[0]["cmd"], Q0)
    finally:
        arm.control.write_text("{}")
    arm.client.send(GOOD)  # accepted again once the API accepts
    arm.ros.wait_for(lambda: arm.client.status[-1]["holding"] is False, 10, "moving again")


def test_06_rclpy_shutdown_inside_the_api_does_not_end_arm_node(arm):
    arm.control.write_text(json.dumps({"shutdown_rclpy": True}))
    rejected = arm.client.status[-1]["rejected"]
    arm.client.send(GOOD)
    arm.ros.wait_for(lambda: arm.client.status[-1]["rejected"] == rejected + 1, 10, "rejection")
    assert arm.events("api_shut_rclpy_down")
    assert "Interbotix API error" in arm.client.status[-1]["reason"]
    assert arm.node.alive()
    arm.client.enable(False)  # arm_node's services still answer, its status still flows
    count = len(arm.client.status)
    arm.ros.wait_for(lambda: len(arm.client.status) > count + 2, 5, "status after the API's shutdown")
    assert arm.client.status[-1]["enabled"] is False


def test_07_ctrl_c_closes_the_api_and_arm_node_exits_cleanly(arm):
    assert arm.node.interrupt() == 0, arm.node.log()
    assert "Traceback" not in arm.node.log()
    assert arm.events("shutdown" if arm.generation == "older" else "robot_shutdown")


@pytest.mark.skipif(importlib.util.find_spec("interbotix_xs_modules") is not None,
                    reason="the Interbotix API is installed here")
def test_without_the_api_arm_node_says_what_is_missing_and_exits(ros):
    node = ArmNodeProcess(ros, {"PYTHONPATH": str(REPO)}, backend="interbotix")
    try:
        node.proc.wait(120)
    finally:
        code = node.interrupt()
    assert code == 1
    assert "cannot start: backend 'interbotix' needs the Interbotix ROS 2 packages" in node.log()
    assert "Traceback" not in node.log()
