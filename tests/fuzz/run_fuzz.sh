#!/bin/bash
# ctest's fuzz/<name> tests (tests/fuzz/CMakeLists.txt, docs/fuzzing.md):
#   run_fuzz.sh FUZZ_BINARY CORPUS_DIR SECONDS
# replays every seed of CORPUS_DIR, then fuzzes for SECONDS on a copy of it (new inputs are
# dropped with the copy: the corpus in git changes only by hand). Exit 0: no crash, leak,
# timeout (>10 s per input), out-of-memory (>2 GiB) or sanitizer report; 1 otherwise, with
# the reproducer printed (hex) and kept in the work dir. Exit 77 (skipped) when the sanitizer
# build is missing, unless HV_REQUIRE_SANITIZE=1 (scripts/test.sh), which makes it a failure.
#   run_fuzz.sh --check SANITIZER_BUILD_DIR   only that check (ctest "sanitize: ..." test)
set -uo pipefail

missing() {
    local what=$1
    if [ "${HV_REQUIRE_SANITIZE:-0}" = 1 ]; then
        echo "FAILED: $what is missing, and HV_REQUIRE_SANITIZE=1 (scripts/test.sh builds it)"
        exit 1
    fi
    echo "SKIPPED: $what is missing: configure a sanitizer build with clang and libFuzzer"
    echo "  (apt-get install clang libclang-rt-14-dev libfuzzer-14-dev), e.g."
    echo "  cmake -G Ninja -B build/sanitize -DCMAKE_CXX_COMPILER=clang++ -DHV_SANITIZE=ON -DBUILD_TESTING=ON"
    echo "  ninja -C build/sanitize   (scripts/test.sh does this; see docs/fuzzing.md)"
    exit 77
}

if [ "${1:-}" = --check ]; then
    dir=$2
    [ -f "$dir/hv_sanitize_tests.cmake" ] || missing "the sanitizer build $dir (its test lists)"
    for b in src/daemon/hvd src/cli/hvctl tests/hv_unit_tests tests/hv_integration_tests; do
        [ -x "$dir/$b" ] || missing "$dir/$b"
    done
    echo "sanitizer build $dir: hvd, hvctl and the test binaries are there"
    exit 0
fi

bin=$1 corpus=$2 seconds=$3
[ -x "$bin" ] || missing "the fuzz target $bin"
[ -d "$corpus" ] || { echo "FAILED: no corpus directory $corpus"; exit 1; }

work=$(mktemp -d /tmp/hvfuzz.XXXXXX)
mkdir "$work/corpus"
cp -r "$corpus"/. "$work/corpus/"
seeds=$(find "$work/corpus" -type f | wc -l)
echo "$(basename "$bin"): $seeds seeds from $corpus, then ${seconds} s of fuzzing (work dir $work)"

"$bin" -max_total_time="$seconds" -error_exitcode=1 -timeout_exitcode=1 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$work/" "$work/corpus" >"$work/log" 2>&1
rc=$?
# The summary lines (coverage, corpus, executions) and any report.
grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)|^stat::number_of_executed_units|^stat::new_units_added|ERROR:|runtime error:|SUMMARY:|Test unit written' "$work/log"
artifacts=$(find "$work" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' -o -name 'slow-unit-*' \) | sort)
if [ $rc -ne 0 ] || [ -n "$artifacts" ]; then
    echo "FAILED: $(basename "$bin") exit status $rc"
    tail -n 80 "$work/log"
    for a in $artifacts; do
        echo "---- reproducer $a ($(stat -c %s "$a") bytes), hex:"
        od -An -tx1 -v "$a" | head -n 40
    done
    echo "Reproduce: $bin $work/<artifact>; keep the fixed reproducer in $corpus/"
    exit 1
fi
rm -rf "$work"
exit 0
