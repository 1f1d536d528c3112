"""The paper's representation analyses on a trained Stable CRL critic (torch only).

- Interpolation: the critic's goal representations psi(g) of two observations are
  interpolated linearly; for each point the nearest dataset frame (in psi space) is what
  the representation "means" there. A good representation walks through plausible
  intermediate states.
- Arm matching: the critic's score for goals whose arm pose matches but objects do not,
  against goals whose objects match but the arm does not (the paper's "arm matching
  problem"); the scene construction lives in the simulator, the scoring here.
"""
from __future__ import annotations

import numpy as np
import torch

from crl_ros.learning.networks import images_to_float


def goal_representations(policy, images: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """psi(g) of every image [N, H, W, C] uint8 -> [N, E * R] (twin critics concatenated)."""
    critic = getattr(policy.agent, "critic", None)
    if critic is None or not hasattr(critic, "goal_repr"):
        raise ValueError(f"a {policy.algorithm} model has no contrastive critic; representation "
                         "analyses need a stable_crl model")
    images = policy._images(np.asarray(images), "images")
    if images.ndim == 3:
        images = images[None]
    chunks = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(images[start:start + batch_size])).to(policy.device)
            repr_ = critic.goal_repr(critic.encode(images_to_float(x)))  # [E, B, R]
            chunks.append(repr_.float().permute(1, 0, 2).reshape(x.shape[0], -1).cpu().numpy())
    return np.concatenate(chunks)


def interpolate_nearest(representations: np.ndarray, start: int, end: int, points: int,
                        exclude_endpoints: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the frames nearest (L2) to ``points`` evenly spaced interpolations between
    the representations of frames ``start`` and ``end``, and their distances."""
    if points < 2:
        raise ValueError("points must be >= 2")
    a, b = representations[start], representations[end]
    alphas = np.linspace(0.0, 1.0, points)[:, None]
    targets = (1 - alphas) * a + alphas * b  # [P, D]
    dist = ((targets[:, None, :] - representations[None]) ** 2).sum(-1)  # [P, N]
    if exclude_endpoints:
        dist[1:-1, [start, end]] = np.inf
    nearest = dist.argmin(1)
    return nearest, np.sqrt(dist[np.arange(points), nearest])
