"""Goal-relabelling sampler: the dataset lives on the training device, batches are index gathers.

Images (uint8) and actions are copied to the device once; every draw uses the sampler's own
`torch.Generator` on that device, so sampling is host-sync free on CUDA and `state_dict()` /
`load_state_dict()` resume the exact stream.

Actions are the dataset's raw ones (the authors'; `action_mean` 0, `action_std` 1) unless
``normalize_actions`` (the agent setting of that name) z-scores each dimension with the
statistics of the transition frames; explicit ``action_mean`` / ``action_std`` (a resumed run's)
are used as given. The statistics go into the checkpoint, and `Policy` un-normalises with them.

``frame_weights`` (one per frame; `crl train --data-weights` gives each source file one) make
`sample_transitions` draw frame t with probability proportional to its weight instead of
uniformly; goal sampling is unchanged (a goal never leaves the episode of t).

Goal conventions: for a transition frame t (one with a next frame in its episode) the
future goals are frames t + 1 + k, k in [0, K_t] with K_t = episode_end - t - 2, so a goal
never leaves the episode of t.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from crl_ros.learning.dataset import Dataset

ACTION_STD_FLOOR = 1e-6


class Sampler:
    def __init__(self, dataset: Dataset, device: torch.device | str, seed: int = 0,
                 action_mean: np.ndarray | None = None, action_std: np.ndarray | None = None,
                 normalize_actions: bool = False, frame_weights: np.ndarray | None = None):
        self.device = torch.device(device)
        transition_mask = dataset.transition_mask()
        actions = np.asarray(dataset.actions, dtype=np.float64)
        dim = actions.shape[1]
        #: per-dimension std of the raw actions of the transition frames (e.g. for scale checks)
        self.raw_action_std = actions[transition_mask].std(0).astype(np.float32) if transition_mask.any() \
            else np.zeros(dim, np.float32)
        self.action_names = list(dataset.metadata.action_names)
        if action_mean is None:
            action_mean = actions[transition_mask].mean(0) if normalize_actions else np.zeros(dim)
        if action_std is None:
            action_std = actions[transition_mask].std(0) if normalize_actions else np.ones(dim)
        self.action_mean = np.asarray(action_mean, dtype=np.float32)
        self.action_std = np.maximum(np.asarray(action_std, dtype=np.float32), ACTION_STD_FLOOR)
        #: whether the actions it hands out are transformed (False: exactly the dataset's)
        self.normalizes_actions = bool(np.any(self.action_mean != 0) or np.any(self.action_std != 1))
        normalised = ((actions - self.action_mean) / self.action_std).astype(np.float32)

        self._images = torch.from_numpy(np.ascontiguousarray(dataset.images)).to(self.device)
        self._actions = torch.from_numpy(normalised).to(self.device)
        transition_frames = np.nonzero(transition_mask)[0]
        self._transition_cdf = None
        if frame_weights is not None:
            # Weighted draws (e.g. one weight per source file): frames of weight 0 are never drawn,
            # the others with probability proportional to their weight (inverse CDF on one uniform).
            weights = np.asarray(frame_weights, dtype=np.float64)
            if weights.shape != (dataset.num_frames,) or not np.all(np.isfinite(weights)) or np.any(weights < 0):
                raise ValueError(f"frame_weights: expected {dataset.num_frames} finite weights >= 0")
            transition_frames = transition_frames[weights[transition_frames] > 0]
            if not len(transition_frames):
                raise ValueError("frame_weights: every transition frame has weight 0")
            cdf = np.cumsum(weights[transition_frames])
            self._transition_cdf = torch.from_numpy(cdf / cdf[-1]).to(self.device)
        self._transition_frames = torch.from_numpy(transition_frames).to(self.device)
        self._episode_end = torch.from_numpy(dataset.episode_end_of_frame().astype(np.int64)).to(self.device)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(int(seed))
        # For host-side decisions (e.g. whether a batch is augmented): no device sync.
        self.host_generator = torch.Generator()
        self.host_generator.manual_seed(int(seed) + 1)

    @property
    def num_frames(self) -> int:
        return self._images.shape[0]

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self._images.shape[1:])

    @property
    def action_dim(self) -> int:
        return self._actions.shape[1]

    def sample_transitions(self, batch_size: int) -> torch.Tensor:
        """Frames t that have a next frame t + 1 in the same episode (weighted with ``frame_weights``)."""
        if self._transition_cdf is not None:
            u = torch.rand((batch_size,), generator=self.generator, device=self.device, dtype=torch.float64)
            pick = torch.searchsorted(self._transition_cdf, u, right=True).clamp_(max=len(self._transition_frames) - 1)
            return self._transition_frames[pick]
        pick = torch.randint(len(self._transition_frames), (batch_size,), generator=self.generator,
                             device=self.device)
        return self._transition_frames[pick]

    def _max_future_offset(self, idx: torch.Tensor) -> torch.Tensor:
        return self._episode_end[idx] - idx - 2

    def geometric_future(self, idx: torch.Tensor, gamma: float) -> torch.Tensor:
        """Goal t + 1 + k with P(k) proportional to gamma^k, truncated at the episode end.

        Inverse CDF: P(k <= n) = (1 - gamma^(n+1)) / (1 - gamma^(K+1)), so
        k = floor(log(1 - u (1 - gamma^(K+1))) / log(gamma)) for u ~ U[0, 1).
        """
        if not 0.0 < gamma <= 1.0:
            raise ValueError(f"gamma must be in (0, 1], got {gamma}")
        if gamma == 1.0:
            return self.uniform_future(idx)
        max_offset = self._max_future_offset(idx)
        u = torch.rand(idx.shape, generator=self.generator, device=self.device)
        log_gamma = math.log(gamma)
        mass = -torch.expm1((max_offset + 1).float() * log_gamma)  # 1 - gamma^(K+1)
        offset = torch.floor(torch.log1p(-u * mass) / log_gamma).long()
        return idx + 1 + torch.minimum(offset.clamp_(min=0), max_offset)

    def uniform_future(self, idx: torch.Tensor) -> torch.Tensor:
        """Goal t + 1 + k with k uniform in [0, K_t]."""
        max_offset = self._max_future_offset(idx)
        u = torch.rand(idx.shape, generator=self.generator, device=self.device)
        offset = (u * (max_offset + 1).float()).long()
        return idx + 1 + torch.minimum(offset, max_offset)

    def random_goals(self, batch_size: int) -> torch.Tensor:
        """Any frame of the dataset."""
        return torch.randint(self.num_frames, (batch_size,), generator=self.generator, device=self.device)

    def images(self, idx: torch.Tensor) -> torch.Tensor:
        """uint8 [B, H, W, C]."""
        return self._images[idx]

    def actions(self, idx: torch.Tensor) -> torch.Tensor:
        """float32 [B, A]: raw, or normalised with `normalize_actions`."""
        return self._actions[idx]

    def standard_normal(self, shape: tuple[int, ...]) -> torch.Tensor:
        """Noise from the sampler's generator (e.g. for reparameterised actions), so resume is exact."""
        return torch.randn(shape, generator=self.generator, device=self.device)

    def uniform(self, shape: tuple[int, ...]) -> torch.Tensor:
        return torch.rand(shape, generator=self.generator, device=self.device)

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state(), "host_generator": self.host_generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"].cpu())
        self.host_generator.set_state(state["host_generator"].cpu())
