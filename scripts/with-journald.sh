#!/bin/sh
# with-journald.sh DIR -- COMMAND [ARGS...]
# Runs COMMAND with a systemd-journald of its own, for tests of hvd's journal output on a
# machine without systemd. Meant to run under `unshare -m --propagation private`: the tmpfs
# mounts over the journal's directories then stay private to this mount namespace, so nothing
# reaches a host journal. journald's pid goes to DIR/journald.pid (the caller stops it); read
# the journal with `nsenter -m -t <that pid> journalctl ...`.
set -eu
dir=$1
shift
[ "${1:-}" = "--" ] && shift
for d in /run/systemd /run/log /var/log/journal; do
    [ -d "$d" ] || mkdir -p "$d"
    mount -t tmpfs -o mode=0755 tmpfs "$d"
done
mkdir -p /run/systemd/journal
/lib/systemd/systemd-journald </dev/null >"$dir/journald.log" 2>&1 &
echo $! >"$dir/journald.pid"
i=0
while [ ! -S /run/systemd/journal/socket ] && [ $i -lt 200 ]; do
    sleep 0.05
    i=$((i + 1))
done
exec "$@"
