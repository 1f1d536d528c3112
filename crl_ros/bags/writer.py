"""Write rosbag2 bags (mcap by default, sqlite3 on request) with the pure-Python `rosbags`.

Bags written here open with `ros2 bag info/play` and with `BagReader`. Messages are
either already-serialised CDR (what recorder_node receives from rclpy with raw=True)
or rosbags message objects built with the helpers below. No rclpy here.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from rosbags.rosbag2 import CompressionFormat, CompressionMode, StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
COMPRESSIONS = ("none", "zstd")


class BagWriteError(RuntimeError):
    """A bag cannot be created or written; the message names the bag."""


def typestore():
    """The message definitions bags are written and read with (ROS 2 Kilted standard messages)."""
    return _TYPESTORE


_TYPESTORE = get_typestore(Stores.ROS2_KILTED)


class BagWriter:
    """One rosbag2 directory. Use as a context manager or call `close()`; closing writes
    metadata.yaml so the bag is complete. Topics are added on first use."""

    def __init__(self, path: str | os.PathLike, storage: str = "mcap", compression: str = "none"):
        self.path = Path(path)
        if storage not in STORAGES:
            raise BagWriteError(f"unknown bag storage {storage!r}; choose one of {sorted(STORAGES)}")
        if compression not in COMPRESSIONS:
            raise BagWriteError(f"unknown bag compression {compression!r}; choose one of {COMPRESSIONS}")
        if self.path.exists():
            raise BagWriteError(f"bag {self.path} already exists")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = Writer(self.path, version=9, storage_plugin=STORAGES[storage])
        if compression == "zstd":
            # sqlite3: zstd per message (what `ros2 bag record --compression-mode message` does);
            # mcap: zstd-compressed chunks inside the file.
            mode = CompressionMode.MESSAGE if storage == "sqlite3" else CompressionMode.STORAGE
            self._writer.set_compression(mode, CompressionFormat.ZSTD)
        try:
            self._writer.open()
        except Exception as exc:  # rosbags raises several types; the caller needs the bag name
            raise BagWriteError(f"cannot create bag {self.path}: {exc}") from exc
        self._connections: dict[str, Any] = {}
        self.message_count = 0

    def add_topic(self, topic: str, msgtype: str) -> None:
        """Declare a topic (e.g. "image_raw", "sensor_msgs/msg/Image")."""
        if topic in self._connections:
            if self._connections[topic].msgtype != msgtype:
                raise BagWriteError(f"{self.path}: topic {topic} already has type {self._connections[topic].msgtype}")
            return
        if msgtype not in _TYPESTORE.fielddefs:
            raise BagWriteError(f"{self.path}: message type {msgtype} of topic {topic} is unknown to the bag typestore")
        self._connections[topic] = self._writer.add_connection(topic, msgtype, typestore=_TYPESTORE)

    @property
    def topics(self) -> list[str]:
        return list(self._connections)

    def write_raw(self, topic: str, stamp_ns: int, cdr: bytes | memoryview, msgtype: str | None = None) -> None:
        """Write an already CDR-serialised message received at ``stamp_ns``."""
        if topic not in self._connections:
            if msgtype is None:
                raise BagWriteError(f"{self.path}: topic {topic} was not added")
            self.add_topic(topic, msgtype)
        self._writer.write(self._connections[topic], int(stamp_ns), bytes(cdr))
        self.message_count += 1

    def flush(self) -> None:
        """Make everything written so far survive a hard kill (SIGKILL, power loss). rosbags
        keeps an mcap's open chunk (up to 1 MiB of messages) in memory and commits sqlite3
        only at close, so a killed recording would hold nothing: close the chunk and sync the
        file (mcap; `crl bag repair` reads it back without its summary), or commit (sqlite3).
        Writing goes on as before; metadata.yaml still comes at close."""
        storage = self._writer.storage
        if hasattr(storage, "close_chunk"):  # rosbags' McapWriter
            if storage.chunk.bio.tell():
                storage.close_chunk()
            storage.bio.flush()
            os.fsync(storage.bio.fileno())
        elif hasattr(storage, "conn"):  # rosbags' Sqlite3Writer
            storage.conn.commit()

    def write(self, topic: str, stamp_ns: int, msg: Any) -> None:
        """Serialise a rosbags message object (see `make_*` helpers) and write it."""
        msgtype = msg.__msgtype__
        self.write_raw(topic, stamp_ns, _TYPESTORE.serialize_cdr(msg, msgtype), msgtype)

    def close(self) -> Path:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        return self.path

    def __enter__(self) -> "BagWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# --- rosbags message builders (tests, synthetic bags, `crl demos --bag`) -----------------

def _types():
    return _TYPESTORE.types


def make_header(stamp_ns: int, frame_id: str = ""):
    t = _types()
    return t["std_msgs/msg/Header"](
        stamp=t["builtin_interfaces/msg/Time"](sec=int(stamp_ns // 1_000_000_000), nanosec=int(stamp_ns % 1_000_000_000)),
        frame_id=frame_id)


def make_image(image: np.ndarray, stamp_ns: int, frame_id: str = "camera", encoding: str = "rgb8"):
    """sensor_msgs/Image from an RGB uint8 [H, W, 3] array, stored in ``encoding``."""
    image = np.asarray(image, dtype=np.uint8)
    h, w = image.shape[:2]
    if encoding == "rgb8":
        data = image
    elif encoding == "bgr8":
        data = image[:, :, ::-1]
    elif encoding == "rgba8":
        data = np.concatenate([image, np.full((h, w, 1), 255, np.uint8)], axis=2)
    elif encoding == "bgra8":
        data = np.concatenate([image[:, :, ::-1], np.full((h, w, 1), 255, np.uint8)], axis=2)
    elif encoding == "mono8":
        data = image[:, :, :1]
    else:
        raise ValueError(f"unsupported image encoding {encoding!r}")
    data = np.ascontiguousarray(data)
    return _types()["sensor_msgs/msg/Image"](
        header=make_header(stamp_ns, frame_id), height=h, width=w, encoding=encoding,
        is_bigendian=0, step=w * data.shape[2], data=data.reshape(-1))


def make_compressed_image(jpeg_or_png: bytes, stamp_ns: int, fmt: str = "jpeg", frame_id: str = "camera"):
    return _types()["sensor_msgs/msg/CompressedImage"](
        header=make_header(stamp_ns, frame_id), format=fmt,
        data=np.frombuffer(jpeg_or_png, dtype=np.uint8))


def make_joint_state(names: Sequence[str], positions: Sequence[float], stamp_ns: int):
    return _types()["sensor_msgs/msg/JointState"](
        header=make_header(stamp_ns), name=list(names),
        position=np.asarray(positions, dtype=np.float64),
        velocity=np.zeros(0, np.float64), effort=np.zeros(0, np.float64))


def make_action(values: Sequence[float], names: Sequence[str] = ()):
    """std_msgs/Float32MultiArray in the crl_ros action layout (one dimension, labelled with
    the comma-joined action names)."""
    t = _types()
    values = np.asarray(values, dtype=np.float32).reshape(-1)
    dim = t["std_msgs/msg/MultiArrayDimension"](label=",".join(names), size=len(values), stride=len(values))
    return t["std_msgs/msg/Float32MultiArray"](
        layout=t["std_msgs/msg/MultiArrayLayout"](dim=[dim], data_offset=0), data=values)


# CompressedImage.format of JPEG camera frames, as compressed_image_transport writes it (the
# raw encoding, then what the JPEG decodes to with cv::imdecode); crl_ros.nodes.common
# uses the same string for sim_node's image_raw/compressed (a test checks).
JPEG_FORMAT = "rgb8; jpeg compressed bgr8"


def make_jpeg_image(image: np.ndarray, stamp_ns: int, frame_id: str = "camera", quality: int = 90):
    """sensor_msgs/CompressedImage of an RGB uint8 [H, W, 3] frame, JPEG of ``quality``:
    the message sim_node publishes on ``image_raw/compressed`` (the same encoder call)."""
    from crl_ros.robot import camera
    return make_compressed_image(camera.encode_compressed(image, "jpeg", quality), stamp_ns, JPEG_FORMAT, frame_id)
