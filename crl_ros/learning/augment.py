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


def random_shift(images: Sequence[torch.Tensor], pad: int, prob: float,
                 generator: torch.Generator) -> list[torch.Tensor]:
    """Shift every tensor of `images` (each [B, H, W, C]) with the SAME per-sample shift.

    With probability `prob` the whole batch is shifted, otherwise returned unshifted. The coin
    is a device tensor (no host sync) and the random draws do not depend on it, so a resumed
    generator reproduces the same stream.
    """
    device = images[0].device
    batch = images[0].shape[0]
    shifts = torch.randint(-pad, pad + 1, (batch, 2), generator=generator, device=device)
    apply = torch.rand((), generator=generator, device=device) < prob
    shifts = shifts * apply
    return [shift_images(x, shifts) for x in images]
