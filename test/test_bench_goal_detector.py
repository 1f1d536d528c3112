"""bench/goal_detector.py at toy scale (the bundled model, `reach`, 2 episodes): the threshold
is chosen on the selection seed and reported on the test seed, the JSON names the machine and
the command, and --write-model stores that calibration in a copy."""
import importlib.util
import json
from pathlib import Path

import pytest

pytest.importorskip("mujoco")

from crl_ros.learning.checkpoint import load_checkpoint  # noqa: E402
from crl_ros.sim.rollout import EVAL_SEEDS  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def test_toy_run_chooses_on_selection_and_reports_on_test(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("goal_detector", REPO / "bench" / "goal_detector.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    monkeypatch.chdir(REPO)
    out, model = tmp_path / "goal_detector.json", tmp_path / "calibrated.pt"
    assert bench.main(["--task", "reach", "--selection-episodes", "2", "--test-episodes", "2",
                       "--out", str(out), "--write-model", str(model)]) == 0
    result = json.loads(out.read_text())
    assert result["selection"]["seed"] == EVAL_SEEDS["selection"] and result["test"]["seed"] == EVAL_SEEDS["test"]
    assert result["selection"]["tasks"]["reach"]["episodes"] == 2 and result["test"]["tasks"]["reach"]["episodes"] == 2
    assert result["test"]["threshold"] == result["selection"]["threshold"] == result["calibration"]["threshold"]
    assert result["calibration"]["measured"]["seeds"] == "selection"
    assert set(result["targets_met"]["auroc_single_stage"]) == {"reach"}
    assert result["machine"]["torch"] and result["command"].startswith("python bench/goal_detector.py --task reach")
    assert load_checkpoint(model).meta.calibration == result["calibration"]
