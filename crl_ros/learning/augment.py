"""Image augmentation on batches already on the training device.

Random shift (DrQ): pad by `pad` pixels replicating the border, crop back at a random
offset. That equals shifting each sample by an integer (dy, dx) in [-pad, pad] with the
source indices clamped to the image, which is done here as ONE vectorised gather per
tensor, on uint8 or float, with no per-sample Python loop and no padded copy.

For real camera images (the JAX WidowX pipeline) and the shifts a real camera brings (a
bumped mount, other light, a worse sensor: crl_ros.sim.shifts) there are also a random
resized crop, small rotations, colour jitter, Gaussian blur and Gaussian noise, vectorised
the same way (per-sample parameters, no per-sample Python loop). Every function applies the
SAME random parameters to all the tensors it is given (observation and goal of a sample);
only the noise field itself is drawn afresh for each tensor, as each camera frame has its own.
Each takes uint8 or float images [B, H, W, C] (RGB triples in the channels) and returns them
in the input's dtype and range; every random number comes from the `generator` passed in.
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


def _warp(images: Sequence[torch.Tensor], theta: torch.Tensor) -> list[torch.Tensor]:
    """Resample every tensor of `images` ([B, H, W, C]) at the affine map `theta` [B, 2, 3]
    (affine_grid's output -> input, in normalised coordinates), bilinearly, edges replicated."""
    batch, h, w, c = images[0].shape
    grid = F.affine_grid(theta, [batch, c, h, w], align_corners=False)
    out = []
    for x in images:
        chw = _as_float(x).permute(0, 3, 1, 2)
        warped = F.grid_sample(chw, grid.to(chw.dtype), mode="bilinear", padding_mode="border",
                               align_corners=False)
        out.append(_like(warped.permute(0, 2, 3, 1), x))
    return out


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
    return _warp(images, theta)


def random_rotate(images: Sequence[torch.Tensor], generator: torch.Generator,
                  degrees: float = 5.0) -> list[torch.Tensor]:
    """Turn each sample by U[-degrees, degrees] about the image centre (bilinear, edges
    replicated): a camera rolled on its mount. The SAME angle for every tensor of `images`."""
    reference = images[0]
    batch, h, w = reference.shape[:3]
    angle = torch.deg2rad(_uniform(-degrees, degrees, batch, generator, reference.device))
    cos, sin = angle.cos(), angle.sin()
    theta = torch.zeros(batch, 2, 3, device=reference.device)
    # Normalised coordinates stretch a non-square image: scale the cross terms by the aspect
    # ratio so that the turn is a rotation in pixels.
    theta[:, 0, 0], theta[:, 0, 1] = cos, -sin * h / w
    theta[:, 1, 0], theta[:, 1, 1] = sin * w / h, cos
    return _warp(images, theta)


def gaussian_blur(images: Sequence[torch.Tensor], generator: torch.Generator,
                  sigma: tuple[float, float] = (0.1, 1.0)) -> list[torch.Tensor]:
    """Blur each sample with a Gaussian of sigma U[sigma] pixels (a defocused lens), as two
    1-D convolutions whose kernels differ per sample; edges replicated. The SAME sigma for
    every tensor of `images`."""
    reference = images[0]
    batch, device = reference.shape[0], reference.device
    sigmas = _uniform(*sigma, batch, generator, device).clamp(min=1e-3)
    radius = max(1, math.ceil(3 * sigma[1]))
    offsets = torch.arange(-radius, radius + 1, device=device, dtype=torch.float32)
    kernels = torch.exp(-0.5 * (offsets[None, :] / sigmas[:, None]) ** 2)
    kernels = kernels / kernels.sum(1, keepdim=True)  # [B, K]
    out = []
    for x in images:
        _, h, w, c = x.shape
        # One group per (sample, channel): a batched depthwise convolution.
        planes = _as_float(x).permute(0, 3, 1, 2).reshape(1, batch * c, h, w)
        planes = F.pad(planes, (radius, radius, radius, radius), mode="replicate")
        weights = kernels.to(planes.dtype).repeat_interleave(c, 0)
        planes = F.conv2d(planes, weights[:, None, :, None], groups=batch * c)
        planes = F.conv2d(planes, weights[:, None, None, :], groups=batch * c)
        out.append(_like(planes.reshape(batch, c, h, w).permute(0, 2, 3, 1), x))
    return out


def gaussian_noise(images: Sequence[torch.Tensor], generator: torch.Generator,
                   std: float = 5.0) -> list[torch.Tensor]:
    """Add Gaussian sensor noise of std U[0, std] grey levels (of 255) per sample, clipped to
    the image range. The SAME std for every tensor of `images`; each tensor its own noise."""
    reference = images[0]
    batch, device = reference.shape[0], reference.device
    stds = (_uniform(0.0, std, batch, generator, device) / 255.0).view(batch, 1, 1, 1)
    out = []
    for x in images:
        noisy = _as_float(x)
        noisy = noisy + stds.to(noisy.dtype) * torch.randn(noisy.shape, generator=generator, device=device,
                                                             dtype=noisy.dtype)
        out.append(_like(noisy.clamp(0, 1), x))
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
