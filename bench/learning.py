"""Learning benchmark: success on held-out goals per algorithm, trained on the same demos.

Generates scripted play demonstrations (goals away from every evaluation goal), trains each
algorithm for a fixed number of steps per seed, evaluates it on every task of the suite
(held-out goals, fixed starts per evaluation seed) and compares with a random policy.
Prints JSON and writes bench/results/learning_<env>.json with the machine noted.

    python bench/learning.py --env pointmass [--steps N] [--algos stable_crl gcbc gciql] [--seeds 0 1]

The point-mass runs use the suite's small network (crl_ros.sim.pointmass.TRAIN_OVERRIDES);
add --set key=value to change it.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from crl_ros.learning.agents import default_config
from crl_ros.learning.config import apply_overrides
from crl_ros.learning.policy import Policy
from crl_ros.learning.trainer import TrainConfig, train
from crl_ros.sim.rollout import PolicyActor, RandomActor, evaluate, mean_success, write_demos
from crl_ros.sim.suites import get_suite

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, object]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version(), "platform": platform.platform(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="pointmass")
    parser.add_argument("--algos", nargs="+", default=["stable_crl", "gcbc", "gciql"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--demo-episodes", type=int, default=1000)
    parser.add_argument("--eval-episodes", type=int, default=20, help="episodes per task")
    parser.add_argument("--eval-seed", type=int, default=0)
    parser.add_argument("--image-size", type=int, default=48)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--set", nargs="*", default=[], dest="overrides", metavar="KEY=VALUE")
    parser.add_argument("--out", default=None, help="results file (default bench/results/learning_<env>.json)")
    args = parser.parse_args()

    suite = get_suite(args.env)
    base_overrides = list(getattr(suite, "TRAIN_OVERRIDES", [])) + list(args.overrides)
    report: dict[str, object] = {
        "env": args.env, "machine": machine(), "steps": args.steps, "overrides": base_overrides,
        "eval": {"episodes_per_task": args.eval_episodes, "seed": args.eval_seed, "tasks": list(suite.TASKS),
                 "goals": "held out: play demos never target them"},
        "results": {},
    }
    with tempfile.TemporaryDirectory(prefix="crl_bench_") as tmp:
        data = Path(tmp) / "demos.h5"
        start = time.perf_counter()
        report["demos"] = write_demos(data, args.env, "play", args.demo_episodes, seed=0, image_size=args.image_size,
                                      workers=args.workers)
        report["demos"]["seconds"] = time.perf_counter() - start
        random_results = evaluate(args.env, "all", RandomActor(seed=args.eval_seed), args.eval_episodes,
                                  seed=args.eval_seed, image_size=args.image_size)
        report["results"]["random"] = {"success": mean_success(random_results),
                                       "per_task": {t: r["success_rate"] for t, r in random_results.items()}}
        print(f"random: {mean_success(random_results):.3f}", flush=True)
        for algo in args.algos:
            runs = []
            for seed in args.seeds:
                cfg = apply_overrides(default_config(algo), base_overrides)
                config = TrainConfig(steps=args.steps, seed=seed, device=args.device, log_every=100,
                                     checkpoint_every=args.steps, progress=False)
                start_cpu, start = time.process_time(), time.perf_counter()
                result = train([data], algo, cfg, config, Path(tmp) / f"{algo}_{seed}")
                wall, cpu = time.perf_counter() - start, time.process_time() - start_cpu
                policy = Policy.load(result.model_path, device=args.device)
                res = evaluate(args.env, "all", PolicyActor(policy), args.eval_episodes, seed=args.eval_seed,
                               image_size=args.image_size)
                runs.append({"seed": seed, "success": mean_success(res), "train_wall_s": wall, "train_cpu_s": cpu,
                             "steps_per_s": result.steps_per_second,
                             "per_task": {t: r["success_rate"] for t, r in res.items()}})
                print(f"{algo} seed {seed}: success {mean_success(res):.3f} after {args.steps} steps "
                      f"({wall:.0f} s wall, {cpu:.0f} s CPU)", flush=True)
            report["results"][algo] = {"success": float(np.mean([r["success"] for r in runs])), "runs": runs}
    out = Path(args.out) if args.out else RESULTS / f"learning_{args.env}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(json.dumps({k: v["success"] for k, v in report["results"].items()}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
