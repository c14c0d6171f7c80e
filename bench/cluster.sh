#!/bin/bash
# bench/cluster.sh — what a cluster costs (issue: cluster), measured as ratios in one run on
# scripts/cluster-rig.sh (3 hosts, each with its own libvirtd, etcd member and hvd):
#   1. `hvctl vm list -o json` on one host with BENCH_VMS (200) VMs, before the cluster exists,
#      vs the same on a 3-host cluster with BENCH_VMS on each host (3x the VMs; goal <= 2x);
#   2. `hvctl vm start` + `vm stop` of a VM on h2 asked on h2 (local) vs asked on h1 (forwarded);
#   3. the time from `cluster-rig.sh kill h3` to h3 showing offline in `cluster status` on h1.
# Never fails because of a number. Everything is stopped by the rig (down) at exit.
# Environment: HVD_BIN, HVCTL_BIN, BENCH_VMS (200), BENCH_RUNS (10), BENCH_KEEP=1.
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "$0")" && pwd -P)
REPO_DIR=$(cd "$BENCH_DIR/.." && pwd -P)
HVD_BIN=${HVD_BIN:-$REPO_DIR/build/src/daemon/hvd}
HVCTL_BIN=${HVCTL_BIN:-$REPO_DIR/build/src/cli/hvctl}
VMS=${BENCH_VMS:-200}
RUNS=${BENCH_RUNS:-10}
RIG=$REPO_DIR/scripts/cluster-rig.sh
say() { echo "[$(date +%H:%M:%S)] $*" >&2; }
die() { say "ERROR: $*"; exit 1; }

T=$(mktemp -d /tmp/hv-bench-cluster.XXXXXX)
cleanup() {
  "$RIG" down "$T/rig" >/dev/null 2>&1 || true
  [ "${BENCH_KEEP:-0}" = 1 ] || rm -rf "$T"
}
trap cleanup EXIT
declare -A ADDR SOCK
while read -r n a s; do ADDR[$n]=$a; SOCK[$n]=$s; done < <(RIG_CLUSTER_CONFIG=1 HVD=$HVD_BIN HVCTL=$HVCTL_BIN "$RIG" up 3 "$T/rig")
[ "${#SOCK[@]}" -eq 3 ] || die "the rig did not come up with 3 hosts"
hv() { local h=$1; shift; "$HVCTL_BIN" --socket "${SOCK[$h]}" "$@"; }

# define HOST N: N VMs without disks (64 MiB) through POST /v1/vms, in parallel.
define() {
  local h=$1 n=$2 cfg=$T/create-$1.curl i
  : >"$cfg"
  for ((i = 1; i <= n; i++)); do
    printf 'silent\nshow-error\nunix-socket = "%s"\nurl = "http://hvd/v1/vms"\nrequest = "POST"\nheader = "Content-Type: application/json"\ndata = "{\\"name\\":\\"%s-vm%03d\\",\\"memory\\":\\"64M\\"}"\noutput = "/dev/null"\n' \
      "${SOCK[$h]}" "$h" "$i" >>"$cfg"
    [ "$i" -lt "$n" ] && echo next >>"$cfg"
  done
  curl -sS --parallel --parallel-max 8 -K "$cfg" || die "defining VMs on $h failed"
  local want=$3
  for _ in $(seq 600); do
    [ "$(hv "$h" vm list -o json | grep -o '"name":' | wc -l)" -ge "$want" ] && return 0
    sleep 0.5
  done
  die "$h did not list $want VMs"
}

# mean_ms CMD...: mean wall time over RUNS runs (after one warm-up), milliseconds.
mean_ms() {
  "$@" >/dev/null
  local t0 t1
  t0=$(date +%s%N)
  for ((r = 0; r < RUNS; r++)); do "$@" >/dev/null; done
  t1=$(date +%s%N)
  echo $(((t1 - t0) / RUNS / 1000000))
}
mean_us() {
  "$@" >/dev/null
  local t0 t1
  t0=$(date +%s%N)
  for ((r = 0; r < RUNS; r++)); do "$@" >/dev/null; done
  t1=$(date +%s%N)
  echo $(((t1 - t0) / RUNS / 1000))
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) b = 1; printf "%.2f", a / b }'; }

say "1/3: $VMS VMs on h1 alone"
define h1 "$VMS" "$VMS"
single=$(mean_ms hv h1 vm list -o json)
api() { curl -sS --unix-socket "${SOCK[$1]}" -o /dev/null "http://hvd/v1/vms"; }
single_api=$(mean_us api h1)

say "forming the cluster"
hv h1 cluster create bench --address "${ADDR[h1]}" >/dev/null
for h in h2 h3; do
  tok=$(hv h1 cluster token -o json | sed -n 's/.*"token": *"\([^"]*\)".*/\1/p')
  hv "$h" cluster join "${ADDR[h1]}" --token "$tok" >/dev/null
done
define h2 "$VMS" "$((2 * VMS))"
define h3 "$VMS" "$((3 * VMS))"
for _ in $(seq 120); do
  [ "$(hv h1 vm list -o json | grep -o '"host":' | wc -l)" -ge "$((3 * VMS))" ] && break
  sleep 0.5
done
cluster=$(mean_ms hv h1 vm list -o json)
cluster_api=$(mean_us api h1)

say "2/3: vm start + stop of a VM on h2, local vs forwarded"
hv h2 vm create fwd --memory 64M >/dev/null
cycle() { hv "$1" vm start fwd && hv "$1" vm stop fwd; }
local_ms=$(mean_ms cycle h2)
forwarded_ms=$(mean_ms cycle h1)
# The forwarding itself, without QEMU's start-up in it: one read of the VM.
show_local=$(RUNS=$((RUNS * 5)) mean_us hv h2 vm show fwd -o json)
show_fwd=$(RUNS=$((RUNS * 5)) mean_us hv h1 vm show fwd -o json)

say "3/3: h3 killed; how long until h1 shows it offline"
# hv's death on h3: SIGKILL of its hvd (its etcd member dies with it: PR_SET_PDEATHSIG), timed
# from the signal; the rig's kill of the rest (libvirtd, 200 domains) comes after.
hvd_pid=$(awk '$1 == "hvd" { print $2 }' "$T/rig/h3/pids" | tail -1)
[ -n "$hvd_pid" ] || die "no hvd pid recorded for h3"
t0=$(date +%s%N)
kill -9 "$hvd_pid"
offline_ms=
for _ in $(seq 600); do
  if hv h1 cluster status -o json | tr -d '\n ' | grep -q '"name":"h3","online":false'; then
    offline_ms=$((($(date +%s%N) - t0) / 1000000))
    break
  fi
  sleep 0.05
done

echo
echo "== bench-cluster: 3 hosts on the rig, $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%Y-%m-%dT%H:%MZ), $RUNS runs"
echo "vm list -o json, 1 host x $VMS VMs:      ${single} ms"
echo "vm list -o json, 3 hosts x $VMS VMs:     ${cluster} ms   ratio $(ratio "$cluster" "$single") (goal <= 2)"
echo "GET /v1/vms (curl), 1 host x $VMS VMs:  ${single_api} us"
echo "GET /v1/vms (curl), 3 hosts x $VMS VMs: ${cluster_api} us   ratio $(ratio "$cluster_api" "$single_api")"
echo "vm start+stop on h2, asked on h2:       ${local_ms} ms"
echo "vm start+stop on h2, asked on h1:       ${forwarded_ms} ms   ratio $(ratio "$forwarded_ms" "$local_ms"), +$((forwarded_ms - local_ms)) ms per two calls"
echo "vm show of h2's VM, asked on h2:        ${show_local} us"
echo "vm show of h2's VM, asked on h1:        ${show_fwd} us   ratio $(ratio "$show_fwd" "$show_local"), +$(((show_fwd - show_local) / 1000)) ms per forwarded call"
echo "h3's hvd killed -> offline on h1:       ${offline_ms:-not within 30 s} ms (lease ttl 5 s, renewed every ttl/3)"
