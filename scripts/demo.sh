#!/usr/bin/env bash
# The main job end to end on the embedded default data (README.md): prepare both corpora, analyze
# their length imbalance, propose a heterogeneous strategy list for a simulated 64-GPU 32B cluster,
# plan and simulate global batches with it, then train the `tiny` model on CPU.
# Usage: scripts/demo.sh [build-dir]           Outputs: out/demo/
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${1:-build}
HYD="$BUILD_DIR/bin/hydraulis"
OUT=out/demo
SPACE=configs/scheme_space/parallel_scheme_space_32b.json
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

echo "== 3. propose a strategy list: 32B model, 64 GPUs, web corpus, 200k tokens per batch"
"$HYD" propose --scheme-space "$SPACE" --num-gpus 64 --data "$OUT/web" \
  --global-token-num 200000 --max-seq-len 32768 --s-step 1024 --out "$OUT/proposal.json" |
  grep -v '^\[\[' | head -n 30
STRATEGIES=$(node -e 'process.stdout.write(require(process.argv[1]).strategy_list)' \
  "$PWD/$OUT/proposal.json")

echo "== 4. simulate 30 global batches: methods 0/1/3/4 vs the homogeneous baselines"
"$HYD" simulate --scheme-space "$SPACE" --num-gpus 64 --strategies "$STRATEGIES" \
  --data "$OUT/web" --global-token-num 200000 --max-seq-len 32768 --num-batches 30 \
  --out "$OUT/simulate"

echo "== 5. plan the first 5 global batches with method 4 (plan.jsonl, one line per batch)"
"$HYD" plan --scheme-space "$SPACE" --num-gpus 64 --strategies "$STRATEGIES" \
  --data "$OUT/web" --global-token-num 200000 --max-seq-len 32768 --num-batches 5 --method 4 \
  --output "$OUT/plan.jsonl"

echo "== 6. train the tiny LLaMA on CPU (loss should fall)"
"$HYD" train --model tiny --data "$OUT/web" --device cpu --steps 20 --global-token-num 2048 \
  --max-seq-len 256 --lr 3e-3 --warmup-steps 2 --metrics "$OUT/train_metrics.jsonl"
node -e '
  const lines = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").map(JSON.parse);
  const first = lines[0].loss, last = lines[lines.length - 1].loss;
  console.log(`loss ${first.toFixed(3)} -> ${last.toFixed(3)} over ${lines.length} steps`);
  if (!(last < first - 1.0)) { console.error("demo: the loss did not fall"); process.exit(1); }
' "$OUT/train_metrics.jsonl"
echo "demo: outputs in $OUT/ (analysis_*/ plots, proposal.json, simulate/, plan.jsonl, train_metrics.jsonl)"
