"""Checkpoint format: round trip, atomic writes, RNG state, and a clear error for every bad file."""
import os
import random

import numpy as np
import pytest
import torch

from crl_ros.learning import checkpoint as ckpt
from crl_ros.learning.checkpoint import (CheckpointError, CheckpointMeta, capture_rng_state, list_step_checkpoints,
                                         load_checkpoint, restore_rng_state, save_checkpoint, step_checkpoint_path)


def _meta(**kw):
    base = dict(algorithm="gcbc", config={"hidden_width": 8, "encoder_channels": [4, 4]}, image_shape=(32, 32, 3),
                action_dim=2, action_names=["vx", "vy"], action_mean=[0.1, -0.2], action_std=[0.5, 2.0],
                action_low=[-1.0, -1.0], action_high=[1.0, 1.0], step=7,
                dataset={"paths": ["/data/a.h5"], "num_frames": 10, "provenance": {"env": "pointmass"}})
    base.update(kw)
    return CheckpointMeta(**base)


@pytest.fixture
def saved(tmp_path):
    model = {"w": torch.randn(3, 4), "b": torch.arange(5)}
    training = {"step": 7, "optimizer": {"state": {0: {"exp_avg": torch.ones(2)}}, "param_groups": [{"lr": 1e-3}]},
                "rng": capture_rng_state()}
    path = save_checkpoint(tmp_path / "c.pt", _meta(), model, training)
    return path, model


def test_round_trip_with_weights_only(saved):
    path, model = saved
    loaded = load_checkpoint(path)
    assert loaded.meta == _meta(created=loaded.meta.created, crl_ros_version=loaded.meta.crl_ros_version)
    assert loaded.meta.created and loaded.meta.crl_ros_version
    for key, value in model.items():
        assert torch.equal(loaded.model[key], value)
    assert loaded.training["optimizer"]["param_groups"][0]["lr"] == 1e-3
    # the raw file is loadable by plain torch with weights_only=True, and says what it is
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == "crl_ros.checkpoint" and raw["format_version"] == ckpt.FORMAT_VERSION
    assert raw["meta"]["algorithm"] == "gcbc" and raw["meta"]["action_names"] == ["vx", "vy"]


def test_run_directory_loads_its_model_file(tmp_path):
    save_checkpoint(tmp_path / "model.pt", _meta(), {"w": torch.zeros(1)})
    assert load_checkpoint(tmp_path).meta.step == 7


def test_atomic_write_leaves_no_temporary_files(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "c.pt", _meta(), {"w": torch.zeros(2)})
    before = path.read_bytes()

    def broken_save(*args, **kwargs):
        raise OSError("disk full")
    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, _meta(step=99), {"w": torch.ones(2)})
    assert path.read_bytes() == before  # the old checkpoint survives a failed write
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pt"]


def test_meta_checks_action_stats_length():
    with pytest.raises(CheckpointError, match="action_mean has 3 entries for action_dim 2"):
        _meta(action_mean=[0.0, 0.0, 0.0])


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")


def test_empty_file(tmp_path):
    (tmp_path / "e.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        load_checkpoint(tmp_path / "e.pt")


def test_random_bytes(tmp_path):
    (tmp_path / "r.pt").write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(CheckpointError, match="not a crl_ros checkpoint"):
        load_checkpoint(tmp_path / "r.pt")


@pytest.mark.parametrize("fraction", [0.02, 0.5, 0.98])
def test_truncated_file(saved, tmp_path, fraction):
    path, _ = saved
    data = path.read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(data[:int(len(data) * fraction)])
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(cut)


def test_corrupted_middle(saved, tmp_path):
    path, _ = saved
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 64] = bytes(64)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(bytes(data))
    with pytest.raises(CheckpointError):
        load_checkpoint(bad)


def test_plain_torch_state_dict(tmp_path):
    torch.save(torch.nn.Linear(2, 2).state_dict(), tmp_path / "sd.pt")
    with pytest.raises(CheckpointError, match="without the 'format' key"):
        load_checkpoint(tmp_path / "sd.pt")


def test_pickled_module_is_refused(tmp_path):
    torch.save(torch.nn.Linear(2, 2), tmp_path / "module.pt")
    with pytest.raises(CheckpointError, match="pickled Python objects"):
        load_checkpoint(tmp_path / "module.pt")


def test_other_format_and_newer_version(tmp_path):
    torch.save({"format": "someone.else", "format_version": 1}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="format 'someone.else'"):
        load_checkpoint(tmp_path / "other.pt")
    torch.save({"format": ckpt.FORMAT_NAME, "format_version": ckpt.FORMAT_VERSION + 1, "meta": {}, "model": {}},
               tmp_path / "new.pt")
    with pytest.raises(CheckpointError, match="newer than this crl_ros"):
        load_checkpoint(tmp_path / "new.pt")


def test_missing_sections_and_bad_meta(tmp_path):
    torch.save({"format": ckpt.FORMAT_NAME, "format_version": 1, "meta": _meta().to_dict()}, tmp_path / "a.pt")
    with pytest.raises(CheckpointError, match="no 'model' section"):
        load_checkpoint(tmp_path / "a.pt")
    meta = _meta().to_dict()
    del meta["action_dim"]
    torch.save({"format": ckpt.FORMAT_NAME, "format_version": 1, "meta": meta, "model": {}}, tmp_path / "b.pt")
    with pytest.raises(CheckpointError, match="bad checkpoint metadata"):
        load_checkpoint(tmp_path / "b.pt")


def test_step_checkpoint_listing(tmp_path):
    for step in (30, 5, 100):
        save_checkpoint(step_checkpoint_path(tmp_path, step), _meta(step=step), {"w": torch.zeros(1)})
    (tmp_path / "checkpoints" / "notes.txt").write_text("not a checkpoint")
    found = list_step_checkpoints(tmp_path)
    assert [s for s, _ in found] == [5, 30, 100]
    assert found[-1][1].name == "step_0000100.pt"


def test_rng_state_restores_every_generator(tmp_path):
    state = capture_rng_state()
    expected = (torch.rand(4), np.random.rand(3), random.random())
    path = save_checkpoint(tmp_path / "rng.pt", _meta(), {}, {"rng": state})
    torch.rand(10), np.random.rand(10), random.random()  # move every generator on
    restore_rng_state(load_checkpoint(path).training["rng"])
    assert torch.equal(torch.rand(4), expected[0])
    assert np.array_equal(np.random.rand(3), expected[1])
    assert random.random() == expected[2]


def test_unreadable_checkpoint_names_the_file(tmp_path):
    bad = tmp_path / "weird name.pt"
    bad.write_bytes(b"PK\x03\x04" + os.urandom(100))
    with pytest.raises(CheckpointError, match="weird name.pt"):
        load_checkpoint(bad)
