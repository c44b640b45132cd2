#!/bin/sh
# Runs every libFuzzer target in BUILD_DIR for SECONDS each, starting from the seeds in
# tests/fuzz/seeds/<target>/. Crashing inputs land in BUILD_DIR/fuzz-artifacts/<target>/; copy
# them to tests/data/fuzz/<target>/ once fixed so the unit tests replay them.
# Prints one JSON object per target: {"target", "seconds", "runs", "crashes"}.
set -eu
BUILD=${1:-build-fuzz}
SECONDS_EACH=${2:-60}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
status=0
for bin in "$BUILD"/tests/fuzz/fuzz_*; do
  [ -x "$bin" ] || continue
  name=$(basename "$bin")
  corpus="$BUILD/fuzz-corpus/$name"
  artifacts="$BUILD/fuzz-artifacts/$name"
  mkdir -p "$corpus" "$artifacts"
  seeds="$ROOT/tests/fuzz/seeds/$name"
  regressions="$ROOT/tests/data/fuzz/$name"
  [ -d "$seeds" ] || seeds=""
  [ -d "$regressions" ] || regressions=""
  log="$BUILD/fuzz-$name.log"
  echo "fuzz: $name for ${SECONDS_EACH}s (log $log)" >&2
  set +e
  # Full malloc stacks (libhdf5 has no frame pointers) so the suppressions can match.
  ASAN_OPTIONS="fast_unwind_on_malloc=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}" \
  LSAN_OPTIONS="suppressions=$ROOT/tests/fuzz/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}" \
  "$bin" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$artifacts/" "$corpus" $seeds $regressions > "$log" 2>&1
  rc=$?
  set -e
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
  crashes=$(find "$artifacts" -type f | wc -l)
  printf '{"target": "%s", "seconds": %s, "runs": %s, "crashes": %s, "exit": %s}\n' \
    "$name" "$SECONDS_EACH" "${runs:-0}" "$crashes" "$rc"
  if [ "$rc" -ne 0 ] || [ "$crashes" -ne 0 ]; then status=1; fi
done
exit $status
