#!/bin/bash
# bench/migrate.sh — live migration (issue: migration and maintenance) on scripts/cluster-rig.sh
# (2 hosts, a dir pool both see at one path, added --shared), real TCG test guests (128 MiB):
#   1. `hvctl vm migrate` (tunnelled through hvd's mutual TLS) vs `virsh migrate --live --p2p
#      --tunnelled` straight to the other libvirtd's socket (no TLS) of the same VM: total time
#      and downtime, median of ROUNDS there-and-back trips each;
#   2. hv's other path, QEMU's own stream through hvd's TLS (what --postcopy and
#      --with-local-disks use), the same VM;
#   3. --with-local-disks of a VM with a DISK_MB local disk (written full) vs `virsh migrate
#      --live --p2p --copy-storage-all` (NBD over plain TCP) of the same VM to a file made for it;
#   4. evacuating 8 guests (`host maintenance enter --wait`, 2 at once) vs migrating them one
#      after another.
# Ratios are printed, never asserted. Environment: HVD_BIN, HVCTL_BIN, GUEST_DIR (vmlinuz +
# initrd.gz; default build/testenv/guest), ROUNDS (3), DISK_MB (256), BENCH_KEEP=1.
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "$0")" && pwd -P)
REPO_DIR=$(cd "$BENCH_DIR/.." && pwd -P)
HVD_BIN=${HVD_BIN:-$REPO_DIR/build/src/daemon/hvd}
HVCTL_BIN=${HVCTL_BIN:-$REPO_DIR/build/src/cli/hvctl}
GUEST_DIR=${GUEST_DIR:-$REPO_DIR/build/testenv/guest}
ROUNDS=${ROUNDS:-3}
DISK_MB=${DISK_MB:-256}
RIG=$REPO_DIR/scripts/cluster-rig.sh
say() { echo "[$(date +%H:%M:%S)] $*" >&2; }
die() { say "ERROR: $*"; exit 1; }
ms() { date +%s%3N; }
[ -s "$GUEST_DIR/vmlinuz" ] || "$REPO_DIR/scripts/build-test-guest.sh" "$GUEST_DIR" >&2

T=$(mktemp -d /tmp/hv-bench-migrate.XXXXXX)
cleanup() {
  "$RIG" down "$T/rig" >/dev/null 2>&1 || true
  [ "${BENCH_KEEP:-0}" = 1 ] || rm -rf "$T"
}
trap cleanup EXIT

declare -A ADDR SOCK
while read -r n a s; do ADDR[$n]=$a; SOCK[$n]=$s; done < <(HVD=$HVD_BIN HVCTL=$HVCTL_BIN "$RIG" up 2 "$T/rig")
[ "${#SOCK[@]}" -eq 2 ] || die "the rig did not come up with 2 hosts"
hv() { local h=$1; shift; "$HVCTL_BIN" --socket "${SOCK[$h]}" "$@"; }
lv() { local h=$1; shift; virsh -q -c "qemu:///system?socket=$T/rig/$h/libvirt/run/libvirt-sock" "$@"; }
hv h1 cluster create bench --address "${ADDR[h1]}" >/dev/null
hv h2 cluster join "${ADDR[h1]}" --token "$(hv h1 cluster token)" >/dev/null
mkdir -p "$T/shared"
for h in h1 h2; do hv "$h" storage pool add shared --path "$T/shared" --shared >/dev/null; done

guest() { # guest NAME HOST [--disk ...]: created and started, booted
  local name=$1 h=$2; shift 2
  hv "$h" vm create "$name" --memory 128M --kernel "$GUEST_DIR/vmlinuz" --initrd "$GUEST_DIR/initrd.gz" \
    --cmdline "console=ttyS0 quiet panic=-1" "$@" >/dev/null
  hv "$h" vm start "$name" >/dev/null
}
field() { python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# --- 1 + 2: the same VM, hv (tunnelled), hv (QEMU's stream), virsh (tunnelled, no TLS) ------
guest m1 h1 --disk size=64M,pool=shared
sleep 5
: >"$T/hv.ms"; : >"$T/hv.down"; : >"$T/st.ms"; : >"$T/st.down"; : >"$T/vs.ms"; : >"$T/vs.down"
for _ in $(seq "$ROUNDS"); do
  for pair in "h1 h2" "h2 h1"; do
    set -- $pair
    out=$(hv "$1" vm migrate m1 --to "$2" -o json)
    field total_ms <<<"$out" >>"$T/hv.ms"; field downtime_ms <<<"$out" >>"$T/hv.down"
  done
done
say "hv tunnelled: $(tr '\n' ' ' <"$T/hv.ms") ms"
for _ in $(seq "$ROUNDS"); do
  for pair in "h1 h2" "h2 h1"; do
    set -- $pair
    out=$(hv "$1" vm migrate m1 --to "$2" --postcopy -o json)  # QEMU's stream; it converges first
    field total_ms <<<"$out" >>"$T/st.ms"; field downtime_ms <<<"$out" >>"$T/st.down"
  done
done
say "hv QEMU stream: $(tr '\n' ' ' <"$T/st.ms") ms"
for _ in $(seq "$ROUNDS"); do
  for pair in "h1 h2" "h2 h1"; do
    set -- $pair
    t=$(ms)
    lv "$1" migrate --live --p2p --tunnelled --persistent --undefinesource --unsafe m1 \
      "qemu+unix:///system?socket=$T/rig/$2/libvirt/run/libvirt-sock" >/dev/null
    echo $(($(ms) - t)) >>"$T/vs.ms"
    lv "$2" domjobinfo m1 --completed | awk '/^Total downtime/ {print $3}' >>"$T/vs.down"
    sleep 2  # hv's directories follow the VM (its lifecycle events) before the next move
  done
done
say "virsh tunnelled: $(tr '\n' ' ' <"$T/vs.ms") ms"
lv h1 destroy m1 >/dev/null 2>&1 || true

# --- 3: local disks copied ----------------------------------------------------------------
hv h1 storage volume create local d1-disk0 --size "${DISK_MB}M" --format raw >/dev/null
SRC=$(hv h1 storage volume show local d1-disk0 -o json | field path)
dd if=/dev/urandom of="$SRC" bs=1M count="$DISK_MB" conv=notrunc status=none
guest d1 h1 --disk pool=local,volume=d1-disk0
sleep 5
out=$(hv h1 vm migrate d1 --to h2 --with-local-disks -o json)
HV_DISK_MS=$(field total_ms <<<"$out")
HV_DISK_DOWN=$(field downtime_ms <<<"$out")
# Back with virsh: the same disk, NBD and memory over plain TCP, into a file made for it.
DST="$T/rig/h1/d1-copy.raw"
truncate -s "${DISK_MB}M" "$DST"
lv h2 dumpxml --migratable d1 | sed "s|<source file='[^']*d1-disk0.raw'|<source file='$DST'|" >"$T/d1.xml"
t=$(ms)
lv h2 migrate --live --p2p --persistent --undefinesource --copy-storage-all --migrate-disks vda --xml "$T/d1.xml" \
  --migrateuri "tcp://${ADDR[h1]}" d1 "qemu+unix:///system?socket=$T/rig/h1/libvirt/run/libvirt-sock" >/dev/null
VS_DISK_MS=$(($(ms) - t))
VS_DISK_DOWN=$(lv h1 domjobinfo d1 --completed | awk '/^Total downtime/ {print $3}')
lv h1 destroy d1 >/dev/null 2>&1 || true

# --- 4: 8 guests off h1: maintenance (2 at once) vs one after another ----------------------
for i in 1 2 3 4 5 6 7 8; do guest "e$i" h1 --disk size=16M,pool=shared; done
sleep 8
t=$(ms)
for i in 1 2 3 4 5 6 7 8; do hv h1 vm migrate "e$i" --to h2 >/dev/null; done
SEQ_MS=$(($(ms) - t))
for i in 1 2 3 4 5 6 7 8; do hv h2 vm migrate "e$i" --to h1 >/dev/null; done
t=$(ms)
hv h1 host maintenance enter --wait >/dev/null
EVAC_MS=$(($(ms) - t))
hv h1 host maintenance exit >/dev/null

HV_MS=$(median <"$T/hv.ms"); HV_DOWN=$(median <"$T/hv.down")
ST_MS=$(median <"$T/st.ms"); ST_DOWN=$(median <"$T/st.down")
VS_MS=$(median <"$T/vs.ms"); VS_DOWN=$(median <"$T/vs.down")
printf '\n%-62s %10s %12s\n' "live migration, 128 MiB TCG guest (median of $((2 * ROUNDS)))" "total ms" "downtime ms"
printf '%-62s %10d %12s\n' "virsh migrate --live --p2p --tunnelled (no TLS)" "$VS_MS" "$VS_DOWN"
printf '%-62s %10d %12s\n' "hvctl vm migrate (tunnelled in hvd's mutual TLS)" "$HV_MS" "$HV_DOWN"
printf '%-62s %10d %12s\n' "hvctl vm migrate --postcopy (QEMU's stream in hvd's TLS)" "$ST_MS" "$ST_DOWN"
printf '%-62s %10d %12s\n' "virsh --copy-storage-all, ${DISK_MB} MiB disk (plain TCP)" "$VS_DISK_MS" "$VS_DISK_DOWN"
printf '%-62s %10d %12s\n' "hvctl vm migrate --with-local-disks, ${DISK_MB} MiB disk" "$HV_DISK_MS" "$HV_DISK_DOWN"
printf '%-62s %10d\n' "8 guests one after another (hvctl vm migrate)" "$SEQ_MS"
printf '%-62s %10d\n' "8 guests: host maintenance enter --wait (2 at once)" "$EVAC_MS"
python3 - "$HV_MS" "$VS_MS" "$ST_MS" "$HV_DISK_MS" "$VS_DISK_MS" "$EVAC_MS" "$SEQ_MS" <<'EOF'
import sys
hv, vs, st, hd, vd, ev, sq = map(float, sys.argv[1:])
print('ratio hvctl / virsh (tunnelled):            %.2fx (goal <= 1.1x)' % (hv / vs))
print('ratio hvctl QEMU stream / virsh (tunnelled): %.2fx' % (st / vs))
print('ratio --with-local-disks / virsh --copy-storage-all: %.2fx' % (hd / vd))
print('ratio evacuation (2 at once) / one after another:     %.2fx' % (ev / sq))
EOF
