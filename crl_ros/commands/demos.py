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

    from tqdm import tqdm

    from crl_ros.learning.dataset import DatasetMetadata, DatasetWriter
    from crl_ros.sim.rollout import collect_demos
    from crl_ros.sim.suites import get_suite

    if args.episodes < 1:
        print("crl demos: --episodes must be >= 1", file=sys.stderr)
        return 2
    out = Path(args.out)
    if out.exists() and not args.overwrite:
        print(f"crl demos: {out} already exists; refusing to overwrite a dataset (pass --overwrite)", file=sys.stderr)
        return 1
    suite = get_suite(args.env)
    task = "play" if args.play else (args.task or suite.DEFAULT_TASK)
    probe = suite.make_env(task if task != "play" else suite.play_tasks[0], image_size=args.image_size)
    metadata = DatasetMetadata(
        image_shape=probe.observation_space["image"].shape,
        action_dim=int(probe.action_space.shape[0]),
        action_names=list(probe.action_names),
        action_low=[float(x) for x in probe.action_space.low],
        action_high=[float(x) for x in probe.action_space.high],
        control_rate_hz=float(probe.control_rate_hz),
        provenance={"source": "crl demos", "env": args.env, "task": task, "episodes": args.episodes,
                    "seed": args.seed, "noise": args.noise, "image_size": args.image_size},
    )
    probe.close()
    successes = frames = 0
    with DatasetWriter(out, metadata, overwrite=args.overwrite) as writer:
        episodes = collect_demos(args.env, task, args.episodes, seed=args.seed,
                                 image_size=args.image_size, workers=args.workers, noise=args.noise)
        for ep in tqdm(episodes, total=args.episodes, desc=f"demos {args.env}/{task}", unit="ep"):
            writer.add_episode(ep["images"], ep["actions"])
            successes += int(ep["success"])
            frames += len(ep["images"])
    print(f"wrote {out}: {args.episodes} episodes, {frames} frames, "
          f"scripted success {successes}/{args.episodes} ({100.0 * successes / args.episodes:.0f}%)")
    return 0
