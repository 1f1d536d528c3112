"""`crl eval`: success rate of a trained model (or the scripted / random baseline) per task."""
from __future__ import annotations

import argparse
import json
import sys

HELP = "evaluate a model (or the scripted/random policy) in simulation: success per task"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from crl_ros.argtypes import positive_int
    from crl_ros.sim.rollout import EVAL_SEEDS, TEST_EPISODES
    from crl_ros.sim.suites import SUITES, tasks_help

    parser.add_argument("--env", required=True, choices=sorted(SUITES), help="simulated env suite")
    parser.add_argument("--task", default="all", help=f"a task of the suite, or 'all' ({tasks_help()})")
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--model", help="checkpoint file or run directory (model.pt)")
    who.add_argument("--policy", choices=["scripted", "random"], help="a baseline instead of a model")
    parser.add_argument("--episodes", type=positive_int, default=None,
                        help=f"episodes per task (default: {TEST_EPISODES} with --seeds test, else 20)")
    seeds = parser.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=int, default=0, help="evaluation seed (fixes starts and goals)")
    seeds.add_argument("--seeds", choices=sorted(EVAL_SEEDS),
                       help="the held-out protocol's seeds: selection (seed "
                            f"{EVAL_SEEDS['selection']}: every choice is made on it) or test (seed "
                            f"{EVAL_SEEDS['test']}: only to report; docs/results.md)")
    add_shift_arguments(parser, goal=True)
    parser.add_argument("--device", default="auto", help="--model: auto | cpu | cuda")
    how = parser.add_mutually_exclusive_group()
    how.add_argument("--sample", dest="sample", action="store_true", default=None,
                     help="--model: sample actions N(mean, std^2) (default: the model's eval_sample setting; "
                          "the authors sample)")
    how.add_argument("--mean", dest="sample", action="store_false", default=None,
                     help="--model: act with the policy mean")
    parser.add_argument("--gripper", choices=["model", "continuous", "binary"], default="model",
                        help="how the gripper action is executed: model = the model's eval_gripper setting "
                             "(baselines: continuous) | continuous = the opening as commanded | binary = fully "
                             "open or closed, split at 0.5 (arm_node's Interbotix backend)")
    parser.add_argument("--max-steps", type=positive_int, default=None,
                        help="episode length (suite default if unset)")
    parser.add_argument("--image-size", type=positive_int, default=None,
                        help="side of the square camera images (default: the model's image size, else 48)")
    parser.add_argument("--video", help="save the first episode of each task as a GIF (goal | camera)")
    parser.add_argument("--json", help="also write the results as JSON to this file")


def add_shift_arguments(parser: argparse.ArgumentParser, goal: bool) -> None:
    """--shift (and --randomize for data, --goal-shift for evaluation): crl_ros.sim.shifts."""
    from crl_ros.sim.shifts import GOAL_CASES, SEVERITIES

    parser.add_argument("--shift", nargs="+", default=[], metavar="NAME=VALUE", type=_shift_arg,
                        help="WidowX distribution shifts drawn per episode from its seed: VALUE a number, +-V "
                             f"(random sign), LO:HI (uniform) or {'/'.join(SEVERITIES)}; e.g. camera_yaw=3 "
                             "light=moderate distractors=1 (names, units and presets: docs/widowx_sim.md, "
                             "'Shifts')")
    if goal:
        parser.add_argument("--goal-shift", choices=GOAL_CASES, default="same",
                            help="same: the goal image is captured under the episode's shift (camera moved "
                                 "before the goal was captured); nominal: goal captured in the nominal world, "
                                 "observations shifted (camera moved after)")
    else:
        parser.add_argument("--randomize", nargs="+", default=[], metavar="NAME[=RANGE]",
                            type=lambda text: _shift_arg(text, randomize=True),
                            help="randomised demonstrations: like --shift, but V means the range from the "
                                 "nominal world to V (signed shifts -V:V) and no value means moderate; e.g. "
                                 "camera_pos camera_rot light distractors=0:2")


def _shift_arg(text: str, randomize: bool = False) -> str:
    """argparse type: a NAME=VALUE shift, checked now so a bad one is a usage error."""
    from crl_ros.sim.shifts import parse_shift

    try:
        parse_shift(text, randomize=randomize)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def shift_spec(args: argparse.Namespace):
    """The ShiftSpec of --shift / --randomize / --goal-shift; ValueError (a name twice)."""
    from crl_ros.sim.shifts import ShiftSpec

    return ShiftSpec.parse(args.shift, getattr(args, "randomize", []), getattr(args, "goal_shift", "same"))


def percent_interval(interval) -> str:
    low, high = interval
    return f"[{100 * low:5.1f}, {100 * high:5.1f}]"


def format_table(results: dict, title: str) -> str:
    from crl_ros.sim.rollout import mean_interval, wilson_interval

    rows = [(task, r["successes"], r["episodes"], r["success_rate"], r["mean_steps"]) for task, r in results.items()]
    total_s = sum(r[1] for r in rows)
    total_n = sum(r[2] for r in rows)
    width = max([len("task"), len("mean")] + [len(r[0]) for r in rows])
    digits = len(str(total_n))  # the count column fits the total, "286/350"
    count = lambda s, n: f"{s:>{digits}}/{n:<{digits}}"  # noqa: E731
    col = max(len("count"), 2 * digits + 1)
    lines = [title, f"{'task':<{width}}  success  {'count':<{col}}   steps  95% interval (Wilson)"]
    for task, s, n, rate, steps in rows:
        lines.append(f"{task:<{width}}  {100 * rate:6.1f}%  {count(s, n):<{col}}  {steps:6.1f}  "
                     f"{percent_interval(wilson_interval(s, n))}")
    lines.append(f"{'mean':<{width}}  {100 * total_s / max(total_n, 1):6.1f}%  {count(total_s, total_n):<{col}}  "
                 f"{'':6}  {percent_interval(mean_interval(results))}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from crl_ros.sim.rollout import (EVAL_SEEDS, TEST_EPISODES, BinaryGripper, PolicyActor, RandomActor,
                                     ScriptedActor, evaluate, mean_interval, mean_success)

    if args.seeds:
        args.seed = EVAL_SEEDS[args.seeds]
    seed_name = next((name for name, seed in EVAL_SEEDS.items() if seed == args.seed), None)
    episodes = args.episodes or (TEST_EPISODES if args.seeds == "test" else 20)
    try:
        shift = shift_spec(args)
    except ValueError as exc:
        print(f"crl eval: {exc}", file=sys.stderr)
        return 2
    image_size = args.image_size
    if args.model:
        from crl_ros.learning.checkpoint import CheckpointError
        from crl_ros.learning.policy import Policy
        try:
            policy = Policy.load(args.model, device=args.device,
                                 gripper=None if args.gripper == "model" else args.gripper)
        except CheckpointError as exc:
            print(f"crl eval: {exc}", file=sys.stderr)
            return 1
        h, w, c = policy.image_shape
        if h != w or c != 3:
            print(f"crl eval: the model takes {policy.image_shape} images; a sim camera gives square RGB", file=sys.stderr)
            return 1
        if image_size not in (None, h):
            print(f"crl eval: --image-size {image_size} but the model was trained on {h}x{w}", file=sys.stderr)
            return 1
        image_size = h
        actor = PolicyActor(policy, sample=args.sample)
        sampled = policy.samples_by_default if args.sample is None else args.sample
        who = (f"{policy.algorithm} model {args.model} (step {policy.meta.step}, "
               f"{'sampled' if sampled else 'mean'} actions, {policy.gripper_mode} gripper)")
    else:
        if args.policy == "scripted":
            actor, who = ScriptedActor(args.env, seed=args.seed), "scripted policy"
        else:
            actor, who = RandomActor(seed=args.seed), "random policy"
        if args.gripper == "binary":
            actor, who = BinaryGripper(actor), f"{who} (binary gripper)"
    task = args.task
    try:
        results = evaluate(args.env, task, actor, episodes=episodes, seed=args.seed,
                           image_size=image_size or 48, video_path=args.video, max_steps=args.max_steps,
                           progress=True, shift=shift)
    except ValueError as exc:
        print(f"crl eval: {exc}", file=sys.stderr)
        return 2
    seeds = f"{seed_name} seed {args.seed}" if seed_name else f"seed {args.seed}"
    shift_text = f"; shift {shift.describe()}" if shift else ""
    print(format_table(results, f"{args.env}: {who}, {episodes} episodes per task, {seeds}{shift_text}"))
    if seed_name == "test" and episodes < TEST_EPISODES:
        print(f"note: a test-seed report takes >= {TEST_EPISODES} episodes per task (docs/results.md)")
    if args.video:
        print(f"video: {args.video}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"env": args.env, "who": who, "seed": args.seed, "seeds": seed_name or "other",
                       "episodes": episodes, "shift": shift.describe(), "goal_shift": shift.goal,
                       "tasks": results, "success_rate": mean_success(results),
                       "success_ci95": list(mean_interval(results))}, f, indent=2)
    return 0
