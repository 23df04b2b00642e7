#!/usr/bin/env bash
# Training throughput: our CUDA trainer step (train_bench), then PyTorch on the same model,
# micro-batch lengths and GPU in five variants (eager / torch.compile × per-sequence SDPA loop /
# varlen flash attention, torch_train.py), merged into one JSON with ratios to PyTorch's best.
# Usage: bench/train/run.sh BIN_DIR OUT_DIR [torch_train.py options, e.g. --variants eager_varlen]
# (BIN_DIR holds train_bench; the device copy has no .git: pass HYD_GIT). README.md beside this.
set -euo pipefail
bin=${1:?bin dir}; out=${2:?out dir}; shift 2
mkdir -p "$out"
git_hash=${HYD_GIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
"$bin/train_bench" --out "$out/train_ours.json" --git "$git_hash" 2>&1 | tee "$out/train_ours.log"
PYTHONUNBUFFERED=1 python3 "$(dirname "$0")/torch_train.py" --ours "$out/train_ours.json" \
  --out "$out/train_bench.json" "$@" 2>&1 | tee "$out/train_compare.log"
