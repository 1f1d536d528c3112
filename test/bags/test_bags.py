"""Bag writing/reading (mcap, sqlite3, zstd) and bag -> dataset conversion: alignment of
30 Hz camera / 100 Hz joints / 5 Hz actions, FK-derived actions, and clear errors on bad
bags with no half-written dataset left behind."""
from pathlib import Path

import numpy as np
import pytest

from crl_ros.bags.convert import ConvertOptions, convert_bag, convert_bags
from crl_ros.bags.reader import BagError, BagReader
from crl_ros.bags.writer import BagWriter, make_action, make_compressed_image, make_image, make_joint_state
from crl_ros.learning import dataset as ds
from crl_ros.robot import actions, camera, kinematics

SEC = 1_000_000_000
T0 = 1_700_000_000 * SEC          # bag clock origin
CAM_PERIOD = SEC // 30
JOINT_PERIOD = SEC // 100
ACT_PERIOD = SEC // 5
OPTS = dict(crop=None, size=(8, 8), progress=False)


def frame(i: int) -> np.ndarray:
    """A 32x24 frame whose pixels all equal i % 256: the dataset shows which frame was used."""
    return np.full((24, 32, 3), i % 256, np.uint8)


def q_of(t_s: float) -> np.ndarray:
    """A smooth joint trajectory, linear in time (interpolation at any instant is exact)."""
    return np.array([0.3 * t_s, -0.2 + 0.1 * t_s, 0.3 - 0.1 * t_s, 0.05 * t_s, 0.4, -0.1 * t_s])


def write_episode(path, seconds=2.0, storage="mcap", compression="none", actions_topic=True,
                  image_encoding="rgb8", compressed=False, image_mutator=None, skip_images=None):
    n_img = int(seconds * 30)
    with BagWriter(path, storage, compression) as w:
        msgs = []
        for i in range(n_img):
            t = T0 + i * CAM_PERIOD
            if skip_images and skip_images(i):
                continue
            stamp = image_mutator(i, t) if image_mutator else t
            if compressed:
                msg = make_compressed_image(camera.encode_compressed(frame(i), "png"), stamp, "png")
                msgs.append((t, "image_raw/compressed", msg))
            else:
                msgs.append((t, "image_raw", make_image(frame(i), stamp, encoding=image_encoding)))
        for j in range(int(seconds * 100)):
            t = T0 + j * JOINT_PERIOD
            q = q_of((t - T0) / SEC)
            finger = 0.015 + 0.022 * (1 - (t - T0) / SEC / seconds)
            msgs.append((t, "joint_states", make_joint_state(kinematics.JOINT_STATE_NAMES, [*q, 0.0, finger, -finger], t)))
        if actions_topic:
            for k in range(int(seconds * 5)):
                t = T0 + ACT_PERIOD // 2 + k * ACT_PERIOD
                msgs.append((t, "action", make_action([0.001 * k, 0, 0, 0, 0, 0, 1.0], actions.ACTION_NAMES)))
        for t, topic, msg in sorted(msgs, key=lambda m: m[0]):
            w.write(topic, t, msg)
    return Path(path)


@pytest.mark.parametrize("storage,compression", [("mcap", "none"), ("mcap", "zstd"), ("sqlite3", "none"), ("sqlite3", "zstd")])
def test_write_read_round_trip(tmp_path, storage, compression):
    bag = write_episode(tmp_path / "ep", seconds=0.5, storage=storage, compression=compression)
    with BagReader(bag) as r:
        topics = r.topics()
        assert topics["image_raw"].count == 15 and topics["joint_states"].count == 50
        assert topics["image_raw"].msgtype == "sensor_msgs/msg/Image"
        images = [m for topic, t, m in r.messages(["image_raw"])]
    assert (camera.decode_raw(images[7].data, 32, 24, 96, "rgb8") == 7).all()


def test_actions_from_topic_align_with_the_newest_earlier_frame(tmp_path):
    bag = write_episode(tmp_path / "ep", seconds=2.0)
    ep = convert_bag(bag, ConvertOptions(**OPTS))
    act_times = [ACT_PERIOD // 2 + k * ACT_PERIOD for k in range(10)]
    img_times = [i * CAM_PERIOD for i in range(60)]
    expected_frames = [max(i for i, ti in enumerate(img_times) if ti <= ta) for ta in act_times]
    assert ep.action_source == "topic"
    assert [int(im[0, 0, 0]) for im in ep.images] == expected_frames
    np.testing.assert_allclose(ep.actions[:, 0], [0.001 * k for k in range(10)], atol=1e-7)
    # proprio: joints interpolated at the action times
    np.testing.assert_allclose(ep.proprio[3, :6], q_of(act_times[3] / SEC), atol=1e-9)


def test_actions_derived_from_joint_states_through_fk(tmp_path):
    bag = write_episode(tmp_path / "ep", seconds=2.0, actions_topic=False)
    ep = convert_bag(bag, ConvertOptions(**OPTS))
    assert ep.action_source == "fk"
    steps = len(ep.images)
    assert steps == int((59 * CAM_PERIOD) // ACT_PERIOD) + 1
    assert [int(im[0, 0, 0]) for im in ep.images] == [(k * ACT_PERIOD) // CAM_PERIOD for k in range(steps)]
    for k in range(steps - 1):
        pose_k = kinematics.fk(q_of(k * 0.2))
        pose_next = kinematics.fk(q_of((k + 1) * 0.2))
        reached = actions.compose_ee_delta(pose_k, ep.actions[k].astype(np.float64))
        np.testing.assert_allclose(reached, pose_next, atol=1e-5)
    # gripper: absolute opening of the next step, closing over the episode
    assert ep.actions[0, 6] > ep.actions[steps - 2, 6]
    assert np.all(ep.actions[-1] == 0)


def test_encodings_and_compressed_images_give_identical_datasets(tmp_path):
    ref = convert_bag(write_episode(tmp_path / "rgb", 1.0), ConvertOptions(**OPTS)).images
    for enc in ["bgr8", "rgba8", "mono8"]:
        got = convert_bag(write_episode(tmp_path / enc, 1.0, image_encoding=enc), ConvertOptions(**OPTS)).images
        np.testing.assert_array_equal(got, ref)
    got = convert_bag(write_episode(tmp_path / "png", 1.0, compressed=True),
                      ConvertOptions(image_topic="image_raw/compressed", **OPTS)).images
    np.testing.assert_array_equal(got, ref)


def test_convert_bags_writes_one_episode_per_bag(tmp_path):
    bags = [write_episode(tmp_path / f"ep{i}", 1.0, storage=s, compression=c)
            for i, (s, c) in enumerate([("mcap", "zstd"), ("sqlite3", "none")])]
    out = convert_bags(bags, tmp_path / "data.h5", ConvertOptions(**OPTS))
    data = ds.load(out)
    assert data.num_episodes == 2 and list(data.episode_ends) == [5, 10]
    assert data.metadata.action_names == actions.ACTION_NAMES
    assert data.metadata.image_shape == (8, 8, 3)
    assert data.proprio.shape == (10, 7)


def _assert_no_dataset(tmp_path, out):
    assert not out.exists()
    assert not list(out.parent.glob(f".{out.name}*")), "temporary dataset file left behind"


def test_truncated_bag_is_a_clear_error_and_nothing_is_written(tmp_path):
    # cut inside the mcap header: nothing to recover (cut later, what is complete is converted:
    # test_recover.py)
    good = write_episode(tmp_path / "good", 1.0)
    bad = write_episode(tmp_path / "bad", 1.0)
    mcap = next(bad.glob("*.mcap"))
    mcap.write_bytes(mcap.read_bytes()[:12])
    out = tmp_path / "data.h5"
    with pytest.raises(BagError, match=r"bad.*(corrupt|truncated)"):
        convert_bags([good, bad], out, ConvertOptions(**OPTS))
    _assert_no_dataset(tmp_path, out)


def test_missing_topic_names_bag_and_topic(tmp_path):
    bag = write_episode(tmp_path / "ep", 1.0)
    out = tmp_path / "data.h5"
    with pytest.raises(BagError, match=r"ep.*camera/image_color.*missing"):
        convert_bags([bag], out, ConvertOptions(image_topic="camera/image_color", **OPTS))
    with pytest.raises(BagError, match=r"action topic 'teleop_action'.*missing"):
        convert_bags([bag], out, ConvertOptions(action_topic="teleop_action", **OPTS))
    _assert_no_dataset(tmp_path, out)


def test_out_of_order_stamps_name_topic_and_time(tmp_path):
    def backwards(i, t):
        return t - 5 * CAM_PERIOD if i == 20 else t
    bag = write_episode(tmp_path / "ep", 1.5, image_mutator=backwards)
    out = tmp_path / "data.h5"
    with pytest.raises(BagError, match=r"ep.*image_raw.*backwards at t=0\.6"):
        convert_bags([bag], out, ConvertOptions(**OPTS))
    _assert_no_dataset(tmp_path, out)


def test_gap_in_the_camera_stream_is_an_error_with_the_error_policy(tmp_path):
    bag = write_episode(tmp_path / "ep", 3.0, skip_images=lambda i: 30 <= i < 60)
    out = tmp_path / "data.h5"
    with pytest.raises(BagError, match=r"ep.*image_raw.*gap of 1\.0\d*s after t=0\.96.*--gap-policy split"):
        convert_bags([bag], out, ConvertOptions(gap_policy="error", max_gap_s=0.5, **OPTS))
    _assert_no_dataset(tmp_path, out)


def test_missing_bag_and_existing_output(tmp_path):
    with pytest.raises(BagError, match="does not exist"):
        convert_bags([tmp_path / "nope"], tmp_path / "d.h5", ConvertOptions(**OPTS))
    bag = write_episode(tmp_path / "ep", 1.0)
    (tmp_path / "d.h5").write_bytes(b"precious")
    with pytest.raises(FileExistsError):
        convert_bags([bag], tmp_path / "d.h5", ConvertOptions(**OPTS))
    assert (tmp_path / "d.h5").read_bytes() == b"precious"


def test_file_compressed_sqlite3_bag_from_ros2_bag_record_style(tmp_path):
    """`ros2 bag record --compression-mode file --compression-format zstd` bags: the whole
    .db3 is zstd-compressed; the reader decompresses it."""
    from rosbags.rosbag2 import CompressionFormat, CompressionMode, StoragePlugin, Writer
    from crl_ros.bags.writer import typestore
    store = typestore()
    path = tmp_path / "filecomp"
    writer = Writer(path, version=9, storage_plugin=StoragePlugin.SQLITE3)
    writer.set_compression(CompressionMode.FILE, CompressionFormat.ZSTD)
    writer.open()
    image = writer.add_connection("/image_raw", "sensor_msgs/msg/Image", typestore=store)
    action = writer.add_connection("/action", "std_msgs/msg/Float32MultiArray", typestore=store)
    for i in range(30):
        t = T0 + i * CAM_PERIOD
        writer.write(image, t, store.serialize_cdr(make_image(frame(i), t), "sensor_msgs/msg/Image"))
        if i % 6 == 3:
            writer.write(action, t + 1, store.serialize_cdr(make_action([0.0] * 6 + [1.0]), "std_msgs/msg/Float32MultiArray"))
    writer.close()
    assert list(path.glob("*.zstd")), "expected a file-compressed bag"
    ep = convert_bag(path, ConvertOptions(**OPTS))
    assert len(ep.images) == 5 and [int(im[0, 0, 0]) for im in ep.images] == [3, 9, 15, 21, 27]
    assert ep.proprio is None  # no joint states recorded


def test_a_default_crop_is_skipped_only_for_frames_already_at_the_dataset_size(tmp_path):
    bag = write_episode(tmp_path / "ep", seconds=1.0)  # 32x24 frames
    crop = (4, 0, 28, 24)  # the centre 24x24 square
    # frames larger than the dataset size: the default crop applies
    ep = convert_bag(bag, ConvertOptions(crop=crop, size=(8, 8), crop_is_default=True, progress=False))
    assert ep.cropped and ep.frame_size == (24, 32)
    # frames at or below the dataset size are observations already: only resized
    ep = convert_bag(bag, ConvertOptions(crop=crop, size=(24, 32), crop_is_default=True, progress=False))
    assert not ep.cropped and ep.images.shape[1:] == (24, 32, 3)
    # a crop the user asked for is applied even then
    ep = convert_bag(bag, ConvertOptions(crop=crop, size=(24, 32), progress=False))
    assert ep.cropped
