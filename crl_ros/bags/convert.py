"""Bags -> crl_ros dataset: one bag is one episode.

Topics come at their own rates (camera ~30 Hz, joint states ~100 Hz, actions at the
control rate); the converter samples them on one clock, the control rate, using bag
receive times (the one clock every topic shares):

- With an action topic (std_msgs/Float32MultiArray in the crl_ros layout): every
  action message is one step, and the frame of that step is the newest image received
  at or before the action, i.e. what the operator or policy saw when acting. Action
  messages come at the control rate; they are checked for that.
- Without one: steps are a regular grid at ``rate_hz`` over the time all topics cover;
  the frame is the newest image at or before each grid time, the joint state is
  interpolated there, and the action of step k is the end-effector motion from step k to
  k+1 through forward kinematics, in the convention of `crl_ros.robot.actions`
  (base-frame translation, left-multiplied base-frame rotation as roll/pitch/yaw,
  absolute gripper opening of the next step).

Every image goes through `crl_ros.robot.camera.preprocess_image`, the very function
camera_node uses live. A missing topic, a corrupt or truncated bag, stamps that go
backwards or a gap in a stream stops the conversion with a `BagError` naming bag, topic
and time; the dataset file appears only when every bag converted (DatasetWriter is
atomic).
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from crl_ros.robot import camera
from .reader import BagError, BagReader, header_stamp_ns

IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
ACTION_TYPE = "std_msgs/msg/Float32MultiArray"
JOINT_TYPE = "sensor_msgs/msg/JointState"
# Topic names tried in order when none is given (relative names match any namespace).
IMAGE_TOPIC_GUESSES = ("image_raw", "image_raw/compressed", "observation")
ACTION_TOPIC_GUESSES = ("action",)
JOINT_TOPIC_GUESSES = ("joint_states",)


@dataclass
class ConvertOptions:
    image_topic: str | None = None        # None: guess (image_raw, image_raw/compressed, observation)
    action_topic: str | None = None       # None: "action" if the bag has it, else FK from joints
    joint_topic: str | None = None        # None: "joint_states" if present
    rate_hz: float = 5.0
    crop: Sequence[int] | None = None     # (x0, y0, x1, y1) pixels of the raw camera image
    size: Sequence[int] = (48, 48)        # (H, W) of the dataset images
    # The crop is camera_node's default for raw camera frames, not one the user asked for:
    # frames already at or below ``size`` (an ``observation`` topic, already cropped and
    # resized by camera_node or the simulator) are then only resized, not cropped again.
    crop_is_default: bool = False
    max_gap_s: float = 0.5                # a longer silence in any used topic is an error
    rate_tolerance: float = 0.5           # action period may deviate this fraction from 1/rate_hz
    store_proprio: bool = True            # joint positions as /proprio when joints are recorded
    progress: bool = True
    overwrite: bool = False

    def __post_init__(self):
        if not self.rate_hz > 0:
            raise ValueError(f"the control rate must be > 0 Hz, got {self.rate_hz}")
        if not self.max_gap_s > 0:
            raise ValueError(f"the longest gap must be > 0 s, got {self.max_gap_s}")
        if len(self.size) != 2 or min(int(v) for v in self.size) < 1:
            raise ValueError(f"the image size must be two positive numbers (H, W), got {list(self.size)}")


@dataclass
class Episode:
    images: np.ndarray       # [T, H, W, 3] uint8
    actions: np.ndarray      # [T, 7] float32 (last row padding)
    proprio: np.ndarray | None
    source: str
    action_source: str       # "topic" or "fk"
    frame_size: tuple[int, int] = (0, 0)  # (H, W) of the bag's camera frames
    cropped: bool = True     # False: frames were already at the dataset size (default crop not applied)
    clipped_actions: int = 0
    notes: list[str] = field(default_factory=list)


def _match_topic(available: dict, wanted: str | None, guesses: Sequence[str], types: Sequence[str],
                 bag: Path, role: str, required: bool) -> str | None:
    """Resolve a topic name: exact, or ending in '/<name>' (namespaced recordings)."""
    candidates = [wanted] if wanted else list(guesses)
    for name in candidates:
        stripped = name.lstrip("/")
        for topic, info in available.items():
            if topic.lstrip("/") == stripped or topic.endswith("/" + stripped):
                if info.msgtype not in types:
                    raise BagError(f"bag {bag}: {role} topic {topic} has type {info.msgtype}, expected one of {list(types)}")
                if info.count == 0:
                    raise BagError(f"bag {bag}: {role} topic {topic} has no messages")
                return topic
    if required:
        raise BagError(f"bag {bag}: {role} topic {' or '.join(candidates)!r} is missing "
                       f"(bag has {sorted(available)})")
    return None


def _check_stream(bag: BagReader, topic: str, times: np.ndarray, stamps: list[int | None],
                  max_gap_s: float, t_from: int, t_to: int) -> None:
    """Header stamps must not go backwards; within [t_from, t_to] no silence > max_gap_s."""
    hs = np.array([s for s in stamps if s is not None and s > 0], dtype=np.int64)
    if len(hs) > 1:
        back = np.nonzero(np.diff(hs) < 0)[0]
        if len(back):
            i = int(back[0]) + 1
            idx = [j for j, s in enumerate(stamps) if s is not None and s > 0][i]
            raise BagError(f"bag {bag.path}: topic {topic}: header stamps go backwards at t={bag.seconds(times[idx]):.3f}s "
                           f"(stamp {hs[i] / 1e9:.6f} after {hs[i - 1] / 1e9:.6f})")
    if len(times) > 1 and np.any(np.diff(times) < 0):
        i = int(np.nonzero(np.diff(times) < 0)[0][0]) + 1
        raise BagError(f"bag {bag.path}: topic {topic}: receive times go backwards at t={bag.seconds(times[i]):.3f}s")
    inside = times[(times >= t_from) & (times <= t_to)]
    edges = np.concatenate([[t_from], inside, [t_to]])
    gaps = np.diff(edges)
    if len(gaps) and gaps.max() > max_gap_s * 1e9:
        i = int(np.argmax(gaps))
        raise BagError(f"bag {bag.path}: topic {topic}: gap of {gaps[i] / 1e9:.3f}s after t={bag.seconds(edges[i]):.3f}s "
                       f"(max allowed {max_gap_s}s)")


def _joint_positions(msg: Any, names: Sequence[str], bag: Path, topic: str, t: float) -> np.ndarray:
    index = {n: i for i, n in enumerate(msg.name)}
    missing = [n for n in names if n not in index]
    if missing:
        raise BagError(f"bag {bag}: topic {topic} at t={t:.3f}s lacks joints {missing} (has {list(msg.name)})")
    pos = np.asarray(msg.position, dtype=np.float64)
    return np.array([pos[index[n]] for n in names])


def _interpolate(times: np.ndarray, values: np.ndarray, at: np.ndarray) -> np.ndarray:
    return np.stack([np.interp(at, times, values[:, j]) for j in range(values.shape[1])], axis=1)


def ee_deltas_from_joints(q: np.ndarray, gripper: np.ndarray) -> np.ndarray:
    """Actions [T, 7] that move the end effector from fk(q[k]) to fk(q[k+1]); last row padding.

    Inverse of `crl_ros.robot.actions.compose_ee_delta`: translation difference in the
    base frame and R_{k+1} R_k^T as roll/pitch/yaw; gripper is the opening at k+1.
    """
    from crl_ros.robot import kinematics

    poses = np.stack([kinematics.fk(qk) for qk in q])
    actions = np.zeros((len(q), 7), dtype=np.float64)
    actions[:-1, :3] = poses[1:, :3, 3] - poses[:-1, :3, 3]
    for k in range(len(q) - 1):
        actions[k, 3:6] = kinematics.matrix_to_rpy(poses[k + 1, :3, :3] @ poses[k, :3, :3].T)
    actions[:-1, 6] = gripper[1:]
    return actions


def convert_bag(path: str | os.PathLike, options: ConvertOptions,
                on_frame: Callable[[int], None] | None = None) -> Episode:
    """Convert one bag into one episode (in memory)."""
    from crl_ros.robot import actions as action_conv
    from crl_ros.robot import kinematics

    opts = options
    with BagReader(path) as bag:
        topics = bag.topics()
        image_topic = _match_topic(topics, opts.image_topic, IMAGE_TOPIC_GUESSES, IMAGE_TYPES, bag.path, "image", True)
        action_topic = _match_topic(topics, opts.action_topic, ACTION_TOPIC_GUESSES, (ACTION_TYPE,), bag.path,
                                    "action", required=opts.action_topic is not None)
        joint_topic = _match_topic(topics, opts.joint_topic, JOINT_TOPIC_GUESSES, (JOINT_TYPE,), bag.path,
                                   "joint state", required=action_topic is None or opts.joint_topic is not None)

        # Pass 1: everything except image payloads (times, stamps, actions, joints).
        small = [t for t in (action_topic, joint_topic) if t]
        img_times, img_stamps = [], []
        act_times, act_values, act_stamps = [], [], []
        joint_times, joint_q, joint_grip, joint_stamps = [], [], [], []
        arm_names = list(kinematics.JOINT_NAMES)
        for topic, t, raw, msgtype in bag.raw_messages([image_topic, *small]):
            if topic == image_topic:
                img_times.append(t)
                # The header is at the start of the CDR; decoding the whole image here would
                # cost a copy of every frame, so only the stamp is read.
                img_stamps.append(_cdr_header_stamp(raw))
                continue
            msg = bag.deserialize(raw, msgtype, topic, t)
            if topic == action_topic:
                values = np.asarray(msg.data, dtype=np.float64)
                if values.shape != (action_conv.ACTION_DIM,):
                    raise BagError(f"bag {bag.path}: topic {topic} at t={bag.seconds(t):.3f}s: action has "
                                   f"{values.size} values, expected {action_conv.ACTION_DIM} {action_conv.ACTION_NAMES}")
                if not np.isfinite(values).all():
                    raise BagError(f"bag {bag.path}: topic {topic} at t={bag.seconds(t):.3f}s: action has NaN/inf")
                act_times.append(t)
                act_values.append(values)
                act_stamps.append(None)
            else:
                joint_times.append(t)
                joint_q.append(_joint_positions(msg, arm_names, bag.path, topic, bag.seconds(t)))
                names = list(msg.name)
                finger = msg.position[names.index("left_finger")] if "left_finger" in names else np.nan
                joint_grip.append(finger)
                joint_stamps.append(header_stamp_ns(msg))

        img_times = np.asarray(img_times, dtype=np.int64)
        joint_times = np.asarray(joint_times, dtype=np.int64)
        period = int(round(1e9 / opts.rate_hz))
        notes: list[str] = []

        if action_topic:
            act_times = np.asarray(act_times, dtype=np.int64)
            # Steps start once the first camera frame exists.
            keep = act_times >= img_times[0]
            if not keep.any():
                raise BagError(f"bag {bag.path}: every action on {action_topic} precedes the first image on {image_topic}")
            dropped = int((~keep).sum())
            if dropped:
                notes.append(f"{dropped} action(s) before the first image skipped")
            step_times = act_times[keep]
            actions = np.asarray(act_values, dtype=np.float64)[keep]
            _check_stream(bag, action_topic, act_times, act_stamps, opts.max_gap_s, int(step_times[0]), int(step_times[-1]))
            if len(step_times) > 2:
                mean_period = float(np.median(np.diff(step_times)))
                if abs(mean_period - period) > opts.rate_tolerance * period:
                    raise BagError(f"bag {bag.path}: topic {action_topic} comes every {mean_period / 1e9:.3f}s but the "
                                   f"control rate is {opts.rate_hz} Hz; pass the bag's rate (--rate)")
            action_source = "topic"
        else:
            t0 = max(int(img_times[0]), int(joint_times[0]))
            t1 = min(int(img_times[-1]), int(joint_times[-1]))
            if t1 <= t0:
                raise BagError(f"bag {bag.path}: {image_topic} and {joint_topic} do not overlap in time")
            step_times = np.arange(t0, t1 + 1, period, dtype=np.int64)
            actions = None
            action_source = "fk"

        t_from, t_to = int(step_times[0]), int(step_times[-1])
        _check_stream(bag, image_topic, img_times, img_stamps, opts.max_gap_s, t_from, t_to)
        if joint_topic:
            _check_stream(bag, joint_topic, joint_times, joint_stamps, opts.max_gap_s, t_from, t_to)
        if len(step_times) < 2:
            raise BagError(f"bag {bag.path}: only {len(step_times)} step(s) at {opts.rate_hz} Hz; an episode needs 2")

        proprio = None
        if joint_topic:
            q = np.asarray(joint_q)
            jt = joint_times
            if step_times[0] < jt[0]:
                raise BagError(f"bag {bag.path}: topic {joint_topic}: no joint state before the first step "
                               f"at t={bag.seconds(step_times[0]):.3f}s")
            q_steps = _interpolate(jt, q, step_times)
            grip = np.asarray(joint_grip, dtype=np.float64)
            if np.isfinite(grip).all():
                grip_steps = np.interp(step_times, jt, grip)
                grip01 = np.clip((grip_steps - kinematics.FINGER_LIMITS[0]) /
                                 (kinematics.FINGER_LIMITS[1] - kinematics.FINGER_LIMITS[0]), 0.0, 1.0)
            else:
                grip01 = np.ones(len(step_times))
            if opts.store_proprio:
                proprio = np.concatenate([q_steps, grip01[:, None]], axis=1).astype(np.float32)
            if actions is None:
                actions = ee_deltas_from_joints(q_steps, grip01)

        low = np.asarray(action_conv.ACTION_LOW, dtype=np.float64)
        high = np.asarray(action_conv.ACTION_HIGH, dtype=np.float64)
        outside = ((actions[:-1] < low - 1e-6) | (actions[:-1] > high + 1e-6)).any(axis=1)
        clipped = int(outside.sum())
        if clipped:
            notes.append(f"{clipped} action(s) outside the per-step bounds were clipped")
        actions = np.clip(actions, low, high)

        # Pass 2: decode only the frames the steps use (newest image at or before each step).
        frame_index = np.searchsorted(img_times, step_times, side="right") - 1
        if frame_index[0] < 0:
            raise BagError(f"bag {bag.path}: topic {image_topic}: no image before the first step at "
                           f"t={bag.seconds(step_times[0]):.3f}s")
        needed: dict[int, list[int]] = {}
        for step, i in enumerate(frame_index):
            needed.setdefault(int(i), []).append(step)
        h, w = int(opts.size[0]), int(opts.size[1])
        images = np.zeros((len(step_times), h, w, 3), dtype=np.uint8)
        crop, frame_size = opts.crop, (0, 0)
        i = -1
        for topic, t, raw, msgtype in bag.raw_messages([image_topic]):
            i += 1
            if i not in needed:
                continue
            frame = _decode_image(bag, bag.deserialize(raw, msgtype, topic, t), msgtype, topic, t)
            if frame_size == (0, 0):
                frame_size = frame.shape[:2]
                if opts.crop_is_default and frame_size[0] <= h and frame_size[1] <= w:
                    crop = None
            try:
                obs = camera.preprocess_image(frame, crop, (h, w))
            except ValueError as exc:
                raise BagError(f"bag {bag.path}: topic {topic} at t={bag.seconds(t):.3f}s: {exc}") from exc
            for step in needed[i]:
                images[step] = obs
            if on_frame:
                on_frame(len(needed[i]))
        return Episode(images=images, actions=actions.astype(np.float32), proprio=proprio,
                       source=str(bag.path), action_source=action_source, frame_size=tuple(frame_size),
                       cropped=crop is not None, clipped_actions=clipped, notes=notes)


def _cdr_header_stamp(raw: bytes) -> int | None:
    """Stamp of a message whose first field is std_msgs/Header (CDR: 4-byte encapsulation,
    then int32 sec, uint32 nanosec)."""
    if len(raw) < 12:
        return None
    little = raw[1] == 1
    sec = int.from_bytes(raw[4:8], "little" if little else "big", signed=True)
    nsec = int.from_bytes(raw[8:12], "little" if little else "big")
    return sec * 1_000_000_000 + nsec


def _decode_image(bag: BagReader, msg: Any, msgtype: str, topic: str, t: int) -> np.ndarray:
    try:
        if msgtype.endswith("CompressedImage"):
            return camera.decode_compressed(msg.data, msg.format)
        return camera.decode_raw(msg.data, msg.width, msg.height, msg.step, msg.encoding)
    except ValueError as exc:
        raise BagError(f"bag {bag.path}: topic {topic} at t={bag.seconds(t):.3f}s: {exc}") from exc


def convert_bags(bags: Sequence[str | os.PathLike], out: str | os.PathLike,
                 options: ConvertOptions | None = None, log: Callable[[str], None] | None = None) -> Path:
    """Convert bags (one episode each) into the dataset file ``out``; returns its path.

    On any error nothing is written (the partial file is removed) and the BagError
    propagates.
    """
    from crl_ros.learning.dataset import DatasetMetadata, DatasetWriter
    from crl_ros.robot import actions as action_conv

    opts = options or ConvertOptions()
    log = log or (lambda msg: print(msg, file=sys.stderr))
    if not bags:
        raise BagError("no bags given")
    for b in bags:
        if not Path(b).exists():
            raise BagError(f"bag {b} does not exist")
    out = Path(out)
    if out.exists() and not opts.overwrite:
        raise FileExistsError(f"dataset {out} already exists (use --overwrite to replace it)")

    bar = _progress(opts.progress, len(bags))
    episodes: list[Episode] = []
    try:
        for b in bags:
            episodes.append(convert_bag(b, opts, on_frame=bar.frames))
            bar.bag_done(Path(b).name)
    finally:
        bar.close()

    use_proprio = opts.store_proprio and all(e.proprio is not None for e in episodes)
    uncropped = [e for e in episodes if not e.cropped]
    if opts.crop and uncropped:
        h, w = uncropped[0].frame_size
        log(f"{len(uncropped)} of {len(episodes)} bag(s) hold {h}x{w} frames, already at or below the dataset "
            f"size {opts.size[0]}x{opts.size[1]} (an observation topic): camera_node's crop {tuple(opts.crop)} "
            "is for raw camera frames and was not applied to them (pass --crop to force one)")
    crop_used = list(opts.crop) if opts.crop and len(uncropped) < len(episodes) else None
    meta = DatasetMetadata(
        image_shape=(int(opts.size[0]), int(opts.size[1]), 3),
        action_dim=action_conv.ACTION_DIM,
        action_names=list(action_conv.ACTION_NAMES),
        action_low=[float(x) for x in action_conv.ACTION_LOW],
        action_high=[float(x) for x in action_conv.ACTION_HIGH],
        control_rate_hz=float(opts.rate_hz),
        provenance={"source": "crl convert", "bags": [e.source for e in episodes],
                    "action_source": sorted({e.action_source for e in episodes}),
                    "crop": crop_used, "size": list(opts.size),
                    "image_topic": opts.image_topic, "action_topic": opts.action_topic},
    )
    proprio_dim = episodes[0].proprio.shape[1] if use_proprio else None
    with DatasetWriter(out, meta, proprio_dim=proprio_dim, overwrite=opts.overwrite) as writer:
        for e in episodes:
            writer.add_episode(e.images, e.actions, e.proprio if use_proprio else None)
            for note in e.notes:
                log(f"{e.source}: {note}")
    return out


class _progress:
    """A tqdm bar over frames when tqdm is there and wanted; silent otherwise."""

    def __init__(self, enabled: bool, n_bags: int):
        self._bar = None
        if enabled:
            try:
                from tqdm import tqdm
                self._bar = tqdm(total=None, unit="frame", desc=f"converting {n_bags} bag(s)", file=sys.stderr)
            except ImportError:
                pass

    def frames(self, n: int) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def bag_done(self, name: str) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(name)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
