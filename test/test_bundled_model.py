"""The model shipped in models/ (what `make demo` and the launch files use by default) loads
and acts sensibly on simulator images."""
from pathlib import Path

import numpy as np
import yaml

from crl_ros.learning.policy import Policy
from crl_ros.robot import actions
from crl_ros.sim.widowx import make_env

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "models" / "widowx_stable_crl.pt"


def test_bundled_model_is_the_configured_default_and_small_enough_for_git():
    params = yaml.safe_load((REPO / "config" / "policy_node.yaml").read_text())["/**"]["ros__parameters"]
    assert params["model_path"] == MODEL.name
    assert MODEL.stat().st_size < 50 * 2**20
    assert (REPO / "models" / "MODEL_CARD.md").exists()


def test_bundled_model_acts_within_bounds_and_scores_its_goal():
    policy = Policy.load(MODEL, device="cpu")
    assert policy.algorithm == "stable_crl"
    assert policy.image_shape == (48, 48, 3) and policy.action_names == list(actions.ACTION_NAMES)
    env = make_env("reach", image_size=48)
    obs, info = env.reset(seed=100)
    action = policy.act(obs["image"], info["goal_image"], sample=False)
    assert action.shape == (7,) and np.isfinite(action).all()
    assert (action >= actions.ACTION_LOW - 1e-6).all() and (action <= actions.ACTION_HIGH + 1e-6).all()
    other_goal = env.reset(seed=101, options={"task": "open_drawer"})[1]["goal_image"]
    goal_score = policy.score(info["goal_image"], info["goal_image"])
    assert np.isfinite(goal_score)
    batch = policy.act(np.stack([obs["image"]] * 3), np.stack([info["goal_image"], other_goal, other_goal]),
                       sample=False)
    assert batch.shape == (3, 7)
    np.testing.assert_allclose(batch[0], action, atol=1e-5)
    env.close()


def test_bundled_model_acts_exactly_as_when_it_was_made():
    """The bundled model is the cpu-profile Stable CRL run of models/MODEL_CARD.md (the MC
    critic, normalised actions, the authors' policy network with Xavier init): the fixture
    holds its mean actions and critic scores computed when it was bundled."""
    fixture = np.load(REPO / "test" / "fixtures" / "bundled_model_actions.npz")
    policy = Policy.load(MODEL, device="cpu")
    config = policy.meta.config
    assert (config["critic_loss"], config["normalize_actions"], config["policy_init"]) == ("mc", True, "xavier")
    assert config["eval_sample"] is True  # the authors' evaluation: sampled actions
    # set after training with scripts/model_settings.py (the weights are the fixture's): the
    # gripper opens or closes fully, as arm_node's Interbotix backend does on the real arm
    assert config["eval_gripper"] == "binary" and policy.gripper_mode == "binary"
    mean_head = policy.agent.policy.mean_head
    assert len(mean_head.hidden) == 4 and len(mean_head.norms) == 4
    obs, goal = fixture["obs"], fixture["goal"]
    snapped = policy.act(obs, goal, sample=False)
    policy.gripper_mode = "continuous"
    raw = policy.act(obs, goal, sample=False)
    np.testing.assert_allclose(raw, fixture["actions"], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(snapped[:, :6], raw[:, :6])
    np.testing.assert_array_equal(snapped[:, 6], np.where(raw[:, 6] >= 0.5, 1.0, 0.0))
    np.testing.assert_allclose(policy.score(obs, goal), fixture["scores"], rtol=1e-5, atol=1e-5)


def test_a_model_from_before_the_policy_switches_acts_exactly_as_when_it_was_made():
    """The previous bundled model (kept as a fixture) predates the policy switches (its config
    lacks them): it must load into the network it was trained as (LayerNorm after 3 of the 4
    policy layers, torch's affine LayerNorm, normalised actions) and act with the mean, as it
    did. The fixture holds actions and scores computed before those switches existed."""
    fixture = np.load(REPO / "test" / "fixtures" / "legacy_model_actions.npz")
    policy = Policy.load(REPO / "test" / "fixtures" / "legacy_model_step8500.pt", device="cpu")
    assert not {"layer_norm_kind", "policy_layer_norm_all", "normalize_actions", "eval_sample"} & set(policy.meta.config)
    mean_head = policy.agent.policy.mean_head
    assert len(mean_head.hidden) == 4 and len(mean_head.norms) == 3
    assert {norm.kind for norm in policy.agent.modules() if hasattr(norm, "kind")} == {"torch"}
    obs, goal = fixture["obs"], fixture["goal"]
    np.testing.assert_allclose(policy.act(obs, goal), fixture["actions"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(policy.act(obs, goal), policy.act(obs, goal))  # the mean, not a sample
    np.testing.assert_allclose(policy.score(obs, goal), fixture["scores"], rtol=1e-5, atol=1e-5)
