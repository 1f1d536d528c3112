"""The training loop: exact resume, seeded reproducibility, run-directory safety, logging, evaluator."""
import json

import pytest
import torch
from synthetic_data import write_tiny_dataset

from crl_ros.learning.agents import default_config
from crl_ros.learning.checkpoint import list_step_checkpoints, load_checkpoint
from crl_ros.learning.config import apply_overrides
from crl_ros.learning.policy import Policy
from crl_ros.learning.trainer import TrainConfig, TrainError, train

TINY = ["hidden_width=32", "hidden_depth=2", "encoder_channels=[8,8,8]", "batch_size=16", "augment_prob=0.5"]


def tiny_config(algo):
    return apply_overrides(default_config(algo), TINY)


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    return write_tiny_dataset(tmp_path_factory.mktemp("data") / "tiny.h5")


def _run(data_file, out, algo="stable_crl", steps=6, resume=False, evaluator=None, **kw):
    cfg = TrainConfig(steps=steps, seed=kw.pop("seed", 0), device="cpu", log_every=kw.pop("log_every", 2),
                      checkpoint_every=kw.pop("checkpoint_every", 3), progress=False, **kw)
    return train([data_file], algo, None if resume else tiny_config(algo), cfg, out, resume=resume,
                 evaluator=evaluator)


def _weights(out):
    return load_checkpoint(list_step_checkpoints(out)[-1][1])


def _assert_same_state(a, b):
    assert a.model.keys() == b.model.keys()
    for key in a.model:
        assert torch.equal(a.model[key], b.model[key]), key
    opt_a, opt_b = a.training["optimizer"]["optimizer"], b.training["optimizer"]["optimizer"]
    for pid, state in opt_a["state"].items():
        for name, value in state.items():
            assert torch.equal(value, opt_b["state"][pid][name]), (pid, name)
    assert torch.equal(a.training["sampler"]["generator"], b.training["sampler"]["generator"])
    assert torch.equal(a.training["rng"]["torch"], b.training["rng"]["torch"])


@pytest.mark.parametrize("algo", ["stable_crl", "gcbc", "gciql"])
def test_resume_is_bit_exact(data_file, tmp_path, algo):
    straight = _run(data_file, tmp_path / "straight", algo, steps=7)
    _run(data_file, tmp_path / "split", algo, steps=4)
    resumed = _run(data_file, tmp_path / "split", algo, steps=7, resume=True)
    assert straight.step == resumed.step == 7
    a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "split")
    assert a.meta.step == b.meta.step == 7
    _assert_same_state(a, b)


def test_seed_reproduces_and_differs(data_file, tmp_path):
    _run(data_file, tmp_path / "a", steps=4, seed=1)
    _run(data_file, tmp_path / "b", steps=4, seed=1)
    _run(data_file, tmp_path / "c", steps=4, seed=2)
    a, b, c = (_weights(tmp_path / n) for n in "abc")
    _assert_same_state(a, b)
    assert any(not torch.equal(a.model[k], c.model[k]) for k in a.model)


def test_training_changes_weights_and_writes_the_run(data_file, tmp_path):
    out = tmp_path / "run"
    result = _run(data_file, out, steps=6, keep_checkpoints=1)
    assert result.model_path == out / "model.pt" and result.step == 6
    first = _run(data_file, tmp_path / "zero", steps=1)
    before, after = load_checkpoint(first.model_path).model, load_checkpoint(result.model_path).model
    assert any(not torch.equal(before[k], after[k]) for k in before)
    model = load_checkpoint(out / "model.pt")
    assert model.training is None and model.meta.step == 6  # model.pt: weights + metadata only
    assert model.meta.algorithm == "stable_crl" and model.meta.config["hidden_width"] == 32
    assert model.meta.action_names == ["vx", "vy"] and model.meta.action_low == [-4.0, -4.0]
    assert model.meta.dataset["num_episodes"] == 4 and model.meta.dataset["provenance"]["source"] == "test"
    assert [s for s, _ in list_step_checkpoints(out)] == [6]  # keep_checkpoints=1 pruned step 3
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    train_lines = [m for m in lines if m["kind"] == "train"]
    assert [m["step"] for m in train_lines] == [2, 4, 6]
    assert {"critic_loss", "actor_loss", "accuracy"} <= set(train_lines[0])
    assert all(m["steps_per_s"] > 0 for m in lines if m["kind"] == "perf")
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    assert json.loads((out / "run.json").read_text())["algorithm"] == "stable_crl"


def test_refuses_to_overwrite_a_run(data_file, tmp_path):
    out = tmp_path / "run"
    _run(data_file, out, steps=3)
    original = (out / "model.pt").read_bytes()
    with pytest.raises(TrainError, match="already holds a run"):
        _run(data_file, out, steps=3)
    assert (out / "model.pt").read_bytes() == original
    cfg = TrainConfig(steps=3, device="cpu", progress=False)
    train([data_file], "gcbc", tiny_config("gcbc"), cfg, out, force=True)
    backups = list(tmp_path.glob("run.old-*"))
    assert len(backups) == 1 and (backups[0] / "model.pt").read_bytes() == original
    assert load_checkpoint(out / "model.pt").meta.algorithm == "gcbc"


def test_resume_errors(data_file, tmp_path):
    with pytest.raises(TrainError, match="no run to resume"):
        _run(data_file, tmp_path / "nothing", resume=True)
    (tmp_path / "empty" / "checkpoints").mkdir(parents=True)
    with pytest.raises(TrainError, match="no checkpoints"):
        _run(data_file, tmp_path / "empty", resume=True)
    _run(data_file, tmp_path / "crl", steps=3)
    cfg = TrainConfig(steps=5, device="cpu", progress=False)
    with pytest.raises(TrainError, match="trains stable_crl, not gcbc"):
        train([data_file], "gcbc", None, cfg, tmp_path / "crl", resume=True)


def test_data_weights_resume_exactly_and_are_recorded(data_file, tmp_path):
    def run(out, steps, resume=False, weights=(1.0, 3.0)):
        cfg = TrainConfig(steps=steps, seed=0, device="cpu", log_every=2, checkpoint_every=3, progress=False,
                          data_weights=weights)
        return train([data_file, data_file], "stable_crl", None if resume else tiny_config("stable_crl"), cfg,
                     out, resume=resume)
    run(tmp_path / "straight", 7)
    run(tmp_path / "split", 4)
    run(tmp_path / "split", 7, resume=True)
    a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "split")
    _assert_same_state(a, b)
    assert a.meta.dataset["weights"] == [1.0, 3.0]
    assert json.loads((tmp_path / "split" / "run.json").read_text())["train_config"]["data_weights"] == [1.0, 3.0]
    # the weights change the batches (so the weights, not only the data, reach the sampler)
    run(tmp_path / "even", 7, weights=(1.0, 1.0))
    even = _weights(tmp_path / "even")
    assert any(not torch.equal(a.model[k], even.model[k]) for k in a.model)
    with pytest.raises(TrainError, match="3 data weights for 2 dataset file"):
        run(tmp_path / "bad", 2, weights=(1.0, 1.0, 1.0))


def test_evaluator_is_logged_and_does_not_change_training(data_file, tmp_path):
    calls = []

    def evaluator(policy):
        assert isinstance(policy, Policy) and not policy.agent.training
        obs = torch.randint(0, 256, (2, 32, 32, 3), dtype=torch.uint8).numpy()  # uses the global torch RNG
        actions = policy.act(obs, obs, sample=True)
        calls.append(actions.shape)
        return {"success": 0.25 * len(calls)}

    _run(data_file, tmp_path / "eval", steps=6, evaluator=evaluator, eval_every=2)
    _run(data_file, tmp_path / "plain", steps=6)
    assert calls == [(2, 2)] * 3  # steps 2, 4, 6
    lines = [json.loads(line) for line in (tmp_path / "eval" / "metrics.jsonl").read_text().splitlines()]
    assert [(m["step"], m["success"]) for m in lines if m["kind"] == "eval"] == [(2, 0.25), (4, 0.5), (6, 0.75)]
    _assert_same_state(_weights(tmp_path / "eval"), _weights(tmp_path / "plain"))


def test_config_validation():
    with pytest.raises(ValueError, match="steps must be >= 1"):
        TrainConfig(steps=0)
    with pytest.raises(ValueError, match="CUDA is not available"):
        if torch.cuda.is_available():
            pytest.skip("CUDA present")
        train([], "gcbc", None, TrainConfig(steps=1, device="cuda"), "unused")


@pytest.mark.parametrize("algo", ["stable_crl", "gciql"])
def test_init_from_starts_a_new_run_from_a_models_weights(data_file, tmp_path, algo):
    """Fine-tuning: the new run starts at the model's weights (the target critic at its critic),
    keeps its config and action statistics, starts its step count and optimiser afresh, and
    run.json says where the weights came from."""
    first = _run(data_file, tmp_path / "first", algo, steps=6)
    cfg = TrainConfig(steps=1, seed=3, device="cpu", log_every=1, checkpoint_every=1, progress=False)
    tuned = train([data_file], algo, None, cfg, tmp_path / "tuned", init_from=first.model_path)
    src, new = load_checkpoint(first.model_path), _weights(tmp_path / "tuned")
    assert tuned.step == 1 and new.meta.step == 1 and new.training["step"] == 1
    assert new.meta.action_mean == src.meta.action_mean and new.meta.action_std == src.meta.action_std
    assert new.meta.config == src.meta.config
    # one fresh Adam step moves each weight by about the learning rate; a new network is far away
    lr = src.meta.config["lr"]
    for key in src.model:
        moved = float((new.model[key].float() - src.model[key].float()).abs().max())
        assert moved <= 1.5 * lr, (key, moved)
    for key, value in new.model.items():
        if key.startswith("target_critic."):  # starts as the model's critic (model.pt has no target)
            twin = src.model["critic." + key[len("target_critic."):]].float()
            assert float((value.float() - twin).abs().max()) <= 1.5 * lr, key
    assert any(k.startswith("target_critic.") for k in new.model)
    fresh = _run(data_file, tmp_path / "fresh", algo, steps=1, seed=3)
    fresh_model = load_checkpoint(fresh.model_path).model
    assert max(float((fresh_model[k].float() - src.model[k].float()).abs().max()) for k in src.model) > 100 * lr
    run = json.loads((tmp_path / "tuned" / "run.json").read_text())
    assert run["init_from"] == {"path": str(first.model_path), "step": 6}


def test_init_from_errors(data_file, tmp_path):
    from crl_ros.learning.dataset import DatasetWriter
    from synthetic_data import synthetic_dataset

    first = _run(data_file, tmp_path / "first", "stable_crl", steps=3)
    cfg = TrainConfig(steps=2, seed=0, device="cpu", progress=False)
    with pytest.raises(TrainError, match="not gcbc"):
        train([data_file], "gcbc", None, cfg, tmp_path / "other", init_from=first.model_path)
    with pytest.raises(TrainError, match="cannot be combined with --resume"):
        train([data_file], "stable_crl", None, cfg, tmp_path / "first", resume=True, init_from=first.model_path)
    small = synthetic_dataset(episode_lengths=(12, 20), image_size=24, action_dim=2, seed=1)
    with DatasetWriter(tmp_path / "small.h5", small.metadata) as writer:
        for i in range(small.num_episodes):
            writer.add_episode(*small.episode(i))
    with pytest.raises(TrainError, match="--init-from: the data"):
        train([tmp_path / "small.h5"], "stable_crl", None, cfg, tmp_path / "small", init_from=first.model_path)
