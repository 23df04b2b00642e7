#!/usr/bin/env bash
# Soak (issue 8, docs/reliability.md): the CPU demo training — the tiny LLaMA on 4 MPI ranks with
# heterogeneous strategies chosen per step — killed again and again at random points (SIGKILL of
# one rank, or SIGTERM to mpirun, which checkpoints and stops) and resumed from its checkpoints,
# for at least SOAK_MINUTES. The resumed run's loss curve must equal an uninterrupted run's bit
# for bit, and every checkpoint left behind must load.
# Usage: scripts/soak.sh [build-dir]     Env: SOAK_MINUTES (30), SOAK_SEED (1), SOAK_RANKS (4)
# Outputs: out/soak/ (reference.jsonl, resumed.jsonl, runs.log, summary.txt)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${1:-build}
HYD="$PWD/$BUILD_DIR/bin/hydraulis"
OUT=out/soak
MINUTES=${SOAK_MINUTES:-30}
RANKS=${SOAK_RANKS:-4}
RANDOM=${SOAK_SEED:-1}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
rm -rf "$OUT" && mkdir -p "$OUT"

if [[ ! -f out/demo/web.idx ]]; then
  mkdir -p out/demo
  "$HYD" data prepare --input data/corpora/web.jsonl --vocab data/gpt2/vocab.json \
    --merges data/gpt2/merges.txt --output-prefix out/demo/web --append-eod --workers 2 >/dev/null
fi
STRATEGIES="[[(1, 1, 1), (1, 1, 1), (1, 1, 1), (1, 1, 1)], [(1, 2, 1), (1, 1, 2)], [(2, 1, 1), (1, 1, 2)]]"
train() {  # train <steps> <metrics> [more options]
  local steps=$1 metrics=$2
  shift 2
  mpirun -np "$RANKS" --oversubscribe "$HYD" train --model tiny --data out/demo/web --device cpu \
    --steps "$steps" --global-token-num 2048 --max-seq-len 512 --lr 3e-3 --warmup-steps 2 \
    --strategies "$STRATEGIES" --method 4 --seed 7 --metrics "$metrics" "$@"
}
mean_step_s() {
  node -e 'const l=require("fs").readFileSync(process.argv[1],"utf8").trim().split("\n").map(JSON.parse);
    const t=l.slice(1).map(x=>x.step_ms); console.log((t.reduce((a,b)=>a+b,0)/t.length/1000).toFixed(3));' "$1"
}

echo "== calibrate: 4 steps"
train 4 "$OUT/calibrate.jsonl" >"$OUT/calibrate.log" 2>&1
STEP_S=$(mean_step_s "$OUT/calibrate.jsonl")
# Half of the time for the uninterrupted reference, half (plus redone steps) for the soak.
STEPS=$(node -e "console.log(Math.max(20, Math.round($MINUTES * 60 / 2 / $STEP_S)))")
echo "   $STEP_S s/step: $STEPS steps per run"

echo "== reference: $STEPS steps uninterrupted"
train "$STEPS" "$OUT/reference.jsonl" >"$OUT/reference.log" 2>&1

echo "== soak: kill and resume until step $STEPS (checkpoint every 5 steps)"
CKPT="$OUT/checkpoints"
start=$(date +%s)
cycles=0 sigkills=0 sigterms=0 resume=()
: >"$OUT/runs.log"
while true; do
  train "$STEPS" "$OUT/resumed.jsonl" --checkpoint-dir "$CKPT" --checkpoint-every 5 \
    "${resume[@]}" >>"$OUT/runs.log" 2>&1 &
  job=$!
  # A random point: 2–40 s into the run (steps, checkpoint writes and start-up all get hit).
  delay=$((2 + RANDOM % 39))
  for ((i = 0; i < delay * 10; ++i)); do
    kill -0 "$job" 2>/dev/null || break
    sleep 0.1
  done
  if ! kill -0 "$job" 2>/dev/null; then
    wait "$job" && status=0 || status=$?
    if [[ $status -ne 0 ]]; then
      echo "soak: a run ended by itself with status $status (runs.log)"; tail -20 "$OUT/runs.log"; exit 1
    fi
    break  # finished all steps
  fi
  cycles=$((cycles + 1))
  launcher=$(pgrep -P "$job" -x mpirun || true)
  ranks=($( [[ -n "$launcher" ]] && pgrep -P "$launcher" -x hydraulis || true))
  if ((RANDOM % 2)) && ((${#ranks[@]} > 0)); then
    # SIGKILL one rank process: the others must stop by themselves (timeouts, mpirun).
    kill -9 "${ranks[RANDOM % ${#ranks[@]}]}" 2>/dev/null || true
    sigkills=$((sigkills + 1))
  elif [[ -n "$launcher" ]]; then
    kill -TERM "$launcher" 2>/dev/null || true  # mpirun forwards it: checkpoint, then stop
    sigterms=$((sigterms + 1))
  fi
  # Each interrupted run must end by itself within 60 s.
  for ((i = 0; i < 600; ++i)); do kill -0 "$job" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$job" 2>/dev/null; then
    echo "soak: cycle $cycles: the run did not stop within 60 s of the fault"; exit 1
  fi
  wait "$job" 2>/dev/null || true
  last=$(grep -o 'step [0-9]*/[0-9]*' "$OUT/runs.log" | tail -1 || true)
  echo "   cycle $cycles: fault after ${delay}s (last step printed: ${last:-none})"
  [[ -f "$CKPT/latest" ]] && resume=(--resume)
done
elapsed=$(($(date +%s) - start))

echo "== compare the loss curves"
node -e '
  const fs = require("fs");
  const read = f => fs.readFileSync(f, "utf8").trim().split("\n").map(JSON.parse);
  const ref = read(process.argv[1]), got = read(process.argv[2]);
  if (ref.length !== got.length) { console.error(`soak: ${got.length} steps vs ${ref.length}`); process.exit(1); }
  for (let i = 0; i < ref.length; ++i) {
    if (got[i].step !== ref[i].step || got[i].loss !== ref[i].loss || got[i].strategy !== ref[i].strategy) {
      console.error(`soak: step ${ref[i].step}: loss ${got[i].loss} (strategy ${got[i].strategy}) vs ${ref[i].loss} (strategy ${ref[i].strategy})`);
      process.exit(1);
    }
  }
  console.log(`   ${ref.length} losses equal bit for bit: ${ref[0].loss.toFixed(4)} -> ${ref[ref.length - 1].loss.toFixed(4)}`);
' "$OUT/reference.jsonl" "$OUT/resumed.jsonl"
# Every checkpoint left behind loads (export reads and verifies every tensor checksum).
for d in "$CKPT"/step_*; do
  [[ -d "$d" ]] || continue
  "$HYD" export --checkpoint "$d" --out "$OUT/export_check" --dtype f32 --force >/dev/null
done
summary="soak: $STEPS steps, $cycles interruptions ($sigkills SIGKILL of a rank, $sigterms SIGTERM) in ${elapsed}s of soak plus the reference; losses equal"
echo "$summary" | tee "$OUT/summary.txt"
