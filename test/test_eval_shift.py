"""`crl demos --randomize` -> `crl train` (a tiny model) -> `crl eval --seeds test --shift ...` end to
end at toy scale; the JSON holds the Wilson intervals and the shift; bad shifts are usage errors."""
import json

import pytest

pytest.importorskip("mujoco")

from crl_ros.cli import main  # noqa: E402
from crl_ros.learning.dataset import load  # noqa: E402
from crl_ros.sim.rollout import EVAL_SEEDS  # noqa: E402


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    root = tmp_path_factory.mktemp("shift")
    data = root / "randomized.h5"
    assert main(["demos", "--env", "widowx", "--task", "reach", "--episodes", "2", "--out", str(data),
                 "--randomize", "camera_pos", "light=0.3", "distractors=0:1", "--shift", "jpeg=60"]) == 0
    assert main(["train", "--data", str(data), "--algo", "gcbc", "--out", str(root / "run"), "--steps", "2",
                 "--batch-size", "8", "--set", "hidden_width=32", "normalize_actions=true", "--no-progress"]) == 0
    return data, root / "run" / "model.pt"


def test_randomized_demos_record_their_shifts(tiny_model):
    data, _ = tiny_model
    provenance = load(data).metadata.provenance
    assert provenance["shift"] == "jpeg=60 camera_pos=0:0.02 light=-0.3:0.3 distractors=0:1"


def test_eval_with_shifts_runs_end_to_end_and_stores_the_intervals(tiny_model, tmp_path, capsys):
    _, model = tiny_model
    out = tmp_path / "eval.json"
    assert main(["eval", "--env", "widowx", "--task", "reach", "--model", str(model), "--episodes", "1",
                 "--max-steps", "3", "--seeds", "test", "--shift", "camera_yaw=3", "light=moderate",
                 "distractors=1", "--goal-shift", "nominal", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"test seed {EVAL_SEEDS['test']}" in printed and "shift camera_yaw=3 light=+-0.3 distractors=1" in printed
    assert "95% interval (Wilson)" in printed
    assert "[  0.0,  79.3]" in printed or "[ 20.7, 100.0]" in printed  # 0 or 1 of 1 episode
    result = json.loads(out.read_text())
    assert result["seed"] == EVAL_SEEDS["test"] and result["seeds"] == "test" and result["goal_shift"] == "nominal"
    assert result["shift"] == "camera_yaw=3 light=+-0.3 distractors=1, goal nominal"
    reach = result["tasks"]["reach"]
    assert reach["episodes"] == 1 and len(reach["ci95"]) == 2 and reach["ci95"][0] <= reach["success_rate"]
    assert len(result["success_ci95"]) == 2


@pytest.mark.parametrize("argv, problem", [
    (["eval", "--env", "widowx", "--policy", "random", "--shift", "warp=1"], "unknown shift 'warp'"),
    (["eval", "--env", "widowx", "--policy", "random", "--shift", "camera_yaw=90"], "outside [-30, 30]"),
    (["eval", "--env", "widowx", "--policy", "random", "--seeds", "train"], "argument --seeds: invalid choice"),
    (["eval", "--env", "widowx", "--policy", "random", "--seeds", "test", "--seed", "3"], "not allowed with"),
    (["demos", "--env", "widowx", "--episodes", "1", "--out", "x.h5", "--randomize", "fog"], "unknown shift 'fog'"),
])
def test_bad_shift_arguments_are_usage_errors(argv, problem, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2 and problem in capsys.readouterr().err


def test_shift_errors_after_parsing_name_the_problem(tmp_path, capsys):
    assert main(["eval", "--env", "pointmass", "--policy", "random", "--episodes", "1", "--shift", "light=0.1"]) == 2
    assert "the pointmass suite has no shifts" in capsys.readouterr().err
    assert main(["eval", "--env", "widowx", "--policy", "random", "--shift", "light=0.1", "light=0.2"]) == 2
    assert "shift 'light' is given twice" in capsys.readouterr().err
    assert main(["demos", "--env", "pointmass", "--episodes", "1", "--out", str(tmp_path / "p.h5"),
                 "--shift", "blur=1"]) == 2
    assert "the pointmass suite has none" in capsys.readouterr().err
