"""bench/robustness.py at toy scale: a tiny model, 1 episode, 1 task, 1-2 shifts. The JSON
(configuration, machine, seeds, cells with Wilson intervals, summary), continuing an
interrupted run, workers, the Markdown tables and the chart."""
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mujoco")

from crl_ros.cli import main as crl  # noqa: E402
from crl_ros.sim.rollout import EVAL_SEEDS, wilson_interval  # noqa: E402

BENCH = Path(__file__).resolve().parents[1] / "bench"
TOY = ["--episodes", "1", "--tasks", "reach", "--max-steps", "8"]


def _load():
    spec = importlib.util.spec_from_file_location("robustness", BENCH / "robustness.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["robustness"] = module  # its worker function is pickled by name for --workers
    spec.loader.exec_module(module)  # (the module puts bench/ on sys.path, where workers find it)
    return module


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    root = tmp_path_factory.mktemp("robustness")
    data = root / "demos.h5"
    assert crl(["demos", "--env", "widowx", "--task", "reach", "--episodes", "1", "--out", str(data)]) == 0
    assert crl(["train", "--data", str(data), "--algo", "gcbc", "--out", str(root / "run"), "--steps", "1",
                "--batch-size", "8", "--set", "hidden_width=16", "hidden_depth=1", "encoder_channels=[4, 4, 4]",
                "normalize_actions=true", "--no-progress"]) == 0
    return root / "run" / "model.pt"


def test_toy_run_writes_json_table_and_chart(tiny_model, tmp_path, capsys):
    from PIL import Image

    bench = _load()
    out, chart, md = tmp_path / "robustness_toy.json", tmp_path / "chart.png", tmp_path / "table.md"
    assert bench.main(["--models", f"tiny={tiny_model}", *TOY, "--shifts", "light,distractors", "--workers", "2",
                       "--out", str(out), "--report", "--chart", str(chart), "--markdown", str(md)]) == 0
    result = json.loads(out.read_text())
    cfg = result["config"]
    assert (cfg["seeds"], cfg["seed"], cfg["episodes"], cfg["tasks"]) == ("test", EVAL_SEEDS["test"], 1, ["reach"])
    assert cfg["severities"] == ["mild", "moderate", "strong"] and cfg["goal_cases"] == ["same", "nominal"]
    run = result["invocations"][-1]
    assert run["cells_run"] == 11 and run["workers"] == 2 and "finished" in run
    assert {"cpu", "platform", "torch"} <= set(run["machine"])
    assert result["models"]["tiny"]["algorithm"] == "gcbc" and len(result["models"]["tiny"]["sha256"]) == 64
    # nominal + light x 3 severities x 2 goal cases + distractors (mild = moderate = one cup, run once) x 2
    assert len(result["conditions"]) == 11 and len(result["cells"]) == 11
    assert result["conditions"]["distractors=1, goal nominal"]["severities"] == ["mild", "moderate"]
    for cell in result["cells"].values():
        assert cell["episodes"] == 1 and cell["seed"] == EVAL_SEEDS["test"]
        assert cell["ci95"] == list(wilson_interval(cell["successes"], 1))
    summary = result["summary"]["tiny"]["light=+-0.3, goal same"]
    assert summary["complete"] and summary["episodes"] == 1

    printed = capsys.readouterr().out
    table = md.read_text()
    assert table.strip() in printed
    assert "| model | shift | goal | nominal | mild | moderate | strong |" in table
    assert "| tiny | distractors | nominal | |" in table
    assert "| tiny | light moderate (light=+-0.3), goal same |" in table
    pixels = np.asarray(Image.open(chart).convert("RGB"))
    assert pixels.shape[1] > 400  # two panels
    assert (pixels == bench.COLOURS[0]).all(-1).sum() > 50  # the model's lines and points are drawn


def test_a_cell_is_what_crl_eval_measures(tiny_model, tmp_path):
    from crl_ros.learning.policy import Policy
    from crl_ros.sim.rollout import PolicyActor, evaluate
    from crl_ros.sim.shifts import ShiftSpec

    bench = _load()
    out = tmp_path / "r.json"
    assert bench.main(["--models", str(tiny_model), *TOY, "--shifts", "camera_rot", "--severities", "moderate",
                       "--goal-cases", "nominal", "--workers", "1", "--out", str(out)]) == 0
    cell = json.loads(out.read_text())["cells"]["run | camera_rot=3, goal nominal | reach"]
    direct = evaluate("widowx", "reach", PolicyActor(Policy.load(tiny_model, device="cpu")), episodes=1,
                      seed=EVAL_SEEDS["test"], max_steps=8, shift=ShiftSpec.parse(["camera_rot=3"], goal="nominal"))
    assert (cell["successes"], cell["mean_steps"]) == (direct["reach"]["successes"], direct["reach"]["mean_steps"])


def test_an_interrupted_run_continues_and_other_settings_are_refused(tiny_model, tmp_path, capsys):
    bench = _load()
    out = tmp_path / "r.json"
    args = ["--models", f"tiny={tiny_model}", *TOY, "--shifts", "light", "--severities", "mild",
            "--goal-cases", "same", "--workers", "1", "--out", str(out)]
    assert bench.main(args) == 0
    first = json.loads(out.read_text())
    kept = first["cells"]["tiny | none | reach"]
    del first["cells"]["tiny | light=+-0.15, goal same | reach"]  # as if stopped before that cell
    out.write_text(json.dumps(first))
    assert bench.main(args + ["--goal-cases", "same,nominal"]) == 0  # continue, and cover one goal case more
    second = json.loads(out.read_text())
    assert second["invocations"][-1]["cells_run"] == 2 and len(second["invocations"]) == 2
    assert second["cells"]["tiny | none | reach"] == kept
    assert set(second["cells"]) == {"tiny | none | reach", "tiny | light=+-0.15, goal same | reach",
                                    "tiny | light=+-0.15, goal nominal | reach"}
    capsys.readouterr()
    assert bench.main([*args[:-2], "--out", str(out), "--episodes", "2"]) == 2
    assert "was run with episodes 1, not 2" in capsys.readouterr().err
    assert bench.main(["--report-only", "--out", str(out), "--chart", str(tmp_path / "c.png")]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("| tiny | light | same |"))
    assert row.endswith(" | - | - |") and "[" in row  # mild measured, moderate and strong not run
    assert bench.main([*args[:-2], "--out", str(out), "--episodes", "2", "--fresh"]) == 0  # start over
    fresh = json.loads(out.read_text())
    assert fresh["config"]["episodes"] == 2 and len(fresh["invocations"]) == 1 and len(fresh["cells"]) == 2


@pytest.mark.parametrize("argv, problem", [
    (["--shifts", "fog"], "--shifts: fog unknown"),
    (["--tasks", "juggle"], "--tasks: juggle unknown"),
    (["--severities", "extreme"], "--severities: extreme unknown"),
    (["--models", "missing.pt"], "--models missing: checkpoint missing.pt does not exist"),
    (["--report-only", "--out", "nowhere.json"], "--report-only: nowhere.json does not exist"),
])
def test_bad_arguments_name_the_problem(argv, problem, capsys):
    assert _load().main(argv) == 2
    assert problem in capsys.readouterr().err


def _synthetic_result(path: Path) -> dict:
    """A result JSON as a finished run writes it: two seeds of one algorithm, one of another,
    nominal and one shift, two tasks (no simulator needed)."""
    bench = _load()
    tasks, wins = ["reach", "push_block"], {"a_s1": (9, 5), "a_s2": (7, 1), "b_s1": (2, 0)}
    conditions = {"none": {"shift": "nominal", "goal": "same", "severities": ["nominal"], "spec": ""},
                  "light=+-0.3, goal nominal": {"shift": "light", "goal": "nominal", "severities": ["moderate"],
                                                "spec": "light=+-0.3"}}
    cells = {}
    for model, (reach, push) in wins.items():
        for key in conditions:
            for task, s in zip(tasks, (reach, push)):
                s = s if key == "none" else s // 2
                cells[bench.cell_key(model, key, task)] = {
                    "model": model, "condition": key, "task": task, "successes": s, "episodes": 10,
                    "success_rate": s / 10, "ci95": list(wilson_interval(s, 10))}
    result = {"benchmark": "robustness", "suite": "widowx", "invocations": [], "cells": cells,
              "config": {"seeds": "test", "seed": EVAL_SEEDS["test"], "episodes": 10, "max_steps": None,
                         "tasks": tasks, "shifts": ["light"], "severities": ["moderate"], "goal_cases": ["nominal"]},
              "models": {m: {"path": f"{m}.pt", "sha256": "0" * 64, "algorithm": m[0]} for m in wins},
              "conditions": conditions}
    bench.write_json(path, result)
    return result


def test_pool_sums_each_groups_episodes_with_a_wilson_interval_and_the_seed_range(tmp_path, capsys):
    bench, out = _load(), tmp_path / "result.json"
    _synthetic_result(out)
    assert "pooled" not in json.loads(out.read_text())
    assert bench.main(["--report-only", "--out", str(out), "--chart", str(tmp_path / "c.png"),
                       "--pool", "A=a_s1,a_s2", "B=b_s1"]) == 0
    result = json.loads(out.read_text())
    assert result["pools"] == {"A": ["a_s1", "a_s2"], "B": ["b_s1"]}
    nominal = result["pooled"]["A"]["none"]
    # reach 9 + 7 of 20, push 5 + 1 of 20: 22 of 40; the seeds' own means 14/20 and 8/20
    assert (nominal["successes"], nominal["episodes"]) == (22, 40)
    assert nominal["ci95"] == list(wilson_interval(22, 40))
    assert nominal["model_range"] == [0.4, 0.7] and nominal["complete"]
    assert nominal["tasks"]["reach"] == {"successes": 16, "episodes": 20, "success_rate": 0.8}
    shifted = result["pooled"]["A"]["light=+-0.3, goal nominal"]
    assert (shifted["successes"], shifted["episodes"]) == (4 + 3 + 2 + 0, 40)  # halved, rounded down
    assert result["pooled"]["B"]["none"]["successes"] == 2
    table = capsys.readouterr().out
    assert "| A (n=2) | none | 80 | 30 | 55 [40, 69] | 40-70 |" in table
    assert "| B (n=1) | light moderate, goal nominal | 10 | 0 |" in table
    # the groups stay in the JSON: a later report without --pool still has them
    assert bench.main(["--report-only", "--out", str(out), "--chart", str(tmp_path / "c.png")]) == 0
    assert "| A (n=2) | none |" in capsys.readouterr().out


@pytest.mark.parametrize("pool, problem", [
    ("A=a_s1,zz", "--pool A: no model labelled zz"),
    ("A", "--pool 'A': write GROUP=LABEL,LABEL,..."),
    ("A=", "--pool 'A=': write GROUP=LABEL,LABEL,..."),
])
def test_a_bad_pool_names_the_problem(tmp_path, pool, problem, capsys):
    out = tmp_path / "result.json"
    _synthetic_result(out)
    before = out.read_text()
    assert _load().main(["--report-only", "--out", str(out), "--pool", pool]) == 2
    assert problem in capsys.readouterr().err
    assert out.read_text() == before  # nothing written
