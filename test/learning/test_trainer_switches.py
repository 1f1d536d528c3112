"""Trainer + the policy switches: the sampler follows normalize_actions, and a run whose
checkpoints predate the switches resumes with their legacy values."""
import numpy as np
import pytest
from test_trainer import _run, data_file, tiny_config  # noqa: F401  (fixture)

from crl_ros.learning.agents.common import LEGACY_VALUES
from crl_ros.learning.checkpoint import CheckpointMeta, list_step_checkpoints, load_checkpoint, save_checkpoint
from crl_ros.learning.config import apply_overrides
from crl_ros.learning.policy import Policy
from crl_ros.learning.trainer import TrainConfig, train


def test_actions_are_raw_unless_normalize_actions(data_file, tmp_path):
    raw = _run(data_file, tmp_path / "raw", "gcbc", steps=2)
    meta = Policy.load(raw.model_path, device="cpu").meta
    assert meta.action_mean == [0.0, 0.0] and meta.action_std == [1.0, 1.0]
    cfg = TrainConfig(steps=2, device="cpu", log_every=1, checkpoint_every=2, progress=False)
    z = train([data_file], "gcbc", apply_overrides(tiny_config("gcbc"), ["normalize_actions=true"]), cfg,
              tmp_path / "z")
    meta = Policy.load(z.model_path, device="cpu").meta
    assert meta.action_mean != [0.0, 0.0] and meta.action_std != [1.0, 1.0]


def test_a_run_from_before_the_switches_resumes_with_the_legacy_values(data_file, tmp_path):
    legacy = [f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in LEGACY_VALUES.items()]
    cfg = TrainConfig(steps=3, device="cpu", log_every=1, checkpoint_every=3, progress=False)
    out = tmp_path / "old"
    train([data_file], "stable_crl", apply_overrides(tiny_config("stable_crl"), legacy), cfg, out)
    step = list_step_checkpoints(out)[-1][1]
    ckpt = load_checkpoint(step)
    old_meta = {**ckpt.meta.to_dict(), "config": {k: v for k, v in ckpt.meta.config.items() if k not in LEGACY_VALUES}}
    save_checkpoint(step, CheckpointMeta(**old_meta), ckpt.model, ckpt.training)  # as an old crl_ros wrote it
    resumed = train([data_file], None, None, TrainConfig(steps=5, device="cpu", log_every=1, checkpoint_every=5,
                                                         progress=False), out, resume=True)
    meta = load_checkpoint(list_step_checkpoints(out)[-1][1]).meta
    assert all(meta.config[k] == v for k, v in LEGACY_VALUES.items())
    np.testing.assert_array_equal(meta.action_std, ckpt.meta.action_std)
    assert resumed is not None
