#!/usr/bin/env bash
# Runs every libFuzzer target of BUILD_DIR for SECONDS each, on a working
# corpus in BUILD_DIR/corpus/<name> seeded from tests/fuzz/corpus/<name>
# (the seeds are read, never written). A crash, a leak, a sanitizer report
# or an input slower than 10 s fails the run and leaves the input in
# BUILD_DIR/artifacts/ (replay: BUILD_DIR/tests/fuzz/fuzz_<name> FILE).
# Usage: scripts/fuzz.sh BUILD_DIR SECONDS [name...]
set -euo pipefail
build=$1
seconds=$2
shift 2
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  names=(http frame inflate utf8 router)
fi
mkdir -p "$build/artifacts"
for name in "${names[@]}"; do
  corpus="$build/corpus/$name"
  mkdir -p "$corpus"
  log="$build/fuzz_$name.log"
  echo "fuzz_$name: ${seconds}s"
  if ! UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    "$build/tests/fuzz/fuzz_$name" -max_total_time="$seconds" -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$build/artifacts/$name-" \
    "$corpus" "tests/fuzz/corpus/$name" >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    echo "fuzz_$name failed; input kept in $build/artifacts/" >&2
    exit 1
  fi
  grep -E '^stat::(number_of_executed_units|new_units_added):' "$log" |
    sed "s/^/  /"
done
