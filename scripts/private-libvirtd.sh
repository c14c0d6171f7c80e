#!/bin/bash
# A private libvirtd + virtlogd for tests and the demo, isolated from the host.
#
#   private-libvirtd.sh start [--fresh] [--netns NAME [--hostname HOST]] DIR
#                                              start (or re-start) the daemons; prints the URI
#   private-libvirtd.sh stop DIR              stop everything: VMs, dnsmasq, daemons, namespaces
#   private-libvirtd.sh stop-libvirtd DIR     stop libvirtd only (VMs keep running), as in a
#                                              libvirtd restart; `start DIR` brings it back
#   private-libvirtd.sh status DIR            exit 0 when libvirtd answers
#   private-libvirtd.sh env DIR               prints `export LIBVIRT_DEFAULT_URI=...` lines
# Exit status of start: 0 ok, 77 this machine cannot run it (not root, libvirtd missing), 1 error.
#
# Design (see ../shared/TESTBED.md):
# - One long-lived "holder" process owns a new MOUNT and a new NETWORK namespace
#   (unshare -m -n --propagation private). Inside the mount namespace, copies under DIR are
#   bind-mounted over /etc/libvirt, /run/libvirt, /var/lib/libvirt, /var/cache/libvirt and
#   /var/log/libvirt, so the host's libvirt state (if any) is never read or written.
# - libvirtd, virtlogd and so every QEMU and dnsmasq they start run inside both namespaces
#   (nsenter -t HOLDER -m -n). The network namespace is why the libvirt NAT network "default"
#   (virbr0, 192.168.122.0/24, iptables rules, dnsmasq) is defined and started here: its bridge,
#   taps and firewall rules exist only in that namespace, never on the host's eth0.
#   QEMU VNC listens on 127.0.0.1 of that namespace (not reachable from the host).
# - The Unix socket DIR/run/libvirt-sock is a file in a host directory, so clients in the host
#   namespaces (hvd, virsh, tests) reach it: qemu:///system?socket=DIR/run/libvirt-sock
#   (written to DIR/uri). Filesystem Unix sockets work across network namespaces.
# - qemu.conf: user/group root (so QEMU can open images anywhere under test directories),
#   security_driver "none" (no AppArmor/SELinux here). libvirtd.conf: no polkit auth.
# - Because the namespaces outlive libvirtd, `stop-libvirtd` + `start` is a real libvirtd
#   restart: the new libvirtd reconnects to the running QEMUs.
# - Processes are stopped only by recorded PIDs (pid files under DIR/run) and, as a last resort,
#   by membership in this script's own network namespace; never by name.
# - DIR must be an absolute host path not under /run/libvirt, /var/lib/libvirt, ... itself.
# - --netns NAME (scripts/cluster-rig.sh: one "host" of a rig): the holder joins the existing
#   network namespace /run/netns/NAME instead of making one (so the caller owns the links and
#   addresses), mounts a sysfs of that namespace (keeping the cgroup mounts) so that
#   /sys/class/net shows its interfaces, and detaches /run/netns (other hosts' namespaces must
#   not be kept alive by this one). --hostname HOST gives it a UTS namespace with that hostname.
#   `stop` then ends only processes in the holder's mount namespace: the network namespace is
#   the caller's. The mode is remembered in DIR/netns.
set -euo pipefail

usage() {
  sed -n '2,11p' "$0" >&2
  exit 2
}

[ $# -ge 2 ] || usage
cmd=$1
shift
fresh=0
netns=
hostname=
while [ $# -gt 1 ]; do
  case "$1" in
    --fresh) fresh=1 ;;
    --netns) [ $# -gt 2 ] || usage; netns=$2; shift ;;
    --hostname) [ $# -gt 2 ] || usage; hostname=$2; shift ;;
    *) usage ;;
  esac
  shift
done
[ $# -eq 1 ] || usage
case "$1" in -*) usage ;; esac
if [ -n "$netns" ] && [ "$cmd" != start ]; then usage; fi
if [ -n "$hostname" ] && [ -z "$netns" ]; then usage; fi
case "$netns" in */* | .*) echo "private-libvirtd: bad --netns name: $netns" >&2; exit 2 ;; esac
mkdir -p "$1"
DIR=$(cd "$1" && pwd -P)
URI="qemu:///system?socket=$DIR/run/libvirt-sock"

log() { echo "private-libvirtd: $*" >&2; }

# running PID -> 0 when the process exists and is not a zombie (daemons are reparented to
# PID 1, which may reap them only seconds later).
running() {
  local st
  kill -0 "$1" 2>/dev/null || return 1
  st=$(sed -n 's/^[0-9]* (.*) \([A-Za-z]\) .*/\1/p' "/proc/$1/stat" 2>/dev/null)
  [ -n "$st" ] && [ "$st" != Z ]
}

alive() { # alive PIDFILE -> 0 when the recorded process runs
  local pid
  [ -s "$1" ] || return 1
  pid=$(tr -dc '0-9' <"$1")
  [ -n "$pid" ] && running "$pid"
}

pid_of() { tr -dc '0-9' <"$1"; }

holder_pid() {
  alive "$DIR/holder.pid" && pid_of "$DIR/holder.pid"
}

in_ns() { # in_ns CMD... : run in the holder's mount + network (+ UTS) namespaces
  nsenter -t "$(holder_pid)" -m -n -u -- "$@"
}

answers() {
  timeout 10 virsh -q -c "$URI" version >/dev/null 2>&1
}

# Waits until the process in PIDFILE is gone; SIGKILL after $2 seconds.
stop_pidfile() {
  local f=$1 secs=${2:-10} pid i
  alive "$f" || { rm -f "$f"; return 0; }
  pid=$(pid_of "$f")
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < secs * 10; i++)); do
    running "$pid" || { rm -f "$f"; return 0; }
    sleep 0.1
  done
  log "pid $pid ($f) did not exit after SIGTERM; sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  sleep 0.2
  rm -f "$f"
}

prepare_dirs() {
  if [ $fresh = 1 ] && [ -d "$DIR" ]; then
    if alive "$DIR/holder.pid"; then
      "$0" stop "$DIR"
    fi
    rm -rf "${DIR:?}/etc" "${DIR:?}/run" "${DIR:?}/lib" "${DIR:?}/cache" "${DIR:?}/log" "$DIR/uri"
  fi
  mkdir -p "$DIR"/{run,lib,cache,log}
  if [ ! -d "$DIR/etc" ]; then
    cp -a /etc/libvirt "$DIR/etc.tmp"
    cat >>"$DIR/etc.tmp/qemu.conf" <<'CONF'

# --- private-libvirtd.sh (tests/demo) ---
user = "root"
group = "root"
security_driver = "none"
CONF
    cat >>"$DIR/etc.tmp/libvirtd.conf" <<'CONF'

# --- private-libvirtd.sh (tests/demo) ---
auth_unix_ro = "none"
auth_unix_rw = "none"
unix_sock_rw_perms = "0700"
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
CONF
    # Its own host UUID (libvirt refuses a migration to a host with the same one; all private
    # libvirtds of this machine would otherwise read the same SMBIOS UUID).
    echo "host_uuid = \"$(printf '%s' "$DIR" | sha256sum | sed -E 's/^(.{8})(.{4}).(.{3}).(.{3})(.{12}).*/\1-\2-4\3-8\4-\5/')\"" >>"$DIR/etc.tmp/libvirtd.conf"
    cat >>"$DIR/etc.tmp/virtlogd.conf" <<'CONF'

# --- private-libvirtd.sh (tests/demo) ---
log_outputs = "3:file:/var/log/libvirt/virtlogd.log"
CONF
    # The NAT network "default" lives in the private network namespace: autostart it.
    mkdir -p "$DIR/etc.tmp/qemu/networks/autostart"
    if [ -f "$DIR/etc.tmp/qemu/networks/default.xml" ]; then
      ln -sf ../default.xml "$DIR/etc.tmp/qemu/networks/autostart/default.xml"
    fi
    mv "$DIR/etc.tmp" "$DIR/etc"
  fi
  # Mount points on the host: empty directories, never written through from here.
  mkdir -p /etc/libvirt /run/libvirt /var/lib/libvirt /var/cache/libvirt /var/log/libvirt
}

start_holder() {
  alive "$DIR/holder.pid" && return 0
  rm -f "$DIR/holder.pid" "$DIR/holder.ready"
  local enter=(unshare -m -n --propagation private --)
  if [ -n "$netns" ]; then
    if [ ! -e "/run/netns/$netns" ]; then
      log "network namespace $netns does not exist (ip netns add $netns)"
      exit 1
    fi
    echo "$netns" >"$DIR/netns"
    mkdir -p "$DIR/cgroup-move"
    enter=(nsenter "--net=/run/netns/$netns" -- unshare -m --propagation private --)
    [ -z "$hostname" ] || enter=(nsenter "--net=/run/netns/$netns" -- unshare -m -u --propagation private --)
  else
    rm -f "$DIR/netns"
  fi
  # The holder sets up the mounts inside the new namespaces, then sleeps forever.
  # shellcheck disable=SC2016
  setsid "${enter[@]}" /bin/sh -c '
    set -e
    D=$1
    if [ -n "$2" ]; then
      # A sysfs of the joined network namespace; the cgroup mounts move over to it.
      mount --rbind /sys/fs/cgroup "$D/cgroup-move"
      umount -l /sys
      mount -t sysfs sysfs /sys
      mount --move "$D/cgroup-move" /sys/fs/cgroup
      if mountpoint -q /run/netns 2>/dev/null; then umount -l /run/netns; fi
    fi
    if [ -n "$3" ]; then hostname "$3"; fi
    mount --bind "$D/etc" /etc/libvirt
    mount --bind "$D/run" /run/libvirt
    mount --bind "$D/lib" /var/lib/libvirt
    mount --bind "$D/cache" /var/cache/libvirt
    mount --bind "$D/log" /var/log/libvirt
    # libvirt (LXC driver) mistakes the empty cgroup2 at .../unified for a hybrid setup.
    if mountpoint -q /sys/fs/cgroup/unified 2>/dev/null; then umount /sys/fs/cgroup/unified || true; fi
    ip link set lo up
    echo $$ >"$D/holder.pid"
    touch "$D/holder.ready"
    exec sleep infinity
  ' holder "$DIR" "$netns" "$hostname" </dev/null >>"$DIR/holder.log" 2>&1 &
  local i
  for ((i = 0; i < 100; i++)); do
    [ -e "$DIR/holder.ready" ] && alive "$DIR/holder.pid" && return 0
    sleep 0.05
  done
  log "namespace holder did not come up; see $DIR/holder.log"
  cat "$DIR/holder.log" >&2 || true
  exit 1
}

# Exit 77 (CTest's "skipped") when this machine cannot run a libvirtd at all.
require_runnable() {
  local t
  if [ "$(id -u)" -ne 0 ]; then
    log "SKIPPED: needs root (mount and network namespaces, libvirtd)"
    exit 77
  fi
  for t in libvirtd virtlogd virsh unshare nsenter ip; do
    if ! command -v "$t" >/dev/null 2>&1 && ! [ -x "/usr/sbin/$t" ]; then
      log "SKIPPED: $t is not installed (scripts/install-deps.sh installs it)"
      exit 77
    fi
  done
}

do_start() {
  require_runnable
  prepare_dirs
  start_holder
  if ! alive "$DIR/run/virtlogd.pid"; then
    in_ns virtlogd -d -p /run/libvirt/virtlogd.pid -f /etc/libvirt/virtlogd.conf
  fi
  if ! alive "$DIR/run/libvirtd.pid"; then
    rm -f "$DIR/run/libvirt-sock" "$DIR/run/libvirt-sock-ro" "$DIR/run/libvirt-admin-sock"
    in_ns libvirtd -d --pid-file /run/libvirt/libvirtd.pid -f /etc/libvirt/libvirtd.conf
  fi
  local i
  for ((i = 0; i < 300; i++)); do
    if answers; then
      echo "$URI" >"$DIR/uri"
      echo "$URI"
      return 0
    fi
    if ! alive "$DIR/run/libvirtd.pid" && [ $i -gt 20 ]; then break; fi
    sleep 0.1
  done
  log "libvirtd did not answer on $URI; last log lines:"
  tail -n 20 "$DIR/log/libvirtd.log" >&2 || true
  exit 1
}

do_stop_libvirtd() {
  stop_pidfile "$DIR/run/libvirtd.pid" 15
}

do_stop() {
  local hp qf pid p
  hp=$(holder_pid || true)
  # 1. The VMs: destroy them through libvirt while it still answers, else kill by pid file.
  if alive "$DIR/run/libvirtd.pid" && answers; then
    for d in $(virsh -q -c "$URI" list --name 2>/dev/null); do
      timeout 20 virsh -q -c "$URI" destroy "$d" >/dev/null 2>&1 || true
    done
  fi
  # (driver.pid is libvirtd's own lock file, not a VM.)
  for qf in "$DIR"/run/qemu/*.pid; do
    [ -e "$qf" ] && [ "${qf##*/}" != driver.pid ] || continue
    stop_pidfile "$qf" 5
  done
  do_stop_libvirtd
  stop_pidfile "$DIR/run/virtlogd.pid" 10
  for p in "$DIR"/run/network/*.pid; do
    [ -e "$p" ] && [ "${p##*/}" != driver.pid ] || continue
    stop_pidfile "$p" 5
  done
  # 2. Anything else still inside our own network namespace (started by the daemons above);
  #    with --netns, inside our own mount namespace (the network namespace is the caller's).
  if [ -n "$hp" ]; then
    local ns kind=net
    [ ! -e "$DIR/netns" ] || kind=mnt
    ns=$(readlink "/proc/$hp/ns/$kind" || true)
    if [ -n "$ns" ]; then
      local pat=${ns//[/\\[}
      pat=${pat//]/\\]}
      for nsl in $(find /proc/[0-9]*/ns/$kind -maxdepth 0 -lname "$pat" 2>/dev/null); do
        pid=${nsl#/proc/}
        pid=${pid%%/*}
        [ "$pid" = "$hp" ] && continue
        log "killing leftover pid $pid ($(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | cut -c1-80))"
        kill -KILL "$pid" 2>/dev/null || true
      done
    fi
  fi
  # 3. The holder: with it gone the namespaces (and the bind mounts) disappear.
  stop_pidfile "$DIR/holder.pid" 5
  rm -f "$DIR/holder.ready"
  # Runtime state of a namespace that no longer exists would mislead the next libvirtd
  # (e.g. it would believe the network "default" is still up).
  if [ -d "$DIR/run" ]; then
    find "$DIR/run" -mindepth 1 -delete 2>/dev/null || true
  fi
}

case "$cmd" in
  start) do_start ;;
  stop) do_stop ;;
  stop-libvirtd) do_stop_libvirtd ;;
  status)
    if alive "$DIR/run/libvirtd.pid" && answers; then
      echo "$URI"
    else
      exit 1
    fi
    ;;
  env)
    echo "export LIBVIRT_DEFAULT_URI='$URI'"
    echo "export HV_TEST_LIBVIRT_URI='$URI'"
    ;;
  *) usage ;;
esac
