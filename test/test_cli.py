"""`crl demos` -> `crl train` -> `crl eval` end to end on the point-mass task, plus CLI errors."""
import json
import subprocess
import sys

import pytest

from crl_ros.cli import main
from crl_ros.learning.dataset import load, validate

TINY = ["hidden_width=32", "hidden_depth=2", "encoder_channels=[8,8,8]"]


@pytest.fixture(scope="module")
def demos(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "demos.h5"
    assert main(["demos", "--env", "pointmass", "--play", "--episodes", "8", "--out", str(path),
                 "--image-size", "32", "--workers", "2", "--seed", "3"]) == 0
    return path


def test_demos_writes_a_valid_dataset(demos, capsys):
    meta = validate(demos)
    data = load(demos)
    assert data.num_episodes == 8 and meta.image_shape == (32, 32, 3) and meta.action_dim == 2
    assert meta.action_names == ["vx", "vy"] and meta.action_low == [-1.0, -1.0]
    assert meta.provenance["env"] == "pointmass" and meta.provenance["task"] == "play"
    # refuses to overwrite a recorded dataset
    before = demos.read_bytes()
    assert main(["demos", "--env", "pointmass", "--episodes", "1", "--out", str(demos)]) == 1
    assert "already exists" in capsys.readouterr().err
    assert demos.read_bytes() == before


def test_demos_of_one_task(tmp_path):
    out = tmp_path / "task.h5"
    assert main(["demos", "--env", "pointmass", "--task", "reach_center", "--episodes", "2", "--out", str(out)]) == 0
    assert load(out).metadata.provenance["task"] == "reach_center"


def test_train_then_eval(demos, tmp_path, capsys):
    run = tmp_path / "runs" / "tiny"
    args = ["train", "--data", str(demos), "--algo", "stable_crl", "--out", str(run), "--steps", "5",
            "--batch-size", "16", "--device", "cpu", "--log-every", "2", "--no-progress", "--set", *TINY]
    assert main(args) == 0
    assert (run / "model.pt").exists() and (run / "checkpoints" / "step_0000005.pt").exists()
    assert main(args) == 1  # a second run into the same directory is refused
    assert "already holds a run" in capsys.readouterr().err
    assert main(["train", "--out", str(run), "--steps", "7", "--resume", "--no-progress"]) == 0
    assert (run / "checkpoints" / "step_0000007.pt").exists()

    result = tmp_path / "eval.json"
    video = tmp_path / "eval.gif"
    assert main(["eval", "--env", "pointmass", "--task", "all", "--model", str(run / "model.pt"),
                 "--episodes", "1", "--device", "cpu", "--json", str(result), "--video", str(video)]) == 0
    table = capsys.readouterr().out
    assert "reach_top_right" in table and "mean" in table
    report = json.loads(result.read_text())
    assert set(report["tasks"]) == {"reach_bottom_left", "reach_bottom_right", "reach_top_left", "reach_top_right",
                                    "reach_center"}
    assert all(r["episodes"] == 1 for r in report["tasks"].values()) and 0.0 <= report["success_rate"] <= 1.0
    assert video.stat().st_size > 0


def test_eval_baselines_and_errors(tmp_path, capsys):
    result = tmp_path / "scripted.json"
    assert main(["eval", "--env", "pointmass", "--task", "reach_center", "--policy", "scripted",
                 "--episodes", "3", "--json", str(result)]) == 0
    assert json.loads(result.read_text())["success_rate"] >= 2 / 3
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    assert main(["eval", "--env", "pointmass", "--model", str(tmp_path / "junk.pt"), "--episodes", "1"]) == 1
    assert "not a crl_ros checkpoint" in capsys.readouterr().err
    assert main(["eval", "--env", "pointmass", "--task", "fly", "--policy", "random", "--episodes", "1"]) == 2
    assert "unknown pointmass task" in capsys.readouterr().err


def test_train_argument_errors(demos, tmp_path, capsys):
    assert main(["train", "--data", str(demos), "--out", str(tmp_path / "x")]) == 2  # no --algo
    assert main(["train", "--data", str(demos), "--algo", "gcbc", "--out", str(tmp_path / "y"),
                 "--set", "hidden_widht=3"]) == 2
    assert "unknown config key 'hidden_widht'" in capsys.readouterr().err
    assert main(["train", "--data", str(tmp_path / "none.h5"), "--algo", "gcbc", "--out", str(tmp_path / "z"),
                 "--steps", "1"]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert main(["train", "--out", str(tmp_path / "never"), "--resume"]) == 1


def test_console_script_help():
    out = subprocess.run([sys.executable, "-m", "crl_ros.cli", "--help"], capture_output=True, text=True, check=True)
    for command in ("train", "demos", "eval"):
        assert command in out.stdout
