#!/usr/bin/env bash
# Tokenizer benchmark: our Gpt2Tokenizer (tokenizer_bench, one core) against the reference JS
# encoder (npm gpt-3-encoder on node, reference_bench.js) on the same sample of the demo corpora.
# Checks that both produced the same ids (count and hash), then prints and writes
# $OUT_DIR/tokenizer.json: git hash, CPU, MB/s of each (cold and warm cache) and the ratios.
# Usage: bench/tokenizer/run.sh    (env: BUILD_DIR=build OUT_DIR=out/bench BUDGET_MB=8
#                                        DOC_CAP=32768 REPEATS=5 NODE_REPEATS=2)
set -euo pipefail
cd "$(dirname "$0")/../.."

BUILD_DIR=${BUILD_DIR:-build}
OUT_DIR=${OUT_DIR:-out/bench}
BUDGET_MB=${BUDGET_MB:-8}
DOC_CAP=${DOC_CAP:-32768}
REPEATS=${REPEATS:-5}
NODE_REPEATS=${NODE_REPEATS:-2}

bin="$BUILD_DIR/bin/tokenizer_bench"
if [[ ! -x "$bin" ]]; then
  echo "run.sh: $bin not found; build it with: cmake --build $BUILD_DIR --target tokenizer_bench" >&2
  exit 1
fi
mkdir -p "$OUT_DIR"
sample="$OUT_DIR/tokenizer_sample.jsonl"

"$bin" --budget-mb "$BUDGET_MB" --doc-cap "$DOC_CAP" --repeats "$REPEATS" --sample-out "$sample" \
  --json "$OUT_DIR/tokenizer_ours.json"
node bench/tokenizer/reference_bench.js "$sample" "$NODE_REPEATS" > "$OUT_DIR/tokenizer_reference.json"

git_hash=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if ! git diff --quiet HEAD 2>/dev/null; then git_hash="$git_hash-dirty"; fi
cpu=$(grep -m1 "model name" /proc/cpuinfo 2>/dev/null | sed 's/.*: //' || echo unknown)

DOC_CAP="$DOC_CAP" GIT_HASH="$git_hash" CPU="$cpu" node - "$OUT_DIR" <<'EOF'
const fs = require('fs');
const dir = process.argv[2];
const ours = JSON.parse(fs.readFileSync(`${dir}/tokenizer_ours.json`, 'utf8'));
const ref = JSON.parse(fs.readFileSync(`${dir}/tokenizer_reference.json`, 'utf8'));
const match = ours.tokens === ref.tokens && ours.ids_hash === ref.ids_hash &&
              ours.text_bytes === ref.text_bytes;
const result = {
  bench: 'tokenizer',
  git: process.env.GIT_HASH,
  cpu: process.env.CPU,
  threads: 1,
  docs: ours.docs,
  doc_cap_bytes: Number(process.env.DOC_CAP),
  text_bytes: ours.text_bytes,
  tokens: ours.tokens,
  ids_match: match,
  ours: { cold_mb_per_s: ours.cold_mb_per_s, warm_mb_per_s: ours.warm_mb_per_s,
          cold_seconds: ours.cold_seconds, warm_seconds: ours.warm_seconds },
  reference: { encoder: ref.encoder, node: ref.node, cold_mb_per_s: ref.cold_mb_per_s,
               warm_mb_per_s: ref.warm_mb_per_s, cold_seconds: ref.cold_seconds,
               warm_seconds: ref.warm_seconds },
  // ratio = our MB/s / the reference's MB/s on the same text, same cache state
  ratio_cold: ours.cold_mb_per_s / ref.cold_mb_per_s,
  ratio_warm: ours.warm_mb_per_s / ref.warm_mb_per_s,
};
fs.writeFileSync(`${dir}/tokenizer.json.tmp`, JSON.stringify(result, null, 2) + '\n');
fs.renameSync(`${dir}/tokenizer.json.tmp`, `${dir}/tokenizer.json`);
const f = (x) => x.toFixed(2);
console.log(`reference (${ref.encoder}, node ${ref.node}): cold ${f(ref.cold_mb_per_s)} MB/s, ` +
            `warm ${f(ref.warm_mb_per_s)} MB/s`);
console.log(`ratio ours/reference: cold ${f(result.ratio_cold)}x, warm ${f(result.ratio_warm)}x; ` +
            `ids ${match ? 'match' : 'DIFFER'} (${ours.tokens} tokens); ${dir}/tokenizer.json`);
if (!match) {
  console.error(`ids differ: ours ${ours.tokens} tokens hash ${ours.ids_hash}, reference ` +
                `${ref.tokens} tokens hash ${ref.ids_hash}`);
  process.exit(1);
}
EOF
