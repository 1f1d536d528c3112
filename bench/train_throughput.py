"""Training throughput: steps/s and samples/s per algorithm, and sampler + augmentation batches/s.

Synthetic in-memory dataset (random uint8 48x48x3 images, 7-D actions, ~100-frame episodes),
the authors' network sizes, warm-up steps excluded; steps/s is the median over timed steps. Batch 256 on CPU, 2048 on CUDA.
Writes bench/results/train_throughput.json with the machine noted.

    python bench/train_throughput.py [--device auto|cpu|cuda] [--batch-size B] [--steps N]
        [--algos stable_crl gcbc gciql] [--threads 1 2] [--precisions fp32 bf16] [--set key=value ...]
        [--compile] [--breakdown] [--profile paper|cpu]

bf16 is a request: it runs only where the device has native bf16 (crl_ros.learning.precision);
each row records the precision actually used, and the machine block records torch's CPU
kernel path, whether oneDNN has native bf16, and a 256x1024 @ 1024x1024 matmul timed in
fp32 and (forced) bf16, so a result says which kernels it measured.
--profile cpu measures crl train --profile cpu's network and batch (crl_ros.learning.profiles).

--breakdown adds where the time goes (torch.profiler over the timed steps): per phase
(make_batch, critic_loss, actor_loss, backward, optimizer_step, target_update; the agents
label them) and the top operators by self time, device time on CUDA, per step.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from crl_ros.learning.agents import AGENTS, default_config, make_agent
from crl_ros.learning.config import apply_overrides, config_to_dict
from crl_ros.learning.dataset import Dataset, DatasetMetadata
from crl_ros.learning.precision import cpu_capability, precision_info
from crl_ros.learning.profiles import PROFILES
from crl_ros.learning.sampler import Sampler

RESULTS = Path(__file__).resolve().parent / "results" / "train_throughput.json"


def synthetic_dataset(num_frames: int, image_size: int, action_dim: int, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(80, 121, size=num_frames // 80 + 1)
    ends = np.cumsum(lengths)
    ends = ends[ends < num_frames]
    ends = np.append(ends, num_frames).astype(np.int64)
    images = rng.integers(0, 256, (num_frames, image_size, image_size, 3), dtype=np.uint8)
    actions = rng.normal(size=(num_frames, action_dim)).astype(np.float32)
    return Dataset(images=images, actions=actions, episode_ends=ends,
                   metadata=DatasetMetadata((image_size, image_size, 3), action_dim))


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_calls(fn, device: torch.device, warmup: int, calls: int) -> dict[str, float]:
    """Seconds per call after `warmup` calls: the mean, and the median and best single call,
    which resist slow-downs from other jobs on a shared machine."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    durations = []
    cpu_start = time.process_time()
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        synchronize(device)
        durations.append(time.perf_counter() - start)
    return {"mean": float(np.mean(durations)), "median": float(np.median(durations)),
            "best": float(np.min(durations)), "cpu": (time.process_time() - cpu_start) / calls}


PHASES = ("make_batch", "critic_loss", "actor_loss", "backward", "optimizer_step", "target_update")


def profile_breakdown(fn, device: torch.device, steps: int, top: int = 15) -> dict:
    """Run ``fn`` ``steps`` times under torch.profiler: microseconds per step of each labelled
    phase (CPU time, and device time on CUDA) and of the top operators by self time."""
    from torch.profiler import ProfilerActivity, profile

    cuda = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        for _ in range(steps):
            fn()
        synchronize(device)
    events = prof.key_averages()
    self_key = "self_device_time_total" if cuda else "self_cpu_time_total"
    total = sum(getattr(e, self_key, 0.0) for e in events) or 1.0
    phases = {}
    for e in events:
        if e.key in PHASES:
            phases[e.key] = {"cpu_us_per_step": e.cpu_time_total / steps}
            if cuda:
                phases[e.key]["device_us_per_step"] = getattr(e, "device_time_total", 0.0) / steps
    ops = sorted((e for e in events if e.key not in PHASES), key=lambda e: getattr(e, self_key, 0.0), reverse=True)
    return {"clock": "device (CUDA kernels)" if cuda else "CPU", "steps": steps,
            "total_self_us_per_step": total / steps, "phases": phases,
            "top_ops": [{"op": e.key, "self_us_per_step": getattr(e, self_key, 0.0) / steps,
                         "share": getattr(e, self_key, 0.0) / total, "calls_per_step": e.count / steps}
                        for e in ops[:top]]}


def machine_info(device: torch.device) -> dict:
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    info = {"cpu": cpu, "cpu_cores": os.cpu_count(), "load_average_1min": os.getloadavg()[0],
            "torch": torch.__version__, "device": str(device), "python": platform.python_version(),
            "note": ("machine shared with other jobs while measuring (see load_average_1min): wall-clock "
                     "figures are lower bounds; cpu_seconds_per_step of 1-thread runs is the work per step")}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["float32_matmul_precision"] = torch.get_float32_matmul_precision()
    info["cpu_capability"] = cpu_capability()
    info["bf16_native"] = precision_info(device).bf16_native
    info["precision_detail"] = precision_info(device).detail
    return info


def matmul_kernels(device: torch.device, threads: int) -> dict:
    """Milliseconds of one 256x1024 @ 1024x1024 matmul in fp32 and in bf16 (forced, whatever
    the hardware): the ratio shows whether bf16 runs native or emulated kernels here."""
    torch.set_num_threads(threads)
    out = {"shape": "256x1024 @ 1024x1024", "threads": threads}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        a = torch.randn(256, 1024, device=device, dtype=dtype)
        b = torch.randn(1024, 1024, device=device, dtype=dtype)
        t = time_calls(lambda: a @ b, device, warmup=1, calls=3)
        out[f"{name}_ms"] = 1000 * t["median"]
    out["bf16_over_fp32"] = out["bf16_ms"] / out["fp32_ms"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None, help="timed steps per algorithm")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--image-size", type=int, default=48)
    parser.add_argument("--frames", type=int, default=20000)
    parser.add_argument("--threads", type=int, nargs="+", default=[2],
                        help="CPU thread counts to measure (1 resists contention on a shared machine)")
    parser.add_argument("--precisions", nargs="+", choices=["fp32", "bf16"], default=["fp32"],
                        help="bf16 = the agents' bf16 autocast option")
    parser.add_argument("--algos", nargs="+", default=list(AGENTS))
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="config override applied to every algorithm, e.g. bf16=true")
    parser.add_argument("--compile", action="store_true", help="torch.compile the update (as crl train --compile)")
    parser.add_argument("--breakdown", action="store_true", help="profile where the time of a step goes")
    parser.add_argument("--profile", choices=sorted(PROFILES), default="paper",
                        help="network and batch of this crl train profile (paper: the authors' widths; "
                             "--batch-size still sets the batch)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else "cpu" if args.device == "auto" else args.device)
    if device.type == "cuda":
        # TF32 tensor cores for the fp32 runs (what a trainer on CUDA should use too).
        torch.set_float32_matmul_precision("high")
    profile = PROFILES[args.profile]
    batch_size = args.batch_size or profile.batch_size or (2048 if device.type == "cuda" else 256)
    steps = args.steps or (50 if device.type == "cuda" else 10)
    dataset = synthetic_dataset(args.frames, args.image_size, action_dim=7)
    samplers = {}  # one per action normalisation: the cpu profile trains on z-scored actions

    def sampler_for(cfg):
        if cfg.normalize_actions not in samplers:
            samplers[cfg.normalize_actions] = Sampler(dataset, device, seed=0, normalize_actions=cfg.normalize_actions)
        return samplers[cfg.normalize_actions]
    results = {"machine": machine_info(device), "image_size": args.image_size, "batch_size": batch_size,
               "timed_steps": steps, "warmup_steps": args.warmup, "overrides": args.overrides,
               "profile": args.profile, "matmul": matmul_kernels(device, max(args.threads)), "runs": []}
    mm = results["matmul"]
    print(f"kernel path: {results['machine']['precision_detail']}; matmul {mm['shape']}: fp32 {mm['fp32_ms']:.1f} ms, "
          f"bf16 {mm['bf16_ms']:.1f} ms (x{mm['bf16_over_fp32']:.1f})", flush=True)

    for algo, threads, precision in itertools.product(args.algos, args.threads, args.precisions):
        torch.set_num_threads(threads)
        cfg = apply_overrides(default_config(algo), [*profile.overrides_for(algo), f"batch_size={batch_size}",
                                                     f"bf16={precision == 'bf16'}", *args.overrides])
        agent = make_agent(algo, cfg, dataset.metadata.image_shape, 7, device)
        used = "bf16" if agent.uses_bf16 else "fp32"
        sampler = sampler_for(cfg)
        sample_seconds = time_calls(lambda: agent.make_batch(sampler, batch_size), device, args.warmup, steps * 5)
        step_counter = iter(range(10 ** 9))
        update = torch.compile(agent.update) if args.compile else agent.update

        def train_step():
            with torch.profiler.record_function("make_batch"):
                batch = agent.make_batch(sampler, batch_size)
            return update(batch, next(step_counter))

        step_seconds = time_calls(train_step, device, args.warmup, steps)
        entry = {"algorithm": algo, "threads": threads, "precision": precision, "precision_used": used,
                 "steps_per_s": 1 / step_seconds["median"], "samples_per_s": batch_size / step_seconds["median"],
                 "steps_per_s_mean": 1 / step_seconds["mean"], "steps_per_s_best": 1 / step_seconds["best"],
                 # CPU seconds of this process per step (all threads): the work, whatever the contention.
                 "cpu_seconds_per_step": step_seconds["cpu"],
                 "sampler_batches_per_s": 1 / sample_seconds["median"],
                 "sampler_to_step_ratio": step_seconds["median"] / sample_seconds["median"],
                 "compiled": args.compile, "config": config_to_dict(cfg)}
        results["runs"].append(entry)
        print(f"{algo:>10} {precision}->{used} {threads} thr: {entry['steps_per_s']:8.2f} steps/s (median; best {entry['steps_per_s_best']:.2f})  "
              f"{entry['samples_per_s']:10.0f} samples/s  {entry['cpu_seconds_per_step']:.2f} CPU-s/step  "
              f"sampler+augment {entry['sampler_batches_per_s']:8.1f} batches/s  (batch {batch_size}, {device})",
              flush=True)
        if args.breakdown:
            entry["breakdown"] = profile_breakdown(train_step, device, steps)
            top = entry["breakdown"]["top_ops"][:5]
            print("    phases (us/step): " + ", ".join(f"{k} {v['cpu_us_per_step']:.0f}"
                                                     for k, v in entry["breakdown"]["phases"].items()))
            print("    top ops: " + ", ".join(f"{o['op']} {100 * o['share']:.0f}%" for o in top))
        del agent

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
