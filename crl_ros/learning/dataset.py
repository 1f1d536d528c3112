"""The crl_ros on-disk dataset format (HDF5) with its writer, loader and validator.

One file holds many episodes, frames concatenated in time order::

    /images        uint8   [N, H, W, C]   camera frames (C = 3 per camera, cameras stacked)
    /actions       float32 [N, A]         action taken at frame i (leads to frame i+1)
    /episode_ends  int64   [E]            exclusive end index of each episode, increasing
    /proprio       float32 [N, P]         optional proprioception (joint positions, ...)

The action row of the LAST frame of every episode is padding (zeros): no transition
leaves it. Attributes of the root group: ``format`` ("crl_ros.dataset"),
``format_version``, ``image_shape`` (H, W, C), ``action_dim``, ``action_names``
(JSON list), ``action_low`` / ``action_high`` (bounds of valid actions),
``control_rate_hz`` and ``provenance`` (JSON: who wrote it, from what).

The file is readable with h5py alone. This module imports no torch and no ROS.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import h5py
import numpy as np

FORMAT_NAME = "crl_ros.dataset"
FORMAT_VERSION = 1


class DatasetError(ValueError):
    """A dataset file is missing, malformed or inconsistent; the message names the problem."""


@dataclass
class DatasetMetadata:
    image_shape: tuple[int, int, int]
    action_dim: int
    action_names: list[str] = field(default_factory=list)
    action_low: list[float] | None = None
    action_high: list[float] | None = None
    control_rate_hz: float = 5.0
    provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.image_shape = tuple(int(s) for s in self.image_shape)  # type: ignore[assignment]
        if len(self.image_shape) != 3:
            raise DatasetError(f"image_shape must be (H, W, C), got {self.image_shape}")
        if not self.action_names:
            self.action_names = [f"a{i}" for i in range(self.action_dim)]
        if len(self.action_names) != self.action_dim:
            raise DatasetError(
                f"{len(self.action_names)} action_names for action_dim {self.action_dim}")


class DatasetWriter:
    """Appends episodes to a new dataset file; the file appears only when `close()` succeeds.

    Use as a context manager. On an exception inside the ``with`` block the partial file
    is deleted, so a failed conversion never leaves a half-written dataset behind.
    """

    def __init__(self, path: str | os.PathLike, metadata: DatasetMetadata,
                 proprio_dim: int | None = None, compression: str | None = None,
                 overwrite: bool = False):
        self.path = Path(path)
        if self.path.exists() and not overwrite:
            raise FileExistsError(f"dataset {self.path} already exists (pass overwrite=True to replace it)")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.metadata = metadata
        self._tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        self._file = h5py.File(self._tmp, "w")
        h, w, c = metadata.image_shape
        # track_times=False: no creation times in the file, so the same episodes give the same
        # bytes (crl convert --workers N is checked against --workers 1 that way)
        self._images = self._file.create_dataset(
            "images", shape=(0, h, w, c), maxshape=(None, h, w, c), dtype=np.uint8,
            chunks=(max(1, min(256, (1 << 20) // (h * w * c))), h, w, c), compression=compression,
            track_times=False)
        self._actions = self._file.create_dataset(
            "actions", shape=(0, metadata.action_dim), maxshape=(None, metadata.action_dim),
            dtype=np.float32, chunks=(4096, metadata.action_dim), track_times=False)
        self._proprio = None
        if proprio_dim:
            self._proprio = self._file.create_dataset(
                "proprio", shape=(0, proprio_dim), maxshape=(None, proprio_dim),
                dtype=np.float32, chunks=(4096, proprio_dim), track_times=False)
        self._ends: list[int] = []
        self._n = 0

    @property
    def num_frames(self) -> int:
        return self._n

    @property
    def num_episodes(self) -> int:
        return len(self._ends)

    def add_episode(self, images: np.ndarray, actions: np.ndarray,
                    proprio: np.ndarray | None = None) -> None:
        """Append one episode: ``images`` [T, H, W, C] uint8 and ``actions`` [T, A] or [T-1, A]."""
        images = np.asarray(images)
        actions = np.asarray(actions, dtype=np.float32)
        t = len(images)
        if images.dtype != np.uint8:
            raise DatasetError(f"images must be uint8, got {images.dtype}")
        if images.shape[1:] != self.metadata.image_shape:
            raise DatasetError(f"image shape {images.shape[1:]} != dataset image_shape {self.metadata.image_shape}")
        if t < 2:
            raise DatasetError(f"an episode needs at least 2 frames, got {t}")
        if actions.ndim != 2 or actions.shape[1] != self.metadata.action_dim:
            raise DatasetError(f"actions must be [T, {self.metadata.action_dim}], got {actions.shape}")
        if len(actions) == t - 1:
            actions = np.concatenate([actions, np.zeros((1, actions.shape[1]), np.float32)])
        if len(actions) != t:
            raise DatasetError(f"{len(actions)} actions for {t} frames (expected {t} or {t - 1})")
        if not np.isfinite(actions[:-1]).all():
            raise DatasetError("actions contain NaN or inf")
        actions = actions.copy()
        actions[-1] = 0.0
        n0, n1 = self._n, self._n + t
        self._images.resize(n1, axis=0)
        self._images[n0:n1] = images
        self._actions.resize(n1, axis=0)
        self._actions[n0:n1] = actions
        if self._proprio is not None:
            if proprio is None or len(proprio) != t:
                raise DatasetError(f"this dataset stores proprio: give [T={t}, P] per episode")
            self._proprio.resize(n1, axis=0)
            self._proprio[n0:n1] = np.asarray(proprio, dtype=np.float32)
        self._ends.append(n1)
        self._n = n1

    def close(self) -> Path:
        """Finish the file and move it into place atomically. Returns the final path."""
        if self._file is None:
            return self.path
        if not self._ends:
            self.abort()
            raise DatasetError(f"no episodes were written to {self.path}")
        m = self.metadata
        self._file.create_dataset("episode_ends", data=np.asarray(self._ends, dtype=np.int64), track_times=False)
        attrs = self._file.attrs
        attrs["format"] = FORMAT_NAME
        attrs["format_version"] = FORMAT_VERSION
        attrs["image_shape"] = np.asarray(m.image_shape, dtype=np.int64)
        attrs["action_dim"] = m.action_dim
        attrs["action_names"] = json.dumps(m.action_names)
        if m.action_low is not None:
            attrs["action_low"] = np.asarray(m.action_low, dtype=np.float32)
        if m.action_high is not None:
            attrs["action_high"] = np.asarray(m.action_high, dtype=np.float32)
        attrs["control_rate_hz"] = float(m.control_rate_hz)
        prov = {"writer": "crl_ros", "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **m.provenance}
        attrs["provenance"] = json.dumps(prov)
        self._file.close()
        self._file = None
        os.replace(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        """Drop everything written so far."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> "DatasetWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


@dataclass
class Dataset:
    """A whole dataset held in memory as numpy arrays."""
    images: np.ndarray
    actions: np.ndarray
    episode_ends: np.ndarray
    metadata: DatasetMetadata
    proprio: np.ndarray | None = None
    path: Path | None = None
    #: exclusive frame end of each source file (`load_many`); None: one source
    source_ends: np.ndarray | None = None

    @property
    def num_frames(self) -> int:
        return len(self.images)

    @property
    def num_episodes(self) -> int:
        return len(self.episode_ends)

    @property
    def episode_starts(self) -> np.ndarray:
        return np.concatenate([[0], self.episode_ends[:-1]]).astype(np.int64)

    def episode_end_of_frame(self) -> np.ndarray:
        """For every frame, the exclusive end index of its episode."""
        lengths = np.diff(np.concatenate([[0], self.episode_ends]))
        return np.repeat(self.episode_ends, lengths)

    def transition_mask(self) -> np.ndarray:
        """True for frames that have a next frame in the same episode (valid (s, a, s') starts)."""
        mask = np.ones(self.num_frames, dtype=bool)
        mask[self.episode_ends - 1] = False
        return mask

    def source_frame_weights(self, weights: Sequence[float]) -> np.ndarray:
        """Per-frame sampling weight: frame f of source file i gets ``weights[i]`` (one per file)."""
        ends = self.source_ends if self.source_ends is not None else np.array([self.num_frames], np.int64)
        weights = [float(w) for w in weights]
        if len(weights) != len(ends):
            raise DatasetError(f"{len(weights)} data weights for {len(ends)} dataset file(s): give one per file")
        if not all(np.isfinite(w) and w >= 0 for w in weights) or not any(w > 0 for w in weights):
            raise DatasetError(f"data weights must be finite, >= 0 and not all 0, got {weights}")
        return np.repeat(np.asarray(weights, np.float64), np.diff(np.concatenate([[0], ends])))

    def episode(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        s, e = int(self.episode_starts[i]), int(self.episode_ends[i])
        return self.images[s:e], self.actions[s:e]


def _read_metadata(f: h5py.File, where: str) -> DatasetMetadata:
    a = f.attrs
    if a.get("format") != FORMAT_NAME:
        raise DatasetError(f"{where}: not a crl_ros dataset (root attribute 'format' is {a.get('format')!r})")
    version = int(a.get("format_version", -1))
    if version > FORMAT_VERSION or version < 1:
        raise DatasetError(f"{where}: dataset format_version {version} is not supported (this crl_ros reads 1..{FORMAT_VERSION})")
    try:
        return DatasetMetadata(
            image_shape=tuple(int(x) for x in a["image_shape"]),
            action_dim=int(a["action_dim"]),
            action_names=json.loads(a["action_names"]),
            action_low=[float(x) for x in a["action_low"]] if "action_low" in a else None,
            action_high=[float(x) for x in a["action_high"]] if "action_high" in a else None,
            control_rate_hz=float(a.get("control_rate_hz", 5.0)),
            provenance=json.loads(a.get("provenance", "{}")),
        )
    except (KeyError, ValueError, TypeError) as exc:
        raise DatasetError(f"{where}: bad dataset metadata: {exc}") from exc


def _check_arrays(where: str, meta: DatasetMetadata, images_shape, images_dtype,
                  actions: np.ndarray, ends: np.ndarray, proprio_len: int | None) -> None:
    n = images_shape[0]
    if images_dtype != np.uint8:
        raise DatasetError(f"{where}: /images must be uint8, found {images_dtype}")
    if tuple(images_shape[1:]) != meta.image_shape:
        raise DatasetError(f"{where}: /images frames are {tuple(images_shape[1:])} but image_shape says {meta.image_shape}")
    if actions.shape != (n, meta.action_dim):
        raise DatasetError(f"{where}: /actions is {actions.shape}, expected ({n}, {meta.action_dim})")
    if proprio_len is not None and proprio_len != n:
        raise DatasetError(f"{where}: /proprio has {proprio_len} rows for {n} frames")
    if ends.ndim != 1 or len(ends) == 0:
        raise DatasetError(f"{where}: /episode_ends is empty")
    starts = np.concatenate([[0], ends[:-1]])
    short = np.nonzero(ends - starts < 2)[0]
    if len(short):
        raise DatasetError(f"{where}: episode {int(short[0])} has fewer than 2 frames (episode_ends must increase by >= 2)")
    if ends[-1] != n:
        raise DatasetError(f"{where}: last episode ends at {int(ends[-1])} but there are {n} frames")
    mask = np.ones(n, dtype=bool)
    mask[ends - 1] = False
    bad = np.nonzero(~np.isfinite(actions[mask]).all(axis=1))[0]
    if len(bad):
        frame = int(np.nonzero(mask)[0][bad[0]])
        raise DatasetError(f"{where}: action at frame {frame} is NaN or inf")


def _open(path: str | os.PathLike) -> h5py.File:
    p = Path(path)
    if not p.exists():
        raise DatasetError(f"dataset {p} does not exist")
    try:
        return h5py.File(p, "r")
    except OSError as exc:
        raise DatasetError(f"{p}: cannot be read as HDF5 (truncated or not a dataset?): {exc}") from exc


def validate(path: str | os.PathLike) -> DatasetMetadata:
    """Check a dataset file thoroughly; return its metadata or raise DatasetError naming the problem."""
    where = str(path)
    with _open(path) as f:
        meta = _read_metadata(f, where)
        for key in ("images", "actions", "episode_ends"):
            if key not in f:
                raise DatasetError(f"{where}: missing /{key}")
        try:
            actions = f["actions"][()]
            ends = f["episode_ends"][()].astype(np.int64)
            _check_arrays(where, meta, f["images"].shape, f["images"].dtype, actions, ends,
                          f["proprio"].shape[0] if "proprio" in f else None)
            # Touch the image chunks once so truncation shows up here, not mid-training.
            step = max(1, f["images"].shape[0] // 64)
            f["images"][::step]
        except (OSError, RuntimeError) as exc:
            raise DatasetError(f"{where}: data cannot be read (truncated file?): {exc}") from exc
    return meta


def load(path: str | os.PathLike, validate_arrays: bool = True) -> Dataset:
    """Read a whole dataset into memory."""
    where = str(path)
    with _open(path) as f:
        meta = _read_metadata(f, where)
        try:
            images = f["images"][()]
            actions = f["actions"][()]
            ends = f["episode_ends"][()].astype(np.int64)
            proprio = f["proprio"][()] if "proprio" in f else None
        except KeyError as exc:
            raise DatasetError(f"{where}: missing dataset {exc}") from exc
        except (OSError, RuntimeError) as exc:
            raise DatasetError(f"{where}: data cannot be read (truncated file?): {exc}") from exc
    if validate_arrays:
        _check_arrays(where, meta, images.shape, images.dtype, actions, ends,
                      None if proprio is None else len(proprio))
    return Dataset(images=images, actions=actions, episode_ends=ends, metadata=meta,
                   proprio=proprio, path=Path(path))


def load_many(paths: Sequence[str | os.PathLike]) -> Dataset:
    """Load several datasets with the same image shape and action layout as one."""
    parts = [load(p) for p in paths]
    if not parts:
        raise DatasetError("no dataset paths given")
    first = parts[0]
    for d in parts[1:]:
        if d.metadata.image_shape != first.metadata.image_shape or d.metadata.action_dim != first.metadata.action_dim:
            raise DatasetError(f"{d.path}: image shape / action dim {d.metadata.image_shape}/{d.metadata.action_dim} "
                               f"differ from {first.path}: {first.metadata.image_shape}/{first.metadata.action_dim}")
    if len(parts) == 1:
        return first
    offsets = np.cumsum([0] + [d.num_frames for d in parts[:-1]])
    proprio = None
    if all(d.proprio is not None for d in parts):
        proprio = np.concatenate([d.proprio for d in parts])
    return Dataset(
        images=np.concatenate([d.images for d in parts]),
        actions=np.concatenate([d.actions for d in parts]),
        episode_ends=np.concatenate([d.episode_ends + o for d, o in zip(parts, offsets)]),
        metadata=first.metadata, proprio=proprio, path=first.path,
        source_ends=np.cumsum([d.num_frames for d in parts]).astype(np.int64))
