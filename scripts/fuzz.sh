#!/usr/bin/env bash
# Run every libFuzzer target of build/fuzz for a bounded time (make fuzz).
# usage: scripts/fuzz.sh SECONDS [NAME...]
# Each target starts from its committed seed corpus (fuzz/corpus/NAME) and
# keeps what it finds in fuzz/corpus-work/NAME (not committed). A crash is
# written to fuzz/corpus-work/NAME-crashes/ and ends the run with status 1:
# fix it, then add the input to fuzz/corpus/NAME as a regression seed.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
shift || true
names=("$@")
if ((${#names[@]} == 0)); then
  for f in fuzz/fuzz_*.c; do n=${f#fuzz/fuzz_}; names+=("${n%.c}"); done
fi
status=0
for name in "${names[@]}"; do
  bin=build/fuzz/fuzz/fuzz_$name
  work=fuzz/corpus-work/$name
  crashes=fuzz/corpus-work/$name-crashes
  mkdir -p "$work" "$crashes"
  log=$(mktemp)
  echo "== fuzz_$name for ${secs}s"
  if ! ASAN_OPTIONS=detect_leaks=1 "$bin" -max_total_time="$secs" -print_final_stats=1 \
      -artifact_prefix="$crashes/" -timeout=10 -rss_limit_mb=2048 \
      "$work" "fuzz/corpus/$name" >"$log" 2>&1; then
    status=1
    tail -40 "$log"
  fi
  runs=$(awk '/stat::number_of_executed_units/ {print $2}' "$log")
  rate=$(awk '/stat::average_exec_per_sec/ {print $2}' "$log")
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | awk '{print $2}')
  ft=$(grep -oE 'ft: [0-9]+' "$log" | tail -1 | awk '{print $2}')
  echo "fuzz_$name: ${runs:-?} executions, ${rate:-?}/s, coverage ${cov:-?} edges (${ft:-?} features), corpus $(ls "$work" | wc -l) inputs"
  rm -f "$log"
done
exit $status
