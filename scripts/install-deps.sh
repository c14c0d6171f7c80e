#!/bin/bash
# Installs every Debian 12 package needed to build, run and test hv. Idempotent: runs
# `apt-get update` only when a package is missing and the package lists are older than a
# day (or absent), and `apt-get install` only when a package is missing.
# Note: Debian's policy-rc.d may forbid starting services on install; hv's scripts start
# libvirtd/virtlogd explicitly, so that is fine.
set -euo pipefail

PACKAGES=(
  # build
  build-essential cmake ninja-build pkg-config
  # Debian package (scripts/test.sh builds hv with dpkg-buildpackage) and its checks;
  # generated man pages (help2man for hvd, man-db for `man -w`), systemd-analyze
  debhelper dpkg-dev fakeroot lintian help2man man-db systemd
  libvirt-dev libboost1.81-dev nlohmann-json3-dev libspdlog-dev libfmt-dev libcli11-dev
  libsystemd-dev libtomlplusplus-dev catch2 libssl-dev
  # host networking: rtnetlink through libnl (pkg-config libnl-route-3.0)
  libnl-route-3-dev
  # src/backup: chunk compression
  libzstd-dev
  # run: libvirt + QEMU (TCG works without /dev/kvm), UEFI firmware
  libvirt-daemon-system libvirt-clients qemu-system-x86 qemu-utils ovmf
  # containers: libvirt's LXC driver (docs/containers.md); debootstrap builds Debian templates
  libvirt-daemon-driver-lxc debootstrap
  # libvirt NAT network "default" (dnsmasq, iptables), namespaces and bridges
  dnsmasq-base iptables iproute2 util-linux
  # time: hvd manages chronyd (policy-rc.d may keep it from starting on install; the tests
  # start their own chronyd on loopback, never the system one)
  chrony
  # tests: raw HTTP over the Unix socket, tiny test guest, benchmarks
  curl busybox-static cpio gzip hyperfine
  # scripts/cluster-rig.sh's test: ping between the rig's hosts
  iputils-ping
  # storage tests: a btrfs pool on a loop-mounted image
  btrfs-progs
  # the sanitizer build (scripts/test.sh, docs/fuzzing.md): clang 14, its ASan/UBSan runtimes
  # (libclang-rt-14-dev) and libFuzzer
  clang libclang-rt-14-dev libfuzzer-14-dev
  # cluster (docs/cluster.md): the store is etcd 3.4; hvd runs the local member itself
  etcd-server etcd-client
  # cluster tests: certificates of a foreign CA (openssl), TLS requests (curl)
  openssl
  # Ceph (docs/storage.md "rbd"): librados/librbd for the rbd pools, QEMU's rbd driver, and
  # Ceph's own daemons and tools for scripts/ceph-lab.sh (tests) and hv-run Ceph
  librados-dev librbd-dev qemu-block-extra ceph-mon ceph-mgr ceph-osd ceph-common
)

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps.sh: must run as root (try: sudo $0)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps.sh: all ${#PACKAGES[@]} packages present"
  exit 0
fi

echo "install-deps.sh: installing: ${missing[*]}"
lists=/var/lib/apt/lists
if [ -z "$(find "$lists" -maxdepth 1 -name '*_Packages*' -mtime -1 -print -quit 2>/dev/null)" ]; then
  apt-get update -q
fi
if ! apt-get install -y -q --no-install-recommends "${missing[@]}"; then
  # Stale lists (a package version vanished from the mirror): refresh once and retry.
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
