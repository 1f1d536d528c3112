"""One data-parallel training step through crl_ros.learning.distributed, timed.

Each process joins the process group the way `crl train --nproc N` does
(`distributed.launch` -> `init_from_environment`: NCCL on CUDA, gloo on CPU), starts from
process 0's weights (`broadcast_parameters_`), and runs agent updates, whose gradients are
averaged by `all_reduce_gradients_`. Reported: the median step time over the timed steps, the
all-reduce alone (the flattened gradients, as the agents send them), and whether the weights
are identical on every process afterwards (what data parallelism must keep).

With ONE GPU (or ``--nproc 1``) NCCL cannot put two processes on one device, and crl_ros
skips the all-reduce in a one-process group; the single process then joins a one-process
NCCL group and times the same all-reduce explicitly, so NCCL itself is still exercised.

    python bench/ddp_step.py --device cuda [--nproc N] [--out FILE]          # paper network, batch 2048
    python bench/ddp_step.py --device cpu --nproc 2 --toy --out FILE          # gloo, tiny sizes (tests)
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_throughput import synthetic_dataset  # noqa: E402

from crl_ros.learning import distributed  # noqa: E402
from crl_ros.learning.agents import default_config, make_agent  # noqa: E402
from crl_ros.learning.config import apply_overrides  # noqa: E402
from crl_ros.learning.sampler import Sampler  # noqa: E402

TOY_OVERRIDES = ["hidden_width=32", "batch_size=8", "encoder_channels=[8,8,8]"]


def flat_gradients(agent) -> torch.Tensor:
    return torch.cat([p.grad.reshape(-1) for p in agent.parameters() if p.grad is not None])


def timed(fn, device: torch.device, n: int) -> list[float]:
    out = []
    for _ in range(n):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        out.append(time.perf_counter() - start)
    return out


def run_rank(args: argparse.Namespace, result_dir: str) -> None:
    """One process: join the group, step, check the weights agree, write this rank's JSON."""
    import torch.distributed as dist

    device = torch.device(args.device)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        distributed.init_from_environment(device.type)
        device = distributed.local_device(device)
    elif device.type == "cuda":  # one GPU: a one-process NCCL group, the all-reduce timed explicitly
        torch.cuda.set_device(0)
        dist.init_process_group("nccl", init_method=f"tcp://127.0.0.1:{args.port}", rank=0, world_size=1)
    if device.type == "cpu":
        torch.set_num_threads(1)  # N processes on the cores: more threads each only oversubscribe them
    rank = dist.get_rank() if dist.is_initialized() else 0
    world = dist.get_world_size() if dist.is_initialized() else 1
    torch.manual_seed(rank)  # different initial weights per process: broadcast must fix that
    overrides = [f"bf16={args.bf16}", *(TOY_OVERRIDES if args.toy else [])]
    cfg = apply_overrides(default_config(args.algo), overrides)
    dataset = synthetic_dataset(600 if args.toy else 20000, 48, action_dim=7, seed=rank)
    agent = make_agent(args.algo, cfg, dataset.metadata.image_shape, 7, device)
    distributed.broadcast_parameters_(agent)
    sampler = Sampler(dataset, device, seed=rank, normalize_actions=cfg.normalize_actions)
    steps = iter(range(10 ** 9))

    def step():
        agent.update(agent.make_batch(sampler, cfg.batch_size), next(steps))

    warmup = timed(step, device, args.warmup)
    step_s = timed(step, device, args.steps)
    grads = flat_gradients(agent)
    allreduce_s = (timed(lambda: dist.all_reduce(grads), device, 5)
                   if dist.is_initialized() else [])
    weights = torch.cat([p.detach().reshape(-1).float() for p in agent.parameters()])
    spread = weights.clone()
    if world > 1:
        gathered = [torch.empty_like(weights) for _ in range(world)]
        dist.all_gather(gathered, weights)
        spread = torch.stack(gathered)
    out = {"rank": rank, "world_size": world, "device": str(device),
           "backend": dist.get_backend() if dist.is_initialized() else None,
           "algorithm": args.algo, "batch_size_per_process": cfg.batch_size, "precision_used":
           "bf16" if agent.uses_bf16 else "fp32", "first_step_s": warmup[0] if warmup else None,
           "step_s_median": float(np.median(step_s)), "steps_timed": len(step_s),
           "gradient_numel": int(grads.numel()),
           "allreduce_ms_median": float(np.median(allreduce_s) * 1e3) if allreduce_s else None,
           "allreduce_through_crl_ros": world > 1,
           "max_weight_difference_between_processes": float((spread - spread[0]).abs().max()) if world > 1 else 0.0}
    Path(result_dir, f"rank{rank}.json").write_text(json.dumps(out))
    if world == 1 and dist.is_initialized():
        dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--nproc", type=int, help="processes (default: the GPUs, or 2 on CPU)")
    parser.add_argument("--algo", default="stable_crl")
    parser.add_argument("--bf16", choices=["true", "false"], default="true",
                        help="bf16 autocast where native (CPU without it runs fp32; the JSON says which)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--toy", action="store_true", help="tiny network and batch (tests, CPU)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    cuda = args.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        parser.error("--device cuda but CUDA is not available here; use --device cpu (gloo)")
    nproc = args.nproc or (torch.cuda.device_count() if cuda else 2)
    if cuda and nproc > torch.cuda.device_count():
        parser.error(f"--nproc {nproc} but {torch.cuda.device_count()} GPU(s): NCCL needs one GPU per process")
    args.port = distributed._free_port()
    with tempfile.TemporaryDirectory() as tmp:
        if nproc > 1:
            distributed.launch(nproc, run_rank, args, tmp)
        else:
            run_rank(args, tmp)
        ranks = [json.loads(p.read_text()) for p in sorted(Path(tmp).glob("rank*.json"))]
    result = {"machine": {"python": platform.python_version(), "torch": torch.__version__,
                          "gpu": torch.cuda.get_device_name(0) if cuda else None,
                          "load_average_at_end": os.getloadavg()},
              "nproc": nproc, "toy": args.toy, "ranks": ranks,
              "weights_identical": all(r["max_weight_difference_between_processes"] == 0.0 for r in ranks)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    if len(ranks) != nproc or not result["weights_identical"]:
        sys.exit(f"ddp_step: {len(ranks)} of {nproc} processes reported; weights identical: "
                 f"{result['weights_identical']}")


if __name__ == "__main__":
    main()
