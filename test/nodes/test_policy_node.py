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
