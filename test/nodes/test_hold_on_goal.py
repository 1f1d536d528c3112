"""policy_node's hold_on_goal: after hold_ticks goal scores at or above the model's calibrated
threshold it publishes no more actions and goal_reached (latched) turns true; a new goal
resets it; a model without a threshold is refused at start. In the composed graph (sim,
camera, goal, policy and arm nodes in one process, as `crl reach-goal --until-reached` runs
them) the arm then holds (arm_node's watchdog), and the episode ends on goal_reached."""
import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from crl_ros.learning.calibration import GoalCalibration
from crl_ros.learning.checkpoint import set_calibration
from crl_ros.nodes import common

REPO = Path(__file__).resolve().parents[2]
MODEL = REPO / "models" / "widowx_stable_crl.pt"


class _ScriptedScores:
    """Stands in for Policy: zero actions, goal scores from a list (the last one repeats)."""
    image_shape = (48, 48, 3)
    samples_by_default = False

    def __init__(self, scores, threshold=1.0, ticks=2):
        self.scores = list(scores)
        self.meta = argparse.Namespace(calibration=GoalCalibration(threshold, ticks).to_dict() if threshold else None)
        self.scored = threading.Semaphore(0)

    def act(self, obs, goal, sample=None):
        return np.zeros(7, np.float32)

    def score(self, obs, goal):
        return self.scores.pop(0) if len(self.scores) > 1 else self.scores[0]

    def watch(self, node):
        """Release `scored` once the node has taken each score into account (follow-up thread)."""
        update = node._update_goal_hold

        def counted(*args):
            update(*args)
            self.scored.release()
        node._update_goal_hold = counted
        return node


def _act_once(node, fake, ros):
    node.observation = common.image_msg(np.zeros((48, 48, 3), np.uint8), node.get_clock().now().to_msg())
    before = node.counts["acted"]
    node.step()
    if node.counts["acted"] > before:
        assert fake.scored.acquire(timeout=20), "no score computed"


def test_hold_on_goal_stops_acting_after_the_ticks_and_a_new_goal_resumes(ros):
    from rclpy.parameter import Parameter
    from std_msgs.msg import Bool, Float32MultiArray

    from crl_ros.nodes.policy_node import PolicyNode

    fake = _ScriptedScores([0.0, 2.0, 0.5, 2.0, 1.0, 3.0, 3.0], threshold=1.0, ticks=2)
    node = fake.watch(PolicyNode("policy_hold", policy=fake, context=ros.context,
                                 parameter_overrides=[Parameter("hold_on_goal", value=True)]))
    reached, actions = [], []
    ros.node.create_subscription(Bool, "goal_reached", reached.append, common.latched_qos())
    ros.node.create_subscription(Float32MultiArray, "action", actions.append, common.reliable_qos())
    try:
        assert (node.goal_threshold, node.hold_ticks) == (1.0, 2)
        ros.wait_for(lambda: node.goal_reached_pub.get_subscription_count() > 0, 20, "goal_reached subscription")
        node.on_goal(common.image_msg(np.full((48, 48, 3), 9, np.uint8)))
        # scores 0, 2, 0.5 (the run breaks), 2, 1 (at the threshold counts): reached after the 5th
        for _ in range(5):
            _act_once(node, fake, ros)
        assert node.counts["acted"] == 5 and node._goal_reached
        for _ in range(3):  # holding: the policy may still be asked, but no action goes out
            _act_once(node, fake, ros)
        assert node.counts["acted"] == 5 and node.counts["holding"] == 3
        ros.wait_for(lambda: reached and reached[-1].data and len(actions) == 5, 20, "goal_reached true")
        ros.spin_for(0.3)
        assert len(actions) == 5
        # a new goal: not reached any more, acting again
        node.on_goal(common.image_msg(np.full((48, 48, 3), 3, np.uint8)))
        ros.wait_for(lambda: reached and not reached[-1].data, 20, "goal_reached false after a new goal")
        _act_once(node, fake, ros)
        assert node.counts["acted"] == 6
    finally:
        node.destroy_node()


def test_a_score_for_a_replaced_goal_counts_for_nothing(ros):
    from rclpy.parameter import Parameter

    from crl_ros.nodes.policy_node import PolicyNode

    fake = _ScriptedScores([5.0], threshold=1.0, ticks=1)
    node = PolicyNode("policy_hold_old_goal", policy=fake, context=ros.context,
                      parameter_overrides=[Parameter("hold_on_goal", value=True)])
    try:
        node.on_goal(common.image_msg(np.full((48, 48, 3), 9, np.uint8)))
        old_goal = node.goal
        node.on_goal(common.image_msg(np.full((48, 48, 3), 4, np.uint8)))
        node._update_goal_hold(5.0, old_goal)
        assert not node._goal_reached
        node._update_goal_hold(5.0, node.goal)
        assert node._goal_reached
    finally:
        node.destroy_node()


def test_hold_on_goal_without_a_threshold_is_refused_at_start_and_off_by_default(ros):
    from rclpy.parameter import Parameter

    from crl_ros.nodes.policy_node import PolicyNode

    with pytest.raises(ValueError, match="no goal-reached threshold.*crl calibrate"):
        PolicyNode("policy_hold_uncalibrated", policy=_ScriptedScores([9.0], threshold=None), context=ros.context,
                   parameter_overrides=[Parameter("hold_on_goal", value=True)])
    fake = _ScriptedScores([9.0], threshold=None)
    node = fake.watch(PolicyNode("policy_hold_off", policy=fake, context=ros.context))  # default: off, any model
    try:
        node.on_goal(common.image_msg(np.full((48, 48, 3), 9, np.uint8)))
        for _ in range(4):
            _act_once(node, fake, ros)
        assert node.counts["acted"] == 4 and not node._goal_reached
    finally:
        node.destroy_node()
    node = PolicyNode("policy_hold_ticks", policy=_ScriptedScores([0.0], ticks=4), context=ros.context,
                      parameter_overrides=[Parameter("hold_on_goal", value=True), Parameter("hold_ticks", value=7)])
    try:
        assert node.hold_ticks == 7  # the parameter over the model's 4
    finally:
        node.destroy_node()


def _always_reached_model(tmp_path: Path, ticks: int = 3) -> Path:
    """The bundled model with a threshold set artificially low: every score passes it."""
    calibration = GoalCalibration(threshold=-1e6, ticks=ticks, measured={"note": "test: always reached"})
    return set_calibration(MODEL, calibration.to_dict(), out=tmp_path / "always_reached.pt")


def test_hold_on_goal_stops_the_arm_in_the_composed_graph(tmp_path):
    """The one-process deploy graph in sim: once goal_reached is true, policy_node publishes
    no further action, arm_node's watchdog holds the arm (arm_status), and a new goal makes
    it act again."""
    import rclpy
    from std_msgs.msg import Bool, Float32MultiArray, String

    from crl_ros.nodes import reach_goal_bringup as reach_goal

    model = _always_reached_model(tmp_path)
    args = argparse.Namespace(sim=True, task="reach", seed=101, goal=None, model=str(model), device="cpu",
                              timeout=30.0, gif=None, enable=False, until_reached=True)
    model_name, policy = reach_goal.check_inputs(args)
    rclpy.init(domain_id=1 + (os.getpid() + 37) % 100)
    nodes, executor = [], None
    try:
        sim, policy_node = reach_goal._start_nodes(args, model_name, policy, nodes)
        watcher = rclpy.create_node("hold_watcher")
        nodes.append(watcher)
        actions, reached, status = [], [], []
        watcher.create_subscription(Float32MultiArray, "action", actions.append, common.reliable_qos())
        watcher.create_subscription(Bool, "goal_reached", reached.append, common.latched_qos())
        watcher.create_subscription(String, "arm_status", lambda m: status.append(json.loads(m.data)),
                                    common.latched_qos())
        executor = reach_goal.GraphExecutor(nodes)
        ok, reason = reach_goal._set_sim_goal(watcher, sim)
        assert ok, reason

        def wait(predicate, seconds, what):
            end = time.monotonic() + seconds
            while not predicate():
                assert time.monotonic() < end, f"timed out waiting for {what}: counts {policy_node.counts}"
                time.sleep(0.05)

        wait(lambda: reached and reached[-1].data, 90, "goal_reached true")
        acted = policy_node.counts["acted"]
        assert acted >= 3  # three scores above the threshold, one per action
        wait(lambda: policy_node.counts["holding"] >= 5, 30, "ticks while holding")
        assert policy_node.counts["acted"] == acted
        wait(lambda: status and status[-1]["holding"], 10, "arm_node holding")
        assert "watchdog" in status[-1]["reason"] and status[-1]["enabled"], status[-1]
        time.sleep(0.5)
        assert len(actions) == acted, "an action was published after goal_reached"
        # a new goal image: goal_reached false, acting again
        ok, reason = reach_goal._set_sim_goal(watcher, sim)
        assert ok, reason
        wait(lambda: policy_node.counts["acted"] > acted, 60, "actions after a new goal")
        assert any(not m.data for m in reached[1:])
    finally:
        reach_goal.stop_nodes(executor, nodes)
        rclpy.try_shutdown()


def _reach_goal(*args, timeout=240) -> subprocess.CompletedProcess:
    env = dict(os.environ, ROS_DOMAIN_ID=str(1 + (os.getpid() + 43) % 100), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
               PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, "-m", "crl_ros.cli", "reach-goal", *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


def test_reach_goal_until_reached_ends_on_goal_reached_and_needs_a_threshold(tmp_path):
    """`crl reach-goal --until-reached`: ends when goal_reached comes (here after 3 scores,
    long before `push_block` seed 101 is done: FALSE REACHED, exit 1); a model without a
    threshold is refused before any node starts."""
    model = _always_reached_model(tmp_path)
    result = _reach_goal("--sim", "--task", "push_block", "--seed", "101", "--model", str(model), "--device", "cpu",
                         "--timeout", "60", "--until-reached")
    out = result.stdout + result.stderr
    verdicts = [line for line in result.stdout.splitlines() if line.startswith(("SUCCESS", "TIMEOUT", "FALSE"))]
    assert len(verdicts) == 1 and verdicts[0].startswith("FALSE REACHED: task push_block (seed 101)"), out[-3000:]
    assert verdicts[0].endswith("ended on goal_reached") and result.returncode == 1, out[-3000:]
    refused = _reach_goal("--sim", "--model", str(MODEL), "--until-reached", timeout=120)
    assert refused.returncode == 2 and "needs a goal-reached threshold" in refused.stderr, refused.stderr[-3000:]
    assert "[INFO]" not in refused.stdout + refused.stderr
