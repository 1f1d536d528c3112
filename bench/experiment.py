"""One row of the experiment log (docs/results.md): train one configuration on WidowX data,
then evaluate it on every task from evaluation seed 100 (never used in training), with
sampled actions (the authors' evaluation) and with the policy mean.

    python bench/experiment.py NAME --data data/a.h5 data/b.h5 [--algo stable_crl] [--steps 6000] \\
        [--base cpu] [--set critic_loss=mc ...] [--seed 0] [--episodes 20] [--gripper binary]
    python bench/experiment.py NAME --data ... --eval-only --gripper binary --out ROW.json   # re-evaluate a run

``--base cpu`` starts from `crl train --profile cpu`'s overrides (``--base none``: the agent's
defaults) plus the WidowX suite's DATA_OVERRIDES; ``--set`` wins. The run goes to
runs/experiments/NAME (an existing one is resumed up to ``--steps``, so a longer row can
continue a shorter one), the row to bench/results/experiments/NAME.json with the machine,
the full settings, train wall/CPU time, the last logged training scalars and per-task success.
``--gripper`` sets how the evaluation executes the gripper action (default: the model's
``eval_gripper``); ``--eval-only`` evaluates the run's model.pt without training.
Set ``THREADS`` (default 1) for torch's thread count.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

from crl_ros.learning.agents import default_config
from crl_ros.learning.checkpoint import load_checkpoint
from crl_ros.learning.config import apply_overrides
from crl_ros.learning.policy import Policy
from crl_ros.learning.profiles import PROFILES
from crl_ros.learning.trainer import TrainConfig, train
from crl_ros.sim import widowx
from crl_ros.sim.rollout import PolicyActor, evaluate, mean_success

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import machine  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "experiments"
EVAL_SEED = 100


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("name")
    p.add_argument("--data", nargs="+", required=True)
    p.add_argument("--data-weights", nargs="+", type=float, default=None, metavar="W",
                   help="one sampling weight per --data file (crl train --data-weights)")
    p.add_argument("--algo", default="stable_crl", choices=["stable_crl", "gcbc", "gciql"])
    p.add_argument("--steps", type=int, default=6000)
    p.add_argument("--base", default="cpu", choices=[*PROFILES, "none"])
    p.add_argument("--set", nargs="*", default=[], dest="overrides", metavar="KEY=VALUE")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--episodes", type=int, default=20, help="evaluation episodes per task")
    p.add_argument("--mean-only", action="store_true", help="evaluate with the policy mean only")
    p.add_argument("--gripper", choices=["model", "continuous", "binary"], default="model",
                   help="how the evaluation executes the gripper action (model: the model's eval_gripper)")
    p.add_argument("--eval-only", action="store_true", help="evaluate the run's model.pt; do not train")
    p.add_argument("--init-from", default=None, metavar="MODEL",
                   help="fine-tune: a new run starting from MODEL's weights, config and action statistics "
                        "(--base/--set are then not used); --steps counts the new run's steps")
    p.add_argument("--eval-task", default="all", help="evaluate one task only (default all)")
    p.add_argument("--workdir", default="runs/experiments")
    p.add_argument("--out", default=None, help="row file (default bench/results/experiments/NAME.json)")
    args = p.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("THREADS", "1")))
    base = [] if args.base == "none" else PROFILES[args.base].overrides_for(args.algo)
    overrides = base + list(widowx.DATA_OVERRIDES) + list(args.overrides)
    cfg = apply_overrides(default_config(args.algo), overrides)
    run = Path(args.workdir) / args.name
    resume = (run / "checkpoints").exists()
    start, start_cpu = time.perf_counter(), time.process_time()
    if args.eval_only:
        model_path, steps_per_s = run / "model.pt", None
        if not model_path.exists():
            p.error(f"--eval-only: {model_path} does not exist")
    else:
        init_from = None if resume else args.init_from
        result = train(args.data, args.algo, None if (resume or init_from) else cfg,
                       TrainConfig(steps=args.steps, seed=args.seed, device="cpu", log_every=100,
                                   checkpoint_every=1000, progress=False, data_weights=args.data_weights), run, resume=resume,
                       init_from=init_from)
        model_path, steps_per_s = result.model_path, result.steps_per_second
    gripper = None if args.gripper == "model" else args.gripper
    # --eval-only: the row names the model's own config, not this command line's settings
    row = {"name": args.name, "algo": args.algo, "steps": args.steps, "seed": args.seed,
           "data": [str(d) for d in args.data], "data_weights": args.data_weights, "resumed": resume, "init_from": args.init_from,
           **({"model_config": Policy.load(model_path, device="cpu").meta.config} if args.eval_only
              else {"overrides": overrides} if not args.init_from
              else {"model_config": load_checkpoint(args.init_from).meta.config}),
           "machine": machine(torch=torch.__version__, torch_threads=torch.get_num_threads()),
           "eval_only": args.eval_only,
           "train_wall_s": None if args.eval_only else time.perf_counter() - start,
           "train_cpu_s": None if args.eval_only else time.process_time() - start_cpu,
           "steps_per_s": steps_per_s, "model": str(model_path),
           "eval": {"seed": EVAL_SEED, "episodes_per_task": args.episodes,
                    "gripper": Policy.load(model_path, device="cpu", gripper=gripper).gripper_mode}}
    logged = [json.loads(line) for line in open(run / "metrics.jsonl")]
    train_lines = [line for line in logged if line.get("kind") == "train"]
    row["final_scalars"] = {k: v for k, v in train_lines[-1].items() if isinstance(v, (int, float))} \
        if train_lines else {}
    for sample in ([False] if args.mean_only else [True, False]):
        policy = Policy.load(model_path, device="cpu", gripper=gripper)
        res = evaluate("widowx", args.eval_task, PolicyActor(policy, sample=sample), args.episodes, seed=EVAL_SEED)
        key = "sampled" if sample else "mean"
        row[key] = {"success": mean_success(res), "per_task": {t: r["success_rate"] for t, r in res.items()}}
        print(args.name, key, f"{100 * row[key]['success']:.1f}%",
              {t: round(100 * v) for t, v in row[key]["per_task"].items()}, flush=True)
    out = Path(args.out) if args.out else RESULTS / f"{args.name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(row, indent=1))
    return row


if __name__ == "__main__":
    main()
