"""Bags in the shapes real WidowX setups record, written with `rosbags` (issue 10): RealSense
colour + depth (raw and compressed), two cameras, joint_states split into arm and gripper
messages, no gripper joints, a folder whose metadata.yaml is gone, camera gaps. Each
converts right or stops with a message naming bag, topic and what to pass."""
import io
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from crl_ros.bags import cdr
from crl_ros.bags.convert import ConvertOptions, convert_bag, convert_bag_pieces, convert_bags
from crl_ros.bags.reader import BagError
from crl_ros.bags.writer import (BagWriter, make_action, make_compressed_image, make_image, make_joint_state,
                                 typestore)
from crl_ros.learning import dataset as ds
from crl_ros.robot import actions, camera, kinematics

SEC = 1_000_000_000
T0 = 1_700_000_000 * SEC
OPTS = dict(crop=None, size=(8, 8), progress=False)
COLOR = "/camera/camera/color/image_raw"
DEPTH = "/camera/camera/aligned_depth_to_color/image_raw"


def colour_frame(i: int) -> np.ndarray:
    """64x48 frame, every pixel (i, 100, 200): a depth map converted as colour would not match."""
    img = np.zeros((48, 64, 3), np.uint8)
    img[..., 0], img[..., 1], img[..., 2] = i % 256, 100, 200
    return img


def depth_image_msg(t: int):
    depth = (np.arange(48 * 64, dtype=np.uint16).reshape(48, 64) * 7 + 500)
    return _types()["sensor_msgs/msg/Image"](
        header=make_image(colour_frame(0), t).header, height=48, width=64, encoding="16UC1", is_bigendian=0,
        step=128, data=np.frombuffer(depth.tobytes(), np.uint8))


def depth_png(t: int, fmt: str = "png"):
    depth = (np.arange(48 * 64, dtype=np.uint16).reshape(48, 64) * 7 + 500)
    out = io.BytesIO()
    Image.fromarray(depth).save(out, format="PNG")
    return make_compressed_image(out.getvalue(), t, fmt)


def _types():
    return typestore().types


def q_of(t_s: float) -> np.ndarray:
    return np.array([0.3 * t_s, -0.2 + 0.1 * t_s, 0.3 - 0.1 * t_s, 0.05 * t_s, 0.4, -0.1 * t_s])


def finger_of(t_s: float, seconds: float) -> float:
    return 0.015 + 0.022 * (1 - t_s / seconds)


def write_bag(path, seconds=2.0, cameras=(("image_raw", "raw"),), joints="one", actions_topic=False,
              camera_gaps=(), storage="mcap", joint_topic="joint_states"):
    """cameras: (topic, kind) with kind raw | jpeg | depth_raw | depth_png;
    joints: one | split | no_gripper | none; camera_gaps: [(t0_s, t1_s)] with no frames."""
    msgs = []
    for i in range(int(seconds * 30)):
        t = T0 + i * SEC // 30
        if any(a <= (t - T0) / SEC < b for a, b in camera_gaps):
            continue
        for topic, kind in cameras:
            if kind == "raw":
                msgs.append((t, topic, make_image(colour_frame(i), t)))
            elif kind == "jpeg":
                msgs.append((t, topic, make_compressed_image(camera.encode_compressed(colour_frame(i), "jpeg", 95), t)))
            elif kind == "depth_raw":
                msgs.append((t, topic, depth_image_msg(t)))
            elif kind == "depth_png":
                msgs.append((t, topic, depth_png(t)))
    for j in range(int(seconds * 100)):
        t = T0 + j * SEC // 100
        ts = (t - T0) / SEC
        q, f = q_of(ts), finger_of(ts, seconds)
        if joints == "one":
            msgs.append((t, joint_topic, make_joint_state(kinematics.JOINT_STATE_NAMES, [*q, 0.0, f, -f], t)))
        elif joints == "split":
            msgs.append((t, joint_topic, make_joint_state(kinematics.JOINT_NAMES, q, t)))
            msgs.append((t, joint_topic, make_joint_state(kinematics.GRIPPER_JOINT_NAMES, [0.0, f, -f], t)))
        elif joints == "no_gripper":
            msgs.append((t, joint_topic, make_joint_state(kinematics.JOINT_NAMES, q, t)))
    if actions_topic:
        for k in range(int(seconds * 5)):
            t = T0 + SEC // 10 + k * SEC // 5
            msgs.append((t, "action", make_action([0.001 * k, 0, 0, 0, 0, 0, 1.0], actions.ACTION_NAMES)))
    with BagWriter(path, storage) as w:
        for t, topic, msg in sorted(msgs, key=lambda m: m[0]):
            w.write(topic, t, msg)
    return path


def red_values(ep) -> list[int]:
    return [int(im[0, 0, 0]) for im in ep.images]


# --- camera topic choice -----------------------------------------------------------------

def test_realsense_raw_colour_and_depth_picks_colour_and_records_it(tmp_path):
    bag = write_bag(tmp_path / "rs", cameras=((COLOR, "raw"), (DEPTH, "depth_raw")))
    ep = convert_bag(bag, ConvertOptions(**OPTS))
    assert ep.image_topic == COLOR
    assert all((im[..., 1:] == (100, 200)).all() for im in ep.images)
    assert any(DEPTH in n and "depth" in n for n in ep.notes)
    out = convert_bags([bag], tmp_path / "d.h5", ConvertOptions(**OPTS))
    prov = ds.load(out).metadata.provenance
    assert prov["image_topic"] == COLOR and prov["options"]["max_gap_s"] == 1.0
    assert prov["options"]["gap_policy"] == "split"


def test_realsense_compressed_only_never_converts_depth_into_white_images(tmp_path):
    bag = write_bag(tmp_path / "rs", cameras=((COLOR + "/compressed", "jpeg"), (DEPTH + "/compressed", "depth_png")))
    ep = convert_bag(bag, ConvertOptions(**OPTS))
    assert ep.image_topic == COLOR + "/compressed"
    truth = np.array([colour_frame(0)[0, 0]], np.float32)
    assert np.abs(ep.images[:, :, :, 1:].astype(np.float32) - truth[:, 1:]).mean() < 3  # JPEG error, not 235
    # asked for explicitly, the 16-bit PNG depth map is refused with a clear message
    with pytest.raises(BagError, match=r"rs.*aligned_depth_to_color.*t=0\.000s.*depth map"):
        convert_bag(bag, ConvertOptions(image_topic=DEPTH + "/compressed", **OPTS))


def test_a_depth_topic_with_a_neutral_name_is_recognised_by_its_pixels(tmp_path):
    bag = write_bag(tmp_path / "b", cameras=(("/cam/a/compressed", "depth_png"), ("/cam/b", "raw")))
    assert convert_bag(bag, ConvertOptions(**OPTS)).image_topic == "/cam/b"
    bag = write_bag(tmp_path / "c", cameras=(("/cam/a", "depth_raw"), ("/cam/b/compressed", "jpeg")))
    assert convert_bag(bag, ConvertOptions(**OPTS)).image_topic == "/cam/b/compressed"


def test_only_depth_is_an_error_naming_the_topics(tmp_path):
    bag = write_bag(tmp_path / "d", cameras=((DEPTH, "depth_raw"),))
    with pytest.raises(BagError, match=r"no colour camera topic.*aligned_depth_to_color.*--image-topic"):
        convert_bag(bag, ConvertOptions(**OPTS))


def test_two_colour_cameras_stop_with_a_list_and_the_flag(tmp_path):
    bag = write_bag(tmp_path / "two", cameras=(("/cam_front/color", "raw"), ("/cam_wrist/color", "jpeg")))
    out = tmp_path / "d.h5"
    with pytest.raises(BagError, match=r"two.*2 colour cameras.*/cam_front/color.*/cam_wrist/color.*--image-topic"):
        convert_bags([bag], out, ConvertOptions(**OPTS))
    assert not out.exists()
    convert_bags([bag], out, ConvertOptions(image_topic="/cam_wrist/color", **OPTS))
    assert ds.load(out).metadata.provenance["image_topic"] == "/cam_wrist/color"


def test_a_raw_topic_and_its_compressed_twin_are_one_camera(tmp_path):
    bag = write_bag(tmp_path / "twin", cameras=(("/usb_cam/image_raw", "raw"), ("/usb_cam/image_raw/compressed", "jpeg")))
    assert convert_bag(bag, ConvertOptions(**OPTS)).image_topic == "/usb_cam/image_raw"


# --- joint states -------------------------------------------------------------------------

def test_joint_states_split_into_arm_and_gripper_messages_convert_like_one(tmp_path):
    one = convert_bag(write_bag(tmp_path / "one"), ConvertOptions(**OPTS))
    split = convert_bag(write_bag(tmp_path / "split", joints="split"), ConvertOptions(**OPTS))
    assert split.action_source == "fk"
    np.testing.assert_allclose(split.actions, one.actions, atol=1e-6)
    np.testing.assert_allclose(split.proprio, one.proprio, atol=1e-6)
    assert split.actions[0, 6] > split.actions[-2, 6]  # the gripper closes over the episode
    np.testing.assert_array_equal(split.images, one.images)


def test_no_gripper_joints_is_an_error_unless_asked_for(tmp_path):
    bag = write_bag(tmp_path / "nogrip", joints="no_gripper", joint_topic="/wx250s/joint_states")
    with pytest.raises(BagError, match=r"nogrip.*/wx250s/joint_states.*no gripper joint.*--no-gripper"):
        convert_bag(bag, ConvertOptions(**OPTS))
    out = convert_bags([bag], tmp_path / "d.h5", ConvertOptions(no_gripper=True, **OPTS))
    data = ds.load(out)
    assert np.all(data.actions[data.episode_ends[0] - 2 - 5:data.episode_ends[0] - 1, 6] == 1.0)
    assert np.all(data.proprio[:, 6] == 1.0)
    assert "none" in data.metadata.provenance["gripper"]
    # with an action topic the gripper comes from the actions; only proprio needs the joints
    bag = write_bag(tmp_path / "acts", joints="no_gripper", actions_topic=True)
    with pytest.raises(BagError, match="--no-proprio"):
        convert_bag(bag, ConvertOptions(**OPTS))
    ep = convert_bag(bag, ConvertOptions(store_proprio=False, **OPTS))
    assert ep.proprio is None and ep.actions[0, 6] == 1.0


def test_missing_arm_joint_names_the_joint(tmp_path):
    bag = tmp_path / "arm"
    with BagWriter(bag) as w:
        for i in range(30):
            t = T0 + i * SEC // 30
            w.write("image_raw", t, make_image(colour_frame(i), t))
            w.write("joint_states", t, make_joint_state(["waist", "gripper", "left_finger"], [0, 0, 0.02], t))
    with pytest.raises(BagError, match=r"arm.*joint_states lacks joints \['shoulder'"):
        convert_bag(bag, ConvertOptions(**OPTS))


# --- bag folders ---------------------------------------------------------------------------

def test_a_folder_whose_metadata_yaml_is_gone_converts_from_its_mcap(tmp_path):
    bag = write_bag(tmp_path / "killed", joints="one")
    ref = convert_bag(bag, ConvertOptions(**OPTS))
    (bag / "metadata.yaml").unlink()
    ep = convert_bag(bag, ConvertOptions(**OPTS))
    np.testing.assert_array_equal(ep.images, ref.images)
    np.testing.assert_allclose(ep.actions, ref.actions)
    assert any("no metadata.yaml" in n and ".mcap" in n for n in ep.notes)


def test_folders_that_are_not_bags_say_what_was_expected(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BagError, match=r"empty is not a bag.*\.mcap or a \.db3.*bags/\*/"):
        convert_bag(empty, ConvertOptions(**OPTS))
    parent = tmp_path / "bags"
    write_bag(parent / "ep1")
    write_bag(parent / "ep2")
    with pytest.raises(BagError, match=r"folder of 2 bag\(s\) \(ep1, ep2\).*bags/\*/"):
        convert_bag(parent, ConvertOptions(**OPTS))
    other = tmp_path / "notes.txt"
    other.write_text("hello")
    with pytest.raises(BagError, match=r"notes\.txt is not a bag"):
        convert_bag(other, ConvertOptions(**OPTS))
    db3 = write_bag(tmp_path / "old", storage="sqlite3")
    (db3 / "metadata.yaml").unlink()
    with pytest.raises(BagError, match=r"no metadata.yaml.*\.db3.*passed directly|reindex"):
        convert_bag(db3, ConvertOptions(**OPTS))


# --- gaps ------------------------------------------------------------------------------------

def test_a_camera_gap_splits_the_episode_and_the_summary_reports_it(tmp_path):
    bag = write_bag(tmp_path / "gap", seconds=6.0, camera_gaps=[(2.0, 3.5)])
    pieces = convert_bag_pieces(bag, ConvertOptions(**OPTS))
    assert len(pieces) == 2
    # every step's frame is no older than one camera period
    for p in pieces:
        assert p.gaps["image_raw"]["over_max"] == 1 and p.gaps["image_raw"]["longest_s"] == pytest.approx(1.533, abs=0.01)
    first_end = red_values(pieces[0])[-1]
    second_start = red_values(pieces[1])[0]
    assert first_end <= 59 and second_start >= 105
    logs = []
    out = convert_bags([bag], tmp_path / "d.h5", ConvertOptions(**OPTS), log=logs.append)
    data = ds.load(out)
    assert data.num_episodes == 2
    summary = [m for m in logs if m.startswith("gaps in 1 bag(s) -> 2 episode(s)")]
    assert summary and "image_raw: longest gap 1.533s, 1 over 1.0s" in summary[0]
    assert data.metadata.provenance["per_bag"][str(bag)]["episodes"] == 2


def test_gaps_below_max_gap_convert_whole_like_the_recorder_on_a_busy_machine(tmp_path):
    # what record_demos.launch.py wrote on 2 busy cores: camera gaps of 0.41-0.79 s
    bag = write_bag(tmp_path / "busy", seconds=5.0, camera_gaps=[(1.0, 1.4), (2.5, 3.27)], actions_topic=True)
    ep = convert_bag(bag, ConvertOptions(**OPTS))
    assert len(ep.images) == 25 and ep.gaps["image_raw"]["over_max"] == 0
    assert ep.gaps["image_raw"]["longest_s"] == pytest.approx(0.8, abs=0.04)


def test_pieces_shorter_than_the_minimum_are_dropped_and_none_left_is_an_error(tmp_path):
    bag = write_bag(tmp_path / "short", seconds=6.0, camera_gaps=[(1.2, 2.5), (3.0, 4.5)])
    pieces = convert_bag_pieces(bag, ConvertOptions(min_fragment_s=1.0, **OPTS))
    # [0, 1.2) is 6 steps, [2.5, 3.0) 3 steps (dropped), [4.5, 6) 8 steps
    assert [len(p.images) for p in pieces] == [6, 7]
    assert any("1 piece(s) shorter than 1.0s dropped" in n for n in pieces[0].notes)
    with pytest.raises(BagError, match=r"short.*no piece of at least 5.0s.*image_raw"):
        convert_bag_pieces(bag, ConvertOptions(min_fragment_s=5.0, **OPTS))


def test_joint_state_gap_splits_too(tmp_path):
    bag = tmp_path / "jgap"
    with BagWriter(bag) as w:
        msgs = []
        for i in range(150):
            t = T0 + i * SEC // 30
            msgs.append((t, "image_raw", make_image(colour_frame(i), t)))
        for j in range(500):
            t = T0 + j * SEC // 100
            if 200 <= j < 330:
                continue
            q = q_of(j / 100)
            msgs.append((t, "joint_states", make_joint_state(kinematics.JOINT_STATE_NAMES, [*q, 0, 0.03, -0.03], t)))
        for t, topic, msg in sorted(msgs, key=lambda m: m[0]):
            w.write(topic, t, msg)
    pieces = convert_bag_pieces(bag, ConvertOptions(**OPTS))
    assert len(pieces) == 2 and pieces[0].gaps["joint_states"]["over_max"] == 1
    with pytest.raises(BagError, match=r"jgap: topic joint_states: gap of 1\.3\d*s after t=1\.99"):
        convert_bag(bag, ConvertOptions(gap_policy="error", **OPTS))


# --- decoding -------------------------------------------------------------------------------

def test_scaled_jpeg_decoding_matches_the_full_decode_within_jpeg_error():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:480, :640]
    img = np.stack([(xx * 0.4) % 256, (yy * 0.5) % 256, ((xx + yy) * 0.2) % 256], -1).astype(np.uint8)
    img = np.clip(img.astype(int) + rng.integers(-8, 9, img.shape), 0, 255).astype(np.uint8)
    jpeg = camera.encode_compressed(img, "jpeg", 90)
    crop, size = (80, 0, 560, 480), (48, 48)
    assert camera.jpeg_scale(640, 480, crop, size) == 4
    exact = camera.preprocess_image(camera.decode_compressed(jpeg), crop, size)
    fast, frame_size = camera.preprocess_compressed(jpeg, "jpeg", crop, size, fast=True)
    slow, _ = camera.preprocess_compressed(jpeg, "jpeg", crop, size, fast=False)
    assert frame_size == (480, 640)
    np.testing.assert_array_equal(slow, exact)
    err = np.abs(fast.astype(int) - exact.astype(int))
    assert err.mean() < 1.0 and err.max() <= 8, (err.mean(), err.max())
    truth = camera.preprocess_image(img, crop, size)
    assert np.abs(fast.astype(int) - truth.astype(int)).mean() < 2.0


def test_cdr_field_readers_agree_with_rosbags():
    store = typestore()
    rng = np.random.default_rng(1)
    for n in (0, 1, 3, 9):
        names = ["".join(rng.choice(list("abcxyz_"), int(rng.integers(1, 12)))) for _ in range(n)]
        msg = make_joint_state(names, rng.normal(size=n), int(rng.integers(0, 2**50)))
        f = cdr.joint_state(store.serialize_cdr(msg, msg.__msgtype__))
        assert list(f.names) == names and np.array_equal(f.position, msg.position)
        assert f.stamp_ns == msg.header.stamp.sec * SEC + msg.header.stamp.nanosec
    for enc in ("rgb8", "bgr8", "mono8", "rgba8"):
        for hw in ((3, 5), (4, 4), (7, 1)):
            msg = make_image(rng.integers(0, 256, (*hw, 3)).astype(np.uint8), 5, frame_id="f" * int(rng.integers(0, 9)),
                             encoding=enc)
            f = cdr.image(store.serialize_cdr(msg, msg.__msgtype__))
            assert (f.height, f.width, f.encoding, f.step) == (msg.height, msg.width, msg.encoding, msg.step)
            assert bytes(f.data) == msg.data.tobytes()
    msg = make_compressed_image(b"\x01\x02\x03", 9, "jpeg", frame_id="cam")
    f = cdr.compressed_image(store.serialize_cdr(msg, msg.__msgtype__))
    assert f.format == "jpeg" and bytes(f.data) == b"\x01\x02\x03"
    with pytest.raises(cdr.CdrLayoutError):
        cdr.joint_state(b"\x00\x00\x00\x00" + b"\xff" * 20)


def test_crl_convert_cli_passes_the_new_options(tmp_path):
    bag = write_bag(tmp_path / "nogrip", seconds=6.0, joints="no_gripper", camera_gaps=[(2.0, 3.5)])
    out = tmp_path / "d.h5"
    cmd = [sys.executable, "-m", "crl_ros.cli", "convert", str(bag), "--out", str(out), "--crop", "0", "0", "0", "0",
           "--size", "8", "8", "--quiet"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 1 and "--no-gripper" in r.stderr and "no dataset was written" in r.stderr
    r = subprocess.run(cmd + ["--no-gripper", "--gap-policy", "error"], capture_output=True, text=True)
    assert r.returncode == 1 and "gap of 1.5" in r.stderr
    r = subprocess.run(cmd + ["--no-gripper", "--min-fragment", "0.5"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "2 episodes" in r.stdout and "gaps in 1 bag(s) -> 2 episode(s)" in r.stderr
    assert ds.load(out).metadata.provenance["options"]["no_gripper"] is True


# --- indexed mcap reading ---------------------------------------------------------------------

@pytest.mark.parametrize("compression", ["none", "zstd"])
def test_indexed_mcap_reading_gives_the_same_dataset_as_rosbags(tmp_path, monkeypatch, compression):
    from crl_ros.bags.reader import BagReader
    from crl_ros.bags.writer import BagWriter as W
    bag = tmp_path / "ep"
    with W(bag, "mcap", compression) as w:
        for i in range(90):
            t = T0 + i * SEC // 30
            w.write("image_raw", t, make_image(colour_frame(i), t))
            if i % 6 == 2:
                w.write("action", t + 5, make_action([0.001 * i, 0, 0, 0, 0, 0, 1.0], actions.ACTION_NAMES))
            for j in range(3):
                tj = t + j * SEC // 100
                q = q_of((tj - T0) / SEC)
                w.write("joint_states", tj, make_joint_state(kinematics.JOINT_STATE_NAMES, [*q, 0, 0.03, -0.03], tj))
    with BagReader(bag) as r:
        assert r._mcap_index() is not None, "expected the indexed path for a rosbags-written mcap"
        # lazy topics: no image payload is read unless asked
        index = r._mcap_index()
        calls = []
        real = index.payload
        monkeypatch.setattr(index, "payload", lambda c, o, n=None: calls.append(n) or real(c, o, n))
        msgs = list(r.payload_messages(["image_raw", "joint_states"], lazy=["image_raw"]))
        assert len(msgs) == 90 + 270 and calls.count(None) == 270
        topic, t, payload, _ = msgs[0]
        assert topic == "image_raw" and cdr.image(payload.read()).width == 64
    fast = convert_bag(bag, ConvertOptions(**OPTS))
    monkeypatch.setattr(BagReader, "_mcap_index", lambda self: None)
    slow = convert_bag(bag, ConvertOptions(**OPTS))
    np.testing.assert_array_equal(fast.images, slow.images)
    np.testing.assert_array_equal(fast.actions, slow.actions)
    np.testing.assert_array_equal(fast.proprio, slow.proprio)
    assert red_values(fast) == [i for i in range(90) if i % 6 == 2]
