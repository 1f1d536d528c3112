"""The WidowX suite through the `crl demos` / `crl eval` commands: datasets that validate."""
import json

import h5py
import numpy as np
import pytest

pytest.importorskip("mujoco")

from crl_ros.cli import main  # noqa: E402
from crl_ros.learning.dataset import load, validate  # noqa: E402
from crl_ros.robot import actions  # noqa: E402


def test_play_demos_write_a_valid_dataset(tmp_path):
    out = tmp_path / "play.h5"
    assert main(["demos", "--env", "widowx", "--play", "--episodes", "3", "--out", str(out)]) == 0
    meta = validate(out)
    assert meta.image_shape == (48, 48, 3) and meta.action_names == actions.ACTION_NAMES
    data = load(out)
    assert data.num_episodes == 3
    # play episodes run to the step limit and act within the bounds
    assert np.all(np.diff(np.concatenate([[0], data.episode_ends])) == 101)
    moving = data.actions[data.transition_mask()]
    assert np.all(moving >= actions.ACTION_LOW - 1e-6) and np.all(moving <= actions.ACTION_HIGH + 1e-6)
    assert set(np.unique(moving[:, 6])) <= {0.0, 1.0} and len(np.unique(moving[:, 6])) == 2  # grasps happen
    with h5py.File(out) as f:
        assert json.loads(f.attrs["provenance"])["env"] == "widowx"


def test_task_demos_succeed_and_eval_prints_a_table(tmp_path, capsys):
    out = tmp_path / "pick.h5"
    assert main(["demos", "--env", "widowx", "--task", "pick_place_table", "--episodes", "2", "--out", str(out)]) == 0
    assert "scripted success 2/2" in capsys.readouterr().out
    validate(out)
    assert main(["eval", "--env", "widowx", "--task", "open_drawer", "--policy", "scripted", "--episodes", "2",
                 "--video", str(tmp_path / "eval.gif")]) == 0
    assert "open_drawer" in capsys.readouterr().out
    assert (tmp_path / "eval.gif").stat().st_size > 0
