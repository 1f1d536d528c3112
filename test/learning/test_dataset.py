import json

import h5py
import numpy as np
import pytest

from crl_ros.learning.dataset import (Dataset, DatasetError, DatasetMetadata, DatasetWriter,
                                      load, load_many, validate)


def _meta(shape=(8, 8, 3), action_dim=2):
    return DatasetMetadata(image_shape=shape, action_dim=action_dim, action_names=["vx", "vy"],
                           action_low=[-1, -1], action_high=[1, 1], control_rate_hz=5.0,
                           provenance={"source": "test"})


def _episode(rng, t, shape=(8, 8, 3)):
    return rng.integers(0, 256, (t, *shape), dtype=np.uint8), rng.normal(size=(t, 2)).astype(np.float32)


def test_round_trip_keeps_frames_actions_and_boundaries(tmp_path):
    rng = np.random.default_rng(0)
    episodes = [_episode(rng, t) for t in (5, 3, 7)]
    path = tmp_path / "d.h5"
    with DatasetWriter(path, _meta()) as w:
        for images, actions in episodes:
            w.add_episode(images, actions)
    meta = validate(path)
    assert meta.image_shape == (8, 8, 3) and meta.action_names == ["vx", "vy"]
    d = load(path)
    assert d.num_frames == 15 and d.num_episodes == 3
    np.testing.assert_array_equal(d.episode_ends, [5, 8, 15])
    np.testing.assert_array_equal(d.episode_starts, [0, 5, 8])
    for i, (images, actions) in enumerate(episodes):
        got_images, got_actions = d.episode(i)
        np.testing.assert_array_equal(got_images, images)
        # the last frame of an episode has no outgoing action: stored as zero padding
        np.testing.assert_array_equal(got_actions[:-1], actions[:-1])
        assert not got_actions[-1].any()
    np.testing.assert_array_equal(d.transition_mask().nonzero()[0],
                                  [0, 1, 2, 3, 5, 6, 8, 9, 10, 11, 12, 13])
    np.testing.assert_array_equal(d.episode_end_of_frame()[[0, 4, 5, 7, 8, 14]], [5, 5, 8, 8, 15, 15])
    assert json.loads(h5py.File(path)["/"].attrs["provenance"])["source"] == "test"


def test_episode_with_one_action_fewer_than_frames_is_padded(tmp_path):
    rng = np.random.default_rng(1)
    images, actions = _episode(rng, 4)
    with DatasetWriter(tmp_path / "d.h5", _meta()) as w:
        w.add_episode(images, actions[:3])
    np.testing.assert_array_equal(load(tmp_path / "d.h5").actions[:3], actions[:3])


def test_failed_write_leaves_no_file(tmp_path):
    path = tmp_path / "d.h5"
    rng = np.random.default_rng(2)
    with pytest.raises(RuntimeError):
        with DatasetWriter(path, _meta()) as w:
            w.add_episode(*_episode(rng, 4))
            raise RuntimeError("conversion failed half way")
    assert list(tmp_path.iterdir()) == []


def test_existing_dataset_is_never_overwritten_by_default(tmp_path):
    path = tmp_path / "d.h5"
    path.write_bytes(b"precious")
    with pytest.raises(FileExistsError):
        DatasetWriter(path, _meta())
    assert path.read_bytes() == b"precious"


@pytest.mark.parametrize("images,actions,message", [
    (np.zeros((3, 8, 8, 3), np.float32), np.zeros((3, 2)), "uint8"),
    (np.zeros((3, 9, 8, 3), np.uint8), np.zeros((3, 2)), "image shape"),
    (np.zeros((1, 8, 8, 3), np.uint8), np.zeros((1, 2)), "at least 2 frames"),
    (np.zeros((3, 8, 8, 3), np.uint8), np.zeros((3, 5)), "actions must be"),
    (np.zeros((3, 8, 8, 3), np.uint8), np.array([[0, 0], [np.nan, 0], [0, 0]]), "NaN"),
])
def test_writer_rejects_bad_episodes(tmp_path, images, actions, message):
    with DatasetWriter(tmp_path / "d.h5", _meta()) as w:
        with pytest.raises(DatasetError, match=message):
            w.add_episode(images, actions)
        w.add_episode(np.zeros((2, 8, 8, 3), np.uint8), np.zeros((2, 2)))


def test_validator_names_the_problem(tmp_path):
    good = tmp_path / "good.h5"
    with DatasetWriter(good, _meta()) as w:
        w.add_episode(np.zeros((4, 8, 8, 3), np.uint8), np.zeros((4, 2)))

    with pytest.raises(DatasetError, match="does not exist"):
        validate(tmp_path / "missing.h5")

    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(good.read_bytes()[:600])
    with pytest.raises(DatasetError, match="truncated|cannot be read"):
        validate(truncated)

    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(DatasetError, match="not a crl_ros dataset"):
        load(foreign)

    broken = tmp_path / "broken.h5"
    broken.write_bytes(good.read_bytes())
    with h5py.File(broken, "a") as f:
        del f["episode_ends"]
        f["episode_ends"] = np.array([3], np.int64)
    with pytest.raises(DatasetError, match="last episode ends at 3 but there are 4 frames"):
        validate(broken)

    newer = tmp_path / "newer.h5"
    newer.write_bytes(good.read_bytes())
    with h5py.File(newer, "a") as f:
        f.attrs["format_version"] = 99
    with pytest.raises(DatasetError, match="format_version 99"):
        load(newer)


def test_load_many_concatenates_and_offsets_episodes(tmp_path):
    rng = np.random.default_rng(3)
    for name, lengths in (("a.h5", (3, 4)), ("b.h5", (5,))):
        with DatasetWriter(tmp_path / name, _meta()) as w:
            for t in lengths:
                w.add_episode(*_episode(rng, t))
    d = load_many([tmp_path / "a.h5", tmp_path / "b.h5"])
    assert isinstance(d, Dataset)
    np.testing.assert_array_equal(d.episode_ends, [3, 7, 12])
    np.testing.assert_array_equal(d.images[7:], load(tmp_path / "b.h5").images)
    np.testing.assert_array_equal(d.source_ends, [7, 12])
    np.testing.assert_array_equal(d.source_frame_weights([1, 2]), [1] * 7 + [2] * 5)
    # the same file twice is two sources
    np.testing.assert_array_equal(load_many([tmp_path / "b.h5"] * 2).source_ends, [5, 10])
