#!/bin/bash
# bench/provision.sh — how fast are hv's provisioning modes, against the disk's own limit?
#
# In one run, on the same filesystem (the pool's), for BENCH_SIZE (default 4G):
#   baseline  dd if=/dev/zero bs=4M oflag=direct into a new file (the sequential write ceiling
#             for eager zeroing) and into a fallocated file (overwrite of unwritten extents)
#   hv        hvctl storage volume create … --provision thin | lazy-zeroed | eager-zeroed
#             (raw and qcow2), wall time of the whole command (task included)
#   scaling   thin and lazy-zeroed creates of 4G and of BENCH_BIG (1T; lazy: the largest size
#             that fits the pool, up to BENCH_BIG): time in hvd (task started -> finished), which
#             must not grow with the size (goal <= 50 ms)
#   others    qemu-img create -o preallocation=full (what QEMU's own eager mode costs) and
#             libvirt's vol-wipe --algorithm zero on a dir pool (ESXi-like eager zeroing in virsh)
# Prints seconds and MiB/s, and eager-zeroed throughput as a ratio of dd's. Never fails on a number.
# Environment: BENCH_SIZE (4G), BENCH_RUNS (2; the best run counts), plus bench/lib.sh's.
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

SIZE=${BENCH_SIZE:-4G}
RUNS=${BENCH_RUNS:-2}
bench_setup provision
start_libvirtd
start_hvd
POOL=$HVD_STATE/images
IMG=$POOL/images
mkdir -p "$T/base"
BYTES=$(numfmt --from=iec "$SIZE")
MIB=$((BYTES / 1048576))

# time_best (bench/lib.sh) runs `cleanup_between` before each run.
rate() { echo "scale=0; $MIB / $1" | bc -l; }
row() { printf '%-44s %8.2f s %8s MiB/s\n' "$1" "$2" "$(rate "$2")"; }

say "size $SIZE, best of $RUNS runs, pool on $(df --output=source,fstype "$POOL" | tail -1)"
echo
printf '%-44s %10s %14s\n' "operation" "time" "throughput"

cleanup_between() { rm -f "$T/base/dd.img"; }
time_best cleanup_between dd if=/dev/zero of="$T/base/dd.img" bs=4M count=$((MIB / 4)) oflag=direct status=none
DD=$best
row "dd oflag=direct, new file (baseline)" "$DD"
cleanup_between() { rm -f "$T/base/dd.img"; fallocate -l "$SIZE" "$T/base/dd.img"; }
time_best cleanup_between dd if=/dev/zero of="$T/base/dd.img" bs=4M count=$((MIB / 4)) oflag=direct conv=notrunc status=none
DDF=$best
row "dd oflag=direct over fallocated file" "$DDF"
rm -f "$T/base/dd.img"

declare -A HV
for fmt in raw qcow2; do
  for mode in thin lazy-zeroed eager-zeroed; do
    cleanup_between() { "$HVCTL_BIN" --socket "$HVD_SOCK" storage volume delete local bench-vol >/dev/null 2>&1 || true; }
    time_best cleanup_between "$HVCTL_BIN" --socket "$HVD_SOCK" storage volume create local bench-vol --size "$SIZE" \
      --format "$fmt" --provision "$mode"
    HV[$fmt-$mode]=$best
    row "hvctl volume create $fmt $mode" "$best"
  done
done
cleanup_between

cleanup_between() { rm -f "$T/base/q.img"; }
time_best cleanup_between qemu-img create -q -f raw -o preallocation=full "$T/base/q.img" "$SIZE"
QF=$best
row "qemu-img create raw preallocation=full" "$QF"
time_best cleanup_between qemu-img create -q -f qcow2 -o preallocation=full "$T/base/q.img" "$SIZE"
row "qemu-img create qcow2 preallocation=full" "$best"
rm -f "$T/base/q.img"

# libvirt's own zeroing: a dir pool volume wiped with zeros.
virsh -q -c "$URI" pool-define-as bench-wipe dir --target "$T/base" >/dev/null
virsh -q -c "$URI" pool-start bench-wipe >/dev/null
cleanup_between() {
  virsh -q -c "$URI" vol-delete --pool bench-wipe wipe.img >/dev/null 2>&1 || true
  virsh -q -c "$URI" vol-create-as bench-wipe wipe.img "$SIZE" --format raw --allocation "$SIZE" >/dev/null
}
time_best cleanup_between virsh -q -c "$URI" vol-wipe --pool bench-wipe wipe.img --algorithm zero
row "virsh vol-wipe --algorithm zero (after create)" "$best"
virsh -q -c "$URI" vol-delete --pool bench-wipe wipe.img >/dev/null 2>&1 || true
virsh -q -c "$URI" pool-destroy bench-wipe >/dev/null 2>&1 || true
virsh -q -c "$URI" pool-undefine bench-wipe >/dev/null 2>&1 || true

# Thin and lazy-zeroed: time inside hvd must not depend on the size.
BIG=${BENCH_BIG:-1T}
task_ms() { # task_ms POOLARGS... -> prints the task's started->finished milliseconds
  local id
  id=$("$HVCTL_BIN" --socket "$HVD_SOCK" -o json storage volume create local "$@" --async | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  "$HVCTL_BIN" --socket "$HVD_SOCK" task wait "$id" >/dev/null
  "$HVCTL_BIN" --socket "$HVD_SOCK" -o json task show "$id" | python3 -c 'import json,sys; t=json.load(sys.stdin); print(t["finished_at"]-t["started_at"])'
}
free_mib=$(($(df --output=avail -B1M "$POOL" | tail -1) - 2048))
big_mib=$(numfmt --from=iec "$BIG")
big_mib=$((big_mib / 1048576))
echo
printf '%-44s %10s\n' "create, time inside hvd" "ms"
for fmt in raw qcow2; do
  for mode in thin lazy-zeroed; do
    for size_mib in 4096 "$big_mib"; do
      s=$size_mib
      if [ "$mode" = lazy-zeroed ] && [ "$s" -gt "$free_mib" ]; then s=$free_mib; fi
      ms=$(task_ms "scale-$fmt-$mode" --size "${s}M" --format "$fmt" --provision "$mode")
      printf '%-44s %10s\n' "$fmt $mode $(numfmt --to=iec $((s * 1048576)))" "$ms"
      "$HVCTL_BIN" --socket "$HVD_SOCK" storage volume delete local "scale-$fmt-$mode" >/dev/null
    done
  done
done

echo
for fmt in raw qcow2; do
  r=$(echo "scale=2; $DD / ${HV[$fmt-eager-zeroed]}" | bc -l)
  echo "eager-zeroed $fmt throughput / dd new-file throughput: $r"
done
r=$(echo "scale=2; $QF / ${HV[raw-eager-zeroed]}" | bc -l)
echo "hv eager-zeroed raw speed-up over qemu-img preallocation=full: ${r}x"
