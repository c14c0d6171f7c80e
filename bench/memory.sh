#!/bin/bash
# bench/memory.sh — how much memory does hvd hold?
#
# Starts its own private libvirtd and hvd (like bench/list.sh) and reads /proc/PID/smaps_rollup
# (RSS, PSS, Private_Dirty) of hvd:
#   1. idle right after start, 0 VMs           (goals: RSS <= libvirt_floor + 4 MiB; Private_Dirty <= 4 MiB)
#   2. with BENCH_VMS (200) VMs defined
#   3. after BENCH_LIST_CALLS (1000) `hvctl vm list -o json` calls
# and, for comparison in the same run, libvirtd's figures and those of libvirt_floor (a minimal
# program that only links libvirt, connects, registers a lifecycle callback and idles: the
# memory any libvirt client pays, see bench/libvirt_floor.cpp).
# It also prints where hvd's RSS comes from (smaps grouped by file; heap, thread stacks and malloc
# arenas separately; thread count). Prints the goal status; never fails because of a number.
#
# Environment: BENCH_LIST_CALLS (1000), BENCH_SETTLE (2, seconds to wait before each reading),
# BENCH_TOP (20, lines of the breakdowns), FLOOR_BIN (built libvirt_floor; compiled here with c++
# when unset), plus those of bench/lib.sh (HVD_BIN, HVCTL_BIN, BENCH_VMS, BENCH_KEEP, HVD_ENV,
# HVD_ARGS — e.g. HVD_ENV=MALLOC_ARENA_MAX=2 to try an allocator setting).
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

CALLS=${BENCH_LIST_CALLS:-1000}
SETTLE=${BENCH_SETTLE:-2}
TOP=${BENCH_TOP:-20}
GOAL_KB=$((15 * 1024))
FLOOR_PID=

bench_setup memory
MEMJSON=$T/memory.json
BL=$BENCH_DIR/benchlib.py

# The floor process is ours too: stop it before the common cleanup runs.
memory_cleanup() {
  local rc=$?
  if [ -n "$FLOOR_PID" ]; then stop_pid "$FLOOR_PID" 5; fi
  bench_cleanup "$rc"
}
trap memory_cleanup EXIT

mem() { python3 "$BL" mem "$1" --label "$2" --json "$MEMJSON"; }

start_libvirtd
start_hvd
sleep "$SETTLE"
{
  echo "== bench-memory: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "hvd: $HVD_BIN${HVD_ENV:+, env $HVD_ENV}${HVD_ARGS:+, args $HVD_ARGS}"
  echo
  mem "$HVD_PID" "hvd idle, 0 VMs"
  mem "$LIBVIRTD_PID" "libvirtd, 0 VMs"
} >"$T/report.1"
cat "$T/report.1"
python3 "$BL" breakdown "$HVD_PID" --top "$TOP" >"$T/breakdown.idle"
idle_rss=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[0]["rss_kb"])' "$MEMJSON")

define_vms "$BENCH_VMS"
sleep "$SETTLE"
mem "$HVD_PID" "hvd, $BENCH_VMS VMs"

say "$CALLS x hvctl vm list -o json"
t0=$(date +%s%N)
for ((i = 0; i < CALLS; i++)); do
  "$HVCTL_BIN" --socket "$HVD_SOCK" vm list -o json >/dev/null || die "hvctl vm list failed"
done
t1=$(date +%s%N)
sleep "$SETTLE"
mem "$HVD_PID" "hvd, after $CALLS vm list"
mem "$LIBVIRTD_PID" "libvirtd, $BENCH_VMS VMs"
python3 "$BL" breakdown "$HVD_PID" --top "$TOP" >"$T/breakdown.after"

# The libvirt client floor.
if [ -z "${FLOOR_BIN:-}" ] && command -v c++ >/dev/null && pkg-config --exists libvirt 2>/dev/null; then
  say "compiling libvirt_floor"
  # shellcheck disable=SC2046
  c++ -O2 -std=c++17 -o "$T/libvirt_floor" "$BENCH_DIR/libvirt_floor.cpp" $(pkg-config --cflags --libs libvirt) \
    -pthread 2>"$T/floor.cc.log" && FLOOR_BIN=$T/libvirt_floor
fi
if [ -n "${FLOOR_BIN:-}" ] && [ -x "$FLOOR_BIN" ]; then
  "$FLOOR_BIN" "$URI" >"$T/floor.out" 2>&1 &
  FLOOR_PID=$!
  for ((i = 0; i < 100; i++)); do
    grep -q '^ready' "$T/floor.out" 2>/dev/null && break
    sleep 0.1
  done
  sleep "$SETTLE"
  mem "$FLOOR_PID" "libvirt_floor, $BENCH_VMS VMs"
  stop_pid "$FLOOR_PID" 5
  FLOOR_PID=
else
  echo "(libvirt_floor not available: set FLOOR_BIN or install c++ and libvirt-dev)"
fi

echo
awk -v ns=$((t1 - t0)) -v n="$CALLS" 'BEGIN { printf "%d vm list calls took %.1f s (%.1f ms each, sequential)\n", n, ns / 1e9, ns / n / 1e6 }'
echo
echo "-- where hvd's RSS comes from, idle (kB; Shared_Clean = library pages also mapped by others):"
cat "$T/breakdown.idle"
echo
echo "-- where hvd's RSS comes from, $BENCH_VMS VMs after $CALLS vm list:"
cat "$T/breakdown.after"
echo
# The goal is stated against the floor measured in this run: what any libvirt client pays is
# not hvd's to save (docs/benchmarks.md "bench-memory").
python3 - "$MEMJSON" "$GOAL_KB" <<'PY'
import json, sys
rows = json.load(open(sys.argv[1]))
goal_kb = int(sys.argv[2])
def first(prefix):
    return next((r for r in rows if r["label"].startswith(prefix)), None)
idle, floor = first("hvd idle"), first("libvirt_floor")
mib = lambda kb: kb / 1024
print(f"hvd idle: RSS {mib(idle['rss_kb']):.2f} MiB, private (Private_Dirty) {mib(idle['private_dirty_kb']):.2f} MiB")
pd_ok = idle["private_dirty_kb"] <= 4 * 1024
print(f"goal: hvd's private memory idle <= 4 MiB: {'MET' if pd_ok else 'NOT MET'}")
if floor:
    above = idle["rss_kb"] - floor["rss_kb"]
    print(f"goal: hvd idle RSS - libvirt_floor RSS ({mib(floor['rss_kb']):.2f} MiB) <= 4 MiB: "
          f"{mib(above):.2f} MiB: {'MET' if above <= 4 * 1024 else 'NOT MET'}")
else:
    print("goal: RSS above the libvirt floor: not measured (no libvirt_floor)")
print(f"(for reference, the old absolute goal idle RSS <= {goal_kb // 1024} MiB: "
      f"{'MET' if idle['rss_kb'] <= goal_kb else 'NOT MET'}; below the floor any libvirt client has)")
PY
if [ "${BENCH_KEEP:-0}" = 1 ]; then echo "readings as JSON: $MEMJSON"; fi
