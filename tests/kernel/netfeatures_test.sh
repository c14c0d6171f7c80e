#!/bin/bash
# Proves that the kernel features hv's networking needs work, using only iproute2 and ping, in
# network namespaces. Runs inside Debian's kernel through scripts/kernel-run.sh (this host's
# kernel lacks bonding, 802.1Q and bridge VLAN filtering):
#   scripts/kernel-run.sh -- tests/kernel/netfeatures_test.sh
# (a) veth pairs report 10000 Mb/s full duplex ("10GbE uplinks"); dummy devices exist;
# (b) an active-backup bond (miimon 100) of two veths fails over: ping passes, the active
#     member loses carrier, ping still passes through the other member;
# (c) a VLAN-aware bridge: two ports on VLAN 100 (PVID, untagged) reach each other, a port on
#     VLAN 200 reaches neither; `bridge -j vlan show` shows exactly that membership;
# (d) 802.1Q sub-interfaces on veths: point to point, and as a tagged trunk into the bridge
#     (VLAN 200 tagged reaches the VLAN 200 untagged port, not VLAN 100).
# Output is TAP-like ("ok N - ..." / "not ok N - ..."); exit 0 only when everything passed.
set -uo pipefail

if [ "${HV_KERNEL_RUN:-}" != 1 ]; then
  echo "SKIP: run inside the test kernel: scripts/kernel-run.sh -- $0" >&2
  exit 77
fi
for tool in ip bridge; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool (iproute2) missing" >&2; exit 1; }
done
if command -v ping >/dev/null; then PING=(ping)
elif command -v busybox >/dev/null; then PING=(busybox ping)   # iputils-ping not installed
else echo "FAIL: no ping (install iputils-ping)" >&2; exit 1
fi

n=0 failed=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $*"; }
check() {  # check "description" command...
  local d=$1; shift
  if "$@"; then ok "$d"; else not_ok "$d"; fi
}
nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
# reaches NS ADDR: one reply within ~5 s (the first ping may wait for ARP / failover).
reaches() {
  local i
  for i in 1 2 3 4 5; do
    nsx "$1" "${PING[@]}" -q -c 1 -W 1 "$2" >/dev/null 2>&1 && return 0
  done
  return 1
}
# blocked NS ADDR: no reply to 2 pings.
blocked() { ! nsx "$1" "${PING[@]}" -q -c 2 -W 1 "$2" >/dev/null 2>&1; }
veth() {  # veth NS1 IF1 NS2 IF2: a veth pair between two namespaces, both ends up
  ip link add "$2" netns "$1" type veth peer name "$4" netns "$3" &&
    ip -n "$1" link set "$2" up && ip -n "$3" link set "$4" up
}
newns() { local ns; for ns in "$@"; do ip netns add "$ns" && ip -n "$ns" link set lo up; done; }

NSS=()
cleanup() { local ns; for ns in "${NSS[@]}"; do ip netns del "$ns" 2>/dev/null; done; }
trap cleanup EXIT
echo "# kernel $(uname -r); $(ip -V); ping: ${PING[*]}"

# --- (a) 10GbE veth uplinks, dummy ------------------------------------------------------
NSS+=(hvt-a1 hvt-a2)
newns hvt-a1 hvt-a2
veth hvt-a1 up0 hvt-a2 up0
speed=$(nsx hvt-a1 cat /sys/class/net/up0/speed 2>/dev/null)
duplex=$(nsx hvt-a1 cat /sys/class/net/up0/duplex 2>/dev/null)
check "veth reports 10000 Mb/s (got '$speed')" [ "$speed" = 10000 ]
check "veth reports full duplex (got '$duplex')" [ "$duplex" = full ]
check "dummy device" ip -n hvt-a1 link add dummy0 type dummy

# --- (b) active-backup bond of two veths, failover ---------------------------------------
# hvt-b1: bond0 = m0 + m1 (10.0.1.1); hvt-b2: their peers s0, s1 in bridge sw (10.0.1.2).
NSS+=(hvt-b1 hvt-b2)
newns hvt-b1 hvt-b2
check "bond active-backup miimon 100 created" \
  ip -n hvt-b1 link add bond0 type bond mode active-backup miimon 100
veth hvt-b1 m0 hvt-b2 s0
veth hvt-b1 m1 hvt-b2 s1
ip -n hvt-b1 link set m0 down
ip -n hvt-b1 link set m1 down
check "members enslaved" sh -c 'ip -n hvt-b1 link set m0 master bond0 && ip -n hvt-b1 link set m1 master bond0'
ip -n hvt-b1 link set bond0 up
ip -n hvt-b1 addr add 10.0.1.1/24 dev bond0
ip -n hvt-b2 link add sw type bridge
ip -n hvt-b2 link set s0 master sw
ip -n hvt-b2 link set s1 master sw
ip -n hvt-b2 link set sw up
ip -n hvt-b2 addr add 10.0.1.2/24 dev sw
bondinfo=$(ip -n hvt-b1 -d -j link show bond0)
check "bond mode is active-backup" grep -q '"mode":"active-backup"' <<<"$bondinfo"
check "bond miimon is 100" grep -q '"miimon":100' <<<"$bondinfo"
check "ping across the bond" reaches hvt-b1 10.0.1.2
active=$(nsx hvt-b1 cat /sys/class/net/bond0/bonding/active_slave)
check "bond has an active member (got '$active')" [ "$active" = m0 -o "$active" = m1 ]
if [ "$active" = m0 ]; then peer=s0 other=m1; else peer=s1 other=m0; fi
# The "cable" of the active member is pulled: its peer goes down, the member loses carrier.
ip -n hvt-b2 link set "$peer" down
for _ in $(seq 1 30); do
  [ "$(nsx hvt-b1 cat /sys/class/net/bond0/bonding/active_slave)" = "$other" ] && break
  sleep 0.1
done
now=$(nsx hvt-b1 cat /sys/class/net/bond0/bonding/active_slave)
check "failover to $other after $active lost carrier (active now '$now')" [ "$now" = "$other" ]
check "ping across the bond after failover" reaches hvt-b1 10.0.1.2
ip -n hvt-b2 link set "$peer" up

# --- (c) VLAN-aware bridge, (d) 802.1Q sub-interfaces -------------------------------------
# hvt-sw: br0 (vlan_filtering 1) with ports p1, p2 (VLAN 100 PVID untagged), p3 (VLAN 200 PVID
# untagged), p4 (trunk: VLAN 200 tagged). Hosts hvt-h1..h4 (10.0.2.N; h4 on its e0.200).
NSS+=(hvt-sw hvt-h1 hvt-h2 hvt-h3 hvt-h4)
newns hvt-sw hvt-h1 hvt-h2 hvt-h3 hvt-h4
check "VLAN-aware bridge created (vlan_filtering 1)" \
  ip -n hvt-sw link add br0 type bridge vlan_filtering 1
check "bridge reports vlan_filtering 1" \
  grep -q '"vlan_filtering":1' <<<"$(ip -n hvt-sw -d -j link show br0)"
ip -n hvt-sw link set br0 up
for i in 1 2 3 4; do
  veth hvt-sw "p$i" "hvt-h$i" e0
  ip -n hvt-sw link set "p$i" master br0
  bridge -n hvt-sw vlan del dev "p$i" vid 1
done
bridge -n hvt-sw vlan add dev p1 vid 100 pvid untagged
bridge -n hvt-sw vlan add dev p2 vid 100 pvid untagged
bridge -n hvt-sw vlan add dev p3 vid 200 pvid untagged
bridge -n hvt-sw vlan add dev p4 vid 200
for i in 1 2 3; do ip -n "hvt-h$i" addr add "10.0.2.$i/24" dev e0; done
check "802.1Q sub-interface e0.200 on a veth" \
  ip -n hvt-h4 link add link e0 name e0.200 type vlan id 200
ip -n hvt-h4 link set e0.200 up
ip -n hvt-h4 addr add 10.0.2.4/24 dev e0.200
check "e0.200 is 802.1Q id 200" \
  grep -q '"protocol":"802.1Q","id":200' <<<"$(ip -n hvt-h4 -d -j link show e0.200)"

vlans=$(bridge -n hvt-sw -j vlan show)
echo "# bridge -j vlan show: $vlans"
has() { grep -q "\"ifname\":\"$1\",\"vlans\":\[$2\]" <<<"$vlans"; }
check "p1: exactly VLAN 100 PVID untagged" has p1 '{"vlan":100,"flags":\["PVID","Egress Untagged"\]}'
check "p2: exactly VLAN 100 PVID untagged" has p2 '{"vlan":100,"flags":\["PVID","Egress Untagged"\]}'
check "p3: exactly VLAN 200 PVID untagged" has p3 '{"vlan":200,"flags":\["PVID","Egress Untagged"\]}'
check "p4: exactly VLAN 200 tagged" has p4 '{"vlan":200}'

check "VLAN 100: h1 reaches h2" reaches hvt-h1 10.0.2.2
check "VLAN 100: h2 reaches h1" reaches hvt-h2 10.0.2.1
check "VLAN 200 port h3 does not reach h1 (VLAN 100)" blocked hvt-h3 10.0.2.1
check "VLAN 100 port h1 does not reach h3 (VLAN 200)" blocked hvt-h1 10.0.2.3
check "tagged VLAN 200 (h4 e0.200) reaches untagged VLAN 200 (h3)" reaches hvt-h4 10.0.2.3
check "tagged VLAN 200 (h4 e0.200) does not reach VLAN 100 (h2)" blocked hvt-h4 10.0.2.2

# (d) point to point: 802.1Q on both ends of a veth; untagged traffic stays apart.
NSS+=(hvt-q1 hvt-q2)
newns hvt-q1 hvt-q2
veth hvt-q1 e0 hvt-q2 e0
for i in 1 2; do
  ip -n "hvt-q$i" link add link e0 name e0.100 type vlan id 100
  ip -n "hvt-q$i" link set e0.100 up
  ip -n "hvt-q$i" addr add "10.0.3.$i/24" dev e0.100
  ip -n "hvt-q$i" addr add "10.0.4.$i/24" dev e0
done
check "802.1Q point to point: ping over e0.100" reaches hvt-q1 10.0.3.2
check "802.1Q point to point: untagged ping over e0" reaches hvt-q1 10.0.4.2
ip -n hvt-q2 link set e0.100 down
check "802.1Q point to point: no reply with the peer's e0.100 down" blocked hvt-q1 10.0.3.2

echo "1..$n"
if [ "$failed" -ne 0 ]; then
  echo "# $failed of $n checks failed"
  exit 1
fi
echo "# all $n checks passed"
