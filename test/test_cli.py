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

    tuned = tmp_path / "runs" / "tuned"  # fine-tuning: a new run from the model's weights, no --algo needed
    assert main(["train", "--data", str(demos), "--out", str(tuned), "--init-from", str(run / "model.pt"),
                 "--steps", "2", "--no-progress"]) == 0
    assert json.loads((tuned / "run.json").read_text())["init_from"]["step"] == 7
    assert (tuned / "checkpoints" / "step_0000002.pt").exists()
    assert main(["train", "--data", str(demos), "--out", str(tmp_path / "t2"), "--init-from",
                 str(run / "model.pt"), "--steps", "2", "--set", "hidden_width=8"]) == 2
    assert "keeps the model's config" in capsys.readouterr().err
    apart = tmp_path / "apart"   # augmentation settings may change in a fine-tune: they change no network
    assert main(["train", "--data", str(demos), "--out", str(apart), "--init-from", str(run / "model.pt"), "--steps",
                 "2", "--no-progress", "--augment", "shift,color_jitter", "--set", "augment_goal_apart=0.5"]) == 0
    tuned_config = json.loads((apart / "run.json").read_text())["agent_config"]
    assert tuned_config["augment_goal_apart"] == 0.5 and tuned_config["augment_color_jitter"] is True
    assert main(["train", "--data", str(demos), "--out", str(tmp_path / "t4"), "--init-from", str(run / "model.pt"),
                 "--steps", "2", "--set", "augment_goal_apart=0.5"]) == 2   # the shift alone: nothing to draw apart
    assert "none is on" in capsys.readouterr().err
    assert main(["train", "--data", str(demos), "--out", str(tmp_path / "t3"), "--init-from",
                 str(run / "model.pt")]) == 2
    assert "needs --data and --steps" in capsys.readouterr().err
    assert main(["train", "--out", str(run), "--resume", "--init-from", str(run / "model.pt")]) == 2
    assert "pass one of them" in capsys.readouterr().err

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
    err = capsys.readouterr().err
    assert "--algo is missing" in err and "--data" not in err  # the data exists: nothing to say about it
    # the reported case: --data was given (a file that does not exist), --algo was not: both said, nothing else
    assert main(["train", "--data", "/nonexistent.h5", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("crl train: --algo is missing") and "--data /nonexistent.h5 does not exist" in err
    assert "--data is missing" not in err and "required" not in err and len(err.splitlines()) == 1
    assert main(["train", "--algo", "gcbc", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "--data is missing" in err and "--algo" not in err
    assert not (tmp_path / "x").exists()  # refused before anything was written
    assert main(["train", "--data", str(demos), "--algo", "gcbc", "--out", str(tmp_path / "y"),
                 "--set", "hidden_widht=3"]) == 2
    assert "unknown config key 'hidden_widht'" in capsys.readouterr().err
    assert main(["train", "--data", str(tmp_path / "none.h5"), "--algo", "gcbc", "--out", str(tmp_path / "z"),
                 "--steps", "1"]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert main(["train", "--out", str(tmp_path / "never"), "--resume"]) == 1
    assert main(["train", "--data", str(demos), str(demos), "--data-weights", "1", "--algo", "gcbc",
                 "--out", str(tmp_path / "w"), "--steps", "1", "--set", *TINY]) == 1
    assert "1 data weights for 2 dataset file(s)" in capsys.readouterr().err
    assert main(["train", "--data", str(demos), "--data-weights", "-1", "--algo", "gcbc",
                 "--out", str(tmp_path / "w2"), "--steps", "1", "--set", *TINY]) == 1
    assert "data_weights must be finite, >= 0" in capsys.readouterr().err


def test_console_script_help():
    out = subprocess.run([sys.executable, "-m", "crl_ros.cli", "--help"], capture_output=True, text=True, check=True)
    for command in ("train", "demos", "eval"):
        assert command in out.stdout


def _subcommand_parsers(parser=None, prefix=()):
    """(command words, parser) for every subcommand, nested ones (`analyze interpolate`) too."""
    import argparse

    from crl_ros.cli import build_parser
    parser = parser or build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*prefix, name), sub
                yield from _subcommand_parsers(sub, (*prefix, name))


def test_every_option_of_every_subcommand_has_help():
    import argparse
    parsers = dict(_subcommand_parsers())
    assert {"train", "demos", "eval", "convert", "record", "teleop", "reach-goal", "demo", "analyze"} <= {
        words[0] for words in parsers}
    assert ("analyze", "interpolate") in parsers and ("analyze", "arm-matching") in parsers
    missing = [f"crl {' '.join(words)} {'/'.join(a.option_strings) or a.dest}"
               for words, p in parsers.items() for a in p._actions
               if not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction)) and not (a.help or "").strip()]
    assert not missing, missing


def test_help_shows_defaults_task_names_and_one_image_size_order():
    from crl_ros.sim.suites import task_names
    parsers = dict(_subcommand_parsers())
    helps = {" ".join(words): p.format_help() for words, p in parsers.items()}
    assert "(default: 5.0)" in helps["convert"] and "(default: 1.0)" in helps["convert"]
    assert "(default: 0)" in helps["eval"] and "(default: demo_out)" in helps["demo"]
    assert "(default: 8)" in helps["analyze interpolate"]
    assert "(default: None)" not in "".join(helps.values())  # options without a default say nothing
    for command in ("eval", "record", "reach-goal", "demo", "demos"):
        for task in task_names("widowx"):
            assert task in " ".join(helps[command].split()), (command, task)
    for command in ("eval", "demos"):
        for task in task_names("pointmass"):
            assert task in helps[command], (command, task)
    # image sizes: HEIGHT WIDTH everywhere
    assert "--size H W" in helps["convert"] and "--image-size H W" in helps["record"]


@pytest.mark.parametrize("argv, problem", [
    (["eval", "--env", "foo", "--policy", "scripted"], "argument --env: invalid choice: 'foo'"),
    (["eval", "--env", "pointmass", "--policy", "random", "--episodes", "0"], "argument --episodes: must be >= 1"),
    (["reach-goal", "--sim", "--task", "foo"], "argument --task: invalid choice: 'foo'"),
    (["record", "--sim", "--task", "foo", "--out", "x"], "argument --task: invalid choice: 'foo'"),
    (["demo", "--task", "foo"], "argument --task: invalid choice: 'foo'"),
    (["convert", "b", "--out", "x.h5", "--rate", "0"], "argument --rate: must be > 0, got 0"),
    (["convert", "b", "--out", "x.h5", "--rate", "-5"], "argument --rate: must be > 0, got -5"),
    (["convert", "b", "--out", "x.h5", "--rate", "fast"], "argument --rate: not a number: 'fast'"),
    (["convert", "b", "--out", "x.h5", "--size", "0", "48"], "argument --size: must be >= 1, got 0"),
])
def test_bad_arguments_are_one_line_naming_the_problem(argv, problem, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert "Traceback" not in err and last.startswith(f"crl {argv[0]}: error: ") and problem in last, err


def test_convert_options_refuse_a_rate_that_is_not_positive():
    from crl_ros.bags.convert import ConvertOptions
    for rate in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="control rate must be > 0"):
            ConvertOptions(rate_hz=rate)


def test_demos_play_claims_no_success(tmp_path, capsys):
    assert main(["demos", "--env", "pointmass", "--play", "--episodes", "2", "--out", str(tmp_path / "p.h5"),
                 "--image-size", "16"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    frames = load(tmp_path / "p.h5").num_frames
    assert f"2 episodes, {frames} frames ({frames - 2} transitions) of play" in line
    assert "success" not in line.replace("no success rate", "")
    assert main(["demos", "--env", "pointmass", "--task", "reach_center", "--episodes", "2",
                 "--out", str(tmp_path / "t.h5"), "--image-size", "16"]) == 0
    assert "the scripted expert succeeded in" in capsys.readouterr().out


def test_building_the_cli_loads_no_torch_ros_or_simulator():
    code = ("import sys; from crl_ros.cli import build_parser; build_parser(); "
            "bad = [m for m in ('torch', 'rclpy', 'mujoco') if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_train_data_weights_are_kept_on_resume(demos, tmp_path):
    out = tmp_path / "weighted"
    common = ["--algo", "gcbc", "--out", str(out), "--set", *TINY, "batch_size=8", "--no-progress",
              "--checkpoint-every", "1"]
    assert main(["train", "--data", str(demos), str(demos), "--data-weights", "1", "2", "--steps", "2",
                 *common]) == 0
    assert main(["train", "--out", str(out), "--resume", "--steps", "3", "--no-progress"]) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["train_config"]["data_weights"] == [1.0, 2.0] and run["dataset"]["weights"] == [1.0, 2.0]
    assert run["train_config"]["steps"] == 3
