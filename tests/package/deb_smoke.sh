#!/bin/bash
# The Debian package end to end, on this machine (CI: after scripts/test.sh built it):
#   deb_smoke.sh DEB_DIR
# lintian (no errors) -> `apt-get install ./hv_*.deb` -> what the package installed (group hv,
# conffile, /var/lib/hv, enabled units, man pages, bash completion) -> `systemd-analyze verify`
# on the installed units -> the installed hvd started with its unit's ExecStart (no systemd as
# PID 1 here: by hand, with a notify socket standing in for systemd's) against the private
# libvirtd, with a test socket and state dir -> the installed hvctl (host, vm list, storage
# pool list, hv-guests.service's ExecStart and ExecStop) -> hvd stopped by PID -> apt-get
# remove; purge (checking that it keeps the disks) only when /etc/hv and /var/lib/hv did not
# exist before this test, so nothing the test did not create is ever deleted.
# Environment: HV_TEST_LIBVIRT_URI (the libvirtd fixture); HV_REQUIRE_DEB=1 makes a missing
# .deb a failure instead of a skip (scripts/test.sh sets it).
set -euo pipefail

deb_dir=${1:?usage: deb_smoke.sh DEB_DIR}
skip() { echo "SKIPPED: $*"; exit 77; }
fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "--- $*"; }

[ "$(id -u)" -eq 0 ] || skip "the package test installs a .deb: it needs root"
shopt -s nullglob
debs=("$deb_dir"/hv_*.deb)
shopt -u nullglob
if [ ${#debs[@]} -eq 0 ]; then
    msg="no hv_*.deb in $deb_dir (scripts/test.sh builds it with dpkg-buildpackage and moves it there)"
    if [ "${HV_REQUIRE_DEB:-0}" = 1 ]; then fail "$msg"; fi
    skip "$msg"
fi
[ ${#debs[@]} -eq 1 ] || fail "several packages in $deb_dir: ${debs[*]}"
deb=${debs[0]}
if dpkg-query -W -f='${Status}' hv 2>/dev/null | grep -q 'installed'; then
    skip "package hv is already installed on this machine; this test installs and removes it, so it leaves it alone"
fi
uri=${HV_TEST_LIBVIRT_URI:?HV_TEST_LIBVIRT_URI is not set (the private libvirtd fixture)}

work=$(mktemp -d /tmp/hv-deb-XXXXXX)
hvd_pid="" notify_pid="" installed=0
# Created by this test only (checked before installing): then purge may run.
purge_ok=1
[ ! -e /etc/hv ] || purge_ok=0
[ ! -e /var/lib/hv ] || purge_ok=0
cleanup() {
    local rc=$?
    [ -z "$hvd_pid" ] || kill "$hvd_pid" 2>/dev/null || true
    [ -z "$notify_pid" ] || kill "$notify_pid" 2>/dev/null || true
    if [ "$installed" = 1 ]; then apt-get remove -y -q hv >/dev/null 2>&1 || true; fi
    if [ "$rc" -ne 0 ] && [ -f "$work/hvd.log" ]; then echo "--- hvd.log:"; tail -n 40 "$work/hvd.log"; fi
    rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT

step "lintian $(basename "$deb") (errors fail the test; warnings are listed)"
lintian --fail-on error --tag-display-limit 0 "$deb" || fail "lintian reported errors"

step "apt-get install ./$(basename "$deb")"
installed=1
(cd "$(dirname "$deb")" && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "./$(basename "$deb")")

step "what the package installed"
for f in /usr/sbin/hvd /usr/bin/hvctl; do [ -x "$f" ] || fail "$f missing"; done
getent group hv >/dev/null || fail "group hv was not created"
dpkg-query -W -f='${Conffiles}\n' hv | grep -q ' /etc/hv/hvd.toml ' || fail "/etc/hv/hvd.toml is not a conffile"
/usr/sbin/hvd --print-default-config | cmp -s - /etc/hv/hvd.toml || fail "/etc/hv/hvd.toml differs from hvd's defaults"
[ "$(stat -c %a /var/lib/hv)" = 711 ] || fail "/var/lib/hv has mode $(stat -c %a /var/lib/hv), not 711"
units=(/lib/systemd/system/hvd.service /lib/systemd/system/hv-guests.service /lib/systemd/system/hvd.socket)
for u in "${units[@]}"; do
    [ -f "$u" ] || fail "$u missing"
    target=multi-user.target.wants
    [[ $u == *.socket ]] && target=sockets.target.wants
    [ -L "/etc/systemd/system/$target/$(basename "$u")" ] || fail "$(basename "$u") is not enabled"
done
[ -f /usr/share/bash-completion/completions/hvctl ] || fail "bash completion missing"
echo "man pages: $(man -w hvctl) $(man -w hvd)"
man -P cat hvctl 2>/dev/null | grep -q 'hvctl vm create' || fail "hvctl(1) does not document 'vm create'"
man -P cat hvd 2>/dev/null | grep -q -- '--libvirt-uri' || fail "hvd(8) does not document --libvirt-uri"
[ -f /usr/share/doc/hv/packaging.md ] || fail "docs missing in /usr/share/doc/hv"

step "systemd-analyze verify ${units[*]}"
command -v systemd-analyze >/dev/null || fail "systemd-analyze missing (package systemd)"
# It works without systemd as PID 1: it loads the units offline and checks the binaries and
# man pages they name. Any output is a finding.
out=$(systemd-analyze verify "${units[@]}" 2>&1) || fail "systemd-analyze verify failed: $out"
[ -z "$out" ] || fail "systemd-analyze verify: $out"
echo "verify: OK"

step "installed hvd with the unit's ExecStart, as systemd would run it (Type=notify, watchdog)"
exec_start=$(sed -n 's/^ExecStart=//p' /lib/systemd/system/hvd.service)
read -r -a argv <<<"$exec_start"
[ "${argv[0]}" = /usr/sbin/hvd ] || fail "unexpected ExecStart: $exec_start"
watchdog_sec=$(sed -n 's/^WatchdogSec=\([0-9]*\)s$/\1/p' /lib/systemd/system/hvd.service)
[ -n "$watchdog_sec" ] || fail "hvd.service has no WatchdogSec=Ns"
# systemd's notification socket, played by perl (perl-base is always there): one line a datagram.
perl -MIO::Socket::UNIX -e '
    $| = 1;
    my $s = IO::Socket::UNIX->new(Type => SOCK_DGRAM, Local => $ARGV[0]) or die "notify socket: $!";
    while (defined $s->recv(my $m, 4096)) { $m =~ s/\n/ /g; print "$m\n"; }' "$work/notify" >"$work/notify.log" &
notify_pid=$!
for _ in $(seq 50); do [ -S "$work/notify" ] && break; sleep 0.1; done
sock=$work/hvd.sock
# The watchdog is asked at 2 s so the test sees pings; the unit's WatchdogSec is $watchdog_sec s.
(
    export NOTIFY_SOCKET=$work/notify WATCHDOG_USEC=2000000
    export WATCHDOG_PID=$BASHPID
    exec "${argv[@]}" --socket "$sock" --state-dir "$work/state" --libvirt-uri "$uri" --accel tcg
) >"$work/hvd.log" 2>&1 &
hvd_pid=$!
for _ in $(seq 300); do
    grep -q 'READY=1' "$work/notify.log" && break
    kill -0 "$hvd_pid" 2>/dev/null || fail "hvd exited before READY=1"
    sleep 0.1
done
grep -q 'READY=1' "$work/notify.log" || fail "no READY=1 from hvd within 30 s"
echo "notify: $(grep -m1 'READY=1' "$work/notify.log")"
# READY=1 means the socket answers: no retry loop here.
hvctl=/usr/bin/hvctl
"$hvctl" --socket "$sock" host show
"$hvctl" --socket "$sock" vm list -o json | tee "$work/vms.json"
grep -q '^\[' "$work/vms.json" || fail "vm list -o json is not a JSON array"
"$hvctl" --socket "$sock" storage pool list | tee "$work/pools.txt"
grep -q '^local ' "$work/pools.txt" || fail "pool 'local' missing from storage pool list"

step "hv-guests.service: its ExecStart and ExecStop with the installed hvctl"
for key in ExecStart ExecStop; do
    line=$(sed -n "s/^$key=-\{0,1\}//p" /lib/systemd/system/hv-guests.service)
    read -r -a cmd <<<"$line"
    [ "${cmd[0]}" = "$hvctl" ] || fail "unexpected hv-guests $key: $line"
    echo "$key: ${cmd[*]}"
    HV_SOCKET=$sock "${cmd[@]}" || fail "hv-guests $key failed: ${cmd[*]}"
done

step "bash completion (installed file)"
complete_words() {  # complete_words WORD... -> COMPREPLY for the last word
    bash -c 'source /usr/share/bash-completion/completions/hvctl
             COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _hvctl; echo "${COMPREPLY[*]}"' _ "$@"
}
[ "$(complete_words hvctl vm cr)" = create ] || fail "'hvctl vm cr<TAB>' gave '$(complete_words hvctl vm cr)'"
got=$(complete_words hvctl vm list -o '')
[[ " $got " == *" json "* && " $got " == *" table "* ]] || fail "'hvctl vm list -o <TAB>' gave '$got'"
got=$(complete_words hvctl storage pool add fast --ty)
[ "$got" = --type ] || fail "'hvctl storage pool add fast --ty<TAB>' gave '$got'"
echo "completion: OK"

step "stop hvd by PID (SIGTERM): STOPPING=1, exit 0"
kill -TERM "$hvd_pid"
rc=0
wait "$hvd_pid" || rc=$?
hvd_pid=""
[ "$rc" -eq 0 ] || fail "hvd exited with $rc after SIGTERM"
sleep 0.2
grep -q 'STOPPING=1' "$work/notify.log" || fail "no STOPPING=1 from hvd"
[ "$(grep -c 'WATCHDOG=1' "$work/notify.log")" -ge 1 ] || fail "no WATCHDOG=1 ping from hvd"
echo "notify messages: $(sort "$work/notify.log" | uniq -c | tr -s ' \n' ' ')"

if [ "$purge_ok" = 1 ]; then
    step "apt-get purge: config and state go, disks stay (listed)"
    # What hvd would have written, and a "disk" in the built-in pool local.
    mkdir -p /var/lib/hv/images/images /var/lib/hv/tasks
    echo '{}' >/var/lib/hv/pools.json
    echo '{}' >/var/lib/hv/tasks/1.json
    echo disk >/var/lib/hv/images/images/vm-test-disk0.qcow2
    DEBIAN_FRONTEND=noninteractive apt-get purge -y -q hv 2>&1 | tee "$work/purge.log"
    installed=0
    [ ! -e /usr/sbin/hvd ] || fail "/usr/sbin/hvd still there after purge"
    [ ! -e /etc/hv ] || fail "/etc/hv still there after purge"
    [ ! -e /var/lib/hv/pools.json ] && [ ! -e /var/lib/hv/tasks ] || fail "state files still there after purge"
    [ -f /var/lib/hv/images/images/vm-test-disk0.qcow2 ] || fail "purge deleted a VM disk"
    grep -q 'hv:   /var/lib/hv/images' "$work/purge.log" || fail "purge did not say where the disks are"
    [ ! -e /etc/systemd/system/multi-user.target.wants/hvd.service ] || fail "hvd.service still enabled after purge"
    rm -rf /var/lib/hv  # only what this test created: it did not exist before
else
    step "apt-get remove (no purge: /etc/hv or /var/lib/hv existed before this test)"
    DEBIAN_FRONTEND=noninteractive apt-get remove -y -q hv
    installed=0
    [ ! -e /usr/sbin/hvd ] || fail "/usr/sbin/hvd still there after remove"
    [ -f /etc/hv/hvd.toml ] || fail "remove deleted the conffile /etc/hv/hvd.toml"
fi
echo "PASS"
