#!/bin/bash
# hv in one command on a fresh Debian 12 machine (as root):
#   ./scripts/demo.sh               install packages, build, start libvirtd + hvd, create and
#                                   start the VM demo01, list VMs
#   ./scripts/demo.sh stop          stop what the demo started
#   ./scripts/demo.sh cluster       the same build, then a 3-host cluster on this machine
#                                   (scripts/cluster-rig.sh under build/demo/rig), created
#                                   and joined with hvctl; a VM placed on h2 from h1 and
#                                   started from h3; the cluster's status and VM list
#   ./scripts/demo.sh cluster stop  the rig stopped and removed
#
# Where libvirtd comes from:
# - systemd is PID 1: the host's libvirtd/virtlogd (`systemctl start libvirtd virtlogd`), and
#   hvd with its built-in defaults (socket /run/hv/hvd.sock, state /var/lib/hv,
#   libvirt qemu:///system), so plain `hvctl ...` talks to it.
# - no systemd (containers, CI): a private libvirtd in its own mount + network namespace
#   (scripts/private-libvirtd.sh, state under build/demo/libvirt) so nothing touches the host's
#   network, and hvd with socket/state under build/demo (export HV_SOCKET=... for hvctl).
# hvd runs in the background; its log is build/demo/hvd.log.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd -P)

BUILD_DIR=${BUILD_DIR:-build}
DEMO=$ROOT/$BUILD_DIR/demo
HVD=$ROOT/$BUILD_DIR/src/daemon/hvd
HVCTL=$ROOT/$BUILD_DIR/src/cli/hvctl

say() { printf '\n==> %s\n' "$*"; }

if [ -d /run/systemd/system ]; then
  MODE=system
  SOCKET=/run/hv/hvd.sock
else
  MODE=private
  SOCKET=$DEMO/hvd.sock
fi

hvd_alive() {
  [ -s "$DEMO/hvd.pid" ] && kill -0 "$(cat "$DEMO/hvd.pid")" 2>/dev/null
}

RIG_DIR=$DEMO/rig
if [ "${1:-}" = "cluster" ] && [ "${2:-}" = "stop" ]; then
  HVD=$HVD HVCTL=$HVCTL ./scripts/cluster-rig.sh down "$RIG_DIR"
  echo "the demo cluster is stopped and removed"
  exit 0
fi

if [ "${1:-}" = "stop" ]; then
  if hvd_alive; then
    pid=$(cat "$DEMO/hvd.pid")
    kill -TERM "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    echo "hvd (pid $pid) stopped"
  fi
  rm -f "$DEMO/hvd.pid"
  if [ "$MODE" = private ]; then
    ./scripts/private-libvirtd.sh stop "$DEMO/libvirt"
    echo "private libvirtd stopped (its VMs were powered off)"
  else
    echo "VMs keep running under the host's libvirtd; remove demo01 with:"
    echo "  virsh destroy demo01; virsh undefine demo01; rm -f /var/lib/hv/images/demo01-*"
  fi
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "demo.sh: run as root (sudo $0)" >&2
  exit 1
fi

say "Installing packages (scripts/install-deps.sh)"
./scripts/install-deps.sh

say "Building ($BUILD_DIR)"
cmake -G Ninja -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD_DIR" -j "$(nproc)" --target hvd hvctl

mkdir -p "$DEMO"
if [ "${1:-}" = "cluster" ]; then
  rctl() {
    local h=$1
    shift
    echo "[$h] \$ hvctl $*"
    "$HVCTL" --socket "$RIG_DIR/$h/hvd.sock" "$@"
  }
  say "Three hosts on this machine: scripts/cluster-rig.sh up 3 $RIG_DIR"
  HVD=$HVD HVCTL=$HVCTL ./scripts/cluster-rig.sh down "$RIG_DIR" >/dev/null 2>&1 || true
  mkdir -p "$RIG_DIR"
  chmod 0711 "$DEMO" "$RIG_DIR"
  HVD=$HVD HVCTL=$HVCTL ./scripts/cluster-rig.sh up 3 "$RIG_DIR"
  say "Creating the cluster on h1 and joining h2 and h3"
  rctl h1 cluster create demo --address 10.77.0.11
  for h in h2 h3; do
    token=$("$HVCTL" --socket "$RIG_DIR/h1/hvd.sock" -o json cluster token | sed -n 's/^ *"token": "\(.*\)",*$/\1/p')
    rctl "$h" cluster join 10.77.0.11 --token "$token"
  done
  say "A VM placed on h2 from h1, started from h3"
  rctl h1 vm create web01 --host h2 --cpus 1 --memory 128M
  rctl h3 vm start web01
  rctl h1 vm list
  rctl h3 cluster status
  rctl h2 host list
  cat <<EOT

A 3-host hv cluster runs on this machine (each host in its own network namespace).
  hvctl:      $HVCTL --socket $RIG_DIR/h1/hvd.sock ...   (h2, h3: their own sockets)
  logs:       $RIG_DIR/hI/hvd.log
  try:        a host's death: ./scripts/cluster-rig.sh kill $RIG_DIR h2; then cluster status
  stop it:    ./scripts/demo.sh cluster stop
EOT
  exit 0
fi

HVD_ARGS=(--foreground)
if [ "$MODE" = system ]; then
  say "Starting the host's libvirtd and virtlogd (systemd)"
  systemctl start virtlogd libvirtd
else
  say "Starting a private libvirtd + virtlogd (no systemd here; own mount+network namespace)"
  URI=$(./scripts/private-libvirtd.sh start "$DEMO/libvirt")
  HVD_ARGS+=(--libvirt-uri "$URI" --socket "$SOCKET" --state-dir "$DEMO/state")
fi

if hvd_alive && "$HVCTL" --socket "$SOCKET" host show >/dev/null 2>&1; then
  say "hvd already runs (pid $(cat "$DEMO/hvd.pid"))"
else
  say "Starting hvd: $HVD ${HVD_ARGS[*]}"
  setsid "$HVD" "${HVD_ARGS[@]}" </dev/null >>"$DEMO/hvd.log" 2>&1 &
  echo $! >"$DEMO/hvd.pid"
  for _ in $(seq 200); do
    if "$HVCTL" --socket "$SOCKET" host show >/dev/null 2>&1; then break; fi
    if ! hvd_alive; then
      echo "hvd exited; its log ($DEMO/hvd.log):" >&2
      tail -n 30 "$DEMO/hvd.log" >&2
      exit 1
    fi
    sleep 0.1
  done
fi

ctl() {
  echo "\$ hvctl $*"
  "$HVCTL" --socket "$SOCKET" "$@"
}

say "hvd is up"
ctl host show

say "Creating and starting demo01"
if "$HVCTL" --socket "$SOCKET" vm show demo01 >/dev/null 2>&1; then
  echo "(demo01 exists already)"
else
  ctl vm create demo01 --cpus 1 --memory 256M --disk size=1G
fi
state=$("$HVCTL" --socket "$SOCKET" -o json vm show demo01 | sed -n 's/^ *"state": "\(.*\)",*$/\1/p')
if [ "$state" != running ]; then
  ctl vm start demo01
fi
ctl vm list

cat <<EOF

hv is running.
  hvctl:      $HVCTL  (socket $SOCKET)
EOF
if [ "$MODE" = private ]; then
  cat <<EOF
              export HV_SOCKET=$SOCKET   # so plain 'hvctl' finds this hvd
EOF
fi
cat <<EOF
  hvd log:    $DEMO/hvd.log
  try:        hvctl vm show demo01; hvctl events; hvctl vm shutdown demo01 --timeout 10 --force
  stop it:    ./scripts/demo.sh stop
EOF
