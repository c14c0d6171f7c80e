#!/bin/bash
# A small real Ceph cluster on one machine for tests and benchmarks of hv's rbd pools: one
# monitor, one manager and N (3) BlueStore OSDs on sparse files, pool "rbd" with 3 replicas
# (CRUSH picks OSDs, not hosts: everything is on this one machine). Ceph's own daemons, started
# without systemd, cephadm or ceph-volume; every file under DIR.
#
#   ceph-lab.sh start DIR [--netns PATH] [--osds N]   bootstrap (or restart) and wait until the
#                                          OSDs are up and every PG is active+clean; prints
#                                          the monitor address. PATH: a network namespace
#                                          (/proc/PID/ns/net or /run/netns/NAME) to run in;
#                                          default: one of its own. The monitor listens on
#                                          127.0.0.1 there.
#   ceph-lab.sh stop DIR                  stop the daemons (OSDs, then mgr, then mon) by PID
#   ceph-lab.sh stop-osd DIR ID | start-osd DIR ID   one OSD down / up again
#   ceph-lab.sh exec DIR -- CMD...        CMD in the lab's network namespace (ceph, rbd, ...)
# Files: DIR/ceph.conf, DIR/ceph.client.admin.keyring (client.admin), DIR/hv.keyring (client.hv:
# rbd profile on pool rbd, what hv's pools use), DIR/log/, DIR/pids/.
# Exit status: 0 ok, 77 Ceph is not installed or not root, 1 error.
# The recipe and its measurements: docs/research/ceph-bootstrap.md.
set -euo pipefail

usage() {
  sed -n '7,17p' "$0" >&2
  exit 2
}
[ $# -ge 2 ] || usage
cmd=$1
DIR=$2
shift 2
case "$DIR" in /*) ;; *) echo "ceph-lab.sh: DIR must be an absolute path" >&2; exit 2 ;; esac

NETNS=
OSDS=3
if [ "$cmd" = start ]; then
  while [ $# -gt 0 ]; do
    case "$1" in
      --netns) [ $# -ge 2 ] || usage; NETNS=$2; shift ;;
      --osds) [ $# -ge 2 ] || usage; OSDS=$2; shift ;;
      *) usage ;;
    esac
    shift
  done
  [[ $OSDS =~ ^[1-9]$ ]] || usage
fi

if [ "$(id -u)" -ne 0 ]; then echo "ceph-lab.sh: needs root" >&2; exit 77; fi
for p in ceph-mon ceph-mgr ceph-osd ceph ceph-authtool monmaptool rbd; do
  command -v "$p" >/dev/null || { echo "ceph-lab.sh: $p is not installed (scripts/install-deps.sh)" >&2; exit 77; }
done

CONF=$DIR/ceph.conf
ID_HASH=$(printf '%s' "$DIR" | sha256sum | cut -c1-8)
OWN_NS=hvceph-$ID_HASH

netns_path() {
  if [ -s "$DIR/netns" ]; then cat "$DIR/netns"; else echo "/run/netns/$OWN_NS"; fi
}
in_ns() { nsenter --net="$(netns_path)" -- "$@"; }
ceph_() { in_ns ceph -c "$CONF" --connect-timeout 20 "$@"; }

# start_daemon NAME ARGV...: in the background, pid in DIR/pids/NAME, stderr to DIR/log/NAME.out
start_daemon() {
  local name=$1
  shift
  if [ -s "$DIR/pids/$name" ] && kill -0 "$(cat "$DIR/pids/$name")" 2>/dev/null; then return 0; fi
  setsid nsenter --net="$(netns_path)" -- "$@" </dev/null >>"$DIR/log/$name.out" 2>&1 &
  echo $! >"$DIR/pids/$name"
}

stop_daemon() {
  local f=$DIR/pids/$1 pid
  [ -s "$f" ] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

write_conf() {
  cat >"$CONF" <<EOF
[global]
fsid = $1
mon_initial_members = a
mon_host = [v2:127.0.0.1:3300,v1:127.0.0.1:6789]
public_network = 127.0.0.0/8
auth_cluster_required = cephx
auth_service_required = cephx
auth_client_required = cephx
auth_allow_insecure_global_id_reclaim = false
keyring = $DIR/\$cluster.\$name.keyring
run_dir = $DIR/run
admin_socket = $DIR/run/\$cluster-\$name.asok
log_file = $DIR/log/\$cluster-\$name.log
crash_dir = $DIR/crash
osd_pool_default_size = 3
osd_pool_default_min_size = 2
osd_crush_chooseleaf_type = 0
mon_allow_pool_delete = true
mon_warn_on_pool_no_redundancy = false
[mon]
mon_cluster_log_file = $DIR/log/\$cluster.\$channel.log
mon_data_avail_warn = 5
mon_data = $DIR/mon/\$cluster-\$id
keyring = $DIR/mon/\$cluster-\$id/keyring
[mgr]
mgr_data = $DIR/mgr/\$cluster-\$id
keyring = $DIR/mgr/\$cluster-\$id/keyring
[osd]
osd_data = $DIR/osd/\$cluster-\$id
keyring = $DIR/osd/\$cluster-\$id/keyring
osd_objectstore = bluestore
bluestore_block_path = $DIR/disks/\$cluster-\$id.img
bluestore_block_create = true
bluestore_block_size = 10737418240
osd_memory_target = 939524096
EOF
}

wait_healthy() { # OSDs up and every PG of every pool active+clean, within 180 s
  local want=$1 j
  for _ in $(seq 360); do
    j=$(ceph_ osd stat -f json 2>/dev/null || true)
    if [[ $j =~ \"num_up_osds\":$want[,}] ]]; then
      j=$(ceph_ pg stat -f json 2>/dev/null || true)
      # every PG is in the one state active+clean
      if [[ $j =~ \"num_pg_by_state\":\[\{\"name\":\"active\+clean\",\"num\":([0-9]+)\}\] ]]; then return 0; fi
    fi
    sleep 0.5
  done
  echo "ceph-lab.sh: not healthy within 180 s; ceph -s says:" >&2
  ceph_ -s >&2 || true
  return 1
}

case "$cmd" in
  start)
    mkdir -p "$DIR"/{run,log,crash,disks,pids,mon/ceph-a,mgr/ceph-x,osd}
    if [ -z "$NETNS" ]; then
      [ -e "/run/netns/$OWN_NS" ] || { ip netns add "$OWN_NS"; ip -n "$OWN_NS" link set lo up; }
      rm -f "$DIR/netns"
    else
      [ -e "$NETNS" ] || { echo "ceph-lab.sh: no network namespace $NETNS" >&2; exit 1; }
      echo "$NETNS" >"$DIR/netns"
      in_ns ip link set lo up
    fi
    if [ ! -s "$DIR/mon/ceph-a/keyring" ]; then
      fsid=$(cat /proc/sys/kernel/random/uuid)
      write_conf "$fsid"
      ceph-authtool --create-keyring "$DIR/ceph.mon.keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
      ceph-authtool --create-keyring "$DIR/ceph.client.admin.keyring" --gen-key -n client.admin \
        --cap mon 'allow *' --cap osd 'allow *' --cap mds 'allow *' --cap mgr 'allow *' >/dev/null
      ceph-authtool "$DIR/ceph.mon.keyring" --import-keyring "$DIR/ceph.client.admin.keyring" >/dev/null
      monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:3300,v1:127.0.0.1:6789]" "$DIR/monmap" >/dev/null
      in_ns ceph-mon -c "$CONF" --mkfs -i a --monmap "$DIR/monmap" --keyring "$DIR/ceph.mon.keyring"
      new=1
    else
      new=0
    fi
    start_daemon mon.a ceph-mon -c "$CONF" -f -i a
    for _ in $(seq 60); do ceph_ mon stat >/dev/null 2>&1 && break; sleep 0.5; done
    if [ ! -s "$DIR/mgr/ceph-x/keyring" ]; then
      ceph_ auth get-or-create mgr.x mon 'allow profile mgr' osd 'allow *' mds 'allow *' -o "$DIR/mgr/ceph-x/keyring"
    fi
    start_daemon mgr.x ceph-mgr -c "$CONF" -f -i x
    for ((i = 0; i < OSDS; i++)); do
      if [ ! -s "$DIR/osd/ceph-$i/keyring" ]; then
        uuid=$(cat /proc/sys/kernel/random/uuid)
        secret=$(ceph-authtool --gen-print-key)
        id=$(printf '{"cephx_secret": "%s"}' "$secret" | ceph_ osd new "$uuid" -i -)
        [ "$id" = "$i" ] || { echo "ceph-lab.sh: expected osd id $i, got '$id'" >&2; exit 1; }
        mkdir -p "$DIR/osd/ceph-$i"
        ceph-authtool --create-keyring "$DIR/osd/ceph-$i/keyring" --name "osd.$i" --add-key "$secret" >/dev/null
        in_ns ceph-osd -c "$CONF" -i "$i" --mkfs --osd-uuid "$uuid" >>"$DIR/log/osd.$i.out" 2>&1
      fi
      start_daemon "osd.$i" ceph-osd -c "$CONF" -f -i "$i"
    done
    if [ "$new" = 1 ]; then
      ceph_ osd pool create rbd 32 32 >/dev/null
      in_ns rbd -c "$CONF" pool init rbd
      ceph_ auth get-or-create client.hv mon 'profile rbd' osd 'profile rbd pool=rbd' mgr 'profile rbd pool=rbd' \
        -o "$DIR/hv.keyring"
    fi
    wait_healthy "$OSDS"
    echo "127.0.0.1"
    ;;
  stop)
    for f in "$DIR"/pids/osd.*; do [ -e "$f" ] && stop_daemon "$(basename "$f")"; done
    stop_daemon mgr.x
    stop_daemon mon.a
    if [ ! -s "$DIR/netns" ] && [ -e "/run/netns/$OWN_NS" ]; then ip netns del "$OWN_NS"; fi
    ;;
  stop-osd)
    [ $# -eq 1 ] || usage
    stop_daemon "osd.$1"
    ;;
  start-osd)
    [ $# -eq 1 ] || usage
    start_daemon "osd.$1" ceph-osd -c "$CONF" -f -i "$1"
    ;;
  exec)
    [ "${1:-}" = "--" ] || usage
    shift
    in_ns "$@"
    ;;
  *) usage ;;
esac
