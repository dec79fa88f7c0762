#!/usr/bin/env bash
# The whole GPU job in one device-tool call (docs/gpu.md), run in the repository root there with carry [".gpu"]:
#   bash bench/gpu_job.sh [budget_s [--jobs NAME ...]]
# Installs the carried wheels into /tmp/site, then bench/gpu_ship.py trains, generates, evaluates and packs
# every shipped model into $OUT within budget_s seconds (default 420: the call's limit is 600 s).
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/whl/*.whl \
  || { echo "wheel install failed"; exit 3; }
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/nvidia-smi.csv" 2>&1
python3 -m bench.gpu_ship --out "$OUT" --budget_s "${1:-420}" "${@:2}"
