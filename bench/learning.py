"""Learning benchmark: success on held-out goals per method, all trained on the same data.

Methods: Stable CRL, "CRL without the design decisions" (Stable CRL with layer norm, cold
init and augmentation switched off: the paper's ablation), GC-IQL and GCBC. Each is trained
for the profile's steps per seed, evaluated on every task of the suite from fixed starts
(evaluation seeds the training data does not use) and compared with a random policy.
Results go to bench/results/learning_<env>[_<profile>].json after EVERY run (so an
interrupted benchmark keeps what it measured; ``--resume`` skips finished runs), with the
machine and the exact settings. Trained models stay in ``--workdir``.

    python bench/learning.py --env pointmass                       # point-mass, CPU minutes
    make data-widowx && python bench/learning.py --env widowx --profile cpu --data \\
        data/widowx_tasks_1400.h5 data/widowx_play_rest_300.h5 data/widowx_reach_2000.h5   # CPU budget, hours
    python bench/learning.py --env widowx --profile paper          # 300k steps, batch 2048: GPU
    python bench/learning_report.py bench/results/learning_widowx_cpu.json   # docs/results.md + chart

Profiles (``--steps``, ``--batch-size``, ``--set`` override them):

- ``pointmass``: the suite's small network, 3000 steps.
- ``cpu``: ``crl train --profile cpu`` (batch 128, 256-wide MLPs, a half-width encoder,
  normalised actions, the MC critic for Stable CRL, fp32, 32000 steps), 20 evaluation
  episodes per task: 10-120 CPU-minutes per run on a 2-core CPU, so 12 runs take many hours
  (``--steps 6000`` for docs/results.md's ranking). NOT the paper's scale.
- ``paper``: the paper's network (1024-wide, 4-layer MLPs), batch 2048 for every method,
  300k steps, bf16 autocast where the GPU has it: one run is about an hour on one H100 at
  the 83 steps/s target.

Without ``--data`` the benchmark first writes ``--demo-episodes`` scripted play episodes.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from crl_ros.learning.agents import default_config
from crl_ros.learning.config import apply_overrides
from crl_ros.learning.policy import Policy
from crl_ros.learning.profiles import PROFILES as TRAIN_PROFILES
from crl_ros.learning.trainer import TrainConfig, train
from crl_ros.sim.rollout import PolicyActor, RandomActor, evaluate, mean_success, write_demos
from crl_ros.sim.suites import get_suite

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import machine  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"

#: method name -> (algorithm, config overrides that define it)
METHODS: dict[str, tuple[str, list[str]]] = {
    "stable_crl": ("stable_crl", []),
    "crl_no_design": ("stable_crl", ["layer_norm=false", "cold_init=false", "augment=false"]),
    "gciql": ("gciql", []),
    "gcbc": ("gcbc", []),
}

PROFILES: dict[str, dict[str, object]] = {
    "pointmass": {"steps": 3000, "batch_size": None, "overrides": None,  # None: the suite's TRAIN_OVERRIDES
                  "eval_episodes": 20, "eval_seed": 0, "seeds": [0], "demo_episodes": 1000,
                  "methods": ["stable_crl", "gcbc", "gciql"]},
    "cpu": {"steps": TRAIN_PROFILES["cpu"].steps, "batch_size": None,  # the profile's 128
            "overrides": list(TRAIN_PROFILES["cpu"].overrides),
            "algo_overrides": dict(TRAIN_PROFILES["cpu"].algo_overrides),
            "eval_episodes": 20, "eval_seed": 100, "seeds": [0, 1, 2], "demo_episodes": 300,
            "methods": list(METHODS)},
    "paper": {"steps": 300_000, "batch_size": 2048, "overrides": ["bf16=true"],
              "eval_episodes": 20, "eval_seed": 100, "seeds": [0, 1, 2], "demo_episodes": 3000,
              "methods": list(METHODS)},
}


def summarise(runs: list[dict]) -> dict[str, object]:
    """Mean and standard deviation over seeds, overall and per task."""
    tasks = list(runs[0]["per_task"])
    successes = [r["success"] for r in runs]
    return {"success": float(np.mean(successes)), "success_std": float(np.std(successes)),
            "per_task": {t: {"mean": float(np.mean([r["per_task"][t] for r in runs])),
                             "std": float(np.std([r["per_task"][t] for r in runs]))} for t in tasks},
            "runs": runs}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="pointmass")
    parser.add_argument("--profile", choices=sorted(PROFILES), default=None,
                        help="default: pointmass for --env pointmass, cpu otherwise")
    parser.add_argument("--methods", "--algos", nargs="+", default=None, choices=sorted(METHODS), dest="methods")
    parser.add_argument("--seeds", nargs="+", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--data", nargs="+", default=None, help="datasets to train on (default: generate play demos)")
    parser.add_argument("--demo-episodes", type=int, default=None)
    parser.add_argument("--eval-episodes", type=int, default=None, help="episodes per task")
    parser.add_argument("--eval-seed", type=int, default=None)
    parser.add_argument("--image-size", type=int, default=48)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--compile", action="store_true", help="torch.compile the update (CUDA)")
    parser.add_argument("--workers", type=int, default=min(os.cpu_count() or 1, 16),
                        help="processes writing the demos (default: the CPU count, at most 16)")
    parser.add_argument("--set", nargs="*", default=[], dest="overrides", metavar="KEY=VALUE")
    parser.add_argument("--workdir", default=None, help="models and demos (default runs/bench_learning_<env>_<profile>)")
    parser.add_argument("--out", default=None, help="results file (default bench/results/learning_<env>[_<profile>].json)")
    parser.add_argument("--resume", action="store_true", help="keep finished runs of --out and do the rest")
    args = parser.parse_args(argv)
    args.profile = args.profile or ("pointmass" if args.env == "pointmass" else "cpu")
    profile = PROFILES[args.profile]
    for key in ("steps", "batch_size", "eval_episodes", "eval_seed", "seeds", "demo_episodes", "methods"):
        if getattr(args, key) is None:
            setattr(args, key, profile[key])
    suite = get_suite(args.env)
    base = profile["overrides"]
    args.base_overrides = list(getattr(suite, "TRAIN_OVERRIDES", []) if base is None else base)
    args.base_overrides += list(getattr(suite, "DATA_OVERRIDES", []))  # e.g. WidowX: normalised actions
    if args.batch_size:
        args.base_overrides.append(f"batch_size={args.batch_size}")
    args.base_overrides += list(args.overrides)
    args.algo_overrides = {algo: list(extra) for algo, extra in profile.get("algo_overrides", {}).items()}
    name = f"learning_{args.env}" + ("" if args.profile == "pointmass" else f"_{args.profile}")
    args.out = Path(args.out) if args.out else RESULTS / f"{name}.json"
    args.workdir = Path(args.workdir) if args.workdir else Path("runs") / f"bench_{name}"
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    suite = get_suite(args.env)
    report: dict[str, object] = {
        "env": args.env, "profile": args.profile, "steps": args.steps,
        "machine": machine(torch=torch.__version__, torch_threads=torch.get_num_threads(),
                           cuda=torch.cuda.get_device_name(0) if torch.cuda.is_available() else None),
        "overrides": args.base_overrides, "algo_overrides": args.algo_overrides,
        "methods": {m: METHODS[m] for m in args.methods}, "seeds": args.seeds,
        "eval": {"episodes_per_task": args.eval_episodes, "seed": args.eval_seed, "tasks": list(suite.TASKS),
                 "goals": "held out: evaluation seeds that the training data does not use"},
        "results": {},
    }
    if args.resume and args.out.exists():
        old = json.loads(args.out.read_text())
        old_data = (old.get("data") or {}).get("paths")
        if old.get("steps") != args.steps or old.get("overrides") != args.base_overrides or \
                (args.data and old_data != [str(Path(d)) for d in args.data]):
            raise SystemExit(f"--resume: {args.out} was made with other settings (steps {old.get('steps')}, "
                             f"overrides {old.get('overrides')}, data {old_data}); use another --out")
        report["results"] = old.get("results", {})
        report["data"] = old.get("data")
    args.workdir.mkdir(parents=True, exist_ok=True)

    def save() -> None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(report, indent=2))
        os.replace(tmp, args.out)

    data = [Path(p) for p in args.data] if args.data else [args.workdir / "demos.h5"]
    report["data"] = report.get("data") or {"paths": [str(p) for p in data]}
    if not args.data and not data[0].exists():
        start = time.perf_counter()
        info = write_demos(data[0], args.env, "play", args.demo_episodes, seed=0, image_size=args.image_size,
                           workers=args.workers)
        report["data"] = dict(info, seconds=time.perf_counter() - start, paths=[str(data[0])])
    if "random" not in report["results"]:
        random_results = evaluate(args.env, "all", RandomActor(seed=args.eval_seed), args.eval_episodes,
                                  seed=args.eval_seed, image_size=args.image_size)
        report["results"]["random"] = {"success": mean_success(random_results), "success_std": 0.0,
                                       "per_task": {t: {"mean": r["success_rate"], "std": 0.0}
                                                    for t, r in random_results.items()}}
        save()
    print(f"random: {report['results']['random']['success']:.3f}", flush=True)

    for seed in args.seeds:  # seeds outermost: a cut-short benchmark still compares every method
        for method in args.methods:
            algo, method_overrides = METHODS[method]
            done = {r["seed"]: r for r in report["results"].get(method, {}).get("runs", [])}
            if seed in done:
                continue
            # the profile's per-algorithm settings, then everything else (a --set still wins)
            cfg = apply_overrides(apply_overrides(default_config(algo), args.algo_overrides.get(algo, [])),
                                  args.base_overrides + method_overrides)
            config = TrainConfig(steps=args.steps, seed=seed, device=args.device, log_every=100,
                                 checkpoint_every=max(args.steps // 4, 1), progress=True, compile=args.compile)
            run_dir = args.workdir / f"{method}_seed{seed}"
            resume = (run_dir / "checkpoints").exists()
            start_cpu, start = time.process_time(), time.perf_counter()
            result = train(data, algo, None if resume else cfg, config, run_dir, resume=resume)
            wall, cpu = time.perf_counter() - start, time.process_time() - start_cpu
            policy = Policy.load(result.model_path, device=args.device)
            res = evaluate(args.env, "all", PolicyActor(policy), args.eval_episodes, seed=args.eval_seed,
                           image_size=args.image_size)
            done[seed] = {"seed": seed, "success": mean_success(res), "train_wall_s": wall, "train_cpu_s": cpu,
                          "steps_per_s": result.steps_per_second, "model": str(result.model_path),
                          "per_task": {t: r["success_rate"] for t, r in res.items()}}
            report["results"][method] = summarise([done[s] for s in sorted(done)])
            save()
            print(f"{method} seed {seed}: success {done[seed]['success']:.3f} after {args.steps} steps "
                  f"({wall:.0f} s wall, {cpu:.0f} s CPU)", flush=True)
    save()
    print(json.dumps({k: round(v["success"], 3) for k, v in report["results"].items()}, indent=2))
    print(f"wrote {args.out}")
    return report


if __name__ == "__main__":
    main()
