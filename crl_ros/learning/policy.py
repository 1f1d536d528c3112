"""`Policy`: the inference API every deployment part uses (ROS nodes, `crl eval`, benchmarks).

    policy = Policy.load("runs/pointmass/model.pt", device="auto")
    action = policy.act(obs_uint8_hwc, goal_uint8_hwc)        # [A], un-normalised, clipped
    actions = policy.act(obs_batch_bhwc, goal_batch_bhwc)     # [B, A]
    mean = policy.act(obs, goal, sample=False)                # the mean, whatever the model's setting
    policy.seed(7)                                            # reproducible samples from here
    policy.gripper_mode = "binary"                            # open/close fully, whatever the model's setting
    score = policy.score(obs, goal)                           # critic logit (CRL) or None

``act`` samples N(mean, policy_std^2) or returns the mean as the model's ``eval_sample``
setting says (the authors' evaluation samples; models from before that setting act with the
mean), unless ``sample`` is given; samples come from a generator the Policy owns (seed 0
unless `seed` is called or `load(..., seed=)` given), so a seeded caller gets the same actions.
The action named ``gripper`` is sent as it comes (``continuous``) or snapped fully open or
closed at the middle of its bounds (``binary``), as the model's ``eval_gripper`` setting says
unless `gripper_mode` is set (or ``load(..., gripper=)`` given).

Inputs are uint8 RGB images of the checkpoint's ``image_shape``; anything else raises
`PolicyInputError` saying what was expected. Non-finite network outputs raise instead of
reaching a robot.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from crl_ros.learning.checkpoint import CheckpointError, CheckpointMeta, load_checkpoint
from crl_ros.learning.gripper import GRIPPER_MODES, snap_gripper


class PolicyInputError(ValueError):
    """An observation or goal image has the wrong shape, dtype or batch size."""


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` picks CUDA when available; asking for CUDA without one is an error, not a silent CPU run."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available (torch {torch.__version__}); "
                           f"use --device cpu or auto")
    return dev


def build_agent(meta: CheckpointMeta, device: torch.device):
    """Rebuild the agent a checkpoint describes (weights not loaded)."""
    from crl_ros.learning.agents import AGENTS, config_from_checkpoint, make_agent

    if meta.algorithm not in AGENTS:
        raise CheckpointError(f"checkpoint algorithm {meta.algorithm!r} is unknown to this crl_ros "
                              f"(known: {', '.join(sorted(AGENTS))})")
    try:
        # a config saved before a switch existed gets that switch's legacy value
        cfg = config_from_checkpoint(meta.algorithm, meta.config)
    except ValueError as exc:
        raise CheckpointError(f"checkpoint config does not fit {meta.algorithm}: {exc}") from exc
    return make_agent(meta.algorithm, cfg, image_shape=meta.image_shape, action_dim=meta.action_dim, device=device)


def load_deployable_state(agent, state: dict[str, torch.Tensor], path: Any) -> None:
    """Load a full (step checkpoint) or deployable (model.pt: no target networks, maybe
    float16) state dict; every other mismatch is a `CheckpointError` naming the file."""
    prefixes = tuple(getattr(agent, "training_only_prefixes", ()))
    try:
        missing, unexpected = agent.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not match the {agent.name} network its "
                              f"config describes: {str(exc).splitlines()[0]}") from exc
    missing = [k for k in missing if not k.startswith(prefixes)] if prefixes else list(missing)
    if missing or unexpected:
        parts = ([f"missing {missing[:4]}{' ...' if len(missing) > 4 else ''}"] if missing else []) + \
                ([f"unexpected {unexpected[:4]}{' ...' if len(unexpected) > 4 else ''}"] if unexpected else [])
        raise CheckpointError(f"{path}: weights do not match the {agent.name} network its config "
                              f"describes: {'; '.join(parts)}")


class Policy:
    """A trained agent plus the metadata needed to feed it images and return real actions."""

    def __init__(self, agent, meta: CheckpointMeta, device: torch.device | str = "cpu", seed: int = 0,
                 gripper: str | None = None):
        self.agent = agent
        self.meta = meta
        self.device = torch.device(device)
        self._generator = torch.Generator(device=self.device)
        self.seed(seed)
        self._mean = np.asarray(meta.action_mean, dtype=np.float32)
        self._std = np.asarray(meta.action_std, dtype=np.float32)
        self._low = None if meta.action_low is None else np.asarray(meta.action_low, dtype=np.float32)
        self._high = None if meta.action_high is None else np.asarray(meta.action_high, dtype=np.float32)
        names = list(meta.action_names or [])
        self._gripper_index = names.index("gripper") if "gripper" in names else None
        self.gripper_mode = gripper  # type: ignore[assignment]  (None: the model's setting)

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | torch.device = "auto", seed: int = 0,
             gripper: str | None = None) -> "Policy":
        """Load a checkpoint file (or a run directory holding model.pt); `seed` seeds the
        generator sampled actions come from; `gripper` ("continuous" | "binary", None: the
        model's ``eval_gripper``) says how the gripper action is executed."""
        dev = resolve_device(device)
        ckpt = load_checkpoint(path, map_location="cpu")
        agent = build_agent(ckpt.meta, dev)
        load_deployable_state(agent, ckpt.model, ckpt.path)
        agent.to(dev)
        agent.eval()
        return cls(agent, ckpt.meta, dev, seed=seed, gripper=gripper)

    def seed(self, seed: int) -> None:
        """Restart the stream of the action noise (`act` with sampling) from `seed`."""
        self._generator.manual_seed(int(seed))

    # -- description --------------------------------------------------------------------------
    @property
    def algorithm(self) -> str:
        return self.meta.algorithm

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.meta.image_shape

    @property
    def action_dim(self) -> int:
        return self.meta.action_dim

    @property
    def action_names(self) -> list[str]:
        return list(self.meta.action_names)

    @property
    def action_low(self) -> np.ndarray | None:
        return self._low

    @property
    def action_high(self) -> np.ndarray | None:
        return self._high

    @property
    def metadata(self) -> dict[str, Any]:
        return self.meta.to_dict()

    @property
    def samples_by_default(self) -> bool:
        """The model's ``eval_sample``: what `act` does when ``sample`` is None."""
        return bool(getattr(self.agent.config, "eval_sample", False))

    @property
    def gripper_mode(self) -> str:
        """How `act` executes the action named "gripper": "continuous" (as the network says)
        or "binary" (fully open at or above the middle of its bounds, fully closed below).
        Setting None restores the model's ``eval_gripper``; a model with no "gripper" action
        is unaffected either way."""
        return self._gripper_mode

    @gripper_mode.setter
    def gripper_mode(self, mode: str | None) -> None:
        if mode is None:
            mode = str(getattr(self.agent.config, "eval_gripper", "continuous"))
        if mode not in GRIPPER_MODES:
            raise ValueError(f"gripper mode must be one of {', '.join(GRIPPER_MODES)}, got {mode!r}")
        self._gripper_mode = mode

    def _snap_gripper(self, actions: np.ndarray) -> np.ndarray:
        i = self._gripper_index
        lo = 0.0 if self._low is None else float(self._low[i])
        hi = 1.0 if self._high is None else float(self._high[i])
        actions = np.array(actions, copy=True)
        actions[:, i] = snap_gripper(actions[:, i], lo, hi)
        return actions

    # -- inference ----------------------------------------------------------------------------
    def _images(self, images: Any, name: str) -> np.ndarray:
        if isinstance(images, torch.Tensor):
            images = images.detach().cpu().numpy()
        if not isinstance(images, np.ndarray):
            raise PolicyInputError(f"{name} must be a numpy uint8 array, got {type(images).__name__}")
        h, w, c = self.image_shape
        if images.dtype != np.uint8:
            raise PolicyInputError(f"{name} must be uint8 RGB (0-255) of shape ({h}, {w}, {c}) or "
                                   f"[B, {h}, {w}, {c}]; got dtype {images.dtype}")
        if images.shape[-3:] != (h, w, c) or images.ndim not in (3, 4):
            raise PolicyInputError(f"{name} must have shape ({h}, {w}, {c}) or [B, {h}, {w}, {c}] "
                                   f"(this model was trained on {h}x{w}x{c} images); got {images.shape}")
        return images

    def _inputs(self, obs: Any, goal: Any) -> tuple[torch.Tensor, torch.Tensor, bool]:
        obs = self._images(obs, "obs")
        goal = self._images(goal, "goal")
        single = obs.ndim == 3
        if single and goal.ndim == 4:
            raise PolicyInputError(f"a single obs image was given with a batch of {goal.shape[0]} goals")
        obs = obs[None] if single else obs
        goal = goal[None] if goal.ndim == 3 else goal
        if goal.shape[0] == 1 and obs.shape[0] > 1:
            goal = np.broadcast_to(goal, obs.shape)
        if goal.shape[0] != obs.shape[0]:
            raise PolicyInputError(f"obs batch {obs.shape[0]} and goal batch {goal.shape[0]} differ")
        to_tensor = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(self.device)  # noqa: E731
        return to_tensor(obs), to_tensor(goal), single

    def act(self, obs: Any, goal: Any, sample: bool | None = None, clip: bool = True) -> np.ndarray:
        """Un-normalised action(s), clipped to the bounds if known: a sample of N(mean,
        policy_std^2) with ``sample=True``, the mean with False, the model's ``eval_sample``
        setting with None (the default); the gripper as `gripper_mode` says."""
        if sample is None:
            sample = self.samples_by_default
        o, g, single = self._inputs(obs, goal)
        with torch.inference_mode():
            normalised = self.agent.act(o, g, sample=bool(sample), generator=self._generator)
        normalised = normalised.float().cpu().numpy()
        if not np.isfinite(normalised).all():
            raise FloatingPointError(f"the {self.algorithm} policy produced non-finite actions "
                                     f"{normalised[~np.isfinite(normalised).all(1)][0]}; the model is broken "
                                     f"(diverged training?) and its output must not be executed")
        actions = normalised * self._std + self._mean
        if clip and self._low is not None and self._high is not None:
            actions = np.clip(actions, self._low, self._high)
        if self._gripper_mode == "binary" and self._gripper_index is not None:
            actions = self._snap_gripper(actions)
        return actions[0] if single else actions

    def score(self, obs: Any, goal: Any) -> float | np.ndarray | None:
        """The critic's goal-reaching logit (Stable CRL: min over twins), or None without a critic."""
        o, g, single = self._inputs(obs, goal)
        with torch.inference_mode():
            scores = self.agent.score(o, g)
        if scores is None:
            return None
        scores = scores.float().cpu().numpy().reshape(-1)
        if not np.isfinite(scores).all():
            raise FloatingPointError(f"the {self.algorithm} critic produced non-finite scores")
        return float(scores[0]) if single else scores

    def __repr__(self) -> str:
        return (f"Policy({self.algorithm}, image_shape={self.image_shape}, action_dim={self.action_dim}, "
                f"step={self.meta.step}, device={self.device})")
