#!/usr/bin/env bash
# Runs every fuzz target for FUZZ_SECONDS each (one at a time), starting from the seed corpora of
# fuzz/make_seeds.js plus the inputs earlier runs found; fails when any target finds a crash.
# Usage: fuzz/run.sh <fuzz build dir> <hydraulis binary> [target ...]   (from the repository root)
# Writes <fuzz build dir>/fuzz/{seeds,corpus,artifacts,logs}/ and fuzz/summary.txt
# (executions per target, the counts docs/reliability.md reports).
set -uo pipefail
FZ_DIR=$1
HYD=$2
shift 2
SECONDS_PER_TARGET=${FUZZ_SECONDS:-60}
TARGETS=("$@")
if ((${#TARGETS[@]} == 0)); then
  TARGETS=(corpus_reader gpt2_files tokenizer indexed_dataset scheme_space strategy_list batches
           plan_jsonl checkpoint profile)
fi
ROOT=$FZ_DIR/fuzz
rm -rf "$ROOT/seeds"
mkdir -p "$ROOT/corpus" "$ROOT/artifacts" "$ROOT/logs"
node fuzz/make_seeds.js "$HYD" "$ROOT/seeds" || exit 1

summary=$ROOT/summary.txt
printf '%-16s %8s %12s %10s %8s %s\n' target seconds executions exec/s corpus result > "$summary"
failed=0
for target in "${TARGETS[@]}"; do
  bin=$FZ_DIR/bin/fuzz_$target
  mkdir -p "$ROOT/corpus/$target" "$ROOT/seeds/$target"
  log=$ROOT/logs/$target.log
  dict=()
  case $target in
    indexed_dataset) dict=(-dict=fuzz/indexed_dataset.dict) ;;
    scheme_space | batches | plan_jsonl | profile) dict=(-dict=fuzz/json.dict) ;;
  esac
  echo "fuzz: $target for ${SECONDS_PER_TARGET}s"
  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ASAN_OPTIONS=detect_leaks=1 \
    "$bin" -max_total_time="$SECONDS_PER_TARGET" -timeout=30 -print_final_stats=1 "${dict[@]}" \
    -artifact_prefix="$ROOT/artifacts/$target-" "$ROOT/corpus/$target" "$ROOT/seeds/$target" \
    > "$log" 2>&1
  rc=$?
  executions=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
  files=$(find "$ROOT/corpus/$target" -type f | wc -l)
  result=ok
  if ((rc != 0)); then
    result="CRASH (rc $rc): see $log and $ROOT/artifacts/$target-*"
    failed=1
    grep -m 3 -E "ERROR|runtime error|check failed|==ERROR" "$log" | sed 's/^/  /'
  fi
  printf '%-16s %8s %12s %10s %8s %s\n' "$target" "$SECONDS_PER_TARGET" "${executions:-?}" \
    "${rate:-?}" "$files" "$result" >> "$summary"
done
cat "$summary"
exit $failed
