"""Read rosbag2 bags (mcap or sqlite3, zstd-compressed too) with the pure-Python `rosbags`.

Works on bags from `ros2 bag record` and from `BagWriter`: a bag directory with
metadata.yaml or a bare .mcap / .db3 file. An .mcap that rosbags cannot open because it
ends without its summary and footer (a recording killed hard), or whose folder's
metadata.yaml is missing or does not match it, is read record by record instead
(`crl_ros.bags.recover`): every complete message is kept and `notes` says what was
recovered and lost. Every failure is a `BagError` whose message names the bag (and the
topic and time when known). No rclpy here.
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
        self.notes: list[str] = []
        self._reader = None
        self._index = None
        self.recovered = None  # the McapScan of a damaged .mcap read without rosbags
        if not self.path.exists():
            raise BagError(f"bag {self.path} does not exist")
        storage = resolve_storage(self.path)
        if storage != self.path:
            self.notes.append(f"{self.path} has no metadata.yaml (a recording that was killed?); read "
                              f"{storage.name} inside it directly (mcap files describe their own topics and types)")
        try:
            self._reader = Reader(storage)
            self._reader.open()
        except Exception as exc:  # rosbags raises ReaderError, yaml, sqlite3, struct errors ...
            self._reader = None
            mcap = _only_mcap(storage)
            if mcap is None:
                raise BagError(f"bag {self.path} cannot be opened (corrupt or truncated?): {exc}") from exc
            self._recover(storage, mcap, exc)
        self._store = typestore()

    def _recover(self, storage: Path, mcap: Path, exc: Exception) -> None:
        """Read ``mcap`` record by record after rosbags refused it (``exc``)."""
        from .recover import RecoveryError, scan_mcap

        try:
            scan = scan_mcap(mcap)
        except RecoveryError as scan_exc:
            raise BagError(f"bag {self.path} cannot be opened: {scan_exc}") from exc
        if not scan.message_count:
            raise BagError(f"bag {self.path} cannot be opened: {scan.summary()}") from exc
        if storage.is_dir():
            self.notes.append(f"warning: the metadata.yaml of {self.path} does not open with its "
                              f"{mcap.name} ({exc}); read {mcap.name} itself")
        if scan.intact:  # refused for another reason (e.g. an mcap profile other than ros2)
            self.notes.append(f"{mcap.name} does not open with rosbags ({exc}); read record by record: {scan.summary()}")
        else:
            self.notes.append(f"warning: {scan.summary()}. `crl bag repair {self.path} OUT` writes an indexed copy")
        self.recovered, self._index = scan, scan.index()

    def close(self) -> None:
        if self._index is not None:
            self._index.close()
            self._index = None
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def __enter__(self) -> "BagReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def start_ns(self) -> int:
        return self.recovered.start_ns if self.recovered else int(self._reader.start_time)

    @property
    def end_ns(self) -> int:
        # rosbags' end_time is one past the last message; a recovered bag says the same
        return self.recovered.end_ns + 1 if self.recovered else int(self._reader.end_time)

    @property
    def indexed(self) -> bool:
        """Whether messages can be read from any time on without reading the ones before
        (one .mcap with an index: `payload_messages` then skips lazy payloads unread)."""
        return self._mcap_index() is not None

    def topics(self) -> dict[str, TopicInfo]:
        if self.recovered:
            types = {c.topic: self.recovered.msgtype(cid) for cid, c in self.recovered.channels.items()}
            return {name: TopicInfo(name, types[name], count) for name, count in self.recovered.topic_counts().items()}
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
        if self.recovered:
            for topic, t, payload, msgtype in self.payload_messages(topics):
                yield topic, t, payload.read(), msgtype
            return
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
            raise self._corrupt(last_topic, last_t, exc) from exc

    def payload_messages(self, topics: Iterable[str], lazy: Iterable[str] = ()) -> Iterator[tuple[str, int, "Payload", str]]:
        """(topic, receive time ns, payload, msgtype) in bag time order, where a payload's
        bytes are read only when asked (``payload.read()``, or ``payload.head(n)`` for the
        first n). For the ``lazy`` topics of a single indexed .mcap file the bytes of a
        message never asked for are never read (`crl_ros.bags.mcap_index`); otherwise every
        payload is read as `raw_messages` reads it."""
        wanted = list(topics)
        index = self._mcap_index()
        if index is None:
            for topic, t, raw, msgtype in self.raw_messages(wanted):
                yield topic, t, Payload(raw), msgtype
            return
        types = {info.name: info.msgtype for info in self.topics().values()}
        lazy = set(lazy)
        last_topic, last_t = None, None
        try:
            for t, chunk, offset, topic in index.entries(wanted):
                last_topic, last_t = topic, t
                if topic in lazy:
                    yield topic, int(t), Payload(None, index, chunk, offset), types[topic]
                else:
                    yield topic, int(t), Payload(index.payload(chunk, offset)), types[topic]
        except BagError:
            raise
        except Exception as exc:
            raise self._corrupt(last_topic, last_t, exc) from exc

    def _corrupt(self, last_topic: str | None, last_t: int | None, exc: Exception) -> BagError:
        where = "at the start" if last_t is None else f"after {last_topic} at t={self.seconds(last_t):.3f}s"
        repair = (f"; `crl bag repair {self.path} OUT` copies every message that can be read"
                  if _only_mcap(resolve_storage(self.path)) else "")
        return BagError(f"bag {self.path} is corrupt or truncated ({where}): {type(exc).__name__}: {exc}{repair}")

    def _mcap_index(self):
        """An McapIndex when the bag is one uncompressed-per-message .mcap with a summary."""
        from .mcap_index import McapIndex, McapIndexUnavailable

        if self._index is not None:
            return self._index
        storage = resolve_storage(self.path)
        if storage.is_dir():
            if self._reader.compression_mode:  # file or per-message zstd: rosbags decompresses
                return None
            files = sorted(storage.glob("*.mcap"))
            if len(files) != 1:
                return None
            storage = files[0]
        if storage.suffix != ".mcap":
            return None
        try:
            self._index = McapIndex(storage)
        except (McapIndexUnavailable, OSError):
            return None
        return self._index

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


class Payload:
    """The CDR bytes of one message, read now (``data``) or on first use (indexed mcap)."""

    __slots__ = ("_data", "_index", "_chunk", "_offset")

    def __init__(self, data: bytes | None, index=None, chunk: int = 0, offset: int = 0):
        self._data, self._index, self._chunk, self._offset = data, index, chunk, offset

    def read(self) -> bytes:
        if self._data is None:
            self._data = self._index.payload(self._chunk, self._offset)
        return self._data

    def head(self, n: int) -> bytes:
        if self._data is not None:
            return self._data[:n]
        return self._index.payload(self._chunk, self._offset, n)


BAG_FILE_SUFFIXES = (".mcap", ".db3")


def _only_mcap(storage: Path) -> Path | None:
    """The .mcap that ``storage`` (from `resolve_storage`) is or holds, when it is just one."""
    if storage.is_file():
        return storage if storage.suffix == ".mcap" else None
    files = sorted(storage.glob("*.mcap"))
    return files[0] if len(files) == 1 and not list(storage.glob("*.db3")) else None


def resolve_storage(path: Path) -> Path:
    """What to open for ``path``: a rosbag2 folder (with metadata.yaml), a .mcap or .db3 file,
    or the one .mcap inside a folder whose metadata.yaml is gone. Anything else is a BagError
    that says what was expected."""
    if path.is_file():
        if path.suffix not in BAG_FILE_SUFFIXES:
            raise BagError(f"{path} is not a bag: expected a rosbag2 folder (with metadata.yaml), "
                           f"a .mcap or a .db3 file")
        return path
    if (path / "metadata.yaml").exists():
        return path
    entries = sorted(path.iterdir())
    files = [e for e in entries if e.is_file() and e.suffix in BAG_FILE_SUFFIXES]
    mcaps = [e for e in files if e.suffix == ".mcap"]
    if len(mcaps) == 1:
        return mcaps[0]
    sub_bags = [e for e in entries if e.is_dir() and ((e / "metadata.yaml").exists() or
                                                      any(f.suffix in BAG_FILE_SUFFIXES for f in e.iterdir()))]
    if sub_bags:
        names = ", ".join(e.name for e in sub_bags[:5]) + (" ..." if len(sub_bags) > 5 else "")
        raise BagError(f"{path} is a folder of {len(sub_bags)} bag(s) ({names}), not a bag: pass each one, "
                       f"e.g. {path}/*/")
    if len(mcaps) > 1:
        raise BagError(f"bag {path} has no metadata.yaml and holds {len(mcaps)} .mcap files "
                       f"({', '.join(e.name for e in mcaps)}); pass the .mcap file(s) to convert, one episode each")
    if files:  # .db3 without metadata.yaml
        raise BagError(f"bag {path} has no metadata.yaml; its {files[0].name} can be passed directly "
                       f"(or restore metadata.yaml with `ros2 bag reindex {path}`)")
    listing = ", ".join(e.name for e in entries[:8]) + (" ..." if len(entries) > 8 else "") if entries else "nothing"
    raise BagError(f"{path} is not a bag: expected a rosbag2 folder (with metadata.yaml), a .mcap or a .db3 file; "
                   f"it holds {listing}. To convert every bag in a folder of bags, pass bags/*/")


def header_stamp_ns(msg: Any) -> int | None:
    header = getattr(msg, "header", None)
    if header is None:
        return None
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)
