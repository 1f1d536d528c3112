"""Image augmentation on batches already on the training device.

Random shift (DrQ): pad by `pad` pixels replicating the border, crop back at a random
offset. That equals shifting each sample by an integer (dy, dx) in [-pad, pad] with the
source indices clamped to the image, which is done here as ONE vectorised gather per
tensor, on uint8 or float, with no per-sample Python loop and no padded copy.
"""
from __future__ import annotations

from typing import Sequence

import torch


def shift_images(images: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Shift each image of [B, H, W, C] by shifts[:, 0] rows and shifts[:, 1] columns.

    out[b, i, j] = images[b, clamp(i + dy_b), clamp(j + dx_b)]: the replicate-padded crop.
    """
    batch, height, width = images.shape[:3]
    device = images.device
    rows = (torch.arange(height, device=device) + shifts[:, :1]).clamp_(0, height - 1)
    cols = (torch.arange(width, device=device) + shifts[:, 1:]).clamp_(0, width - 1)
    batch_index = torch.arange(batch, device=device)[:, None, None]
    return images[batch_index, rows[:, :, None], cols[:, None, :]]


def random_shift(images: Sequence[torch.Tensor], pad: int, generator: torch.Generator) -> list[torch.Tensor]:
    """Shift every tensor of `images` (each [B, H, W, C]) with the SAME per-sample shift,
    drawn uniformly from [-pad, pad]^2 with `generator` (on the images' device)."""
    shifts = torch.randint(-pad, pad + 1, (images[0].shape[0], 2), generator=generator, device=images[0].device)
    return [shift_images(x, shifts) for x in images]


def batch_coin(prob: float, host_generator: torch.Generator) -> bool:
    """Whether to augment this whole batch. Drawn on a CPU generator: deciding on the host
    costs no device sync and lets an unaugmented batch skip the gather and the extra
    forward passes on augmented images altogether."""
    return bool(torch.rand((), generator=host_generator).item() < prob)
