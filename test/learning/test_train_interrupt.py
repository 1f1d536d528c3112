"""Interrupt-safe training: SIGINT/SIGTERM save a checkpoint at the current step, a second
signal aborts without corrupting anything, --resume keeps the run's settings, old
checkpoints rotate, time-based checkpoints, lean deployable model.pt, precision choice."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from synthetic_data import write_tiny_dataset

from crl_ros.learning import precision
from crl_ros.learning.agents import default_config, make_agent
from crl_ros.learning.checkpoint import MODEL_FILENAME, list_step_checkpoints, load_checkpoint
from crl_ros.learning.config import apply_overrides
from crl_ros.learning.policy import Policy
from crl_ros.learning.trainer import TrainConfig, TrainInterrupted, train

TINY = ["hidden_width=32", "hidden_depth=2", "encoder_channels=[8,8,8]", "batch_size=16"]


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    return write_tiny_dataset(tmp_path_factory.mktemp("data") / "tiny.h5")


def _crl(*args):
    return [sys.executable, "-m", "crl_ros.cli", *map(str, args)]


def _start_train(data_file, out, *extra):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen(_crl("train", "--data", data_file, "--algo", "stable_crl", "--out", out,
                                 "--steps", 1_000_000, "--log-every", 1, "--checkpoint-every", 1_000_000,
                                 "--no-progress", "--set", *TINY, *extra),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _wait_for_steps(out: Path, proc, steps: int, timeout: float = 120.0) -> int:
    metrics = out / "metrics.jsonl"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        if metrics.exists():
            done = [json.loads(line)["step"] for line in metrics.read_text().splitlines() if '"train"' in line]
            if done and done[-1] >= steps:
                return done[-1]
        time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"no {steps} steps within {timeout} s")


def _no_temporary_files(out: Path) -> bool:
    return not [p for p in out.rglob("*") if ".tmp-" in p.name]


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_saves_the_current_step_and_resume_continues_with_the_runs_settings(data_file, tmp_path, sig, code):
    out = tmp_path / "run"
    proc = _start_train(data_file, out, "--keep-checkpoints", 3)
    seen = _wait_for_steps(out, proc, 3)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == code, stderr
    assert "checkpoint" in stderr and "--resume" in stderr and "Traceback" not in stderr
    saved = list_step_checkpoints(out)
    assert len(saved) == 1, saved  # --checkpoint-every 1e6: only the one written at the signal
    stopped_at = saved[0][0]
    assert stopped_at >= seen
    assert load_checkpoint(saved[0][1]).training["step"] == stopped_at
    assert load_checkpoint(out / MODEL_FILENAME).meta.step == stopped_at
    assert _no_temporary_files(out)

    # --resume without --checkpoint-every/--log-every keeps the run's (1e6 / 1), with a new --steps
    resumed = subprocess.run(_crl("train", "--out", out, "--resume", "--steps", stopped_at + 4, "--no-progress"),
                             capture_output=True, text=True, timeout=300, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert resumed.returncode == 0, resumed.stderr
    assert f"at step {stopped_at}" in resumed.stdout
    assert [s for s, _ in list_step_checkpoints(out)] == [stopped_at, stopped_at + 4]
    run = json.loads((out / "run.json").read_text())
    assert run["train_config"]["checkpoint_every"] == 1_000_000 and run["train_config"]["log_every"] == 1
    assert run["train_config"]["keep_checkpoints"] == 3
    assert run["resumed"][-1]["at_step"] == stopped_at
    steps_logged = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()
                    if '"train"' in line]
    assert steps_logged[-4:] == list(range(stopped_at + 1, stopped_at + 5))  # log_every 1 kept


def test_resume_of_a_finished_run_says_so_and_trains_nothing(data_file, tmp_path):
    out = tmp_path / "done"
    from crl_ros.cli import main
    assert main(["train", "--data", str(data_file), "--algo", "gcbc", "--out", str(out), "--steps", "3",
                 "--no-progress", "--set", *TINY]) == 0
    before = (out / MODEL_FILENAME).read_bytes()
    done = subprocess.run(_crl("train", "--out", out, "--resume"), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "finished (3 of 3 steps)" in done.stdout and "--steps" in done.stdout
    assert (out / MODEL_FILENAME).read_bytes() == before
    assert [s for s, _ in list_step_checkpoints(out)] == [3]


class _SignalDuringWrite:
    """torch.save wrapper: the file object sends SIGINT to this process `count` times once
    `after` bytes of a step checkpoint are written (a Ctrl-C in the middle of the write)."""

    def __init__(self, count, after=2048):
        self.count, self.after, self.real = count, after, torch.save
        self.fired = 0

    def __call__(self, obj, f, *args, **kwargs):
        if "training" not in obj or obj["training"] is None or self.fired >= self.count:
            return self.real(obj, f, *args, **kwargs)
        outer = self

        class Writer:
            def __init__(self, inner):
                self.inner, self.written = inner, 0

            def write(self, data):
                n = self.inner.write(data)
                self.written += len(data)
                while self.written >= outer.after and outer.fired < outer.count:
                    outer.fired += 1
                    os.kill(os.getpid(), signal.SIGINT)
                    time.sleep(0.01)  # let the handler run here, inside the write
                return n

            def flush(self):
                return self.inner.flush()

        return self.real(obj, Writer(f), *args, **kwargs)


def _inprocess(data_file, out, steps, **kw):
    cfg = apply_overrides(default_config("stable_crl"), TINY)
    return train([data_file], "stable_crl", cfg, TrainConfig(steps=steps, device="cpu", log_every=1,
                                                             progress=False, **kw), out)


def test_one_signal_during_a_checkpoint_write_finishes_the_write_and_stops(data_file, tmp_path, monkeypatch):
    out = tmp_path / "one"
    # what was installed before (Python's default_int_handler, or SIG_IGN when the suite runs as
    # a background job of a non-interactive shell, which starts with SIGINT ignored)
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr(torch, "save", _SignalDuringWrite(count=1))
    with pytest.raises(TrainInterrupted) as info:
        _inprocess(data_file, out, steps=50, checkpoint_every=4)
    assert info.value.exit_code == 130 and info.value.step == 4 and info.value.saved is not None
    assert not info.value.aborted
    assert [s for s, _ in list_step_checkpoints(out)] == [4]
    assert load_checkpoint(list_step_checkpoints(out)[0][1]).training["step"] == 4
    assert _no_temporary_files(out)
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers  # handlers restored


def test_second_signal_during_a_write_aborts_and_keeps_the_previous_checkpoint(data_file, tmp_path, monkeypatch):
    out = tmp_path / "two"
    _inprocess(data_file, out, steps=4, checkpoint_every=4)
    good = load_checkpoint(list_step_checkpoints(out)[0][1])
    model_before = (out / MODEL_FILENAME).read_bytes()
    monkeypatch.setattr(torch, "save", _SignalDuringWrite(count=2))
    cfg = TrainConfig(steps=8, device="cpu", log_every=1, checkpoint_every=4, progress=False)
    with pytest.raises(TrainInterrupted) as info:
        train([data_file], "stable_crl", None, cfg, out, resume=True)
    assert info.value.saved is None and info.value.aborted and "aborted" in str(info.value)
    assert info.value.last_checkpoint == list_step_checkpoints(out)[-1][1]
    assert [s for s, _ in list_step_checkpoints(out)] == [4]  # the half-written step 8 is gone
    again = load_checkpoint(list_step_checkpoints(out)[0][1])
    assert again.training["step"] == good.training["step"] == 4
    assert (out / MODEL_FILENAME).read_bytes() == model_before
    assert _no_temporary_files(out)


def test_time_based_checkpoints_rotate(data_file, tmp_path):
    out = tmp_path / "timed"
    result = _inprocess(data_file, out, steps=12, checkpoint_every=1000, checkpoint_minutes=1e-6, keep_checkpoints=2)
    assert result.step == 12
    assert [s for s, _ in list_step_checkpoints(out)] == [11, 12]  # one per step by time, two kept


def test_model_pt_holds_only_what_the_policy_needs(data_file, tmp_path):
    full = _inprocess(data_file, tmp_path / "full", steps=2)
    half = _inprocess(data_file, tmp_path / "half", steps=2, model_dtype="float16")
    deployable = load_checkpoint(full.model_path)
    step = load_checkpoint(list_step_checkpoints(full.out_dir)[-1][1])
    assert any(k.startswith("target_critic.") for k in step.model)
    assert not any(k.startswith("target_critic.") for k in deployable.model)
    assert deployable.training is None
    assert set(step.model) - set(deployable.model) == {k for k in step.model if k.startswith("target_critic.")}
    assert all(v.dtype == torch.float16 for v in load_checkpoint(half.model_path).model.values() if v.is_floating_point())
    assert load_checkpoint(half.model_path).meta.weights_dtype == "float16"
    assert half.model_path.stat().st_size < 0.6 * full.model_path.stat().st_size

    obs = torch.randint(0, 255, (4, 32, 32, 3), dtype=torch.uint8).numpy()
    goal = torch.randint(0, 255, (4, 32, 32, 3), dtype=torch.uint8).numpy()
    a_full = Policy.load(full.model_path, device="cpu").act(obs, goal)
    a_step = Policy.load(list_step_checkpoints(full.out_dir)[-1][1], device="cpu").act(obs, goal)
    assert (a_full == a_step).all()
    a_half = Policy.load(half.model_path, device="cpu").act(obs, goal)
    a_half_full = Policy.load(list_step_checkpoints(half.out_dir)[-1][1], device="cpu").act(obs, goal)
    assert abs(a_half - a_half_full).max() < 1e-2


def test_bf16_only_where_the_cpu_runs_it_natively(monkeypatch):
    info = precision.precision_info("cpu")
    assert info.bf16_native == bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    assert torch.backends.cpu.get_cpu_capability() in info.detail
    cfg = apply_overrides(default_config("gcbc"), TINY + ["bf16=true"])
    for native in (False, True):
        monkeypatch.setattr(precision, "_cpu_bf16_native", lambda: native)
        use, why = precision.resolve_bf16(True, "cpu")
        assert use is native and (why is None) is native
        agent = make_agent("gcbc", cfg, (32, 32, 3), 2, "cpu")
        assert agent.uses_bf16 is native
        with agent.autocast():
            assert torch.is_autocast_enabled("cpu") is native
    assert precision.resolve_bf16(False, "cpu") == (False, None)


def test_train_says_when_bf16_falls_back(data_file, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(precision, "_cpu_bf16_native", lambda: False)
    cfg = apply_overrides(default_config("gcbc"), TINY + ["bf16=true"])
    train([data_file], "gcbc", cfg, TrainConfig(steps=1, device="cpu", progress=False), tmp_path / "bf")
    out = capsys.readouterr().out
    assert "bf16 requested but cpu has no native bf16" in out and "training in fp32" in out
    assert json.loads((tmp_path / "bf" / "run.json").read_text())["precision"] == "fp32"


def test_cpu_profile_and_the_paper_profile_hint(data_file, tmp_path):
    from crl_ros.cli import main
    out = tmp_path / "cpu"
    assert main(["train", "--data", str(data_file), "--algo", "stable_crl", "--profile", "cpu", "--out", str(out),
                 "--steps", "2", "--no-progress", "--device", "cpu"]) == 0
    config = json.loads((out / "run.json").read_text())["agent_config"]
    assert (config["batch_size"], config["hidden_width"], config["encoder_channels"]) == (128, 256, [16, 32, 32])
    assert (config["critic_loss"], config["normalize_actions"], config["policy_init"]) == ("mc", True, "xavier")
    assert config["eval_gripper"] == "binary"  # the model it writes opens/closes its gripper fully
    from crl_ros.learning.policy import Policy
    assert Policy.load(out, device="cpu").gripper_mode == "binary"
    # the profile's Stable CRL critic setting does not reach the other algorithms' configs
    gcbc = tmp_path / "gcbc"
    assert main(["train", "--data", str(data_file), "--algo", "gcbc", "--profile", "cpu", "--out", str(gcbc),
                 "--steps", "2", "--no-progress", "--device", "cpu"]) == 0
    gcbc_config = json.loads((gcbc / "run.json").read_text())["agent_config"]
    assert "critic_loss" not in gcbc_config and gcbc_config["hidden_width"] == 256
    assert gcbc_config["eval_gripper"] == "binary"
    # the paper profile on a CPU: said up front (here before the missing data file stops the run)
    hint = subprocess.run(_crl("train", "--data", tmp_path / "missing.h5", "--algo", "stable_crl",
                               "--out", tmp_path / "paper", "--device", "cpu"), capture_output=True, text=True,
                          timeout=120)
    assert hint.returncode == 1
    assert "sized for a GPU" in hint.stderr and "--profile cpu" in hint.stderr
    assert "missing.h5" in hint.stderr and "Traceback" not in hint.stderr
    quiet = subprocess.run(_crl("train", "--data", tmp_path / "missing.h5", "--algo", "stable_crl", "--out",
                                tmp_path / "paper2", "--device", "cpu", "--set", "hidden_width=64"),
                           capture_output=True, text=True, timeout=120)
    assert "sized for a GPU" not in quiet.stderr  # explicit sizes: no hint


def test_sigterm_to_a_two_process_run_saves_once_and_resumes(data_file, tmp_path):
    out = tmp_path / "ddp"
    proc = _start_train(data_file, out, "--nproc", 2, "--device", "cpu")
    _wait_for_steps(out, proc, 2, timeout=240)
    proc.send_signal(signal.SIGTERM)  # to the launcher only, as `kill` or a service manager does
    stdout, stderr = proc.communicate(timeout=180)
    assert proc.returncode == 143, stderr
    saved = list_step_checkpoints(out)
    assert len(saved) == 1 and "Traceback" not in stderr, stderr
    assert _no_temporary_files(out)
    resumed = subprocess.run(_crl("train", "--out", out, "--resume", "--steps", saved[0][0] + 2, "--no-progress"),
                             capture_output=True, text=True, timeout=300, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert resumed.returncode == 0, resumed.stderr
    assert [s for s, _ in list_step_checkpoints(out)][-1] == saved[0][0] + 2


def test_a_process_that_stopped_on_an_agreed_signal_waits_for_the_checkpoint_writer(monkeypatch, capsys):
    # Rank 1 saves nothing, so it reaches the exit first. The launcher ends every other process
    # as soon as one exits non-zero: rank 1 leaving at once aborted rank 0's checkpoint write
    # (seen with the SIGTERM test above). An agreed stop waits at the barrier; an abort and a
    # refusal do not; the code reaches the launcher through os._exit (no interpreter teardown).
    from crl_ros.commands import train as train_cmd
    from crl_ros.learning import distributed

    class Exited(Exception):
        pass

    def fake_exit(code):
        raise Exited(code)

    calls = []
    monkeypatch.setattr(distributed, "shutdown", lambda wait_for_others=True: calls.append(wait_for_others))
    monkeypatch.setattr(distributed, "is_main_process", lambda: False)
    monkeypatch.setattr(os, "_exit", fake_exit)
    cases = [(TrainInterrupted(signal.SIGTERM, 7, None, None, aborted=False), True, 143),
             (TrainInterrupted(signal.SIGINT, 7, None, None, aborted=True), False, 130),
             (2, False, 2)]
    for outcome, waits, code in cases:
        def fake_train(args, reraise_interrupt=False, outcome=outcome):
            assert reraise_interrupt  # the worker needs to know how the run stopped
            if isinstance(outcome, BaseException):
                raise outcome
            return outcome
        monkeypatch.setattr(train_cmd, "_train", fake_train)
        calls.clear()
        with pytest.raises(Exited) as exited:
            train_cmd._process_main(None)
        assert calls == [waits] and exited.value.args == (code,)
    monkeypatch.setattr(train_cmd, "_train", lambda args, reraise_interrupt=False: 0)
    calls.clear()
    train_cmd._process_main(None)  # success: waits for the others, returns to distributed._worker
    assert calls == [True]
    assert TrainInterrupted(signal.SIGTERM, 3, None, None).aborted  # unsaid: no checkpoint means aborted
