"""Image augmentation on batches already on the training device.

Random shift (DrQ): pad by `pad` pixels replicating the border, crop back at a random
offset. That equals shifting each sample by an integer (dy, dx) in [-pad, pad] with the
source indices clamped to the image, which is done here as ONE vectorised gather per
tensor, on uint8 or float, with no per-sample Python loop and no padded copy.

For real camera images (the JAX WidowX pipeline) there are also a random resized crop and
colour jitter, vectorised the same way. Every function applies the SAME random parameters
to all the tensors it is given (observation and goal of a sample).
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F


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


def _uniform(low: float, high: float, batch: int, generator: torch.Generator, device) -> torch.Tensor:
    return low + (high - low) * torch.rand(batch, generator=generator, device=device)


def _as_float(images: torch.Tensor) -> torch.Tensor:
    return images.float() / 255.0 if images.dtype == torch.uint8 else images


def _like(result: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Back to the input's dtype (uint8 batches stay uint8)."""
    if reference.dtype == torch.uint8:
        return (result * 255.0).round_().clamp_(0, 255).to(torch.uint8)
    return result


def random_resized_crop(images: Sequence[torch.Tensor], generator: torch.Generator,
                        scale: tuple[float, float] = (0.8, 1.0),
                        ratio: tuple[float, float] = (0.9, 1.1)) -> list[torch.Tensor]:
    """Crop a random box (area fraction in `scale`, aspect ratio in `ratio`) and resize it
    back to the full image, bilinearly; the SAME box for every tensor of `images` ([B, H, W, C])."""
    reference = images[0]
    batch, device = reference.shape[0], reference.device
    area = _uniform(*scale, batch, generator, device)
    log_ratio = _uniform(math.log(ratio[0]), math.log(ratio[1]), batch, generator, device)
    # Box sides as fractions of the image sides (affine_grid's normalised units / 2).
    width = torch.sqrt(area * log_ratio.exp()).clamp(max=1.0)
    height = torch.sqrt(area / log_ratio.exp()).clamp(max=1.0)
    centre_x = (1 - width) * _uniform(-1.0, 1.0, batch, generator, device)
    centre_y = (1 - height) * _uniform(-1.0, 1.0, batch, generator, device)
    theta = torch.zeros(batch, 2, 3, device=device)
    theta[:, 0, 0], theta[:, 0, 2] = width, centre_x
    theta[:, 1, 1], theta[:, 1, 2] = height, centre_y
    _, h, w, c = reference.shape
    grid = F.affine_grid(theta, [batch, c, h, w], align_corners=False)
    out = []
    for x in images:
        chw = _as_float(x).permute(0, 3, 1, 2)
        resized = F.grid_sample(chw, grid.to(chw.dtype), mode="bilinear", padding_mode="border",
                                align_corners=False)
        out.append(_like(resized.permute(0, 2, 3, 1), x))
    return out


# RGB <-> YIQ: hue is an angle in the (I, Q) chroma plane, so a hue shift is a 2-D rotation.
_RGB_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
_YIQ_TO_RGB = torch.linalg.inv(_RGB_TO_YIQ)


def color_jitter(images: Sequence[torch.Tensor], generator: torch.Generator, brightness: float = 0.2,
                 contrast: tuple[float, float] = (0.8, 1.2), saturation: tuple[float, float] = (0.8, 1.2),
                 hue: float = 0.1) -> list[torch.Tensor]:
    """Brightness (x * U[1 - b, 1 + b]), contrast and saturation factors, and a hue shift of
    U[-hue, hue] turns (done as a rotation in YIQ space), with the SAME factors for every
    tensor of `images` ([B, H, W, C], RGB in the last 3 channels of each camera)."""
    reference = images[0]
    batch, device = reference.shape[0], reference.device
    bright = _uniform(1 - brightness, 1 + brightness, batch, generator, device).view(batch, 1, 1, 1, 1)
    contr = _uniform(*contrast, batch, generator, device).view(batch, 1, 1, 1, 1)
    satur = _uniform(*saturation, batch, generator, device).view(batch, 1, 1, 1, 1)
    angle = 2 * math.pi * _uniform(-hue, hue, batch, generator, device)
    cos, sin = angle.cos(), angle.sin()
    rotation = torch.zeros(batch, 3, 3, device=device)
    rotation[:, 0, 0] = 1.0
    rotation[:, 1, 1], rotation[:, 1, 2], rotation[:, 2, 1], rotation[:, 2, 2] = cos, -sin, sin, cos
    to_yiq = _RGB_TO_YIQ.to(device)
    hue_matrix = _YIQ_TO_RGB.to(device) @ rotation @ to_yiq  # [B, 3, 3] acting on RGB
    out = []
    for x in images:
        _, h, w, c = x.shape
        rgb = _as_float(x).reshape(batch, h, w, c // 3, 3)  # one RGB triple per camera
        rgb = (rgb * bright).clamp(0, 1)
        gray = rgb @ to_yiq[0]
        rgb = ((rgb - gray.mean((1, 2), keepdim=True)[..., None]) * contr
               + gray.mean((1, 2), keepdim=True)[..., None]).clamp(0, 1)
        gray = (rgb @ to_yiq[0])[..., None]
        rgb = ((rgb - gray) * satur + gray).clamp(0, 1)
        rgb = torch.einsum("bij,bhwkj->bhwki", hue_matrix, rgb).clamp(0, 1)
        out.append(_like(rgb.reshape(batch, h, w, c), x))
    return out
