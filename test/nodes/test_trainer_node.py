"""trainer_node: .h5 datasets train without conversion, a folder of bags is converted with
camera_node's default crop, every run's progress is its own (from step 0), the profile is
sized for the machine, and a run that cannot start says why. The bags recorded through the
ROS graph are covered in test_pipeline.py."""
import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from crl_ros.nodes import common
from trainer_helpers import start_trainer_heard

REPO = Path(__file__).resolve().parents[2]
TINY = "batch_size=16 hidden_width=32 encoder_channels=[8,8,8]"


def _crl(*args, cwd):
    result = subprocess.run([sys.executable, "-m", "crl_ros.cli", *args], cwd=cwd, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def _listen(ros):
    from std_msgs.msg import String
    progress, checkpoints = [], []
    subs = [ros.node.create_subscription(String, "training_progress", lambda m: progress.append(json.loads(m.data)),
                                         common.latched_qos(depth=50)),
            ros.node.create_subscription(String, "checkpoint", lambda m: checkpoints.append(m.data),
                                         common.latched_qos())]
    return progress, checkpoints, subs


def _finished(progress, run):
    return any(p["run"] == run and p["stage"] in ("done", "failed") for p in progress)


def test_trains_on_a_dataset_and_a_second_run_starts_from_step_0(procs, tmp_path):
    from std_srvs.srv import Trigger
    ros = procs
    _crl("demos", "--env", "pointmass", "--episodes", "2", "--out", "pm.h5", cwd=tmp_path)
    progress, checkpoints, subs = _listen(ros)
    out = tmp_path / "run"
    proc = start_trainer_heard(ros, data=str(tmp_path / "pm.h5"), out_dir=str(out), steps=3, settings=TINY,
                        device="cpu", bag_dir=str(tmp_path / "no_bags_here"))
    ros.wait_for(lambda: _finished(progress, 1), 60, "the first run", procs=[proc])
    first = [p for p in progress if p["run"] == 1]
    assert first[-1]["stage"] == "done", first[-1]
    assert [p["stage"] for p in first if p["stage"] != "train"] == ["done"]  # no conversion
    assert first[0]["profile"] == "cpu" and "the cpu profile (auto: device cpu)" in first[0]["message"]
    assert first[0]["steps"] == 3 and first[-1]["step"] == 3
    ros.wait_for(lambda: checkpoints, 10, "checkpoint")
    assert Path(checkpoints[-1]) == out / "model.pt" and (out / "model.pt").exists()

    response = ros.call(Trigger, "train")
    # a retried request whose first reply was lost finds its own run going
    assert response.success or response.message == "training is already running", response.message
    ros.wait_for(lambda: _finished(progress, 2), 60, "the second run", procs=[proc])
    second = [p for p in progress if p["run"] == 2]
    assert second[-1]["stage"] == "done", second[-1]
    assert second[0]["step"] == 0
    steps = [p["step"] for p in second]
    assert steps == sorted(steps), steps
    ros.wait_for(lambda: len(checkpoints) == 2, 10, "the second checkpoint")
    # the first run was renamed aside, not lost
    kept = list(tmp_path.glob("run.old-*"))
    assert len(kept) == 1 and (kept[0] / "model.pt").exists()
    for sub in subs:
        ros.node.destroy_subscription(sub)


def test_a_late_subscriber_gets_the_current_state_not_the_history(procs, tmp_path):
    """training_progress and checkpoint are latched with depth 1: a subscriber that joins after
    a run (like `ros2 topic echo --once /training_progress`) gets the run's final state and
    nothing older. With the history of 50 kept before, the first message it got was step 0."""
    ros = procs
    _crl("demos", "--env", "pointmass", "--episodes", "2", "--out", "pm.h5", cwd=tmp_path)
    progress, checkpoints, subs = _listen(ros)
    proc = ros.start("trainer_node", data=str(tmp_path / "pm.h5"), out_dir=str(tmp_path / "run"), steps=3,
                     settings=TINY, device="cpu")
    ros.wait_for(lambda: _finished(progress, 1) and checkpoints, 60, "the run", procs=[proc])
    assert len(progress) > 1 and progress[-1]["stage"] == "done", progress
    late_progress, late_checkpoints, late_subs = _listen(ros)
    ros.wait_for(lambda: late_progress and late_checkpoints, 20, "the latched messages", procs=[proc])
    ros.spin_for(1.0)  # anything older would have come with the latest
    assert late_progress == [progress[-1]]
    assert late_checkpoints == [checkpoints[-1]]
    for sub in subs + late_subs:
        ros.node.destroy_subscription(sub)


def test_converts_a_folder_of_crl_demos_bags_with_the_default_crop(procs, tmp_path):
    ros = procs
    _crl("demos", "--env", "widowx", "--bag", "--episodes", "2", "--out", "bags", cwd=tmp_path)
    progress, checkpoints, subs = _listen(ros)
    out = tmp_path / "run"
    proc = start_trainer_heard(ros, bag_dir=str(tmp_path / "bags"), out_dir=str(out), steps=2, settings=TINY,
                        device="cpu", algo="gcbc", size="48 48", max_gap=1.0)
    ros.wait_for(lambda: _finished(progress, 1), 90, "the run", procs=[proc])
    assert progress[-1]["stage"] == "done", progress[-1]
    stages = [p["stage"] for p in progress]
    assert stages[0] == "convert" and "2 bag(s)" in progress[0]["message"]
    from crl_ros.learning import dataset as ds
    data = ds.load(tmp_path / "run.h5")
    assert data.num_episodes == 2 and data.metadata.image_shape == (48, 48, 3)
    ros.wait_for(lambda: checkpoints, 10, "checkpoint")
    for sub in subs:
        ros.node.destroy_subscription(sub)


def _in_process_node(ros, name, **params):
    """A TrainerNode in the test process (not started): for what fails before any child process."""
    from rclpy.parameter import Parameter
    from crl_ros.nodes.trainer_node import TrainerNode
    params.setdefault("start_on_launch", False)
    overrides = [Parameter(key, value=value) for key, value in params.items()]
    return TrainerNode(name, context=ros.context, parameter_overrides=overrides)


def _empty(tmp_path):
    (tmp_path / "bags").mkdir()
    return {"bag_dir": str(tmp_path / "bags")}


def _datasets_in_bag_dir(tmp_path):
    (tmp_path / "bags").mkdir()
    (tmp_path / "bags" / "demos.h5").write_bytes(b"")
    return {"bag_dir": str(tmp_path / "bags")}


@pytest.mark.parametrize("setup, expected", [
    (_empty, ["no bags found in", "bags: expected episode bags", "metadata.yaml"]),
    (lambda t: {"bag_dir": str(t / "missing")}, ["missing does not exist"]),
    (_datasets_in_bag_dir, ["holds .h5 datasets (demos.h5): set data:="]),
    (lambda t: {"data": str(t / "nothing.h5")}, ["data:", "nothing.h5 does not exist"]),
    (lambda t: {"data": str(t)}, ["no .h5 datasets in the folder"]),
    (lambda t: {"profile": "huge", "data": "x.h5"}, ["unknown profile 'huge'"]),
], ids=["empty_folder", "missing_folder", "datasets_in_bag_dir", "missing_dataset", "no_datasets_in_folder",
        "unknown_profile"])
def test_a_run_that_cannot_start_fails_with_a_message(ros, tmp_path, setup, expected):
    node = _in_process_node(ros, "trainer_fail", device="cpu", out_dir=str(tmp_path / "run"), **setup(tmp_path))
    try:
        node.start()
        node._thread.join(30)
        assert node.state["stage"] == "failed", node.state
        for text in expected:
            assert text in node.state["message"], node.state["message"]
        assert not (tmp_path / "run").exists()
    finally:
        node.destroy_node()


def test_a_bad_crop_fails_before_converting(ros, tmp_path):
    bag = tmp_path / "episode_0"
    bag.mkdir()
    (bag / "metadata.yaml").write_text("")
    node = _in_process_node(ros, "trainer_bad_crop", bag_dir=str(bag), crop="1 2 3", device="cpu",
                            out_dir=str(tmp_path / "run"))
    try:
        node.start()
        node._thread.join(30)
        assert node.state["stage"] == "failed" and "crop takes 4 value(s), got '1 2 3'" in node.state["message"]
    finally:
        node.destroy_node()


def test_bags_and_datasets_are_found_in_every_documented_form(tmp_path):
    from crl_ros.nodes.trainer_node import find_bags, find_datasets
    for name in ("episode_0", "episode_1"):
        (tmp_path / "bags" / name).mkdir(parents=True)
        (tmp_path / "bags" / name / "metadata.yaml").write_text("")
        (tmp_path / "bags" / name / f"{name}_0.mcap").write_bytes(b"")
    (tmp_path / "bags" / "single.mcap").write_bytes(b"")
    bags = tmp_path / "bags"
    assert find_bags(bags) == [bags / "episode_0", bags / "episode_1", bags / "single.mcap"]
    assert find_bags(bags / "episode_1") == [bags / "episode_1"]  # one bag, not the .mcap inside it
    assert find_bags(bags / "single.mcap") == [bags / "single.mcap"]
    for name in ("a.h5", "b.h5", "sub/c.h5"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    assert find_datasets(f"{tmp_path}/a.h5, {tmp_path}/sub") == [tmp_path / "a.h5", tmp_path / "sub" / "c.h5"]
    assert find_datasets([str(tmp_path)]) == [tmp_path / "a.h5", tmp_path / "b.h5"]


def test_the_auto_profile_fits_the_machine(monkeypatch):
    import torch
    from crl_ros.nodes.trainer_node import resolve_profile
    assert resolve_profile("auto", "cpu") == ("cpu", "auto: device cpu")
    assert resolve_profile("auto", "cuda") == ("paper", "auto: device cuda")
    assert resolve_profile("paper", "cpu") == ("paper", "as set")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_profile("auto", "auto") == ("cpu", "auto: no CUDA")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_profile("auto", "auto") == ("paper", "auto: CUDA available")


def test_the_launch_file_declares_every_parameter_with_the_config_default():
    from crl_ros.nodes.trainer_node import PARAMETERS
    tree = ast.parse((REPO / "launch" / "train.launch.py").read_text())
    arguments = next(ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign)
                     and any(getattr(t, "id", "") == "ARGUMENTS" for t in n.targets))
    launch_defaults = {name: default for name, default, _ in arguments}
    config = common.load_params_file(REPO / "config" / "trainer_node.yaml", "trainer_node")
    assert set(launch_defaults) == {name for name, _, _ in PARAMETERS} - {"start_on_launch"}
    assert set(config) == {name for name, _, _ in PARAMETERS}
    for name, default in launch_defaults.items():
        assert default == str(config[name]), name


def test_progress_comes_from_this_runs_metrics_only(ros, tmp_path):
    node = _in_process_node(ros, "trainer_metrics")
    try:
        metrics = tmp_path / "run" / "metrics.jsonl"
        metrics.parent.mkdir()
        metrics.write_text(json.dumps({"step": 900, "kind": "train", "critic_loss": 0.5}) + "\n")
        node._start_metrics(metrics)
        node.state.update(stage="train", step=0)
        node.poll_metrics()
        assert node.state["step"] == 0  # the previous run's file, not yet moved aside by crl train --force
        metrics.parent.rename(tmp_path / "run.old")
        metrics.parent.mkdir()
        metrics.write_text(json.dumps({"step": 1, "kind": "train", "critic_loss": 0.25}) + "\n"
                           + json.dumps({"step": 1, "kind": "perf", "steps_per_s": 9.0}) + "\n"
                           + '{"step": 2, "kind": "tra')  # a line still being written
        node.poll_metrics()
        assert node.state["step"] == 1 and node.state["message"] == "critic_loss 0.25"
        with open(metrics, "a") as f:
            f.write('in", "critic_loss": 0.125}\n')
        node.poll_metrics()
        assert node.state["step"] == 2 and node.state["message"] == "critic_loss 0.125"
    finally:
        node.destroy_node()


def test_ctrl_c_during_training_ends_cleanly_and_keeps_a_checkpoint(procs, tmp_path):
    """One SIGINT to the node: `crl train` (its own session) gets exactly one SIGINT from the
    node, writes a step checkpoint for --resume, and nothing prints a traceback."""
    from crl_ros.learning.checkpoint import list_step_checkpoints
    ros = procs
    _crl("demos", "--env", "pointmass", "--episodes", "2", "--out", "pm.h5", cwd=tmp_path)
    progress, _, subs = _listen(ros)
    out = tmp_path / "run"
    proc = ros.start("trainer_node", data=str(tmp_path / "pm.h5"), out_dir=str(out), steps=1_000_000,
                     settings=TINY, device="cpu")
    ros.wait_for(lambda: any(p["stage"] == "train" and p["step"] > 0 for p in progress), 90, "training steps",
                 procs=[proc])
    code = proc.interrupt(timeout=150)
    log = proc.log()
    assert code == 0, log
    assert "Traceback" not in log and "RCLError" not in log, log
    assert list_step_checkpoints(out), f"no step checkpoint in {out}: {sorted(p.name for p in out.iterdir())}"
    for sub in subs:
        ros.node.destroy_subscription(sub)
