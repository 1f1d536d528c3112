"""bench/learning.py and bench/learning_report.py at toy scale: every method trains and is
evaluated, results are saved per run, --resume keeps finished runs, the report renders."""
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    learning = _load("learning")
    tmp = tmp_path_factory.mktemp("bench")
    argv = ["--env", "pointmass", "--methods", "stable_crl", "crl_no_design", "--seeds", "0", "1",
            "--steps", "4", "--demo-episodes", "12", "--eval-episodes", "2", "--workers", "1", "--device", "cpu",
            "--set", "batch_size=16", "--out", str(tmp / "res.json"), "--workdir", str(tmp / "work")]
    report = learning.main(argv)
    return learning, argv, tmp, report


def test_every_method_and_seed_is_trained_evaluated_and_saved(toy_run):
    learning, _, tmp, report = toy_run
    saved = json.loads((tmp / "res.json").read_text())
    assert set(saved["results"]) == {"random", "stable_crl", "crl_no_design"}
    for method in ("stable_crl", "crl_no_design"):
        entry = saved["results"][method]
        assert [r["seed"] for r in entry["runs"]] == [0, 1]
        assert set(entry["per_task"]) == set(saved["eval"]["tasks"])
        assert 0.0 <= entry["success"] <= 1.0 and entry["success_std"] >= 0.0
        for run in entry["runs"]:
            assert Path(run["model"]).exists()
    # the ablation really is Stable CRL with the three design decisions off
    from crl_ros.learning.policy import Policy
    cfg = Policy.load(saved["results"]["crl_no_design"]["runs"][0]["model"], device="cpu").agent.config
    assert (cfg.layer_norm, cfg.cold_init, cfg.augment) == (False, False, False)
    cfg = Policy.load(saved["results"]["stable_crl"]["runs"][0]["model"], device="cpu").agent.config
    assert (cfg.layer_norm, cfg.cold_init, cfg.augment) == (True, True, True)


def test_resume_keeps_finished_runs_and_refuses_other_settings(toy_run):
    learning, argv, tmp, report = toy_run
    before = json.loads((tmp / "res.json").read_text())
    again = learning.main(argv + ["--resume"])
    assert again["results"]["stable_crl"]["runs"] == before["results"]["stable_crl"]["runs"]
    with pytest.raises(SystemExit, match="other settings"):
        learning.main([a if a != "4" else "5" for a in argv] + ["--resume"])


def test_report_table_and_chart(toy_run, tmp_path):
    _, _, tmp, _ = toy_run
    report = _load("learning_report")
    chart, md = tmp_path / "chart.png", tmp_path / "table.md"
    report.main([str(tmp / "res.json"), "--chart", str(chart), "--markdown", str(md)])
    table = md.read_text()
    assert "Stable CRL" in table and "CRL w/o design decisions" in table and "**mean**" in table
    from PIL import Image
    assert Image.open(chart).size[0] > 400


def test_profiles_set_the_paper_scale():
    learning = _load("learning")
    args = learning.parse_args(["--env", "widowx", "--profile", "paper"])
    assert args.steps == 300_000 and "batch_size=2048" in args.base_overrides
    assert args.methods == ["stable_crl", "crl_no_design", "gciql", "gcbc"] and args.seeds == [0, 1, 2]


def test_widowx_profiles_train_on_normalised_actions_and_the_cpu_profile_is_fp32():
    learning = _load("learning")
    for profile in ("cpu", "paper"):
        args = learning.parse_args(["--env", "widowx", "--profile", profile])
        assert "normalize_actions=true" in args.base_overrides
    cpu = learning.parse_args(["--env", "widowx", "--profile", "cpu"])
    assert not any(o.startswith("bf16") for o in cpu.base_overrides)
    assert "normalize_actions=true" not in learning.parse_args(["--env", "pointmass"]).base_overrides


def test_experiment_row_trains_evaluates_every_widowx_task_and_resumes_longer(tmp_path):
    pytest.importorskip("mujoco")
    from crl_ros.sim import widowx
    from crl_ros.sim.rollout import write_demos

    experiment = _load("experiment")
    data = tmp_path / "d.h5"
    write_demos(data, "widowx", "all", 7, seed=3)
    argv = ["tiny", "--data", str(data), "--algo", "gcbc", "--steps", "3", "--episodes", "1", "--mean-only",
            "--set", "batch_size=8", "hidden_width=16", "hidden_depth=2", "encoder_channels=[4,4,4]",
            "--workdir", str(tmp_path / "runs"), "--out", str(tmp_path / "row.json")]
    row = experiment.main(argv)
    saved = json.loads((tmp_path / "row.json").read_text())
    assert saved["mean"]["per_task"].keys() == set(widowx.TASKS) and "sampled" not in saved
    assert saved["eval"] == {"seed": 100, "episodes_per_task": 1, "gripper": "binary"} and not saved["resumed"]
    # the cpu profile's sizes, the suite's normalised actions, then --set (which wins)
    assert saved["overrides"][:1] == ["batch_size=128"] and "normalize_actions=true" in saved["overrides"]
    assert saved["overrides"][-1] == "encoder_channels=[4,4,4]" and row["steps"] == 3
    longer = experiment.main([*argv[:6], "5", *argv[7:]])
    assert longer["resumed"] and longer["steps"] == 5
    # --eval-only re-evaluates the run's model (here with the authors' continuous gripper) without training
    model = tmp_path / "runs" / "tiny" / "model.pt"
    before = (model.stat().st_mtime_ns, model.read_bytes())
    again = experiment.main([*argv, "--eval-only", "--gripper", "continuous"])
    assert again["eval_only"] and again["train_cpu_s"] is None and again["eval"]["gripper"] == "continuous"
    assert again["mean"]["per_task"].keys() == set(widowx.TASKS)
    assert again["model_config"]["hidden_width"] == 16 and "overrides" not in again
    assert (model.stat().st_mtime_ns, model.read_bytes()) == before  # nothing trained or rewritten


def test_ranking_table_averages_the_saved_rows_of_each_seed(tmp_path, monkeypatch):
    ranking = _load("ranking_table")
    rows = tmp_path / "experiments"
    rows.mkdir()
    per_task = {t: 0.5 for t in ranking.TASKS}
    for name, success in (("a0", 0.2), ("a1", 0.4), ("b0", 0.9)):
        (rows / f"{name}.json").write_text(json.dumps({"sampled": {"success": success, "per_task": per_task},
                                                       "mean": {"success": success / 2, "per_task": per_task}}))
    monkeypatch.setattr(ranking, "ROWS", rows)
    monkeypatch.setattr(ranking, "TABLES", {100: {"A": ["a0", "a1", "a2_missing"], "B": ["b0"], "C": ["none"]}})
    lines = ranking.table(100).splitlines()
    assert len(lines) == 4  # header, rule, A, B (C has no saved row)
    assert lines[2].startswith("| A | 0, 1 | **30.0 ± 14.1%** | 20.0, 40.0 | 15.0 ± 7.1% | 50 |")
    assert lines[3].startswith("| B | 0 | **90.0%** | 90.0 | 45.0% |")


def test_reach_precision_replays_crl_evals_reach_episodes(tmp_path):
    """bench/reach_precision.py: the same episodes as `crl eval` (seed 100): its success
    matches the evaluation's for the bundled model's first reach episodes."""
    pytest.importorskip("mujoco")
    from crl_ros.learning.policy import Policy
    from crl_ros.sim.rollout import PolicyActor, evaluate

    model = str(Path(__file__).resolve().parents[1] / "models" / "widowx_stable_crl.pt")
    result = _load("reach_precision").main(["--model", model, "--episodes", "3", "--out", str(tmp_path / "r.json")])
    assert json.loads((tmp_path / "r.json").read_text()) == result
    evaluated = evaluate("widowx", "reach", PolicyActor(Policy.load(model, device="cpu")), 3, seed=100)["reach"]
    assert sum(e["success"] for e in result["episodes"]) == evaluated["successes"]
    assert sum(e["steps"] for e in result["episodes"]) / 3 == pytest.approx(evaluated["mean_steps"])  # the same episodes
    for e in result["episodes"]:
        assert e["closest_cm"] <= e["final_cm"] + 1e-9
        if e["success"]:
            assert e["final_cm"] <= 3.0 + 1e-6  # the reach tolerance
        # the closest approach's error, split along the camera ray and across it, has its norm
        assert np.hypot(e["closest_along_ray_cm"], e["closest_across_ray_cm"]) == pytest.approx(e["closest_cm"])
    assert result["rms_along_ray_cm"] > 0 and result["rms_across_ray_per_axis_cm"] > 0


def test_reach_precision_ray_split_is_along_the_camera_ray():
    """bench/reach_precision.py's depth split: an error along the policy camera's ray to the
    goal is all 'along' (signed: beyond the goal is positive), one across it none."""
    from crl_ros.sim.widowx_model import CAMERAS

    split = _load("reach_precision").ray_split
    goal = np.array([0.3, 0.05, 0.15])
    ray = goal - np.asarray(CAMERAS["overhead"]["pos"], float)
    ray /= np.linalg.norm(ray)
    assert split(0.02 * ray, goal) == pytest.approx((0.02, 0.0), abs=1e-12)
    assert split(-0.02 * ray, goal) == pytest.approx((-0.02, 0.0), abs=1e-12)
    across = np.cross(ray, [0.0, 0.0, 1.0])
    across *= 0.01 / np.linalg.norm(across)
    assert split(across, goal) == pytest.approx((0.0, 0.01), abs=1e-12)


def test_reach_precision_splits_episodes_by_goal_height(tmp_path):
    """The height summary: episodes fall in the workspace's z thirds, and a policy that pulls
    goals toward the middle height (short below, beyond above) correlates goal z with the
    along-ray error; --summarize writes the split into a saved result file."""
    module = _load("reach_precision")
    heights = [0.105, 0.11, 0.13, 0.14, 0.16, 0.165]
    episodes = [{"goal_xyz": [0.3, 0.0, z], "closest_along_ray_cm": 100 * (z - 0.135), "success": abs(z - 0.135) < 0.02}
                for z in heights]
    split = module.by_goal_height(episodes)
    thirds = split["thirds"]
    assert [thirds[k]["episodes"] for k in ("low", "middle", "high")] == [2, 2, 2]
    assert thirds["low"]["success_rate"] == 0.0 and thirds["middle"]["success_rate"] == 1.0
    assert thirds["low"]["mean_along_ray_cm"] < 0 < thirds["high"]["mean_along_ray_cm"]
    assert split["corr_goal_z_along_ray"] == pytest.approx(1.0)
    # no pull toward the middle: errors unrelated to height give a correlation near 0
    flat = [dict(e, closest_along_ray_cm=v) for e, v in zip(episodes, [1, -1, -1, 1, 1, -1])]
    assert abs(module.by_goal_height(flat)["corr_goal_z_along_ray"]) < 0.3
    saved = tmp_path / "r.json"
    saved.write_text(json.dumps({"episodes": episodes}))
    module.main(["--summarize", str(saved)])
    assert json.loads(saved.read_text())["by_goal_height"] == split
    # a run with no high goal (and too few episodes for a correlation) still summarises
    saved.write_text(json.dumps({"episodes": episodes[:2]}))
    low_only = module.main(["--summarize", str(saved)])[str(saved)]
    assert low_only["thirds"]["high"]["success_rate"] is None and low_only["corr_goal_z_along_ray"] is None


def test_goal_readout_probe_runs_and_splits_its_error_along_the_camera_ray(tmp_path):
    """bench/goal_readout.py at toy scale: trains the supervised goal read-out on goal
    images, tests it on crl eval's reach goals, and its ray split is the geometry's."""
    pytest.importorskip("mujoco")
    from crl_ros.sim.widowx_model import CAMERAS

    readout = _load("goal_readout")
    goal = np.array([[0.3, 0.05, 0.15], [0.2, -0.1, 0.1]])
    ray = goal - np.asarray(CAMERAS["overhead"]["pos"], float)
    ray /= np.linalg.norm(ray, axis=1, keepdims=True)
    along, across = readout.ray_split(0.01 * ray, goal)  # the batched form of reach_precision's
    assert along == pytest.approx([0.01, 0.01]) and across == pytest.approx([0.0, 0.0], abs=1e-12)

    result = readout.main(["--train-goals", "12", "--test-goals", "4", "--steps", "3", "--augment",
                           "--out", str(tmp_path / "g.json")])
    assert json.loads((tmp_path / "g.json").read_text())["probes"] == result["probes"]
    (row,) = result["probes"]
    assert row["image_size"] == 48 and row["augment"] and row["steps"] == 3
    assert row["rms_along_ray_cm"] > 0 and row["rms_across_ray_per_axis_cm"] > 0
    assert 0.0 <= row["within_3cm"] <= 1.0


def test_goal_readout_from_a_trained_policys_frozen_encoder(tmp_path):
    """bench/goal_readout.py --encoder-from: the bundled policy's encoder, frozen, fed the start
    observation and the goal image stacked; only a head trains; the result splits the error by
    goal height as reach_precision does."""
    pytest.importorskip("mujoco")
    model = str(Path(__file__).resolve().parents[1] / "models" / "widowx_stable_crl.pt")
    readout = _load("goal_readout")
    before = Path(model).read_bytes()
    result = readout.main(["--encoder-from", model, "--train-goals", "10", "--test-goals", "6", "--steps", "3",
                           "--out", str(tmp_path / "g.json")])
    (row,) = result["probes"]
    assert row["encoder_from"] == model and row["image_size"] == 48 and row["steps"] == 3
    assert sum(t["episodes"] for t in row["by_goal_height"]["thirds"].values()) == 6
    assert row["rms_along_ray_cm"] > 0 and 0.0 <= row["within_3cm"] <= 1.0
    assert Path(model).read_bytes() == before  # the model is only read
