"""Stable Contrastive RL (Zheng et al. 2023): contrastive twin critic + Q/BC actor.

Critic: f(s, a, g) = phi(enc(s), a) . psi(enc(g)), E = 2 twins sharing one encoder.
  "td" (default): positives (s_t, a_t, s_{t+1}); negatives g- = next observation of the
  next batch entry, weighted by w = exp(min twin target logit) (= sigmoid/(1 - sigmoid)),
  clipped to [0, td_weight_clip].
  "mc": BCE on the B x B logits matrix against the identity, off-diagonal terms 1/(B-1),
  positives = geometric future goals.
Actor: (1 - bc_coef) * (-min twin logit at (s, a ~ pi(s, g), g)) + bc_coef * (-log pi(a_data | s, g)).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch.profiler import record_function

from crl_ros.learning.agents.common import AgentConfig, OfflineAgent
from crl_ros.learning.networks import (ContrastiveCritic, GaussianPolicy, gaussian_log_prob,
                                       images_to_float, paired_logits, pairwise_logits, soft_update_)

AUGMENT_TERMS = ("bc", "actor_q", "critic")


@dataclass
class StableCRLConfig(AgentConfig):
    batch_size: int = 2048
    repr_dim: int = 16
    twin_critics: bool = True
    cold_init: bool = True
    critic_loss: Literal["td", "mc"] = "td"
    bc_coef: float = 0.05
    target_tau: float = 0.005
    td_weight_clip: float = 20.0
    # Which loss terms see the augmented images; the authors augment only the BC term's inputs.
    augment_terms: tuple[str, ...] = ("bc",)

    def __post_init__(self) -> None:
        super().__post_init__()
        unknown = set(self.augment_terms) - set(AUGMENT_TERMS)
        if unknown:
            raise ValueError(f"augment_terms {sorted(unknown)} unknown; choose from {list(AUGMENT_TERMS)}")
        if not 0.0 <= self.bc_coef <= 1.0:
            raise ValueError(f"bc_coef must be in [0, 1], got {self.bc_coef}")


def mc_critic_loss(logits: torch.Tensor) -> torch.Tensor:
    """logits [E, B, B] (row i: state-action i against every goal j; goal i is its positive).

    Per row: BCE(l_ii, 1) + sum_{j != i} BCE(l_ij, 0) / (B - 1); mean over rows, sum over critics.
    """
    batch = logits.shape[-1]
    eye = torch.eye(batch, dtype=torch.bool, device=logits.device)
    # BCE(x, 1) = softplus(-x), BCE(x, 0) = softplus(x)
    per_pair = torch.where(eye, F.softplus(-logits), F.softplus(logits) / (batch - 1))
    return per_pair.sum(-1).mean(-1).sum()


def td_importance_weight(target_logits: torch.Tensor, clip: float) -> torch.Tensor:
    """w = clip(sigmoid(Q) / (1 - sigmoid(Q)), 0, clip) with Q the min twin target logit.

    sigmoid(Q) / (1 - sigmoid(Q)) = exp(Q) exactly; exp avoids 1 - sigmoid rounding to 0.
    """
    return torch.exp(target_logits.float()).clamp(0.0, clip)


def td_critic_loss(pos_logits: torch.Tensor, neg_logits: torch.Tensor, weight: torch.Tensor,
                   discount: float) -> torch.Tensor:
    """pos/neg logits [E, B], weight [B]:
    (1 - gamma) BCE(pos, 1) + gamma w BCE(neg, 1) + BCE(neg, 0); mean over B, sum over critics."""
    per_sample = ((1 - discount) * F.softplus(-pos_logits)
                  + discount * weight * F.softplus(-neg_logits)
                  + F.softplus(neg_logits))
    return per_sample.mean(-1).sum()


def classifier_accuracy(logits: torch.Tensor) -> torch.Tensor:
    """Fraction of rows of a [B, B] logits matrix whose argmax is the diagonal."""
    return (logits.argmax(-1) == torch.arange(logits.shape[0], device=logits.device)).float().mean()


class StableCRLAgent(OfflineAgent):
    name = "stable_crl"
    #: state-dict prefixes only training needs: left out of the deployable model.pt
    training_only_prefixes = ("target_critic.",)
    config_class = StableCRLConfig
    config: StableCRLConfig

    def __init__(self, config: StableCRLConfig, image_shape, action_dim, device):
        super().__init__(config, image_shape, action_dim, device)
        self.critic = ContrastiveCritic(self.image_shape, action_dim, config, config.repr_dim,
                                        2 if config.twin_critics else 1, config.cold_init)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.policy = GaussianPolicy(self.image_shape, action_dim, config, config.policy_std)
        self.to(self.device)
        self._build_optimizer([{"params": self.critic.parameters()}, {"params": self.policy.parameters()}])

    def make_batch(self, sampler, batch_size: int) -> dict[str, torch.Tensor]:
        """Observations, actions, geometric future goals (+ next observations for TD) and
        the noise of the reparameterised actions; "augmented_<key>" entries appear only
        when this batch is augmented (probability augment_prob)."""
        cfg = self.config
        self.check_sampler(sampler)
        idx = sampler.sample_transitions(batch_size)
        goal_idx = sampler.geometric_future(idx, cfg.discount)
        batch = {
            "observations": sampler.images(idx),
            "goals": sampler.images(goal_idx),
            "actions": sampler.actions(idx),
            "actor_noise": sampler.standard_normal((batch_size, self.action_dim)),
        }
        if cfg.critic_loss == "td":
            batch["next_observations"] = sampler.images(idx + 1)
            batch["next_action_noise"] = sampler.standard_normal((batch_size, self.action_dim))
        keys = self._augmented_keys()
        shifted = self.augment(sampler, [batch[k] for k in keys], [k == "goals" for k in keys]) if keys else None
        if shifted is not None:
            batch.update({"augmented_" + k: v for k, v in zip(keys, shifted)})
        return batch

    def _augmented_keys(self) -> list[str]:
        terms = self.config.augment_terms if self.config.augment else ()
        keys = {"observations", "goals"} if {"bc", "actor_q"} & set(terms) else set()
        if "critic" in terms:
            keys |= {"observations", "next_observations" if self.config.critic_loss == "td" else "goals"}
        return sorted(keys)

    def _sees_augmented(self, batch: dict[str, torch.Tensor], term: str) -> bool:
        return term in self.config.augment_terms and "augmented_observations" in batch

    def _images(self, batch: dict[str, torch.Tensor], term: str, key: str) -> torch.Tensor:
        return images_to_float(batch["augmented_" + key if self._sees_augmented(batch, term) else key])

    def update(self, batch: dict[str, torch.Tensor], step: int) -> dict[str, torch.Tensor]:
        with self.autocast():
            with record_function("critic_loss"):
                critic_loss, critic_info, obs_features, goal_repr = self._critic_loss(batch)
            with record_function("actor_loss"):
                actor_loss, actor_info = self._actor_loss(batch, obs_features, goal_repr)
        self._step(critic_loss + actor_loss)
        with record_function("target_update"):
            soft_update_(self.target_critic, self.critic, self.config.target_tau)
        return {"critic_loss": critic_loss.detach(), "actor_loss": actor_loss.detach(),
                **critic_info, **actor_info}

    def _critic_loss(self, batch):
        """The critic loss and its info, plus what the actor can reuse (detached): phi's
        observation features and, for MC, psi of the future goals."""
        cfg = self.config
        obs = self._images(batch, "critic", "observations")
        # The positives' goals: the next observation (TD) or the sampled future goal (MC).
        positive_key = "next_observations" if cfg.critic_loss == "td" else "goals"
        positives = self._images(batch, "critic", positive_key)
        obs_embedding, positive_embedding = self.critic.encode(torch.cat([obs, positives])).chunk(2)
        obs_features = self.critic.obs_features(obs_embedding)
        positive_repr = self.critic.goal_repr(positive_embedding)
        logits = pairwise_logits(self.critic.sa_repr(obs_features, batch["actions"]), positive_repr)  # [E, B, B]
        logits_min = logits.detach().float().min(0).values
        batch_size = logits.shape[-1]
        info = {"logits_mean": logits_min.mean(), "logits_std": logits_min.std(),
                "logits_pos": logits_min.diagonal().mean(), "accuracy": classifier_accuracy(logits_min)}
        if cfg.critic_loss == "mc":
            loss = mc_critic_loss(logits.float())
            info["logits_neg"] = (logits_min.sum() - logits_min.diagonal().sum()) / (batch_size * (batch_size - 1))
            return loss, info, obs_features.detach(), positive_repr.detach()
        rows = torch.arange(batch_size, device=logits.device)
        negative_cols = torch.roll(rows, -1)  # g- of entry i = next observation of entry i + 1
        pos_logits = logits.diagonal(dim1=1, dim2=2)
        neg_logits = logits[:, rows, negative_cols]
        weight = self._td_weight(positives, batch["next_action_noise"])
        loss = td_critic_loss(pos_logits.float(), neg_logits.float(), weight, cfg.discount)
        info["logits_neg"] = neg_logits.detach().float().min(0).values.mean()
        info["td_weight_mean"] = weight.mean()
        return loss, info, obs_features.detach(), None

    @torch.no_grad()
    def _td_weight(self, next_obs: torch.Tensor, next_action_noise: torch.Tensor) -> torch.Tensor:
        negative_goals = next_obs.roll(-1, 0)
        next_actions = self.policy(next_obs, negative_goals) + self.config.policy_std * next_action_noise
        target = self.target_critic
        next_embedding = target.encode(next_obs)
        target_logits = paired_logits(target.sa_repr(target.obs_features(next_embedding), next_actions),
                                      target.goal_repr(next_embedding.roll(-1, 0)))
        return td_importance_weight(target_logits.min(0).values, self.config.td_weight_clip)

    def _actor_loss(self, batch, critic_obs_features, critic_goal_repr):
        cfg = self.config
        actions = batch["actions"]
        q_augmented = self._sees_augmented(batch, "actor_q")
        reuse_critic = q_augmented == self._sees_augmented(batch, "critic")
        q_obs = self._images(batch, "actor_q", "observations")
        q_goal = self._images(batch, "actor_q", "goals")
        with torch.no_grad():
            obs_features = (critic_obs_features if reuse_critic
                            else self.critic.obs_features(self.critic.encode(q_obs)))
            goal_repr = (critic_goal_repr if reuse_critic and critic_goal_repr is not None
                         else self.critic.goal_repr(self.critic.encode(q_goal)))
        if q_augmented == self._sees_augmented(batch, "bc"):
            q_mean = bc_mean = self.policy(q_obs, q_goal)
        else:
            bc_obs, bc_goal = self._images(batch, "bc", "observations"), self._images(batch, "bc", "goals")
            q_mean, bc_mean = self.policy(torch.cat([q_obs, bc_obs]), torch.cat([q_goal, bc_goal])).chunk(2)
        policy_actions = q_mean + cfg.policy_std * batch["actor_noise"]
        # detach_params: the Q term trains the policy through its action, never the critic.
        q_values = paired_logits(self.critic.sa_repr(obs_features, policy_actions, detach_params=True),
                                 goal_repr).min(0).values.float()
        log_prob = gaussian_log_prob(bc_mean.float(), cfg.policy_std, actions)
        loss = (1 - cfg.bc_coef) * -q_values.mean() + cfg.bc_coef * -log_prob.mean()
        return loss, {"actor_q": q_values.detach().mean(), "actor_log_prob": log_prob.detach().mean(),
                      "actor_mse": (bc_mean.detach().float() - actions).pow(2).mean()}

    def score(self, obs: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        """Min-twin critic logit at (s, mean pi(s, g), g)."""
        obs_f, goal_f = images_to_float(obs), images_to_float(goal)
        obs_embedding, goal_embedding = self.critic.encode(torch.cat([obs_f, goal_f])).chunk(2)
        sa_repr = self.critic.sa_repr(self.critic.obs_features(obs_embedding), self.policy(obs_f, goal_f))
        return paired_logits(sa_repr, self.critic.goal_repr(goal_embedding)).min(0).values
