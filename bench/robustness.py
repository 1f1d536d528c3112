"""Robustness benchmark: success per task of one or more models under each camera/scene shift
of crl_ros.sim.shifts at three severities, for both goal cases, on held-out seeds.

    python bench/robustness.py [--models models/widowx_stable_crl.pt [LABEL=]PATH ...] \\
        [--seeds test|selection] [--episodes 50] [--tasks all|reach,push_block,...] \\
        [--shifts camera_pos,camera_rot,light,distractors] [--severities mild,moderate,strong] \\
        [--goal-cases same,nominal] [--workers N] [--out bench/results/robustness_NAME.json] \\
        [--report [--chart docs/images/robustness_NAME.png] [--markdown FILE]] [--report-only] \\
        [--pool GROUP=LABEL,LABEL,... ...]

Every (model, condition, task) is one *cell* of ``--episodes`` episodes, run by `evaluate` with
the episode seeds of ``crl eval --seeds ...`` (so a cell's figure is the one ``crl eval --task T
--shift NAME=SEVERITY --goal-shift CASE`` prints), in ``--workers`` processes (the simulator is
CPU-bound; each worker runs torch on one thread). The conditions: ``nominal`` (no shift) and,
for each shift and severity, ``NAME=SEVERITY`` (the presets of docs/widowx_sim.md; moderate is
the issue's: camera +-2 cm and +-3 deg, light +-30%, one distractor) under each goal case:
``same`` (goal captured under the shift: the camera moved before the goal was captured) and
``nominal`` (goal captured in the nominal world, the observations shifted). Conditions that are
the same draw (``distractors``: mild and moderate are both one cup) are run once.

The JSON is rewritten after every cell, so an interrupted run keeps what it has and the same
command continues it (cells already there are skipped; new models, shifts or tasks extend it).
It holds the configuration, each invocation's machine (CPU, platform, torch) and wall time,
the models (path, sha256, algorithm, step), every cell with its Wilson 95% interval, and per
model and condition the mean over the tasks run, with the pooled Wilson interval.
``--report`` (after the run; ``--report-only`` without running) prints a Markdown summary
(mean success per shift, severity and goal case) and per-task table, and draws the chart:
success vs severity, one panel per shift, one colour per model, solid = goal same, dashed =
goal nominal, whiskers = Wilson 95%.

``--pool GROUP=LABEL,LABEL,...`` (e.g. one group per algorithm, one label per training seed)
adds, per group and condition, the successes and episodes summed over the group's models, with
the Wilson interval of the sum and the range of the models' own means. The pooled interval
counts episodes, not seeds: it does not widen for seed-to-seed spread, which the range shows.
The groups are stored in the JSON (``pools``, ``pooled``) and reported as a third table;
``--report-only --pool ...`` adds them to an existing JSON.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing as mp
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import machine  # noqa: E402

DEFAULT_MODEL = "models/widowx_stable_crl.pt"
#: the shifts of the issue's moderate severity: camera moved, camera turned, light, a distractor
DEFAULT_SHIFTS = ("camera_pos", "camera_rot", "light", "distractors")
NOMINAL = "nominal"
SEVERITY_AXIS = (NOMINAL, "mild", "moderate", "strong")  # the chart's x axis
SUITE = "widowx"


class BenchError(Exception):
    """A bad argument or an --out that cannot be continued: the message for the user."""


# -- what to run ------------------------------------------------------------------------------

def conditions(shifts: list[str], severities: list[str], goal_cases: list[str]) -> dict[str, dict]:
    """nominal, then every (shift, severity, goal case), keyed by what is drawn (the spec with
    its goal case): {key: {"shift", "severities", "goal", "spec"}}; severities whose presets
    are the same draw share one condition."""
    from crl_ros.sim.shifts import ShiftSpec

    out = {"none": {"shift": NOMINAL, "severities": [NOMINAL], "goal": NOMINAL, "spec": "none"}}
    for shift in shifts:
        for severity in severities:
            for goal in goal_cases:
                spec = ShiftSpec.parse([f"{shift}={severity}"], goal=goal)
                entry = out.setdefault(spec.describe(), {"shift": shift, "severities": [], "goal": goal,
                                                         "spec": spec.describe(goal=False)})
                entry["severities"].append(severity)
    return out


def cell_key(model: str, condition_key: str, task: str) -> str:
    return f"{model} | {condition_key} | {task}"


def parse_models(texts: list[str]) -> dict[str, str]:
    """``[LABEL=]PATH`` -> {label: path}; the label defaults to the file's stem (its run
    directory's name for a model.pt)."""
    models: dict[str, str] = {}
    for text in texts:
        label, sep, path = text.partition("=")
        if not sep:
            path = text
            p = Path(path)
            label = p.parent.name if p.name == "model.pt" else p.stem
        if label in models:
            raise BenchError(f"two models are labelled {label!r}: name them, e.g. --models gcbc={path}")
        models[label] = path
    return models


def parse_pools(texts: list[str], models) -> dict[str, list[str]]:
    """``GROUP=LABEL,LABEL,...`` -> {group: [labels]}; BenchError for a label ``models`` lacks."""
    pools: dict[str, list[str]] = {}
    for text in texts:
        group, sep, labels = text.partition("=")
        members = [m for m in labels.split(",") if m]
        if not sep or not group or not members:
            raise BenchError(f"--pool {text!r}: write GROUP=LABEL,LABEL,...")
        unknown = [m for m in members if m not in models]
        if unknown:
            raise BenchError(f"--pool {group}: no model labelled {', '.join(unknown)} "
                             f"(the models: {', '.join(models) or 'none'})")
        if group in pools:
            raise BenchError(f"--pool: two groups are named {group!r}")
        pools[group] = list(dict.fromkeys(members))
    return pools


def describe_models(models: dict[str, str]) -> dict[str, dict]:
    """Each model's path, sha256, algorithm, step and execution settings; BenchError if one
    does not load."""
    from crl_ros.learning.checkpoint import CheckpointError, load_checkpoint

    out = {}
    for label, path in models.items():
        try:
            meta = load_checkpoint(path).meta
        except CheckpointError as exc:
            raise BenchError(f"--models {label}: {exc}") from exc
        shape = list(meta.image_shape)
        if shape[0] != shape[1] or shape[2] != 3:
            raise BenchError(f"--models {label}: the model takes {shape} images; the sim camera gives square RGB")
        file = Path(path) / "model.pt" if Path(path).is_dir() else Path(path)
        digest = hashlib.sha256(file.read_bytes()).hexdigest()
        out[label] = {"path": str(path), "sha256": digest, "algorithm": meta.algorithm, "step": meta.step,
                      "image_shape": shape, "eval_gripper": meta.config.get("eval_gripper", "continuous"),
                      "eval_sample": meta.config.get("eval_sample", True)}
    return out


# -- running a cell (in a worker process) -------------------------------------------------------

_POLICIES: dict[str, object] = {}


def _worker_init() -> None:
    import torch
    torch.set_num_threads(1)  # one process per core: the simulator and the small networks share it


def run_cell(job: dict) -> dict:
    """One (model, condition, task): `evaluate` over the job's episodes; its result and times."""
    from crl_ros.learning.policy import Policy
    from crl_ros.sim.rollout import PolicyActor, evaluate
    from crl_ros.sim.shifts import ShiftSpec

    start_wall, start_cpu = time.perf_counter(), time.process_time()
    if job["model_path"] not in _POLICIES:
        _POLICIES[job["model_path"]] = Policy.load(job["model_path"], device="cpu")
    policy = _POLICIES[job["model_path"]]
    spec = None if job["shift"] == NOMINAL else ShiftSpec.parse([f"{job['shift']}={job['severity']}"],
                                                                goal=job["goal"])
    result = evaluate(SUITE, job["task"], PolicyActor(policy), episodes=job["episodes"], seed=job["seed"],
                      image_size=policy.image_shape[0], max_steps=job["max_steps"], shift=spec)[job["task"]]
    return {**job, **result, "wall_s": round(time.perf_counter() - start_wall, 2),
            "cpu_s": round(time.process_time() - start_cpu, 2)}


def _run_cells(jobs: list[dict], workers: int, on_done) -> None:
    from tqdm import tqdm

    bar = tqdm(total=len(jobs), desc="robustness cells", unit="cell", dynamic_ncols=True)
    try:
        if workers <= 1:
            _worker_init()
            for job in jobs:
                on_done(run_cell(job))
                bar.update(1)
            return
        # spawn, not fork: the parent may hold a GL context or threads (as crl demos --workers)
        with mp.get_context("spawn").Pool(workers, initializer=_worker_init) as pool:
            for result in pool.imap_unordered(run_cell, jobs):
                on_done(result)
                bar.update(1)
    finally:
        bar.close()


# -- the result file ----------------------------------------------------------------------------

def load_result(path: Path, config: dict, fresh: bool = False) -> dict:
    """The result so far at ``path`` (a new one if there is none, or with ``fresh``: the file is
    replaced at the first write); BenchError when it was run with other seeds, episodes or step
    limit, which its cells cannot be mixed with."""
    if fresh or not path.exists():
        return {"benchmark": "robustness", "suite": SUITE, "config": config, "invocations": [], "models": {},
                "conditions": {}, "cells": {}}
    try:
        result = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise BenchError(f"--out {path} is not a result JSON ({exc}); pass --fresh to start over") from exc
    old = result.get("config", {})
    for key in ("seeds", "seed", "episodes", "max_steps"):
        if old.get(key) != config[key]:
            raise BenchError(f"--out {path} was run with {key} {old.get(key)!r}, not {config[key]!r}: its cells "
                             f"cannot be mixed; pass --fresh to start over or another --out")
    for key in ("tasks", "shifts", "severities", "goal_cases"):  # a continued run may cover more
        config[key] = list(dict.fromkeys([*old.get(key, []), *config[key]]))
    result["config"] = {**old, **config}
    return result


def summarise(result: dict) -> dict:
    """Per model and condition: successes, episodes, mean and pooled Wilson interval over the
    tasks run (complete: every task of the configuration has its cell)."""
    from crl_ros.sim.rollout import wilson_interval

    tasks = result["config"]["tasks"]
    summary: dict[str, dict] = {}
    for model in result["models"]:
        for key in result["conditions"]:
            cells = [result["cells"].get(cell_key(model, key, t)) for t in tasks]
            done = [c for c in cells if c is not None]
            if not done:
                continue
            successes, episodes = sum(c["successes"] for c in done), sum(c["episodes"] for c in done)
            summary.setdefault(model, {})[key] = {
                "successes": successes, "episodes": episodes, "success_rate": successes / max(episodes, 1),
                "ci95": list(wilson_interval(successes, episodes)), "tasks_done": len(done),
                "complete": len(done) == len(tasks)}
    return summary


def pool(result: dict) -> dict:
    """Per group of ``result["pools"]`` and condition: successes and episodes summed over the
    group's models (per task and over the tasks), the Wilson interval of the sum, and the range
    of the models' own means (complete: every model has every task of the configuration)."""
    from crl_ros.sim.rollout import wilson_interval

    tasks, summary = result["config"]["tasks"], result["summary"]
    pooled: dict[str, dict] = {}
    for group, members in result.get("pools", {}).items():
        for key in result["conditions"]:
            means = [summary[m][key] for m in members if key in summary.get(m, {})]  # summarise's sums
            if not means:
                continue
            per_task = {}
            for task in tasks:
                cells = [c for m in members if (c := result["cells"].get(cell_key(m, key, task)))]
                if cells:
                    s, e = sum(c["successes"] for c in cells), sum(c["episodes"] for c in cells)
                    per_task[task] = {"successes": s, "episodes": e, "success_rate": s / e}
            successes, episodes = sum(m["successes"] for m in means), sum(m["episodes"] for m in means)
            pooled.setdefault(group, {})[key] = {
                "models": members, "successes": successes, "episodes": episodes,
                "success_rate": successes / episodes, "ci95": list(wilson_interval(successes, episodes)),
                "model_range": [min(m["success_rate"] for m in means), max(m["success_rate"] for m in means)],
                "tasks": per_task, "complete": len(means) == len(members) and all(m["complete"] for m in means)}
    return pooled


def write_json(path: Path, result: dict) -> None:
    """Atomically: an interrupted write leaves the previous file."""
    result["summary"] = summarise(result)
    if result.get("pools"):
        result["pooled"] = pool(result)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(result, indent=1))
    os.replace(tmp, path)


# -- the report ---------------------------------------------------------------------------------

def _pct(entry: dict | None) -> str:
    if entry is None:
        return "-"
    low, high = entry["ci95"]
    return f"{100 * entry['success_rate']:.0f} [{100 * low:.0f}, {100 * high:.0f}]"


def _condition_key(result: dict, shift: str, severity: str, goal: str) -> str | None:
    """The condition of (shift, severity, goal case); nominal for the nominal severity."""
    if severity == NOMINAL:
        return "none"
    return next((k for k, c in result["conditions"].items()
                 if c["shift"] == shift and c["goal"] == goal and severity in c["severities"]), None)


def markdown(result: dict) -> str:
    """A summary table (mean success [Wilson 95%] per shift x severity x goal case) and a
    per-task table, in %."""
    cfg, summary = result["config"], result["summary"]
    lines = [f"Success in % [Wilson 95% interval], {cfg['episodes']} episodes per task, {cfg['seeds']} seed "
             f"{cfg['seed']}, mean over {len(cfg['tasks'])} task(s); goal *same*: captured under the shift, "
             f"*nominal*: captured before it.", "",
             "| model | shift | goal | " + " | ".join(SEVERITY_AXIS) + " |",
             "| --- | --- | --- |" + " --- |" * len(SEVERITY_AXIS)]
    for model in result["models"]:
        rows = summary.get(model, {})
        lines.append(f"| {model} | none | - | {_pct(rows.get('none'))} |" + " |" * (len(SEVERITY_AXIS) - 1))
        for shift in cfg["shifts"]:
            for goal in cfg["goal_cases"]:
                cells = [_pct(rows.get(_condition_key(result, shift, s, goal) or "")) for s in SEVERITY_AXIS[1:]]
                lines.append(f"| {model} | {shift} | {goal} | | " + " | ".join(cells) + " |")
    lines += ["", "| model | condition | " + " | ".join(cfg["tasks"]) + " | mean |",
              "| --- | --- |" + " --- |" * (len(cfg["tasks"]) + 1)]
    for model in result["models"]:
        for key in result["conditions"]:
            if key not in summary.get(model, {}):
                continue
            cells = [result["cells"].get(cell_key(model, key, t)) for t in cfg["tasks"]]
            per_task = [f"{100 * c['success_rate']:.0f}" if c else "-" for c in cells]
            c = result["conditions"][key]
            name = "none" if key == "none" else (f"{c['shift']} {'/'.join(c['severities'])} ({c['spec']}), "
                                                 f"goal {c['goal']}")
            lines.append(f"| {model} | {name} | " + " | ".join(per_task) + f" | {_pct(summary[model][key])} |")
    if result.get("pooled"):
        lines += ["", "Pooled over each group's models (episodes summed; the interval counts episodes, not seeds; "
                  "range: the lowest and highest model mean):", "",
                  "| group | condition | " + " | ".join(cfg["tasks"]) + " | pooled mean | range |",
                  "| --- | --- |" + " --- |" * (len(cfg["tasks"]) + 2)]
        for group, rows in result["pooled"].items():
            for key, entry in rows.items():
                c = result["conditions"][key]
                name = "none" if key == "none" else f"{c['shift']} {'/'.join(c['severities'])}, goal {c['goal']}"
                per_task = [f"{100 * entry['tasks'][t]['success_rate']:.0f}" if t in entry["tasks"] else "-"
                            for t in cfg["tasks"]]
                low, high = entry["model_range"]
                lines.append(f"| {group} (n={len(entry['models'])}) | {name} | " + " | ".join(per_task)
                             + f" | {_pct(entry)} | {100 * low:.0f}-{100 * high:.0f} |")
    return "\n".join(lines)


COLOURS = [(214, 69, 65), (67, 147, 195), (90, 174, 97), (152, 78, 163), (255, 127, 0), (120, 120, 120),
           (166, 86, 40), (247, 129, 191), (23, 190, 207), (188, 189, 34)]  # ten before a colour repeats


def _dashed(draw, points, fill, dash: float = 5.0) -> None:
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        length = max(((x1 - x0) ** 2 + (y1 - y0) ** 2) ** 0.5, 1e-6)
        steps = int(length // dash)
        for k in range(0, steps + 1, 2):
            a, b = k * dash / length, min((k + 1) * dash / length, 1.0)
            draw.line([(x0 + a * (x1 - x0), y0 + a * (y1 - y0)), (x0 + b * (x1 - x0), y0 + b * (y1 - y0))],
                      fill=fill, width=2)


def chart(result: dict, path: Path) -> None:
    """Success vs severity: one panel per shift, one colour per model, solid = goal same,
    dashed = goal nominal, whiskers = Wilson 95% (PIL: the project's charts need no matplotlib)."""
    from PIL import Image, ImageDraw

    cfg, summary = result["config"], result["summary"]
    models, shifts = list(result["models"]), cfg["shifts"]
    panel_w, plot_h, left, top, gap = 230, 200, 50, 48, 30
    legend_h = 20 * (len(models) * len(cfg["goal_cases"]) + 1)
    width = left + len(shifts) * (panel_w + gap) + 10
    height = top + plot_h + 40 + legend_h
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((left, 10), f"{SUITE}: mean success over {len(cfg['tasks'])} task(s) vs shift severity, "
              f"{cfg['episodes']} episodes per task, {cfg['seeds']} seed {cfg['seed']}", fill="black")
    series = [(m, goal) for m in models for goal in cfg["goal_cases"]]
    for p, shift in enumerate(shifts):
        x0 = left + p * (panel_w + gap)
        draw.text((x0 + 4, top - 16), shift, fill="black")
        for pct in range(0, 101, 25):
            y = top + plot_h - pct / 100 * plot_h
            draw.line([(x0, y), (x0 + panel_w, y)], fill=(225, 225, 225))
            if p == 0:
                draw.text((x0 - 36, y - 6), f"{pct}%", fill="black")
        draw.rectangle([x0, top, x0 + panel_w, top + plot_h], outline="black")
        xs = [x0 + 20 + i * (panel_w - 40) / (len(SEVERITY_AXIS) - 1) for i in range(len(SEVERITY_AXIS))]
        for i, name in enumerate(SEVERITY_AXIS):
            draw.text((xs[i] - 3 * len(name), top + plot_h + 6), name, fill="black")
        for s, (model, goal) in enumerate(series):
            colour = COLOURS[models.index(model) % len(COLOURS)]
            offset = (s - (len(series) - 1) / 2) * 3  # side by side, so whiskers do not hide each other
            points = []
            for i, severity in enumerate(SEVERITY_AXIS):
                entry = summary.get(model, {}).get(_condition_key(result, shift, severity, goal) or "")
                if entry is None:
                    continue
                x, y = xs[i] + offset, top + plot_h * (1 - entry["success_rate"])
                low, high = entry["ci95"]
                draw.line([(x, top + plot_h * (1 - low)), (x, top + plot_h * (1 - high))], fill=colour)
                draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=colour)
                points.append((x, y))
            if goal == "nominal":
                _dashed(draw, points, colour)
            elif len(points) > 1:
                draw.line(points, fill=colour, width=2)
    y = top + plot_h + 30
    for model, goal in series:
        colour = COLOURS[models.index(model) % len(COLOURS)]
        segment = [(left, y + 6), (left + 30, y + 6)]
        _dashed(draw, segment, colour) if goal == "nominal" else draw.line(segment, fill=colour, width=2)
        draw.text((left + 38, y), f"{model}, goal {goal}", fill="black")
        y += 20
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)


# -- the command --------------------------------------------------------------------------------

def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def parse_args(argv=None) -> argparse.Namespace:
    from crl_ros.sim.rollout import EVAL_SEEDS, TEST_EPISODES
    from crl_ros.sim.shifts import GOAL_CASES, SEVERITIES

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=[DEFAULT_MODEL], metavar="[LABEL=]PATH",
                   help=f"models (model.pt files or run directories; default {DEFAULT_MODEL})")
    p.add_argument("--seeds", choices=list(EVAL_SEEDS), default="test",
                   help="evaluation seeds: test (report; default) or selection (for choices)")
    p.add_argument("--episodes", type=int, default=TEST_EPISODES, help=f"episodes per task and condition "
                                                                       f"(default {TEST_EPISODES})")
    p.add_argument("--tasks", type=_csv, default=["all"], help="comma-separated tasks, or all (default)")
    p.add_argument("--shifts", type=_csv, default=list(DEFAULT_SHIFTS),
                   help=f"comma-separated shift names (default {','.join(DEFAULT_SHIFTS)}; see docs/widowx_sim.md)")
    p.add_argument("--severities", type=_csv, default=list(SEVERITIES), help="comma-separated, of "
                                                                             + ", ".join(SEVERITIES))
    p.add_argument("--goal-cases", type=_csv, default=list(GOAL_CASES), help="comma-separated, of "
                                                                             + ", ".join(GOAL_CASES))
    p.add_argument("--max-steps", type=int, default=None, help="episode step limit (default: the task's)")
    p.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)),
                   help="processes (default: the cores this process may use)")
    p.add_argument("--out", default="bench/results/robustness.json", help="result JSON (continued if it exists)")
    p.add_argument("--fresh", action="store_true", help="start over: replace --out instead of continuing it")
    p.add_argument("--report", action="store_true", help="after the run, print the Markdown tables and draw the chart")
    p.add_argument("--report-only", action="store_true", help="report on --out without running anything")
    p.add_argument("--chart", default=None, help="chart PNG (default docs/images/<--out's name>.png)")
    p.add_argument("--markdown", default=None, help="also write the Markdown tables to this file")
    p.add_argument("--pool", nargs="+", default=[], metavar="GROUP=LABEL,LABEL,...",
                   help="also report each group of models pooled (e.g. an algorithm's training seeds): "
                        "episodes summed, Wilson interval, range of the models' means")
    return p.parse_args(argv)


def check_args(args: argparse.Namespace) -> list[str]:
    """BenchError naming the first bad argument; returns the tasks to run."""
    from crl_ros.sim.shifts import GOAL_CASES, SEVERITIES, SHIFTS
    from crl_ros.sim.suites import get_suite

    all_tasks = list(get_suite(SUITE).TASKS)
    tasks = all_tasks if args.tasks == ["all"] else args.tasks
    for name, given, valid in [("--tasks", tasks, all_tasks), ("--shifts", args.shifts, list(SHIFTS)),
                               ("--severities", args.severities, list(SEVERITIES)),
                               ("--goal-cases", args.goal_cases, list(GOAL_CASES))]:
        unknown = [g for g in given if g not in valid]
        if unknown or not given:
            raise BenchError(f"{name}: {', '.join(unknown) or 'nothing given'} unknown; choose from {', '.join(valid)}")
    if args.episodes < 1 or args.workers < 1 or (args.max_steps is not None and args.max_steps < 1):
        raise BenchError("--episodes, --workers and --max-steps must be >= 1")
    return tasks


def run_benchmark(args: argparse.Namespace, tasks: list[str], out: Path) -> dict:
    """Run the cells --out lacks, rewriting --out after each; the result."""
    import torch

    from crl_ros.sim.rollout import EVAL_SEEDS

    config = {"seeds": args.seeds, "seed": EVAL_SEEDS[args.seeds], "episodes": args.episodes,
              "max_steps": args.max_steps, "tasks": tasks, "shifts": args.shifts, "severities": args.severities,
              "goal_cases": args.goal_cases}
    models = describe_models(parse_models(args.models))
    result = load_result(out, config, fresh=args.fresh)
    for label, info in models.items():
        known = result["models"].get(label)
        if known and known["sha256"] != info["sha256"]:
            raise BenchError(f"--out {out} holds results of another model labelled {label!r} ({known['path']}): "
                             f"label this one differently or pass --fresh")
        result["models"][label] = info
    if args.pool:
        result["pools"] = parse_pools(args.pool, result["models"])
    jobs = []
    for key, condition in conditions(args.shifts, args.severities, args.goal_cases).items():
        known = result["conditions"].setdefault(key, condition)
        known["severities"] = sorted({*known["severities"], *condition["severities"]}, key=SEVERITY_AXIS.index)
        for label, info in models.items():
            for task in tasks:
                if cell_key(label, key, task) not in result["cells"]:
                    jobs.append({"condition": key, "model": label, "model_path": info["path"], "task": task,
                                 "shift": condition["shift"], "severity": condition["severities"][0],
                                 "goal": condition["goal"], "seed": config["seed"], "episodes": args.episodes,
                                 "max_steps": args.max_steps})
    invocation = {"started": datetime.now(timezone.utc).isoformat(timespec="seconds"), "cells_run": 0,
                  "workers": args.workers, "machine": machine(torch=torch.__version__, torch_threads_per_worker=1,
                                                              mujoco_gl=os.environ.get("MUJOCO_GL"))}
    result["invocations"].append(invocation)
    print(f"robustness: {len(jobs)} cells to run ({len(result['cells'])} already in {out}), "
          f"{args.episodes} episodes each, {args.workers} worker(s)", flush=True)
    start = time.perf_counter()

    def on_done(cell: dict) -> None:
        cell.pop("model_path")
        result["cells"][cell_key(cell["model"], cell["condition"], cell["task"])] = cell
        invocation["cells_run"] += 1
        invocation["wall_s"] = round(time.perf_counter() - start, 1)
        write_json(out, result)

    write_json(out, result)
    _run_cells(jobs, args.workers, on_done)
    invocation["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    invocation["wall_s"] = round(time.perf_counter() - start, 1)
    write_json(out, result)
    return result


def main(argv=None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    try:
        tasks = check_args(args)
        if args.report_only:
            if not out.exists():
                raise BenchError(f"--report-only: {out} does not exist")
            result = json.loads(out.read_text())
            if args.pool:
                result["pools"] = parse_pools(args.pool, result.get("models", {}))
                write_json(out, result)
        else:
            result = run_benchmark(args, tasks, out)
    except BenchError as exc:
        print(f"robustness: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\nrobustness: interrupted; the cells done are in {out}: run the same command to continue",
              file=sys.stderr)
        return 130
    print(f"results: {out}")
    if args.report or args.report_only:
        table = markdown(result)
        print(table)
        if args.markdown:
            Path(args.markdown).write_text(table + "\n")
        chart_path = Path(args.chart or f"docs/images/{out.stem}.png")
        chart(result, chart_path)
        print(f"chart: {chart_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
