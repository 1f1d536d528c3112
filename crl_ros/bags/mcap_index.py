"""Indexed access to one .mcap file: read the messages of some topics without reading the
others' bytes.

`rosbags` reads every message of the chosen topics in full. The converter needs the bytes
of one camera frame in six (the newest before each 5 Hz step of a 30 Hz camera), so for
raw VGA frames most of the bag's gigabytes are read for nothing. MCAP files written by
`ros2 bag record` and by `rosbags` carry a summary (channels, one index record per chunk)
and a message index after each chunk (log time and offset of each message). From those,
`McapIndex.entries` lists every wanted message in log-time order, and `payload` /
`head` read a message's bytes (or their first few, for a header stamp) only when asked:
with `os.pread` from uncompressed chunks, from a cached decompressed chunk otherwise.

Files without a summary or message indexes raise `McapIndexUnavailable`; callers then
read the file with `rosbags` instead. A file cut short (a recording killed hard) has no
summary: `crl_ros.bags.recover` scans its records and builds the same index
(`McapIndex.from_scan`).
"""
from __future__ import annotations

import heapq
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

MAGIC = b"\x89MCAP0\r\n"
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


class McapIndexUnavailable(Exception):
    """The file has no usable summary or message index (read it sequentially instead)."""


@dataclass
class _Chunk:
    message_start_time: int
    start: int               # file offset of the chunk record
    length: int              # chunk record length (incl. opcode and length field)
    index_offsets: dict      # channel id -> file offset of its MessageIndex record
    compression: str
    records_start: int       # file offset of the chunk's (uncompressed) records
    compressed_size: int
    uncompressed_size: int
    # from a scan of a file without summary (recover.py): channel id -> [(log time, record
    # offset)], and whether the chunk was cut short (only its first records are on disk)
    messages: dict | None = None
    partial: bool = False


def decompress(raw: bytes, compression: str, partial: bool = False) -> bytes:
    """A chunk's records from its compressed bytes. ``partial``: ``raw`` is the start of a
    stream that was cut short; return what its complete blocks decode to."""
    if compression == "zstd":
        try:  # what rosbags uses: the standard library's from Python 3.14, else the backport
            from compression import zstd
        except ImportError:
            from backports import zstd
        return zstd.ZstdDecompressor().decompress(raw) if partial else zstd.decompress(raw)
    if compression == "lz4":
        import lz4.frame
        return lz4.frame.LZ4FrameDecompressor().decompress(raw) if partial else lz4.frame.decompress(raw)
    raise McapIndexUnavailable(f"unsupported chunk compression {compression!r}")


def _string(buf: bytes, offset: int) -> tuple[str, int]:
    (n,) = _U32.unpack_from(buf, offset)
    return buf[offset + 4:offset + 4 + n].decode("utf-8"), offset + 4 + n


class McapIndex:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._file = open(self.path, "rb")
        self._fd = self._file.fileno()
        self._cache: dict[int, bytes] = {}
        try:
            self._read_summary()
        except McapIndexUnavailable:
            self.close()
            raise
        except Exception as exc:  # a damaged summary: let the sequential reader say what is wrong
            self.close()
            raise McapIndexUnavailable(f"unreadable summary: {exc}") from exc

    @classmethod
    def from_scan(cls, path: str | os.PathLike, channels: dict[int, str], chunks: list[_Chunk]) -> "McapIndex":
        """The index of a file read record by record (no summary): ``chunks`` carry their messages."""
        index = cls.__new__(cls)
        index.path = Path(path)
        index._file = open(index.path, "rb")
        index._fd = index._file.fileno()
        index._cache = {}
        index.channels, index.chunks = dict(channels), list(chunks)
        return index

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _pread(self, n: int, offset: int) -> bytes:
        data = os.pread(self._fd, n, offset)
        if len(data) != n:
            raise EOFError(f"{self.path}: {n} bytes at offset {offset} run past the end of the file")
        return data

    def _read_summary(self) -> None:
        size = os.fstat(self._fd).st_size
        if size < 8 + 37 or self._pread(8, 0) != MAGIC:
            raise McapIndexUnavailable("not an mcap file")
        footer = self._pread(37, size - 37)
        if footer[-8:] != MAGIC or footer[0] != 0x02:
            raise McapIndexUnavailable("no footer (a recording that was not closed?)")
        (summary_start,) = _U64.unpack_from(footer, 9)
        if not summary_start:
            raise McapIndexUnavailable("no summary section")
        summary = self._pread(size - 37 - summary_start, summary_start)
        self.channels: dict[int, str] = {}
        self.chunks: list[_Chunk] = []
        pos = 0
        while pos < len(summary):
            op = summary[pos]
            (length,) = _U64.unpack_from(summary, pos + 1)
            body = pos + 9
            if op == 0x04:  # Channel: id u16, schema_id u16, topic, message_encoding, metadata
                (cid,) = _U16.unpack_from(summary, body)
                topic, _ = _string(summary, body + 4)
                self.channels[cid] = topic
            elif op == 0x08:  # ChunkIndex
                (first_time,) = _U64.unpack_from(summary, body)
                start, length_c = struct.unpack_from("<QQ", summary, body + 16)
                (map_len,) = _U32.unpack_from(summary, body + 32)
                offsets = {cid: off for cid, off in struct.iter_unpack("<HQ", summary[body + 36:body + 36 + map_len])}
                q = body + 36 + map_len + 8  # after message_index_length
                compression, q = _string(summary, q)
                compressed_size, uncompressed_size = struct.unpack_from("<QQ", summary, q)
                records_start = start + 9 + 8 + 8 + 8 + 4 + 4 + len(compression.encode()) + 8
                self.chunks.append(_Chunk(first_time, start, length_c, offsets, compression, records_start,
                                          compressed_size, uncompressed_size))
            pos = body + length
        if not self.chunks:
            raise McapIndexUnavailable("no chunk index")
        if any(c.compression not in ("", "zstd", "lz4") for c in self.chunks):
            raise McapIndexUnavailable("a chunk compression this reader does not know")
        if any(not c.index_offsets for c in self.chunks):
            raise McapIndexUnavailable("chunks without message indexes")

    def entries(self, topics) -> Iterator[tuple[int, int, int, str]]:
        """(log time ns, chunk number, record offset, topic) of every message of ``topics``,
        in log-time order (chunk and file order among equal times). Chunk indexes are read
        as the time reaches their chunk, so memory holds a few chunks' entries, not the bag's."""
        wanted = {cid: topic for cid, topic in self.channels.items() if topic in set(topics)}
        order = sorted(range(len(self.chunks)), key=lambda i: (self.chunks[i].message_start_time, i))
        heap: list[tuple[int, int, int, str]] = []
        k = 0
        while k < len(order) or heap:
            # a chunk not loaded yet starts after the earliest pending entry, so that entry is next
            while k < len(order) and (not heap or self.chunks[order[k]].message_start_time <= heap[0][0]):
                for entry in self._chunk_entries(order[k], wanted):
                    heapq.heappush(heap, entry)
                k += 1
            yield heapq.heappop(heap)

    def _chunk_entries(self, i: int, wanted: dict) -> list[tuple[int, int, int, str]]:
        out = []
        if self.chunks[i].messages is not None:  # scanned
            for cid, messages in self.chunks[i].messages.items():
                if cid in wanted:
                    out.extend((t, i, off, wanted[cid]) for t, off in messages)
            return out
        for cid, offset in self.chunks[i].index_offsets.items():
            if cid not in wanted:
                continue
            head = self._pread(9 + 2 + 4, offset)
            if head[0] != 0x07:
                raise ValueError(f"no message index at offset {offset}")
            (n,) = _U32.unpack_from(head, 11)
            topic = wanted[cid]
            out.extend((t, i, off, topic) for t, off in struct.iter_unpack("<QQ", self._pread(n, offset + 15)))
        return out

    def _chunk_records(self, i: int) -> bytes:
        data = self._cache.get(i)
        if data is None:
            chunk = self.chunks[i]
            raw = self._pread(chunk.compressed_size, chunk.records_start)
            data = decompress(raw, chunk.compression, chunk.partial)
            if len(data) != chunk.uncompressed_size:
                raise ValueError(f"chunk {i}: {len(data)} bytes after decompression, expected {chunk.uncompressed_size}")
            if len(self._cache) >= 4:
                self._cache.pop(next(iter(self._cache)))
            self._cache[i] = data
        return data

    def payload(self, chunk: int, offset: int, n: int | None = None) -> bytes:
        """The message data (CDR bytes) of the record at ``offset`` in chunk ``chunk``; its
        first ``n`` bytes only when ``n`` is given."""
        c = self.chunks[chunk]
        if not c.compression:
            head = self._pread(9, c.records_start + offset)
            if head[0] != 0x05:
                raise ValueError(f"no message record at offset {offset} of chunk {chunk}")
            (length,) = _U64.unpack_from(head, 1)
            size = length - 22
            return self._pread(size if n is None else min(n, size), c.records_start + offset + 9 + 22)
        data = self._chunk_records(chunk)
        if data[offset] != 0x05:
            raise ValueError(f"no message record at offset {offset} of chunk {chunk}")
        (length,) = _U64.unpack_from(data, offset + 1)
        start = offset + 9 + 22
        end = start + length - 22 if n is None else min(start + n, start + length - 22)
        return data[start:end]
