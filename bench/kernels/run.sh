#!/usr/bin/env bash
# Runs the CUDA kernel tests, then our kernel benchmark and the PyTorch competitor on the same GPU,
# and writes the merged JSON. Usage: bench/kernels/run.sh BIN_DIR OUT_DIR
# (BIN_DIR holds kernels_cuda_test and kernels_bench).
set -euo pipefail
bin=${1:?bin dir}; out=${2:?out dir}
mkdir -p "$out"
git_hash=${HYD_GIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}  # the device copy has no .git: pass HYD_GIT
"$bin/kernels_cuda_test" --gtest_brief=1 2>&1 | tee "$out/tests.log"
"$bin/kernels_bench" --out "$out/ours.json" --git "$git_hash" --reps 20 2>&1 | tee "$out/ours.log"
PYTHONUNBUFFERED=1 python3 "$(dirname "$0")/torch_kernels.py" --ours "$out/ours.json" \
  --out "$out/kernels_bench.json" --reps 20 2>&1 | tee "$out/compare.log"
