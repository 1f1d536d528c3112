"""What the three agents share: the common config fields, one Adam for all their networks,
bf16 autocast and batch augmentation."""
from __future__ import annotations

import contextlib
import functools
import warnings
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import torch
from torch.profiler import record_function

from crl_ros.learning import distributed
from crl_ros.learning.agents.base import Agent
from crl_ros.learning.augment import (batch_coin, color_jitter, gaussian_blur, gaussian_noise, random_resized_crop,
                                      random_rotate, random_shift)
from crl_ros.learning.gripper import GRIPPER_MODES
from crl_ros.learning.networks import NetworkConfig, images_to_float
from crl_ros.learning.precision import resolve_bf16


#: The value each switch had before it existed. A checkpoint's config that lacks a key was
#: written before that switch and trained with this value, not the (authors') default:
#: `crl_ros.learning.agents.config_from_checkpoint` fills these in, so old weights load into
#: the network they were trained as and act as they did.
LEGACY_VALUES: dict[str, Any] = {
    "layer_norm_kind": "torch",
    "policy_layer_norm_kind": "torch",
    "policy_layer_norm_all": False,
    "policy_init": "xavier",
    "normalize_actions": True,
    "eval_sample": False,
    "eval_gripper": "continuous",
}

#: A switch split off an older one -> that older one. A config that lacks the new switch but
#: names the older one was trained with the older one's value for both: `layer_norm_kind` set
#: the policy's MLP LayerNorm too until `policy_layer_norm_kind` existed.
LEGACY_SPLIT_FROM: dict[str, str] = {"policy_layer_norm_kind": "layer_norm_kind"}

@dataclass
class AgentConfig(NetworkConfig):
    batch_size: int = 256
    lr: float = 3e-4
    discount: float = 0.99
    policy_std: float = 0.15
    # false (the authors'): train on the dataset's raw actions, so policy_std is in raw units;
    # true (the JAX WidowX pipeline's): z-score every action dimension (the checkpoint keeps the
    # statistics and Policy un-normalises), so policy_std is a fraction of each dimension's std.
    # Raw suits actions that share a scale of about 1 (the paper's simulated tasks; pointmass's
    # [-1, 1]). The WidowX deltas do not: metres (|dx| <= 0.05, a std of millimetres), radians
    # (<= 0.25) and a gripper opening in [0, 1]; raw, a std of 0.15 is 3x the whole translation
    # range (sampled actions mostly clip; the BC term barely sees the translations), so for
    # real-robot / WidowX data pick true. See docs/algorithm.md.
    normalize_actions: bool = False
    # How the trained policy acts where the caller does not say (Policy.act(sample=None): crl
    # eval, evaluation during training, policy_node's sample_actions=auto): true (the authors')
    # samples N(mean, policy_std^2) and clips to the action bounds; false acts with the mean
    eval_sample: bool = True
    # How the trained policy's gripper command (the action named "gripper": 1 = open, 0 =
    # closed) is executed where the caller does not say (crl eval, policy_node's
    # gripper_mode=auto): "continuous" (the authors') sends the opening as it comes; "binary"
    # opens fully at or above the middle of the gripper's bounds and closes fully below it, as
    # arm_node's Interbotix backend (grasp/release) does on the real arm. On 0/1 gripper
    # demonstrations the policy mean of an uncertain grasp is about 0.5, which, continuous,
    # closes the gripper half-way on the object. Models without a "gripper" action ignore it.
    eval_gripper: str = "continuous"
    augment: bool = True  # augment the images named by the agent's augment switches
    augment_prob: float = 0.5  # probability that a whole batch is augmented
    augment_shift: bool = True  # random shift (pad augment_pad, replicate, crop back)
    augment_pad: int = 4
    # Beyond the paper's random shift, for real cameras and the shifts they bring
    # (crl_ros.sim.shifts; `crl train --augment NAME,...` names them, AUGMENTATIONS): each a
    # switch, off by default, applied in the order a camera would (geometry, exposure, optics,
    # sensor), the shift last. The ranges' defaults are those the ops had before they were settable.
    augment_resized_crop: bool = False  # random resized crop: area fraction in augment_crop_scale
    augment_crop_scale: tuple[float, float] = (0.8, 1.0)
    augment_rotate: bool = False  # small rotation about the image centre, U[-deg, deg]
    augment_rotate_deg: float = 5.0
    augment_color_jitter: bool = False  # brightness/contrast/saturation factors U[1-v, 1+v], hue turns U[-v, v]
    augment_brightness: float = 0.2
    augment_contrast: float = 0.2
    augment_saturation: float = 0.2
    augment_hue: float = 0.1
    augment_blur: bool = False  # Gaussian blur, sigma U[augment_blur_sigma] pixels
    augment_blur_sigma: tuple[float, float] = (0.1, 1.0)
    augment_noise: bool = False  # Gaussian sensor noise, std U[0, augment_noise_std] grey levels
    augment_noise_std: float = 5.0
    # The fraction of samples whose goal image gets its own draw of the augmentations above
    # (crop, rotation, colour, blur, noise; the random shift stays shared): a goal captured
    # before the camera was bumped or the light changed. 0 (the default, the authors'): one
    # draw for the observation and the goal of a sample, as a goal captured under the same shift.
    augment_goal_apart: float = 0.0
    # bf16 autocast of the forward passes (fp32 weights, optimiser and losses), where the device
    # has native bf16 (crl_ros.learning.precision); elsewhere the agent runs in fp32
    bf16: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.augment_prob <= 1.0:
            raise ValueError(f"augment_prob must be in [0, 1], got {self.augment_prob}")
        self._check_augment_ranges()
        if self.eval_gripper not in GRIPPER_MODES:
            raise ValueError(f"eval_gripper must be one of {', '.join(GRIPPER_MODES)}, got {self.eval_gripper!r}")
        if self.policy_std <= 0:
            raise ValueError(f"policy_std must be > 0, got {self.policy_std}")

    def _check_augment_ranges(self) -> None:
        low, high = self.augment_crop_scale
        if not 0.0 < low <= high <= 1.0:
            raise ValueError(f"augment_crop_scale must be 0 < low <= high <= 1, got {list(self.augment_crop_scale)}")
        low, high = self.augment_blur_sigma
        if not 0.0 <= low <= high <= 5.0:
            raise ValueError(f"augment_blur_sigma must be 0 <= low <= high <= 5 pixels, got {list(self.augment_blur_sigma)}")
        for name, highest in [("augment_brightness", 1.0), ("augment_contrast", 1.0), ("augment_saturation", 1.0),
                              ("augment_hue", 0.5), ("augment_rotate_deg", 45.0), ("augment_noise_std", 255.0)]:
            if not 0.0 <= getattr(self, name) <= highest:
                raise ValueError(f"{name} must be in [0, {highest:g}], got {getattr(self, name)}")
        if self.augment_pad < 0:
            raise ValueError(f"augment_pad must be >= 0, got {self.augment_pad}")
        if not 0.0 <= self.augment_goal_apart <= 1.0:
            raise ValueError(f"augment_goal_apart must be in [0, 1], got {self.augment_goal_apart}")
        if self.augment_goal_apart and not self._camera_augmentations():
            raise ValueError("augment_goal_apart draws the goal's crop/rotate/color_jitter/blur/noise apart, but none "
                             "is on: add them (e.g. --augment shift,crop,rotate,color_jitter)")

    def _camera_augmentations(self) -> bool:
        return any((self.augment_resized_crop, self.augment_rotate, self.augment_color_jitter, self.augment_blur,
                    self.augment_noise))


#: `crl train --augment` names -> the AgentConfig switch each turns on
AUGMENTATIONS: dict[str, str] = {"shift": "augment_shift", "crop": "augment_resized_crop", "rotate": "augment_rotate",
                                 "color_jitter": "augment_color_jitter", "blur": "augment_blur",
                                 "noise": "augment_noise"}


def augment_overrides(names: Sequence[str]) -> list[str]:
    """Config overrides for ``--augment NAME,...``: exactly the named augmentations on (the
    others off), or ``none``: no augmentation. ValueError naming an unknown name."""
    names = [n.strip() for n in names if n.strip()]
    if names == ["none"]:
        return ["augment=false"]
    unknown = [n for n in names if n not in AUGMENTATIONS]
    if unknown or not names:
        raise ValueError(f"unknown augmentation(s) {', '.join(unknown) or '(none given)'}; choose from "
                         f"{', '.join(AUGMENTATIONS)}, or none")
    return ["augment=true"] + [f"{switch}={'true' if name in names else 'false'}"
                               for name, switch in AUGMENTATIONS.items()]


class OfflineAgent(Agent):
    """An Agent with a `policy` whose networks all train with one Adam."""

    config: AgentConfig
    policy: torch.nn.Module

    def check_sampler(self, sampler) -> None:
        """The sampler must hand out the actions this config trains on (raw, or normalised
        with normalize_actions); warns once when raw actions vary far less than policy_std.
        Each agent's make_batch calls it (a cheap check after the first)."""
        if getattr(self, "_checked_sampler", None) is sampler:
            return
        cfg = self.config
        normalizes = bool(getattr(sampler, "normalizes_actions", False))
        if normalizes != cfg.normalize_actions:
            raise ValueError(
                f"the agent trains on {'normalised' if cfg.normalize_actions else 'raw'} actions "
                f"(normalize_actions={str(cfg.normalize_actions).lower()}) but the sampler's are "
                f"{'normalised' if normalizes else 'raw'}: build the Sampler with "
                f"normalize_actions=config.normalize_actions")
        raw_std = getattr(sampler, "raw_action_std", None)
        if not cfg.normalize_actions and raw_std is not None:
            small = [i for i, s in enumerate(raw_std) if 0 < s < cfg.policy_std / 2]
            if small:
                names = list(getattr(sampler, "action_names", [])) or [f"a{i}" for i in range(len(raw_std))]
                listed = ", ".join(f"{names[i]} (std {raw_std[i]:.3g})" for i in small)
                warnings.warn(
                    f"raw actions (normalize_actions=false, the authors' setting) but {listed} vary far "
                    f"less than policy_std {cfg.policy_std:g}: the policy's noise swamps them; for data "
                    f"like the WidowX deltas use --set normalize_actions=true (docs/algorithm.md)",
                    stacklevel=3)
        self._checked_sampler = sampler

    def _build_optimizer(self, param_groups: Iterable[dict[str, Any]]) -> None:
        # The fused kernel: one pass over all parameters (about 10x the per-tensor loop on CPU).
        self.optimizer = torch.optim.Adam(list(param_groups), lr=self.config.lr, fused=True)

    def _step(self, loss: torch.Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        with record_function("backward"):
            loss.backward()
        distributed.all_reduce_gradients_(self.parameters())  # no-op in a single process
        with record_function("optimizer_step"):
            self.optimizer.step()

    @functools.cached_property
    def uses_bf16(self) -> bool:
        """bf16 autocast requested AND native on the agent's device (asked once)."""
        return resolve_bf16(self.config.bf16, self.device)[0]

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.uses_bf16:
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def augment(self, sampler, images: Sequence[torch.Tensor], goals: Sequence[bool] = ()) -> list[torch.Tensor] | None:
        """With probability augment_prob (per batch) the same random augmentation for all
        `images` (e.g. observation and goal) of a sample; None when this batch stays as is.
        ``goals`` flags the goal images: with augment_goal_apart > 0 that fraction of the
        samples has its goals augmented by a second, independent draw."""
        cfg = self.config
        if not (cfg.augment and batch_coin(cfg.augment_prob, sampler.host_generator)):
            return None
        originals, generator = list(images), sampler.generator
        images = self._camera_augment(originals, generator)
        if cfg.augment_goal_apart and any(goals):   # a second draw for the chosen samples' goals only
            chosen = torch.rand(images[0].shape[0], generator=generator, device=images[0].device) < cfg.augment_goal_apart
            rows = chosen.nonzero().squeeze(1)
            apart = iter(self._camera_augment([x[rows] for x, g in zip(originals, goals) if g], generator))
            images = [x.index_copy(0, rows, next(apart)) if g else x for x, g in zip(images, goals)]
        if cfg.augment_shift:
            images = random_shift(images, cfg.augment_pad, generator)
        return images

    def _camera_augment(self, images: list[torch.Tensor], generator: torch.Generator) -> list[torch.Tensor]:
        """The augmentations beyond the shift, one draw for all of ``images``."""
        cfg = self.config
        if cfg.augment_resized_crop:
            images = random_resized_crop(images, generator, scale=cfg.augment_crop_scale)
        if cfg.augment_rotate:
            images = random_rotate(images, generator, degrees=cfg.augment_rotate_deg)
        if cfg.augment_color_jitter:
            images = color_jitter(images, generator, brightness=cfg.augment_brightness,
                                  contrast=(1 - cfg.augment_contrast, 1 + cfg.augment_contrast),
                                  saturation=(1 - cfg.augment_saturation, 1 + cfg.augment_saturation),
                                  hue=cfg.augment_hue)
        if cfg.augment_blur:
            images = gaussian_blur(images, generator, sigma=cfg.augment_blur_sigma)
        if cfg.augment_noise:
            images = gaussian_noise(images, generator, std=cfg.augment_noise_std)
        return images

    def act(self, obs: torch.Tensor, goal: torch.Tensor, sample: bool = False,
            generator: torch.Generator | None = None) -> torch.Tensor:
        """Every agent has a `policy` (GaussianPolicy); the mean unless `sample`, then
        mean + policy_std * noise drawn from `generator` (on the agent's device; None: torch's)."""
        mean = self.policy(images_to_float(obs), images_to_float(goal))
        if not sample:
            return mean
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return mean + self.config.policy_std * noise

    def optimizer_state(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer.state_dict()}

    def load_optimizer_state(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
