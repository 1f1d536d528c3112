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
from dataclasses import dataclass, field
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

    The stages, in order: `_set_up` (processes, data, run directory, agent, run.json),
    `_open_logs`, `_step_loop` (the loop itself), `_finish` (the last checkpoint and
    evaluation); a signal ends the run with `_interrupted`'s exception.
    """
    run = _set_up(data, algorithm, agent_config, config, Path(out_dir), resume, force, evaluator, init_from)
    _open_logs(run, resume)
    stop = _StopSignals(config.handle_signals, run.main)
    saved_at_stop: Path | None = None  # the checkpoint written when a first signal stopped the loop
    try:
        stop.install()
        _step_loop(run, stop)
        saved_at_stop = _finish(run)
    except _Abort:
        run.stopped_by = stop.signum
    except BaseException:
        if not stop.aborted:
            raise
        # the second signal hit inside a library call that wrapped it (e.g. torch.save's writer)
        run.stopped_by = stop.signum
    finally:
        stop.restore()
        _close_logs(run)
    if run.stopped_by is not None:
        raise _interrupted(run, saved_at_stop, stop.aborted)
    elapsed = time.perf_counter() - run.t_start
    return TrainResult(out_dir=run.out, model_path=run.out / MODEL_FILENAME, step=run.step,
                       steps_per_second=(run.step - run.start_step) / max(elapsed, 1e-9), eval=run.last_eval)


@dataclass
class _Run:
    """What the stages of `train` share: what `_set_up` built, then the loop's progress."""
    config: TrainConfig
    out: Path
    algorithm: str
    device: torch.device
    main: bool  # this process writes the run directory and evaluates
    world: int  # processes training together
    agent: Any
    sampler: Any
    meta: CheckpointMeta  # what every checkpoint of the run says (`step` filled in per save)
    policy: Policy  # the agent as the evaluator sees it
    update: Callable[[dict[str, torch.Tensor], int], dict[str, torch.Tensor]]  # agent.update, maybe compiled
    batch_size: int  # this process's share of the configured batch
    evaluator: Evaluator | None
    start_step: int
    step: int
    last_saved: int  # the step of the newest step checkpoint (-1: none yet)
    last_saved_path: Path | None
    last_evaluated: int = -1
    last_eval: dict[str, float] = field(default_factory=dict)
    sums: dict[str, torch.Tensor] = field(default_factory=dict)  # on-device sums of the step infos since the last log
    count: int = 0  # steps in `sums`
    stopped_by: int | None = None  # the signal the processes stopped on
    # the logs and clocks `_open_logs` starts
    writer: Any = None
    metrics_file: Any = None
    bar: Any = None
    t_start: float = 0.0
    t_log: float = 0.0  # when the last log line's steps/s window began (pauses for saving excluded)
    step_log: int = 0
    t_saved: float = 0.0
    t_first_steps: list[float] = field(default_factory=list)


def _set_up(data: Sequence[str | os.PathLike] | Dataset, algorithm: str, agent_config: Any, config: TrainConfig,
            out: Path, resume: bool, force: bool, evaluator: Evaluator | None,
            init_from: str | os.PathLike | None) -> _Run:
    """Everything before the first step: processes and device, data, the run directory, the
    starting point (fresh, resumed or initialised from a model), sampler and agent, run.json."""
    from crl_ros.learning.agents import make_agent
    from crl_ros.learning.config import config_to_dict

    device = resolve_device(config.device)
    # Several processes (crl train --nproc, torchrun): gradients averaged, process 0 writes.
    distributed.init_from_environment(device.type)
    device = distributed.local_device(device)
    rank, world, main = distributed.rank(), distributed.world_size(), distributed.is_main_process()
    if isinstance(data, Dataset):
        dataset, paths = data, [data.path] if data.path else []
    else:
        paths = [Path(p) for p in data]
        dataset = load_many(paths)
    if main:
        prepare_out_dir(out, resume, force)
    distributed.barrier()

    algorithm, agent_config, checkpoint, init = _starting_point(out, algorithm, agent_config, resume, init_from)
    if config.amp_bf16 and hasattr(agent_config, "bf16"):
        agent_config = dataclasses.replace(agent_config, bf16=True)
    if checkpoint is not None and main:
        _record_resume(out, config, int(checkpoint.training["step"]))

    seed_everything(config.seed)
    try:
        frame_weights = None if config.data_weights is None else dataset.source_frame_weights(config.data_weights)
    except DatasetError as exc:
        raise TrainError(f"--data-weights: {exc}") from None
    stats_from = checkpoint if checkpoint is not None else init  # the weights' action statistics
    sampler = _make_sampler(dataset, device, config.seed, rank, 0, agent_config, frame_weights,
                            None if stats_from is None else stats_from.meta)
    meta_ds = dataset.metadata
    agent = make_agent(algorithm, agent_config, image_shape=meta_ds.image_shape, action_dim=meta_ds.action_dim,
                       device=device)
    agent.to(device)
    precision = _precision_record(agent, agent_config, device) if main else {}
    meta = CheckpointMeta(
        algorithm=algorithm, config=config_to_dict(agent_config), image_shape=meta_ds.image_shape,
        action_dim=meta_ds.action_dim, action_names=list(meta_ds.action_names),
        action_mean=sampler.action_mean.tolist(), action_std=sampler.action_std.tolist(),
        action_low=meta_ds.action_low, action_high=meta_ds.action_high,
        dataset=dataset_provenance(dataset, paths, config.data_weights))

    start_step = 0
    if checkpoint is not None:
        start_step = _restore_training(checkpoint, agent, sampler, meta_ds)
        if rank != 0:  # the saved sampler is process 0's; the others draw fresh streams
            sampler = _make_sampler(dataset, device, config.seed, rank, start_step, agent_config, frame_weights,
                                    checkpoint.meta)
        if main:
            print(f"resuming {algorithm} from {checkpoint.path} at step {start_step}")
    if init is not None:
        _load_init_weights(init, agent, meta_ds, main)
    if checkpoint is None and main:
        (out / "run.json").write_text(json.dumps({
            "algorithm": algorithm, "agent_config": config_to_dict(agent_config),
            "init_from": None if init is None else {"path": str(init.path), "step": init.meta.step},
            "train_config": dataclasses.asdict(config), "device": str(device), **precision,
            "dataset": meta.dataset, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}, indent=2))

    distributed.broadcast_parameters_(agent)
    if agent_config.batch_size % world:
        raise TrainError(f"batch_size {agent_config.batch_size} does not split over {world} processes")
    agent.train()
    return _Run(config=config, out=out, algorithm=algorithm, device=device, main=main, world=world, agent=agent,
                sampler=sampler, meta=meta, policy=Policy(agent, meta, device),
                update=torch.compile(agent.update) if config.compile else agent.update,
                batch_size=agent_config.batch_size // world,  # the global batch stays the configured one
                evaluator=evaluator if main else None, start_step=start_step, step=start_step,
                last_saved=start_step if checkpoint is not None else -1,
                last_saved_path=None if checkpoint is None else checkpoint.path)


def _starting_point(out: Path, algorithm: str, agent_config: Any, resume: bool,
                    init_from: str | os.PathLike | None) -> tuple[str, Any, Any, Any]:
    """(algorithm, agent config, the step checkpoint to resume or None, the model to start from
    or None): a resumed run and an initialised one take the algorithm of what they load."""
    from crl_ros.learning.agents import config_from_checkpoint

    checkpoint = init = None
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
    return algorithm, agent_config, checkpoint, init


def _make_sampler(dataset: Dataset, device: torch.device, seed: int, rank: int, start_step: int, agent_config: Any,
                  frame_weights: np.ndarray | None, stats_from: CheckpointMeta | None):
    """Each process draws its own batches (process 0 keeps the single-process seed); the
    action statistics are the loaded model's, else the data's."""
    from crl_ros.learning.sampler import Sampler

    return Sampler(dataset, device, seed=seed + rank * 1_000_003 + start_step,
                   action_mean=None if stats_from is None else np.asarray(stats_from.action_mean),
                   action_std=None if stats_from is None else np.asarray(stats_from.action_std),
                   normalize_actions=agent_config.normalize_actions, frame_weights=frame_weights)


def _precision_record(agent: Any, agent_config: Any, device: torch.device) -> dict[str, str]:
    """Says why bf16 autocast was asked for but is not used; the precision run.json records."""
    from crl_ros.learning.precision import precision_info, resolve_bf16

    use_bf16 = bool(getattr(agent, "uses_bf16", False))
    _, why = resolve_bf16(bool(getattr(agent_config, "bf16", False)), device)
    if why:
        print(f"crl train: {why}", flush=True)
    return {"precision": "bf16 autocast" if use_bf16 else "fp32", "detail": precision_info(device).detail}


def _restore_training(checkpoint: Any, agent: Any, sampler: Any, meta_ds: Any) -> int:
    """A step checkpoint's weights, optimiser, sampler and RNG state into the fresh agent and
    process 0's sampler; returns the step to continue from."""
    if tuple(checkpoint.meta.image_shape) != tuple(meta_ds.image_shape) or \
            checkpoint.meta.action_dim != meta_ds.action_dim:
        raise TrainError(f"--resume: the data ({meta_ds.image_shape}, {meta_ds.action_dim} actions) does not "
                         f"match the run ({checkpoint.meta.image_shape}, {checkpoint.meta.action_dim} actions)")
    agent.load_state_dict(checkpoint.model)
    agent.load_optimizer_state(checkpoint.training["optimizer"])
    if distributed.rank() == 0:
        sampler.load_state_dict(checkpoint.training["sampler"])
        restore_rng_state(checkpoint.training["rng"])
    return int(checkpoint.training["step"])


def _load_init_weights(init: Any, agent: Any, meta_ds: Any, main: bool) -> None:
    """--init-from: a model's weights into the fresh agent (its optimiser starts afresh)."""
    from crl_ros.learning.policy import load_deployable_state

    if tuple(init.meta.image_shape) != tuple(meta_ds.image_shape) or init.meta.action_dim != meta_ds.action_dim:
        raise TrainError(f"--init-from: the data ({meta_ds.image_shape}, {meta_ds.action_dim} actions) does not "
                         f"match {init.path} ({init.meta.image_shape}, {init.meta.action_dim} actions)")
    load_deployable_state(agent, init.model, init.path)  # float16 weights are cast on load
    target = getattr(agent, "target_critic", None)
    if target is not None:  # a deployable model carries no target network: it starts as the critic
        target.load_state_dict(agent.critic.state_dict())
    if main:
        print(f"crl train: {init.meta.algorithm} initialised from {init.path} (its step {init.meta.step})", flush=True)


def _open_logs(run: _Run, resume: bool) -> None:
    """TensorBoard, metrics.jsonl (process 0 only), the progress bar and the clocks."""
    from torch.utils.tensorboard import SummaryWriter
    from tqdm import tqdm

    if run.main:
        run.writer = SummaryWriter(str(run.out / "tensorboard"), purge_step=run.start_step if resume else None)
        run.metrics_file = open(run.out / "metrics.jsonl", "a")
    run.t_start = run.t_log = time.perf_counter()
    run.step_log = run.start_step
    run.t_saved = time.monotonic()
    run.bar = tqdm(total=run.config.steps, initial=run.start_step, desc=f"train {run.algorithm}", unit="step",
                   disable=not (run.config.progress and run.main), dynamic_ncols=True)


def _close_logs(run: _Run) -> None:
    run.bar.close()
    if run.main:
        run.writer.close()
        run.metrics_file.close()


def _step_loop(run: _Run, stop: _StopSignals) -> None:
    """The training loop: a batch, an update, and on their schedules a log line, a checkpoint
    and an evaluation; returns at the last step or, with `run.stopped_by` set, on a signal."""
    config = run.config
    while run.step < config.steps:
        if _stop_agreed(stop.signum is not None, run.step, run.device):
            run.stopped_by = stop.signum or signal.SIGTERM
            return
        batch = run.agent.make_batch(run.sampler, run.batch_size)
        info = run.update(batch, run.step)
        run.step += 1
        _time_first_steps(run)
        for key, value in info.items():  # on-device running sums: no host sync per step
            value = value.detach().float()
            run.sums[key] = run.sums[key] + value if key in run.sums else value
        run.count += 1
        run.bar.update(1)

        if run.step % config.log_every == 0 or run.step == config.steps:
            _log_training(run)
        t_pause = time.perf_counter()
        due_by_time = config.checkpoint_minutes and time.monotonic() - run.t_saved >= 60 * config.checkpoint_minutes
        if run.step % config.checkpoint_every == 0 or run.step == config.steps or due_by_time:
            _save(run)
        if run.evaluator is not None and ((config.eval_every and run.step % config.eval_every == 0)
                                          or run.step == config.steps):
            _evaluate(run)
            run.bar.write(f"step {run.step}: " + ", ".join(f"{k} {v:.3f}" for k, v in run.last_eval.items()))
        run.t_log += time.perf_counter() - t_pause  # steps/s counts training only


def _time_first_steps(run: _Run) -> None:
    """After step 4, one line when the pace of steps 2-4 (the first warms up) is slow."""
    if run.main and len(run.t_first_steps) < 4:
        run.t_first_steps.append(time.perf_counter())
        if len(run.t_first_steps) == 4:
            seconds_per_step = (run.t_first_steps[-1] - run.t_first_steps[0]) / 3
            _warn_if_slow(run.config, run.device, run.step, seconds_per_step, run.bar)


def _log_training(run: _Run) -> None:
    """The mean of each step info since the last log line (one host sync), steps/s; a
    non-finite mean ends the run naming the last good checkpoint."""
    keys = list(run.sums)
    values = torch.stack([run.sums[k] for k in keys]).div_(run.count).tolist() if keys else []
    scalars = dict(zip(keys, values))
    bad = [k for k, v in scalars.items() if not math.isfinite(v)]
    if bad:
        saved = list_step_checkpoints(run.out)
        raise TrainError(f"training diverged at step {run.step}: {', '.join(bad)} not finite; last good "
                         f"checkpoint: {saved[-1][1] if saved else 'none'}")
    now = time.perf_counter()
    rate = (run.step - run.step_log) / max(now - run.t_log, 1e-9)
    run.t_log, run.step_log = now, run.step
    _log(run, "train", scalars)
    _log(run, "perf", {"steps_per_s": rate, "samples_per_s": rate * run.batch_size * run.world})
    run.bar.set_postfix({k: f"{v:.3g}" for k, v in list(scalars.items())[:3]}, refresh=False)
    run.sums, run.count = {}, 0


def _log(run: _Run, kind: str, scalars: dict[str, float]) -> None:
    if not run.main:
        return
    for key, value in scalars.items():
        run.writer.add_scalar(f"{kind}/{key}", value, run.step)
    run.metrics_file.write(json.dumps({"step": run.step, "kind": kind, **scalars}) + "\n")
    run.metrics_file.flush()


def _save(run: _Run) -> None:
    """Process 0 writes the step checkpoint (full training state) and model.pt, and deletes
    the step checkpoints beyond keep_checkpoints."""
    if run.main:
        config, step_meta = run.config, dataclasses.replace(run.meta, step=run.step)
        training = {"step": run.step, "optimizer": run.agent.optimizer_state(), "sampler": run.sampler.state_dict(),
                    "rng": capture_rng_state(), "train_config": dataclasses.asdict(config)}
        run.last_saved_path = save_checkpoint(step_checkpoint_path(run.out, run.step), step_meta,
                                              run.agent.state_dict(), training)
        save_checkpoint(run.out / MODEL_FILENAME, dataclasses.replace(step_meta, weights_dtype=config.model_dtype),
                        deployable_state(run.agent, config.model_dtype))
        if config.keep_checkpoints:
            for _, old in list_step_checkpoints(run.out)[:-config.keep_checkpoints]:
                old.unlink(missing_ok=True)
    run.last_saved = run.step
    run.t_saved = time.monotonic()


def _evaluate(run: _Run) -> None:
    # Forked RNG and eval mode: evaluating must not change the training that follows.
    devices = [run.device.index or 0] if run.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        run.agent.eval()
        try:
            scalars = {k: float(v) for k, v in run.evaluator(run.policy).items()}
        finally:
            run.agent.train()
    _log(run, "eval", scalars)
    run.last_eval, run.last_evaluated = scalars, run.step


def _finish(run: _Run) -> Path | None:
    """After the loop: the last step checkpointed; then a finished run is evaluated (if not
    at this step already) and a stopped one returns the checkpoint it stopped with."""
    if run.last_saved != run.step:
        _save(run)
    if run.stopped_by is not None:
        return run.last_saved_path
    if run.evaluator is not None and run.last_evaluated != run.step:
        _evaluate(run)
    return None


def _interrupted(run: _Run, saved_at_stop: Path | None, aborted: bool) -> TrainInterrupted:
    """What a signal's end of the run says: the checkpoint of this step, or (aborted before
    it was written) the newest one on disk, which --resume continues from."""
    last_saved_path = run.last_saved_path
    if saved_at_stop is None or run.last_saved != run.step:
        saved_at_stop = None
        found_now = list_step_checkpoints(run.out)
        last_saved_path = found_now[-1][1] if found_now else None
    return TrainInterrupted(int(run.stopped_by), run.step, saved_at_stop, last_saved_path, aborted=aborted)


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
