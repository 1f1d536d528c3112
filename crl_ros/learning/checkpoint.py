"""Self-describing checkpoints: what a trained model is, and (optionally) how to resume its training.

A checkpoint is one ``torch.save`` file holding only tensors and plain Python values, so it
loads with ``torch.load(..., weights_only=True)`` (no pickled code runs)::

    {"format": "crl_ros.checkpoint", "format_version": 1,
     "meta":     {algorithm, config, image_shape, action_dim, action_names, action_mean,
                  action_std, action_low, action_high, step, dataset, created, crl_ros_version,
                  weights_dtype, calibration (optional: the goal-reached threshold)},
     "model":    agent.state_dict(),
     "training": None | {step, optimizer, sampler, rng, train_config}}

``out/model.pt`` of a run holds meta + the deployable weights (what `Policy.load` needs:
no target networks, optionally in half precision); the step
checkpoints under ``out/checkpoints/`` also hold the training state for ``crl train --resume``.
Writes are atomic (temporary file, fsync, ``os.replace``), so a crash never leaves a
half-written checkpoint under the real name. Every way a file can be wrong (missing,
truncated, random bytes, a plain torch file, a newer format) raises `CheckpointError`
with a message that names the file and the problem.
"""
from __future__ import annotations

import dataclasses
import os
import pickle
import random
import re
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

FORMAT_NAME = "crl_ros.checkpoint"
FORMAT_VERSION = 1
MODEL_FILENAME = "model.pt"
CHECKPOINT_DIR = "checkpoints"
_STEP_FILE = re.compile(r"^step_(\d+)\.pt$")


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable, foreign or from a newer crl_ros."""


@dataclass
class CheckpointMeta:
    algorithm: str
    config: dict[str, Any]
    image_shape: tuple[int, int, int]
    action_dim: int
    action_names: list[str]
    action_mean: list[float]
    action_std: list[float]
    action_low: list[float] | None = None
    action_high: list[float] | None = None
    step: int = 0
    dataset: dict[str, Any] = field(default_factory=dict)
    created: str = ""
    crl_ros_version: str = ""
    weights_dtype: str = "float32"  # model.pt may hold float16/bfloat16 weights; Policy.load casts to fp32
    # the goal-reached detector's threshold (crl_ros.learning.calibration.GoalCalibration.to_dict,
    # written by `crl calibrate`); None: not calibrated (every model before 2026-12-06)
    calibration: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        self.image_shape = tuple(int(s) for s in self.image_shape)  # type: ignore[assignment]
        self.action_mean = [float(x) for x in self.action_mean]
        self.action_std = [float(x) for x in self.action_std]
        if len(self.image_shape) != 3:
            raise CheckpointError(f"image_shape must be (H, W, C), got {self.image_shape}")
        for name in ("action_names", "action_mean", "action_std", "action_low", "action_high"):
            value = getattr(self, name)
            if value is not None and len(value) != self.action_dim:
                raise CheckpointError(f"{name} has {len(value)} entries for action_dim {self.action_dim}")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["image_shape"] = list(self.image_shape)
        return d


@dataclass
class Checkpoint:
    meta: CheckpointMeta
    model: dict[str, torch.Tensor]
    training: dict[str, Any] | None
    path: Path


def _version() -> str:
    try:
        from importlib.metadata import version
        return version("crl_ros")
    except Exception:  # not installed as a distribution (e.g. run from a source tree)
        return "unknown"


def save_checkpoint(path: str | os.PathLike, meta: CheckpointMeta, model_state: dict[str, torch.Tensor],
                    training_state: dict[str, Any] | None = None) -> Path:
    """Write a checkpoint atomically; tensors are moved to the CPU first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not meta.created:
        meta = dataclasses.replace(meta, created=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    if not meta.crl_ros_version:
        meta = dataclasses.replace(meta, crl_ros_version=_version())
    payload = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "meta": meta.to_dict(),
        "model": _to_cpu(model_state),
        "training": _to_cpu(training_state),
    }
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Read and check a checkpoint (a file, or a run directory holding ``model.pt``)."""
    path = Path(path)
    if path.is_dir():
        path = path / MODEL_FILENAME
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes)")
    with open(path, "rb") as f:
        header = f.read(4)
    if header != b"PK\x03\x04":
        raise CheckpointError(f"{path} is not a crl_ros checkpoint (not a torch zip file: "
                              f"it starts with bytes {header!r})")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"{path} is truncated or corrupt (its zip directory is missing; "
                              f"was the copy or the training run interrupted?)")
    try:  # torch does not check the zip CRCs itself; flipped bits would load as silently wrong weights
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise CheckpointError(f"{path} is truncated or corrupt: {_first_line(exc)}") from exc
    if damaged is not None:
        raise CheckpointError(f"{path} is corrupt: entry {damaged!r} fails its CRC check")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"{path} is not a crl_ros checkpoint: it holds pickled Python objects (e.g. a whole "
            f"nn.Module), which crl_ros never loads because unpickling can run arbitrary code") from exc
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, UnicodeDecodeError,
            KeyError, IndexError, TypeError, AttributeError, MemoryError) as exc:
        raise CheckpointError(
            f"{path} cannot be read as a checkpoint (truncated, corrupt or not a torch file): "
            f"{type(exc).__name__}: {_first_line(exc)}") from exc
    if not isinstance(payload, dict) or "format" not in payload:
        kind = type(payload).__name__
        raise CheckpointError(f"{path} is not a crl_ros checkpoint (a torch file holding a {kind} "
                              f"without the 'format' key; crl_ros checkpoints are written by `crl train`)")
    if payload["format"] != FORMAT_NAME:
        raise CheckpointError(f"{path} is not a crl_ros checkpoint (format {payload['format']!r})")
    version = payload.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise CheckpointError(f"{path}: bad checkpoint format_version {version!r}")
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{path} has checkpoint format version {version}, newer than this crl_ros "
                              f"reads ({FORMAT_VERSION}); upgrade crl_ros to load it")
    for key in ("meta", "model"):
        if not isinstance(payload.get(key), dict):
            raise CheckpointError(f"{path}: checkpoint has no '{key}' section")
    try:
        meta = CheckpointMeta(**payload["meta"])
    except TypeError as exc:
        raise CheckpointError(f"{path}: bad checkpoint metadata: {exc}") from exc
    return Checkpoint(meta=meta, model=payload["model"], training=payload.get("training"), path=path)


#: agent-config keys that only say how a trained policy acts by default, not how it was trained
#: or what network it is: `set_acting_settings` may change them in a saved model
ACTING_KEYS = ("eval_sample", "eval_gripper")


def set_acting_settings(path: str | os.PathLike, settings: dict[str, Any],
                        out: str | os.PathLike | None = None) -> Path:
    """Change a saved model's acting settings (`ACTING_KEYS`) without touching its weights
    or anything it was trained with; writes ``out`` (default: in place, atomically)."""
    from crl_ros.learning.agents import config_from_checkpoint

    unknown = sorted(set(settings) - set(ACTING_KEYS))
    if unknown:
        raise CheckpointError(f"only the acting settings {', '.join(ACTING_KEYS)} can be changed in a trained "
                              f"model; {', '.join(unknown)} would change what it was trained as")
    ckpt = load_checkpoint(path)
    config = {**ckpt.meta.config, **settings}
    try:
        config_from_checkpoint(ckpt.meta.algorithm, config)  # the values must be valid
    except ValueError as exc:
        raise CheckpointError(f"{ckpt.path}: {exc}") from exc
    meta = dataclasses.replace(ckpt.meta, config=config)
    return save_checkpoint(ckpt.path if out is None else out, meta, ckpt.model, ckpt.training)


def set_calibration(path: str | os.PathLike, calibration: dict[str, Any] | None,
                    out: str | os.PathLike | None = None) -> Path:
    """Store the goal-reached detector's calibration in a saved model (None removes it), its
    weights and everything else unchanged; writes ``out`` (default: in place, atomically)."""
    ckpt = load_checkpoint(path)
    meta = dataclasses.replace(ckpt.meta, calibration=calibration)
    return save_checkpoint(ckpt.path if out is None else out, meta, ckpt.model, ckpt.training)


def step_checkpoint_path(out_dir: str | os.PathLike, step: int) -> Path:
    return Path(out_dir) / CHECKPOINT_DIR / f"step_{step:07d}.pt"


def list_step_checkpoints(out_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    """(step, path) of every step checkpoint of a run, oldest first."""
    folder = Path(out_dir) / CHECKPOINT_DIR
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _STEP_FILE.match(p.name))]
    return sorted(found)


# -- RNG state ------------------------------------------------------------------------------
def capture_rng_state() -> dict[str, Any]:
    """Every global RNG a training step may touch, as weights_only-loadable values."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"key": np_state[0], "state": torch.from_numpy(np_state[1].astype(np.int64)),
                  "pos": int(np_state[2]), "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"].cpu())
    n = state["numpy"]
    np.random.set_state((n["key"], n["state"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def _to_cpu(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_cpu(v) for v in value)
    return value


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else ""
