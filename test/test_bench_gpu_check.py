"""bench/gpu_check.sh --toy: the GPU check's three parts (training throughput, policy
latency, one data-parallel step) run at toy scale on CPU with gloo, and each writes the
JSON the GPU run will write, plus the summary saying every part ran."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_toy_runs_every_part_on_cpu(tmp_path):
    out = tmp_path / "gpu_check"
    env = dict(os.environ, PYTHON=sys.executable, MUJOCO_GL=os.environ.get("MUJOCO_GL", "egl"))
    proc = subprocess.run(["bash", str(ROOT / "bench" / "gpu_check.sh"), str(out), "--toy"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=900)
    logs = "\n".join(f"--- {p.name}\n{p.read_text()[-1500:]}" for p in sorted(out.glob("*.log")))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:] + logs
    summary = json.loads((out / "gpu_check.json").read_text())
    assert summary["ok"] and summary["toy"]
    assert set(summary["parts"]) == {"train_throughput_cpu", "policy_latency_cpu", "ddp_step_cpu"}

    runs = json.loads((out / "train_throughput_cpu.json").read_text())["runs"]
    assert [r["precision"] for r in runs] == ["fp32", "bf16"]  # bf16 asked for; precision_used says what ran
    assert all(r["steps_per_s"] > 0 and r["precision_used"] in ("fp32", "bf16") for r in runs)

    latency = json.loads((out / "policy_latency_cpu.json").read_text())
    assert latency["policy_forward"]["cpu"]["act"]["n"] == 20 and latency["policy_forward"]["cpu"]["act"]["p50_ms"] > 0
    if summary["policy_latency_ros_graph"]:  # rclpy here: policy_node answered through ROS too
        assert latency["ros_graph"]["frames_acted"] > 0

    ddp = json.loads((out / "ddp_step_cpu.json").read_text())
    assert ddp["nproc"] == 2 and ddp["weights_identical"]
    assert [r["rank"] for r in ddp["ranks"]] == [0, 1]
    assert all(r["backend"] == "gloo" and r["world_size"] == 2 and r["allreduce_through_crl_ros"]
               and r["step_s_median"] > 0 and r["gradient_numel"] > 0 for r in ddp["ranks"])


def test_gpu_check_without_an_output_folder_says_how_to_call_it():
    proc = subprocess.run(["bash", str(ROOT / "bench" / "gpu_check.sh")], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "usage: bench/gpu_check.sh OUT_DIR" in proc.stderr
