"""Read the few fields the converter needs straight from CDR bytes, without building
message objects: a bag's 100 Hz joint_states and 30 Hz camera frames are most of its
messages, and a full `rosbags` deserialisation of each costs more than the conversion.

Each parser handles little-endian plain CDR (what every ROS 2 DDS writes) and raises
`CdrLayoutError` on anything else or on bytes that do not add up; callers then fall back
to the `rosbags` deserialiser, which gives the definitive error. Offsets are aligned
relative to the end of the 4-byte encapsulation header, as CDR specifies.
"""
from __future__ import annotations

import struct
from typing import NamedTuple

import numpy as np

_U32 = struct.Struct("<I")
_STAMP = struct.Struct("<iI")


class CdrLayoutError(ValueError):
    """The bytes are not little-endian CDR of the expected message layout."""


def _align(offset: int, size: int) -> int:
    return 4 + (offset - 4 + size - 1) // size * size


def _check(raw) -> None:
    if len(raw) < 12 or raw[0] != 0 or raw[1] not in (1, 3):  # CDR_LE / PL_CDR_LE
        raise CdrLayoutError("not little-endian CDR")


def _string_end(raw, offset: int) -> tuple[int, int]:
    """(start, end) of the string at ``offset`` (aligned), end excluding the NUL; and the offset after it."""
    offset = _align(offset, 4)
    (length,) = _U32.unpack_from(raw, offset)
    start = offset + 4
    if length == 0 or start + length > len(raw):
        raise CdrLayoutError("string runs past the message")
    return start, start + length


def _skip_header(raw) -> tuple[int, int]:
    """(stamp ns, offset after std_msgs/Header)."""
    _check(raw)
    sec, nsec = _STAMP.unpack_from(raw, 4)
    _, end = _string_end(raw, 12)
    return sec * 1_000_000_000 + nsec, end


class JointStateFields(NamedTuple):
    stamp_ns: int
    names: tuple[str, ...]
    position: np.ndarray   # float64, one per name


_NAME_CACHE: dict[bytes, tuple[str, ...]] = {}
_RECENT_NAMES: list[tuple[bytes, tuple[str, ...]]] = []


def joint_state(raw) -> JointStateFields:
    """sensor_msgs/JointState: header stamp, names and positions (velocity/effort unread)."""
    stamp, offset = _skip_header(raw)
    offset = _align(offset, 4)
    (count,) = _U32.unpack_from(raw, offset)
    names_start = offset
    names = None
    for key, cached in _RECENT_NAMES:  # a publisher sends the same names every time
        if raw[names_start:names_start + len(key)] == key:
            names, offset = cached, names_start + len(key)
            break
    if names is None:
        offset += 4
        spans = []
        for _ in range(count):
            start, end = _string_end(raw, offset)
            spans.append((start, end - 1))
            offset = end
        key = bytes(raw[names_start:offset])
        names = _NAME_CACHE.get(key)
        if names is None:
            names = tuple(bytes(raw[a:b]).decode("utf-8") for a, b in spans)
            if len(_NAME_CACHE) < 1024:
                _NAME_CACHE[key] = names
        _RECENT_NAMES.insert(0, (key, names))
        del _RECENT_NAMES[4:]
    offset = _align(offset, 4)
    (n_pos,) = _U32.unpack_from(raw, offset)
    offset += 4
    if n_pos:
        offset = _align(offset, 8)
    if offset + 8 * n_pos > len(raw):
        raise CdrLayoutError("positions run past the message")
    position = np.frombuffer(raw, dtype="<f8", count=n_pos, offset=offset)
    return JointStateFields(stamp, names, position)


class ImageFields(NamedTuple):
    stamp_ns: int
    height: int
    width: int
    encoding: str
    step: int
    data: memoryview      # a view into the message bytes (no copy)


def image(raw) -> ImageFields:
    """sensor_msgs/Image: every field, the pixels as a view of ``raw``."""
    stamp, offset = _skip_header(raw)
    offset = _align(offset, 4)
    height, width = struct.unpack_from("<II", raw, offset)
    start, end = _string_end(raw, offset + 8)
    encoding = bytes(raw[start:end - 1]).decode("ascii", "replace")
    offset = end + 1  # is_bigendian (uint8)
    if raw[end] != 0:
        raise CdrLayoutError("big-endian pixel data")
    offset = _align(offset, 4)
    (step,) = _U32.unpack_from(raw, offset)
    (n,) = _U32.unpack_from(raw, offset + 4)
    start = offset + 8
    if start + n > len(raw):
        raise CdrLayoutError("pixel data runs past the message")
    return ImageFields(stamp, int(height), int(width), encoding, int(step), memoryview(raw)[start:start + n])


class CompressedImageFields(NamedTuple):
    stamp_ns: int
    format: str
    data: memoryview


def compressed_image(raw) -> CompressedImageFields:
    """sensor_msgs/CompressedImage: stamp, format and the compressed bytes (a view)."""
    stamp, offset = _skip_header(raw)
    start, end = _string_end(raw, offset)
    fmt = bytes(raw[start:end - 1]).decode("ascii", "replace")
    offset = _align(end, 4)
    (n,) = _U32.unpack_from(raw, offset)
    start = offset + 4
    if start + n > len(raw):
        raise CdrLayoutError("image data runs past the message")
    return CompressedImageFields(stamp, fmt, memoryview(raw)[start:start + n])
