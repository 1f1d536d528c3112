"""Data-parallel training: 2 CPU processes with gloo keep identical weights, each sees its own
batches, process 0 alone writes the run."""
import json

import numpy as np
import pytest
import torch

from crl_ros.cli import main
from crl_ros.learning import distributed
from crl_ros.learning.dataset import DatasetMetadata, DatasetWriter

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed missing")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    path = tmp_path_factory.mktemp("ddp") / "d.h5"
    rng = np.random.default_rng(0)
    with DatasetWriter(path, DatasetMetadata(image_shape=(32, 32, 3), action_dim=2)) as w:
        for _ in range(4):
            w.add_episode(rng.integers(0, 256, (12, 32, 32, 3), dtype=np.uint8),
                          rng.normal(size=(12, 2)).astype(np.float32))
    return path


def _sync_check(path, out_file):
    """Worker: 3 data-parallel updates, then gather every process's weights and first batch."""
    from crl_ros.learning import dataset as ds
    from crl_ros.learning.agents import default_config, make_agent
    from crl_ros.learning.config import apply_overrides
    from crl_ros.learning.sampler import Sampler

    distributed.init_from_environment("cpu")
    rank = distributed.rank()
    torch.manual_seed(rank)  # different initial weights: the broadcast must equalise them
    cfg = apply_overrides(default_config("stable_crl"), ["hidden_width=32", "batch_size=8",
                                                         "encoder_channels=[8,8,8]"])
    agent = make_agent("stable_crl", cfg, (32, 32, 3), 2, torch.device("cpu"))
    distributed.broadcast_parameters_(agent)
    sampler = Sampler(ds.load(path), torch.device("cpu"), seed=rank * 1_000_003)
    first_batch = None
    for step in range(3):
        batch = agent.make_batch(sampler, 4)
        first_batch = batch["observations"] if first_batch is None else first_batch
        agent.update(batch, step)
    flat = torch.cat([p.detach().reshape(-1) for p in agent.parameters()])
    gathered = [torch.zeros_like(flat) for _ in range(distributed.world_size())]
    torch.distributed.all_gather(gathered, flat)
    batches = [torch.zeros_like(first_batch) for _ in range(distributed.world_size())]
    torch.distributed.all_gather(batches, first_batch)
    if rank == 0:
        out_file.write_text(json.dumps({
            "max_weight_diff": float((gathered[0] - gathered[1]).abs().max()),
            "batches_differ": bool((batches[0] != batches[1]).any())}))
    distributed.shutdown()


def test_two_processes_stay_in_sync_on_different_batches(dataset, tmp_path):
    result = tmp_path / "sync.json"
    distributed.launch(2, _sync_check, dataset, result)
    report = json.loads(result.read_text())
    assert report["max_weight_diff"] == 0.0
    assert report["batches_differ"]


def test_all_reduce_averages_gradients_and_is_a_no_op_alone():
    p = torch.nn.Parameter(torch.zeros(3))
    p.grad = torch.tensor([1.0, 2.0, 3.0])
    distributed.all_reduce_gradients_([p])  # no process group: untouched
    assert p.grad.tolist() == [1.0, 2.0, 3.0]


def _average_check(out_file):
    distributed.init_from_environment("cpu")
    p = torch.nn.Parameter(torch.zeros(2))
    p.grad = torch.full((2,), float(distributed.rank() + 1))  # 1 and 2
    distributed.all_reduce_gradients_([p])
    if distributed.rank() == 0:
        out_file.write_text(json.dumps(p.grad.tolist()))
    distributed.shutdown()


def test_gradients_are_averaged_over_processes(tmp_path):
    out = tmp_path / "avg.json"
    distributed.launch(2, _average_check, out)
    assert json.loads(out.read_text()) == [1.5, 1.5]


def test_crl_train_nproc_2_writes_one_run(dataset, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--data", str(dataset), "--algo", "gcbc", "--out", str(out), "--steps", "4",
                 "--batch-size", "8", "--set", "hidden_width=32", "--nproc", "2", "--no-progress",
                 "--checkpoint-every", "2", "--log-every", "2"]) == 0
    assert (out / "model.pt").exists()
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["kind"] == "train"] == [2, 4]  # one writer, not two
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step_0000002.pt", "step_0000004.pt"]


def test_batch_must_split_over_processes(dataset, tmp_path, capsys):
    assert main(["train", "--data", str(dataset), "--algo", "gcbc", "--out", str(tmp_path / "r"), "--steps", "2",
                 "--batch-size", "7", "--set", "hidden_width=32", "--nproc", "2", "--no-progress"]) == 1


def test_crl_train_nproc_2_resumes_a_run_on_normalised_actions(dataset, tmp_path, capsys):
    """A two-process run resumes: process 0 restores the saved sampler, process 1 builds a fresh
    one from the saved action statistics, so both hand out the normalised actions the agent
    trains on (the agent refuses a sampler that does not)."""
    out = tmp_path / "run"
    args = ["train", "--data", str(dataset), "--out", str(out), "--nproc", "2",
            "--no-progress", "--checkpoint-every", "2", "--log-every", "2"]
    assert main([*args, "--algo", "gcbc", "--steps", "2", "--batch-size", "8", "--set", "hidden_width=32",
                 "--set", "normalize_actions=true"]) == 0
    assert main([*args, "--steps", "4", "--resume"]) == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["kind"] == "train"] == [2, 4]
    assert json.loads((out / "run.json").read_text())["agent_config"]["normalize_actions"] is True
