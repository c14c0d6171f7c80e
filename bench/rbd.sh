#!/bin/bash
# bench/rbd.sh — hv's rbd pools against Ceph's own tool, in one run on one Ceph cluster
# (scripts/ceph-lab.sh: 1 mon, 1 mgr, 3 OSDs on files, pool "rbd" size 3, in the private
# libvirtd's network namespace, where hvd runs too):
#   1. eager-zeroing a BENCH_SIZE (1G) volume (`hvctl storage volume create ... --provision
#      eager-zeroed`, wall time) vs `rbd bench --io-type write --io-size 4M --io-threads 8
#      --io-pattern seq` of the same size on a fresh image: MiB/s and the ratio (goal >= 0.9);
#   2. a thin create of a 1 TiB volume (hvctl, wall time) vs `rbd create --size 1T`
#      (size-independent: milliseconds).
# Never fails because of a number. Environment: BENCH_SIZE (1G), BENCH_RUNS (2; the best
# counts), plus bench/lib.sh's.
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
SIZE=${BENCH_SIZE:-1G}
RUNS=${BENCH_RUNS:-2}
LAB=$REPO_DIR/scripts/ceph-lab.sh
bench_setup rbd
start_libvirtd
HOLDER=$(tr -dc '0-9' <"$LV_DIR/holder.pid")
say "starting the Ceph lab in libvirtd's network namespace"
"$LAB" start "$T/ceph" --netns "/proc/$HOLDER/ns/net" >/dev/null || die "ceph-lab.sh start failed"
lab_stop() { "$LAB" stop "$T/ceph" >/dev/null 2>&1 || true; }
trap 'rc=$?; lab_stop; bench_cleanup $rc' EXIT
HVD_NETNS=/proc/$HOLDER/ns/net start_hvd
hv() { "$HVCTL_BIN" --socket "$HVD_SOCK" "$@"; }
rbd_() { "$LAB" exec "$T/ceph" -- rbd -c "$T/ceph/ceph.conf" "$@"; }
hv storage pool add vmpool --type rbd --monitors 127.0.0.1 --pool rbd --user hv --keyring "$T/ceph/hv.keyring" >/dev/null
BYTES=$(numfmt --from=iec "$SIZE")
MIB=$((BYTES / 1048576))
rm_bench() { rbd_ rm rbd/benchimg >/dev/null 2>&1 || true; rbd_ create --size "$SIZE" rbd/benchimg; }
time_best rm_bench rbd_ bench --io-type write --io-size 4M --io-threads 8 --io-total "$SIZE" --io-pattern seq rbd/benchimg
RBD=$best
rm_eager() { hv storage volume delete vmpool eager >/dev/null 2>&1 || true; }
time_best rm_eager hv storage volume create vmpool eager --size "$SIZE" --format raw --provision eager-zeroed
HV=$best
rm_big() { hv storage volume delete vmpool big >/dev/null 2>&1 || true; }
time_best rm_big hv storage volume create vmpool big --size 1T --format raw
HV_BIG=$best
rm_rbig() { rbd_ rm rbd/rbig >/dev/null 2>&1 || true; }
time_best rm_rbig rbd_ create --size 1T rbd/rbig
RBD_BIG=$best
rate() { echo "scale=0; $MIB / $1" | bc -l; }
echo
echo "== bench-rbd: Ceph lab (1 mon, 3 OSDs on files, size 3), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%Y-%m-%dT%H:%MZ), best of $RUNS"
printf '%-58s %7.2f s %6s MiB/s\n' "rbd bench --io-type write 4M x8 seq, $SIZE (baseline)" "$RBD" "$(rate "$RBD")"
printf '%-58s %7.2f s %6s MiB/s   ratio %s (goal >= 0.9)\n' "hvctl storage volume create --provision eager-zeroed, $SIZE" \
  "$HV" "$(rate "$HV")" "$(echo "scale=2; $RBD / $HV" | bc -l)"
printf '%-58s %7.0f ms\n' "rbd create --size 1T (baseline, process start included)" "$(echo "$RBD_BIG * 1000" | bc -l)"
printf '%-58s %7.0f ms\n' "hvctl storage volume create 1T thin (task included)" "$(echo "$HV_BIG * 1000" | bc -l)"
