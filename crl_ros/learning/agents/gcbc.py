"""Goal-conditioned behaviour cloning: maximise log pi(a_data | s, g), g uniform over the future."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from crl_ros.learning.agents.common import AgentConfig, OfflineAgent
from crl_ros.learning.networks import GaussianPolicy, gaussian_log_prob, images_to_float


@dataclass
class GCBCConfig(AgentConfig):
    pass


class GCBCAgent(OfflineAgent):
    name = "gcbc"
    config_class = GCBCConfig
    config: GCBCConfig

    def __init__(self, config: GCBCConfig, image_shape, action_dim, device):
        super().__init__(config, image_shape, action_dim, device)
        self.policy = GaussianPolicy(self.image_shape, action_dim, config, config.policy_std)
        self.to(self.device)
        self._build_optimizer([{"params": self.policy.parameters()}])

    def make_batch(self, sampler, batch_size: int) -> dict[str, torch.Tensor]:
        self.check_sampler(sampler)
        idx = sampler.sample_transitions(batch_size)
        obs, goals = sampler.images(idx), sampler.images(sampler.uniform_future(idx))
        obs, goals = self.augment(sampler, [obs, goals], [False, True]) or (obs, goals)
        return {"observations": obs, "goals": goals, "actions": sampler.actions(idx)}

    def update(self, batch: dict[str, torch.Tensor], step: int) -> dict[str, torch.Tensor]:
        actions = batch["actions"]
        with self.autocast():
            mean = self.policy(images_to_float(batch["observations"]), images_to_float(batch["goals"])).float()
        log_prob = gaussian_log_prob(mean, self.config.policy_std, actions)
        loss = -log_prob.mean()
        self._step(loss)
        return {"actor_loss": loss.detach(), "actor_log_prob": log_prob.detach().mean(),
                "actor_mse": (mean.detach() - actions).pow(2).mean()}
