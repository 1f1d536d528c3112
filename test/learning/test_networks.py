import math

import numpy as np
import pytest
import torch
from torch import nn

from crl_ros.learning.agents import config_from_checkpoint, default_config, make_agent
from crl_ros.learning.config import apply_overrides, config_to_dict
from crl_ros.learning.networks import (MLP, ConvEncoder, EnsembleLayerNorm, EnsembleLinear, NetworkConfig,
                                       RELU_GAIN)

SMALL = ["hidden_width=64", "hidden_depth=4", "encoder_channels=[8, 16, 16]", "batch_size=8"]


def _agent(name="stable_crl", extra=(), image_shape=(48, 48, 3)):
    cfg = apply_overrides(default_config(name), SMALL + list(extra))
    return make_agent(name, cfg, image_shape, 7, "cpu")


def test_encoder_output_dim_matches_paper():
    encoder = ConvEncoder((48, 48), 3, NetworkConfig())
    assert encoder.output_dim == 6 * 6 * 64 == encoder(torch.zeros(2, 3, 48, 48)).shape[1]
    norms = [m for m in encoder.modules() if isinstance(m, nn.LayerNorm)]
    assert [tuple(n.normalized_shape) for n in norms] == [(32, 12, 12), (64, 6, 6), (64, 6, 6)]


@pytest.mark.parametrize("size, channels", [(32, 3), (64, 6), (40, 3)])
def test_encoder_generic_in_size_and_channels(size, channels):
    encoder = ConvEncoder((size, size), channels, NetworkConfig(encoder_channels=(4, 4, 4)))
    assert encoder(torch.zeros(1, channels, size, size)).shape == (1, encoder.output_dim)
    with pytest.raises(ValueError, match="too small"):
        ConvEncoder((2, 2), 3, NetworkConfig())


def test_mlp_layer_norm_on_hidden_layers_except_last():
    mlp = MLP(10, 3, width=16, depth=4, layer_norm=True, ensemble_size=2)
    assert len(mlp.hidden) == 4 and len(mlp.norms) == 3
    assert len(MLP(10, 3, 16, 4, layer_norm=False).norms) == 0
    assert len(MLP(10, 3, 16, 4, layer_norm=True, norm_last_hidden=True).norms) == 4
    assert len(MLP(10, 3, 16, 4, layer_norm=False, norm_last_hidden=True).norms) == 0
    assert mlp(torch.zeros(5, 10)).shape == (2, 5, 3)


def _hand_layer_norm(x, kind, weight, bias):
    """The two LayerNorms written out in float64 numpy."""
    x = np.asarray(x, np.float64)
    centred = x - x.mean(-1, keepdims=True)
    if kind == "authors":  # bias, no gain, unbiased std + 1e-6 outside the sqrt
        return centred / (np.sqrt((centred ** 2).sum(-1, keepdims=True) / (x.shape[-1] - 1)) + 1e-6) + bias
    return centred / np.sqrt((centred ** 2).mean(-1, keepdims=True) + 1e-5) * weight + bias


@pytest.mark.parametrize("kind", ["authors", "torch"])
def test_layer_norm_kinds_match_their_formulas(kind):
    torch.manual_seed(0)
    norm = EnsembleLayerNorm(1024, ensemble_size=2, kind=kind)
    with torch.no_grad():
        for p in norm.parameters():
            p.normal_()
    names = {n for n, _ in norm.named_parameters()}
    assert names == ({"bias"} if kind == "authors" else {"weight", "bias"})
    x = 3.0 * torch.randn(2, 5, 1024) + 1.5  # stacked ensemble input [E, B, D]
    weight = norm.weight.detach().numpy() if kind == "torch" else None
    expected = _hand_layer_norm(x.numpy(), kind, weight, norm.bias.detach().numpy())
    out = norm(x)
    np.testing.assert_allclose(out.detach().numpy(), expected, rtol=1e-5, atol=1e-5)
    if kind == "authors":  # the two differ by sqrt(n / (n - 1)) ~ 1.0005 at n = 1024
        torch_norm = nn.functional.layer_norm(x, (1024,)) + norm.bias
        assert (out - torch_norm).abs().max() > 1e-4
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert norm(x.bfloat16()).dtype == torch.float32  # normalised in fp32
    x.requires_grad_(True)
    (norm(x, detach_params=True) ** 2).sum().backward()
    assert x.grad is not None and norm.bias.grad is None


@pytest.mark.parametrize("kind", ["authors", "torch"])
def test_ensemble_members_are_independent_mlps(kind):
    torch.manual_seed(0)
    mlp = MLP(6, 2, width=8, depth=2, layer_norm=True, ensemble_size=2, layer_norm_kind=kind)
    with torch.no_grad():
        for p in mlp.norms.parameters():
            p.normal_()
    x = torch.randn(4, 6)
    out = mlp(x)
    for e in range(2):
        h = x
        for i, layer in enumerate(mlp.hidden):
            h = h @ layer.member_weight(e) + layer.bias[e]
            if i < len(mlp.norms):
                norm = mlp.norms[i]
                weight = norm.weight[e].detach().numpy() if kind == "torch" else None
                h = torch.from_numpy(_hand_layer_norm(h.detach().numpy(), kind, weight,
                                                      norm.bias[e].detach().numpy())).float()
            h = h.relu()
        torch.testing.assert_close(out[e], h @ mlp.output.member_weight(e) + mlp.output.bias[e])
    torch.testing.assert_close(mlp(x[None].expand(2, -1, -1)), out)


def _mlp_norm_kinds(agent):
    return {m.kind for m in agent.modules() if isinstance(m, EnsembleLayerNorm)}


@pytest.mark.parametrize("algo", ["stable_crl", "gcbc", "gciql"])
def test_policy_mlp_has_layer_norm_after_all_4_hidden_layers_critics_after_3(algo):
    agent = _agent(algo)
    assert len(agent.policy.mean_head.hidden) == 4 and len(agent.policy.mean_head.norms) == 4
    critics = ([agent.critic.sa_head, agent.critic.goal_head] if algo == "stable_crl" else
               [agent.critic.head, agent.value.head] if algo == "gciql" else [])
    for head in critics:
        assert len(head.hidden) == 4 and len(head.norms) == 3
    assert _mlp_norm_kinds(agent.policy) == {"torch"}
    assert all(_mlp_norm_kinds(head) == {"authors"} for head in critics)
    legacy = _agent(algo, ["policy_layer_norm_all=false", "layer_norm_kind=torch"])
    assert len(legacy.policy.mean_head.norms) == 3 and _mlp_norm_kinds(legacy) == {"torch"}
    # the conv encoders keep torch's LayerNorm (algorithm.md states no variant for them)
    assert any(isinstance(m, nn.LayerNorm) for m in agent.policy.encoder.modules())


@pytest.mark.parametrize("algo", ["stable_crl", "gcbc", "gciql"])
def test_policy_init_authors_uniform_1e3_and_xavier_switch(algo):
    torch.manual_seed(0)
    policy = _agent(algo).policy
    mlp = policy.mean_head
    for layer in mlp.hidden:
        for p in (layer.weight, layer.bias):
            assert p.abs().max().item() <= 1e-3
            assert abs(p.std().item() - 1e-3 / math.sqrt(3)) < 0.2e-3  # uniform over the whole range
    for p in (mlp.output.weight, mlp.output.bias):
        assert 0 < p.abs().max().item() <= 1e-3 and torch.count_nonzero(p) == p.numel()
    for conv in (m for m in policy.encoder.modules() if isinstance(m, nn.Conv2d)):
        k = conv.kernel_size[0] * conv.kernel_size[1]
        assert _within_xavier(conv.weight, conv.in_channels * k, conv.out_channels * k, RELU_GAIN)
    xavier = _agent(algo, ["policy_init=xavier"]).policy.mean_head
    for layer in xavier.hidden:
        assert _within_xavier(layer.weight, layer.in_dim, layer.out_dim, RELU_GAIN)
        assert torch.count_nonzero(layer.bias) == 0
    assert 0 < xavier.output.weight.abs().max().item() <= 1e-3 and torch.count_nonzero(xavier.output.bias) == 0


@pytest.mark.parametrize("algo", ["stable_crl", "gciql"])
def test_new_policy_mlp_uses_torch_layer_norm_with_gain_and_the_critic_the_bias_only_one(algo):
    """The authors' policy MLP normalises with nn.LayerNorm(hidden); their critic MLP with a
    bias-only LayerNorm over the unbiased std."""
    torch.manual_seed(0)
    agent = _agent(algo)
    policy_norms = list(agent.policy.mean_head.norms)
    critic_heads = [agent.critic.sa_head, agent.critic.goal_head] if algo == "stable_crl" else \
                   [agent.critic.head, agent.value.head]
    critic_norms = [norm for head in critic_heads for norm in head.norms]
    assert policy_norms and critic_norms
    for norm in policy_norms:
        assert {n for n, _ in norm.named_parameters()} == {"weight", "bias"}
        with torch.no_grad():
            norm.weight.normal_()
            norm.bias.normal_()
        reference = nn.LayerNorm(64)  # torch's: gain and bias, biased variance, eps 1e-5
        with torch.no_grad():
            reference.weight.copy_(norm.weight[0, 0])
            reference.bias.copy_(norm.bias[0, 0])
        x = 2.0 * torch.randn(1, 5, 64) + 0.5
        torch.testing.assert_close(norm(x)[0], reference(x[0]))
    for norm in critic_norms:
        assert {n for n, _ in norm.named_parameters()} == {"bias"} and norm.kind == "authors"
        x = torch.randn(norm.bias.shape[0], 3, 64)
        expected = _hand_layer_norm(x.numpy(), "authors", None, norm.bias.detach().numpy())
        np.testing.assert_allclose(norm(x).detach().numpy(), expected, rtol=1e-5, atol=1e-5)


def test_configs_saved_before_the_switches_get_the_legacy_values():
    saved = config_to_dict(default_config("stable_crl"))
    for key in ("layer_norm_kind", "policy_layer_norm_kind", "policy_layer_norm_all", "policy_init"):
        del saved[key]
    cfg = config_from_checkpoint("stable_crl", saved)
    assert (cfg.layer_norm_kind, cfg.policy_layer_norm_kind, cfg.policy_layer_norm_all, cfg.policy_init) == \
        ("torch", "torch", False, "xavier")
    current = config_from_checkpoint("gcbc", config_to_dict(default_config("gcbc")))
    assert current == default_config("gcbc")  # saved keys win over the legacy values
    with pytest.raises(ValueError, match="no field"):
        config_from_checkpoint("gciql", {"nope": 1})


@pytest.mark.parametrize("algo", ["stable_crl", "gcbc", "gciql"])
@pytest.mark.parametrize("kind", ["authors", "torch"])
def test_a_config_from_before_the_policy_layer_norm_switch_keeps_its_one_kind_for_both(algo, kind):
    """Until policy_layer_norm_kind existed, layer_norm_kind set the critic's and the policy's
    MLP LayerNorm: a saved config naming only it gets its value for both, never the new
    default, and rebuilds the same network (same parameter names and shapes)."""
    saved = config_to_dict(apply_overrides(default_config(algo), SMALL + [f"layer_norm_kind={kind}",
                                                                          f"policy_layer_norm_kind={kind}"]))
    old_format = {k: v for k, v in saved.items() if k != "policy_layer_norm_kind"}
    cfg = config_from_checkpoint(algo, old_format)
    assert (cfg.layer_norm_kind, cfg.policy_layer_norm_kind) == (kind, kind)
    assert cfg == config_from_checkpoint(algo, saved)
    old_agent, agent = (make_agent(algo, c, (48, 48, 3), 7, "cpu") for c in (cfg, config_from_checkpoint(algo, saved)))
    assert {k: v.shape for k, v in old_agent.state_dict().items()} == {k: v.shape for k, v in agent.state_dict().items()}
    assert _mlp_norm_kinds(old_agent) == {kind}
    other = "torch" if kind == "authors" else "authors"  # a new config's two switches stay apart
    split = config_from_checkpoint(algo, {**saved, "policy_layer_norm_kind": other})
    assert (split.layer_norm_kind, split.policy_layer_norm_kind) == (kind, other)


def _within_xavier(weight, fan_in, fan_out, gain):
    bound = gain * math.sqrt(6 / (fan_in + fan_out))
    std = weight.std().item()
    return weight.abs().max().item() <= bound and abs(std - bound / math.sqrt(3)) < 0.15 * bound


def test_cold_init_and_xavier_in_the_critic():
    agent = _agent()
    critic = agent.critic
    for head in (critic.sa_head, critic.goal_head):
        assert head.output.weight.abs().max().item() <= 1e-12
        assert head.output.weight.abs().max().item() > 0
        assert torch.count_nonzero(head.output.bias) == 0
        for layer in head.hidden:
            assert _within_xavier(layer.weight, layer.in_dim, layer.out_dim, RELU_GAIN)
            assert torch.count_nonzero(layer.bias) == 0
    for conv in (m for m in critic.encoder.modules() if isinstance(m, nn.Conv2d)):
        k = conv.kernel_size[0] * conv.kernel_size[1]
        assert _within_xavier(conv.weight, conv.in_channels * k, conv.out_channels * k, RELU_GAIN)
    policy_head = agent.policy.mean_head.output.weight
    assert 1e-6 < policy_head.abs().max().item() <= 1e-3
    warm = _agent(extra=["cold_init=false"]).critic.sa_head.output
    assert _within_xavier(warm.weight, warm.in_dim, warm.out_dim, 1.0)


def test_layer_norm_switch_removes_all_layer_norms():
    def count(agent):
        return sum(isinstance(m, (nn.LayerNorm, EnsembleLayerNorm)) for m in agent.modules())
    assert count(_agent()) > 0 and count(_agent(extra=["layer_norm=false"])) == 0
    assert count(_agent("gciql", ["layer_norm=false"])) == 0


def test_size_switches_change_the_networks():
    agent = _agent(extra=["hidden_width=32", "hidden_depth=2", "repr_dim=8", "twin_critics=false"])
    heads = [m for m in agent.critic.modules() if isinstance(m, EnsembleLinear)]
    assert all(h.ensemble_size == 1 for h in heads)
    assert len(agent.critic.sa_head.hidden) == 2 and agent.critic.sa_head.hidden[0].out_dim == 32
    assert agent.critic.sa_head.output.out_dim == 8
    deep = _agent(extra=["encoder_channels=[8, 8, 8, 8]", "encoder_kernels=[8, 4, 3, 3]",
                         "encoder_strides=[4, 2, 1, 1]", "encoder_paddings=[2, 1, 1, 1]"])
    assert sum(isinstance(m, nn.Conv2d) for m in deep.critic.encoder.modules()) == 4


def test_twin_minimum_is_used_by_score():
    agent = _agent().eval()
    with torch.no_grad():
        # Make the two critics disagree by a known constant: phi_1 = phi_0 + c on a fixed psi direction.
        for head in (agent.critic.sa_head, agent.critic.goal_head):
            head.output.weight.normal_(0, 0.1)
        agent.critic.sa_head.output.bias[1] += 2.0
        agent.critic.goal_head.output.bias[1] += 1.0
    obs = torch.randint(0, 256, (5, 48, 48, 3), dtype=torch.uint8)
    goal = torch.randint(0, 256, (5, 48, 48, 3), dtype=torch.uint8)
    with torch.no_grad():
        score = agent.score(obs, goal)
        obs_f, goal_f = obs.permute(0, 3, 1, 2) / 255, goal.permute(0, 3, 1, 2) / 255
        emb_s, emb_g = agent.critic.encode(obs_f), agent.critic.encode(goal_f)
        action = agent.policy(obs_f, goal_f)
        per_critic = (agent.critic.sa_repr(agent.critic.obs_features(emb_s), action) * agent.critic.goal_repr(emb_g)).sum(-1)
    assert not torch.allclose(per_critic[0], per_critic[1])
    torch.testing.assert_close(score, per_critic.min(0).values)


def test_policy_is_fixed_std_gaussian_untanhed():
    agent = _agent("gcbc", image_shape=(32, 32, 3))
    obs = torch.randint(0, 256, (1, 32, 32, 3), dtype=torch.uint8).expand(1000, -1, -1, -1)
    with torch.no_grad():
        mean = agent.act(obs, obs)
        agent.policy.mean_head.output.bias.fill_(5.0)
        assert (agent.act(obs[:1], obs[:1]) > 4.9).all(), "no tanh squashing"
        samples = agent.act(obs, obs, sample=True)
    assert mean.shape == (1000, 7)
    assert abs(samples.std(0).mean().item() - 0.15) < 0.01


def test_split_first_layer_equals_phi_on_concatenated_input():
    critic = _agent(extra=["cold_init=false"]).critic
    embedding, actions = torch.randn(5, critic.encoder.output_dim), torch.randn(5, 7)
    with torch.no_grad():
        split = critic.sa_repr(critic.obs_features(embedding), actions)
        direct = critic.sa_head(torch.cat([embedding, actions], -1))
    torch.testing.assert_close(split, direct, rtol=1e-4, atol=1e-5)
