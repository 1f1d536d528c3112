"""The goal-reached detector's pure functions (AUROC with ties, first firing, outcomes, the
threshold choice), the calibration stored in a model and loaded back (and models without
one), and `crl calibrate` at toy scale."""
import hashlib
import itertools
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from crl_ros.learning import calibration as cal
from crl_ros.learning.checkpoint import load_checkpoint, set_calibration

REPO = Path(__file__).resolve().parents[2]
LEGACY = REPO / "test" / "fixtures" / "legacy_model_step8500.pt"


def _pairwise_auroc(scores, labels) -> float:
    """The definition: P(positive > negative) + P(tie) / 2 over every pair."""
    pos = [s for s, y in zip(scores, labels) if y]
    neg = [s for s, y in zip(scores, labels) if not y]
    wins = sum((p > n) + 0.5 * (p == n) for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def test_auroc_known_values():
    assert cal.auroc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.75)  # the sklearn docs' example
    assert cal.auroc([1, 2, 3, 4], [0, 0, 1, 1]) == 1.0
    assert cal.auroc([1, 2, 3, 4], [1, 1, 0, 0]) == 0.0
    assert cal.auroc([5, 5, 5, 5], [0, 1, 0, 1]) == 0.5  # all tied: chance
    # one positive tied with one of two negatives: (1 + 0.5) / 2
    assert cal.auroc([1.0, 2.0, 2.0], [0, 0, 1]) == pytest.approx(0.75)
    assert np.isnan(cal.auroc([1, 2], [1, 1])) and np.isnan(cal.auroc([1, 2], [0, 0]))
    with pytest.raises(ValueError, match="3 scores for 2 labels"):
        cal.auroc([1, 2, 3], [0, 1])


def test_auroc_matches_the_pairwise_definition_with_many_ties():
    rng = np.random.default_rng(0)
    for _ in range(20):
        scores = rng.integers(0, 5, 40).astype(float)  # few distinct values: many ties
        labels = rng.random(40) < 0.4
        assert cal.auroc(scores, labels) == pytest.approx(_pairwise_auroc(scores, labels))


def test_first_fire_needs_the_last_ticks_scores_at_or_above_the_threshold():
    scores = [0, 5, 4, 1, 5, 5, 5]
    assert cal.first_fire(scores, 4.0, 1) == 1
    assert cal.first_fire(scores, 4.0, 2) == 2   # 5, 4: at the threshold counts
    assert cal.first_fire(scores, 4.5, 2) == 5
    assert cal.first_fire(scores, 4.0, 3) == 6
    assert cal.first_fire(scores, 4.0, 4) is None
    assert cal.first_fire(scores, 9.0, 1) is None
    assert cal.first_fire([7.0], 1.0, 2) is None  # shorter than the window
    with pytest.raises(ValueError, match="ticks"):
        cal.first_fire(scores, 1.0, 0)


def test_first_fires_for_many_thresholds_equals_one_at_a_time():
    rng = np.random.default_rng(1)
    scores = rng.normal(size=30)
    thresholds = np.sort(rng.normal(size=25))
    for ticks in (1, 2, 4):
        fires = cal.first_fires(scores, thresholds, ticks)
        slow = []
        for t in thresholds:
            hits = [i for i in range(ticks - 1, scores.size) if (scores[i - ticks + 1:i + 1] >= t).all()]
            slow.append(hits[0] if hits else -1)
        assert fires.tolist() == slow


def _episode(scores, success, task="t"):
    return {"task": task, "scores": np.asarray(scores, float), "success": np.asarray(success, bool)}


def test_detector_outcomes_count_detected_false_and_silent():
    episodes = [_episode([0, 1, 9, 9], [0, 0, 1, 1]),   # fires at 3 (ticks 2), a success: detected
                _episode([9, 9, 0, 0], [0, 0, 1, 1]),   # fires at 1, before success: false reached
                _episode([0, 9, 0, 9], [0, 1, 1, 1])]   # never 2 in a row: silent
    out = cal.detector_outcomes(episodes, threshold=5.0, ticks=2)
    assert (out["detected"], out["false_reached"], out["silent"], out["episodes"]) == (1, 1, 1, 3)
    assert out["detection_rate"] == pytest.approx(1 / 3) and out["false_reached_rate"] == pytest.approx(1 / 3)


def test_choose_threshold_detects_most_within_the_false_rate():
    rng = np.random.default_rng(2)
    episodes = []
    for i in range(40):  # scores rise towards a success from step 12 on; noisy
        success = np.arange(20) >= 12
        scores = np.where(success, 3.0, 0.0) + rng.normal(0, 0.6, 20)
        if i < 4:  # four episodes look reached early for a while
            scores[3:6] = 5.0
        episodes.append(_episode(scores, success))
    threshold, ticks, out = cal.choose_threshold(episodes, max_false_rate=0.05)
    assert out["false_reached_rate"] <= 0.05
    assert out["detection_rate"] >= 0.85
    # every other allowed (threshold, ticks) detects no more
    for t in (1, 2, 3, 5, 7):
        for candidate in np.unique(np.concatenate([e["scores"] for e in episodes])):
            other = cal.detector_outcomes(episodes, float(candidate), t)
            if other["false_reached_rate"] <= 0.05:
                assert other["detected"] <= out["detected"]
    assert cal.detector_outcomes(episodes, threshold, ticks) == out
    # a bound of 0 with false alarms everywhere: the detector is switched off (fires never)
    hopeless = [_episode([9, 9, 9, 0], [0, 0, 0, 1])] * 5
    threshold, ticks, out = cal.choose_threshold(hopeless, max_false_rate=0.0)
    assert threshold > 9 and out["silent"] == 5
    with pytest.raises(ValueError, match="no episodes"):
        cal.choose_threshold([])


def test_per_task_report_has_auroc_and_outcomes_per_task_and_in_all():
    episodes = [_episode([0, 1, 2], [0, 0, 1], "a"), _episode([0, 2, 1], [0, 1, 0], "b")]
    report = cal.per_task_report(episodes, threshold=1.5, ticks=1)
    assert list(report) == ["a", "b", "all"]
    assert report["a"]["auroc"] == 1.0 and report["b"]["auroc"] == 1.0
    assert report["all"]["steps"] == 6 and report["all"]["success_steps"] == 2
    assert report["a"]["detected"] == 1 and report["b"]["detected"] == 1
    assert "detected" not in cal.per_task_report(episodes, None, None)["a"]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_calibration_is_stored_in_a_copy_and_loaded_and_old_models_have_none(tmp_path):
    from crl_ros.learning.policy import Policy

    before = _sha(LEGACY)
    old = Policy.load(LEGACY, device="cpu")
    assert old.meta.calibration is None and cal.GoalCalibration.from_meta(old.meta.calibration) is None
    stored = cal.GoalCalibration(threshold=1.25, ticks=3, measured={"seeds": "selection", "seed": 100}).to_dict()
    out = set_calibration(LEGACY, stored, out=tmp_path / "calibrated.pt")
    assert _sha(LEGACY) == before  # the input is untouched
    policy = Policy.load(out, device="cpu")
    loaded = cal.GoalCalibration.from_meta(policy.meta.calibration)
    assert (loaded.threshold, loaded.ticks, loaded.measured["seed"]) == (1.25, 3, 100) and loaded.created
    # the weights and every other field are those of the input
    rng = np.random.default_rng(0)
    obs, goal = rng.integers(0, 256, (2, 4, 48, 48, 3), dtype=np.uint8)
    np.testing.assert_array_equal(policy.act(obs, goal, sample=False), old.act(obs, goal, sample=False))
    assert {k: v for k, v in policy.meta.to_dict().items() if k != "calibration"} == \
        {k: v for k, v in old.meta.to_dict().items() if k != "calibration"}
    # removed again
    assert load_checkpoint(set_calibration(out, None)).meta.calibration is None
    with pytest.raises(ValueError, match="malformed"):
        cal.GoalCalibration.from_meta({"threshold": "high"})


def _calibrate(*args, timeout=600) -> subprocess.CompletedProcess:
    env = dict(os.environ, MUJOCO_GL=os.environ.get("MUJOCO_GL", "egl"), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "crl_ros.cli", "calibrate", *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


def test_crl_calibrate_writes_a_copy_and_reports_on_test_seeds(tmp_path):
    """Toy scale: the legacy model on `reach`, 2 episodes. The threshold goes into the copy,
    the input is untouched, --report reads it back on the test seeds."""
    import json

    before = _sha(LEGACY)
    out = tmp_path / "calibrated.pt"
    result = _calibrate("--model", str(LEGACY), "--task", "reach", "--episodes", "2", "--out", str(out),
                        "--device", "cpu", "--json", str(tmp_path / "selection.json"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "selection seed 100" in result.stdout and f"calibrated model: {out}" in result.stdout
    assert _sha(LEGACY) == before
    figures = json.loads((tmp_path / "selection.json").read_text())
    stored = load_checkpoint(out).meta.calibration
    assert stored["threshold"] == figures["threshold"] and stored["ticks"] == figures["ticks"]
    assert stored["measured"]["seeds"] == "selection" and figures["tasks"]["reach"]["episodes"] == 2
    report = _calibrate("--model", str(out), "--task", "reach", "--episodes", "2", "--report", "--device", "cpu",
                        "--json", str(tmp_path / "test.json"))
    assert report.returncode == 0, report.stderr[-3000:]
    assert "test seed 1000" in report.stdout and f"threshold {stored['threshold']:+.3f}" in report.stdout
    assert json.loads((tmp_path / "test.json").read_text())["threshold"] == stored["threshold"]
    assert not list(tmp_path.glob("*_calibrated.pt"))  # --report writes no model


def test_crl_calibrate_refuses_to_overwrite_its_input_unless_told(tmp_path):
    result = _calibrate("--model", str(LEGACY), "--out", str(LEGACY), "--task", "reach", "--episodes", "1")
    assert result.returncode == 2 and "pass --in-place" in result.stderr and "Traceback" not in result.stderr
    result = _calibrate("--model", str(tmp_path / "missing.pt"))
    assert result.returncode == 2 and "does not exist" in result.stderr and "Traceback" not in result.stderr


def test_run_episode_goes_on_after_success_and_records_each_steps_success():
    """The rollout hook calibration uses: steps_after_success more steps past the first
    success, ``step_success`` one flag per image; without it the episode ends at success."""
    from crl_ros.sim.pointmass import make_env
    from crl_ros.sim.rollout import ScriptedActor, run_episode

    env = make_env("reach_center")
    plain = run_episode(env, ScriptedActor("pointmass", seed=0, noise=0.0), seed=3)
    assert plain["success"] and plain["step_success"].tolist() == [False] * plain["steps"] + [True]
    longer = run_episode(env, ScriptedActor("pointmass", seed=0, noise=0.0), seed=3, steps_after_success=4)
    assert longer["steps"] == plain["steps"] + 4 and len(longer["step_success"]) == len(longer["images"])
    assert longer["step_success"][:plain["steps"] + 1].tolist() == plain["step_success"].tolist()
    np.testing.assert_array_equal(longer["images"][:plain["steps"] + 1], plain["images"])


def test_per_task_report_gives_the_pixel_reference_where_episodes_have_it():
    episodes = [{**_episode([0, 1, 2], [0, 0, 1], "a"), "image_distance": np.array([9.0, 5.0, 1.0])}]
    assert cal.per_task_report(episodes, None, None)["a"]["auroc_pixels"] == 1.0


def test_score_spread_separates_the_goal_offset_from_progress_within_an_episode():
    # each episode's scores rise at its success, but the episodes sit at offsets 0 and 10
    episodes = [_episode([0, 0, 1, 1], [0, 0, 1, 1]), _episode([10, 10, 11, 11], [0, 0, 1, 1])]
    spread = cal.score_spread(episodes)
    assert spread["between_episodes_std"] == pytest.approx(5.0)
    assert spread["within_episode_std"] == pytest.approx(0.5)
    assert spread["auroc_within_episode"] == 1.0
    assert cal.auroc(np.concatenate([e["scores"] for e in episodes]),
                     np.concatenate([e["success"] for e in episodes])) == pytest.approx(0.75)  # pooled: the offset blurs it
    assert np.isnan(cal.score_spread([_episode([1, 2], [1, 1])])["auroc_within_episode"])
