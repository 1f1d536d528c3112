#!/usr/bin/env bash
# Idempotent setup: .venv with torch, rclpy (ROS 2 wheels unless a sourced ROS 2 has it),
# MuJoCo with a headless GL, and crl_ros itself. Safe to run again: done steps are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY=${PYTHON:-python3}
STAMP="$VENV/.crl_setup_done"

need_apt=()
# Headless rendering for MuJoCo through EGL (Mesa's software driver where there is no GPU).
if ! ldconfig -p 2>/dev/null | grep -q 'libEGL.so.1'; then need_apt+=(libegl1); fi
if ! ldconfig -p 2>/dev/null | grep -qE 'libEGL_(mesa|nvidia)'; then need_apt+=(libegl-mesa0 libgl1-mesa-dri); fi
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "[setup] apt-get install ${need_apt[*]}"
    (apt-get install -y -q "${need_apt[@]}" >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q "${need_apt[@]}" >/dev/null; })
  else
    echo "[setup] warning: missing ${need_apt[*]} (headless MuJoCo rendering); install them with your package manager" >&2
  fi
fi

if [ -f "$STAMP" ] && [ "$STAMP" -nt setup.py ] && [ "$STAMP" -nt scripts/setup.sh ] && [ "$STAMP" -nt requirements.txt ]; then
  echo "[setup] $VENV is up to date"; exit 0
fi

# A sourced ROS 2 (colcon / apt install) already provides rclpy: let the venv see it.
sys_site=""
if [ -n "${ROS_DISTRO:-}" ] && "$PY" -c 'import rclpy' 2>/dev/null; then sys_site="--system-site-packages"; fi
[ -x "$VENV/bin/python" ] || "$PY" -m venv $sys_site "$VENV"
# pip warns about every package missing from local extra indexes some machines configure: noise
pip() { "$VENV/bin/python" -m pip "$@" 2> >(grep -v "^WARNING: Location .* is ignored" >&2); }
pip install -q --upgrade pip wheel setuptools >/dev/null

# torch: keep a working install (any CUDA build the user has); else the pinned version.
if ! "$VENV/bin/python" -c 'import torch' 2>/dev/null; then
  pip install -q "torch==${TORCH_VERSION:-2.13.0}"
fi
if ! "$VENV/bin/python" -c 'import rclpy' 2>/dev/null; then
  pip install -q "ros-rclpy[fastrtps]" ros-sensor-msgs ros-std-msgs ros-std-srvs ros-geometry-msgs ros-trajectory-msgs ros-rcl-interfaces
fi
pip install -q -r requirements.txt
# setuptools' editable build prints an "Editable installation" notice as a warning (on pip's
# build output, stderr) on every install: informational only, so filtered here
PYTHONWARNINGS="ignore:Editable installation" pip install -q --no-deps -e .
touch "$STAMP"
echo "[setup] done: $("$VENV/bin/python" -c 'import torch,sys;print("python",sys.version.split()[0],"torch",torch.__version__)')"
