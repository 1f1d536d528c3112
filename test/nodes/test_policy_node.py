"""policy_node as a process with the model trained by the pipeline fixture: it acts only
with a goal and a fresh observation; actions follow the documented layout; goal score
and debug image come with them."""
import numpy as np
import pytest

from crl_ros.nodes import common


@pytest.fixture(scope="module")
def policy(ros, pipeline):
    from sensor_msgs.msg import Image
    from std_msgs.msg import Float32, Float32MultiArray

    assert pipeline["model"].exists(), "the pipeline fixture did not produce a model"
    proc = ros.start("policy_node", model_path=str(pipeline["model"]), device="cpu", rate_hz=10.0,
                     max_observation_age_ms=300.0)
    out = {"actions": [], "scores": [], "debug": []}
    ros.node.create_subscription(Float32MultiArray, "action", out["actions"].append, common.reliable_qos())
    ros.node.create_subscription(Float32, "goal_score", out["scores"].append, common.reliable_qos())
    ros.node.create_subscription(Image, "debug_image", out["debug"].append, common.sensor_qos())
    obs_pub = ros.node.create_publisher(Image, "observation", common.sensor_qos())
    goal_pub = ros.node.create_publisher(Image, "goal_image", common.latched_qos())
    ros.wait_for(lambda: obs_pub.get_subscription_count() > 0 and goal_pub.get_subscription_count() > 0, 60,
                 "policy_node subscriptions (model loading)", procs=[proc])
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2, 48, 48, 3), dtype=np.uint8)

    def publish_obs(age_s=0.0, image=images[0]):
        stamp_ns = ros.node.get_clock().now().nanoseconds - int(age_s * 1e9)
        obs_pub.publish(common.image_msg(image, common.ns_to_stamp(stamp_ns)))

    def stream(seconds, age_s=0.0, until=lambda: False):
        end = ros.node.get_clock().now().nanoseconds + seconds * 1e9
        while ros.node.get_clock().now().nanoseconds < end and not until():
            publish_obs(age_s)
            ros.spin_for(1 / 30)

    return type("P", (), dict(out=out, stream=staticmethod(stream), goal_pub=goal_pub, images=images, proc=proc))


def test_1_no_action_without_a_goal(policy, ros):
    policy.stream(1.5)
    assert policy.out["actions"] == []
    assert policy.proc.alive(), policy.proc.log()


def test_2_no_action_on_stale_observations(policy, ros):
    policy.goal_pub.publish(common.image_msg(policy.images[1], ros.node.get_clock().now().to_msg()))
    policy.stream(1.5, age_s=1.0)  # 1 s old frames, max age 300 ms
    assert policy.out["actions"] == []
    assert "old" in policy.proc.log()


def test_3_acts_with_goal_and_fresh_observation(policy, ros):
    actions = policy.out["actions"]
    policy.stream(20.0, until=lambda: len(actions) >= 5)  # the first forward passes are slow on a busy CPU
    assert len(actions) >= 5, policy.proc.log()[-2000:]
    msg = actions[-1]
    assert msg.layout.dim[0].label == "dx,dy,dz,droll,dpitch,dyaw,gripper" and msg.layout.dim[0].size == 7
    values = np.asarray(msg.data)
    assert values.shape == (7,) and np.isfinite(values).all()
    assert np.all(np.abs(values[:3]) <= 0.05 + 1e-6) and 0.0 <= values[6] <= 1.0
    assert policy.out["scores"] and np.isfinite(policy.out["scores"][-1].data)
    ros.wait_for(lambda: policy.out["debug"], 5, "debug image")
    debug = common.image_from_msg(policy.out["debug"][-1])
    assert debug.shape == (48 * 4, 96 * 4, 3)


def test_4_stops_when_observations_stop_and_when_goal_is_cleared(policy, ros):
    ros.spin_for(0.6)  # let the last frame go stale
    n = len(policy.out["actions"])
    ros.spin_for(1.0)
    assert len(policy.out["actions"]) == n, "acted on a stale frame"
    policy.goal_pub.publish(common.empty_image_msg(ros.node.get_clock().now().to_msg()))
    ros.spin_for(0.3)
    n = len(policy.out["actions"])
    policy.stream(1.0)
    assert len(policy.out["actions"]) <= n + 1, "acted without a goal"


def test_5_bad_model_path_fails_fast_with_a_clear_message(ros, tmp_path):
    proc = ros.start("policy_node", name="policy_missing", model_path=str(tmp_path / "nope.pt"))
    assert proc.proc.wait(60) == 1
    assert "nope.pt" in proc.log() and "not found" in proc.log()


def test_6_sample_actions_parameter_reaches_policy_act(ros):
    """sample_actions: auto (the model's eval_sample) / true / false, as a bool or a string
    (``-p sample_actions:=true`` arrives as a bool); anything else fails at start-up."""
    from rclpy.parameter import Parameter

    from crl_ros.nodes.policy_node import PolicyNode

    class FakePolicy:
        image_shape = (48, 48, 3)
        samples_by_default = True

        def __init__(self):
            self.samples = []

        def act(self, obs, goal, sample=None):
            self.samples.append(sample)
            return np.zeros(7, np.float32)

        def score(self, obs, goal):
            return None

    images = np.random.default_rng(1).integers(0, 256, (2, 48, 48, 3), dtype=np.uint8)
    for i, (value, expected) in enumerate([("auto", None), (True, True), (False, False), ("false", False)]):
        fake = FakePolicy()
        node = PolicyNode(f"policy_sample_{i}", policy=fake, context=ros.context,
                          parameter_overrides=[Parameter("sample_actions", value=value)])
        try:
            node.goal = images[1]
            node.observation = common.image_msg(images[0], node.get_clock().now().to_msg())
            node.step()
            assert fake.samples == [expected], (value, fake.samples, node.counts)
        finally:
            node.destroy_node()
    with pytest.raises(ValueError, match="auto, true or false"):
        PolicyNode("policy_sample_bad", policy=FakePolicy(), context=ros.context,
                   parameter_overrides=[Parameter("sample_actions", value="maybe")])


def test_6b_gripper_mode_parameter_sets_the_policys_gripper(ros):
    """gripper_mode: auto keeps the model's eval_gripper; continuous / binary set the
    Policy's gripper_mode (which Policy.act applies); anything else fails at start-up."""
    from rclpy.parameter import Parameter

    from crl_ros.nodes.policy_node import PolicyNode

    class FakePolicy:
        image_shape = (48, 48, 3)
        samples_by_default = True

        def __init__(self):
            self.gripper_mode = "binary"  # the model's setting

        def act(self, obs, goal, sample=None):
            return np.zeros(7, np.float32)

        def score(self, obs, goal):
            return None

    for i, (value, expected) in enumerate([("auto", "binary"), ("continuous", "continuous"), ("binary", "binary")]):
        fake = FakePolicy()
        node = PolicyNode(f"policy_gripper_{i}", policy=fake, context=ros.context,
                          parameter_overrides=[Parameter("gripper_mode", value=value)])
        try:
            assert fake.gripper_mode == expected, value
        finally:
            node.destroy_node()
    with pytest.raises(ValueError, match="auto, continuous or binary"):
        PolicyNode("policy_gripper_bad", policy=FakePolicy(), context=ros.context,
                   parameter_overrides=[Parameter("gripper_mode", value="half")])


class _RecordingPolicy:
    """Stands in for Policy: records which observation it acted on and where score ran."""
    image_shape = (48, 48, 3)
    samples_by_default = False

    def __init__(self):
        import threading
        self.acted_on, self.score_threads = [], []
        self.scored = threading.Event()

    def act(self, obs, goal, sample=None):
        self.acted_on.append(int(obs[0, 0, 0]))
        return np.zeros(7, np.float32)

    def score(self, obs, goal):
        import threading
        self.score_threads.append(threading.current_thread().name)
        self.scored.set()
        return 0.5


def _frame(value: int, age_s: float, node):
    image = np.full((48, 48, 3), value, np.uint8)
    return common.image_msg(image, common.ns_to_stamp(node.get_clock().now().nanoseconds - int(age_s * 1e9)))


def test_7_a_tick_acts_on_the_next_frame_or_at_the_deadline_on_the_newest_fresh_one(ros):
    """frame_wait_ms: a tick waits for the next observation (fresher than the newest at the
    tick) and acts on it; with none within the wait, it acts on the newest if fresh, and a
    stale one is still refused. Driven by calling the callbacks, not by timing."""
    from rclpy.parameter import Parameter

    from crl_ros.nodes.policy_node import PolicyNode

    fake = _RecordingPolicy()
    node = PolicyNode("policy_frame_wait", policy=fake, context=ros.context,
                      parameter_overrides=[Parameter("frame_wait_ms", value=50.0)])
    try:
        node.goal = np.zeros((48, 48, 3), np.uint8)
        node.on_observation(_frame(1, 0.0, node))
        assert fake.acted_on == [], "acted between ticks"
        node.on_tick()
        assert fake.acted_on == [], "acted on the frame that was there before the tick"
        node.on_observation(_frame(2, 0.0, node))
        assert fake.acted_on == [2]
        node.on_observation(_frame(3, 0.0, node))
        assert fake.acted_on == [2], "acted twice for one tick"
        node.on_tick()
        node.on_frame_deadline()  # no frame came: the newest (3) if fresh
        assert fake.acted_on == [2, 3]
        node.on_observation(_frame(4, 1.0, node))  # 1 s old, max age 300 ms
        node.on_tick()
        node.on_frame_deadline()
        assert fake.acted_on == [2, 3] and node.counts["stale"] == 1
        node.on_tick()
        node.on_observation(_frame(5, 1.0, node))  # the frame after the tick, but stale
        assert fake.acted_on == [2, 3] and node.counts["stale"] == 2
        assert node.counts["acted"] == 2
    finally:
        node.destroy_node()
    with pytest.raises(ValueError, match="frame_wait_ms"):
        PolicyNode("policy_frame_wait_bad", policy=_RecordingPolicy(), context=ros.context,
                   parameter_overrides=[Parameter("frame_wait_ms", value=200.0)])  # = the 5 Hz period


def test_8_goal_score_comes_after_the_action_from_another_thread(ros):
    """The critic's score (and the debug image) run on the follow-up thread: step() returns
    with the action published; the score follows, for that action's frame."""
    import threading

    from std_msgs.msg import Float32, Float32MultiArray

    from crl_ros.nodes.policy_node import PolicyNode

    fake = _RecordingPolicy()
    node = PolicyNode("policy_follow_up", policy=fake, context=ros.context)
    actions, scores = [], []
    ros.node.create_subscription(Float32MultiArray, "action", actions.append, common.reliable_qos())
    ros.node.create_subscription(Float32, "goal_score", scores.append, common.reliable_qos())
    try:
        ros.wait_for(lambda: node.score_pub.get_subscription_count() > 0, 20, "score subscription")
        node.goal = np.zeros((48, 48, 3), np.uint8)
        node.observation = _frame(7, 0.0, node)
        node.step()
        assert fake.acted_on == [7]
        assert fake.scored.wait(20), "no score computed"
        assert fake.score_threads == ["policy_follow_up"] != [threading.current_thread().name]
        ros.wait_for(lambda: actions and scores, 20, "action and goal_score")
        assert scores[-1].data == pytest.approx(0.5)
    finally:
        node.destroy_node()
    assert not node._follow_up_thread.is_alive(), "destroy_node left the follow-up thread running"


def test_9_nice_parameter_sets_every_thread_and_a_refusal_is_a_warning(monkeypatch):
    """common.apply_nice: 0 leaves the priority alone; a value reaches every thread of the
    process (in a child, so this test process keeps its priority); no privilege = warning."""
    import os
    import subprocess
    import sys

    code = ("import os, threading, time\n"
            "from crl_ros.nodes import common\n"
            "class N:\n    def get_logger(self):\n        return type('L', (), {'info': print, 'warning': print})()\n"
            "t = threading.Thread(target=time.sleep, args=(5,), daemon=True); t.start()\n"
            "target = min(19, os.getpriority(os.PRIO_PROCESS, 0) + 3)\n"
            "common.apply_nice(N(), target)\n"
            "print(target, sorted({os.getpriority(os.PRIO_PROCESS, int(tid)) for tid in os.listdir('/proc/self/task')}))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    target = out.stdout.split()[-2]
    assert f"running at nice {target}" in out.stdout and out.stdout.split()[-1] == f"[{target}]", out.stdout

    calls, warnings = [], []
    monkeypatch.setattr(os, "setpriority", lambda *a: (_ for _ in ()).throw(PermissionError()))
    logger = type("L", (), {"info": calls.append, "warning": warnings.append})()
    node = type("N", (), {"get_logger": lambda self: logger})()
    common.apply_nice(node, 0)
    assert calls == warnings == []
    common.apply_nice(node, -10)
    assert calls == [] and len(warnings) == 1 and "nice -10 refused" in warnings[0]
