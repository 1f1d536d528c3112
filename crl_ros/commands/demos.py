"""`crl demos`: write scripted demonstrations of a simulated suite as a crl_ros dataset."""
from __future__ import annotations

import argparse
import sys

HELP = "generate scripted demonstrations in simulation and write them as a dataset (.h5)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from crl_ros.argtypes import positive_int
    from crl_ros.commands.evaluate import add_shift_arguments
    from crl_ros.sim.suites import SUITES, tasks_help

    parser.add_argument("--env", required=True, choices=sorted(SUITES), help="simulated env suite")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--task", help=f"one task of the suite (default: the suite's DEFAULT_TASK) ({tasks_help()})")
    which.add_argument("--play", action="store_true",
                       help="mix the suite's play tasks (pointmass: random goals away from the eval goals; "
                            "widowx: random sequences of sub-skills, no goal)")
    parser.add_argument("--episodes", type=positive_int, required=True, help="number of episodes")
    parser.add_argument("--out", required=True,
                        help="output dataset file (.h5; must not exist), or with --bag a folder for the bags")
    parser.add_argument("--bag", action="store_true",
                        help="widowx: write one rosbag2 per episode (observation + action topics, as a robot "
                             "recording would have them) for `crl convert`, instead of a dataset")
    parser.add_argument("--storage", choices=["mcap", "sqlite3"], default="mcap", help="--bag storage")
    parser.add_argument("--workers", type=positive_int, default=1, help="parallel worker processes")
    parser.add_argument("--seed", type=int, default=0, help="seed of the episodes (starts, goals, expert noise)")
    parser.add_argument("--image-size", type=positive_int, default=48,
                        help="side of the square camera images, in pixels")
    parser.add_argument("--noise", type=float, default=None, help="scripted action noise (suite default if unset)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    add_shift_arguments(parser, goal=False)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from crl_ros.commands.evaluate import shift_spec
    from crl_ros.learning.dataset import DatasetError
    from crl_ros.sim.rollout import write_demos
    from crl_ros.sim.suites import get_suite

    out = Path(args.out)
    try:
        shift = shift_spec(args)
        if shift and not getattr(get_suite(args.env), "supports_shifts", False):
            raise ValueError(f"--shift/--randomize are WidowX scene and camera shifts; the {args.env} suite has none")
    except ValueError as exc:
        print(f"crl demos: {exc}", file=sys.stderr)
        return 2
    if args.bag:
        if args.env != "widowx":
            print("crl demos: --bag writes the WidowX action layout; use --env widowx", file=sys.stderr)
            return 2
        return _write_bags(args, "play" if args.play else (args.task or get_suite(args.env).DEFAULT_TASK), out, shift)
    if out.exists() and not args.overwrite:
        print(f"crl demos: {out} already exists; refusing to overwrite a dataset (pass --overwrite)", file=sys.stderr)
        return 1
    try:
        task = "play" if args.play else (args.task or get_suite(args.env).DEFAULT_TASK)
        stats = write_demos(out, args.env, task, args.episodes, seed=args.seed, image_size=args.image_size,
                            workers=args.workers, noise=args.noise, overwrite=args.overwrite, progress=True,
                            shift=shift)
    except (ValueError, DatasetError) as exc:
        print(f"crl demos: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out}: {_measured(stats['episodes'], stats['frames'], task, stats['successes'])}"
          + _shift_note(shift))
    return 0


def _measured(episodes: int, frames: int, task: str, successes: int) -> str:
    """What was written; a success rate only for a task with a goal (play has none to reach)."""
    what = f"{episodes} episodes, {frames} frames ({frames - episodes} transitions)"
    if task == "play":
        return f"{what} of play (no fixed goal, so no success rate)"
    return f"{what} of {task}; the scripted expert succeeded in {successes}/{episodes} ({100.0 * successes / episodes:.0f}%)"


def _shift_note(shift) -> str:
    return f"; shifts {shift.describe(goal=False)} drawn per episode" if shift else ""


def _write_bags(args: argparse.Namespace, task: str, out, shift) -> int:
    """One bag per episode: ``observation`` (sensor_msgs/Image rgb8) and ``action``
    (std_msgs/Float32MultiArray) at the control rate, stamped like a live recording. After
    the last action the arm holds (a zero-delta action at the final frame), as it would on
    a robot, so `crl convert` recovers every transition."""
    import numpy as np
    from tqdm import tqdm

    from crl_ros.bags.writer import BagWriter, make_action, make_image
    from crl_ros.robot import actions as action_conv
    from crl_ros.sim.rollout import collect_demos

    existing = sorted(out.glob("episode_*")) if out.exists() else []
    if existing:
        print(f"crl demos: {out} already holds recordings ({existing[0].name}, ...); refusing to overwrite them",
              file=sys.stderr)
        return 1
    out.mkdir(parents=True, exist_ok=True)
    period_ns = int(round(1e9 / action_conv.CONTROL_RATE_HZ))
    start_ns = 1_700_000_000 * 10**9
    episodes = collect_demos(args.env, task, args.episodes, seed=args.seed, image_size=args.image_size,
                             workers=args.workers, noise=args.noise, shift=shift)
    frames = successes = 0
    for i, ep in enumerate(tqdm(episodes, total=args.episodes, desc=f"bags {args.env}/{task}", unit="ep")):
        frames += len(ep["images"])
        successes += int(ep["success"])
        hold = np.concatenate([np.zeros(6), ep["actions"][-1][6:]])
        actions = np.concatenate([ep["actions"], hold[None]]).astype(np.float32)
        with BagWriter(out / f"episode_{i:05d}", storage=args.storage) as bag:
            for k, (image, action) in enumerate(zip(ep["images"], actions)):
                stamp = start_ns + i * 3600 * 10**9 + k * period_ns
                bag.write("observation", stamp, make_image(image, stamp))
                bag.write("action", stamp + 1, make_action(action, action_conv.ACTION_NAMES))
    print(f"wrote {args.episodes} bags to {out}: {_measured(args.episodes, frames, task, successes)}"
          + _shift_note(shift))
    return 0
