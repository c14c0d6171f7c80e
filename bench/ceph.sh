#!/bin/bash
# bench/ceph.sh — how long hv takes to stand up Ceph (issue: hyperconverged Ceph), on
# scripts/cluster-rig.sh (3 hosts): from `hvctl ceph init` to HEALTH_OK with 3 monitors (and
# managers), one BlueStore OSD per host (10 GiB sparse files) and a size-3 pool, every placement
# group active+clean. Baseline in the same run: scripts/ceph-lab.sh, Ceph's own tools by hand
# (1 monitor, 1 manager, 3 OSDs and a size-3 pool on one host) to the same state.
# Never fails because of a number. Environment: HVD_BIN, HVCTL_BIN, BENCH_KEEP=1.
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "$0")" && pwd -P)
REPO_DIR=$(cd "$BENCH_DIR/.." && pwd -P)
HVD_BIN=${HVD_BIN:-$REPO_DIR/build/src/daemon/hvd}
HVCTL_BIN=${HVCTL_BIN:-$REPO_DIR/build/src/cli/hvctl}
RIG=$REPO_DIR/scripts/cluster-rig.sh
LAB=$REPO_DIR/scripts/ceph-lab.sh
say() { echo "[$(date +%H:%M:%S)] $*" >&2; }
die() { say "ERROR: $*"; exit 1; }
ms() { date +%s%3N; }

T=$(mktemp -d /tmp/hv-bench-ceph.XXXXXX)
cleanup() {
  "$LAB" stop "$T/lab" >/dev/null 2>&1 || true
  "$RIG" down "$T/rig" >/dev/null 2>&1 || true
  [ "${BENCH_KEEP:-0}" = 1 ] || rm -rf "$T"
}
trap cleanup EXIT

say "baseline: scripts/ceph-lab.sh start (1 mon, 1 mgr, 3 OSDs, pool rbd size 3, until active+clean)"
mkdir -p "$T/lab"
t=$(ms)
"$LAB" start "$T/lab" >/dev/null
LAB_MS=$(($(ms) - t))
"$LAB" stop "$T/lab" >/dev/null

declare -A ADDR SOCK
while read -r n a s; do ADDR[$n]=$a; SOCK[$n]=$s; done < <(HVD=$HVD_BIN HVCTL=$HVCTL_BIN "$RIG" up 3 "$T/rig")
[ "${#SOCK[@]}" -eq 3 ] || die "the rig did not come up with 3 hosts"
hv() { local h=$1; shift; "$HVCTL_BIN" --socket "${SOCK[$h]}" "$@"; }
hv h1 cluster create bench --address "${ADDR[h1]}" >/dev/null
for h in h2 h3; do hv "$h" cluster join "${ADDR[h1]}" --token "$(hv h1 cluster token)" >/dev/null; done
for h in h1 h2 h3; do truncate -s 10G "$T/$h-osd.img"; done

say "hv: ceph init, mon create x3, osd create x3, pool create, until HEALTH_OK"
t=$(ms)
hv h1 ceph init --network 10.77.0.0/24 >/dev/null
for h in h1 h2 h3; do hv h1 ceph mon create --host "$h" >/dev/null; done
MONS_MS=$(($(ms) - t))
for h in h1 h2 h3; do hv h1 ceph osd create "$T/$h-osd.img" --host "$h" >/dev/null; done
OSDS_MS=$(($(ms) - t))
hv h1 ceph pool create vmpool --size 3 --min-size 2 >/dev/null
for _ in $(seq 600); do
  s=$(hv h1 ceph status -o json)
  if python3 -c 'import json,sys; s=json.load(sys.stdin); sys.exit(0 if s["health"]=="HEALTH_OK" and s["pgs"]>0 and s["pgs"]==s["pgs_active_clean"] else 1)' <<<"$s"; then break; fi
  sleep 0.5
done
HV_MS=$(($(ms) - t))
hv h1 ceph status

printf '\n%-52s %10s\n' "step" "ms"
printf '%-52s %10d\n' "ceph-lab.sh (1 host, 1 mon, 3 OSDs) to active+clean" "$LAB_MS"
printf '%-52s %10d\n' "hv: init + 3 monitors in quorum" "$MONS_MS"
printf '%-52s %10d\n' "hv: + 3 OSDs up (3 hosts)" "$OSDS_MS"
printf '%-52s %10d\n' "hv: + pool, HEALTH_OK, all PGs active+clean" "$HV_MS"
python3 -c "print('ratio hv (3 hosts, 3 mons) / ceph-lab (1 host, 1 mon): %.2fx' % ($HV_MS / $LAB_MS))"
