"""Read back an .mcap file that ends without its summary and footer -- a recording killed
hard (SIGKILL, power loss) or a copy cut short -- and write it as a new, indexed bag.

An mcap file is a row of records (opcode u8, length u64, body) written front to back;
the summary at the end only makes seeking fast. `scan_mcap` walks the records from the
start, decodes each chunk (and the complete records at the start of a chunk cut short),
checks chunk CRCs where the writer set one, and builds an `McapIndex` of every complete
message. Nothing is guessed: a message is kept only when all its bytes are in the file,
inside a chunk that decodes and belongs to a channel the file declared. Damage in the
middle (a chunk failing its CRC or decompression, bytes that are no record) is skipped up
to the next chunk that parses whole, and reported. `repair_bag` writes what a scan found
as a rosbag2 bag (metadata.yaml included) with rosbags' writer; the input is only read.
No rclpy here.
"""
from __future__ import annotations

import os
import shutil
import struct
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from .mcap_index import MAGIC, McapIndex, _Chunk, decompress

HEADER, FOOTER, SCHEMA, CHANNEL, MESSAGE, CHUNK, DATA_END = 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x0F
KNOWN_OPCODES = set(range(0x01, 0x10))  # 0x80-0xff are private records (skipped); others are damage
COMPRESSIONS = ("", "zstd", "lz4")
_RECORD = struct.Struct("<BQ")        # opcode, length
_MESSAGE = struct.Struct("<HIQQ")     # channel id, sequence, log time, publish time
_CHUNK = struct.Struct("<QQQI")       # message start / end time, uncompressed size, uncompressed crc


class RecoveryError(ValueError):
    """The file cannot be read at all (not an mcap, or cut inside its header)."""


@dataclass
class Schema:
    name: str        # the message type, e.g. sensor_msgs/msg/Image
    encoding: str    # ros2msg | ros2idl
    data: bytes      # the message definition


@dataclass
class Channel:
    topic: str
    schema_id: int
    encoding: str    # cdr
    metadata: dict[str, str]


@dataclass
class McapScan:
    path: Path
    size: int
    schemas: dict[int, Schema] = field(default_factory=dict)
    channels: dict[int, Channel] = field(default_factory=dict)
    chunks: list[_Chunk] = field(default_factory=list)
    counts: dict[int, int] = field(default_factory=dict)     # channel id -> messages kept
    start_ns: int | None = None                               # first and last log time kept
    end_ns: int | None = None
    data_complete: bool = False   # the data section ended with its DataEnd record (or footer)
    footer: bool = False          # the file ends with an mcap footer (its summary may be whole)
    tail_offset: int = 0          # where the last complete record (or kept message) ends
    cut_chunk_messages: int = 0   # messages kept from a chunk the file ends inside
    problems: list[str] = field(default_factory=list)         # damage skipped, one line each
    damaged_bytes: int = 0

    @property
    def message_count(self) -> int:
        return sum(self.counts.values())

    @property
    def intact(self) -> bool:
        return self.data_complete and self.footer and not self.problems

    def msgtype(self, cid: int) -> str:
        return self.schemas[self.channels[cid].schema_id].name

    def topic_counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for cid, channel in self.channels.items():
            out[channel.topic] = out.get(channel.topic, 0) + self.counts.get(cid, 0)
        return out

    def index(self) -> McapIndex:
        return McapIndex.from_scan(self.path, {cid: c.topic for cid, c in self.channels.items()}, self.chunks)

    def summary(self) -> str:
        """What was recovered and what was lost, in one paragraph (the warning users see)."""
        if self.intact:
            return f"{self.path.name} is complete: {self.message_count} messages"
        how = (["ends without its summary and footer (a recording killed hard?)"] if not self.data_complete else
               [] if self.footer else ["has all its data but its summary/footer is cut short"])
        if self.problems:
            how.append(f"has {len(self.problems)} damaged part(s)")
        topics = ", ".join(f"{t} {n}" for t, n in sorted(self.topic_counts().items()))
        span = (self.end_ns - self.start_ns) / 1e9 if self.message_count else 0.0
        text = (f"{self.path.name} {' and '.join(how)}: recovered {self.message_count} complete messages "
                f"({topics or 'none'}) over {span:.3f} s")
        lost = []
        tail = self.size - self.tail_offset
        if not self.data_complete and tail:
            cut = (f", after {self.cut_chunk_messages} complete message(s) of the unfinished chunk it ends in"
                   if self.cut_chunk_messages else "")
            lost.append(f"the last {tail} bytes (from offset {self.tail_offset}{cut}) hold no complete message")
        elif not self.data_complete:
            lost.append("it ends at a record boundary: every byte on disk was read")
        if self.problems:
            lost.append(f"{self.damaged_bytes} damaged bytes skipped: " + "; ".join(self.problems))
        return text + ("; " + "; ".join(lost) if lost else "")


def scan_mcap(path: str | os.PathLike) -> McapScan:
    """Every complete message of an .mcap file, read record by record (no summary needed)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size == 0:
                raise RecoveryError(f"{path} is empty: the recording ended before anything reached the disk")
            if not MAGIC.startswith(f.read(min(size, len(MAGIC)))):
                raise RecoveryError(f"{path} is not an mcap file (its first bytes are not the mcap magic)")
            if size < len(MAGIC) + 9:
                raise RecoveryError(f"{path} is {size} bytes: truncated inside its mcap header, nothing to recover")
            return _Scanner(path, f.fileno(), size).run()
    except OSError as exc:
        raise RecoveryError(f"cannot read {path}: {exc.strerror or exc}") from exc


class _Scanner:
    """One pass over the file with pread: memory holds one chunk at a time, not the file."""

    def __init__(self, path: Path, fd: int, size: int):
        self.fd, self.size = fd, size
        self.scan = McapScan(path, size)
        self.loose: dict[int, list] = {}   # messages outside chunks: a chunk at file offset 0

    def read(self, offset: int, n: int) -> bytes:
        """Up to ``n`` bytes at ``offset`` (fewer at the end of the file)."""
        return os.pread(self.fd, max(0, min(n, self.size - offset)), offset)

    def run(self) -> McapScan:
        scan = self.scan
        op, length = _RECORD.unpack(self.read(8, 9))
        if op != HEADER or 17 + length > self.size:
            raise RecoveryError(f"{scan.path}: truncated or damaged inside its mcap header ({self.size} bytes): "
                                f"nothing to recover")
        pos = scan.tail_offset = 17 + length
        footer = self.read(self.size - 37, 37) if self.size >= 17 + length + 37 else b""
        scan.footer = footer[-8:] == MAGIC and footer[0] == FOOTER
        while pos < self.size:
            if pos + 9 > self.size:
                break  # cut inside a record's opcode and length
            op, length = _RECORD.unpack(self.read(pos, 9))
            end = pos + 9 + length
            if op not in KNOWN_OPCODES and op < 0x80:
                pos = self._skip_damage(pos, f"bytes at offset {pos} are no mcap record (opcode 0x{op:02x})")
                continue
            if end > self.size:
                if self._next_whole_chunk(pos + 1) >= 0:  # not the last record written: damage
                    pos = self._skip_damage(pos, f"record at offset {pos} runs past the end of the file")
                    continue
                if op == CHUNK:
                    self._chunk(pos, self.size)  # the cut: its complete first records
                break
            if op == DATA_END or op == FOOTER:
                scan.data_complete = True
                break
            if op == CHUNK:
                self._chunk(pos, end)
            elif op in (SCHEMA, CHANNEL, MESSAGE) and not self._record(
                    op, self.read(pos + 9, _head_end(op, pos, end) - pos - 9), pos, self.loose):
                self._damaged(pos, end, f"record at offset {pos} (opcode 0x{op:02x}) is damaged")
            pos = scan.tail_offset = end
        if self.loose:
            self._add_chunk(_Chunk(0, 0, 0, {}, "", 0, 0, 0), self.loose)
        return scan

    def _skip_damage(self, pos: int, what: str) -> int:
        """Resume at the next chunk that parses whole after ``pos`` (else the end of the file)."""
        start = self._next_whole_chunk(pos + 1)
        resume = self.size if start < 0 else start
        self.scan.problems.append(f"{what}: {resume - pos} bytes skipped"
                                  + (f" to the chunk at offset {resume}" if start >= 0 else " to the end"))
        self.scan.damaged_bytes += resume - pos
        return resume

    def _next_whole_chunk(self, start: int) -> int:
        """The offset of the first whole chunk record at or after ``start``, or -1."""
        window = 1 << 20
        while start < self.size:
            block = self.read(start, window)
            at = block.find(bytes([CHUNK]))
            while at >= 0:
                if self._chunk_fits(start + at):
                    return start + at
                at = block.find(bytes([CHUNK]), at + 1)
            start += len(block)
        return -1

    def _chunk_header(self, pos: int) -> tuple | None:
        """(record end, uncompressed size, crc, compression, records start, records length)
        of the chunk record at ``pos``, or None where its header is cut or no chunk header."""
        head = self.read(pos, 9 + _CHUNK.size + 4 + 4 + 8)  # a compression name has at most 4 bytes
        if len(head) < 9 + _CHUNK.size + 4:
            return None
        _, length = _RECORD.unpack_from(head, 0)
        _, _, uncompressed_size, crc = _CHUNK.unpack_from(head, 9)
        (n,) = struct.unpack_from("<I", head, 9 + _CHUNK.size)
        if n > 4 or len(head) < 9 + _CHUNK.size + 4 + n + 8:
            return None
        compression = head[9 + _CHUNK.size + 4:9 + _CHUNK.size + 4 + n].decode("latin-1")
        (records_len,) = struct.unpack_from("<Q", head, 9 + _CHUNK.size + 4 + n)
        records_start = pos + 9 + _CHUNK.size + 4 + n + 8
        return pos + 9 + length, uncompressed_size, crc, compression, records_start, records_len

    def _chunk_fits(self, pos: int) -> bool:
        """Whether a whole, self-consistent chunk record starts at ``pos`` (lengths agree)."""
        header = self._chunk_header(pos)
        if header is None:
            return False
        end, _, _, compression, records_start, records_len = header
        return compression in COMPRESSIONS and end <= self.size and records_start + records_len == end

    def _chunk(self, pos: int, end: int) -> None:
        """Read the chunk record at ``pos``; ``end`` below its declared end: cut short."""
        declared_end = pos + 9 + _RECORD.unpack(self.read(pos, 9))[1]
        cut = end < declared_end
        header = self._chunk_header(pos)
        if header is None or header[4] > end:
            if not cut:
                self._damaged(pos, declared_end, f"chunk at offset {pos}: unreadable header")
            return  # else: cut inside the chunk's header
        _, uncompressed_size, crc, compression, records_start, records_len = header
        if compression not in COMPRESSIONS or (not cut and records_start + records_len != declared_end):
            self._damaged(pos, declared_end, f"chunk at offset {pos}: unreadable header")
            return
        available = min(records_len, end - records_start)
        raw = self.read(records_start, available)
        try:
            records = raw if not compression else decompress(raw, compression, cut)
        except Exception as exc:  # zstd / lz4 errors: the bytes are damaged
            self._damaged(pos, declared_end, f"chunk at offset {pos}: cannot decompress ({compression}: {exc})")
            return
        if not cut and (len(records) != uncompressed_size or (crc and zlib.crc32(records) != crc)):
            what = "size" if len(records) != uncompressed_size else "CRC"
            self._damaged(pos, declared_end, f"chunk at offset {pos}: its records fail their {what} check")
            return
        messages, used = self._chunk_records(records, pos, cut)
        chunk = _Chunk(0, pos, declared_end - pos, {}, compression, records_start, available,
                       len(records), partial=cut and bool(compression))
        if cut:
            # an uncompressed chunk's kept records end at a known offset; a compressed one's not
            self.scan.cut_chunk_messages = sum(len(m) for m in messages.values())
            if not compression:
                self.scan.tail_offset = records_start + used
            elif messages:
                self.scan.tail_offset = records_start  # its head was decoded in part
        if messages:
            self._add_chunk(chunk, messages)

    def _chunk_records(self, records: bytes, pos: int, cut: bool) -> tuple[dict, int]:
        """The messages of a chunk's records, and how many bytes of records were read whole."""
        messages: dict[int, list] = {}
        offset = 0
        while offset < len(records):
            if offset + 9 > len(records):
                break
            op, length = _RECORD.unpack_from(records, offset)
            end = offset + 9 + length
            if end > len(records):
                if not cut:
                    self.scan.problems.append(f"chunk at offset {pos}: record at {offset} of its records runs past "
                                              f"its end; the chunk's last {len(records) - offset} bytes skipped")
                    self.scan.damaged_bytes += len(records) - offset
                break
            head = records[offset + 9:_head_end(op, offset, end)]
            if op not in (SCHEMA, CHANNEL, MESSAGE) or not self._record(op, head, offset, messages):
                self.scan.problems.append(f"chunk at offset {pos}: record at {offset} of its records is damaged "
                                          f"(opcode 0x{op:02x}); the chunk's last {len(records) - offset} bytes skipped")
                self.scan.damaged_bytes += len(records) - offset
                break
            offset = end
        return messages, offset

    def _record(self, op: int, body: bytes, offset: int, messages: dict) -> bool:
        """Take in a schema, channel or message record at ``offset`` (of the file or of its
        chunk's records), a message into ``messages``; False if it is damaged."""
        scan = self.scan
        try:
            if op == SCHEMA:
                (sid,) = struct.unpack_from("<H", body, 0)
                name, p = _string(body, 2)
                encoding, p = _string(body, p)
                (n,) = struct.unpack_from("<I", body, p)
                if p + 4 + n > len(body) or sid == 0:
                    return False
                scan.schemas[sid] = Schema(name, encoding, bytes(body[p + 4:p + 4 + n]))
            elif op == CHANNEL:
                cid, sid = struct.unpack_from("<HH", body, 0)
                topic, p = _string(body, 4)
                encoding, p = _string(body, p)
                metadata = _string_map(body, p)
                if sid not in scan.schemas:
                    return False
                scan.channels[cid] = Channel(topic, sid, encoding, metadata)
            elif op == MESSAGE:
                if len(body) < _MESSAGE.size:
                    return False
                cid, _, log_time, _ = _MESSAGE.unpack_from(body, 0)
                if cid not in scan.channels:
                    return False  # a message of no declared channel: damage, not data
                messages.setdefault(cid, []).append((log_time, offset))
        except (struct.error, UnicodeDecodeError, ValueError):
            return False
        return True

    def _damaged(self, pos: int, end: int, what: str) -> None:
        self.scan.problems.append(f"{what}: its {end - pos} bytes skipped")
        self.scan.damaged_bytes += end - pos

    def _add_chunk(self, chunk: _Chunk, messages: dict) -> None:
        scan = self.scan
        chunk.messages = messages
        times = [t for entries in messages.values() for t, _ in entries]
        chunk.message_start_time = min(times)
        scan.chunks.append(chunk)
        for cid, entries in messages.items():
            scan.counts[cid] = scan.counts.get(cid, 0) + len(entries)
        scan.start_ns = min(times) if scan.start_ns is None else min(scan.start_ns, min(times))
        scan.end_ns = max(times) if scan.end_ns is None else max(scan.end_ns, max(times))


def _head_end(op: int, offset: int, end: int) -> int:
    """Where the part of the record at ``offset`` that `_Scanner._record` reads ends: all of
    a schema or channel, the fixed fields of a message (its data is read only when used)."""
    return min(end, offset + 9 + _MESSAGE.size) if op == MESSAGE else end


def _string(buf, offset: int) -> tuple[str, int]:
    (n,) = struct.unpack_from("<I", buf, offset)
    if offset + 4 + n > len(buf):
        raise ValueError("string runs past its record")
    return bytes(buf[offset + 4:offset + 4 + n]).decode("utf-8"), offset + 4 + n


def _string_map(buf, offset: int) -> dict[str, str]:
    (n,) = struct.unpack_from("<I", buf, offset)
    end, p, out = offset + 4 + n, offset + 4, {}
    if end > len(buf):
        raise ValueError("map runs past its record")
    while p < end:
        key, p = _string(buf, p)
        out[key], p = _string(buf, p)
    return out


def find_mcap(path: str | os.PathLike) -> Path:
    """The .mcap file ``path`` is, or the one inside the bag folder ``path`` (whatever its
    metadata.yaml says: after a hard kill there is none, or one that does not match)."""
    path = Path(path)
    if path.is_file():
        if path.suffix != ".mcap":
            raise RecoveryError(f"{path} is not an .mcap file (only mcap recordings can be repaired)")
        return path
    if not path.is_dir():
        raise RecoveryError(f"bag {path} does not exist")
    files = sorted(path.glob("*.mcap"))
    if len(files) != 1:
        found = ", ".join(f.name for f in files) if files else "none"
        raise RecoveryError(f"bag {path} holds {len(files)} .mcap files ({found}); pass the one to repair")
    return files[0]


def repair_bag(src: str | os.PathLike, dst: str | os.PathLike, progress: bool = False) -> tuple[McapScan, int]:
    """Write every complete message of the mcap bag ``src`` (killed, cut or damaged) to the
    new rosbag2 bag ``dst``: indexed, with metadata.yaml, zstd chunks if ``src`` had
    compressed ones. ``src`` is only read. Returns the scan and the messages written."""
    from rosbags.rosbag2 import CompressionFormat, CompressionMode, Reader, StoragePlugin, Writer
    from tqdm import tqdm

    mcap, dst = find_mcap(src), Path(dst)
    if dst.exists():
        raise RecoveryError(f"{dst} already exists; the repaired copy goes to a new path")
    if Path(src).is_dir() and Path(src).resolve() in dst.resolve().parents:
        raise RecoveryError(f"{dst} is inside the bag {src}; put the repaired copy elsewhere")
    scan = scan_mcap(mcap)
    if not scan.message_count:
        raise RecoveryError(f"nothing to repair: {scan.summary()}")
    writer = Writer(dst, version=9, storage_plugin=StoragePlugin.MCAP)
    if any(chunk.compression for chunk in scan.chunks):
        writer.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
    try:
        writer.open()
        connections = _copy_channels(scan, writer)
        # labelled by channel id, not topic: one topic may have several channels (types)
        index = McapIndex.from_scan(mcap, {cid: cid for cid in scan.channels}, scan.chunks)
        written = 0
        with tqdm(total=scan.message_count, unit="msg", desc=f"repairing {mcap.name}", file=sys.stderr,
                  disable=not progress) as bar:
            for t, chunk, offset, cid in index.entries(list(scan.channels)):
                writer.write(connections[cid], t, index.payload(chunk, offset))
                written += 1
                bar.update(1)
        index.close()
        writer.close()
        with Reader(dst) as check:  # the copy opens the ordinary way, with every message
            if check.message_count != written:
                raise RecoveryError(f"{dst} reads back {check.message_count} messages, {written} were written")
    except BaseException:
        shutil.rmtree(dst, ignore_errors=True)  # ours: no half-written copy left behind
        raise
    return scan, written


def _copy_channels(scan: McapScan, writer) -> dict[int, object]:
    """A writer connection per channel of the scan (channels that differ only by id share one)."""
    from rosbags.rosbag2.metadata import parse_qos

    from .writer import typestore

    store = typestore()
    connections, by_key = {}, {}
    for cid, channel in sorted(scan.channels.items()):
        msgtype, schema = scan.msgtype(cid), scan.schemas[channel.schema_id]
        qos_text = channel.metadata.get("offered_qos_profiles", "")
        key = (channel.topic, msgtype, channel.encoding, qos_text)
        if key not in by_key:
            if channel.metadata.get("topic_type_hash"):  # the recorder's own definition and hash
                kind = dict(msgdef=schema.data.decode(), rihs01=channel.metadata["topic_type_hash"])
            elif msgtype in store.fielddefs:
                kind = dict(typestore=store)
            else:
                raise RecoveryError(f"{scan.path}: topic {channel.topic} has type {msgtype}, which the bag "
                                    f"typestore does not know and the file gives no type hash for")
            try:
                qos = parse_qos(qos_text) if qos_text else []
            except Exception:  # an unreadable QoS string: the copy says none rather than fail
                qos = []
            by_key[key] = writer.add_connection(channel.topic, msgtype, serialization_format=channel.encoding,
                                                offered_qos_profiles=qos, **kind)
        connections[cid] = by_key[key]
    return connections

