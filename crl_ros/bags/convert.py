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

One bag goes through these stages, each one function below:

1. plan (`plan_bag`): open the bag, choose its topics, the camera's frame size and crop,
   the first step; every input is checked here, before any message is read;
2. read (`read_slice`): one pass over the messages in receive-time order; a step's frame
   is decoded as soon as the step is known (the newest frame at or before it), so memory
   holds one raw frame at a time. A long indexed .mcap is cut into time slices, each
   starting at a camera frame, that `convert_bags` reads in parallel processes
   (``workers``); `merge_slices` joins them into what one pass gives;
3. align to the control rate (`_align_steps`): stamps checked, the steps and their frames;
4. joints at the steps (`_joints_at_steps`) for proprio and FK actions;
5. gaps (`_find_gaps`): silences over max_gap in any used stream;
6. episodes (`_split_into_episodes`): the gap-free pieces, with their actions (topic or
   FK) and images;
7. write (`_write_dataset`), for all bags at once.
"""
from __future__ import annotations

import io
import multiprocessing
import os
import re
import struct
import sys
import threading
from array import array
from collections import deque
from contextlib import contextmanager
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from crl_ros.robot import actions as action_conv
from crl_ros.robot import camera, kinematics
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
# Options that change how fast a dataset is made, never what is in it (left out of its provenance).
SPEED_OPTIONS = ("progress", "overwrite", "workers", "min_slice_s")


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
    workers: int = 1                      # processes reading bags (or time slices of one bag) at once
    # The least recording a worker process (or a slice of a bag) is given: a process takes about
    # 0.5 s to start, in which one process converts some 40 s of 30 Hz VGA.
    min_slice_s: float = 60.0
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
        if int(self.workers) < 1:
            raise ValueError(f"the number of worker processes must be >= 1, got {self.workers}")
        if not self.min_slice_s > 0:
            raise ValueError(f"the shortest time slice must be > 0 s, got {self.min_slice_s}")

    def provenance(self) -> dict:
        """Every option that shapes the dataset, for the dataset's provenance."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()
                if k not in SPEED_OPTIONS}


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
    poses = kinematics.fk_many(q)
    actions = np.zeros((len(q), 7), dtype=np.float64)
    actions[:-1, :3] = poses[1:, :3, 3] - poses[:-1, :3, 3]
    actions[:-1, 3:6] = kinematics.matrix_to_rpy_many(poses[1:, :3, :3] @ poses[:-1, :3, :3].transpose(0, 2, 1))
    actions[:-1, 6] = gripper[1:]
    return actions


@dataclass
class _JointSamples:
    """The joint states of a bag (or of one time slice of it), by time."""
    times: np.ndarray        # [N] int64, receive time of each complete sample
    q: np.ndarray            # [N, 6] arm positions
    grip: np.ndarray         # [N] finger position, NaN where none was within the tolerance
    stamps: dict             # joint-name tuple -> (receive times, header stamps) of its stamped messages
    seen: set                # every joint name the topic published

    @staticmethod
    def concatenate(parts: Sequence["_JointSamples"]) -> "_JointSamples":
        stamps: dict = {}
        for part in parts:
            for names, (times, values) in part.stamps.items():
                old = stamps.get(names, (np.zeros(0, np.int64), np.zeros(0, np.int64)))
                stamps[names] = (np.concatenate([old[0], times]), np.concatenate([old[1], values]))
        return _JointSamples(np.concatenate([p.times for p in parts]), np.concatenate([p.q for p in parts]),
                             np.concatenate([p.grip for p in parts]), stamps, set().union(*(p.seen for p in parts)))


class _JointAssembler:
    """Joint states by joint name across the messages of one topic: drivers that publish the
    arm and the gripper in separate messages (same topic, same time) convert like one
    message. A sample is taken at each message once every arm joint has a value no older
    than ``tolerance``; the gripper is the newest finger value within it (NaN if none).

    A sample therefore depends only on the messages of the ``tolerance`` before it: a time
    slice read from ``keep_from - tolerance`` and keeping what comes from ``keep_from`` on
    has the very samples a read of the whole bag has there."""

    FINGERS = (("left_finger", 1.0), ("right_finger", -1.0))

    def __init__(self, arm_names: Sequence[str], tolerance_ns: int, keep_from: int | None = None):
        self.arm = list(arm_names)
        self.tol = tolerance_ns
        self.keep_from = np.iinfo(np.int64).min if keep_from is None else keep_from
        self.arm_t = np.full(len(self.arm), np.iinfo(np.int64).min // 2, dtype=np.int64)
        self.arm_q = np.zeros(len(self.arm))
        self.finger: tuple[int, float] | None = None
        # compact buffers: a 10-minute bag has 60,000 joint messages
        self.times = array("q")
        self.q = array("d")        # flat, 6 per sample
        self.grip = array("d")
        self.seen: set[str] = set()
        self._stamps: dict[tuple[str, ...], tuple[array, array]] = {}
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
        kept = t >= self.keep_from
        if stamp and kept:  # checked once every slice is read (_check_stamps)
            times, stamps = self._stamps.setdefault(names, (array("q"), array("q")))
            times.append(t)
            stamps.append(stamp)
        idx, slots, finger, sign = plan
        if len(slots):
            self.arm_q[slots] = position[idx]
            self.arm_t[slots] = t
        if finger is not None:
            self.finger = (t, sign * float(position[finger]))
        if not kept or t - int(self.arm_t.min()) > self.tol:
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

    def samples(self) -> _JointSamples:
        stamps = {names: (np.frombuffer(t, dtype=np.int64).copy(), np.frombuffer(s, dtype=np.int64).copy())
                  for names, (t, s) in self._stamps.items()}
        return _JointSamples(np.frombuffer(self.times, dtype=np.int64).copy(),
                             np.frombuffer(self.q, dtype=np.float64).reshape(-1, len(self.arm)).copy(),
                             np.frombuffer(self.grip, dtype=np.float64).copy(), stamps, set(self.seen))


def _add_joint_state(joints: _JointAssembler, bag: BagReader, topic: str, t: int, payload, msgtype: str) -> None:
    raw = payload.read()
    try:
        fields = cdr.joint_state(raw)
        names, position, stamp = fields.names, fields.position, fields.stamp_ns
    except (cdr.CdrLayoutError, struct.error, UnicodeDecodeError):
        msg = bag.deserialize(raw, msgtype, topic, t)
        names, position, stamp = tuple(msg.name), np.asarray(msg.position, np.float64), header_stamp_ns(msg)
    joints.add(t, names, position, stamp, bag, topic)


def _missing_joints(plan: "BagPlan", joints: _JointSamples, opts: ConvertOptions) -> None:
    topic = plan.joint_topic
    missing = [n for n in kinematics.JOINT_NAMES if n not in joints.seen]
    if missing:
        raise BagError(f"bag {plan.path}: topic {topic} lacks joints {missing} (has {sorted(joints.seen)})")
    raise BagError(f"bag {plan.path}: topic {topic}: the arm joints never all come within "
                   f"{int(opts.joint_tolerance_s * 1e9) / 1e9:.3f}s of each other (split publishers out of step?)")


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


@dataclass
class BagPlan:
    """Stage 1: what is read from one bag, decided before its messages are (picklable: a
    worker process reads a slice of the bag from it)."""
    path: Path
    notes: list[str]
    image_topic: str
    image_type: str
    action_topic: str | None
    joint_topic: str | None
    start_ns: int
    end_ns: int
    frame_size: tuple[int, int]   # (H, W) of the camera's first frame
    crop: Sequence[int] | None    # applied to every frame
    first_step: int | None        # without an action topic: the first time with a frame and a joint state
    slices: list[tuple[int | None, int | None]]  # [start, stop) receive times; None: the bag's start or end

    def seconds(self, t_ns: int) -> float:
        """Seconds since the bag's first message (for error messages)."""
        return (int(t_ns) - self.start_ns) / 1e9


def plan_bag(path: str | os.PathLike, opts: ConvertOptions, slices: int = 1) -> BagPlan:
    """Open the bag and decide what to read: its topics (`choose_image_topic`, the action and
    joint topics), the crop, the first step, and up to ``slices`` time slices."""
    with BagReader(path) as bag:
        topics = bag.topics()
        image_topic, topic_notes = choose_image_topic(bag, topics, opts.image_topic)
        action_topic = _match_topic(topics, opts.action_topic, ACTION_TOPIC_GUESSES, (ACTION_TYPE,), bag.path,
                                    "action", required=opts.action_topic is not None)
        joint_topic = _match_topic(topics, opts.joint_topic, JOINT_TOPIC_GUESSES, (JOINT_TYPE,), bag.path,
                                   "joint state", required=action_topic is None or opts.joint_topic is not None)
        image_type = topics[image_topic].msgtype
        frame_size = _first_frame_size(bag, image_topic, image_type)
        crop = opts.crop
        if opts.crop_is_default and frame_size[0] <= int(opts.size[0]) and frame_size[1] <= int(opts.size[1]):
            crop = None   # already an observation (see ConvertOptions.crop_is_default)
        first_step = None if action_topic else _first_step(bag, image_topic, joint_topic, opts)
        return BagPlan(bag.path, list(bag.notes) + topic_notes, image_topic, image_type, action_topic, joint_topic,
                       bag.start_ns, bag.end_ns, frame_size, crop, first_step,
                       _slice_bounds(bag, image_topic, slices, opts))


def _first_frame_size(bag: BagReader, topic: str, msgtype: str) -> tuple[int, int]:
    """(H, W) of the topic's first frame, from its header (no decoding)."""
    try:
        _, t, raw, _ = next(bag.raw_messages([topic]))
    except StopIteration:
        return (0, 0)   # reading the bag says it has no messages
    try:
        if msgtype.endswith("CompressedImage"):
            from PIL import Image
            with Image.open(io.BytesIO(_compressed_fields(bag, raw, msgtype, topic, t)[0])) as im:
                return (im.size[1], im.size[0])
        _, width, height, _, _ = _raw_image_fields(bag, raw, msgtype, topic, t)
        return (int(height), int(width))
    except (ValueError, OSError) as exc:  # PIL: UnidentifiedImageError is an OSError
        raise BagError(f"bag {bag.path}: topic {topic} at t={bag.seconds(t):.3f}s: first frame unreadable "
                       f"({type(exc).__name__}: {exc})") from exc


def _first_step(bag: BagReader, image_topic: str, joint_topic: str, opts: ConvertOptions) -> int | None:
    """The first step of a bag without an action topic: the first receive time with both a
    camera frame and a joint state. None when there is none; so, too, when the messages
    before it are bad: reading the bag in order then says what is wrong."""
    joints = _JointAssembler(kinematics.JOINT_NAMES, int(opts.joint_tolerance_s * 1e9))
    first_image = None
    try:
        for topic, t, payload, msgtype in bag.payload_messages([image_topic, joint_topic], lazy=[image_topic]):
            if topic == image_topic:
                first_image = t if first_image is None else first_image
            else:
                _add_joint_state(joints, bag, topic, t, payload, msgtype)
            if first_image is not None and joints.times:
                return max(first_image, joints.times[0])
    except BagError:
        pass
    return None


#: how much longer the converting process's slice of a long bag is than a worker's. A worker's
#: result comes back through a pipe (0.04 s for half of the 10-minute JPEG bench bag) and a
#: forked worker faults on its first touch of each inherited page: with equal halves the
#: worker finished 0.05-0.25 s after this process in 2 of 3 timed runs (docs/benchmarks.md)
OWN_SLICE_EXTRA = 0.04


def _slice_bounds(bag: BagReader, image_topic: str, slices: int, opts: ConvertOptions) -> list:
    """Up to ``slices`` [start, stop) ranges of receive time, none shorter than min_slice_s,
    the last (this process's) OWN_SLICE_EXTRA longer than the others, each starting at a
    camera frame, so the frame of every step (the newest at or before it) is in the step's
    slice. One slice, the whole bag, unless the bag is an indexed .mcap (elsewhere a slice
    would read every message before it) that opens without recovery (a recovered one is
    scanned again by every reader)."""
    n = min(slices, int((bag.end_ns - bag.start_ns) / 1e9 / opts.min_slice_s - OWN_SLICE_EXTRA))
    if n < 2 or not bag.indexed or bag.recovered:
        return [(None, None)]
    times = np.fromiter((t for _, t, _, _ in bag.payload_messages([image_topic], lazy=[image_topic])), np.int64)
    ends = np.cumsum([1.0] * (n - 1) + [1.0 + OWN_SLICE_EXTRA])
    wanted = bag.start_ns + ((bag.end_ns - bag.start_ns) * ends[:-1] / ends[-1]).astype(np.int64)
    at = np.searchsorted(times, wanted)
    cuts = sorted({int(times[i]) for i in at if 0 < i < len(times) and times[i] > times[0]})
    bounds = [None, *cuts, None]
    return list(zip(bounds[:-1], bounds[1:]))


@dataclass
class Streams:
    """Stage 2: what a pass over a bag's messages (or over one time slice of them) gives."""
    image_times: np.ndarray      # every camera message
    image_stamps: tuple          # (receive times, header stamps) of the stamped camera messages
    joints: _JointSamples | None
    action_values: np.ndarray    # [steps, 7], with an action topic (one step per action)
    early_actions: int           # actions before the first camera frame (skipped)
    step_times: np.ndarray
    step_frames: np.ndarray      # index into frames, per step
    frames: list                 # decoded dataset frames [H, W, 3] uint8, each camera message once


def read_slice(plan: BagPlan, k: int, opts: ConvertOptions,
               on_frame: Callable[[int], None] | None = None) -> Streams:
    """Read slice ``k`` of the bag in receive-time order, in one pass; a worker process
    runs this (so no rclpy here, and everything it needs comes in ``plan``).

    Steps are the action messages, or the control-rate grid from ``plan.first_step``; a
    step is resolved to the newest frame at or before it when the next later message
    comes. The slice's messages are those from its start (the joint states from one
    joint tolerance before it, see _JointAssembler) to its stop."""
    start, stop = plan.slices[k]
    period = int(round(1e9 / opts.rate_hz))
    with BagReader(plan.path) as bag:
        joints = _JointAssembler(kinematics.JOINT_NAMES, int(opts.joint_tolerance_s * 1e9), keep_from=start)
        decoder = _FrameDecoder(bag, plan, opts)
        image_times, stamp_times, stamps = array("q"), array("q"), array("q")
        last_image = None            # (index, t, payload)
        pending: deque = deque()     # step times waiting for their frame
        step_times: list[int] = []
        step_frames: list[int] = []  # index into decoder.frames
        action_values: list[np.ndarray] = []
        early_actions = 0
        next_grid = _first_grid_step(plan, start, period)

        def resolve(before: float) -> None:
            while pending and pending[0] < before:
                step_times.append(pending.popleft())
                step_frames.append(decoder.frame(*last_image))
                if on_frame:
                    on_frame(1)

        topics = [plan.image_topic, *(x for x in (plan.action_topic, plan.joint_topic) if x)]
        for topic, t, payload, msgtype in bag.payload_messages(topics, lazy=topics):
            if stop is not None and t >= stop:
                break
            if start is not None and t < start:
                if topic == plan.joint_topic and t >= start - joints.tol:
                    _add_joint_state(joints, bag, topic, t, payload, msgtype)
                continue
            if next_grid is not None:
                while next_grid < t:
                    pending.append(next_grid)
                    next_grid += period
            resolve(t)
            if topic == plan.image_topic:
                stamp = _cdr_header_stamp(payload.head(12))
                if stamp:
                    stamp_times.append(t)
                    stamps.append(stamp)
                last_image = (len(image_times), t, payload)
                image_times.append(t)
            elif topic == plan.action_topic:
                values = _action_values(bag, topic, t, payload, msgtype)
                if last_image is None and start is None:  # steps start once the first camera frame exists
                    early_actions += 1
                    continue
                action_values.append(values)
                pending.append(t)
            else:
                _add_joint_state(joints, bag, topic, t, payload, msgtype)
        last = plan.end_ns if stop is None else stop - 1
        while next_grid is not None and next_grid <= last:
            pending.append(next_grid)
            next_grid += period
        if last_image is not None:
            resolve(float("inf"))
    as_int64 = lambda values: np.frombuffer(values, dtype=np.int64).copy()  # noqa: E731
    return Streams(as_int64(image_times), (as_int64(stamp_times), as_int64(stamps)),
                   joints.samples() if plan.joint_topic else None,
                   np.asarray(action_values, dtype=np.float64).reshape(-1, action_conv.ACTION_DIM), early_actions,
                   np.asarray(step_times, dtype=np.int64), np.asarray(step_frames, dtype=np.int64), decoder.frames)


def _first_grid_step(plan: BagPlan, start: int | None, period: int) -> int | None:
    """The first control-rate grid time at or after ``start`` (FK steps), None with an action topic."""
    if plan.first_step is None or start is None or start <= plan.first_step:
        return plan.first_step
    return plan.first_step + -(-(start - plan.first_step) // period) * period


def _action_values(bag: BagReader, topic: str, t: int, payload, msgtype: str) -> np.ndarray:
    msg = bag.deserialize(payload.read(), msgtype, topic, t)
    values = np.asarray(msg.data, dtype=np.float64)
    if values.shape != (action_conv.ACTION_DIM,):
        raise BagError(f"bag {bag.path}: topic {topic} at t={bag.seconds(t):.3f}s: action has "
                       f"{values.size} values, expected {action_conv.ACTION_DIM} {action_conv.ACTION_NAMES}")
    if not np.isfinite(values).all():
        raise BagError(f"bag {bag.path}: topic {topic} at t={bag.seconds(t):.3f}s: action has NaN/inf")
    return values


def merge_slices(parts: Sequence[Streams]) -> Streams:
    """The slices of one bag, in order, joined into what one pass over the bag gives."""
    if len(parts) == 1:
        return parts[0]
    offsets = np.cumsum([0] + [len(p.frames) for p in parts[:-1]])
    return Streams(
        np.concatenate([p.image_times for p in parts]),
        tuple(np.concatenate([p.image_stamps[i] for p in parts]) for i in (0, 1)),
        _JointSamples.concatenate([p.joints for p in parts]) if parts[0].joints is not None else None,
        np.concatenate([p.action_values for p in parts]), sum(p.early_actions for p in parts),
        np.concatenate([p.step_times for p in parts]),
        np.concatenate([p.step_frames + offset for p, offset in zip(parts, offsets)]),
        [f for p in parts for f in p.frames])


class _FrameDecoder:
    """Camera messages -> dataset frames, each distinct message decoded once."""

    def __init__(self, bag: BagReader, plan: BagPlan, opts: ConvertOptions):
        self.bag, self.topic, self.msgtype = bag, plan.image_topic, plan.image_type
        self.compressed = plan.image_type.endswith("CompressedImage")
        self.crop, self.size, self.fast = plan.crop, (int(opts.size[0]), int(opts.size[1])), opts.fast_jpeg
        self.frames: list[np.ndarray] = []
        self._last_index = -1

    def frame(self, index: int, t: int, payload) -> int:
        if index == self._last_index:
            return len(self.frames) - 1
        bag, raw = self.bag, payload.read()
        try:
            if self.compressed:
                data, fmt = _compressed_fields(bag, raw, self.msgtype, self.topic, t)
                obs, _ = camera.preprocess_compressed(data, fmt, self.crop, self.size, fast=self.fast)
            else:
                frame = camera.decode_raw(*_raw_image_fields(bag, raw, self.msgtype, self.topic, t))
                obs = camera.preprocess_image(frame, self.crop, self.size)
        except ValueError as exc:
            raise BagError(f"bag {bag.path}: topic {self.topic} at t={bag.seconds(t):.3f}s: {exc}") from exc
        self.frames.append(obs)
        self._last_index = index
        return len(self.frames) - 1


def _compressed_fields(bag: BagReader, raw: bytes, msgtype: str, topic: str, t: int) -> tuple:
    """(data, format) of a CompressedImage: read in place, or through rosbags for unusual layouts."""
    try:
        f = cdr.compressed_image(raw)
        return f.data, f.format
    except (cdr.CdrLayoutError, struct.error):
        msg = bag.deserialize(raw, msgtype, topic, t)
        return msg.data, msg.format


def _raw_image_fields(bag: BagReader, raw: bytes, msgtype: str, topic: str, t: int) -> tuple:
    """(data, width, height, step, encoding) of an Image, as camera.decode_raw takes them."""
    try:
        f = cdr.image(raw)
        return f.data, f.width, f.height, f.step, f.encoding
    except (cdr.CdrLayoutError, struct.error):
        msg = bag.deserialize(raw, msgtype, topic, t)
        return msg.data, msg.width, msg.height, msg.step, msg.encoding


def _cdr_header_stamp(raw: bytes) -> int | None:
    """Stamp of a message whose first field is std_msgs/Header (CDR: 4-byte encapsulation,
    then int32 sec, uint32 nanosec)."""
    if len(raw) < 12:
        return None
    little = raw[1] == 1
    sec = int.from_bytes(raw[4:8], "little" if little else "big", signed=True)
    nsec = int.from_bytes(raw[8:12], "little" if little else "big")
    return sec * 1_000_000_000 + nsec


@dataclass
class _Steps:
    """The steps of one bag on the control clock (stages 3 and 4), one row each."""
    times: np.ndarray
    frames: np.ndarray               # index into Streams.frames
    source: str                      # "topic" or "fk"
    actions: np.ndarray | None       # [T, 7] from the action topic; None: FK from q
    q: np.ndarray | None = None      # [T, 6] arm joints, interpolated at the steps
    grip01: np.ndarray | None = None  # [T] gripper opening in [0, 1]
    joint_first: int | None = None   # the first joint sample (steps before it have no joints)


def episodes_of_bag(plan: BagPlan, streams: Streams, opts: ConvertOptions) -> list[Episode]:
    """Stages 3 to 6 for one bag read (`read_slice`, `merge_slices`): its episodes, one per
    gap-free piece (gap_policy split); the notes for the log go with the first."""
    notes = list(plan.notes)
    steps = _align_steps(plan, streams, opts, notes)
    _joints_at_steps(plan, streams.joints, steps, opts, notes)
    gaps = _find_gaps(plan, streams, steps, opts)
    return _split_into_episodes(plan, streams, steps, gaps, opts, notes)


def _align_steps(plan: BagPlan, s: Streams, opts: ConvertOptions, notes: list[str]) -> _Steps:
    """Stage 3: header stamps checked, then the steps: the action messages (checked for the
    control rate), or the grid up to where both the camera and the joints end."""
    _check_stamps(plan, s)
    if not len(s.image_times):
        raise BagError(f"bag {plan.path}: topic {plan.image_topic} has no messages")
    if s.early_actions:
        notes.append(f"{s.early_actions} action(s) before the first image skipped")
    period = int(round(1e9 / opts.rate_hz))
    if plan.action_topic:
        if not len(s.step_times):
            raise BagError(f"bag {plan.path}: every action on {plan.action_topic} precedes the first image on "
                           f"{plan.image_topic}")
        if len(s.step_times) > 2:
            mean_period = float(np.median(np.diff(s.step_times)))
            if abs(mean_period - period) > opts.rate_tolerance * period:
                raise BagError(f"bag {plan.path}: topic {plan.action_topic} comes every {mean_period / 1e9:.3f}s but "
                               f"the control rate is {opts.rate_hz} Hz; pass the bag's rate (--rate)")
        steps = _Steps(s.step_times, s.step_frames, "topic", s.action_values)
    else:
        if not len(s.joints.times):
            _missing_joints(plan, s.joints, opts)
        t1 = min(int(s.image_times[-1]), int(s.joints.times[-1]))
        keep = s.step_times <= t1
        if len(s.step_times) == 0 or keep.sum() < 2:
            raise BagError(f"bag {plan.path}: {plan.image_topic} and {plan.joint_topic} do not overlap in time")
        n = int(keep.sum())  # the grid is in time order: the kept steps are the first n
        steps = _Steps(s.step_times[:n], s.step_frames[:n], "fk", None)
    if len(steps.times) < 2:
        raise BagError(f"bag {plan.path}: only {len(steps.times)} step(s) at {opts.rate_hz} Hz; an episode needs 2")
    return steps


def _check_stamps(plan: BagPlan, s: Streams) -> None:
    """Header stamps must not go backwards within the camera topic, nor within the messages of
    one joint-name set on the joint topic; the earliest that does is the error."""
    found = [(_first_backwards(*s.image_stamps), plan.image_topic)]
    if s.joints is not None:
        found += [(_first_backwards(*times_stamps), plan.joint_topic) for times_stamps in s.joints.stamps.values()]
    found = [(where, topic) for where, topic in found if where]
    if found:
        (t, stamp, last), topic = min(found, key=lambda f: f[0][0])
        raise BagError(f"bag {plan.path}: topic {topic}: header stamps go backwards at t={plan.seconds(t):.3f}s "
                       f"(stamp {stamp / 1e9:.6f} after {last / 1e9:.6f})")


def _first_backwards(times: np.ndarray, stamps: np.ndarray) -> tuple[int, int, int] | None:
    """(receive time, stamp, the stamp before) of the first stamp below its predecessor."""
    back = np.nonzero(stamps[1:] < stamps[:-1])[0]
    if not len(back):
        return None
    i = int(back[0]) + 1
    return int(times[i]), int(stamps[i]), int(stamps[i - 1])


def _joints_at_steps(plan: BagPlan, joints: _JointSamples | None, steps: _Steps, opts: ConvertOptions,
                     notes: list[str]) -> None:
    """Stage 4: the joint states at the steps (steps.q), and what the gripper column holds
    (steps.grip01): the fingers, or NO_GRIPPER_VALUE with --no-gripper."""
    if not plan.joint_topic:
        return
    if not len(joints.times):
        _missing_joints(plan, joints, opts)
    jt, q_all, grip_all = joints.times, joints.q, joints.grip
    has_gripper = bool(np.isfinite(grip_all).any())
    needs_gripper = steps.source == "fk" or opts.store_proprio
    if not has_gripper and needs_gripper and not opts.no_gripper:
        raise BagError(
            f"bag {plan.path}: topic {plan.joint_topic} has no gripper joint (left_finger or right_finger; "
            f"it has {sorted(joints.seen)}): the gripper's opening is unknown. Record the gripper joints, "
            f"or pass --no-gripper to convert with the gripper column fixed at {NO_GRIPPER_VALUE} (open)"
            + (" or --no-proprio" if steps.source == "topic" else ""))
    if has_gripper:
        ok = np.isfinite(grip_all)
        jt, q_all, grip_all = jt[ok], q_all[ok], grip_all[ok]
    steps.q = _interpolate(jt, q_all, steps.times)
    if has_gripper:
        low, high = kinematics.FINGER_LIMITS
        steps.grip01 = np.clip((np.interp(steps.times, jt, grip_all) - low) / (high - low), 0.0, 1.0)
    else:
        steps.grip01 = np.full(len(steps.times), NO_GRIPPER_VALUE)
        if needs_gripper:
            notes.append(f"no gripper joints in {plan.joint_topic}: gripper column fixed at {NO_GRIPPER_VALUE} "
                         "(--no-gripper)")
    steps.joint_first = int(jt[0])


def _find_gaps(plan: BagPlan, s: Streams, steps: _Steps, opts: ConvertOptions) -> _Gaps:
    """Stage 5: silences over max_gap in every used stream, over the steps' span; with
    gap_policy error the first one is the error."""
    t_from, t_to = int(steps.times[0]), int(steps.times[-1])
    gaps = _Gaps(int(opts.max_gap_s * 1e9))
    gaps.add(plan.image_topic, s.image_times, t_from, t_to)
    if plan.joint_topic:
        gaps.add(plan.joint_topic, s.joints.times, t_from, t_to)
        if steps.joint_first > t_from:  # steps before the first joint state cannot be interpolated
            gaps.intervals.append((t_from - 1, steps.joint_first, plan.joint_topic))
    if plan.action_topic:
        gaps.add(plan.action_topic, steps.times, t_from, t_to)
    gaps.intervals.sort()
    if gaps.intervals and opts.gap_policy == "error":
        a, b, topic = gaps.intervals[0]
        if topic == plan.joint_topic and b == steps.joint_first and a == t_from - 1 and (b - t_from) <= gaps.max_gap:
            raise BagError(f"bag {plan.path}: topic {plan.joint_topic}: no joint state before the first step "
                           f"at t={plan.seconds(t_from):.3f}s")
        raise BagError(f"bag {plan.path}: topic {topic}: gap of {(b - a) / 1e9:.3f}s after "
                       f"t={plan.seconds(max(a, t_from)):.3f}s (max allowed {opts.max_gap_s}s); pass a longer "
                       "--max-gap, or --gap-policy split to cut the episode at gaps")
    return gaps


def _split_into_episodes(plan: BagPlan, s: Streams, steps: _Steps, gaps: _Gaps, opts: ConvertOptions,
                         notes: list[str]) -> list[Episode]:
    """Stage 6: the pieces between the gaps (steps inside a gap dropped, pieces shorter than
    min_fragment_s too), each with its images, actions (from the topic, or FK over the
    piece's joints) clipped to the per-step bounds, and proprio."""
    bad, t_from = gaps.intervals, int(steps.times[0])
    piece_of = np.zeros(len(steps.times), dtype=np.int64)
    dropped = np.zeros(len(steps.times), dtype=bool)
    for a, b, _ in bad:
        dropped |= (steps.times > a) & (steps.times < b)
        piece_of += steps.times >= b
    low = np.asarray(action_conv.ACTION_LOW, dtype=np.float64)
    high = np.asarray(action_conv.ACTION_HIGH, dtype=np.float64)
    min_steps = max(2, int(np.ceil(opts.min_fragment_s * opts.rate_hz - 1e-9)))
    episodes: list[Episode] = []
    short = 0
    for piece in np.unique(piece_of[~dropped]):
        idx = np.nonzero((piece_of == piece) & ~dropped)[0]
        if len(idx) < min_steps:
            short += 1
            continue
        acts = steps.actions[idx].copy() if steps.source == "topic" else ee_deltas_from_joints(steps.q[idx],
                                                                                                steps.grip01[idx])
        outside = ((acts[:-1] < low - 1e-6) | (acts[:-1] > high + 1e-6)).any(axis=1)
        proprio = None
        if steps.q is not None and opts.store_proprio:
            proprio = np.concatenate([steps.q[idx], steps.grip01[idx, None]], axis=1).astype(np.float32)
        images = np.stack([s.frames[steps.frames[i]] for i in idx])
        episodes.append(Episode(images=images, actions=np.clip(acts, low, high).astype(np.float32),
                                proprio=proprio, source=str(plan.path), action_source=steps.source,
                                frame_size=plan.frame_size, cropped=plan.crop is not None,
                                clipped_actions=int(outside.sum()), notes=[], image_topic=plan.image_topic,
                                joint_topic=plan.joint_topic, action_topic=plan.action_topic, gaps=gaps.stats))
    if bad:
        notes.append(f"split at {len(bad)} gap(s) over {opts.max_gap_s}s ("
                     + ", ".join(f"{topic} {(b - a) / 1e9:.2f}s after t={plan.seconds(max(a, t_from)):.2f}s"
                                 for a, b, topic in bad[:4]) + (" ..." if len(bad) > 4 else "")
                     + f"): {len(episodes)} episode(s), {int(dropped.sum())} step(s) inside gaps dropped"
                     + (f", {short} piece(s) shorter than {opts.min_fragment_s}s dropped" if short else ""))
    if not episodes:
        raise BagError(f"bag {plan.path}: no piece of at least {opts.min_fragment_s}s ({min_steps} steps) between "
                       f"gaps over {opts.max_gap_s}s ({', '.join(t for _, _, t in bad[:3])}); pass a longer "
                       "--max-gap or a shorter --min-fragment")
    for k, e in enumerate(episodes):
        e.piece, e.pieces = k, len(episodes)
        if e.clipped_actions:
            notes.append(f"{e.clipped_actions} action(s) outside the per-step bounds were clipped")
    episodes[0].notes = notes
    return episodes


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
    """Convert one bag into its episodes, in this process: one, or one per gap-free piece
    (gap_policy split). With options.workers > 1 a long indexed bag is read slice after
    slice, the slices `convert_bags` reads in parallel; the episodes are the same."""
    plan = plan_bag(path, options, slices=_slices_per_bag(options))
    parts = [read_slice(plan, k, options, on_frame) for k in range(len(plan.slices))]
    return episodes_of_bag(plan, merge_slices(parts), options)


def convert_bags(bags: Sequence[str | os.PathLike], out: str | os.PathLike,
                 options: ConvertOptions | None = None, log: Callable[[str], None] | None = None) -> Path:
    """Convert bags (one episode each) into the dataset file ``out``; returns its path.

    Every bag is planned (`plan_bag`) before any is read, so a bad input stops before the
    progress bar shows. With options.workers > 1 the slices of all bags are read by that
    many processes at once; the dataset is byte for byte the one a single process writes.
    On any error nothing is written (the partial file is removed) and the BagError
    propagates, the same one a single process raises. (Workers may start from a forkserver,
    `_worker_context`: a script calling this needs multiprocessing's ``if __name__ ==
    "__main__":`` guard.)
    """
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
    plans = [plan_bag(b, opts, slices=_slices_per_bag(opts)) for b in bags]

    bar = _progress(opts.progress, len(bags))
    episodes: list[Episode] = []
    try:
        with _read_slices(plans, opts, bar) as slices:
            for plan in plans:
                parts = [next(slices) for _ in plan.slices]
                episodes.extend(episodes_of_bag(plan, merge_slices(parts), opts))
                bar.bag_done(plan.path.name)
    finally:
        bar.close()
    _write_dataset(episodes, out, opts, log)
    return out


def _slices_per_bag(opts: ConvertOptions) -> int:
    """With --workers N > 1 a long bag is cut for N processes: N - 1 workers and this one."""
    return max(1, int(opts.workers))


def _worker_context() -> multiprocessing.context.BaseContext:
    """How worker processes start. fork where this process runs one thread and no ROS (the
    `crl convert` command): a worker then starts at once with everything imported. A
    forkserver elsewhere (trainer_node: rclpy's threads may hold locks a forked child would
    inherit): a clean process, no state of this one (rclpy, open files, threads) reaches it,
    at some 0.3 s of start-up the first time."""
    # tqdm's monitor thread (the progress bar's) only sleeps on an Event: no lock a child needs
    threads = [t for t in threading.enumerate() if type(t).__name__ != "TMonitor"]
    alone = len(threads) == 1 and not any(m == "rclpy" or m.startswith("rclpy.") for m in sys.modules)
    if alone and "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__, "PIL.Image"])  # imported once, by the server the workers fork from
    return context


def _submit_slices(pool: ProcessPoolExecutor, forked: bool, pooled: list) -> Callable[[], list]:
    """Submit every pooled slice; returns a call that gives their futures. A forkserver's
    first submit waits for the server to start and import (~0.3 s): it runs on a thread,
    so this process reads its own slice meanwhile (a fork is quick, and must not see a
    second thread)."""
    submit = lambda: [pool.submit(read_slice, plan, k, opts) for plan, k, opts in pooled]  # noqa: E731
    if forked:
        futures = submit()
        return lambda: futures
    done: dict = {}

    def submit_all() -> None:
        try:
            done["futures"] = submit()
        except BaseException as exc:  # noqa: BLE001 (raised in the caller's thread)
            done["error"] = exc
    thread = threading.Thread(target=submit_all, daemon=True)
    thread.start()

    def futures() -> list:
        thread.join()
        if "error" in done:
            raise BagError(f"could not start the worker processes ({done['error']}); --workers 1 reads in this "
                           "process") from done["error"]
        return done["futures"]
    return futures


@contextmanager
def _read_slices(plans: Sequence[BagPlan], opts: ConvertOptions, bar: "_progress") -> Iterator[Iterator[Streams]]:
    """Every slice of every bag, in order. With --workers N > 1 they are read by N - 1
    worker processes (`_worker_context`) and by this one, which reads the last slice while
    theirs start and then makes the episodes of the bags read. Each process gets at least
    min_slice_s of recording; when that leaves one, the slices are read here, one after
    another."""
    tasks = [(plan, k) for plan in plans for k in range(len(plan.slices))]
    recorded_s = sum(plan.end_ns - plan.start_ns for plan in plans) / 1e9
    readers = min(_slices_per_bag(opts), len(tasks), int(recorded_s // opts.min_slice_s))
    if readers < 2:
        yield (read_slice(plan, k, opts, bar.frames) for plan, k in tasks)
        return
    *pooled, (own_plan, own_k) = tasks
    context = _worker_context()
    with ProcessPoolExecutor(readers - 1, mp_context=context) as pool:
        started = _submit_slices(pool, context.get_start_method() == "fork", [(p, k, opts) for p, k in pooled])
        try:
            own: Streams | BagError = read_slice(own_plan, own_k, opts, bar.frames)
        except BagError as exc:  # raised in slice order: an error in an earlier slice comes first
            own = exc
        futures = started()

        def results() -> Iterator[Streams]:
            for future, (plan, _) in zip(futures, pooled):
                try:
                    part = future.result()   # a worker's BagError is raised here, as it was there
                except BrokenProcessPool as exc:
                    raise BagError(f"bag {plan.path}: a worker process reading it stopped abruptly ({exc}): out "
                                   "of memory, or started from a script without the `if __name__ == '__main__':` "
                                   "guard multiprocessing needs? --workers 1 reads in this process") from exc
                bar.frames(len(part.step_times))
                yield part
            if isinstance(own, BagError):
                raise own
            yield own
        try:
            yield results()
        finally:
            for future in futures:  # after an error: the slices not started yet are not read
                future.cancel()


def _write_dataset(episodes: list[Episode], out: Path, opts: ConvertOptions, log: Callable[[str], None]) -> None:
    """Stage 7: every bag's episodes into one dataset file, with their provenance."""
    from crl_ros.learning.dataset import DatasetWriter

    meta = _dataset_metadata(episodes, opts, log)
    use_proprio = opts.store_proprio and all(e.proprio is not None for e in episodes)
    proprio_dim = episodes[0].proprio.shape[1] if use_proprio else None
    with DatasetWriter(out, meta, proprio_dim=proprio_dim, overwrite=opts.overwrite) as writer:
        for e in episodes:
            writer.add_episode(e.images, e.actions, e.proprio if use_proprio else None)
            for note in e.notes:
                log(f"{e.source}: {note}")
    log(gap_summary(meta.provenance["per_bag"], opts.max_gap_s))


def _dataset_metadata(episodes: list[Episode], opts: ConvertOptions, log: Callable[[str], None]):
    """The dataset's metadata: the action layout and where every episode came from."""
    from crl_ros.learning.dataset import DatasetMetadata

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
    return DatasetMetadata(
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
