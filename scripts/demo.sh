#!/usr/bin/env bash
# The main job end to end on the embedded default data (see README.md).
# Usage: scripts/demo.sh [build-dir]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${1:-build}
HYD="$BUILD_DIR/bin/hydraulis"
OUT=out/demo
mkdir -p "$OUT"

echo "== 1. prepare both demo corpora (GPT-2 BPE -> MMIDIDX indexed datasets)"
for corpus in web code; do
  "$HYD" data prepare --input data/corpora/$corpus.jsonl --vocab data/gpt2/vocab.json \
    --merges data/gpt2/merges.txt --output-prefix "$OUT/$corpus" --append-eod --workers 2
done

echo "== 2. imbalance analysis (text table, JSON report, SVG/PNG plots)"
for corpus in web code; do
  "$HYD" analyze --data "$OUT/$corpus" --global-token-num 200000 --max-seq-len 32768 \
    --num-pipelines 8 --out "$OUT/analysis_$corpus"
done
