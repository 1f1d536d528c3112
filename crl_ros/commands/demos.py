"""`crl demos`: write scripted demonstrations of a simulated suite as a crl_ros dataset."""
from __future__ import annotations

import argparse
import sys

HELP = "generate scripted demonstrations in simulation and write them as a dataset (.h5)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env", required=True, help="env suite: pointmass or widowx")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--task", help="one task of the suite (default: the suite's DEFAULT_TASK)")
    which.add_argument("--play", action="store_true",
                       help="mix the suite's play tasks (pointmass: random goals away from the eval goals)")
    parser.add_argument("--episodes", type=int, required=True, help="number of episodes")
    parser.add_argument("--out", required=True, help="output dataset file (.h5); must not exist")
    parser.add_argument("--workers", type=int, default=1, help="parallel worker processes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--image-size", type=int, default=48)
    parser.add_argument("--noise", type=float, default=None, help="scripted action noise (suite default if unset)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out file")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from crl_ros.learning.dataset import DatasetError
    from crl_ros.sim.rollout import write_demos
    from crl_ros.sim.suites import get_suite

    if args.episodes < 1:
        print("crl demos: --episodes must be >= 1", file=sys.stderr)
        return 2
    out = Path(args.out)
    if out.exists() and not args.overwrite:
        print(f"crl demos: {out} already exists; refusing to overwrite a dataset (pass --overwrite)", file=sys.stderr)
        return 1
    try:
        task = "play" if args.play else (args.task or get_suite(args.env).DEFAULT_TASK)
        stats = write_demos(out, args.env, task, args.episodes, seed=args.seed, image_size=args.image_size,
                            workers=args.workers, noise=args.noise, overwrite=args.overwrite, progress=True)
    except (ValueError, DatasetError) as exc:
        print(f"crl demos: {exc}", file=sys.stderr)
        return 2
    n = stats["episodes"]
    print(f"wrote {out}: {n} episodes, {stats['frames']} frames, "
          f"scripted success {stats['successes']}/{n} ({100.0 * stats['successes'] / n:.0f}%)")
    return 0
