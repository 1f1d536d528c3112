"""`crl demo` (what `make demo` runs): the simulated WidowX 250 reaches goal images through
the ROS graph (sim_node, camera_node, goal_node, policy_node, arm_node in one process) with
the bundled Stable CRL model: 5 `reach` goals and 5 `push_block` goals, one episode per sim
seed. It counts the episodes' own results (each decided once, at its first task_success),
prints what it measured per task (successes, time and actions to success) and writes a GIF
of goal | camera per episode and results.json.
``--pointmass``: the learning demo instead (scripted point-mass demos -> Stable CRL, 1,000
steps -> success on held-out goals; 9.6 minutes on a 2-core AVX2 EPYC).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "run the demo: the simulated arm reaches goal images with the bundled model (or --pointmass)"
BUNDLED_MODEL = "widowx_stable_crl.pt"
#: what `make demo` shows: moving the arm to a goal, and moving an object to a goal
DEMO_TASKS = ("reach", "push_block")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from crl_ros.argtypes import positive_float, positive_int
    from crl_ros.sim.suites import task_names

    tasks = task_names("widowx")
    parser.add_argument("--model", help=f"checkpoint (default: the bundled models/{BUNDLED_MODEL})")
    parser.add_argument("--task", nargs="+", default=list(DEMO_TASKS), choices=tasks, metavar="TASK",
                        help="simulated tasks, each run for --episodes episodes; from: " + ", ".join(tasks))
    parser.add_argument("--episodes", type=positive_int, default=5,
                        help="episodes per task, one goal image (sim seed) each")
    parser.add_argument("--seed", type=int, default=100, help="sim seed of the first episode (evaluation seeds, "
                        "not training ones); episode i uses seed + i")
    parser.add_argument("--timeout", type=positive_float, default=20.0,
                        help="seconds per episode (20 s = 100 actions at 5 Hz; crl eval allows reach 40 "
                             "and push_block 60)")
    parser.add_argument("--out", default="demo_out", help="folder for the GIFs and results.json (and the "
                        "point-mass run)")
    parser.add_argument("--pointmass", action="store_true", help="the point-mass learning demo instead")
    parser.add_argument("--steps", type=positive_int, default=1000, help="--pointmass: training steps")


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    return _pointmass(args, out) if args.pointmass else _reach_goal(args, out)


def _reach_goal(args, out: Path) -> int:
    """One `crl reach-goal --sim` episode per seed; counts the episodes' own results (the
    verdict each one printed), writes them to results.json; non-zero only if one failed to run."""
    import json

    from crl_ros.nodes import common
    from crl_ros.nodes import reach_goal_bringup as reach_goal

    if args.model:
        model = Path(args.model)
    else:
        try:
            model = common.share_path("models", BUNDLED_MODEL)
        except FileNotFoundError as exc:
            print(f"crl demo: the bundled model is missing ({exc}); train one (models/MODEL_CARD.md) "
                  "or run `crl demo --pointmass`", file=sys.stderr)
            return 1
    tasks = [args.task] if isinstance(args.task, str) else list(args.task)
    results = {task: [] for task in tasks}
    for task in tasks:
        for i in range(args.episodes):
            seed = args.seed + i
            gif = out / f"reach_goal_{task}_seed{seed}.gif"
            print(f"--- {task}, episode {i + 1}/{args.episodes}: seed {seed}", flush=True)
            try:
                results[task].append(reach_goal.reach(argparse.Namespace(
                    sim=True, task=task, seed=seed, goal=None, model=str(model), device=None,
                    timeout=args.timeout, gif=str(gif), enable=False)))
            except reach_goal.ReachGoalError as exc:
                print(f"crl demo: {task} episode {i + 1} (seed {seed}) could not run: {exc}", file=sys.stderr)
                return exc.code
    report = out / "results.json"
    report.write_text(json.dumps({
        "tasks": {task: {"reached": sum(r.success for r in rs), "episodes": len(rs)} for task, rs in results.items()},
        "model": str(model), "timeout_s": args.timeout,
        "episodes": [r.as_dict() for rs in results.values() for r in rs]}, indent=2))
    for task, rs in results.items():
        print(summarize(rs, task, args.timeout, model))
    print(f"GIFs (goal | camera) and results.json in {out}")
    return 0


def summarize(results: list, task: str, timeout: float, model) -> str:
    """What the demo measured: episodes, successes, and time and actions to reach the goal."""
    reached = [r for r in results if r.success]
    seeds = f"seed {results[0].seed}" if len(results) == 1 else f"seeds {results[0].seed}-{results[-1].seed}"
    lines = [f"demo: {len(reached)}/{len(results)} episodes reached their goal image (task {task}, "
             f"sim {seeds}, one goal each, {timeout:.0f} s allowed per episode) "
             f"through the ROS graph with {model}"]
    if reached:
        seconds = _span([f"{r.seconds:.1f}" for r in reached])
        actions = _span([str(r.actions) for r in reached])
        lines.append(f"  to success: {seconds} s, {actions} policy actions")
    timed_out = [str(r.seed) for r in results if not r.success]
    if timed_out:
        lines.append(f"  timed out: seed {', '.join(timed_out)}")
    return "\n".join(lines)


def _span(values: list[str]) -> str:
    """'6' when all equal, else 'lowest-highest' (numbers as formatted strings)."""
    low, high = min(values, key=float), max(values, key=float)
    return low if low == high else f"{low}-{high}"


def _pointmass(args, out: Path) -> int:
    import time

    from crl_ros.learning.agents import default_config
    from crl_ros.learning.config import apply_overrides
    from crl_ros.learning.policy import Policy
    from crl_ros.learning.trainer import TrainConfig, train
    from crl_ros.sim import pointmass
    from crl_ros.sim.rollout import PolicyActor, RandomActor, evaluate, mean_success, write_demos

    run_dir = out / "pointmass_run"
    if run_dir.exists():
        print(f"crl demo: {run_dir} exists; remove it or pass another --out", file=sys.stderr)
        return 1
    start = time.perf_counter()
    data = out / "pointmass_play.h5"
    if not data.exists():
        write_demos(data, "pointmass", "play", 1000, seed=0, image_size=48, workers=2)
    cfg = apply_overrides(default_config("stable_crl"), pointmass.TRAIN_OVERRIDES)
    result = train([data], "stable_crl", cfg,
                   TrainConfig(steps=args.steps, seed=0, device="auto", checkpoint_every=args.steps), run_dir)
    policy = Policy.load(result.model_path)
    gif = out / "pointmass_eval.gif"
    crl = evaluate("pointmass", "all", PolicyActor(policy), 10, seed=123, video_path=gif)
    rnd = evaluate("pointmass", "all", RandomActor(seed=0), 10, seed=123)
    print(f"point-mass, held-out goals: stable_crl {100 * mean_success(crl):.0f}% vs random "
          f"{100 * mean_success(rnd):.0f}% ({time.perf_counter() - start:.0f} s in all); "
          f"model {result.model_path}; GIF {gif}")
    return 0
