#!/bin/bash
# bench/autostart.sh — how much time does the autostart scheduler add to the VMs' own start time?
#
# Starts its own private libvirtd and hvd (like bench/list.sh), defines BENCH_VMS (50) VMs
# without disks (64 MiB, no OS: gate `running`), puts them in BENCH_GROUPS (5) order groups of
# equal size with up 0, host settings boot_delay 0, max_parallel BENCH_PARALLEL (10), then per
# round (BENCH_ROUNDS, 2), in the same run:
#   baseline   the same VMs started directly with `virsh start`, group after group, each group
#              as background jobs BENCH_PARALLEL at a time (`wait` between groups)
#   autostart  `hvctl autostart run -o json` (the task's result gives per-VM start call times)
# with every VM powered off (virsh destroy) before each measurement. Prints total wall time,
# per-VM start call time (mean/median/max), and the scheduler overhead = autostart total -
# baseline total; goal (issue): overhead <= 1 s. Prints whether it is met; never fails because
# of a number. Everything it started is undefined/stopped by PID at exit.
#
# Environment: BENCH_VMS (50), BENCH_GROUPS (5), BENCH_PARALLEL (10), BENCH_ROUNDS (2), plus
# those of bench/lib.sh (HVD_BIN, HVCTL_BIN, BENCH_KEEP, HVD_ENV, HVD_ARGS).
set -euo pipefail
BENCH_VMS=${BENCH_VMS:-50}
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

GROUPS_N=${BENCH_GROUPS:-5}
PARALLEL=${BENCH_PARALLEL:-10}
ROUNDS=${BENCH_ROUNDS:-2}
BL=$BENCH_DIR/benchlib.py

bench_setup autostart
start_libvirtd
start_hvd
define_vms "$BENCH_VMS"

hvctl() { "$HVCTL_BIN" --socket "$HVD_SOCK" "$@"; }
per_group=$(((BENCH_VMS + GROUPS_N - 1) / GROUPS_N))
group_of() { echo $((($1 - 1) / per_group + 1)); }

say "autostart settings: $GROUPS_N order groups of $per_group, up 0, gate running; boot_delay 0, max_parallel $PARALLEL"
hvctl autostart host --boot-delay 0 --max-parallel "$PARALLEL" --retries 0 >/dev/null || die "autostart host failed"
for ((i = 1; i <= BENCH_VMS; i++)); do
  hvctl vm autostart "$(vm_name "$i")" --enable --order "$(group_of "$i")" --up 0 --wait-for running >/dev/null ||
    die "vm autostart $(vm_name "$i") failed"
done

# power_off_all: destroys every running bench VM (one virsh session) and waits until none runs.
power_off_all() {
  local names i
  names=$(virsh -q -c "$URI" list --state-running --name 2>/dev/null | grep '^bench-' || true)
  [ -n "$names" ] && virsh -q -c "$URI" "$(echo "$names" | sed 's/.*/destroy &/' | paste -sd ';')" >/dev/null 2>&1
  for ((i = 0; i < 100; i++)); do
    virsh -q -c "$URI" list --state-running --name 2>/dev/null | grep -q '^bench-' || break
    sleep 0.1
  done
  # hvd's cache follows libvirt's events; give it a moment so `running` checks see "stopped".
  sleep 1
}

# baseline OUT: virsh start, group by group, PARALLEL background jobs at a time; OUT gets
# "total_ns" then "name ns" per VM.
baseline() {
  local out=$1 g i k t0 t1 pids
  : >"$out.vms"
  t0=$(date +%s%N)
  for ((g = 1; g <= GROUPS_N; g++)); do
    k=0
    pids=()
    for ((i = 1; i <= BENCH_VMS; i++)); do
      [ "$(group_of "$i")" = "$g" ] || continue
      (
        s=$(date +%s%N)
        virsh -q -c "$URI" start "$(vm_name "$i")" >/dev/null 2>>"$T/virsh.err" || echo "FAILED $(vm_name "$i")" >>"$out.vms"
        e=$(date +%s%N)
        echo "$(vm_name "$i") $((e - s))" >>"$out.vms"
      ) &
      pids+=($!)
      k=$((k + 1))
      if [ "$k" -ge "$PARALLEL" ]; then
        wait "${pids[@]}"
        pids=()
        k=0
      fi
    done
    [ ${#pids[@]} -gt 0 ] && wait "${pids[@]}"
  done
  t1=$(date +%s%N)
  echo "$((t1 - t0))" >"$out.total"
}

for ((r = 1; r <= ROUNDS; r++)); do
  power_off_all
  say "round $r: baseline (virsh start)"
  baseline "$T/baseline.$r"
  grep -q '^FAILED' "$T/baseline.$r.vms" && { cat "$T/virsh.err" >&2; die "virsh start failed"; }
  power_off_all
  say "round $r: hvctl autostart run"
  t0=$(date +%s%N)
  rc=0
  hvctl autostart run -o json >"$T/autostart.$r.json" 2>"$T/autostart.$r.err" || rc=$?
  t1=$(date +%s%N)
  [ "$rc" = 0 ] || { cat "$T/autostart.$r.err" >&2; die "hvctl autostart run exited $rc"; }
  echo "$((t1 - t0))" >"$T/autostart.$r.wall"
done
power_off_all

echo
echo "== bench-autostart: $BENCH_VMS VMs (no disk, 64 MiB, TCG) in $GROUPS_N order groups of $per_group, max_parallel $PARALLEL, up 0, boot_delay 0, gate running; $ROUNDS rounds"
echo "$(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%Y-%m-%dT%H:%MZ)"
echo "hvd $("$HVD_BIN" --version 2>/dev/null | awk '{print $2}'), $(virsh -c "$URI" version 2>/dev/null | grep -i 'running hypervisor\|using library' | sed 's/^ *//' | paste -sd ';' | sed 's/;/, /g')"
python3 "$BL" autostart-report "$T" --rounds "$ROUNDS" --goal 1.0
if [ "${BENCH_KEEP:-0}" = 1 ]; then echo "results: $T/autostart.*.json, $T/baseline.*"; fi
