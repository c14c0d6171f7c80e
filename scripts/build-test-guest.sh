#!/bin/bash
# Builds a tiny bootable test guest from Debian packages: OUTDIR/vmlinuz + OUTDIR/initrd.gz.
#
#   build-test-guest.sh OUTDIR
#
# - Kernel: Debian's linux-image-6.1.0-<N>-cloud-amd64 (the one linux-image-cloud-amd64 points
#   to, else the newest listed), fetched with `apt-get download` and cached in OUTDIR.
# - Guest agent: qemu-ga from Debian's qemu-guest-agent package (`apt-get download`, cached in
#   OUTDIR) with the libraries `ldd` lists and the dynamic loader.
# - Initrd (~3 MB): busybox-static, qemu-ga, and the kernel's evdev, button, virtio
#   (ring, core, pci, console), virtio_net (+ failover, net_failover) and virtio_blk modules. /init:
#   * mounts proc/sys/devtmpfs, starts busybox `acpid` so that an ACPI power-button press
#     (libvirt `shutdown` in ACPI mode) prints "HV-GUEST-POWEROFF (ACPI power button)" and runs
#     `poweroff -f`;
#   * when the domain has the agent channel (<channel><target type='virtio'
#     name='org.qemu.guest_agent.0'/>): links /dev/virtio-ports/<name> and runs
#     `qemu-ga -d -m virtio-serial -p /dev/virtio-ports/org.qemu.guest_agent.0 -t /run`
#     ("HV-GUEST-AGENT started" on the console). The agent's guest-shutdown runs /sbin/shutdown,
#     which prints "HV-GUEST-POWEROFF (guest agent)" and runs `busybox poweroff -f`;
#   * when there is an eth0 (a virtio NIC, e.g. on libvirt's "default" network): runs busybox
#     `udhcpc` in the background (its script prints "HV-GUEST-IP <addr>" once configured) and
#     a TCP listener on port 22 (busybox httpd), so tcp:22 readiness gates can be tested;
#   * when the first virtio disk (/dev/vda) starts with a line "HV-DISK-MARK...", prints
#     "HV-GUEST-DISK <that line>" (the guest read its disk);
#   * prints "HV-GUEST-BOOTED" on the console (also without NIC or agent port; it does not wait
#     for DHCP) and then idles; with "hv.tick" on the command line it prints "HV-GUEST-TICK n"
#     every second (n = 1, 2, ...: a live migration shows as numbers that go on); with "hv.epoch"
#     it is an epoch writer on /dev/vda for HA's "never two copies" check: at boot it reads the
#     ring of records "HVEPOCH <epoch> <seq>" in 512-byte sectors 1..8192, takes epoch = the
#     largest + 1 and seq = the largest + 1, prints "HV-GUEST-EPOCH <epoch> from <seq>" and then
#     writes record seq at sector 1 + seq % 8192 every 0.2 s (synced). Two copies running at once
#     show as an older epoch after a newer one in seq order (tests/integration/ceph_test.cpp).
#   Boot with cmdline "console=ttyS0 quiet panic=-1"; under TCG the marker appears ~4-5 s after
#   start, guest-ping answers about then, and an ACPI or agent shutdown stops the domain ~1-2 s
#   later.
# Does nothing when both outputs exist and OUTDIR/.guest-version matches this script's
# GUEST_VERSION (bump it when the guest changes: test fixtures cache the guest in the build dir).
set -euo pipefail

GUEST_VERSION=5-agent-net-blk-tick-epoch

[ $# -eq 1 ] || { echo "usage: $0 OUTDIR" >&2; exit 2; }
mkdir -p "$1"
OUT=$(cd "$1" && pwd -P)

up_to_date() {
  [ -s "$OUT/vmlinuz" ] && [ -s "$OUT/initrd.gz" ] &&
    [ "$(cat "$OUT/.guest-version" 2>/dev/null)" = "$GUEST_VERSION" ]
}
if up_to_date; then
  echo "build-test-guest: $OUT/vmlinuz and $OUT/initrd.gz present (version $GUEST_VERSION)"
  exit 0
fi

exec 9>"$OUT/.lock"
flock 9
if up_to_date; then exit 0; fi

for tool in apt-get apt-cache dpkg-deb cpio gzip ldd; do
  command -v "$tool" >/dev/null || { echo "build-test-guest: $tool is missing" >&2; exit 1; }
done
BUSYBOX=/bin/busybox
# busybox-static installs a static /bin/busybox (ldd fails on static binaries).
if ! [ -x "$BUSYBOX" ] || ldd "$BUSYBOX" >/dev/null 2>&1; then
  echo "build-test-guest: $BUSYBOX missing or not static (install busybox-static)" >&2
  exit 1
fi

kernel_package() {
  local p
  p=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
    sed -n 's/^ *Depends: \(linux-image-6\.1\.0-[0-9]*-cloud-amd64\)$/\1/p' | head -n1)
  if [ -z "$p" ]; then
    p=$(apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-cloud-amd64$' 2>/dev/null |
      awk '{print $1}' | sort -V | tail -n1)
  fi
  echo "$p"
}

# apt drops privileges to _apt for downloads: `apt-get download` into a private temp dir.
# download PKG -> 0 when PKG_*.deb was fetched into OUT
download() {
  local dl rc=0
  dl=$(mktemp -d)
  chmod 0777 "$dl"
  (cd "$dl" && apt-get download -q "$1" 2>&1 | grep -v '^W: Download is performed unsandboxed' || true)
  mv "$dl"/*.deb "$OUT"/ 2>/dev/null || rc=1
  rm -rf "$dl"
  return $rc
}

deb=$(find "$OUT" -maxdepth 1 -name 'linux-image-6.1.0-*-cloud-amd64_*.deb' | sort -V | tail -n1)
if [ -z "$deb" ]; then
  pkg=$(kernel_package)
  if [ -z "$pkg" ]; then
    apt-get update -q >/dev/null
    pkg=$(kernel_package)
  fi
  [ -n "$pkg" ] || { echo "build-test-guest: no linux-image-6.1.0-*-cloud-amd64 in apt" >&2; exit 1; }
  echo "build-test-guest: downloading $pkg"
  if ! download "$pkg"; then
    # Old package lists can name a kernel the mirror no longer has: refresh and ask again.
    apt-get update -q >/dev/null
    pkg=$(kernel_package)
    download "$pkg" || { echo "build-test-guest: download of $pkg failed" >&2; exit 1; }
  fi
  deb=$(find "$OUT" -maxdepth 1 -name 'linux-image-6.1.0-*-cloud-amd64_*.deb' | sort -V | tail -n1)
fi

gadeb=$(find "$OUT" -maxdepth 1 -name 'qemu-guest-agent_*.deb' | sort -V | tail -n1)
if [ -z "$gadeb" ]; then
  echo "build-test-guest: downloading qemu-guest-agent"
  if ! download qemu-guest-agent; then
    apt-get update -q >/dev/null
    download qemu-guest-agent || { echo "build-test-guest: download of qemu-guest-agent failed" >&2; exit 1; }
  fi
  gadeb=$(find "$OUT" -maxdepth 1 -name 'qemu-guest-agent_*.deb' | sort -V | tail -n1)
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
dpkg-deb -x "$deb" "$work/pkg"
dpkg-deb -x "$gadeb" "$work/ga"
kver=$(ls "$work/pkg/lib/modules")
mods="$work/pkg/lib/modules/$kver/kernel"

root="$work/root"
mkdir -p "$root"/{bin,sbin,dev,proc,sys,run,tmp,www,lib/modules,etc/acpi/PWRF,etc/udhcpc}
mkdir -p "$root/var"
ln -s ../run "$root/var/run"
cp "$BUSYBOX" "$root/bin/busybox"
ln -s busybox "$root/bin/sh"

# Kernel modules, in load order: each one's dependencies (modinfo "depends=") come before it.
# Plain .ko in Debian 12's kernel packages; .ko.xz/.ko.zst are unpacked in case that changes.
MODULES="drivers/input/evdev drivers/acpi/button
  drivers/virtio/virtio_ring drivers/virtio/virtio drivers/virtio/virtio_pci_modern_dev
  drivers/virtio/virtio_pci_legacy_dev drivers/virtio/virtio_pci drivers/char/virtio_console
  net/core/failover drivers/net/net_failover drivers/net/virtio_net"
# virtio_blk: a module in some kernel builds, built in in others (then nothing to copy).
if f=$(ls "$mods/drivers/block/virtio_blk.ko"* 2>/dev/null | head -n1) && [ -n "$f" ]; then
  MODULES="$MODULES drivers/block/virtio_blk"
fi
loaded=" "
for m in $MODULES; do
  f=$(ls "$mods/$m.ko"* 2>/dev/null | head -n1)
  [ -n "$f" ] || { echo "build-test-guest: $m.ko not in $deb" >&2; exit 1; }
  dst="$root/lib/modules/$(basename "$m").ko"
  case "$f" in
    *.xz) xz -dc "$f" >"$dst" ;;
    *.zst) zstd -qdc "$f" >"$dst" ;;
    *) cp "$f" "$dst" ;;
  esac
  for dep in $(tr '\0' '\n' <"$dst" | sed -n 's/^depends=//p' | tr ',' ' '); do
    case "$loaded" in
      *" $dep "*) ;;
      *) echo "build-test-guest: $m needs $dep loaded first (fix MODULES)" >&2; exit 1 ;;
    esac
  done
  loaded="$loaded$(basename "$m") "
done

# qemu-ga + its shared libraries (same paths as on this Debian host) + the dynamic loader.
QGA="$work/ga/usr/sbin/qemu-ga"
[ -x "$QGA" ] || { echo "build-test-guest: usr/sbin/qemu-ga not in $gadeb" >&2; exit 1; }
cp "$QGA" "$root/sbin/qemu-ga"
if ldd "$QGA" | grep -q 'not found'; then
  echo "build-test-guest: qemu-ga needs libraries this host lacks:" >&2
  ldd "$QGA" | grep 'not found' >&2
  exit 1
fi
for lib in $(ldd "$QGA" | sed -n 's/.*=> \(\/[^ ]*\).*/\1/p; s/^[[:space:]]*\(\/[^ ]*\) (.*/\1/p'); do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done

# busybox acpid maps the power button (KEY_POWER) to the action PWRF/00000080.
cat >"$root/etc/acpi/PWRF/00000080" <<'EOF'
#!/bin/sh
echo "HV-GUEST-POWEROFF (ACPI power button)" >/dev/console
sync
poweroff -f
EOF
chmod 0755 "$root/etc/acpi/PWRF/00000080"

# qemu-ga's guest-shutdown runs `/sbin/shutdown -P +0 ...` (libvirt prefers the agent for a
# plain virDomainShutdown once the agent is connected).
cat >"$root/sbin/shutdown" <<'EOF'
#!/bin/sh
echo "HV-GUEST-POWEROFF (guest agent)" >/dev/console
sync
exec /bin/busybox poweroff -f
EOF
chmod 0755 "$root/sbin/shutdown"

# udhcpc runs this on lease events: configure eth0 and the default route.
cat >"$root/etc/udhcpc/default.script" <<'EOF'
#!/bin/sh
case "$1" in
  deconfig)
    ip -4 addr flush dev "$interface"
    ip link set "$interface" up
    ;;
  bound|renew)
    ip -4 addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    for r in $router; do ip route add default via "$r" dev "$interface" 2>/dev/null; break; done
    [ "$1" = bound ] && echo "HV-GUEST-IP $ip" >/dev/console
    ;;
esac
exit 0
EOF
chmod 0755 "$root/etc/udhcpc/default.script"
echo "hv test guest" >"$root/www/index.html"

cat >"$root/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in evdev button virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci \
         virtio_console failover net_failover virtio_net virtio_blk; do
  insmod /lib/modules/$m.ko 2>/dev/null
done
acpid -c /etc/acpi -l /run/acpid.log
ip link set lo up
# Guest agent: only when the domain has the virtio-serial port (its name arrives from the
# host shortly after virtio_console binds; wait at most ~3 s, and only if a port exists).
if ls -d /sys/bus/virtio/drivers/virtio_console/virtio* >/dev/null 2>&1; then
  i=0
  while ! ls /sys/class/virtio-ports/*/name >/dev/null 2>&1 && [ $i -lt 30 ]; do sleep 0.1; i=$((i + 1)); done
  mkdir -p /dev/virtio-ports
  for n in /sys/class/virtio-ports/*/name; do
    [ -s "$n" ] || continue
    p=${n%/name}
    ln -sf "../${p##*/}" "/dev/virtio-ports/$(cat "$n")"
  done
fi
if [ -e /dev/virtio-ports/org.qemu.guest_agent.0 ]; then
  qemu-ga -d -m virtio-serial -p /dev/virtio-ports/org.qemu.guest_agent.0 -t /run -f /run/qemu-ga.pid &&
    echo "HV-GUEST-AGENT started" >/dev/console
fi
# Network: DHCP in the background (never delays the marker), a TCP listener on port 22.
if [ -e /sys/class/net/eth0 ]; then
  ip link set eth0 up
  udhcpc -f -i eth0 -s /etc/udhcpc/default.script -t 10 -T 2 -A 2 -x hostname:"$(hostname)" \
    >/run/udhcpc.log 2>&1 &
  httpd -p 22 -h /www
fi
# A first disk whose first line is an hv test mark (tests/integration/rbd_pool_test.cpp):
# printed, so a test sees that the guest read its disk.
# (wait for it only when a virtio block device is there: device id 0x0002)
if grep -qx 0x0002 /sys/bus/virtio/devices/*/device 2>/dev/null; then
  i=0
  while [ ! -e /dev/vda ] && [ $i -lt 30 ]; do sleep 0.1; i=$((i + 1)); done
fi
if [ -e /dev/vda ]; then
  mark=$(head -c 64 /dev/vda | head -n 1)
  case "$mark" in HV-DISK-MARK*) echo "HV-GUEST-DISK $mark" >/dev/console ;; esac
fi
echo "HV-GUEST-BOOTED kernel $(uname -r)" >/dev/console
# With "hv.tick" on the kernel command line: a counter on the console every second, so a test
# sees that a guest kept running across a live migration (the numbers go on, not from 1).
case " $(cat /proc/cmdline) " in
  *" hv.tick "*)
    n=0
    while true; do n=$((n + 1)); echo "HV-GUEST-TICK $n" >/dev/console; sleep 1; done
    ;;
  *" hv.epoch "*)
    if [ -e /dev/vda ]; then
      last=$(dd if=/dev/vda bs=512 skip=1 count=8192 2>/dev/null | tr -d '\000' |
        awk '$1 == "HVEPOCH" { if ($2 > e) e = $2; if ($3 > s) s = $3 } END { print e + 0, s + 0 }')
      epoch=$((${last% *} + 1))
      seq=$((${last#* } + 1))
      echo "HV-GUEST-EPOCH $epoch from $seq" >/dev/console
      while true; do
        printf 'HVEPOCH %d %d\n' "$epoch" "$seq" |
          dd of=/dev/vda bs=512 seek=$((1 + seq % 8192)) count=1 conv=notrunc,sync,fsync 2>/dev/null
        seq=$((seq + 1))
        sleep 0.2
      done
    fi
    ;;
esac
# PID 1 must never exit (the kernel would panic; panic=-1 would then reboot).
while true; do sleep 3600; done
EOF
chmod 0755 "$root/init"

(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1 >"$work/initrd.gz")
cp "$work/pkg/boot/vmlinuz-$kver" "$OUT/vmlinuz.tmp"
mv "$work/initrd.gz" "$OUT/initrd.gz"
mv "$OUT/vmlinuz.tmp" "$OUT/vmlinuz"
echo "$GUEST_VERSION" >"$OUT/.guest-version"
echo "build-test-guest: $OUT/vmlinuz ($kver) and $OUT/initrd.gz ($(stat -c %s "$OUT/initrd.gz") bytes), version $GUEST_VERSION"
