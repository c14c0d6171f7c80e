#!/bin/bash
# bench/list.sh — how fast is `hvctl vm list -o json` compared with `virsh list --all`?
#
# Starts its own private libvirtd (scripts/private-libvirtd.sh, own mount + network namespace)
# and its own hvd (temporary socket and state dir, --accel tcg), defines BENCH_VMS (200) VMs
# without disks through POST /v1/vms, then times in the same run, with hyperfine (or a python
# loop when hyperfine is missing):
#   hvctl vm list -o json           what the goal is about
#   virsh list --all                baseline: one ListAllDomains + a state call per domain
#   virsh list --all --name         lighter baseline: names only
#   hvctl --help                    floor: hvctl's process start-up, no connection
#   virsh uri                       floor: virsh's start-up + connecting to libvirtd
# then hvd's answer alone (GET /v1/vms from one python process, no process start-up),
# and prints mean times and the ratio hvctl / virsh. Goal (issue): hvctl <= 0.5 x virsh.
# Prints whether the goal is met; never fails because of a number.
# Everything it started is undefined/stopped by PID at exit.
#
# Environment: BENCH_RUNS (20), BENCH_WARMUP (3), BENCH_NO_HYPERFINE=1 (use the python loop),
# plus the ones of bench/lib.sh (HVD_BIN, HVCTL_BIN, BENCH_VMS, BENCH_KEEP, HVD_ENV, HVD_ARGS).
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

RUNS=${BENCH_RUNS:-20}
WARMUP=${BENCH_WARMUP:-3}

bench_setup list
start_libvirtd
start_hvd
define_vms "$BENCH_VMS"

n_hv=$("$HVCTL_BIN" --socket "$HVD_SOCK" vm list -o json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
n_virsh=$(virsh -q -c "$URI" list --all | grep -c . || true)
say "hvctl lists $n_hv VMs, virsh lists $n_virsh domains"
[ "$n_hv" -eq "$BENCH_VMS" ] || die "hvctl lists $n_hv VMs, expected $BENCH_VMS"

names=("hvctl vm list -o json" "virsh list --all" "virsh list --all --name" "hvctl --help (start-up)"
  "virsh uri (start-up+connect)")
cmds=(
  "$HVCTL_BIN --socket $HVD_SOCK vm list -o json"
  "virsh -c $URI list --all"
  "virsh -c $URI list --all --name"
  "$HVCTL_BIN --help"
  "virsh -c $URI uri"
)
out=$T/list.json
if command -v hyperfine >/dev/null && [ "${BENCH_NO_HYPERFINE:-0}" != 1 ]; then
  hargs=()
  for n in "${names[@]}"; do hargs+=(-n "$n"); done
  say "timing with hyperfine: warmup $WARMUP, $RUNS runs each"
  hyperfine -N --style basic --warmup "$WARMUP" --runs "$RUNS" --export-json "$out" \
    "${hargs[@]}" "${cmds[@]}" >"$T/hyperfine.txt" 2>&1 || {
    cat "$T/hyperfine.txt" >&2
    die "hyperfine failed"
  }
  tool="hyperfine $(hyperfine --version | awk '{print $2}') (-N: no shell)"
else
  pargs=()
  for n in "${names[@]}"; do pargs+=(-n "$n"); done
  say "timing with the python loop: warmup $WARMUP, $RUNS runs each"
  python3 "$BENCH_DIR/benchlib.py" timeit --warmup "$WARMUP" --runs "$RUNS" --export-json "$out" \
    "${pargs[@]}" -- "${cmds[@]}"
  tool="python3 loop (subprocess, no shell)"
fi

echo
echo "== bench-list: $BENCH_VMS VMs (defined, stopped), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%Y-%m-%dT%H:%MZ)"
echo "timing: $tool, warmup $WARMUP, $RUNS runs per command"
echo "hvd $("$HVD_BIN" --version 2>/dev/null | awk '{print $2}'), $(virsh -c "$URI" version 2>/dev/null | grep -i 'running hypervisor\|using library' | sed 's/^ *//' | paste -sd ';' | sed 's/;/, /g')"
python3 "$BENCH_DIR/benchlib.py" list-report "$out" --base "virsh list --all" --cmp "hvctl vm list -o json" \
  --also "virsh list --all --name" --goal 0.5
python3 "$BENCH_DIR/benchlib.py" http-latency "$HVD_SOCK" /v1/vms --n 200
if [ "${BENCH_KEEP:-0}" = 1 ]; then echo "hyperfine/loop JSON: $out"; fi
