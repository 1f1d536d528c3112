import copy
import math

import numpy as np
import pytest
import torch
from synthetic_data import synthetic_dataset

from crl_ros.learning.agents import default_config, make_agent
from crl_ros.learning.agents.gciql import expectile_loss
from crl_ros.learning.agents.stable_crl import (classifier_accuracy, mc_critic_loss, td_critic_loss,
                                                td_importance_weight)
from crl_ros.learning.config import apply_overrides
from crl_ros.learning.networks import images_to_float
from crl_ros.learning.sampler import Sampler

SMALL = ["hidden_width=32", "hidden_depth=2", "encoder_channels=[8, 8, 8]", "batch_size=16"]


def bce(logit, label):
    p = 1 / (1 + math.exp(-logit))
    return -(label * math.log(p) + (1 - label) * math.log(1 - p))


def test_mc_loss_equals_hand_computed_bce():
    logits = torch.tensor([[2.0, -1.0, 0.5], [0.3, 1.5, -2.0], [-0.7, 0.2, 0.9]], dtype=torch.float64)
    b = 3
    expected = 0.0
    for i in range(b):
        for j in range(b):
            expected += bce(logits[i, j].item(), 1.0) if i == j else bce(logits[i, j].item(), 0.0) / (b - 1)
    expected /= b
    torch.testing.assert_close(mc_critic_loss(logits[None]).item(), expected)
    # Twin critics: each critic's loss is added; all-zero logits cost log 2 (diagonal) + log 2 (row).
    twin = torch.stack([logits, torch.zeros_like(logits)])
    torch.testing.assert_close(mc_critic_loss(twin).item(), expected + 2 * math.log(2))


def test_td_loss_equals_hand_computed():
    pos = torch.tensor([[1.0, -0.5]], dtype=torch.float64)
    neg = torch.tensor([[0.2, -1.2]], dtype=torch.float64)
    w = torch.tensor([3.0, 0.5], dtype=torch.float64)
    gamma = 0.9
    expected = sum((1 - gamma) * bce(pos[0, i].item(), 1) + gamma * w[i].item() * bce(neg[0, i].item(), 1)
                   + bce(neg[0, i].item(), 0) for i in range(2)) / 2
    torch.testing.assert_close(td_critic_loss(pos, neg, w, gamma).item(), expected)


def test_td_weight_is_odds_clipped_to_0_20():
    logits = torch.tensor([-50.0, -2.0, 0.0, 1.0, math.log(20.0) + 0.01, 10.0, 100.0])
    w = td_importance_weight(logits, 20.0)
    p = torch.sigmoid(logits.double())
    torch.testing.assert_close(w[:4].double(), (p / (1 - p))[:4], rtol=1e-5, atol=1e-12)
    assert w.min().item() >= 0.0 and w[0].item() < 1e-20
    assert torch.equal(w[4:], torch.full((3,), 20.0))
    assert torch.isfinite(w).all()


def test_classifier_accuracy():
    logits = torch.tensor([[3.0, 1.0, 0.0], [0.0, -1.0, 2.0], [0.0, 0.0, 5.0]])
    assert classifier_accuracy(logits).item() == pytest.approx(2 / 3)


def test_expectile_loss_is_asymmetric():
    diff = torch.tensor([1.0, -1.0])
    assert expectile_loss(diff[:1], 0.9).item() == pytest.approx(0.9)
    assert expectile_loss(diff[1:], 0.9).item() == pytest.approx(0.1)


@pytest.fixture(scope="module")
def sampler():
    return Sampler(synthetic_dataset(), "cpu", seed=0)


@pytest.mark.parametrize("name, extra", [
    ("stable_crl", []),
    ("stable_crl", ["critic_loss=mc", "augment_terms=[bc, critic, actor_q]"]),
    ("stable_crl", ["twin_critics=false", "layer_norm=false", "cold_init=false", "augment=false"]),
    ("gcbc", []),
    ("gciql", []),
])
def test_update_runs_and_returns_finite_scalars(sampler, name, extra):
    torch.manual_seed(0)
    cfg = apply_overrides(default_config(name), SMALL + extra)
    agent = make_agent(name, cfg, (32, 32, 3), 7, "cpu")
    before = copy.deepcopy(agent.state_dict())
    for step in range(3):
        info = agent.update(agent.make_batch(sampler, cfg.batch_size), step)
    assert info and all(v.dim() == 0 and torch.isfinite(v) for v in info.values()), info
    assert all(not v.requires_grad for v in info.values())
    after = agent.state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert any(k.startswith("policy.") for k in changed)
    assert all(isinstance(v, torch.Tensor) for v in after.values())
    obs = sampler.images(torch.arange(4))
    with torch.no_grad():
        assert agent.act(obs, obs).shape == (4, 7)
        score = agent.score(obs, obs)
    assert (score is not None) == (name == "stable_crl")


@pytest.mark.parametrize("name", ["stable_crl", "gcbc", "gciql"])
def test_policy_std_is_in_raw_action_units_by_default(name):
    """normalize_actions=false (the authors'): the batch's actions are the dataset's and the
    BC log-likelihood is N(a_data; mean, 0.15^2) on them; true: z-scored, and an agent refuses
    a sampler that disagrees with its config."""
    dataset = synthetic_dataset()
    sampler = Sampler(dataset, "cpu", seed=0)
    cfg = apply_overrides(default_config(name), SMALL + ["augment=false"])
    assert cfg.normalize_actions is False and cfg.policy_std == 0.15
    agent = make_agent(name, cfg, (32, 32, 3), 7, "cpu")
    batch = agent.make_batch(sampler, cfg.batch_size)
    raw_rows = {tuple(row) for row in dataset.actions.astype(np.float32).tolist()}
    assert all(tuple(row) in raw_rows for row in batch["actions"].tolist())
    goals = batch["actor_goals" if name == "gciql" else "goals"]
    with torch.no_grad():
        mean = agent.policy(images_to_float(batch["observations"]), images_to_float(goals))
    expected = torch.distributions.Normal(mean, 0.15).log_prob(batch["actions"]).sum(-1).mean()
    info = agent.update(batch, 0)
    torch.testing.assert_close(info["actor_log_prob"], expected, rtol=1e-4, atol=1e-3)
    with pytest.raises(ValueError, match="normalize_actions"):
        agent.make_batch(Sampler(dataset, "cpu", seed=0, normalize_actions=True), cfg.batch_size)
    normalised = make_agent(name, apply_overrides(cfg, ["normalize_actions=true"]), (32, 32, 3), 7, "cpu")
    z = normalised.make_batch(Sampler(dataset, "cpu", seed=0, normalize_actions=True), cfg.batch_size)["actions"]
    assert z.abs().max() < 5 and not any(tuple(row) in raw_rows for row in z.tolist())
    with pytest.raises(ValueError, match="normalize_actions"):
        normalised.make_batch(sampler, cfg.batch_size)


def test_raw_actions_much_smaller_than_policy_std_warn():
    dataset = synthetic_dataset()
    dataset.actions = (dataset.actions * 0.001).astype(np.float32)
    agent = make_agent("gcbc", apply_overrides(default_config("gcbc"), SMALL), (32, 32, 3), 7, "cpu")
    with pytest.warns(UserWarning, match="normalize_actions=true"):
        agent.make_batch(Sampler(dataset, "cpu", seed=0), 8)


def test_crl_target_is_soft_updated_and_actor_q_leaves_critic_alone(sampler):
    cfg = apply_overrides(default_config("stable_crl"), SMALL + ["bc_coef=0", "cold_init=false"])
    agent = make_agent("stable_crl", cfg, (32, 32, 3), 7, "cpu")
    batch = agent.make_batch(sampler, cfg.batch_size)
    critic_before = copy.deepcopy(agent.critic)
    target_before = copy.deepcopy(agent.target_critic)
    # With bc_coef = 0 the actor loss is only the Q term: its gradient must reach the policy only.
    _, _, obs_features, goal_repr = agent._critic_loss(batch)
    actor_loss, _ = agent._actor_loss(batch, obs_features, goal_repr)
    actor_loss.backward()
    assert all(p.grad is None for p in agent.critic.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in agent.policy.parameters())
    agent.optimizer.zero_grad(set_to_none=True)
    agent.update(batch, 0)
    for online, target, old_target in zip(agent.critic.parameters(), agent.target_critic.parameters(),
                                          target_before.parameters()):
        torch.testing.assert_close(target, 0.995 * old_target + 0.005 * online)
    assert not all(torch.equal(a, b) for a, b in zip(critic_before.parameters(), agent.critic.parameters()))


def test_gciql_batch_rewards_and_goal_mix(sampler):
    cfg = apply_overrides(default_config("gciql"), SMALL)
    agent = make_agent("gciql", cfg, (32, 32, 3), 7, "cpu")
    batch = agent.make_batch(sampler, 4000)
    reached = batch["rewards"] == 0
    assert torch.equal(batch["masks"], 1.0 - reached.float())
    assert set(batch["rewards"].unique().tolist()) <= {0.0, -1.0}
    # 20% next-state goals plus the geometric draws with offset 0 (~10% of 50% at gamma 0.99
    # truncated on these short episodes), plus a few random hits.
    assert 0.2 < reached.float().mean().item() < 0.35


def test_agent_and_sampler_state_resume_exactly():
    cfg = apply_overrides(default_config("stable_crl"), SMALL + ["augment_prob=0.5"])
    dataset = synthetic_dataset()

    def run(agent, sampler, steps):
        for step in range(steps):
            agent.update(agent.make_batch(sampler, cfg.batch_size), step)

    torch.manual_seed(1)
    agent, sampler = make_agent("stable_crl", cfg, (32, 32, 3), 7, "cpu"), Sampler(dataset, "cpu", seed=3)
    run(agent, sampler, 2)
    saved = (copy.deepcopy(agent.state_dict()), copy.deepcopy(agent.optimizer_state()),
             copy.deepcopy(sampler.state_dict()))
    run(agent, sampler, 3)

    torch.manual_seed(99)  # a different initialisation, overwritten by the saved state
    resumed, resumed_sampler = make_agent("stable_crl", cfg, (32, 32, 3), 7, "cpu"), Sampler(dataset, "cpu", seed=0)
    resumed.load_state_dict(saved[0])
    resumed.load_optimizer_state(saved[1])
    resumed_sampler.load_state_dict(saved[2])
    run(resumed, resumed_sampler, 3)
    for key, value in agent.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key
