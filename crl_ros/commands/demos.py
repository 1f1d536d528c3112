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
    parser.add_argument("--out", required=True,
                        help="output dataset file (.h5; must not exist), or with --bag a folder for the bags")
    parser.add_argument("--bag", action="store_true",
                        help="widowx: write one rosbag2 per episode (observation + action topics, as a robot "
                             "recording would have them) for `crl convert`, instead of a dataset")
    parser.add_argument("--storage", choices=["mcap", "sqlite3"], default="mcap", help="--bag storage")
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
    if args.bag:
        if args.env != "widowx":
            print("crl demos: --bag writes the WidowX action layout; use --env widowx", file=sys.stderr)
            return 2
        return _write_bags(args, "play" if args.play else (args.task or get_suite(args.env).DEFAULT_TASK), out)
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


def _write_bags(args: argparse.Namespace, task: str, out) -> int:
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
                             workers=args.workers, noise=args.noise)
    for i, ep in enumerate(tqdm(episodes, total=args.episodes, desc=f"bags {args.env}/{task}", unit="ep")):
        hold = np.concatenate([np.zeros(6), ep["actions"][-1][6:]])
        actions = np.concatenate([ep["actions"], hold[None]]).astype(np.float32)
        with BagWriter(out / f"episode_{i:05d}", storage=args.storage) as bag:
            for k, (image, action) in enumerate(zip(ep["images"], actions)):
                stamp = start_ns + i * 3600 * 10**9 + k * period_ns
                bag.write("observation", stamp, make_image(image, stamp))
                bag.write("action", stamp + 1, make_action(action, action_conv.ACTION_NAMES))
    print(f"wrote {args.episodes} bags to {out}")
    return 0
