#!/bin/bash
# scripts/cluster-rig.sh end to end: two hosts come up and answer, they reach each other over
# the rig's bridge, cut/heal take one off the network and back, kill ends exactly one host's
# processes and start brings it back, down leaves no namespace and no process behind.
# Environment: HVD, HVCTL (the binaries under test; CTest passes the build's).
# Exit 0 pass, 1 fail, 77 skipped (not root, or libvirtd/ping missing: printed reason).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd -P)
RIG=$ROOT/scripts/cluster-rig.sh
HVCTL=${HVCTL:-$ROOT/build/src/cli/hvctl}
export HVD=${HVD:-$ROOT/build/src/daemon/hvd} HVCTL

skip() {
  echo "SKIPPED: $*"
  exit 77
}
[ "$(id -u)" -eq 0 ] || skip "needs root (network namespaces, private libvirtds)"
for t in libvirtd virtlogd virsh ip nsenter ping; do
  command -v "$t" >/dev/null 2>&1 || [ -x "/usr/sbin/$t" ] ||
    skip "$t is not installed (scripts/install-deps.sh installs it)"
done

step() { echo "--- $*"; }
fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# running PID -> 0 when the process exists and is not a zombie
running() {
  local s
  s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  s=${s##*) }
  [ "${s%% *}" != Z ]
}

answers() { timeout 15 "$HVCTL" --socket "$1" host show -o json; }

ping_from() { # ping_from HOST ADDRESS
  "$RIG" exec "$DIR" "$1" -- ping -c1 -W2 "$2" >/dev/null 2>&1
}

# The recorded processes of a host: "ROLE PID STARTTIME" lines of DIR/NAME/pids.
recorded() { awk '{print $2}' "$DIR/$1/pids"; }
hvd_of() { awk '$1 == "hvd" {print $2}' "$DIR/$1/pids"; }

DIR=$(mktemp -d /tmp/hvrig-test.XXXXXX)
ok=0
cleanup() {
  local rc=$?
  "$RIG" down "$DIR" >/dev/null 2>&1 || echo "note: cluster-rig.sh down failed" >&2
  if [ $ok = 1 ]; then
    rm -rf "$DIR"
  else
    echo "logs of the hosts: $DIR/logs" >&2
    for f in "$DIR"/logs/*/hvd.log; do
      [ -e "$f" ] || continue
      echo "---- $f (last lines)" >&2
      tail -n 15 "$f" >&2
    done
  fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 143' TERM INT  # a CTest timeout: still down the rig

step "bad usage exits 2"
for args in "" "bogus" "up 0 $DIR" "up x $DIR" "up 2" "exec $DIR h1 ping" "kill $DIR" "cut $DIR nohost"; do
  rc=0
  # shellcheck disable=SC2086
  "$RIG" $args >/dev/null 2>&1 || rc=$?
  [ $rc -eq 2 ] || fail "cluster-rig.sh $args: exit $rc, expected 2"
done

netns_before=$(ip netns list | awk '{print $1}' | sort)

step "up 2 $DIR"
rc=0
out=$("$RIG" up 2 "$DIR") || rc=$?
[ $rc -ne 77 ] || skip "cluster-rig.sh cannot run here (its message is above)"
[ $rc -eq 0 ] || fail "up exited $rc"
echo "$out"
[ "$(echo "$out" | wc -l)" -eq 2 ] || fail "up printed $(echo "$out" | wc -l) lines, expected 2"
read -r n1 a1 s1 < <(sed -n 1p <<<"$out")
read -r n2 a2 s2 < <(sed -n 2p <<<"$out")
[ "$n1" = h1 ] && [ "$n2" = h2 ] || fail "host names: $n1 $n2"
[ "$a1" = 10.77.0.11 ] && [ "$a2" = 10.77.0.12 ] || fail "addresses: $a1 $a2"
[ -S "$s1" ] && [ -S "$s2" ] || fail "sockets are not Unix sockets: $s1 $s2"
netns_rig=$(comm -13 <(echo "$netns_before") <(ip netns list | awk '{print $1}' | sort))
[ "$(echo "$netns_rig" | wc -l)" -eq 3 ] || fail "expected 3 new network namespaces (bridge + 2 hosts), got: $netns_rig"

step "both hvds answer host show, each on its own host"
for h in "h1 $s1" "h2 $s2"; do
  read -r name sock <<<"$h"
  json=$(answers "$sock") || fail "$name: hvctl --socket $sock host show -o json failed"
  grep -Eq "\"hostname\" *: *\"$name\"" <<<"$json" || fail "$name: hostname is not $name: $json"
  grep -Eq '"libvirt_connected" *: *true' <<<"$json" || fail "$name: hvd is not connected to its libvirtd: $json"
done

step "h1 pings h2"
ping_from h1 "$a2" || fail "h1 cannot ping $a2"
ping_from h2 "$a1" || fail "h2 cannot ping $a1"
[[ $(ip -br addr) != *10.77.0.* ]] || fail "a rig address appears in the machine's own network namespace"

step "cut h2: no ping"
"$RIG" cut "$DIR" h2 || fail "cut h2 failed"
ping_from h1 "$a2" && fail "h1 still pings $a2 after cut h2"

step "heal h2: ping again"
"$RIG" heal "$DIR" h2 || fail "heal h2 failed"
healed=0
for _ in 1 2 3; do
  if ping_from h1 "$a2"; then healed=1; break; fi
done
[ $healed = 1 ] || fail "h1 cannot ping $a2 after heal h2"

qemu_pid=
if command -v qemu-system-x86_64 >/dev/null 2>&1; then
  step "a VM on h2 (virsh inside h2 talks to h2's libvirtd)"
  cat >"$DIR/rigvm.xml" <<'EOF'
<domain type='qemu'><name>rigvm</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>
<os><type arch='x86_64' machine='pc'>hvm</type></os><devices/></domain>
EOF
  "$RIG" exec "$DIR" h2 -- virsh -q create "$DIR/rigvm.xml" >/dev/null || fail "virsh create on h2 failed"
  qemu_pid=$(tr -dc 0-9 <"$DIR/h2/libvirt/run/qemu/rigvm.pid")
  running "$qemu_pid" || fail "h2's QEMU ($qemu_pid) does not run"
  vms=$("$RIG" exec "$DIR" h1 -- virsh -q list --name) || fail "virsh list on h1 failed"
  ! grep -qx rigvm <<<"$vms" || fail "h1's libvirtd lists h2's VM"
else
  echo "note: qemu-system-x86_64 is not installed: kill is not checked against a QEMU"
fi

step "kill h2: its processes are gone, h1 is untouched"
mapfile -t h2_pids < <(recorded h2)
old_hvd=$(hvd_of h2)
[ -n "$old_hvd" ] && running "$old_hvd" || fail "h2's recorded hvd ($old_hvd) does not run before kill"
[ ${#h2_pids[@]} -ge 4 ] || fail "h2 records ${#h2_pids[@]} pids, expected holder, virtlogd, libvirtd, hvd"
"$RIG" kill "$DIR" h2 || fail "kill h2 failed"
for p in "${h2_pids[@]}"; do
  ! running "$p" || fail "h2's recorded pid $p still runs after kill"
done
[ -z "$qemu_pid" ] || ! running "$qemu_pid" || fail "h2's QEMU ($qemu_pid) still runs after kill"
answers "$s2" >/dev/null 2>&1 && fail "h2's socket still answers after kill"
for p in $(recorded h1); do running "$p" || fail "h1's pid $p died when h2 was killed"; done
answers "$s1" >/dev/null || fail "h1 does not answer after kill h2"

step "start h2: answers again"
out=$("$RIG" start "$DIR" h2) || fail "start h2 failed"
echo "$out"
[ "$out" = "h2 $a2 $s2" ] || fail "start printed '$out'"
answers "$s2" >/dev/null || fail "h2 does not answer after start"
new_hvd=$(hvd_of h2)
[ "$new_hvd" != "$old_hvd" ] && running "$new_hvd" || fail "h2's hvd was not restarted ($old_hvd -> $new_hvd)"
ping_from h1 "$a2" || fail "h1 cannot ping $a2 after start h2"

step "down: no namespace and no recorded process left"
mapfile -t all_pids < <(recorded h1; recorded h2)
"$RIG" down "$DIR" || fail "down failed"
netns_after=$(ip netns list | awk '{print $1}')
for ns in $netns_rig; do
  ! grep -qx "$ns" <<<"$netns_after" || fail "network namespace $ns still exists after down"
done
for p in "${all_pids[@]}" "${h2_pids[@]}"; do
  ! running "$p" || fail "recorded pid $p still runs after down"
done
[ ! -e "$DIR/h1" ] && [ ! -e "$DIR/h2" ] || fail "down left host directories in $DIR"
"$RIG" down "$DIR" || fail "a second down failed (down must be idempotent)"

ok=1
echo "PASS"
