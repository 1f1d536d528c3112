"""`crl calibrate`: calibrate (or, with --report, measure) a model's goal-reached detector in
simulation: AUROC of the critic's goal score vs task_success per task, and the threshold
policy_node's ``hold_on_goal`` uses (crl_ros.learning.calibration).

Calibration always runs on the held-out protocol's *selection* seeds and the report on its
*test* seeds (crl_ros.sim.rollout.EVAL_SEEDS, docs/results.md): the threshold is never chosen
on the episodes it is reported on.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HELP = "choose and store the goal-reached threshold of a model (selection seeds); --report: measure it (test seeds)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from crl_ros.argtypes import positive_int
    from crl_ros.learning.calibration import MAX_FALSE_RATE, STEPS_AFTER_SUCCESS, TICK_CHOICES
    from crl_ros.sim.suites import SUITES, tasks_help

    parser.add_argument("--model", required=True, help="checkpoint file or run directory (model.pt)")
    parser.add_argument("--env", default="widowx", choices=sorted(SUITES), help="simulated env suite")
    parser.add_argument("--task", default="all", help=f"a task of the suite, or 'all' ({tasks_help()})")
    parser.add_argument("--episodes", type=positive_int, default=None,
                        help="episodes per task (default: 10 to calibrate, 50 with --report)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--out", help="write the calibrated model here (default: MODEL_calibrated.pt beside it)")
    where.add_argument("--in-place", action="store_true", help="write the calibration into MODEL itself")
    where.add_argument("--report", action="store_true",
                       help="write nothing: measure the model's stored threshold (and AUROC) on the test seeds")
    parser.add_argument("--max-false-rate", type=float, default=MAX_FALSE_RATE,
                        help="most episodes (fraction) the chosen threshold may call reached before success")
    parser.add_argument("--ticks", type=positive_int, nargs="+", default=list(TICK_CHOICES),
                        help="consecutive ticks above the threshold to try (the detector's N)")
    parser.add_argument("--steps-after-success", type=positive_int, default=STEPS_AFTER_SUCCESS,
                        help="steps each episode goes on after its first success (the detector fires in them)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--json", help="also write the figures as JSON to this file")


def measure_episodes(policy, suite_name: str, task: str, episodes: int, seed: int,
                     steps_after_success: int, progress: bool = False) -> list[dict]:
    """Roll ``policy`` out with crl_ros.sim.rollout.evaluate (its seeds, starts and goals; the
    model's own sampling and gripper settings), each episode going on ``steps_after_success``
    steps past its first success, and score every image against its goal with the critic.
    One dict per episode: ``task``, ``index``, ``scores`` [T+1], ``success`` [T+1] and
    ``image_distance`` [T+1] (mean absolute pixel difference to the goal image, a reference)."""
    from crl_ros.sim.rollout import PolicyActor, evaluate

    records: list[dict] = []

    def score_episode(task_name: str, index: int, ep: dict) -> None:
        scores = policy.score(ep["images"], ep["goal_image"])
        distance = np.abs(ep["images"].astype(np.float32) - ep["goal_image"].astype(np.float32)).mean(axis=(1, 2, 3))
        records.append({"task": task_name, "index": index, "scores": np.asarray(scores, np.float64).reshape(-1),
                        "success": np.asarray(ep["step_success"], bool), "image_distance": distance})

    evaluate(suite_name, task, PolicyActor(policy), episodes=episodes, seed=seed, image_size=policy.image_shape[0],
             progress=progress, steps_after_success=steps_after_success, on_episode=score_episode)
    return records


def format_report(report: dict[str, dict], title: str) -> str:
    width = max(len(task) for task in report)
    lines = [title, f"{'task':<{width}}  episodes  reached  AUROC  in-episode  pixels  detected  false reached  silent"]
    for task, row in report.items():
        auroc, within, pixels = ("  n/a" if np.isnan(row.get(k, np.nan)) else f"{row[k]:.3f}"
                                 for k in ("auroc", "auroc_within_episode", "auroc_pixels"))
        detector = (f"{row['detected']:>8}  {row['false_reached']:>4} ({100 * row['false_reached_rate']:4.1f}%)"
                    f"  {row['silent']:>6}") if "detected" in row else ""
        lines.append(f"{task:<{width}}  {row['episodes']:>8}  {row['successful_episodes']:>7}  {auroc}       {within}"
                     f"   {pixels}  {detector}")
    lines.append("AUROC: of the goal score at each step vs task_success; in-episode: the mean of each episode's own "
                 "AUROC (the goal's offset removed); pixels: AUROC of minus the mean pixel difference to the goal "
                 "image (a reference, not used by the detector)")
    return "\n".join(lines)


def calibrate(args, policy, source: Path) -> tuple[dict, dict]:
    """Measure on selection seeds, choose the threshold; returns (figures, calibration dict)."""
    from crl_ros.learning.calibration import GoalCalibration, choose_threshold, per_task_report
    from crl_ros.sim.rollout import EVAL_SEEDS

    seed = EVAL_SEEDS["selection"]
    episodes = measure_episodes(policy, args.env, args.task, args.episodes or 10, seed,
                                args.steps_after_success, progress=True)
    threshold, ticks, outcome = choose_threshold(episodes, args.max_false_rate, args.ticks)
    report = per_task_report(episodes, threshold, ticks)
    measured = {"env": args.env, "task": args.task, "seeds": "selection", "seed": seed,
                "episodes_per_task": args.episodes or 10, "steps_after_success": args.steps_after_success,
                "model": str(source), "detection_rate": outcome["detection_rate"],
                "false_reached_rate": outcome["false_reached_rate"], "auroc": report["all"]["auroc"]}
    calibration = GoalCalibration(threshold=threshold, ticks=ticks, max_false_rate=args.max_false_rate,
                                  measured=measured).to_dict()
    return {"seeds": "selection", "seed": seed, "threshold": threshold, "ticks": ticks, "tasks": report}, calibration


def report_test(args, policy) -> dict:
    """The stored threshold (if any) and the AUROC, measured on test seeds."""
    from crl_ros.learning.calibration import GoalCalibration, per_task_report
    from crl_ros.sim.rollout import EVAL_SEEDS

    stored = GoalCalibration.from_meta(policy.meta.calibration)
    seed = EVAL_SEEDS["test"]
    episodes = measure_episodes(policy, args.env, args.task, args.episodes or 50, seed,
                                args.steps_after_success, progress=True)
    report = per_task_report(episodes, stored.threshold if stored else None, stored.ticks if stored else None)
    return {"seeds": "test", "seed": seed, "threshold": stored.threshold if stored else None,
            "ticks": stored.ticks if stored else None, "tasks": report}


def json_safe(value):
    """``value`` for JSON: NaN (the AUROC of a task without successes) as null, numpy numbers as Python's."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return None if np.isnan(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def output_path(args, source: Path) -> Path:
    """Where the calibrated model goes; the input only with --in-place."""
    if args.in_place:
        return source
    out = Path(args.out) if args.out else source.with_name(f"{source.stem}_calibrated.pt")
    if out.resolve() == source.resolve():
        raise ValueError(f"--out {out} is the input model; pass --in-place to overwrite it")
    return out


def run(args: argparse.Namespace) -> int:
    from crl_ros.learning.checkpoint import CheckpointError, load_checkpoint, set_calibration
    from crl_ros.learning.policy import Policy

    if not 0.0 <= args.max_false_rate < 1.0:
        print(f"crl calibrate: --max-false-rate must be in [0, 1), got {args.max_false_rate}", file=sys.stderr)
        return 2
    try:
        source = load_checkpoint(args.model).path
        policy = Policy.load(source, device=args.device)
        out = None if args.report else output_path(args, source)
    except (CheckpointError, ValueError) as exc:
        print(f"crl calibrate: {exc}", file=sys.stderr)
        return 2
    if policy.score(np.zeros(policy.image_shape, np.uint8), np.zeros(policy.image_shape, np.uint8)) is None:
        print(f"crl calibrate: the {policy.algorithm} model has no critic, so no goal score to calibrate",
              file=sys.stderr)
        return 2
    try:
        if args.report:
            figures = report_test(args, policy)
        else:
            figures, calibration = calibrate(args, policy, source)
    except ValueError as exc:  # an unknown task
        print(f"crl calibrate: {exc}", file=sys.stderr)
        return 2
    episodes = figures["tasks"]["all"]["episodes"] // max(len(figures["tasks"]) - 1, 1)
    detector = ("no stored threshold (crl calibrate first)" if figures["threshold"] is None else
                f"threshold {figures['threshold']:+.3f} for {figures['ticks']} ticks")
    print(format_report(figures["tasks"], f"{args.env}: {source}, {episodes} episodes per task, {figures['seeds']} "
                                          f"seed {figures['seed']}; detector: {detector}"))
    if out is not None:
        set_calibration(source, calibration, out=out)
        print(f"calibrated model: {out} (goal threshold {calibration['threshold']:+.3f}, "
              f"{calibration['ticks']} ticks; policy_node hold_on_goal:=true uses it)")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(json_safe({"model": str(source), "out": str(out) if out else None,
                                                         **figures}), indent=2))
    return 0
