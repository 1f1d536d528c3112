"""The contract every agent (stable_crl, gcbc, gciql) fulfils; the trainer and Policy use only this.

Batches are dicts of tensors already on the agent's device. Images stay uint8
[B, H, W, C] until the agent turns them into float [B, C, H, W] in [0, 1]; actions are
float32 [B, A]: the dataset's raw ones, or normalised (zero mean, unit std per dimension) by
the sampler with the agent setting normalize_actions.
"""
from __future__ import annotations

import abc
from typing import Any

import torch
from torch import nn


class Agent(nn.Module, abc.ABC):
    #: registry name, e.g. "stable_crl"
    name: str = ""
    #: state-dict key prefixes that only training uses (target networks): not in model.pt
    training_only_prefixes: tuple[str, ...] = ()

    def __init__(self, config: Any, image_shape: tuple[int, int, int], action_dim: int,
                 device: torch.device):
        super().__init__()
        self.config = config
        self.image_shape = tuple(image_shape)
        self.action_dim = int(action_dim)
        self.device = torch.device(device)

    @abc.abstractmethod
    def make_batch(self, sampler, batch_size: int) -> dict[str, torch.Tensor]:
        """Draw one training batch from a `Sampler`, with the goal relabelling this agent needs."""

    @abc.abstractmethod
    def update(self, batch: dict[str, torch.Tensor], step: int) -> dict[str, torch.Tensor]:
        """One gradient step on every network (and the soft target update).

        Returns scalar tensors (losses, logit stats, accuracy); the trainer calls
        `.item()` only when it logs, so no host sync happens on the hot path.
        """

    @abc.abstractmethod
    def act(self, obs: torch.Tensor, goal: torch.Tensor, sample: bool = False,
            generator: torch.Generator | None = None) -> torch.Tensor:
        """Actions [B, A] in the sampler's units (raw, or normalised) for uint8 images
        [B, H, W, C]; mean unless `sample` (noise from `generator`, or torch's global RNG)."""

    def score(self, obs: torch.Tensor, goal: torch.Tensor) -> torch.Tensor | None:
        """Goal-reaching score [B] (the critic's logit for CRL); None where an agent has none."""
        return None

    @abc.abstractmethod
    def optimizer_state(self) -> dict[str, Any]:
        """State dicts of every optimiser, for exact resume."""

    @abc.abstractmethod
    def load_optimizer_state(self, state: dict[str, Any]) -> None:
        """Inverse of `optimizer_state`."""
