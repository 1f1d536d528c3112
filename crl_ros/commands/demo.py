"""`crl demo` (what `make demo` runs): the simulated WidowX 250 reaches goal images through
the ROS graph (sim_node, camera_node, goal_node, policy_node, arm_node in one process) with
the bundled Stable CRL model: 5 `reach` goals and 5 `push_block` goals, one episode per sim
seed. It counts the episodes' own results (each decided once, at its first task_success),
prints one verdict line per episode and a table of what it measured per task (successes,
time and actions to success), and writes a GIF of goal | camera per episode (one frame per
action) and results.json. The nodes' log lines go to OUT/logs/ only (rcl's log file);
``--verbose`` shows them on the console too.
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
    parser.add_argument("--verbose", action="store_true",
                        help="show the nodes' log lines on the console (they always go to OUT/logs/)")
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
    import os
    import time

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
    # rcl writes the nodes' log lines to a file in ROS_LOG_DIR; to the console as well only with --verbose
    os.environ["ROS_LOG_DIR"] = str((out / "logs").resolve())
    start = time.monotonic()
    with common.interrupts_in_main_thread([] if args.verbose else ["--disable-stdout-logs"]):
        for task in tasks:
            for i in range(args.episodes):
                seed = args.seed + i
                episode = argparse.Namespace(sim=True, task=task, seed=seed, goal=None, model=str(model),
                                             device=None, timeout=args.timeout, enable=False,
                                             gif=str(out / f"demo_{task}_seed{seed}.gif"))
                try:
                    result = reach_goal.run_episode(episode, *reach_goal.check_inputs(episode), announce=False)
                except reach_goal.ReachGoalError as exc:
                    print(f"crl demo: {task} episode {i + 1} (seed {seed}) could not run: {exc}", file=sys.stderr)
                    return exc.code
                results[task].append(result)
                gif = f"GIF {Path(result.gif).name} ({result.gif_frames} frames)" if result.gif else "no GIF"
                print(f"{result.summary()}; {gif}", flush=True)
    seconds = time.monotonic() - start
    (out / "results.json").write_text(json.dumps({
        "tasks": {task: {"reached": sum(r.success for r in rs), "episodes": len(rs)} for task, rs in results.items()},
        "model": str(model), "timeout_s": args.timeout, "seconds_in_all": seconds,
        "episodes": [r.as_dict() for rs in results.values() for r in rs]}, indent=2))
    print(summary_table(results, args.timeout, model, seconds))
    print(f"GIFs (goal | camera, one frame per action) and results.json in {out}; the nodes' log lines in "
          f"{out / 'logs'}")
    return 0


def summary_table(results: dict[str, list], timeout: float, model, seconds: float) -> str:
    """What the demo measured, a row per task: successes, time and actions to reach the goal,
    the seeds that timed out."""
    episodes = [r for rs in results.values() for r in rs]
    seeds = sorted({r.seed for r in episodes})
    seeds = f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {seeds[0]}-{seeds[-1]}"
    header = ("task", "reached", "to success (s)", "actions", "timed out (seed)")
    rows = [header]
    for task, rs in results.items():
        reached = [r for r in rs if r.success]
        rows.append((task, f"{len(reached)}/{len(rs)}",
                     _span([f"{r.seconds:.1f}" for r in reached]) if reached else "-",
                     _span([str(r.actions) for r in reached]) if reached else "-",
                     ", ".join(str(r.seed) for r in rs if not r.success) or "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [f"demo: {sum(r.success for r in episodes)}/{len(episodes)} episodes reached their goal image "
             f"(sim {seeds}, one goal each, {timeout:.0f} s allowed per episode, {seconds:.0f} s in all) "
             f"through the ROS graph with {model}"]
    lines += ["  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
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
