"""The offline training loop: plain and visible, CleanRL style.

    result = train(["demos.h5"], "stable_crl", agent_config, TrainConfig(steps=50_000), "runs/pm")

A run directory holds::

    run.json                  what was trained on what (algorithm, configs, data)
    metrics.jsonl             one JSON line per log step / evaluation
    tensorboard/              TensorBoard scalars: train/*, perf/*, eval/*
    checkpoints/step_XXXXXXX.pt   full training state (weights, optimiser, RNG), for --resume
    model.pt                  latest deployable weights + metadata, what `Policy.load` reads
                              (no target networks, no optimiser; optionally float16/bfloat16)

Interrupts: SIGINT (Ctrl-C) or SIGTERM finish the current step, write a step checkpoint
and model.pt (atomically) and end the run with `TrainInterrupted` (the CLI exits 130 /
143); ``--resume`` continues from there. A second signal aborts at once: the checkpoints
already on disk stay intact (writes go to a temporary file first). Checkpoints are also
written every ``checkpoint_minutes`` of wall time, so a slow run never risks hours.

Exactness: every random draw of a training step comes from the sampler's generator or
torch's global RNG, and both (plus numpy's and Python's) are saved in each step
checkpoint, so resuming after N steps and training M more gives bit-for-bit the weights
of an uninterrupted N + M run on CPU. Evaluation runs under a forked RNG so attaching an
evaluator does not change training either.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from crl_ros.learning import distributed
from crl_ros.learning.checkpoint import (CheckpointError, CheckpointMeta, MODEL_FILENAME, capture_rng_state,
                                         list_step_checkpoints, load_checkpoint, restore_rng_state,
                                         save_checkpoint, step_checkpoint_path)
from crl_ros.learning.dataset import Dataset, DatasetError, load_many
from crl_ros.learning.policy import Policy, resolve_device

#: evaluate(policy) -> {name: scalar}; e.g. {"success": 0.9, "reach_top_left/success": 1.0}
Evaluator = Callable[[Policy], dict[str, float]]


class TrainError(RuntimeError):
    """Training cannot start or continue (existing run, nothing to resume, divergence)."""


class TrainInterrupted(RuntimeError):
    """A signal ended the run. ``saved`` is the checkpoint written at ``step`` (None when a
    second signal aborted before it was written; ``last_checkpoint`` is then what --resume uses)."""

    def __init__(self, signum: int, step: int, saved: Path | None, last_checkpoint: Path | None,
                 aborted: bool | None = None):
        self.signum, self.step, self.saved, self.last_checkpoint = signum, step, saved, last_checkpoint
        # aborted: a second signal cut the run short. False for an agreed stop, also in a process
        # that is not the one writing the checkpoint (``saved`` is None there).
        self.aborted = saved is None if aborted is None else aborted
        name = signal.Signals(signum).name
        if saved is not None:
            text = f"{name}: stopped at step {step}; checkpoint {saved} written, continue with --resume"
        else:
            text = (f"{name} again: aborted without saving step {step}; "
                    + (f"--resume continues from {last_checkpoint}" if last_checkpoint else "no checkpoint was written"))
        super().__init__(text)

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # 130 for SIGINT, 143 for SIGTERM


class _Abort(BaseException):
    """Raised by the second signal: unwinds out of anything, including a checkpoint write."""


class _StopSignals:
    """First SIGINT/SIGTERM: ask the loop to stop after this step. Second: abort now.
    Installed only in the main thread (signal handlers can live nowhere else)."""

    def __init__(self, enabled: bool, main: bool):
        self.signum: int | None = None
        self.aborted = False
        self._main = main
        self._previous: dict[int, Any] = {}
        self._enabled = enabled and threading.current_thread() is threading.main_thread()

    def install(self) -> None:
        if self._enabled:
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is None:
            self.signum = signum
            if self._main:
                print(f"\n{signal.Signals(signum).name}: finishing this step, then writing a checkpoint "
                      f"(send it again to abort without saving)", file=sys.stderr, flush=True)
            return
        self.aborted = True
        raise _Abort()


@dataclass
class TrainConfig:
    steps: int = 300_000  # total gradient steps of the run (a resumed run continues up to it); the paper's
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    log_every: int = 100
    checkpoint_every: int = 5_000
    checkpoint_minutes: float = 10.0  # also checkpoint after this much wall time (0: only every N steps)
    eval_every: int = 0  # 0: evaluate once at the end (when an evaluator is attached)
    keep_checkpoints: int = 2  # step checkpoints kept (oldest deleted first); 0 keeps all
    model_dtype: str = "float32"  # weights dtype of the deployable model.pt: float32 | float16 | bfloat16
    handle_signals: bool = True  # SIGINT/SIGTERM save a checkpoint and stop (main thread only)
    amp_bf16: bool = False  # bf16 autocast of the forward passes on CUDA
    compile: bool = False  # torch.compile the agent's update (CUDA; the first steps are slow)
    progress: bool = True  # tqdm bar
    # one sampling weight per data file: a file of weight 2 is drawn from as if it were listed twice
    # (its transitions twice as likely as the others'); None: every transition equally likely
    data_weights: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        for name in ("steps", "log_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.eval_every < 0 or self.keep_checkpoints < 0 or self.checkpoint_minutes < 0:
            raise ValueError("eval_every, keep_checkpoints and checkpoint_minutes must be >= 0")
        if self.data_weights is not None:
            self.data_weights = tuple(float(w) for w in self.data_weights)
            if not all(math.isfinite(w) and w >= 0 for w in self.data_weights) or not any(self.data_weights):
                raise ValueError(f"TrainConfig.data_weights must be finite, >= 0 and not all 0, "
                                 f"got {list(self.data_weights)}")
        if self.model_dtype not in MODEL_DTYPES:
            raise ValueError(f"TrainConfig.model_dtype must be one of {', '.join(MODEL_DTYPES)}, got {self.model_dtype!r}")


MODEL_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def deployable_state(agent: Any, dtype: str = "float32") -> dict[str, torch.Tensor]:
    """What `Policy` needs of an agent: its state dict without the networks it lists in
    ``training_only_prefixes`` (target networks), floating tensors cast to `dtype`."""
    prefixes = tuple(getattr(agent, "training_only_prefixes", ()))
    target = MODEL_DTYPES[dtype]
    return {k: (v.to(target) if v.is_floating_point() else v) for k, v in agent.state_dict().items()
            if not k.startswith(prefixes)}


@dataclass
class TrainResult:
    out_dir: Path
    model_path: Path
    step: int
    steps_per_second: float
    eval: dict[str, float]


def prepare_out_dir(out_dir: Path, resume: bool, force: bool) -> None:
    """Never lose a run: a non-empty directory needs --resume (continue) or --force (moved aside)."""
    exists = out_dir.exists() and any(out_dir.iterdir())
    if resume:
        if not exists:
            raise TrainError(f"--resume: {out_dir} holds no run to resume")
        return
    if exists:
        if not force:
            raise TrainError(f"{out_dir} already holds a run; pass --resume to continue it, or --force to start "
                             f"over (the old run is kept, renamed to {out_dir.name}.old-<time>)")
        backup = out_dir.with_name(f"{out_dir.name}.old-{time.strftime('%Y%m%d-%H%M%S')}")
        out_dir.rename(backup)
        print(f"moved the existing run {out_dir} to {backup}")
    out_dir.mkdir(parents=True, exist_ok=True)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def dataset_provenance(data: Dataset, paths: Sequence[str | os.PathLike],
                       weights: Sequence[float] | None = None) -> dict[str, Any]:
    record = {"paths": [str(Path(p).resolve()) for p in paths], "num_frames": int(data.num_frames),
              "num_episodes": int(data.num_episodes), "provenance": data.metadata.provenance}
    if weights is not None:
        record["weights"] = [float(w) for w in weights]
    return record


def train(data: Sequence[str | os.PathLike] | Dataset, algorithm: str, agent_config: Any, config: TrainConfig,
          out_dir: str | os.PathLike, resume: bool = False, force: bool = False,
          evaluator: Evaluator | None = None, init_from: str | os.PathLike | None = None) -> TrainResult:
    """Train `algorithm` offline on `data` (dataset paths or a loaded Dataset) into `out_dir`.

    With ``resume`` the algorithm, agent config and action statistics come from the latest
    step checkpoint in `out_dir`; `agent_config` may then be None.

    ``init_from`` (a model.pt or step checkpoint) starts a *new* run from that model's weights
    (fine-tuning, e.g. on added data): its algorithm and action statistics are kept (the
    weights mean nothing under other ones), `agent_config` None takes its config too; the
    optimiser and the step count start afresh, and run.json records where the weights came from.
    """
    from torch.utils.tensorboard import SummaryWriter
    from tqdm import tqdm

    from crl_ros.learning.agents import config_from_checkpoint, make_agent
    from crl_ros.learning.config import config_to_dict
    from crl_ros.learning.sampler import Sampler

    out = Path(out_dir)
    device = resolve_device(config.device)
    # Several processes (crl train --nproc, torchrun): gradients averaged, process 0 writes.
    distributed.init_from_environment(device.type)
    device = distributed.local_device(device)
    rank, world, main = distributed.rank(), distributed.world_size(), distributed.is_main_process()
    if not main:
        evaluator = None
    if isinstance(data, Dataset):
        dataset, paths = data, [data.path] if data.path else []
    else:
        paths = [Path(p) for p in data]
        dataset = load_many(paths)
    if main:
        prepare_out_dir(out, resume, force)
    distributed.barrier()

    checkpoint = None
    init = None
    if init_from is not None:
        if resume:
            raise TrainError("--init-from starts a new run from a model's weights; it cannot be combined with --resume")
        init = load_checkpoint(init_from)
        if algorithm and algorithm != init.meta.algorithm:
            raise TrainError(f"--init-from: {init.path} is a {init.meta.algorithm} model, not {algorithm}")
        algorithm = init.meta.algorithm
        if agent_config is None:
            agent_config = config_from_checkpoint(algorithm, init.meta.config)
    if resume:
        found = list_step_checkpoints(out)
        if not found:
            raise TrainError(f"--resume: {out} has no checkpoints/step_*.pt to resume from")
        checkpoint = load_checkpoint(found[-1][1])
        if checkpoint.training is None:
            raise CheckpointError(f"{checkpoint.path} holds no training state; cannot resume from it")
        if algorithm and algorithm != checkpoint.meta.algorithm:
            raise TrainError(f"--resume: {out} trains {checkpoint.meta.algorithm}, not {algorithm}")
        algorithm = checkpoint.meta.algorithm
        agent_config = config_from_checkpoint(algorithm, checkpoint.meta.config)
    if config.amp_bf16 and hasattr(agent_config, "bf16"):
        agent_config = dataclasses.replace(agent_config, bf16=True)
    if checkpoint is not None and main:
        _record_resume(out, config, int(checkpoint.training["step"]))

    meta_ds = dataset.metadata
    seed_everything(config.seed)
    # Each process draws its own batches (process 0 keeps the single-process seed).
    stats_from = checkpoint if checkpoint is not None else init
    try:
        frame_weights = None if config.data_weights is None else dataset.source_frame_weights(config.data_weights)
    except DatasetError as exc:
        raise TrainError(f"--data-weights: {exc}") from None
    sampler = Sampler(dataset, device, seed=config.seed + rank * 1_000_003,
                      action_mean=None if stats_from is None else np.asarray(stats_from.meta.action_mean),
                      action_std=None if stats_from is None else np.asarray(stats_from.meta.action_std),
                      normalize_actions=agent_config.normalize_actions, frame_weights=frame_weights)
    agent = make_agent(algorithm, agent_config, image_shape=meta_ds.image_shape, action_dim=meta_ds.action_dim,
                       device=device)
    agent.to(device)
    use_bf16 = bool(getattr(agent, "uses_bf16", False))
    if main:
        from crl_ros.learning.precision import precision_info, resolve_bf16
        _, why = resolve_bf16(bool(getattr(agent_config, "bf16", False)), device)
        if why:
            print(f"crl train: {why}", flush=True)
        precision = {"precision": "bf16 autocast" if use_bf16 else "fp32", "detail": precision_info(device).detail}
    meta = CheckpointMeta(
        algorithm=algorithm, config=config_to_dict(agent_config), image_shape=meta_ds.image_shape,
        action_dim=meta_ds.action_dim, action_names=list(meta_ds.action_names),
        action_mean=sampler.action_mean.tolist(), action_std=sampler.action_std.tolist(),
        action_low=meta_ds.action_low, action_high=meta_ds.action_high,
        dataset=dataset_provenance(dataset, paths, config.data_weights))

    start_step = 0
    if checkpoint is not None:
        if tuple(checkpoint.meta.image_shape) != tuple(meta_ds.image_shape) or \
                checkpoint.meta.action_dim != meta_ds.action_dim:
            raise TrainError(f"--resume: the data ({meta_ds.image_shape}, {meta_ds.action_dim} actions) does not "
                             f"match the run ({checkpoint.meta.image_shape}, {checkpoint.meta.action_dim} actions)")
        agent.load_state_dict(checkpoint.model)
        agent.load_optimizer_state(checkpoint.training["optimizer"])
        start_step = int(checkpoint.training["step"])
        if rank == 0:  # the saved sampler is process 0's; the others draw fresh streams
            sampler.load_state_dict(checkpoint.training["sampler"])
            restore_rng_state(checkpoint.training["rng"])
        else:
            sampler = Sampler(dataset, device, seed=config.seed + rank * 1_000_003 + start_step,
                              action_mean=sampler.action_mean, action_std=sampler.action_std,
                              frame_weights=frame_weights)
        if main:
            print(f"resuming {algorithm} from {checkpoint.path} at step {start_step}")
    if init is not None:
        if tuple(init.meta.image_shape) != tuple(meta_ds.image_shape) or init.meta.action_dim != meta_ds.action_dim:
            raise TrainError(f"--init-from: the data ({meta_ds.image_shape}, {meta_ds.action_dim} actions) does not "
                             f"match {init.path} ({init.meta.image_shape}, {init.meta.action_dim} actions)")
        from crl_ros.learning.policy import load_deployable_state
        load_deployable_state(agent, init.model, init.path)  # float16 weights are cast on load
        target = getattr(agent, "target_critic", None)
        if target is not None:  # a deployable model carries no target network: it starts as the critic
            target.load_state_dict(agent.critic.state_dict())
        if main:
            print(f"crl train: {algorithm} initialised from {init.path} (its step {init.meta.step})", flush=True)
    if checkpoint is None and main:
        (out / "run.json").write_text(json.dumps({
            "algorithm": algorithm, "agent_config": config_to_dict(agent_config),
            "init_from": None if init is None else {"path": str(init.path), "step": init.meta.step},
            "train_config": dataclasses.asdict(config), "device": str(device), **precision,
            "dataset": meta.dataset, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}, indent=2))

    distributed.broadcast_parameters_(agent)
    update = torch.compile(agent.update) if config.compile else agent.update
    policy = Policy(agent, meta, device)
    writer = SummaryWriter(str(out / "tensorboard"), purge_step=start_step if resume else None) if main else None
    metrics_file = open(out / "metrics.jsonl", "a") if main else None
    if agent_config.batch_size % world:
        raise TrainError(f"batch_size {agent_config.batch_size} does not split over {world} processes")
    batch_size = agent_config.batch_size // world  # the global batch stays the configured one

    def log(step: int, kind: str, scalars: dict[str, float]) -> None:
        if not main:
            return
        for key, value in scalars.items():
            writer.add_scalar(f"{kind}/{key}", value, step)
        metrics_file.write(json.dumps({"step": step, "kind": kind, **scalars}) + "\n")
        metrics_file.flush()

    def save(step: int) -> Path | None:
        if not main:
            return None
        step_meta = dataclasses.replace(meta, step=step)
        training = {"step": step, "optimizer": agent.optimizer_state(), "sampler": sampler.state_dict(),
                    "rng": capture_rng_state(), "train_config": dataclasses.asdict(config)}
        path = save_checkpoint(step_checkpoint_path(out, step), step_meta, agent.state_dict(), training)
        save_checkpoint(out / MODEL_FILENAME, dataclasses.replace(step_meta, weights_dtype=config.model_dtype),
                        deployable_state(agent, config.model_dtype))
        if config.keep_checkpoints:
            for _, old in list_step_checkpoints(out)[:-config.keep_checkpoints]:
                old.unlink(missing_ok=True)
        return path

    def run_evaluation(step: int) -> dict[str, float]:
        # Forked RNG and eval mode: evaluating must not change the training that follows.
        devices = [device.index or 0] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            agent.eval()
            try:
                scalars = {k: float(v) for k, v in evaluator(policy).items()}
            finally:
                agent.train()
        log(step, "eval", scalars)
        return scalars

    agent.train()
    sums: dict[str, torch.Tensor] = {}
    count = 0
    last_eval: dict[str, float] = {}
    last_saved = start_step if resume else -1
    last_evaluated = -1
    t_log, step_log = time.perf_counter(), start_step
    t_start = time.perf_counter()
    bar = tqdm(total=config.steps, initial=start_step, desc=f"train {algorithm}", unit="step",
               disable=not (config.progress and main), dynamic_ncols=True)
    step = start_step
    stop = _StopSignals(config.handle_signals, main)
    stopped_by: int | None = None
    saved_at_stop: Path | None = None
    last_saved_path: Path | None = found[-1][1] if resume else None
    t_saved = time.monotonic()
    t_first_steps: list[float] = []
    try:
        stop.install()
        while step < config.steps:
            if _stop_agreed(stop.signum is not None, step, device):
                stopped_by = stop.signum or signal.SIGTERM
                break
            batch = agent.make_batch(sampler, batch_size)
            info = update(batch, step)
            step += 1
            if main and len(t_first_steps) < 4:
                t_first_steps.append(time.perf_counter())
                if len(t_first_steps) == 4:  # the first step warms up: time steps 2-4
                    _warn_if_slow(config, device, step, (t_first_steps[-1] - t_first_steps[0]) / 3, bar)
            for key, value in info.items():  # on-device running sums: no host sync per step
                value = value.detach().float()
                sums[key] = sums[key] + value if key in sums else value
            count += 1
            bar.update(1)

            if step % config.log_every == 0 or step == config.steps:
                keys = list(sums)
                values = torch.stack([sums[k] for k in keys]).div_(count).tolist() if keys else []
                scalars = dict(zip(keys, values))
                bad = [k for k, v in scalars.items() if not math.isfinite(v)]
                if bad:
                    saved = list_step_checkpoints(out)
                    raise TrainError(f"training diverged at step {step}: {', '.join(bad)} not finite; last good "
                                     f"checkpoint: {saved[-1][1] if saved else 'none'}")
                now = time.perf_counter()
                rate = (step - step_log) / max(now - t_log, 1e-9)
                t_log, step_log = now, step
                log(step, "train", scalars)
                log(step, "perf", {"steps_per_s": rate, "samples_per_s": rate * batch_size * world})
                bar.set_postfix({k: f"{v:.3g}" for k, v in list(scalars.items())[:3]}, refresh=False)
                sums, count = {}, 0

            t_pause = time.perf_counter()
            due_by_time = config.checkpoint_minutes and time.monotonic() - t_saved >= 60 * config.checkpoint_minutes
            if step % config.checkpoint_every == 0 or step == config.steps or due_by_time:
                last_saved_path = save(step) or last_saved_path
                last_saved = step
                t_saved = time.monotonic()
            if evaluator is not None and ((config.eval_every and step % config.eval_every == 0)
                                          or step == config.steps):
                last_eval = run_evaluation(step)
                last_evaluated = step
                bar.write(f"step {step}: " + ", ".join(f"{k} {v:.3f}" for k, v in last_eval.items()))
            t_log += time.perf_counter() - t_pause  # steps/s counts training only
        if last_saved != step:
            last_saved_path = save(step) or last_saved_path
            last_saved = step
        if stopped_by is not None:
            saved_at_stop = last_saved_path
        elif evaluator is not None and last_evaluated != step:
            last_eval = run_evaluation(step)
    except _Abort:
        stopped_by = stop.signum
        saved_at_stop = None
    except BaseException:
        if not stop.aborted:
            raise
        # the second signal hit inside a library call that wrapped it (e.g. torch.save's writer)
        stopped_by, saved_at_stop = stop.signum, None
    finally:
        stop.restore()
        bar.close()
        if main:
            writer.close()
            metrics_file.close()
    if stopped_by is not None:
        if saved_at_stop is None or last_saved != step:
            saved_at_stop = None
            found_now = list_step_checkpoints(out)
            last_saved_path = found_now[-1][1] if found_now else None
        raise TrainInterrupted(int(stopped_by), step, saved_at_stop, last_saved_path, aborted=stop.aborted)
    elapsed = time.perf_counter() - t_start
    return TrainResult(out_dir=out, model_path=out / MODEL_FILENAME, step=step,
                       steps_per_second=(step - start_step) / max(elapsed, 1e-9), eval=last_eval)


#: with several processes, how often (in steps) they agree whether a signal asked them to stop
STOP_CHECK_EVERY = 10


def _stop_agreed(requested: bool, step: int, device: torch.device) -> bool:
    """Every process stops at the same step. Alone: the request itself, no cost. With several:
    every STOP_CHECK_EVERY steps the request is all-reduced (max) on the training device (NCCL
    reduces only CUDA tensors), so the host syncs once per STOP_CHECK_EVERY steps, not per step."""
    if not distributed.is_active():
        return requested
    if step % STOP_CHECK_EVERY:
        return False
    import torch.distributed as dist
    flag = torch.tensor([1.0 if requested else 0.0], device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item())


def _warn_if_slow(config: TrainConfig, device: torch.device, step: int, seconds_per_step: float, bar: Any) -> None:
    """One line when the measured pace puts the end of the run more than an hour away."""
    remaining = (config.steps - step) * seconds_per_step
    if remaining < 3600:
        return
    hint = (" On a CPU, `crl train --profile cpu` sizes the run for it (docs/benchmarks.md)."
            if device.type == "cpu" else "")
    bar.write(f"crl train: {seconds_per_step:.2f} s/step on {device}: {config.steps - step} more steps take about "
              f"{_duration(remaining)} ({_duration(1000 * seconds_per_step)} per 1,000 steps).{hint}")


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _record_resume(out: Path, config: TrainConfig, at_step: int) -> None:
    """run.json keeps the settings in force (train_config) and a history of resumes."""
    run_file = out / "run.json"
    try:
        run = json.loads(run_file.read_text())
    except (OSError, ValueError):
        return
    run["train_config"] = dataclasses.asdict(config)
    run.setdefault("resumed", []).append({"at_step": at_step, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                                          "steps": config.steps})
    tmp = run_file.with_name(f".{run_file.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(run, indent=2))
    os.replace(tmp, run_file)


def run_train_config(out_dir: str | os.PathLike) -> dict[str, Any]:
    """The TrainConfig fields a run was (last) trained with: run.json, else its latest checkpoint."""
    out = Path(out_dir)
    try:
        saved = json.loads((out / "run.json").read_text()).get("train_config")
        if isinstance(saved, dict):
            return saved
    except (OSError, ValueError):
        pass
    found = list_step_checkpoints(out)
    if found:
        training = load_checkpoint(found[-1][1]).training or {}
        if isinstance(training.get("train_config"), dict):
            return training["train_config"]
    return {}
