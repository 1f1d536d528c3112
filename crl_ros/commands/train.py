"""`crl train`: train Stable CRL / GCBC / GC-IQL offline on crl_ros datasets."""
from __future__ import annotations

import argparse
import sys

HELP = "train an agent offline on one or more datasets (.h5)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", nargs="+", help="dataset file(s); on --resume defaults to the run's data")
    parser.add_argument("--algo", choices=["stable_crl", "gcbc", "gciql"],
                        help="algorithm (required unless --resume)")
    parser.add_argument("--out", required=True, help="run directory, e.g. runs/NAME")
    parser.add_argument("--steps", type=int, default=100_000, help="total gradient steps of the run")
    parser.add_argument("--batch-size", type=int, help="shortcut for --set batch_size=B")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--config", help="YAML file of agent config overrides")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="agent config overrides, e.g. hidden_width=256 critic_loss=mc")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    parser.add_argument("--force", action="store_true",
                        help="start over in a non-empty --out (the old run is renamed, not deleted)")
    parser.add_argument("--log-every", type=int, default=100)
    parser.add_argument("--checkpoint-every", type=int, default=5_000)
    parser.add_argument("--keep-checkpoints", type=int, default=3, help="step checkpoints kept; 0 keeps all")
    parser.add_argument("--eval-env", help="evaluate in this sim suite during training (e.g. pointmass)")
    parser.add_argument("--eval-episodes", type=int, default=10, help="episodes per task per evaluation")
    parser.add_argument("--eval-every", type=int, default=0, help="steps between evaluations (0: at the end)")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast on CUDA")
    parser.add_argument("--compile", action="store_true", help="torch.compile the update (CUDA)")
    parser.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    parser.add_argument("--nproc", type=int, default=1,
                        help="data-parallel processes on this machine (one per GPU on CUDA; gloo on CPU); "
                             "the batch size is the global one, split between them")


def make_sim_evaluator(env: str, episodes: int, seed: int = 0):
    """evaluate(policy) -> {"success": mean over tasks, "<task>/success": per task}."""
    from crl_ros.sim.rollout import PolicyActor, evaluate, mean_success

    def evaluator(policy) -> dict[str, float]:
        results = evaluate(env, "all", PolicyActor(policy), episodes=episodes, seed=seed,
                           image_size=policy.image_shape[0])
        return {"success": mean_success(results), **{f"{t}/success": r["success_rate"] for t, r in results.items()}}
    return evaluator


def run(args: argparse.Namespace) -> int:
    if args.nproc > 1:
        return _run_processes(args)
    return _train(args)


def _process_main(args: argparse.Namespace) -> None:
    from crl_ros.learning import distributed
    try:
        code = _train(args)
    except BaseException:
        distributed.shutdown(wait_for_others=False)
        raise
    distributed.shutdown(wait_for_others=code == 0)
    if code:
        sys.exit(code)


def _run_processes(args: argparse.Namespace) -> int:
    from torch.multiprocessing import ProcessExitedException, ProcessRaisedException

    from crl_ros.learning import distributed
    try:
        distributed.launch(args.nproc, _process_main, args)
    except (ProcessExitedException, ProcessRaisedException) as exc:
        print(f"crl train: a training process failed: {str(exc).strip().splitlines()[-1]}", file=sys.stderr)
        return 1
    return 0


def _train(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from crl_ros.learning.agents import default_config
    from crl_ros.learning.checkpoint import CheckpointError
    from crl_ros.learning.config import apply_overrides, load_yaml_overrides
    from crl_ros.learning.dataset import DatasetError
    from crl_ros.learning.trainer import TrainConfig, TrainError, train

    def fail(message: str, code: int = 1) -> int:
        print(f"crl train: {message}", file=sys.stderr)
        return code

    out = Path(args.out)
    overrides = list(args.overrides) + ([f"batch_size={args.batch_size}"] if args.batch_size else [])
    agent_config = None
    if args.resume:
        if overrides or args.config:
            return fail("--resume continues a run with its saved config; drop --config/--set/--batch-size", 2)
        data = args.data
        if not data:
            run_file = out / "run.json"
            if not run_file.exists():
                return fail(f"--resume: {run_file} not found; pass --data")
            data = json.loads(run_file.read_text())["dataset"]["paths"]
    else:
        if not args.algo or not args.data:
            return fail("--algo and --data are required (unless --resume)", 2)
        data = args.data
        try:
            agent_config = default_config(args.algo)
            if args.config:
                agent_config = apply_overrides(agent_config, load_yaml_overrides(args.config))
            agent_config = apply_overrides(agent_config, overrides)
        except (ValueError, OSError) as exc:
            return fail(f"bad config: {exc}", 2)
    try:
        config = TrainConfig(steps=args.steps, seed=args.seed, device=args.device, log_every=args.log_every,
                             checkpoint_every=args.checkpoint_every, eval_every=args.eval_every,
                             keep_checkpoints=args.keep_checkpoints, amp_bf16=args.bf16, compile=args.compile,
                             progress=not args.no_progress)
        evaluator = make_sim_evaluator(args.eval_env, args.eval_episodes) if args.eval_env else None
        result = train(data, args.algo, agent_config, config, out, resume=args.resume, force=args.force,
                       evaluator=evaluator)
    except (DatasetError, CheckpointError, TrainError, ValueError) as exc:
        return fail(str(exc))
    from crl_ros.learning import distributed
    if not distributed.is_main_process():
        return 0
    print(f"trained {result.step} steps ({result.steps_per_second:.2f} steps/s); model: {result.model_path}")
    if result.eval:
        print("evaluation: " + ", ".join(f"{k} {v:.3f}" for k, v in result.eval.items()))
    return 0
