"""Goal-conditioned IQL (OGBench-style) with advantage-weighted regression for the policy.

Reward 0 when the goal is the next state (that transition reaches it, and ends there), -1
otherwise. Value goals mix: the next state (OGBench's "current state" in its reward
convention), geometric future goals and random dataset frames. V learns an expectile of the
min twin target Q; Q regresses r + gamma * mask * V(s', g). Actor goals are future states.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Literal

import torch

from crl_ros.learning.agents.common import AgentConfig, OfflineAgent
from crl_ros.learning.networks import (GaussianPolicy, GoalConditionedValue, gaussian_log_prob,
                                       images_to_float, soft_update_)


@dataclass
class GCIQLConfig(AgentConfig):
    expectile: float = 0.9
    temperature: float = 1.0  # AWR: weight = exp(temperature * advantage)
    max_awr_weight: float = 100.0
    target_tau: float = 0.005
    value_reached_goal_frac: float = 0.2
    value_geometric_goal_frac: float = 0.5
    value_random_goal_frac: float = 0.3
    actor_goals: Literal["uniform", "geometric"] = "uniform"

    def __post_init__(self) -> None:
        super().__post_init__()
        fracs = (self.value_reached_goal_frac, self.value_geometric_goal_frac, self.value_random_goal_frac)
        if min(fracs) < 0 or abs(sum(fracs) - 1.0) > 1e-6:
            raise ValueError(f"value goal fractions must be >= 0 and sum to 1, got {fracs}")
        if not 0.0 < self.expectile < 1.0:
            raise ValueError(f"expectile must be in (0, 1), got {self.expectile}")


def expectile_loss(diff: torch.Tensor, expectile: float) -> torch.Tensor:
    """Asymmetric L2: |tau - 1(diff < 0)| diff^2 with diff = target - prediction."""
    weight = torch.where(diff > 0, expectile, 1.0 - expectile)
    return (weight * diff.pow(2)).mean()


class GCIQLAgent(OfflineAgent):
    name = "gciql"
    #: state-dict prefixes only training needs: left out of the deployable model.pt
    training_only_prefixes = ("target_critic.",)
    config_class = GCIQLConfig
    config: GCIQLConfig

    def __init__(self, config: GCIQLConfig, image_shape, action_dim, device):
        super().__init__(config, image_shape, action_dim, device)
        self.value = GoalConditionedValue(self.image_shape, 0, config, ensemble_size=1)
        self.critic = GoalConditionedValue(self.image_shape, action_dim, config, ensemble_size=2)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.policy = GaussianPolicy(self.image_shape, action_dim, config, config.policy_std)
        self.to(self.device)
        self._build_optimizer([{"params": m.parameters()} for m in (self.value, self.critic, self.policy)])

    def make_batch(self, sampler, batch_size: int) -> dict[str, torch.Tensor]:
        cfg = self.config
        self.check_sampler(sampler)
        idx = sampler.sample_transitions(batch_size)
        next_idx = idx + 1
        # Draw every candidate and pick per sample, so the random stream is data independent.
        u = sampler.uniform((batch_size,))
        geometric = sampler.geometric_future(idx, cfg.discount)
        random = sampler.random_goals(batch_size)
        value_goal_idx = torch.where(u < cfg.value_reached_goal_frac, next_idx,
                                     torch.where(u < cfg.value_reached_goal_frac + cfg.value_geometric_goal_frac,
                                                 geometric, random))
        actor_goal_idx = (sampler.uniform_future(idx) if cfg.actor_goals == "uniform"
                          else sampler.geometric_future(idx, cfg.discount))
        reached = (value_goal_idx == next_idx).float()
        images = [sampler.images(i) for i in (idx, next_idx, value_goal_idx, actor_goal_idx)]
        images = self.augment(sampler, images, [False, False, True, True]) or images
        obs, next_obs, value_goals, actor_goals = images
        return {"observations": obs, "next_observations": next_obs, "value_goals": value_goals,
                "actor_goals": actor_goals, "actions": sampler.actions(idx),
                "rewards": reached - 1.0, "masks": 1.0 - reached}

    def update(self, batch: dict[str, torch.Tensor], step: int) -> dict[str, torch.Tensor]:
        cfg = self.config
        obs, next_obs = images_to_float(batch["observations"]), images_to_float(batch["next_observations"])
        value_goals, actor_goals = images_to_float(batch["value_goals"]), images_to_float(batch["actor_goals"])
        actions = batch["actions"]
        with self.autocast():
            with torch.no_grad():
                target_q = self.target_critic(obs, value_goals, actions).min(0).values.float()
                next_v, actor_v = self.value(torch.cat([next_obs, obs]),
                                             torch.cat([value_goals, actor_goals]))[0].float().chunk(2)
                actor_q = self.critic(obs, actor_goals, actions).min(0).values.float()
            v = self.value(obs, value_goals)[0].float()
            q = self.critic(obs, value_goals, actions).float()
            mean = self.policy(obs, actor_goals).float()
        value_loss = expectile_loss(target_q - v, cfg.expectile)
        q_target = batch["rewards"] + cfg.discount * batch["masks"] * next_v
        critic_loss = (q - q_target).pow(2).mean(-1).sum()
        advantage = actor_q - actor_v
        awr_weight = torch.exp(cfg.temperature * advantage).clamp(max=cfg.max_awr_weight)
        log_prob = gaussian_log_prob(mean, cfg.policy_std, actions)
        actor_loss = -(awr_weight * log_prob).mean()
        self._step(value_loss + critic_loss + actor_loss)
        soft_update_(self.target_critic, self.critic, cfg.target_tau)
        return {"value_loss": value_loss.detach(), "critic_loss": critic_loss.detach(),
                "actor_loss": actor_loss.detach(), "v_mean": v.detach().mean(), "q_mean": q.detach().mean(),
                "advantage_mean": advantage.mean(), "awr_weight_mean": awr_weight.mean(),
                "actor_log_prob": log_prob.detach().mean(), "actor_mse": (mean.detach() - actions).pow(2).mean()}
