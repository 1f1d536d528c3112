"""Read rosbag2 bags (mcap or sqlite3, zstd-compressed too) with the pure-Python `rosbags`.

Works on bags from `ros2 bag record` and from `BagWriter`: a bag directory with
metadata.yaml or a bare .mcap / .db3 file. Every failure is a `BagError` whose message
names the bag (and the topic and time when known). No rclpy here.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from .writer import typestore


class BagError(ValueError):
    """A bag is missing, corrupt, truncated or lacks what was asked for."""


@dataclass
class TopicInfo:
    name: str
    msgtype: str
    count: int


class BagReader:
    def __init__(self, path: str | os.PathLike):
        from rosbags.rosbag2 import Reader

        self.path = Path(path)
        if not self.path.exists():
            raise BagError(f"bag {self.path} does not exist")
        try:
            self._reader = Reader(self.path)
            self._reader.open()
        except Exception as exc:  # rosbags raises ReaderError, yaml, sqlite3, struct errors ...
            raise BagError(f"bag {self.path} cannot be opened (corrupt or truncated?): {exc}") from exc
        self._store = typestore()

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def __enter__(self) -> "BagReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def start_ns(self) -> int:
        return int(self._reader.start_time)

    @property
    def end_ns(self) -> int:
        return int(self._reader.end_time)

    def topics(self) -> dict[str, TopicInfo]:
        return {name: TopicInfo(name, info.msgtype, int(info.msgcount))
                for name, info in self._reader.topics.items()}

    def require(self, topic: str) -> TopicInfo:
        topics = self.topics()
        if topic not in topics:
            raise BagError(f"bag {self.path}: topic {topic!r} is missing (bag has {sorted(topics)})")
        if topics[topic].count == 0:
            raise BagError(f"bag {self.path}: topic {topic!r} has no messages")
        return topics[topic]

    def raw_messages(self, topics: Iterable[str]) -> Iterator[tuple[str, int, bytes, str]]:
        """(topic, receive time ns, CDR bytes, msgtype) in bag time order."""
        wanted = set(topics)
        conns = [c for c in self._reader.connections if c.topic in wanted]
        last_topic, last_t = None, None
        try:
            for conn, t, raw in self._reader.messages(connections=conns):
                last_topic, last_t = conn.topic, t
                yield conn.topic, int(t), raw, conn.msgtype
        except BagError:
            raise
        except Exception as exc:
            where = ("at the start" if last_t is None else
                     f"after {last_topic} at t={self.seconds(last_t):.3f}s")
            raise BagError(f"bag {self.path} is corrupt or truncated ({where}): "
                           f"{type(exc).__name__}: {exc}") from exc

    def messages(self, topics: Iterable[str]) -> Iterator[tuple[str, int, Any]]:
        """(topic, receive time ns, deserialised rosbags message)."""
        for topic, t, raw, msgtype in self.raw_messages(topics):
            yield topic, t, self.deserialize(raw, msgtype, topic, t)

    def deserialize(self, raw: bytes, msgtype: str, topic: str = "?", t: int | None = None) -> Any:
        try:
            return self._store.deserialize_cdr(raw, msgtype)
        except Exception as exc:
            when = "" if t is None else f" at t={self.seconds(t):.3f}s"
            raise BagError(f"bag {self.path}: topic {topic}{when}: cannot decode {msgtype}: {exc}") from exc

    def seconds(self, t_ns: int) -> float:
        """Seconds since the bag's first message (for error messages)."""
        return (int(t_ns) - self.start_ns) / 1e9


def header_stamp_ns(msg: Any) -> int | None:
    header = getattr(msg, "header", None)
    if header is None:
        return None
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)
