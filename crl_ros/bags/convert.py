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

import io
import os
from array import array
import re
import struct
import sys
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from crl_ros.robot import camera
from . import cdr
from .reader import BagError, BagReader, header_stamp_ns

IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
ACTION_TYPE = "std_msgs/msg/Float32MultiArray"
JOINT_TYPE = "sensor_msgs/msg/JointState"
# Topic names tried in order when none is given (relative names match any namespace).
ACTION_TOPIC_GUESSES = ("action",)
JOINT_TOPIC_GUESSES = ("joint_states",)


DEFAULT_MAX_GAP_S = 1.0
GAP_POLICIES = ("error", "split")
# The gripper column when a recording has no gripper joints and --no-gripper is given:
# 1.0 = fully open (crl_ros's gripper convention, crl_ros.robot.actions).
NO_GRIPPER_VALUE = 1.0
# Name parts of camera topics that are not colour images.
NON_COLOUR_WORDS = ("depth", "disparity", "infra", "ir", "confidence", "thermal", "points")
COLOUR_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8")


@dataclass
class ConvertOptions:
    image_topic: str | None = None        # None: the bag's one colour camera topic (see choose_image_topic)
    action_topic: str | None = None       # None: "action" if the bag has it, else FK from joints
    joint_topic: str | None = None        # None: "joint_states" if present
    rate_hz: float = 5.0
    crop: Sequence[int] | None = None     # (x0, y0, x1, y1) pixels of the raw camera image
    size: Sequence[int] = (48, 48)        # (H, W) of the dataset images
    # The crop is camera_node's default for raw camera frames, not one the user asked for:
    # frames already at or below ``size`` (an ``observation`` topic, already cropped and
    # resized by camera_node or the simulator) are then only resized, not cropped again.
    crop_is_default: bool = False
    max_gap_s: float = DEFAULT_MAX_GAP_S  # a longer silence in a used topic is a gap
    gap_policy: str = "split"             # "split": cut the episode at a gap; "error": refuse the bag
    min_fragment_s: float = 1.0           # split: pieces shorter than this are dropped
    joint_tolerance_s: float = 0.05       # joints published in several messages are combined within this
    no_gripper: bool = False              # no gripper joints recorded: gripper column NO_GRIPPER_VALUE
    fast_jpeg: bool = True                # decode JPEG at reduced DCT scale (camera.preprocess_compressed)
    rate_tolerance: float = 0.5           # action period may deviate this fraction from 1/rate_hz
    store_proprio: bool = True            # joint positions as /proprio when joints are recorded
    progress: bool = True
    overwrite: bool = False

    def __post_init__(self):
        if not self.rate_hz > 0:
            raise ValueError(f"the control rate must be > 0 Hz, got {self.rate_hz}")
        if not self.max_gap_s > 0:
            raise ValueError(f"the longest gap must be > 0 s, got {self.max_gap_s}")
        if self.gap_policy not in GAP_POLICIES:
            raise ValueError(f"gap policy must be one of {GAP_POLICIES}, got {self.gap_policy!r}")
        if not self.min_fragment_s >= 0:
            raise ValueError(f"the shortest episode piece must be >= 0 s, got {self.min_fragment_s}")
        if len(self.size) != 2 or min(int(v) for v in self.size) < 1:
            raise ValueError(f"the image size must be two positive numbers (H, W), got {list(self.size)}")

    def provenance(self) -> dict:
        """Every option that shapes the dataset, for the dataset's provenance."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()
                if k not in ("progress", "overwrite")}


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
    image_topic: str = ""
    joint_topic: str | None = None
    action_topic: str | None = None
    gaps: dict = field(default_factory=dict)   # topic -> {"longest_s", "over_max"}
    piece: int = 0           # index of this piece of the bag (gap_policy split)
    pieces: int = 1


def _matches(topic: str, name: str) -> bool:
    stripped = name.lstrip("/")
    return topic.lstrip("/") == stripped or topic.endswith("/" + stripped)


def _match_topic(available: dict, wanted: str | None, guesses: Sequence[str], types: Sequence[str],
                 bag: Path, role: str, required: bool) -> str | None:
    """Resolve a topic name: exact, or ending in '/<name>' (namespaced recordings)."""
    candidates = [wanted] if wanted else list(guesses)
    for name in candidates:
        for topic, info in available.items():
            if _matches(topic, name):
                if info.msgtype not in types:
                    raise BagError(f"bag {bag}: {role} topic {topic} has type {info.msgtype}, expected one of {list(types)}")
                if info.count == 0:
                    raise BagError(f"bag {bag}: {role} topic {topic} has no messages")
                return topic
    if required:
        raise BagError(f"bag {bag}: {role} topic {' or '.join(candidates)!r} is missing "
                       f"(bag has {sorted(available)})")
    return None


def image_topic_kind(bag: BagReader, topic: str, msgtype: str) -> tuple[str, str]:
    """("colour" | "mono" | "depth" | "unusable", why) of a camera topic, from its name and
    its first message (encoding, or the compressed image's format and pixel mode)."""
    words = re.split(r"[/_.]", topic.lower())
    named = [w for w in words if any(w == n or (len(n) > 2 and w.startswith(n)) for n in NON_COLOUR_WORDS)]
    if named:
        return "depth", f"name says {named[0]}"
    try:
        _, t, raw, _ = next(bag.raw_messages([topic]))
    except StopIteration:
        return "unusable", "no messages"
    try:
        if msgtype.endswith("CompressedImage"):
            fields = cdr.compressed_image(raw)
            fmt = fields.format.lower()
            if "compresseddepth" in fmt.replace(" ", "") or any(e in fmt for e in ("16uc1", "32fc1", "mono16")):
                return "depth", f"format {fields.format!r}"
            from PIL import Image
            with Image.open(io.BytesIO(fields.data)) as im:
                mode = im.mode
            if mode in camera.NON_COLOUR_MODES:
                return "depth", f"{mode} pixels"
            return ("mono", f"{mode} pixels") if mode in ("L", "1", "LA") else ("colour", f"{fields.format or mode}")
        enc = cdr.image(raw).encoding.lower()
    except Exception as exc:  # undecodable first frame
        return "unusable", f"first frame unreadable ({type(exc).__name__}: {exc})"
    if enc in COLOUR_ENCODINGS:
        return "colour", enc
    if enc == "mono8":
        return "mono", enc
    if enc in ("16uc1", "32fc1", "mono16", "16sc1"):
        return "depth", f"encoding {enc}"
    return "unusable", f"encoding {enc} has no decoder here (supported: {', '.join(camera.RAW_ENCODINGS)})"


def choose_image_topic(bag: BagReader, topics: dict, wanted: str | None) -> tuple[str, list[str]]:
    """The camera topic to convert, and notes on the ones passed over.

    ``wanted`` (--image-topic) is used as given. Otherwise only colour topics are
    candidates (never depth, infrared, 16-bit or undecodable encodings; mono only when no
    colour topic exists); a raw topic and its ``/compressed`` twin count as one camera (the
    raw one is used); more than one camera left is resolved by the names image_raw,
    observation, or stops with a message that lists them.
    """
    if wanted:
        return _match_topic(topics, wanted, (), IMAGE_TYPES, bag.path, "image", True), []
    images = {name: info for name, info in topics.items() if info.msgtype in IMAGE_TYPES and info.count > 0}
    if not images:
        raise BagError(f"bag {bag.path}: no camera topic (sensor_msgs/Image or CompressedImage with messages); "
                       f"bag has {sorted(topics)}")
    kinds = {name: image_topic_kind(bag, name, info.msgtype) for name, info in sorted(images.items())}
    usable = [n for n, (k, _) in kinds.items() if k == "colour"] or [n for n, (k, _) in kinds.items() if k == "mono"]
    described = ", ".join(f"{n} ({k}: {why})" for n, (k, why) in kinds.items())
    if not usable:
        raise BagError(f"bag {bag.path}: no colour camera topic among {described}; pass --image-topic to "
                       "use one anyway")
    cameras: dict[str, list[str]] = {}
    for name in usable:
        base = name[: -len("/compressed")] if name.endswith("/compressed") else name
        cameras.setdefault(base, []).append(name)
    for base in cameras:  # the raw topic (exact pixels) before its compressed twin
        cameras[base].sort(key=lambda n: topics[n].msgtype.endswith("CompressedImage"))
    chosen = None
    if len(cameras) == 1:
        chosen = next(iter(cameras))
    else:
        for guess in ("image_raw", "observation"):
            hits = [b for b in cameras if _matches(b, guess)]
            if len(hits) == 1:
                chosen = hits[0]
                break
            if len(hits) > 1:
                break
    if chosen is None:
        listing = ", ".join(sorted(n for names in cameras.values() for n in names))
        raise BagError(f"bag {bag.path}: {len(cameras)} colour cameras ({listing}); pass --image-topic TOPIC "
                       "to choose one (image_topic:= in train.launch.py)")
    topic = cameras[chosen][0]
    skipped = [f"{n} ({k}: {why})" for n, (k, why) in kinds.items() if n != topic]
    notes = [f"camera topic {topic}; not used: {', '.join(skipped)}"] if skipped else []
    return topic, notes


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


class _JointAssembler:
    """Joint states by joint name across the messages of one topic: drivers that publish the
    arm and the gripper in separate messages (same topic, same time) convert like one
    message. A sample is taken at each message once every arm joint has a value no older
    than ``tolerance``; the gripper is the newest finger value within it (NaN if none)."""

    FINGERS = (("left_finger", 1.0), ("right_finger", -1.0))

    def __init__(self, arm_names: Sequence[str], tolerance_ns: int):
        self.arm = list(arm_names)
        self.tol = tolerance_ns
        self.arm_t = np.full(len(self.arm), np.iinfo(np.int64).min // 2, dtype=np.int64)
        self.arm_q = np.zeros(len(self.arm))
        self.finger: tuple[int, float] | None = None
        # compact buffers: a 10-minute bag has 60,000 joint messages
        self.times = array("q")
        self.q = array("d")        # flat, 6 per sample
        self.grip = array("d")
        self.seen: set[str] = set()
        self.message_times = array("q")
        self._stamps: dict[tuple[str, ...], int] = {}
        self._plans: dict[tuple[str, ...], tuple] = {}

    def _plan(self, names: tuple[str, ...]) -> tuple:
        """Where this message's names go: (message indices, arm slots, finger index, finger sign)."""
        index = {n: i for i, n in enumerate(names)}
        slots = [k for k, n in enumerate(self.arm) if n in index]
        finger = next(((index[n], sign) for n, sign in self.FINGERS if n in index), (None, 1.0))
        plan = (np.array([index[self.arm[k]] for k in slots], dtype=np.intp), np.array(slots, dtype=np.intp), *finger)
        self._plans[names] = plan
        self.seen.update(names)
        return plan

    def add(self, t: int, names: tuple[str, ...], position: np.ndarray, stamp: int | None,
            bag: BagReader, topic: str) -> None:
        if len(position) < len(names):
            raise BagError(f"bag {bag.path}: topic {topic} at t={bag.seconds(t):.3f}s: {len(names)} joint names "
                           f"but {len(position)} positions")
        plan = self._plans.get(names) or self._plan(names)
        if stamp:
            last = self._stamps.get(names)
            if last is not None and stamp < last:
                raise BagError(f"bag {bag.path}: topic {topic}: header stamps go backwards at t={bag.seconds(t):.3f}s "
                               f"(stamp {stamp / 1e9:.6f} after {last / 1e9:.6f})")
            self._stamps[names] = stamp
        self.message_times.append(t)
        idx, slots, finger, sign = plan
        if len(slots):
            self.arm_q[slots] = position[idx]
            self.arm_t[slots] = t
        if finger is not None:
            self.finger = (t, sign * float(position[finger]))
        if t - int(self.arm_t.min()) > self.tol:
            return
        grip = self.finger[1] if self.finger is not None and t - self.finger[0] <= self.tol else np.nan
        n = len(self.arm)
        if self.times and self.times[-1] == t:  # the second half of a split message at the same time
            self.q[-n:] = array("d", self.arm_q.tolist())
            self.grip[-1] = grip
        else:
            self.times.append(t)
            self.q.extend(self.arm_q.tolist())
            self.grip.append(grip)

    def samples(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(times [N] int64, arm positions [N, 6], finger [N] with NaN where none)."""
        return (np.frombuffer(self.times, dtype=np.int64).copy(),
                np.frombuffer(self.q, dtype=np.float64).reshape(-1, len(self.arm)).copy(),
                np.frombuffer(self.grip, dtype=np.float64).copy())


class _Gaps:
    """Silences longer than max_gap in the used topics, over the span of the steps."""

    def __init__(self, max_gap_ns: int):
        self.max_gap = max_gap_ns
        self.stats: dict[str, dict] = {}
        self.intervals: list[tuple[int, int, str]] = []   # (after, before, topic): steps strictly between are bad

    def add(self, topic: str, times: np.ndarray, t_from: int, t_to: int) -> None:
        times = np.asarray(times, dtype=np.int64)
        inside = times[(times >= t_from) & (times <= t_to)]
        edges = np.concatenate([[t_from], inside, [t_to]])
        gaps = np.diff(edges)
        over = np.nonzero(gaps > self.max_gap)[0]
        self.stats[topic] = {"longest_s": round(float(gaps.max()) / 1e9 if len(gaps) else 0.0, 3),
                             "over_max": int(len(over))}
        for i in over:
            a, b = int(edges[i]), int(edges[i + 1])
            if i == 0 and (not len(inside) or a < inside[0]):
                a -= 1   # a leading silence: the first step itself has no data
            if i == len(gaps) - 1 and (not len(inside) or b > inside[-1]):
                b += 1   # a trailing silence: the last step has none either
            self.intervals.append((a, b, topic))


def convert_bag(path: str | os.PathLike, options: ConvertOptions,
                on_frame: Callable[[int], None] | None = None) -> Episode:
    """Convert one bag into one episode (in memory). A bag that the gap policy splits into
    several pieces is an error here; `convert_bag_pieces` returns every piece."""
    pieces = convert_bag_pieces(path, options, on_frame)
    if len(pieces) != 1:
        raise BagError(f"bag {path}: split into {len(pieces)} episodes at camera/joint gaps; use convert_bag_pieces")
    return pieces[0]


def convert_bag_pieces(path: str | os.PathLike, options: ConvertOptions,
                       on_frame: Callable[[int], None] | None = None) -> list[Episode]:
    """Convert one bag into its episodes: one, or one per gap-free piece (gap_policy split).

    One pass over the bag, in receive-time order: a step's frame is decoded when the step
    is known (the newest frame at or before it), so memory holds one raw frame at a time.
    """
    from crl_ros.robot import actions as action_conv
    from crl_ros.robot import kinematics

    opts = options
    with BagReader(path) as bag:
        notes = list(bag.notes)
        topics = bag.topics()
        image_topic, topic_notes = choose_image_topic(bag, topics, opts.image_topic)
        notes += topic_notes
        action_topic = _match_topic(topics, opts.action_topic, ACTION_TOPIC_GUESSES, (ACTION_TYPE,), bag.path,
                                    "action", required=opts.action_topic is not None)
        joint_topic = _match_topic(topics, opts.joint_topic, JOINT_TOPIC_GUESSES, (JOINT_TYPE,), bag.path,
                                   "joint state", required=action_topic is None or opts.joint_topic is not None)
        image_type = topics[image_topic].msgtype
        period = int(round(1e9 / opts.rate_hz))
        h, w = int(opts.size[0]), int(opts.size[1])
        joints = _JointAssembler(kinematics.JOINT_NAMES, int(opts.joint_tolerance_s * 1e9))
        decoder = _FrameDecoder(bag, image_topic, image_type, opts)

        img_times = array("q")
        last_stamp = None
        last_image = None            # (index, t, raw bytes)
        pending: deque = deque()     # step times waiting for their frame
        step_times: list[int] = []
        step_frames: list[int] = []  # index into decoder.frames
        act_times: list[int] = []
        act_values: list[np.ndarray] = []
        early_actions = 0
        next_grid = None             # FK mode: the next step time on the control-rate grid

        def resolve(before: float) -> None:
            while pending and pending[0] < before:
                step_times.append(pending.popleft())
                step_frames.append(decoder.frame(*last_image))
                if on_frame:
                    on_frame(1)

        for topic, t, payload, msgtype in bag.payload_messages(
                [image_topic, *(x for x in (action_topic, joint_topic) if x)], lazy=[image_topic]):
            if next_grid is not None:
                while next_grid < t:
                    pending.append(next_grid)
                    next_grid += period
            resolve(t)
            if topic == image_topic:
                stamp = _cdr_header_stamp(payload.head(12))
                if stamp and last_stamp and stamp < last_stamp:
                    raise BagError(f"bag {bag.path}: topic {topic}: header stamps go backwards at "
                                   f"t={bag.seconds(t):.3f}s (stamp {stamp / 1e9:.6f} after {last_stamp / 1e9:.6f})")
                last_stamp = stamp or last_stamp
                last_image = (len(img_times), t, payload)
                img_times.append(t)
            elif topic == action_topic:
                msg = bag.deserialize(payload.read(), msgtype, topic, t)
                values = np.asarray(msg.data, dtype=np.float64)
                if values.shape != (action_conv.ACTION_DIM,):
                    raise BagError(f"bag {bag.path}: topic {topic} at t={bag.seconds(t):.3f}s: action has "
                                   f"{values.size} values, expected {action_conv.ACTION_DIM} {action_conv.ACTION_NAMES}")
                if not np.isfinite(values).all():
                    raise BagError(f"bag {bag.path}: topic {topic} at t={bag.seconds(t):.3f}s: action has NaN/inf")
                if last_image is None:   # steps start once the first camera frame exists
                    early_actions += 1
                    continue
                act_times.append(t)
                act_values.append(values)
                pending.append(t)
            else:
                raw = payload.read()
                try:
                    fields = cdr.joint_state(raw)
                    names, position, stamp = fields.names, fields.position, fields.stamp_ns
                except (cdr.CdrLayoutError, struct.error, UnicodeDecodeError):
                    msg = bag.deserialize(raw, msgtype, topic, t)
                    names, position, stamp = tuple(msg.name), np.asarray(msg.position, np.float64), header_stamp_ns(msg)
                joints.add(t, names, position, stamp, bag, topic)
                if action_topic is None and next_grid is None and joints.times and img_times:
                    next_grid = max(img_times[0], joints.times[0])
        end = bag.end_ns
        if next_grid is not None:
            while next_grid <= end:
                pending.append(next_grid)
                next_grid += period
        if last_image is not None:
            resolve(float("inf"))

        if not img_times:
            raise BagError(f"bag {bag.path}: topic {image_topic} has no messages")
        img_times_a = np.asarray(img_times, dtype=np.int64)
        if early_actions:
            notes.append(f"{early_actions} action(s) before the first image skipped")
        if action_topic:
            if not act_times:
                raise BagError(f"bag {bag.path}: every action on {action_topic} precedes the first image on {image_topic}")
            steps = np.asarray(step_times, dtype=np.int64)
            actions_all = np.asarray(act_values, dtype=np.float64)
            if len(steps) > 2:
                mean_period = float(np.median(np.diff(steps)))
                if abs(mean_period - period) > opts.rate_tolerance * period:
                    raise BagError(f"bag {bag.path}: topic {action_topic} comes every {mean_period / 1e9:.3f}s but the "
                                   f"control rate is {opts.rate_hz} Hz; pass the bag's rate (--rate)")
            action_source = "topic"
        else:
            if not joints.times:
                _missing_joints(bag, joint_topic, joints)
            t1 = min(int(img_times_a[-1]), int(joints.times[-1]))
            steps_all = np.asarray(step_times, dtype=np.int64)
            keep = steps_all <= t1
            if len(steps_all) == 0 or keep.sum() < 2:
                raise BagError(f"bag {bag.path}: {image_topic} and {joint_topic} do not overlap in time")
            steps = steps_all[keep]
            step_frames = step_frames[: len(steps)]
            actions_all = None
            action_source = "fk"
        if len(steps) < 2:
            raise BagError(f"bag {bag.path}: only {len(steps)} step(s) at {opts.rate_hz} Hz; an episode needs 2")

        # Joint states at the steps, and what the gripper column holds.
        q_steps = grip01 = None
        if joint_topic:
            if not joints.times:
                _missing_joints(bag, joint_topic, joints)
            jt, q_all, grip_all = joints.samples()
            has_gripper = bool(np.isfinite(grip_all).any())
            needs_gripper = action_source == "fk" or opts.store_proprio
            if not has_gripper and needs_gripper and not opts.no_gripper:
                raise BagError(
                    f"bag {bag.path}: topic {joint_topic} has no gripper joint (left_finger or right_finger; "
                    f"it has {sorted(joints.seen)}): the gripper's opening is unknown. Record the gripper joints, "
                    f"or pass --no-gripper to convert with the gripper column fixed at {NO_GRIPPER_VALUE} (open)"
                    + (" or --no-proprio" if action_source == "topic" else ""))
            if has_gripper:
                ok = np.isfinite(grip_all)
                jt, q_all, grip_all = jt[ok], q_all[ok], grip_all[ok]
            q_steps = _interpolate(jt, q_all, steps)
            if has_gripper:
                grip01 = np.clip((np.interp(steps, jt, grip_all) - kinematics.FINGER_LIMITS[0]) /
                                 (kinematics.FINGER_LIMITS[1] - kinematics.FINGER_LIMITS[0]), 0.0, 1.0)
            else:
                grip01 = np.full(len(steps), NO_GRIPPER_VALUE)
                if needs_gripper:
                    notes.append(f"no gripper joints in {joint_topic}: gripper column fixed at {NO_GRIPPER_VALUE} "
                                 "(--no-gripper)")
            joint_first = int(jt[0])
        else:
            joint_first = None

        # Gaps: silences over max_gap in any used stream, over the steps' span.
        t_from, t_to = int(steps[0]), int(steps[-1])
        gaps = _Gaps(int(opts.max_gap_s * 1e9))
        gaps.add(image_topic, img_times_a, t_from, t_to)
        if joint_topic:
            gaps.add(joint_topic, np.frombuffer(joints.times, dtype=np.int64), t_from, t_to)
            if joint_first > t_from:  # steps before the first joint state cannot be interpolated
                gaps.intervals.append((t_from - 1, joint_first, joint_topic))
        if action_topic:
            gaps.add(action_topic, steps, t_from, t_to)
        bad = sorted(gaps.intervals)
        if bad and opts.gap_policy == "error":
            a, b, topic = bad[0]
            if topic == joint_topic and b == joint_first and a == t_from - 1 and (b - t_from) <= gaps.max_gap:
                raise BagError(f"bag {bag.path}: topic {joint_topic}: no joint state before the first step "
                               f"at t={bag.seconds(t_from):.3f}s")
            raise BagError(f"bag {bag.path}: topic {topic}: gap of {(b - a) / 1e9:.3f}s after "
                           f"t={bag.seconds(max(a, t_from)):.3f}s (max allowed {opts.max_gap_s}s); pass a longer "
                           "--max-gap, or --gap-policy split to cut the episode at gaps")
        piece_of = np.zeros(len(steps), dtype=np.int64)
        dropped = np.zeros(len(steps), dtype=bool)
        for a, b, _ in bad:
            dropped |= (steps > a) & (steps < b)
            piece_of += steps >= b
        low = np.asarray(action_conv.ACTION_LOW, dtype=np.float64)
        high = np.asarray(action_conv.ACTION_HIGH, dtype=np.float64)
        min_steps = max(2, int(np.ceil(opts.min_fragment_s * opts.rate_hz - 1e-9)))
        frames = decoder.frames
        episodes: list[Episode] = []
        short = 0
        for piece in np.unique(piece_of[~dropped]):
            idx = np.nonzero((piece_of == piece) & ~dropped)[0]
            if len(idx) < min_steps:
                short += 1
                continue
            if action_source == "topic":
                acts = actions_all[idx].copy()
            else:
                acts = ee_deltas_from_joints(q_steps[idx], grip01[idx])
            outside = ((acts[:-1] < low - 1e-6) | (acts[:-1] > high + 1e-6)).any(axis=1)
            clipped = int(outside.sum())
            proprio = None
            if q_steps is not None and opts.store_proprio:
                proprio = np.concatenate([q_steps[idx], grip01[idx, None]], axis=1).astype(np.float32)
            images = np.stack([frames[step_frames[i]] for i in idx])
            episodes.append(Episode(images=images, actions=np.clip(acts, low, high).astype(np.float32),
                                    proprio=proprio, source=str(bag.path), action_source=action_source,
                                    frame_size=decoder.frame_size, cropped=decoder.cropped, clipped_actions=clipped,
                                    notes=[], image_topic=image_topic, joint_topic=joint_topic,
                                    action_topic=action_topic, gaps=gaps.stats))
        if bad:
            notes.append(f"split at {len(bad)} gap(s) over {opts.max_gap_s}s ("
                         + ", ".join(f"{topic} {(b - a) / 1e9:.2f}s after t={bag.seconds(max(a, t_from)):.2f}s"
                                     for a, b, topic in bad[:4]) + (" ..." if len(bad) > 4 else "")
                         + f"): {len(episodes)} episode(s), {int(dropped.sum())} step(s) inside gaps dropped"
                         + (f", {short} piece(s) shorter than {opts.min_fragment_s}s dropped" if short else ""))
        if not episodes:
            raise BagError(f"bag {bag.path}: no piece of at least {opts.min_fragment_s}s ({min_steps} steps) between "
                           f"gaps over {opts.max_gap_s}s ({', '.join(t for _, _, t in bad[:3])}); pass a longer "
                           "--max-gap or a shorter --min-fragment")
        for k, e in enumerate(episodes):
            e.piece, e.pieces = k, len(episodes)
            if e.clipped_actions:
                notes.append(f"{e.clipped_actions} action(s) outside the per-step bounds were clipped")
        episodes[0].notes = notes
        return episodes


def _missing_joints(bag: BagReader, topic: str, joints: _JointAssembler) -> None:
    missing = [n for n in joints.arm if n not in joints.seen]
    if missing:
        raise BagError(f"bag {bag.path}: topic {topic} lacks joints {missing} (has {sorted(joints.seen)})")
    raise BagError(f"bag {bag.path}: topic {topic}: the arm joints never all come within "
                   f"{joints.tol / 1e9:.3f}s of each other (split publishers out of step?)")


class _FrameDecoder:
    """Camera messages -> dataset frames, each distinct message decoded once."""

    def __init__(self, bag: BagReader, topic: str, msgtype: str, opts: ConvertOptions):
        self.bag, self.topic, self.opts = bag, topic, opts
        self.compressed = msgtype.endswith("CompressedImage")
        self.msgtype = msgtype
        self.size = (int(opts.size[0]), int(opts.size[1]))
        self.frames: list[np.ndarray] = []
        self._last_index = -1
        self.frame_size: tuple[int, int] = (0, 0)
        self.crop = opts.crop
        self.cropped = opts.crop is not None

    def frame(self, index: int, t: int, payload) -> int:
        if index == self._last_index:
            return len(self.frames) - 1
        bag = self.bag
        raw = payload.read()
        try:
            if self.compressed:
                try:
                    f = cdr.compressed_image(raw)
                    data, fmt = f.data, f.format
                except (cdr.CdrLayoutError, struct.error):
                    msg = bag.deserialize(raw, self.msgtype, self.topic, t)
                    data, fmt = msg.data, msg.format
                if self.frame_size == (0, 0):  # the header says the size: no decode needed
                    from PIL import Image
                    with Image.open(io.BytesIO(data)) as im:
                        self.frame_size = (im.size[1], im.size[0])
                    self._settle_crop()
                obs, _ = camera.preprocess_compressed(data, fmt, self.crop, self.size, fast=self.opts.fast_jpeg)
            else:
                try:
                    f = cdr.image(raw)
                    fields = (f.data, f.width, f.height, f.step, f.encoding)
                except (cdr.CdrLayoutError, struct.error):
                    msg = bag.deserialize(raw, self.msgtype, self.topic, t)
                    fields = (msg.data, msg.width, msg.height, msg.step, msg.encoding)
                frame = camera.decode_raw(*fields)
                if self.frame_size == (0, 0):
                    self.frame_size = frame.shape[:2]
                    self._settle_crop()
                obs = camera.preprocess_image(frame, self.crop, self.size)
        except ValueError as exc:
            raise BagError(f"bag {bag.path}: topic {self.topic} at t={bag.seconds(t):.3f}s: {exc}") from exc
        self.frames.append(obs)
        self._last_index = index
        return len(self.frames) - 1

    def _settle_crop(self) -> None:
        h, w = self.frame_size
        if self.opts.crop_is_default and h <= self.size[0] and w <= self.size[1]:
            self.crop = None
            self.cropped = False


def _cdr_header_stamp(raw: bytes) -> int | None:
    """Stamp of a message whose first field is std_msgs/Header (CDR: 4-byte encapsulation,
    then int32 sec, uint32 nanosec)."""
    if len(raw) < 12:
        return None
    little = raw[1] == 1
    sec = int.from_bytes(raw[4:8], "little" if little else "big", signed=True)
    nsec = int.from_bytes(raw[8:12], "little" if little else "big")
    return sec * 1_000_000_000 + nsec


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
            episodes.extend(convert_bag_pieces(b, opts, on_frame=bar.frames))
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
    per_bag: dict[str, dict] = {}
    for e in episodes:
        entry = per_bag.setdefault(e.source, {"image_topic": e.image_topic, "joint_topic": e.joint_topic,
                                              "action_topic": e.action_topic, "action_source": e.action_source,
                                              "episodes": 0, "steps": 0, "gaps": e.gaps})
        entry["episodes"] += 1
        entry["steps"] += len(e.images)
    image_topics = sorted({e.image_topic for e in episodes})
    meta = DatasetMetadata(
        image_shape=(int(opts.size[0]), int(opts.size[1]), 3),
        action_dim=action_conv.ACTION_DIM,
        action_names=list(action_conv.ACTION_NAMES),
        action_low=[float(x) for x in action_conv.ACTION_LOW],
        action_high=[float(x) for x in action_conv.ACTION_HIGH],
        control_rate_hz=float(opts.rate_hz),
        provenance={"source": "crl convert", "bags": sorted(per_bag),
                    "action_source": sorted({e.action_source for e in episodes}),
                    "crop": crop_used, "size": list(opts.size),
                    "image_topic": image_topics[0] if len(image_topics) == 1 else image_topics,
                    "action_topic": sorted({str(e.action_topic) for e in episodes if e.action_topic}) or None,
                    "joint_topic": sorted({str(e.joint_topic) for e in episodes if e.joint_topic}) or None,
                    "gripper": (f"none: fixed at {NO_GRIPPER_VALUE} (--no-gripper)" if opts.no_gripper
                                else "joint_states fingers"),
                    "options": opts.provenance(), "per_bag": per_bag},
    )
    proprio_dim = episodes[0].proprio.shape[1] if use_proprio else None
    with DatasetWriter(out, meta, proprio_dim=proprio_dim, overwrite=opts.overwrite) as writer:
        for e in episodes:
            writer.add_episode(e.images, e.actions, e.proprio if use_proprio else None)
            for note in e.notes:
                log(f"{e.source}: {note}")
    log(gap_summary(per_bag, opts.max_gap_s))
    return out


def gap_summary(per_bag: dict, max_gap_s: float) -> str:
    """One line per used topic: the longest silence over all bags and how many went over max-gap."""
    longest: dict[str, float] = {}
    over: dict[str, int] = {}
    for entry in per_bag.values():
        for topic, st in entry["gaps"].items():
            longest[topic] = max(longest.get(topic, 0.0), st["longest_s"])
            over[topic] = over.get(topic, 0) + st["over_max"]
    n_eps = sum(e["episodes"] for e in per_bag.values())
    parts = [f"{t}: longest gap {longest[t]:.3f}s, {over[t]} over {max_gap_s}s" for t in sorted(longest)]
    return f"gaps in {len(per_bag)} bag(s) -> {n_eps} episode(s): " + "; ".join(parts)


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
