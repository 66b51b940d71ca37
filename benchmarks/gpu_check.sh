#!/usr/bin/env bash
# On a machine with a CUDA GPU: score parity and speed of --device cuda against the CPU, and a short
# training run on both (benchmarks/gpu_check.py). Usage, from the repository root:
#   bash benchmarks/gpu_check.sh [OUT_DIR]        (default OUT_DIR: gpu-check-out)
# The CPU build of torch in .venv cannot see a GPU: this script makes its own venv with a CUDA build
# (pip's default torch wheel), unless GPU_CHECK_PYTHON names an interpreter that already has one.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-gpu-check-out}
mkdir -p "$OUT"
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1 || { echo "nvidia-smi failed: no GPU here?" >&2; exit 2; }
PY=${GPU_CHECK_PYTHON:-}
if [[ -z "$PY" ]]; then
    python3 -m venv .venv-gpu
    .venv-gpu/bin/python -m pip install -q --upgrade pip
    .venv-gpu/bin/python -m pip install -q "torch==2.13.0"   # the CUDA build (pip's default wheel)
    .venv-gpu/bin/python -m pip install -q -e '.[onnx]'
    PY=.venv-gpu/bin/python
fi
lscpu > "$OUT/lscpu.txt"
"$PY" benchmarks/gpu_check.py --out "$OUT/gpu_check.json"
