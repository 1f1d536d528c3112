"""Data-parallel training over several processes (one per GPU, or CPU processes with gloo).

Each process samples its own share of the global batch from the whole dataset (its own
sampler seed), computes its gradients, and the gradients are averaged over all processes
before every optimiser step, so every process keeps identical weights: the semantics of
DistributedDataParallel. It is done with one all-reduce of the flattened gradients rather
than the DDP wrapper because the agents call their networks through several methods
(encode, sa_repr, goal_repr, ...), not one ``forward``, which DDP's hooks need.

Process groups come from the usual environment (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT),
so ``torchrun --nproc-per-node N -m crl_ros.cli train ...`` works, and ``crl train --nproc N``
starts the processes itself.
"""
from __future__ import annotations

import os
import socket
import sys
from typing import Any, Callable, Iterable

import torch
import torch.distributed as dist


def is_active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_active() else 0


def world_size() -> int:
    return dist.get_world_size() if is_active() else 1


def is_main_process() -> bool:
    return rank() == 0


def init_from_environment(device_type: str) -> bool:
    """Join the process group the environment describes (WORLD_SIZE > 1); False when there is none."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or is_active():
        return is_active()
    backend = "nccl" if device_type == "cuda" and dist.is_nccl_available() else "gloo"
    dist.init_process_group(backend=backend)
    return True


def local_device(device: torch.device) -> torch.device:
    """One GPU per process: cuda -> cuda:<LOCAL_RANK>."""
    if device.type == "cuda" and is_active():
        index = int(os.environ.get("LOCAL_RANK", rank())) % torch.cuda.device_count()
        torch.cuda.set_device(index)
        return torch.device("cuda", index)
    return device


def broadcast_parameters_(module: torch.nn.Module) -> None:
    """Make every process start from process 0's weights and buffers."""
    if not is_active():
        return
    for tensor in list(module.parameters()) + list(module.buffers()):
        dist.broadcast(tensor.data, src=0)


def all_reduce_gradients_(parameters: Iterable[torch.nn.Parameter]) -> None:
    """Average the gradients over all processes, in one flattened all-reduce."""
    if not is_active():
        return
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat.div_(dist.get_world_size())
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def barrier() -> None:
    if is_active():
        dist.barrier()


def shutdown(wait_for_others: bool = True) -> None:
    """Leave the process group. After a normal finish every process waits for the others
    first: a gloo process that tears down while a peer is still in a collective can abort
    ("terminate called without an active exception"). A process that failed leaves at once
    (``wait_for_others=False``) so its peers' collectives error out instead of hanging."""
    if dist.is_available() and dist.is_initialized():
        if wait_for_others and dist.get_world_size() > 1:
            dist.barrier()
        dist.destroy_process_group()


def shutdown_and_exit(code: int, wait_for_others: bool = True) -> None:
    """Leave the process group, then end this worker process with ``code`` without the
    interpreter's teardown: there a gloo worker sometimes aborts after a clean finish
    ("terminate called without an active exception", SIGABRT, no Python frame; about 1 exit
    in 15 on the 2-core machine), and the launcher then reports a crash instead of the run's
    own outcome (done, or stopped with 130/143 after saving)."""
    shutdown(wait_for_others)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(local_rank: int, nproc: int, port: int, target: Callable[..., Any], args: tuple) -> None:
    os.environ.update(RANK=str(local_rank), LOCAL_RANK=str(local_rank), WORLD_SIZE=str(nproc),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    target(*args)
    # Done. Exceptions still take the normal path, so the launcher reports their traceback.
    shutdown_and_exit(0)


def launch(nproc: int, target: Callable[..., Any], *args: Any) -> None:
    """Run ``target(*args)`` in ``nproc`` processes on this machine, each in the process group.

    Signals: a terminal's Ctrl-C reaches every process of the foreground group, so the
    launcher itself ignores SIGINT and lets the workers stop together (each saves at the
    same agreed step); a SIGTERM sent to the launcher alone (``kill``, a service manager)
    is passed on to the workers once.
    """
    import signal

    import torch.multiprocessing as mp

    context = mp.start_processes(_worker, args=(nproc, _free_port(), target, args), nprocs=nproc, join=False,
                                 start_method="spawn")
    forwarded = []

    def forward_term(signum, frame):
        if not forwarded:
            forwarded.append(signum)
            for process in context.processes:
                if process.is_alive():
                    os.kill(process.pid, signal.SIGTERM)

    previous = {signal.SIGINT: signal.signal(signal.SIGINT, signal.SIG_IGN),
                signal.SIGTERM: signal.signal(signal.SIGTERM, forward_term)}
    try:
        while not context.join():
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
