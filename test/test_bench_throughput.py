"""bench/train_throughput.py --breakdown at toy scale: the labelled phases of a Stable CRL
step and the top operators come out in the results file."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_breakdown_names_every_phase_of_a_stable_crl_step(tmp_path):
    out = tmp_path / "tt.json"
    subprocess.run([sys.executable, str(ROOT / "bench" / "train_throughput.py"), "--device", "cpu",
                    "--batch-size", "8", "--steps", "2", "--warmup", "1", "--frames", "600", "--threads", "1",
                    "--algos", "stable_crl", "--breakdown", "--set", "hidden_width=32", "--out", str(out)],
                   check=True, cwd=ROOT, capture_output=True, timeout=300)
    run = json.loads(out.read_text())["runs"][0]
    phases = run["breakdown"]["phases"]
    assert set(phases) == {"make_batch", "critic_loss", "actor_loss", "backward", "optimizer_step", "target_update"}
    assert all(v["cpu_us_per_step"] > 0 for v in phases.values())
    ops = run["breakdown"]["top_ops"]
    # operators, not the phase labels; profiler ranges such as "Optimizer.step#Adam.step" may
    # rank high when the machine is loaded (self time is wall time), so only ask for an aten op
    assert ops and not {o["op"] for o in ops} & set(phases)
    assert any(o["op"].startswith("aten::") for o in ops[:3])
    assert 0 < sum(o["share"] for o in ops) <= 1.0 + 1e-6


def test_the_cpu_profile_runs_on_normalised_actions(tmp_path):
    """--profile cpu trains on z-scored actions (normalize_actions=true): the bench must build
    its sampler to match, as crl train does (it raised a ValueError before)."""
    out = tmp_path / "tt.json"
    subprocess.run([sys.executable, str(ROOT / "bench" / "train_throughput.py"), "--device", "cpu",
                    "--profile", "cpu", "--batch-size", "8", "--steps", "2", "--warmup", "1", "--frames", "600",
                    "--threads", "1", "--algos", "stable_crl", "gcbc", "--set", "hidden_width=32", "--out", str(out)],
                   check=True, cwd=ROOT, capture_output=True, timeout=300)
    runs = json.loads(out.read_text())["runs"]
    assert [r["algorithm"] for r in runs] == ["stable_crl", "gcbc"]
    assert all(r["config"]["normalize_actions"] is True and r["steps_per_s"] > 0 for r in runs)
    assert runs[0]["config"]["critic_loss"] == "mc"
