"""Recordings killed hard: an .mcap without its summary/footer (or cut anywhere, or damaged
in the middle) is read back record by record. Every message complete before the cut is
recovered, nothing is invented, a cut inside the header is a clear error, and `crl bag
repair` writes an indexed copy that rosbags opens the ordinary way."""
import hashlib
import os
import signal
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from rosbags.rosbag2 import Reader
from test_bags import OPTS, SEC, T0, write_episode

from crl_ros.bags.convert import ConvertOptions, convert_bag
from crl_ros.bags.mcap_index import McapIndex
from crl_ros.bags.reader import BagError, BagReader
from crl_ros.bags.recover import scan_mcap
from crl_ros.bags.writer import BagWriter, make_action, make_image

REPO = Path(__file__).resolve().parents[2]
TOPICS = ["image_raw", "action"]


def flushed_bag(path, compression="none", n=60, flush_every=7):
    """A small bag laid out as recorder_node writes one: many chunks (a flush every few
    messages), images of a different size and content each."""
    with BagWriter(path, "mcap", compression) as w:
        for i in range(n):
            if i % 3 == 2:
                w.write("action", T0 + i * SEC // 30, make_action([0.01 * i, 0, 0, 0, 0, 0, 1]))
            else:
                rng = np.random.default_rng(i)  # noise: zstd cannot shrink it much, so cuts land everywhere
                w.write("image_raw", T0 + i * SEC // 30, make_image(rng.integers(0, 256, (4 + i % 5, 6, 3)), T0))
            if i % flush_every == flush_every - 1:
                w.flush()
    return next(Path(path).glob("*.mcap"))


def intact_messages(mcap):
    """(topic, time, CDR bytes) of an intact file, read by rosbags (not the code under test),
    and each topic's channel id."""
    with Reader(mcap) as r:
        return ([(c.topic, t, bytes(raw)) for c, t, raw in r.messages()],
                {c.topic: c.id for c in r.connections})


def recovered(path):
    with BagReader(path) as bag:
        return [(topic, t, raw) for topic, t, raw, _ in bag.raw_messages(TOPICS)], bag.notes


def record_ends(data: bytes, messages, channel_ids):
    """File offset where each message record of an uncompressed file ends, found by searching
    the file for the record's bytes (opcode, length, channel, sequence, times, data)."""
    ends = []
    for topic, t, raw in messages:
        record = struct.pack("<BQHIQQ", 0x05, 22 + len(raw), channel_ids[topic], 0, t, t) + raw
        ends.append(data.index(record) + len(record))
    return ends


def chunk_spans(mcap):
    """(start, end) file offsets of each chunk record, from the file's summary."""
    index = McapIndex(mcap)
    spans = [(c.start, c.start + c.length) for c in index.chunks]
    index.close()
    return spans


def cut_offsets(size, step):
    return sorted(set(range(0, size, step)) | {1, 8, 9, 16, size - 1})


def test_a_file_cut_anywhere_gives_exactly_the_messages_complete_before_the_cut(tmp_path):
    mcap = flushed_bag(tmp_path / "bag")
    data = mcap.read_bytes()
    messages, channel_ids = intact_messages(mcap)
    ends = record_ends(data, messages, channel_ids)
    assert len(chunk_spans(mcap)) >= 8 and ends == sorted(ends)
    cut = tmp_path / "cut.mcap"
    for n in cut_offsets(len(data), 23):  # through the header, every chunk, indexes, summary, footer
        cut.write_bytes(data[:n])
        expected = [m for m, end in zip(messages, ends) if end <= n]
        if not expected:
            with pytest.raises(BagError, match="cut.mcap"):
                recovered(cut)
            continue
        got, notes = recovered(cut)
        assert got == expected, f"cut at byte {n} of {len(data)}"
        assert any("recovered" in note and "crl bag repair" in note for note in notes), notes
    assert mcap.read_bytes() == data


def test_a_compressed_file_cut_anywhere_gives_every_whole_chunk_and_nothing_invented(tmp_path):
    mcap = flushed_bag(tmp_path / "bag", "zstd")
    data = mcap.read_bytes()
    messages, _ = intact_messages(mcap)
    spans = chunk_spans(mcap)
    per_chunk = len(messages) // len(spans)  # a flush every 7 messages: 7 per chunk but the last
    cut = tmp_path / "cut.mcap"
    for n in cut_offsets(len(data), 29):
        cut.write_bytes(data[:n])
        whole = sum(1 for _, end in spans if end <= n)
        try:
            got, _ = recovered(cut)
        except BagError as exc:
            assert whole == 0 and "cut.mcap" in str(exc), (n, exc)
            continue
        assert got == messages[:len(got)], f"cut at byte {n}: not a prefix of the intact messages"
        assert len(got) >= min(whole * per_chunk, len(messages)), f"cut at byte {n}: a whole chunk lost"


def test_cut_inside_the_header_is_a_clear_error_naming_the_file(tmp_path):
    mcap = flushed_bag(tmp_path / "bag")
    data = mcap.read_bytes()
    for n, words in [(0, "empty"), (5, "truncated inside its mcap header"), (12, "truncated inside its mcap header"),
                     (20, "truncated or damaged inside its mcap header")]:
        (tmp_path / "bag" / "bag.mcap").write_bytes(data[:n])
        with pytest.raises(BagError, match=words) as err:
            BagReader(tmp_path / "bag")
        assert "bag.mcap" in str(err.value)
    (tmp_path / "bag" / "bag.mcap").write_bytes(b"not an mcap at all")
    with pytest.raises(BagError, match="not an mcap file"):
        BagReader(tmp_path / "bag")


def test_a_bag_without_its_summary_converts_exactly_like_the_intact_one(tmp_path):
    bag = write_episode(tmp_path / "bag", 2.0)
    mcap = next(bag.glob("*.mcap"))
    data = mcap.read_bytes()
    ref = convert_bag(bag, ConvertOptions(**OPTS))
    # as a hard kill leaves it: no metadata.yaml, the file ends after its last chunk
    killed = tmp_path / "killed"
    killed.mkdir()
    data_end = data.index(b"\x0f\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00", chunk_spans(mcap)[-1][1])
    (killed / "killed.mcap").write_bytes(data[:data_end])
    got = convert_bag(killed, ConvertOptions(**OPTS))
    np.testing.assert_array_equal(got.images, ref.images)
    np.testing.assert_array_equal(got.actions, ref.actions)
    np.testing.assert_array_equal(got.proprio, ref.proprio)
    assert any("no metadata.yaml" in n for n in got.notes)
    assert any("ends without its summary and footer" in n and "every byte on disk was read" in n for n in got.notes)


def test_a_stale_metadata_yaml_is_passed_over_for_the_mcap(tmp_path):
    bag = write_episode(tmp_path / "bag", 1.0)
    mcap = next(bag.glob("*.mcap"))
    mcap.write_bytes(mcap.read_bytes()[:-100])  # metadata.yaml says complete, the file is cut
    got = convert_bag(bag, ConvertOptions(**OPTS))
    assert len(got.actions) == 5
    assert any("metadata.yaml" in n and "does not open" in n for n in got.notes), got.notes


def _set_chunk_crcs(data: bytearray, mcap) -> None:
    """Write each (uncompressed) chunk's CRC, as writers other than rosbags do."""
    index = McapIndex(mcap)
    for c in index.chunks:
        records = bytes(data[c.records_start:c.records_start + c.uncompressed_size])
        struct.pack_into("<I", data, c.start + 9 + 24, zlib.crc32(records))
    index.close()


@pytest.mark.parametrize("damage", ["crc", "garbage", "zstd"])
def test_a_damaged_chunk_mid_file_is_reported_and_the_rest_recovered(tmp_path, damage):
    mcap = flushed_bag(tmp_path / "bag", "zstd" if damage == "zstd" else "none")
    data = bytearray(mcap.read_bytes())
    messages, _ = intact_messages(mcap)
    spans = chunk_spans(mcap)
    start, end = spans[3]
    if damage == "crc":
        _set_chunk_crcs(data, mcap)
        data[end - 3] ^= 0xFF  # a byte of the chunk's last message
    elif damage == "garbage":
        data[start:end] = os.urandom(end - start)  # the whole chunk, its opcode and lengths too
        data[start] = 0x00
    else:
        data[end - 40:end - 20] = bytes(20)  # inside the zstd stream
    lost = set(range(3 * 7, 4 * 7))  # the 4th chunk's messages
    kept = [m for i, m in enumerate(messages) if i not in lost]

    damaged = tmp_path / "damaged" / "damaged.mcap"
    damaged.parent.mkdir()
    damaged.write_bytes(bytes(data[:spans[-1][1]]))  # and the summary gone, as after a kill
    scan = scan_mcap(damaged)
    assert len(scan.problems) == 1 and f"offset {start}" in scan.problems[0], scan.problems
    assert {"crc": "CRC check", "garbage": "no mcap record", "zstd": "cannot decompress"}[damage] in scan.problems[0]
    got, notes = recovered(damaged)
    assert got == kept
    assert any("1 damaged part" in n for n in notes)

    out = tmp_path / "repaired"
    result = _crl("bag", "repair", str(damaged.parent), str(out))
    assert result.returncode == 0, result.stderr
    assert "warning" in result.stderr and f"offset {start}" in result.stderr
    assert [(c.topic, t, bytes(raw)) for c, t, raw in Reader(out).__enter__().messages()] == kept


def test_an_intact_bag_with_a_damaged_zstd_chunk_is_a_clear_error_that_points_to_repair(tmp_path):
    mcap = flushed_bag(tmp_path / "bag", "zstd")
    data = bytearray(mcap.read_bytes())
    _, end = chunk_spans(mcap)[2]
    data[end - 40:end - 20] = bytes(20)
    mcap.write_bytes(bytes(data))
    with pytest.raises(BagError, match=r"bag.*corrupt.*crl bag repair"):
        recovered(tmp_path / "bag")


def _crl(*args):
    return subprocess.run([sys.executable, "-m", "crl_ros.cli", *args], capture_output=True, text=True, cwd=REPO,
                          timeout=120)


def test_repair_writes_an_indexed_copy_and_never_touches_the_input(tmp_path):
    mcap = flushed_bag(tmp_path / "bag")
    messages, _ = intact_messages(mcap)
    data = mcap.read_bytes()
    cut_at = chunk_spans(mcap)[5][0] + 200  # inside the 6th chunk
    killed = tmp_path / "killed"
    killed.mkdir()
    (killed / "killed.mcap").write_bytes(data[:cut_at])
    before = hashlib.sha256((killed / "killed.mcap").read_bytes()).hexdigest()

    result = _crl("bag", "repair", str(killed), str(tmp_path / "fixed"))
    assert result.returncode == 0, result.stderr
    assert "recovered" in result.stderr and "wrote" in result.stdout
    assert sorted(p.name for p in killed.iterdir()) == ["killed.mcap"]
    assert hashlib.sha256((killed / "killed.mcap").read_bytes()).hexdigest() == before
    with Reader(tmp_path / "fixed") as r:  # the ordinary reader, through metadata.yaml
        copy = [(c.topic, t, bytes(raw)) for c, t, raw in r.messages()]
    got, _ = recovered(killed)
    assert copy == got and 5 * 7 <= len(copy) < len(messages) and copy == messages[:len(copy)]
    with BagReader(tmp_path / "fixed") as bag:
        assert bag.recovered is None and not bag.notes  # read as an ordinary, indexed bag

    for args, words in [((str(killed), str(tmp_path / "fixed")), "already exists"),
                        ((str(killed), str(killed / "inside")), "inside the bag"),
                        ((str(tmp_path / "nope"), str(tmp_path / "x")), "does not exist"),
                        ((str(tmp_path / "fixed" / "metadata.yaml"), str(tmp_path / "y")), "not an .mcap file")]:
        result = _crl("bag", "repair", *args)
        assert result.returncode == 1 and words in result.stderr and "Traceback" not in result.stderr, result.stderr
    (killed / "killed.mcap").write_bytes(data[:12])
    result = _crl("bag", "repair", str(killed), str(tmp_path / "z"))
    assert result.returncode == 1 and "killed.mcap" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "z").exists()


KILLED_WRITER = """
import sys, time
from crl_ros.bags.writer import BagWriter
sys.path.insert(0, {test_dir!r})
from test_bags import write_episode
import test_bags

class Killable(BagWriter):  # write_episode's messages, flushed as recorder_node does
    def __exit__(self, *exc):
        self.flush()
        print("flushed", self.message_count, flush=True)
        time.sleep(600)  # the test kills it here: the bag is never closed

test_bags.BagWriter = Killable
write_episode({path!r}, 2.0, storage={storage!r})
"""


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_a_writer_killed_with_sigkill_keeps_everything_flushed_and_converts(tmp_path, storage):
    """The writer recorder_node uses, killed hard after a flush: no metadata.yaml (and no mcap
    summary); `crl convert` converts what was written (with a warning for the mcap read back
    record by record) exactly like the intact recording."""
    path = tmp_path / "killed"
    code = KILLED_WRITER.format(test_dir=str(Path(__file__).parent), path=str(path), storage=storage)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        line = proc.stdout.readline()
        assert line.startswith("flushed"), line
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert "metadata.yaml" not in [p.name for p in path.iterdir()]
    bag_file = next(path.glob("*.mcap" if storage == "mcap" else "*.db3"))
    ref = write_episode(tmp_path / "ref", 2.0, storage=storage)
    with BagReader(bag_file) as bag, BagReader(ref) as intact:
        assert bag.topics() == intact.topics()
        assert sum(info.count for info in bag.topics().values()) == int(line.split()[1])

    out = tmp_path / "data.h5"
    result = _crl("convert", str(bag_file), "--out", str(out), "--size", "8", "8", "--crop", "0", "0", "0", "0",
                  "--quiet")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    if storage == "mcap":
        assert "warning" in result.stderr and "recovered" in result.stderr
    from crl_ros.learning import dataset as ds
    data = ds.load(out)
    np.testing.assert_array_equal(data.images, convert_bag(ref, ConvertOptions(**OPTS)).images)


def _record(op: int, body: bytes) -> bytes:
    return struct.pack("<BQ", op, len(body)) + body


def _string(text: str) -> bytes:
    return struct.pack("<I", len(text)) + text.encode()


def test_messages_outside_chunks_are_recovered_too(tmp_path):
    """mcap allows messages outside chunks (writers with chunking off): read them the same way."""
    from crl_ros.bags.writer import typestore
    msgtype = "std_msgs/msg/Float32MultiArray"
    payloads = [typestore().serialize_cdr(make_action([0.1 * i, 0, 0, 0, 0, 0, 1]), msgtype) for i in range(4)]
    data = b"\x89MCAP0\r\n" + _record(0x01, _string("ros2") + _string("handmade"))
    data += _record(0x03, struct.pack("<H", 1) + _string(msgtype) + _string("ros2msg") + _string(""))
    data += _record(0x04, struct.pack("<HH", 7, 1) + _string("action") + _string("cdr") + struct.pack("<I", 0))
    ends = []
    for i, raw in enumerate(payloads):
        data += _record(0x05, struct.pack("<HIQQ", 7, i, T0 + i, T0 + i) + bytes(raw))
        ends.append(len(data))
    path = tmp_path / "loose.mcap"
    path.write_bytes(data)
    with BagReader(path) as bag:
        assert [(t, raw) for _, t, raw, _ in bag.raw_messages(["action"])] == \
            [(T0 + i, bytes(raw)) for i, raw in enumerate(payloads)]
    path.write_bytes(data[:ends[2] - 5])  # cut inside the third
    with BagReader(path) as bag:
        assert [t for _, t, _, _ in bag.raw_messages(["action"])] == [T0, T0 + 1]
