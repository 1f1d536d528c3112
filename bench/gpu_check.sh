#!/usr/bin/env bash
# The GPU measurements crl_ros has no figures for yet, in one prepared run (<= 8 minutes on one
# GPU), each part writing JSON into OUT_DIR, plus OUT_DIR/gpu_check.json saying which part ran,
# how long it took and whether it failed:
#   1. train_throughput_cuda.json  paper-profile training steps/s (bench/train_throughput.py),
#                                  fp32 (TF32) and bf16, Stable CRL / GCBC / GCIQL, batch 2048;
#   2. policy_latency_cuda.json    the bundled policy's forward pass on CUDA, and policy_node
#                                  through ROS when rclpy is importable (bench/ros_latency.py);
#   3. ddp_step_cuda.json          one data-parallel step through crl_ros.learning.distributed
#                                  with NCCL (bench/ddp_step.py; one GPU: a one-process group).
#
#   bench/gpu_check.sh OUT_DIR            # on the GPU machine (python3 there holds torch + CUDA)
#   bench/gpu_check.sh OUT_DIR --toy      # or CRL_GPU_CHECK_TOY=1: CPU, gloo, tiny sizes (the test)
#
# PYTHON picks the interpreter (default: python3). The GPU machines have torch but no ROS wheels:
# there part 2 measures the forward pass alone and says so; the ROS figures are the CPU ones.
set -uo pipefail

out=${1:?usage: bench/gpu_check.sh OUT_DIR [--toy]}
toy=${CRL_GPU_CHECK_TOY:-0}
[ "${2:-}" = "--toy" ] && toy=1
repo=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$repo"

if [ "$toy" = 1 ]; then
  device=cpu; limit=300
  train_args=(--device cpu --batch-size 8 --steps 2 --warmup 1 --frames 600 --threads 1 --algos stable_crl
              --precisions fp32 bf16 --set hidden_width=32 --set "encoder_channels=[8,8,8]")
  latency_args=(--device cpu --frames 20)
  ddp_args=(--device cpu --nproc 2 --toy --bf16 false --steps 2 --warmup 1)
else
  device=cuda; limit=150  # 3 parts: at most 7.5 minutes
  train_args=(--device cuda --profile paper --steps 50 --warmup 5 --precisions fp32 bf16)
  latency_args=(--device cuda --frames 1000)
  ddp_args=(--device cuda --steps 20 --warmup 5)
fi
if ! "$python" -c "import rclpy" 2>/dev/null; then
  latency_args+=(--forward-only)
fi

parts=()
run_part() {  # name, then the command; its output goes to OUT_DIR/<name>.log
  local name=$1; shift
  local start=$SECONDS status=0
  echo "== $name: $*"
  timeout "$limit" "$@" > "$out/$name.log" 2>&1 || status=$?
  echo "   exit $status after $((SECONDS - start)) s (log: $out/$name.log)"
  parts+=("$name:$status:$((SECONDS - start))")
}

nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv > "$out/nvidia_smi.csv" 2>&1 || true
run_part train_throughput_$device "$python" bench/train_throughput.py "${train_args[@]}" --out "$out/train_throughput_$device.json"
run_part policy_latency_$device "$python" bench/ros_latency.py --model models/widowx_stable_crl.pt "${latency_args[@]}" \
  --busy 0 --out "$out/policy_latency_$device.json"
run_part ddp_step_$device "$python" bench/ddp_step.py "${ddp_args[@]}" --out "$out/ddp_step_$device.json"

"$python" - "$out" "$toy" "${latency_args[*]}" "${parts[@]}" <<'EOF'
import json, os, sys
out, toy, latency_args, parts = sys.argv[1], sys.argv[2] == "1", sys.argv[3], sys.argv[4:]
summary = {"toy": toy, "load_average_at_end": os.getloadavg(),
           "policy_latency_ros_graph": "--forward-only" not in latency_args.split(), "parts": {}}
for part in parts:
    name, status, seconds = part.rsplit(":", 2)
    summary["parts"][name] = {"exit_code": int(status), "seconds": int(seconds),
                              "result": f"{name}.json" if os.path.exists(os.path.join(out, f"{name}.json")) else None}
summary["ok"] = all(p["exit_code"] == 0 and p["result"] for p in summary["parts"].values())
with open(os.path.join(out, "gpu_check.json"), "w") as f:
    json.dump(summary, f, indent=2)
print(json.dumps(summary, indent=2))
sys.exit(0 if summary["ok"] else 1)
EOF
