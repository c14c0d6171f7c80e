#!/bin/bash
# Long fuzzing runs of every libFuzzer target (docs/fuzzing.md, results in docs/benchmarks.md):
#   bench/fuzz.sh [SANITIZER_BUILD_DIR]        default: build/sanitize (scripts/test.sh builds it)
# Environment: FUZZ_RUNS executions per target (default 1000000), FUZZ_MAX_SECONDS cap per
# target (default 1200), FUZZ_TARGETS (default: every tests/fuzz/*_fuzz.cpp), FUZZ_OUT (work
# dir, default a temp dir; kept, with each target's log, grown corpus and any crash file).
# One process per target, in-process (no -jobs/-workers, which would log to ./fuzz-N.log), each on
# a copy of its seed corpus. Prints one table
# row per target: executions, executions per second, crashes (crash/leak/timeout/oom files),
# seeds and final corpus size (inputs with new coverage added during the run).
set -uo pipefail
cd "$(dirname "$0")/.."

dir=${1:-build/sanitize}
runs=${FUZZ_RUNS:-1000000}
cap=${FUZZ_MAX_SECONDS:-1200}
out=${FUZZ_OUT:-$(mktemp -d /tmp/hvfuzz-bench.XXXXXX)}
targets=${FUZZ_TARGETS:-$(for f in tests/fuzz/*_fuzz.cpp; do basename "$f" _fuzz.cpp; done)}
mkdir -p "$out"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:halt_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:abort_on_error=1:print_stacktrace=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/tests/fuzz/lsan.supp}

printf '%-16s %12s %10s %8s %7s %8s %8s\n' target executions exec/s crashes seeds corpus seconds
total_crashes=0
for t in $targets; do
    bin="$dir/tests/fuzz/${t}_fuzz"
    if [ ! -x "$bin" ]; then
        echo "bench/fuzz.sh: $bin is missing (build $dir with -DHV_SANITIZE=ON)" >&2
        exit 1
    fi
    mkdir -p "$out/$t/corpus"
    cp -r "tests/fuzz/corpus/$t/." "$out/$t/corpus/"
    seeds=$(find "tests/fuzz/corpus/$t" -type f | wc -l)
    start=$(date +%s.%N)
    "$bin" -runs="$runs" -max_total_time="$cap" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$out/$t/" "$out/$t/corpus" >"$out/$t/log" 2>&1
    rc=$?
    end=$(date +%s.%N)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/$t/log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$out/$t/log" | tail -1)
    crashes=$(find "$out/$t" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) | wc -l)
    if [ "$rc" -ne 0 ] && [ "$crashes" -eq 0 ]; then crashes=1; fi
    corpus=$(find "$out/$t/corpus" -type f | wc -l)
    total_crashes=$((total_crashes + crashes))
    printf '%-16s %12s %10s %8s %7s %8s %8.0f\n' "$t" "${execs:-?}" "${rate:-?}" "$crashes" "$seeds" "$corpus" \
        "$(awk -v a="$start" -v b="$end" 'BEGIN { print b - a }')"
done
echo "work dir: $out (logs, grown corpora, crash files)"
[ "$total_crashes" -eq 0 ]
