"""`crl analyze`: the paper's analyses of a trained Stable CRL critic, as pictures.

- ``interpolate``: linear interpolation between two observations' goal representations;
  the nearest dataset frame to each point, shown as an image strip.
- ``arm-matching``: for simulated WidowX tasks, the critic's score of the true goal from a
  state whose ARM matches the goal (objects as at the start) and from a state whose
  OBJECTS match the goal (arm as at the start). A critic with the arm matching problem
  prefers the first; for object tasks the second is the one that is closer to done.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HELP = "representation analyses of a Stable CRL model (interpolate, arm-matching)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from crl_ros.argtypes import positive_int
    from crl_ros.sim.suites import task_names

    sub = parser.add_subparsers(dest="analysis", metavar="ANALYSIS", required=True)
    p = sub.add_parser("interpolate", help="interpolate representations; nearest dataset frames as a strip",
                       formatter_class=parser.formatter_class)
    p.add_argument("--model", required=True, help="stable_crl checkpoint")
    p.add_argument("--data", required=True, help="dataset (.h5) to search for nearest frames")
    p.add_argument("--episode", type=int, default=0, help="episode whose first and last frames are the endpoints")
    p.add_argument("--start", type=int, help="frame index of the start (overrides --episode)")
    p.add_argument("--end", type=int, help="frame index of the end (overrides --episode)")
    p.add_argument("--points", type=positive_int, default=8, help="interpolation points, endpoints included")
    p.add_argument("--max-frames", type=positive_int, default=20000,
                   help="search at most this many frames (evenly spaced)")
    p.add_argument("--out", default="interpolation.png", help="picture to write: the strip of nearest frames")
    p.add_argument("--json", help="also write the frames and distances as JSON here")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p = sub.add_parser("arm-matching", help="critic scores: arm-matching vs object-matching states (sim)",
                       formatter_class=parser.formatter_class)
    p.add_argument("--model", required=True, help="stable_crl checkpoint trained on WidowX sim images")
    object_tasks = [t for t in task_names("widowx") if t != "reach"]
    p.add_argument("--tasks", nargs="+", default=None, choices=object_tasks, metavar="TASK",
                   help="WidowX tasks that move objects (default: all of them: " + ", ".join(object_tasks) + ")")
    p.add_argument("--seeds", type=positive_int, default=10, help="sim seeds (scenes) per task")
    p.add_argument("--out", default="arm_matching.png", help="picture to write: one row of images per task")
    p.add_argument("--json", help="also write the scores as JSON here")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")


def run(args: argparse.Namespace) -> int:
    from crl_ros.learning.checkpoint import CheckpointError
    from crl_ros.learning.policy import Policy

    try:
        policy = Policy.load(args.model, device=args.device)
    except CheckpointError as exc:
        print(f"crl analyze: {exc}", file=sys.stderr)
        return 1
    if policy.algorithm != "stable_crl":
        print(f"crl analyze: {args.model} is a {policy.algorithm} model; these analyses read the "
              "contrastive critic of a stable_crl model", file=sys.stderr)
        return 1
    return _interpolate(args, policy) if args.analysis == "interpolate" else _arm_matching(args, policy)


def _interpolate(args, policy) -> int:
    import numpy as np

    from crl_ros.learning import dataset as ds
    from crl_ros.learning.analysis import goal_representations, interpolate_nearest

    data = ds.load(args.data)
    if data.metadata.image_shape != tuple(policy.image_shape):
        print(f"crl analyze: dataset images are {data.metadata.image_shape}, the model takes "
              f"{tuple(policy.image_shape)}", file=sys.stderr)
        return 1
    if args.points < 2:
        print(f"crl analyze: --points {args.points}: an interpolation needs at least its 2 endpoints", file=sys.stderr)
        return 2
    if args.start is not None and args.end is not None:
        start, end = args.start, args.end
    else:
        if not 0 <= args.episode < data.num_episodes:
            print(f"crl analyze: --episode {args.episode} is not in 0..{data.num_episodes - 1}", file=sys.stderr)
            return 1
        start, end = int(data.episode_starts[args.episode]), int(data.episode_ends[args.episode]) - 1
    for name, index in (("start", start), ("end", end)):
        if not 0 <= index < data.num_frames:
            print(f"crl analyze: --{name} {index} is not a frame index (0..{data.num_frames - 1})", file=sys.stderr)
            return 1
    # Search an evenly spaced subset (always containing both endpoints) to bound memory.
    step = max(1, data.num_frames // args.max_frames)
    candidates = np.unique(np.concatenate([np.arange(0, data.num_frames, step), [start, end]]))
    reprs = goal_representations(policy, data.images[candidates])
    local = {int(f): i for i, f in enumerate(candidates)}
    nearest, dist = interpolate_nearest(reprs, local[start], local[end], args.points)
    frames = candidates[nearest]
    labels = [f"a={a:.2f}\nframe {f}" for a, f in zip(np.linspace(0, 1, args.points), frames)]
    _save_strip(args.out, [data.images[f] for f in frames], labels,
                title=f"interpolation {start} -> {end} (nearest of {len(candidates)} frames)")
    summary = {"start": start, "end": end, "frames": frames.tolist(),
               "distances": [round(float(d), 4) for d in dist], "searched": int(len(candidates)),
               "picture": args.out}
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))
    print(f"interpolated the critic's goal representations from frame {start} to frame {end} of {args.data} "
          f"in {args.points} points")
    print(f"nearest of {len(candidates)} searched frames at each point: {', '.join(str(f) for f in frames)}")
    print(f"representation distance to it: {', '.join(f'{d:.2f}' for d in dist)} (0 at an exact match)")
    print(f"picture: {args.out}" + (f"; JSON: {args.json}" if args.json else ""))
    return 0


def _arm_matching(args, policy) -> int:
    import numpy as np

    from crl_ros.sim.arm_matching import arm_matching_images, OBJECT_TASKS

    tasks = args.tasks or OBJECT_TASKS
    size = policy.image_shape[0]
    results, rows = {}, []
    for task in tasks:
        arm_scores, object_scores, start_scores, goal_scores = [], [], [], []
        for seed in range(args.seeds):
            images = arm_matching_images(task, seed, size)
            goal = images["goal"]
            scores = policy.score(np.stack([images["start"], images["arm_matches"],
                                            images["objects_match"], images["goal"]]), goal)
            start_scores.append(scores[0])
            arm_scores.append(scores[1])
            object_scores.append(scores[2])
            goal_scores.append(scores[3])
            if seed == 0:
                rows.append((task, images, scores))
        arm, obj = np.array(arm_scores), np.array(object_scores)
        results[task] = {
            "start": float(np.mean(start_scores)), "arm_matches": float(arm.mean()),
            "objects_match": float(obj.mean()), "goal": float(np.mean(goal_scores)),
            "objects_preferred": float((obj > arm).mean()), "seeds": args.seeds,
        }
    _print_table(results)
    _save_arm_matching_picture(args.out, rows)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    print(f"picture: {args.out}")
    return 0


def _print_table(results: dict) -> None:
    print(f"{'task':32s} {'start':>8s} {'arm':>8s} {'objects':>8s} {'goal':>8s}  objects preferred")
    for task, r in results.items():
        print(f"{task:32s} {r['start']:8.2f} {r['arm_matches']:8.2f} {r['objects_match']:8.2f} "
              f"{r['goal']:8.2f}  {100 * r['objects_preferred']:.0f}% of {r['seeds']}")


def _tile(image, scale: int):
    import numpy as np
    return np.kron(image, np.ones((scale, scale, 1), dtype=np.uint8))


def _save_strip(path: str, images: list, labels: list[str], title: str = "", scale: int = 3) -> None:
    from PIL import Image, ImageDraw

    tiles = [_tile(im, scale) for im in images]
    h, w = tiles[0].shape[:2]
    label_h, title_h, pad = 28, 16 if title else 0, 4
    canvas = Image.new("RGB", (len(tiles) * (w + pad) + pad, title_h + h + label_h + 2 * pad), "white")
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((pad, 2), title, fill="black")
    for i, (tile, label) in enumerate(zip(tiles, labels)):
        x = pad + i * (w + pad)
        canvas.paste(Image.fromarray(tile), (x, title_h + pad))
        draw.multiline_text((x, title_h + pad + h + 2), label, fill="black", spacing=1)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)


def _save_arm_matching_picture(path: str, rows: list) -> None:
    from PIL import Image

    strips = []
    for task, images, scores in rows:
        tmp = Path(path).with_suffix(f".{task}.tmp.png")
        names = ["start", "arm matches", "objects match", "goal"]
        _save_strip(str(tmp), [images[k] for k in ("start", "arm_matches", "objects_match", "goal")],
                    [f"{n}\nscore {s:.2f}" for n, s in zip(names, scores)], title=task)
        strips.append(Image.open(tmp).copy())
        tmp.unlink()
    width = max(s.width for s in strips)
    canvas = Image.new("RGB", (width, sum(s.height for s in strips)), "white")
    y = 0
    for s in strips:
        canvas.paste(s, (0, y))
        y += s.height
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
