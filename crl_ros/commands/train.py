"""`crl train`: train Stable CRL / GCBC / GC-IQL offline on crl_ros datasets."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "train an agent offline on one or more datasets (.h5)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from crl_ros.learning.profiles import DEFAULT_PROFILE, PROFILES

    profiles = "; ".join(f"{p.name}: {p.description}" for p in PROFILES.values())
    parser.add_argument("--data", nargs="+", help="dataset file(s) (.h5, from `crl convert` or `crl demos`); "
                                                  "on --resume defaults to the run's data")
    parser.add_argument("--data-weights", nargs="+", type=float, default=None, metavar="W",
                        help="one sampling weight per --data file: a file of weight 2 is drawn from as if it were "
                             "listed twice (default: every transition equally likely; on --resume the run's)")
    parser.add_argument("--algo", choices=["stable_crl", "gcbc", "gciql"],
                        help="algorithm (required unless --resume)")
    parser.add_argument("--out", required=True, help="run directory, e.g. runs/NAME")
    parser.add_argument("--profile", choices=list(PROFILES), default=None,
                        help=f"size of the run (default {DEFAULT_PROFILE}; --set/--config/--batch-size override it): "
                             f"{profiles}")
    parser.add_argument("--steps", type=int, default=None,
                        help="total gradient steps of the run (default: the profile's, "
                             + ", ".join(f"{p.name} {p.steps}" for p in PROFILES.values())
                             + "; on --resume the run's)")
    parser.add_argument("--batch-size", type=int, help="shortcut for --set batch_size=B")
    parser.add_argument("--device", default=None, help="auto (CUDA when available) | cpu | cuda | cuda:N "
                                                       "(default auto; on --resume the run's)")
    parser.add_argument("--config", help="YAML file of agent config overrides")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="agent config overrides, e.g. hidden_width=256 critic_loss=mc (with --init-from: "
                             "augment_* settings only, e.g. augment_goal_apart=0.5)")
    parser.add_argument("--augment", metavar="NAME,...", default=None,
                        help="image augmentations, exactly these (the others off): shift (the paper's random "
                             "shift, the default), crop, rotate, color_jitter, blur, noise; or none. Ranges: "
                             "--set augment_rotate_deg=5 augment_crop_scale=[0.85,1] augment_brightness=0.3 "
                             "augment_contrast=0.2 augment_saturation=0.2 augment_hue=0.02 "
                             "augment_blur_sigma=[0.1,1] augment_noise_std=5 (the cpu_robust profile's set). "
                             "With --init-from the model's config gets these augmentations")
    parser.add_argument("--seed", type=int, default=None, help="seed of weights init and batch sampling (default 0)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --out from its last checkpoint, with the run's settings "
                             "(run.json) except those given again")
    parser.add_argument("--init-from", metavar="MODEL", default=None,
                        help="fine-tune: a new run that starts from MODEL's weights (model.pt or a step "
                             "checkpoint), keeping its algorithm, config and action statistics; the optimiser "
                             "and the step count start afresh (needs --data and --steps)")
    parser.add_argument("--force", action="store_true",
                        help="start over in a non-empty --out (the old run is renamed, not deleted)")
    parser.add_argument("--log-every", type=int, default=None,
                        help="steps between TensorBoard/metrics.jsonl scalars (default 100)")
    parser.add_argument("--checkpoint-every", type=int, default=None,
                        help="steps between step checkpoints (default 5000)")
    parser.add_argument("--checkpoint-minutes", type=float, default=None,
                        help="also checkpoint after this many minutes of wall time; 0 turns it off (default 10)")
    parser.add_argument("--keep-checkpoints", type=int, default=None,
                        help="step checkpoints kept, oldest deleted first; 0 keeps all (default 2)")
    parser.add_argument("--model-dtype", choices=["float32", "float16", "bfloat16"], default=None,
                        help="weights dtype of the deployable model.pt (step checkpoints stay float32; "
                             "default float32)")
    parser.add_argument("--eval-env", help="evaluate in this sim suite during training (pointmass | widowx)")
    parser.add_argument("--eval-episodes", type=int, default=None, help="episodes per task per evaluation (default 10)")
    parser.add_argument("--eval-every", type=int, default=None,
                        help="steps between evaluations; 0 evaluates once at the end (default 0)")
    parser.add_argument("--bf16", action="store_true",
                        help="bf16 autocast where the device runs it natively (CUDA, CPUs with AVX-512 BF16/AMX); "
                             "elsewhere the run says so and stays fp32")
    parser.add_argument("--compile", action="store_true", help="torch.compile the update (CUDA)")
    parser.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    parser.add_argument("--nproc", type=int, default=1,
                        help="data-parallel processes on this machine (one per GPU on CUDA; gloo on CPU); "
                             "the batch size is the global one, split between them")


#: TrainConfig fields (argparse dests of the same name) that --resume takes from the run unless given again
RESUMED_SETTINGS = ("steps", "seed", "device", "log_every", "checkpoint_every", "checkpoint_minutes",
                    "keep_checkpoints", "eval_every", "model_dtype", "data_weights")


def make_sim_evaluator(env: str, episodes: int, seed: int = 0):
    """evaluate(policy) -> {"success": mean over tasks, "<task>/success": per task}."""
    from crl_ros.sim.rollout import PolicyActor, evaluate, mean_success
    from crl_ros.sim.suites import get_suite

    get_suite(env)  # an unknown suite fails here, before training, with the list of suites

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
    from crl_ros.learning.trainer import TrainInterrupted
    try:
        code = _train(args, reraise_interrupt=True)
        wait = False  # only read for a refusal, which the others need not wait for
    except TrainInterrupted as exc:
        if distributed.is_main_process():
            print(f"crl train: {exc}", file=sys.stderr)
        code = exc.exit_code
        # An agreed stop: every process stopped at the same step and rank 0 is writing the
        # checkpoint. Wait for it: the launcher ends the other processes as soon as one exits
        # with a non-zero code, which aborted the write. After an abort nobody waits.
        wait = not exc.aborted
    except BaseException:
        distributed.shutdown(wait_for_others=False)
        raise
    if code:  # stopped (130/143) or refused with a message: that code reaches the launcher
        distributed.shutdown_and_exit(code, wait_for_others=wait)
    distributed.shutdown()  # done: distributed._worker exits


def _run_processes(args: argparse.Namespace) -> int:
    from torch.multiprocessing import ProcessExitedException, ProcessRaisedException

    from crl_ros.learning import distributed
    try:
        distributed.launch(args.nproc, _process_main, args)
    except (ProcessExitedException, ProcessRaisedException) as exc:
        code = getattr(exc, "exit_code", None)
        if code in (130, 143):  # the processes saved a checkpoint on SIGINT/SIGTERM and stopped
            return code
        print(f"crl train: a training process failed: {str(exc).strip().splitlines()[-1]}", file=sys.stderr)
        return 1
    return 0


class _Refused(Exception):
    """A run `crl train` will not start: the message for the user and the exit code."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


def _train(args: argparse.Namespace, reraise_interrupt: bool = False) -> int:
    """Settle the run (new, resumed or fine-tuned), train it, report it."""
    from crl_ros.learning import distributed
    from crl_ros.learning.checkpoint import CheckpointError
    from crl_ros.learning.dataset import DatasetError
    from crl_ros.learning.trainer import TrainConfig, TrainError, TrainInterrupted, train

    settings = {dest: getattr(args, dest) for dest in RESUMED_SETTINGS if getattr(args, dest) is not None}
    agent_config = None  # resumed and fine-tuned runs keep theirs
    try:
        if args.resume and args.init_from:
            raise _Refused("--init-from starts a new run; --resume continues one: pass one of them", 2)
        if args.init_from:
            data = _fine_tune_data(args, settings)
            agent_config = _fine_tune_config(args)
        elif args.resume:
            data = _resumed_data(args, settings)
            if data is None:
                return 0  # the run is already finished (and said so)
        else:
            data, agent_config = _new_run(args, settings)
    except _Refused as exc:
        print(f"crl train: {exc}", file=sys.stderr)
        return exc.code

    try:
        config = TrainConfig(**settings, amp_bf16=args.bf16,
                             compile=args.compile, progress=not args.no_progress)
        evaluator = make_sim_evaluator(args.eval_env, args.eval_episodes or 10) if args.eval_env else None
        result = train(data, args.algo, agent_config, config, Path(args.out), resume=args.resume,
                       force=args.force, evaluator=evaluator, init_from=args.init_from)
    except TrainInterrupted as exc:
        if reraise_interrupt:
            raise
        if distributed.is_main_process():
            print(f"crl train: {exc}", file=sys.stderr)
        return exc.exit_code
    except (DatasetError, CheckpointError, TrainError, ValueError) as exc:
        print(f"crl train: {exc}", file=sys.stderr)
        return 1
    if not distributed.is_main_process():
        return 0
    print(f"trained {result.step} steps ({result.steps_per_second:.2f} steps/s); model: {result.model_path}")
    if result.eval:
        print("evaluation: " + ", ".join(f"{k} {v:.3f}" for k, v in result.eval.items()))
    return 0


def _size_overrides(args: argparse.Namespace) -> list[str]:
    """--set, plus --batch-size as the override it is short for."""
    return list(args.overrides) + ([f"batch_size={args.batch_size}"] if args.batch_size else [])


def _new_run(args: argparse.Namespace, settings: dict):
    """A new run: (data, agent config) from --algo, the profile, --config and --set."""
    from crl_ros.learning.agents import default_config
    from crl_ros.learning.config import apply_overrides, load_yaml_overrides
    from crl_ros.learning.profiles import DEFAULT_PROFILE, get_profile, sets_size

    if not args.algo or not args.data:
        # say everything that stops the run at once (with both given, train() checks the data)
        problems = ["--algo is missing (a new run needs it; --resume continues a run, --init-from "
                    "fine-tunes a model)"] if not args.algo else []
        problems += [] if args.data else ["--data is missing"]
        problems += [f"--data {path} does not exist" for path in args.data or [] if not Path(path).exists()]
        raise _Refused("; ".join(problems), 2)
    overrides = _size_overrides(args)
    try:
        profile = get_profile(args.profile or DEFAULT_PROFILE)
        agent_config = apply_overrides(default_config(args.algo), profile.overrides_for(args.algo))
        config_overrides = load_yaml_overrides(args.config) if args.config else {}
        agent_config = apply_overrides(agent_config, config_overrides)
        agent_config = apply_overrides(agent_config, _augment_overrides(args))
        agent_config = apply_overrides(agent_config, overrides)
    except (ValueError, OSError) as exc:
        raise _Refused(f"bad config: {exc}", 2) from exc
    settings.setdefault("steps", profile.steps)
    explicit_size = args.profile is not None or sets_size(overrides) or sets_size(config_overrides)
    _hint_cpu_profile(args, profile, explicit_size, agent_config)
    return args.data, agent_config


def _fine_tune_data(args: argparse.Namespace, settings: dict) -> list[str]:
    """--init-from: a new run from a model's weights, config and action statistics."""
    network = [o for o in _size_overrides(args) if not _is_augment_setting(o)]
    if network or args.config or args.profile:
        given = f" (given: {' '.join(network)})" if network else ""
        raise _Refused("--init-from keeps the model's config; drop --profile/--config/--batch-size and any --set "
                       f"but augment_* settings{given}", 2)
    if not args.data or "steps" not in settings:
        raise _Refused("--init-from needs --data and --steps (the new run's steps)", 2)
    return args.data


def _augment_overrides(args: argparse.Namespace) -> list[str]:
    """--augment NAME,... as config overrides (none when not given); _Refused for an unknown name."""
    from crl_ros.learning.agents.common import augment_overrides

    if args.augment is None:
        return []
    try:
        return augment_overrides(args.augment.split(","))
    except ValueError as exc:
        raise _Refused(f"--augment: {exc}", 2) from exc


def _is_augment_setting(override: str) -> bool:
    return override.partition("=")[0].strip().startswith("augment")


def _fine_tune_config(args: argparse.Namespace):
    """--init-from with --augment or --set augment_*=...: the model's config with those
    augmentations (they change no network, so its weights still fit); None (the model's
    config as saved) without them."""
    from crl_ros.learning.agents import config_from_checkpoint
    from crl_ros.learning.checkpoint import CheckpointError, load_checkpoint
    from crl_ros.learning.config import apply_overrides

    overrides = _augment_overrides(args) + [o for o in args.overrides if _is_augment_setting(o)]
    if not overrides:
        return None
    try:
        meta = load_checkpoint(args.init_from).meta
    except CheckpointError as exc:
        raise _Refused(str(exc)) from exc
    try:
        return apply_overrides(config_from_checkpoint(meta.algorithm, meta.config), overrides)
    except ValueError as exc:
        raise _Refused(f"--set: {exc}", 2) from exc


def _resumed_data(args: argparse.Namespace, settings: dict) -> list[str] | None:
    """--resume: the run's data and, unless given again, its settings (into ``settings``);
    None when the run already has its steps."""
    import json

    from crl_ros.learning.checkpoint import CheckpointError, list_step_checkpoints
    from crl_ros.learning.trainer import run_train_config

    out = Path(args.out)
    if _size_overrides(args) or args.config or args.profile or args.augment is not None:
        raise _Refused("--resume continues a run with its saved config; drop "
                       "--profile/--config/--set/--batch-size/--augment", 2)
    data = args.data
    if not data:
        run_file = out / "run.json"
        if not run_file.exists():
            raise _Refused(f"--resume: {run_file} not found; pass --data")
        data = json.loads(run_file.read_text())["dataset"]["paths"]
    try:
        saved = run_train_config(out)
    except CheckpointError as exc:
        raise _Refused(str(exc)) from exc
    for name in RESUMED_SETTINGS:
        if name not in settings and name in saved:
            settings[name] = saved[name]
    found = list_step_checkpoints(out)
    if found and "steps" in settings and found[-1][0] >= settings["steps"]:
        print(f"crl train: the run in {out} is finished ({found[-1][0]} of {settings['steps']} steps); "
              f"pass --steps N (more than {found[-1][0]}) to train it further")
        return None
    return data


def _hint_cpu_profile(args: argparse.Namespace, profile, explicit_size: bool, agent_config) -> None:
    """Up front: the paper profile on a CPU runs for days; say so and name the CPU profile."""
    from crl_ros.learning import distributed
    from crl_ros.learning.policy import resolve_device

    if explicit_size or not distributed.is_main_process():
        return
    try:
        device = resolve_device(args.device or "auto")
    except ValueError:
        return  # train() reports the bad device
    if device.type != "cpu":
        return
    print(f"crl train: the {profile.name} profile (batch {agent_config.batch_size}, {agent_config.hidden_width}-wide "
          f"MLPs) is sized for a GPU: on a CPU a step takes seconds (about 1 s at batch 256, 7-34 s at batch 2048 "
          f"on 2 cores), i.e. days for {args.steps or profile.steps} steps. For a CPU run pass --profile cpu "
          f"(see docs/benchmarks.md for its time per 1,000 steps).", file=sys.stderr, flush=True)
