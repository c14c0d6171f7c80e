#!/bin/bash
# Builds a tiny bootable test guest from Debian packages: OUTDIR/vmlinuz + OUTDIR/initrd.gz.
#
#   build-test-guest.sh OUTDIR
#
# - Kernel: Debian's linux-image-6.1.0-<N>-cloud-amd64 (the one linux-image-cloud-amd64 points
#   to, else the newest listed), fetched with `apt-get download` and cached in OUTDIR.
# - Initrd (~1.3 MB): busybox-static plus the kernel's evdev.ko and button.ko. /init mounts
#   proc/sys/devtmpfs, starts busybox `acpid` so that an ACPI power-button press (libvirt
#   `shutdown` in ACPI mode) runs `poweroff -f`, prints "HV-GUEST-BOOTED" on the console and
#   then idles. Boot with cmdline "console=ttyS0 quiet panic=-1"; under TCG the marker appears
#   ~4-5 s after start, and an ACPI shutdown stops the domain ~1 s later.
# Does nothing when both outputs exist (delete them to rebuild).
set -euo pipefail

[ $# -eq 1 ] || { echo "usage: $0 OUTDIR" >&2; exit 2; }
mkdir -p "$1"
OUT=$(cd "$1" && pwd -P)

if [ -s "$OUT/vmlinuz" ] && [ -s "$OUT/initrd.gz" ]; then
  echo "build-test-guest: $OUT/vmlinuz and $OUT/initrd.gz present"
  exit 0
fi

exec 9>"$OUT/.lock"
flock 9
if [ -s "$OUT/vmlinuz" ] && [ -s "$OUT/initrd.gz" ]; then exit 0; fi

for tool in apt-get apt-cache dpkg-deb cpio gzip; do
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

deb=$(find "$OUT" -maxdepth 1 -name 'linux-image-6.1.0-*-cloud-amd64_*.deb' | sort -V | tail -n1)
if [ -z "$deb" ]; then
  pkg=$(kernel_package)
  if [ -z "$pkg" ]; then
    apt-get update -q >/dev/null
    pkg=$(kernel_package)
  fi
  [ -n "$pkg" ] || { echo "build-test-guest: no linux-image-6.1.0-*-cloud-amd64 in apt" >&2; exit 1; }
  echo "build-test-guest: downloading $pkg"
  # apt drops privileges to _apt for downloads: let it write into a private temp dir.
  dl=$(mktemp -d)
  chmod 0777 "$dl"
  fetch() { (cd "$dl" && apt-get download -q "$1" 2>&1 | grep -v '^W: Download is performed unsandboxed' || true); }
  fetch "$pkg"
  if ! ls "$dl"/*.deb >/dev/null 2>&1; then
    # Old package lists can name a kernel the mirror no longer has: refresh and ask again.
    apt-get update -q >/dev/null
    pkg=$(kernel_package)
    fetch "$pkg"
  fi
  mv "$dl"/*.deb "$OUT"/ 2>/dev/null || { rm -rf "$dl"; echo "build-test-guest: download of $pkg failed" >&2; exit 1; }
  rm -rf "$dl"
  deb=$(find "$OUT" -maxdepth 1 -name 'linux-image-6.1.0-*-cloud-amd64_*.deb' | sort -V | tail -n1)
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
dpkg-deb -x "$deb" "$work/pkg"
kver=$(ls "$work/pkg/lib/modules")
mods="$work/pkg/lib/modules/$kver/kernel"

root="$work/root"
mkdir -p "$root"/{bin,sbin,dev,proc,sys,run,tmp,lib/modules,etc/acpi/PWRF}
cp "$BUSYBOX" "$root/bin/busybox"
ln -s busybox "$root/bin/sh"
for m in drivers/input/evdev.ko drivers/acpi/button.ko; do
  f=$(ls "$mods/$m"* 2>/dev/null | head -n1)
  [ -n "$f" ] || { echo "build-test-guest: $m not in $deb" >&2; exit 1; }
  case "$f" in
    *.xz) xz -dc "$f" >"$root/lib/modules/$(basename "$m")" ;;
    *.zst) zstd -qdc "$f" >"$root/lib/modules/$(basename "$m")" ;;
    *) cp "$f" "$root/lib/modules/" ;;
  esac
done

# busybox acpid maps the power button (KEY_POWER) to the action PWRF/00000080.
cat >"$root/etc/acpi/PWRF/00000080" <<'EOF'
#!/bin/sh
echo "HV-GUEST-POWEROFF (ACPI power button)" >/dev/console
sync
poweroff -f
EOF
chmod 0755 "$root/etc/acpi/PWRF/00000080"

cat >"$root/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
insmod /lib/modules/evdev.ko
insmod /lib/modules/button.ko
acpid -c /etc/acpi -l /run/acpid.log
echo "HV-GUEST-BOOTED kernel $(uname -r)" >/dev/console
# PID 1 must never exit (the kernel would panic; panic=-1 would then reboot).
while true; do sleep 3600; done
EOF
chmod 0755 "$root/init"

(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1 >"$work/initrd.gz")
cp "$work/pkg/boot/vmlinuz-$kver" "$OUT/vmlinuz.tmp"
mv "$work/initrd.gz" "$OUT/initrd.gz"
mv "$OUT/vmlinuz.tmp" "$OUT/vmlinuz"
echo "build-test-guest: $OUT/vmlinuz ($kver) and $OUT/initrd.gz ($(stat -c %s "$OUT/initrd.gz") bytes)"
