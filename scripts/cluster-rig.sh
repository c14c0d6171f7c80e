#!/bin/bash
# N hv hosts on one machine, for tests, the demo and benchmarks.
#
#   cluster-rig.sh up N DIR                  start hosts h1..hN; prints "NAME ADDRESS SOCKET"
#                                            per host; exit 0 once every hvd answers
#   cluster-rig.sh exec DIR NAME -- CMD...   run CMD inside that host's namespaces
#   cluster-rig.sh kill DIR NAME             SIGKILL every process of that host (QEMUs too)
#   cluster-rig.sh cut DIR NAME              its link down
#   cluster-rig.sh heal DIR NAME             its link up again
#   cluster-rig.sh start DIR NAME            bring a killed host's libvirtd + hvd back
#   cluster-rig.sh down DIR                  stop and remove everything (idempotent)
# Exit status: 0 ok, 2 bad usage, 77 this machine cannot run it (not root, no libvirtd), 1 error.
#
# Environment: HVD, HVCTL (default build/src/daemon/hvd, build/src/cli/hvctl of this repo);
# each hvd.toml gets a [cluster] section (node_name = the host's name, address = its address;
# RIG_CLUSTER_CONFIG=0 leaves it out, for an hvd without cluster support);
# a [ceph] section for hosts that share one disk (mon_data_avail_warn = 5, osd_memory_target_mb
# = 896); RIG_ACCEL (tcg), RIG_LOG_LEVEL (info) for hvd.toml; RIG_TIMEOUT (60) seconds `up`/`start`
# wait for an hvd to answer; RIG_WATCHDOG_TIMEOUT (3) seconds of each host's emulated watchdog
# ([ha] watchdog = DIR/hI/watchdog, a FIFO; see watchdog_emu); RIG_HVD_NICE (-5) the nice
# value hvd (with its etcd and Ceph daemons) runs at.
#
# Layout (README.md "A cluster on one machine"):
# - Host hI has the address 10.77.0.(10+I)/24 (h1 = 10.77.0.11, h2 = 10.77.0.12, ...), on the
#   interface rig0 of its own network namespace hvrig-<id>-hI (<id>: 8 hex digits of a hash of
#   DIR, so rigs in different DIRs coexist). rig0 is one end of a veth whose other end, named
#   hI, is a port of the bridge br0 (10.77.0.1/24) in the namespace hvrig-<id>-br. Nothing of
#   it exists in the machine's own network namespace.
# - Each host runs a private libvirtd + virtlogd (scripts/private-libvirtd.sh --netns
#   --hostname, state in DIR/hI/libvirt): they live in a holder process's mount + UTS
#   namespace (hostname hI, a sysfs of the host's network namespace) inside the host's network
#   namespace. hvd runs in the same namespaces with DIR/hI/hvd.toml: socket DIR/hI/hvd.sock
#   (a file, so it is reachable from the machine's namespaces), state DIR/hI/state, and the
#   libvirt socket of that host. Logs: DIR/hI/hvd.log, DIR/hI/libvirt/log/.
# - DIR/hI/pids lists "ROLE PID STARTTIME" of the processes the rig started (holder, virtlogd,
#   libvirtd, hvd). `kill` ends exactly those (checked against their start time, so a reused
#   PID is never hit), the QEMU/dnsmasq/LXC processes whose pid files are in that libvirtd's
#   run directory, every process in the host's network namespace or the holder's mount
#   namespace, and their descendants. Never anything found by name.
# - `kill` keeps the host's network namespace and state: `start` is a restart after a crash
#   (libvirtd finds its QEMUs gone). `down` kills all hosts, deletes the namespaces (and so the
#   veths and the bridge), and removes DIR/hI; the logs stay in DIR/logs/hI.
# - The rig does not create the hv cluster: tests do that with hvctl.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd -P)
PRIVATE_LIBVIRTD=$ROOT/scripts/private-libvirtd.sh
HVD=${HVD:-$ROOT/build/src/daemon/hvd}
RIG_HVD_NICE=${RIG_HVD_NICE:--5}
HVCTL=${HVCTL:-$ROOT/build/src/cli/hvctl}
SUBNET=10.77.0
BRIDGE_ADDR=$SUBNET.1
MAX_HOSTS=200
WD_TIMEOUT=${RIG_WATCHDOG_TIMEOUT:-3}
[[ $WD_TIMEOUT =~ ^[1-9][0-9]?$ ]] || { echo "cluster-rig: RIG_WATCHDOG_TIMEOUT must be 1-99 seconds" >&2; exit 2; }

log() { echo "cluster-rig: $*" >&2; }
die() { log "$*"; exit 1; }
usage() {
  [ $# -eq 0 ] || log "$*"
  sed -n '4,12p' "$0" >&2
  exit 2
}

# --- processes -----------------------------------------------------------------------------

# starttime PID -> field 22 of /proc/PID/stat (clock ticks since boot), empty when gone.
starttime() {
  local s
  s=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
  s=${s##*) }
  # shellcheck disable=SC2086
  set -- $s
  echo "${20}"
}

# running PID -> 0 when the process exists and is not a zombie.
running() {
  local s
  s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  s=${s##*) }
  [ "${s%% *}" != Z ]
}

pidfile_pid() { [ -s "$1" ] && tr -dc '0-9' <"$1"; }

# --- the rig's files -------------------------------------------------------------------------

# canon DIR -> absolute path without symlinks (DIR need not exist).
canon() { realpath -m -- "$1"; }

check_dir_name() {
  case "$DIR" in
    *[!A-Za-z0-9._/+-]*) usage "DIR may contain only letters, digits and . _ / + - (it goes into TOML and socket paths): $DIR" ;;
  esac
  # Unix socket paths are limited to 108 bytes: DIR/h200/libvirt/run/libvirt-admin-sock.
  [ ${#DIR} -le 70 ] || usage "DIR is too long for Unix socket paths (at most 70 characters): $DIR"
}

set_dir() {
  DIR=$(canon "$1")
  check_dir_name
  RIG_ID=$(printf '%s' "$DIR" | sha256sum | cut -c1-8)
  BR_NS=hvrig-$RIG_ID-br
}

host_ns() { echo "hvrig-$RIG_ID-$1"; }
host_addr() { echo "$SUBNET.$((10 + ${1#h}))"; }

valid_name() { [[ $1 =~ ^h[1-9][0-9]{0,2}$ ]] && [ "${1#h}" -le $MAX_HOSTS ]; }

# The hosts of the rig in DIR (DIR/rig.hosts: "NAME ADDRESS" lines).
rig_hosts() {
  [ -f "$DIR/rig.hosts" ] || return 0
  local name _addr
  while read -r name _addr; do
    if valid_name "$name"; then echo "$name"; fi
  done <"$DIR/rig.hosts"
}

need_host() { # need_host NAME: a host of this rig
  valid_name "$1" || usage "bad host name '$1' (h1, h2, ...)"
  [ -f "$DIR/rig.hosts" ] || die "no rig in $DIR (cluster-rig.sh up N $DIR)"
  local hosts
  hosts=$(rig_hosts)
  grep -qx -- "$1" <<<"$hosts" || die "no host $1 in the rig in $DIR"
}

require_runnable() {
  local t
  if [ "$(id -u)" -ne 0 ]; then
    log "SKIPPED: needs root (network namespaces, libvirtd)"
    exit 77
  fi
  for t in libvirtd virtlogd virsh ip nsenter unshare realpath sha256sum; do
    if ! command -v "$t" >/dev/null 2>&1 && ! [ -x "/usr/sbin/$t" ]; then
      log "SKIPPED: $t is not installed (scripts/install-deps.sh installs it)"
      exit 77
    fi
  done
  [ -x "$HVD" ] || die "hvd not found at $HVD (build it: ninja -C build hvd, or set HVD)"
  [ -x "$HVCTL" ] || die "hvctl not found at $HVCTL (build it: ninja -C build hvctl, or set HVCTL)"
}

# --- namespaces and links ------------------------------------------------------------------

netns_names() { ip netns list 2>/dev/null | awk '{print $1}'; }
# (Never `... | grep -q` under pipefail: grep may exit before the writer and fail the pipe.)
ns_exists() {
  local all
  all=$(netns_names)
  grep -qx -- "$1" <<<"$all"
}

# ns_inode NS -> "net:[INODE]" as /proc/PID/ns/net shows it
ns_link() { echo "net:[$(stat -L -c %i "/run/netns/$1")]"; }

make_bridge() {
  ns_exists "$BR_NS" && return 0
  ip netns add "$BR_NS"
  ip -n "$BR_NS" link set lo up
  ip -n "$BR_NS" link add br0 type bridge stp_state 0 forward_delay 0
  ip -n "$BR_NS" addr add "$BRIDGE_ADDR/24" dev br0
  ip -n "$BR_NS" link set br0 up
}

make_host_net() { # make_host_net NAME
  local name=$1 ns
  ns=$(host_ns "$name")
  ns_exists "$ns" || ip netns add "$ns"
  ip -n "$ns" link set lo up
  if ! ip -n "$BR_NS" link show "$name" >/dev/null 2>&1; then
    # Made inside the bridge namespace, the peer moved straight into the host's: no interface
    # of the rig ever appears in the machine's own namespace.
    ip -n "$BR_NS" link add "$name" type veth peer name rig0 netns "$ns"
    ip -n "$ns" addr add "$(host_addr "$name")/24" dev rig0
  fi
  ip -n "$BR_NS" link set "$name" master br0 up
  ip -n "$ns" link set rig0 up
}

# --- one host's daemons --------------------------------------------------------------------

holder_of() { pidfile_pid "$DIR/$1/libvirt/holder.pid"; }

write_config() { # write_config NAME
  local name=$1 d=$DIR/$1 accel=${RIG_ACCEL:-tcg} level=${RIG_LOG_LEVEL:-info}
  case "$accel" in auto | kvm | tcg) ;; *) usage "RIG_ACCEL must be auto, kvm or tcg" ;; esac
  case "$level" in trace | debug | info | warn | error) ;; *) usage "RIG_LOG_LEVEL must be trace|debug|info|warn|error" ;; esac
  mkdir -p "$d/state" "$d/chrony"
  {
    echo "# hvd of rig host $name (written by scripts/cluster-rig.sh)"
    echo "[daemon]"
    echo "socket = \"$d/hvd.sock\""
    echo "state_dir = \"$d/state\""
    echo "log_level = \"$level\""
    echo "log_target = \"stderr\""
    echo "[libvirt]"
    echo "uri = \"qemu:///system?socket=$d/libvirt/run/libvirt-sock\""
    echo "accel = \"$accel\""
    echo "[time]"
    echo "sources_file = \"$d/chrony/hv.sources\""
    if [ "${RIG_CLUSTER_CONFIG:-1}" = 1 ]; then
      echo "[cluster]"
      echo "node_name = \"$name\""
      echo "address = \"$(host_addr "$name")\""
      # QEMU's migration sockets: one path on every host that is each host's own (its
      # libvirtd's /run/libvirt, private to its mount namespace), as /run/hv is on real hosts.
      echo "migration_socket_dir = \"/run/libvirt/hv-migrate\""
      # HA's watchdog: the emulator of this host (watchdog_emu below), with its timeout.
      echo "[ha]"
      echo "watchdog = \"$d/watchdog\""
      echo "watchdog_timeout = $WD_TIMEOUT"
    fi
    # The hosts share this machine's disk and memory: Ceph's monitors warn only below 5% free,
    # OSDs aim at Ceph's smallest memory target.
    echo "[ceph]"
    echo "mon_data_avail_warn = 5"
    echo "osd_memory_target_mb = 896"
  } >"$d/hvd.toml.tmp"
  mv "$d/hvd.toml.tmp" "$d/hvd.toml"
}

record() { # record NAME ROLE PID
  local st
  st=$(starttime "$3")
  [ -n "$st" ] || die "$1: $2 (pid $3) is not running; see $DIR/$1/"
  echo "$2 $3 $st" >>"$DIR/$1/pids.tmp"
}

hvd_pid() { # hvd_pid NAME -> the recorded hvd's pid when it runs
  local role pid st
  [ -f "$DIR/$1/pids" ] || return 1
  while read -r role pid st; do
    [ "$role" = hvd ] && [ "$(starttime "$pid")" = "$st" ] && running "$pid" && { echo "$pid"; return 0; }
  done <"$DIR/$1/pids"
  return 1
}

start_host() { # start_host NAME: libvirtd (+ holder, virtlogd) and hvd; returns once started
  local name=$1 d=$DIR/$1 ns out holder pid exe want i
  ns=$(host_ns "$name")
  ns_exists "$ns" || die "$name: network namespace $ns is missing (down + up)"
  mkdir -p "$d/libvirt"
  if ! out=$("$PRIVATE_LIBVIRTD" start --netns "$ns" --hostname "$name" "$d/libvirt" 2>&1); then
    log "$name: private libvirtd did not start:"
    echo "$out" >&2
    exit 1
  fi
  holder=$(holder_of "$name")
  readlink "/proc/$holder/ns/mnt" >"$d/mntns"
  rm -f "$d/pids.tmp"
  record "$name" holder "$holder"
  record "$name" virtlogd "$(pidfile_pid "$d/libvirt/run/virtlogd.pid")"
  record "$name" libvirtd "$(pidfile_pid "$d/libvirt/run/libvirtd.pid")"
  if pid=$(hvd_pid "$name"); then
    record "$name" hvd "$pid"
  else
    rm -f "$d/hvd.sock"
    echo "--- $(date -u '+%F %T') started by cluster-rig.sh" >>"$d/hvd.log"
    # setsid: not in the caller's process group (a Ctrl-C of a test run does not hit it).
    # nsenter without -p and setsid of a non-leader exec: $! is hvd's own pid.
    # nice: the control plane (hvd, its etcd and Ceph daemons) ahead of other load on this
    # machine (tests beside the rig), as a real host gives it a core: the HA timing assumes it.
    nice -n "$RIG_HVD_NICE" setsid nsenter -t "$holder" -m -n -u -- "$HVD" --config "$d/hvd.toml" --foreground \
      </dev/null >>"$d/hvd.log" 2>&1 &
    pid=$!
    want=$(realpath -- "$HVD")
    for ((i = 0; i < 100; i++)); do
      exe=$(readlink "/proc/$pid/exe" 2>/dev/null || true)
      [ "$exe" = "$want" ] && break
      running "$pid" || break
      sleep 0.02
    done
    [ "$exe" = "$want" ] || { tail -n 20 "$d/hvd.log" >&2; die "$name: hvd (pid $pid) did not start; see $d/hvd.log"; }
    record "$name" hvd "$pid"
  fi
  mv "$d/pids.tmp" "$d/pids"
}

answers() { # answers NAME: hvd answers host show (and is connected to its libvirtd)
  local out
  out=$(timeout 10 "$HVCTL" --socket "$DIR/$1/hvd.sock" host show -o json 2>/dev/null) || return 1
  # An hvd that listens before its first libvirt connection says "libvirt_connected": false.
  ! grep -Eq '"libvirt_connected" *: *false' <<<"$out"
}

wait_answers() { # wait_answers NAME...: every hvd answers within RIG_TIMEOUT seconds
  local t=${RIG_TIMEOUT:-60} left=("$@") next name i
  [[ $t =~ ^[0-9]+$ ]] || usage "RIG_TIMEOUT must be a number of seconds"
  for ((i = 0; i < t * 5; i++)); do
    next=()
    for name in "${left[@]}"; do
      answers "$name" && continue
      hvd_pid "$name" >/dev/null || { tail -n 20 "$DIR/$name/hvd.log" >&2; die "$name: hvd exited; see $DIR/$name/hvd.log"; }
      next+=("$name")
    done
    [ ${#next[@]} -gt 0 ] || return 0
    left=("${next[@]}")
    sleep 0.2
  done
  for name in "${left[@]}"; do
    log "$name: hvd does not answer on $DIR/$name/hvd.sock after ${t}s; last lines of $DIR/$name/hvd.log:"
    tail -n 20 "$DIR/$name/hvd.log" >&2 || true
  done
  exit 1
}

# libvirtd probes QEMU's capabilities at its first start (~9 s here) and caches them under
# cache/qemu/capabilities; every host of the rig runs the same binaries, so the first host's
# cache (DIR/qemu-caps) seeds the others. libvirtd re-probes if it does not match.
seed_caps() { # seed_caps NAME
  local c=$DIR/$1/libvirt/cache/qemu
  [ -d "$DIR/qemu-caps" ] && [ ! -d "$c/capabilities" ] || return 0
  mkdir -p "$c"
  cp -a "$DIR/qemu-caps" "$c/capabilities"
}
save_caps() { # save_caps NAME
  local c=$DIR/$1/libvirt/cache/qemu/capabilities
  [ ! -d "$DIR/qemu-caps" ] && [ -d "$c" ] || return 0
  cp -a "$c" "$DIR/qemu-caps.tmp" && mv "$DIR/qemu-caps.tmp" "$DIR/qemu-caps"
}

print_host() { echo "$1 $(host_addr "$1") $DIR/$1/hvd.sock"; }

# host_pids NAME -> every process of that host (see the header), one per line
host_pids() {
  local name=$1 d=$DIR/$1 netl="" mntl="" role pid st f p l seen
  local -A mine=() parent=()
  if ns_exists "$(host_ns "$name")"; then netl=$(ns_link "$(host_ns "$name")"); fi
  if [ -f "$d/pids" ]; then
    while read -r role pid st; do
      [[ $pid =~ ^[0-9]+$ ]] && [ "$(starttime "$pid")" = "$st" ] || continue
      mine[$pid]=1
      # The holder's mount namespace counts only while the holder lives: the inode number of
      # a namespace that is gone may be reused by another one.
      [ "$role" != holder ] || mntl=$(cat "$d/mntns" 2>/dev/null || true)
    done <"$d/pids"
  fi
  # The namespaces, and the pid files of libvirtd's children (they count only when the process
  # is in one of the host's namespaces: a stale file may name a reused PID).
  for p in /proc/[0-9]*; do
    pid=${p#/proc/}
    l=$(readlink "$p/ns/net" 2>/dev/null) || continue
    if [ -n "$netl" ] && [ "$l" = "$netl" ]; then mine[$pid]=1; continue; fi
    l=$(readlink "$p/ns/mnt" 2>/dev/null) || continue
    if [ -n "$mntl" ] && [ "$l" = "$mntl" ]; then mine[$pid]=1; fi
  done
  for f in "$d"/libvirt/run/qemu/*.pid "$d"/libvirt/run/lxc/*.pid "$d"/libvirt/run/network/*.pid; do
    [ -e "$f" ] && [ "${f##*/}" != driver.pid ] || continue
    pid=$(pidfile_pid "$f") || continue
    [ -n "$pid" ] || continue
    l=$(readlink "/proc/$pid/ns/net" 2>/dev/null) || continue
    if [ "$l" = "$netl" ] || [ "$(readlink "/proc/$pid/ns/mnt" 2>/dev/null)" = "$mntl" ]; then mine[$pid]=1; fi
  done
  # Descendants (e.g. a container's processes in namespaces of their own).
  for p in /proc/[0-9]*/stat; do
    st=$(cat "$p" 2>/dev/null) || continue
    pid=${st%% *}
    st=${st##*) }
    st=${st#* }
    parent[$pid]=${st%% *}
  done
  seen=1
  while [ $seen = 1 ]; do
    seen=0
    for pid in "${!parent[@]}"; do
      [ -z "${mine[$pid]:-}" ] && [ -n "${mine[${parent[$pid]}]:-}" ] && { mine[$pid]=1; seen=1; }
    done
  done
  for pid in "${!mine[@]}"; do
    [ "$pid" != $$ ] && [ "$pid" != "$BASHPID" ] && echo "$pid"
  done
}

kill_host() { # kill_host NAME: SIGKILL, until none is left
  local name=$1 pass pids pid left
  for ((pass = 0; pass < 20; pass++)); do
    mapfile -t pids < <(host_pids "$name")
    left=()
    for pid in "${pids[@]}"; do running "$pid" && left+=("$pid"); done
    [ ${#left[@]} -gt 0 ] || return 0
    kill -KILL "${left[@]}" 2>/dev/null || true
    sleep 0.1
  done
  die "$name: processes still alive after SIGKILL: ${left[*]}"
}

# --- the emulated watchdog (HA, docs/ha.md) --------------------------------------------------
# Each hvd.toml names DIR/NAME/watchdog, a FIFO this reads: a byte arms it (a pet), 'V' disarms
# it (Linux's magic close); armed and not petted for WD_TIMEOUT seconds, it does to the host
# what a real watchdog does: every process of the host is killed (kill_host). It runs in the
# machine's namespaces (no host kill reaches it) until `down`; DIR/NAME/watchdog.log says when
# it fired.
watchdog_emu() { # watchdog_emu NAME
  local name=$1 c armed=0
  exec 3<>"$DIR/$name/watchdog"
  while :; do
    if IFS= read -r -N 1 -t "$WD_TIMEOUT" c <&3; then
      if [ "$c" = V ]; then armed=0; else armed=1; fi
    elif [ $armed = 1 ]; then
      echo "$(date -u '+%F %T.%N') watchdog not petted for ${WD_TIMEOUT}s: the host is reset (killed)"
      (kill_host "$name") || true
      armed=0
    fi
  done
}

start_watchdog() { # start_watchdog NAME
  local d=$DIR/$1 pid st
  if read -r pid st 2>/dev/null <"$d/watchdog.pid" && [ "$(starttime "$pid")" = "$st" ]; then return 0; fi
  [ -p "$d/watchdog" ] || { rm -f "$d/watchdog"; mkfifo -m 600 "$d/watchdog"; }
  watchdog_emu "$1" </dev/null >>"$d/watchdog.log" 2>&1 &
  pid=$!
  echo "$pid $(starttime "$pid")" >"$d/watchdog.pid"
}

stop_watchdog() { # stop_watchdog NAME
  local pid st
  if read -r pid st 2>/dev/null <"$DIR/$1/watchdog.pid" && [ -n "$st" ] && [ "$(starttime "$pid")" = "$st" ]; then
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$DIR/$1/watchdog.pid"
}

# --- commands --------------------------------------------------------------------------------

cmd_up() {
  [ $# -eq 2 ] || usage "up N DIR"
  [[ $1 =~ ^[1-9][0-9]*$ ]] && [ "$1" -le $MAX_HOSTS ] || usage "N must be 1..$MAX_HOSTS: $1"
  local n=$1 i name names=()
  set_dir "$2"
  require_runnable
  [ ! -e "$DIR/rig.hosts" ] || die "a rig is already up in $DIR (cluster-rig.sh down $DIR first)"
  mkdir -p "$DIR"
  for ((i = 1; i <= n; i++)); do names+=("h$i"); done
  for name in "${names[@]}"; do echo "$name $(host_addr "$name")"; done >"$DIR/rig.hosts"
  trap '[ $? -eq 0 ] || log "up failed; cluster-rig.sh down $DIR removes what it started"' EXIT
  make_bridge
  for name in "${names[@]}"; do
    make_host_net "$name"
    mkdir -p "$DIR/$name"
    write_config "$name"
    start_watchdog "$name"
    seed_caps "$name"
    start_host "$name"
    save_caps "$name"
  done
  wait_answers "${names[@]}"
  for name in "${names[@]}"; do print_host "$name"; done
}

cmd_exec() {
  [ $# -ge 4 ] && [ "$3" = -- ] || usage "exec DIR NAME -- CMD..."
  set_dir "$1"
  local name=$2 holder
  need_host "$name"
  shift 3
  holder=$(holder_of "$name" || true)
  if [ -n "$holder" ] && running "$holder" && [ "$(readlink "/proc/$holder/ns/mnt")" = "$(cat "$DIR/$name/mntns" 2>/dev/null)" ]; then
    exec nsenter -t "$holder" -m -n -u -- "$@"
  fi
  # A killed host: only its network namespace is left.
  exec nsenter "--net=/run/netns/$(host_ns "$name")" -- "$@"
}

cmd_kill() {
  [ $# -eq 2 ] || usage "kill DIR NAME"
  set_dir "$1"
  need_host "$2"
  kill_host "$2"
}

cmd_link() { # cmd_link up|down DIR NAME
  local state=$1 i
  shift
  [ $# -eq 2 ] || usage "cut|heal DIR NAME"
  set_dir "$1"
  need_host "$2"
  ns_exists "$BR_NS" || die "bridge namespace $BR_NS is missing"
  # The bridge's end of the veth: the host keeps its address, its rig0 loses the carrier.
  ip -n "$BR_NS" link set "$2" "$state"
  [ "$state" = up ] || return 0
  for ((i = 0; i < 50; i++)); do
    [[ $(ip -n "$(host_ns "$2")" link show rig0) == *LOWER_UP* ]] && return 0
    sleep 0.1
  done
  die "$2: rig0 has no carrier after heal"
}

cmd_start() {
  [ $# -eq 2 ] || usage "start DIR NAME"
  set_dir "$1"
  require_runnable
  need_host "$2"
  start_host "$2"
  wait_answers "$2"
  print_host "$2"
}

cmd_down() {
  [ $# -eq 1 ] || usage "down DIR"
  set_dir "$1"
  local name names=() ns
  mapfile -t names < <(rig_hosts)
  # Hosts whose namespace outlived a lost rig.hosts.
  for ns in $(netns_names); do
    [[ $ns =~ ^hvrig-$RIG_ID-(h[0-9]+)$ ]] || continue
    name=${BASH_REMATCH[1]}
    [[ " ${names[*]} " == *" $name "* ]] || names+=("$name")
  done
  for name in "${names[@]}"; do
    valid_name "$name" || continue
    stop_watchdog "$name"
    kill_host "$name"
    ns=$(host_ns "$name")
    if ns_exists "$ns"; then ip netns del "$ns"; fi
    if [ -d "$DIR/$name" ]; then
      mkdir -p "$DIR/logs/$name"
      cp -a "$DIR/$name/hvd.log" "$DIR/$name/libvirt/log" "$DIR/$name/libvirt/holder.log" "$DIR/$name/watchdog.log" \
        "$DIR/logs/$name/" 2>/dev/null || true
      rm -rf --one-file-system "${DIR:?}/$name"
    fi
  done
  if ns_exists "$BR_NS"; then
    local pid
    for pid in $(ip netns pids "$BR_NS" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
    ip netns del "$BR_NS"
  fi
  rm -rf "$DIR/qemu-caps" "$DIR/qemu-caps.tmp"
  rm -f "$DIR/rig.hosts"
}

[ $# -ge 1 ] || usage
cmd=$1
shift
case "$cmd" in
  up) cmd_up "$@" ;;
  exec) cmd_exec "$@" ;;
  kill) cmd_kill "$@" ;;
  cut) cmd_link down "$@" ;;
  heal) cmd_link up "$@" ;;
  start) cmd_start "$@" ;;
  down) cmd_down "$@" ;;
  -h | --help | help) sed -n '2,12p' "$0"; exit 0 ;;
  *) usage "unknown command '$cmd'" ;;
esac
