"""Knowing the goal is reached: how well the critic's goal score predicts success, and the
threshold a goal-reached detector uses (policy_node's ``hold_on_goal``).

The detector fires at the first step where the score has been at or above ``threshold`` for
``ticks`` consecutive steps. Measured on simulator episodes that go on for a few steps after
their first success (`crl calibrate`, crl_ros/commands/calibrate.py), each episode is one of:

- *detected*: the detector first fires at a step whose ``task_success`` is true;
- *false reached*: it first fires at a step that is not a success (the arm would stop short);
- *silent*: it never fires (the arm keeps acting until someone stops it).

`choose_threshold` picks, on selection-seed episodes, the (threshold, ticks) that detects the
most episodes with at most ``max_false_rate`` of them falsely reached. The result is stored in
the model's checkpoint metadata (``CheckpointMeta.calibration``, `GoalCalibration.to_dict`).
`auroc` and the detector functions are pure numpy.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

#: the issue's bound on episodes the detector may wrongly call reached
MAX_FALSE_RATE = 0.05
#: consecutive ticks `choose_threshold` tries (at 5 Hz: 0.2 .. 1.4 s of agreement)
TICK_CHOICES = (1, 2, 3, 5, 7)
#: steps an episode goes on after its first success while measuring (the detector needs
#: ``ticks`` of them to fire; the policy may also leave the goal meanwhile)
STEPS_AFTER_SUCCESS = 10


def auroc(scores: Sequence[float], labels: Sequence[bool]) -> float:
    """Area under the ROC curve of ``scores`` for the binary ``labels``: the probability that a
    random positive scores above a random negative, ties counted as half (Mann-Whitney U from
    average ranks). NaN when one of the classes is empty."""
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    labels = np.asarray(labels, dtype=bool).reshape(-1)
    if scores.shape != labels.shape:
        raise ValueError(f"{scores.size} scores for {labels.size} labels")
    positives = int(labels.sum())
    negatives = labels.size - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    ranks = np.empty(scores.size, dtype=np.float64)
    # average rank (1-based) of each run of equal scores
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    ends = np.r_[starts[1:], scores.size]
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    u = ranks[labels].sum() - positives * (positives + 1) / 2.0
    return float(u / (positives * negatives))


def first_fire(scores: Sequence[float], threshold: float, ticks: int) -> int | None:
    """The first step at which the last ``ticks`` scores (it included) are all >= threshold,
    or None."""
    fires = first_fires(np.asarray(scores, dtype=np.float64), np.array([threshold], dtype=np.float64), ticks)
    return None if fires[0] < 0 else int(fires[0])


def first_fires(scores: np.ndarray, thresholds: np.ndarray, ticks: int) -> np.ndarray:
    """`first_fire` for many thresholds at once (-1: never). The window minimum m_t is the
    lowest of the last ``ticks`` scores; the detector first fires where the running maximum
    of m_t first reaches the threshold, found by binary search in that non-decreasing array."""
    if ticks < 1:
        raise ValueError(f"ticks must be >= 1, got {ticks}")
    if scores.size < ticks:
        return np.full(thresholds.shape, -1, dtype=np.int64)
    windows = np.lib.stride_tricks.sliding_window_view(scores, ticks)
    running_max = np.maximum.accumulate(windows.min(axis=1))
    index = np.searchsorted(running_max, thresholds, side="left")
    return np.where(index < running_max.size, index + ticks - 1, -1)


def detector_outcomes(episodes: Sequence[dict], threshold: float, ticks: int) -> dict[str, Any]:
    """Counts and rates of detected / false reached / silent episodes (each a dict with
    ``scores`` and ``success`` arrays, one entry per step)."""
    counts = {"detected": 0, "false_reached": 0, "silent": 0}
    for ep in episodes:
        fire = first_fire(ep["scores"], threshold, ticks)
        counts["silent" if fire is None else "detected" if ep["success"][fire] else "false_reached"] += 1
    n = max(len(episodes), 1)
    return {**counts, "episodes": len(episodes), "detection_rate": counts["detected"] / n,
            "false_reached_rate": counts["false_reached"] / n}


def choose_threshold(episodes: Sequence[dict], max_false_rate: float = MAX_FALSE_RATE,
                     tick_choices: Sequence[int] = TICK_CHOICES) -> tuple[float, int, dict[str, Any]]:
    """(threshold, ticks, outcomes) detecting the most ``episodes`` with a false-reached rate
    <= ``max_false_rate``; among equals, the fewest false reached, then the highest threshold
    (the most margin on unseen episodes). Every score seen is a candidate threshold; a
    threshold above every score (never fires, rate 0) is the fallback."""
    if not episodes:
        raise ValueError("no episodes to calibrate on")
    all_scores = np.concatenate([np.asarray(ep["scores"], np.float64) for ep in episodes])
    candidates = np.unique(all_scores)
    best_key, best = None, None
    for ticks in tick_choices:
        detected = np.zeros(candidates.size, np.int64)
        false = np.zeros(candidates.size, np.int64)
        for ep in episodes:
            fires = first_fires(np.asarray(ep["scores"], np.float64), candidates, ticks)
            fired = fires >= 0
            on_success = np.zeros(candidates.size, bool)
            on_success[fired] = np.asarray(ep["success"], bool)[fires[fired]]
            detected += on_success
            false += fired & ~on_success
        allowed = false <= max_false_rate * len(episodes)
        for i in np.flatnonzero(allowed):
            key = (int(detected[i]), -int(false[i]), float(candidates[i]), -ticks)
            if best_key is None or key > best_key:
                best_key, best = key, (float(candidates[i]), ticks)
    if best is None or best_key[0] == 0:
        best = (float(np.nextafter(all_scores.max(), np.inf)), int(tick_choices[0]))
    return best[0], best[1], detector_outcomes(episodes, *best)


def per_task_report(episodes: Sequence[dict], threshold: float | None, ticks: int | None) -> dict[str, dict]:
    """Per task (and ``"all"``): steps, success steps, AUROC of the step scores vs
    task_success, with a threshold the detector's outcomes, and where the episodes have an
    ``image_distance`` (to the goal image) the AUROC of minus it (``auroc_pixels``): how much
    of success a plain image comparison already tells, to judge the critic's score against."""
    tasks = sorted({ep["task"] for ep in episodes}, key=[ep["task"] for ep in episodes].index)
    report = {}
    for task in [*tasks, "all"]:
        chosen = [ep for ep in episodes if task in ("all", ep["task"])]
        scores = np.concatenate([ep["scores"] for ep in chosen])
        labels = np.concatenate([ep["success"] for ep in chosen])
        row = {"episodes": len(chosen), "successful_episodes": int(sum(bool(np.any(ep["success"])) for ep in chosen)),
               "steps": int(labels.size), "success_steps": int(labels.sum()), "auroc": auroc(scores, labels)}
        row.update(score_spread(chosen))
        if all("image_distance" in ep for ep in chosen):
            row["auroc_pixels"] = auroc(-np.concatenate([ep["image_distance"] for ep in chosen]), labels)
        if threshold is not None:
            row.update(detector_outcomes(chosen, threshold, ticks))
        report[task] = row
    return report


def score_spread(episodes: Sequence[dict]) -> dict[str, float]:
    """Why a threshold can fail: ``between_episodes_std`` (of the episodes' mean scores: how
    much the score depends on the goal and start) against ``within_episode_std`` (the mean
    spread inside an episode, where success comes and goes), and ``auroc_within_episode``,
    the mean AUROC of the episodes that have both success and other steps (the score
    relative to its own episode: NaN without such episodes)."""
    means = [float(np.mean(ep["scores"])) for ep in episodes]
    within = [auroc(ep["scores"], ep["success"]) for ep in episodes if 0 < np.sum(ep["success"]) < len(ep["success"])]
    return {"between_episodes_std": float(np.std(means)),
            "within_episode_std": float(np.mean([np.std(ep["scores"]) for ep in episodes])),
            "auroc_within_episode": float(np.mean(within)) if within else float("nan")}


@dataclass
class GoalCalibration:
    """What a model's goal-reached detector uses, stored in its checkpoint metadata."""

    threshold: float
    ticks: int
    max_false_rate: float = MAX_FALSE_RATE
    measured: dict[str, Any] = field(default_factory=dict)  # seeds, episodes and rates it was chosen on
    created: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["created"] = d["created"] or time.strftime("%Y-%m-%dT%H:%M:%S%z")
        return d

    @classmethod
    def from_meta(cls, calibration: dict[str, Any] | None) -> "GoalCalibration | None":
        """The calibration of a checkpoint's ``meta.calibration`` (None: not calibrated)."""
        if not calibration:
            return None
        try:
            return cls(threshold=float(calibration["threshold"]), ticks=int(calibration["ticks"]),
                       max_false_rate=float(calibration.get("max_false_rate", MAX_FALSE_RATE)),
                       measured=dict(calibration.get("measured", {})), created=str(calibration.get("created", "")))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"the model's goal calibration is malformed ({exc!r}): re-run crl calibrate") from exc

