#!/bin/bash
# Runs one command inside Debian's own kernel under QEMU TCG, with the host's filesystem shared
# read-only (virtio-9p) -- the way kernel developers use virtme. For tests that need kernel
# features this machine's kernel lacks (802.1Q VLANs, bridge VLAN filtering, bonding, dummy).
#
#   kernel-run.sh [options] -- CMD [ARGS...]
#     --mem SIZE       guest memory (default 512M)
#     --cpus N         guest vCPUs (default 1)
#     --timeout SEC    kill the guest after SEC seconds, exit 124 (default 600)
#     --cache DIR      kernel cache (default: $HV_KERNEL_CACHE, else $XDG_CACHE_HOME/hv-test-kernel,
#                      else /var/cache/hv-test-kernel, else ~/.cache/hv-test-kernel)
#     --outdir DIR     a host directory the guest may write to, mounted at the same path inside
#                      (repeatable; created if missing)
#     --module NAME    load one more kernel module (and its dependencies) at boot (repeatable)
#     --quiet          no timing line on stderr
#     --verbose        kernel messages and guest setup steps on the console
#
# Exit status: the command's exit status; 124 on timeout; 77 when this machine cannot run it
# (no qemu-system-x86_64, no busybox-static, kernel not downloadable); 125 on a harness error.
#
# What happens:
# - Kernel: Debian's generic linux-image-6.1.0-<N>-amd64 (the one linux-image-amd64 depends on),
#   fetched with `apt-get download` into the cache, checked for the needed CONFIG_ options. The
#   cloud flavour cannot be used: it has no 9P (CONFIG_NET_9P is not set).
# - Initrd (cached per kernel + module list): busybox-static plus the needed modules, their
#   dependencies resolved from each module's own `depends=` (the package ships no modules.dep
#   and kmod's depmod is not needed).
# - Guest /init: loads the modules, mounts the host root read-only over 9p, then inside it fresh
#   proc, sysfs, devtmpfs, devpts, tmpfs on /run, /dev/shm and /var/tmp, and /tmp as an overlay
#   (the host's /tmp read-only below, a tmpfs above: build trees under /tmp stay visible, writes
#   stay in the guest). Each --outdir is a writable 9p share at the same path. Then it chroots
#   into the host root, restores the caller's environment and cwd, runs CMD with stdin
#   /dev/null, stdout on ttyS1 (-> our stdout) and stderr on ttyS2 (-> our stderr), writes the
#   exit status into the job directory (a third 9p share) and powers off. The kernel console
#   (ttyS0) goes to a log that is shown with --verbose or when the guest fails.
# - CMD, its arguments, the environment and the cwd travel as NUL-separated files in that job
#   directory: nothing from the caller is ever pasted into a shell string.
# - Inside, HV_KERNEL_RUN=1 is set. The guest has only a loopback interface (-nic none).
set -euo pipefail

SELF=kernel-run
die() { echo "$SELF: $*" >&2; exit 125; }
skip() { echo "$SELF: SKIP: $*" >&2; exit 77; }

mem=512M
cpus=1
timeout_s=600
cache=
quiet=0
verbose=0
outdirs=()
extra_modules=()
while [ $# -gt 0 ]; do
  case "$1" in
    --mem) mem=${2:?}; shift 2 ;;
    --cpus) cpus=${2:?}; shift 2 ;;
    --timeout) timeout_s=${2:?}; shift 2 ;;
    --cache) cache=${2:?}; shift 2 ;;
    --outdir) outdirs+=("${2:?}"); shift 2 ;;
    --module) extra_modules+=("${2:?}"); shift 2 ;;
    --quiet) quiet=1; shift ;;
    --verbose) verbose=1; shift ;;
    --) shift; break ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "$SELF: unknown option $1 (usage: $0 [options] -- CMD [ARGS...])" >&2; exit 125 ;;
  esac
done
[ $# -ge 1 ] || { echo "usage: $0 [--mem 512M] [--timeout SEC] [--cache DIR] [--outdir DIR] -- CMD [ARGS...]" >&2; exit 125; }
[[ "$timeout_s" =~ ^[0-9]+$ ]] || die "--timeout wants seconds, got '$timeout_s'"
[[ "$cpus" =~ ^[1-9][0-9]*$ ]] || die "--cpus wants a number, got '$cpus'"
[[ "$mem" =~ ^[0-9]+[KMGT]?$ ]] || die "--mem wants e.g. 512M, got '$mem'"
for m in "${extra_modules[@]}"; do
  [[ "$m" =~ ^[A-Za-z0-9_-]+$ ]] || die "bad module name '$m'"
done

QEMU=$(command -v qemu-system-x86_64 || true)
[ -n "$QEMU" ] || skip "qemu-system-x86_64 is missing (install qemu-system-x86)"
BUSYBOX=/bin/busybox
if ! [ -x "$BUSYBOX" ] || ldd "$BUSYBOX" >/dev/null 2>&1; then
  skip "$BUSYBOX missing or not static (install busybox-static)"
fi
for tool in dpkg-deb cpio gzip flock; do
  command -v "$tool" >/dev/null || skip "$tool is missing"
done

# --- cache directory ---------------------------------------------------------------------
if [ -z "$cache" ]; then
  if [ -n "${HV_KERNEL_CACHE:-}" ]; then cache=$HV_KERNEL_CACHE
  elif [ -n "${XDG_CACHE_HOME:-}" ]; then cache=$XDG_CACHE_HOME/hv-test-kernel
  elif mkdir -p /var/cache/hv-test-kernel 2>/dev/null && [ -w /var/cache/hv-test-kernel ]; then
    cache=/var/cache/hv-test-kernel
  else cache=${HOME:-/tmp}/.cache/hv-test-kernel
  fi
fi
mkdir -p "$cache" || die "cannot create cache directory $cache"
cache=$(cd "$cache" && pwd -P)

# Everything below the lock is per cache; concurrent runs wait for one download/build.
exec 8>"$cache/.lock"
flock 8

REQUIRED_CONFIG=(BONDING VLAN_8021Q BRIDGE BRIDGE_VLAN_FILTERING DUMMY VETH TUN 9P_FS NET_9P
  NET_9P_VIRTIO VIRTIO_PCI OVERLAY_FS DEVTMPFS TMPFS SERIAL_8250_CONSOLE)
BASE_MODULES=(virtio_pci netfs 9pnet 9pnet_virtio 9p overlay
  bonding 8021q bridge veth dummy tun)

kernel_package() {
  local p
  p=$(apt-cache depends linux-image-amd64 2>/dev/null |
    sed -n 's/^ *Depends: \(linux-image-6\.1\.0-[0-9]*-amd64\)$/\1/p' | head -n1)
  if [ -z "$p" ]; then
    p=$(apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-amd64$' 2>/dev/null |
      awk '{print $1}' | sort -V | tail -n1)
  fi
  echo "$p"
}
cached_deb() {
  find "$cache" -maxdepth 1 -name 'linux-image-6.1.0-*-amd64_*_amd64.deb' ! -name '*-cloud-amd64_*' |
    sort -V | tail -n1
}

deb=${HV_KERNEL_DEB:-$(cached_deb)}
if [ -z "$deb" ]; then
  command -v apt-get >/dev/null || skip "no cached kernel in $cache and no apt-get to download one"
  pkg=$(kernel_package)
  if [ -z "$pkg" ]; then
    apt-get update -q >/dev/null 2>&1 || true
    pkg=$(kernel_package)
  fi
  [ -n "$pkg" ] || skip "no linux-image-6.1.0-*-amd64 known to apt (apt-get update failed?)"
  echo "$SELF: downloading $pkg into $cache" >&2
  dl=$(mktemp -d "$cache/.dl.XXXXXX")
  chmod 0777 "$dl"   # apt drops privileges to _apt for downloads
  fetch() { (cd "$dl" && apt-get download -q "$1" 2>&1 | grep -v -e '^W: Download is performed unsandboxed' -e '^Get:' -e '^Fetched' >&2 || true); }
  fetch "$pkg"
  if ! ls "$dl"/*.deb >/dev/null 2>&1; then
    # Old package lists can name a kernel the mirror no longer has: refresh and ask again.
    apt-get update -q >/dev/null 2>&1 || true
    pkg=$(kernel_package)
    [ -n "$pkg" ] && fetch "$pkg"
  fi
  if ! mv "$dl"/*.deb "$cache"/ 2>/dev/null; then
    rm -rf "$dl"
    skip "download of ${pkg:-a kernel package} failed (no network to the Debian mirror?)"
  fi
  rm -rf "$dl"
  deb=$(cached_deb)
fi
[ -s "$deb" ] || die "kernel package $deb missing"

# --- unpack the kernel and build the initrd (cached) ---------------------------------------
# KVER from the package name: linux-image-6.1.0-56-amd64_6.1.192-2_amd64.deb -> 6.1.0-56-amd64
kver=$(basename "$deb"); kver=${kver#linux-image-}; kver=${kver%%_*}
kdir=$cache/$kver
modules=("${BASE_MODULES[@]}" "${extra_modules[@]}")
# Unpacked once per kernel into $kdir/tree (boot/ and lib/modules/, ~400 MB).
if ! [ -f "$kdir/.unpacked" ]; then
  rm -rf "$kdir"
  mkdir -p "$kdir"
  echo "$SELF: unpacking $(basename "$deb") into $kdir" >&2
  dpkg-deb -x "$deb" "$kdir/tree" || die "cannot unpack $deb"
  cp "$kdir/tree/boot/vmlinuz-$kver" "$kdir/vmlinuz"
  touch "$kdir/.unpacked"
fi
config=$kdir/tree/boot/config-$kver
[ -f "$config" ] || die "$deb has no boot/config-$kver"
missing=()
for c in "${REQUIRED_CONFIG[@]}"; do
  grep -Eq "^CONFIG_$c=(y|m)$" "$config" || missing+=("CONFIG_$c")
done
[ ${#missing[@]} -eq 0 ] || skip "kernel $kver lacks ${missing[*]}"

# The guest's /init (busybox sh, PID 1; never exits: powers off at the end).
IFS= read -r -d '' INIT_SCRIPT <<'EOF' || true
#!/bin/busybox sh
# kernel-run.sh guest init (PID 1). Never exits: powers off at the end.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
# ttyS0: kernel console (a log file on the host); ttyS1: command stdout; ttyS2: command stderr.
stty -F /dev/ttyS1 raw -echo 2>/dev/null
stty -F /dev/ttyS2 raw -echo 2>/dev/null
exec 2>/dev/ttyS2
V=0; grep -q 'hvkr.verbose' /proc/cmdline && V=1
say() { [ $V = 1 ] && echo "kernel-run(guest): $*" >&2; return 0; }
fail() {
  echo "kernel-run(guest): $*" >&2
  [ -d /job ] && echo 125 >/job/status 2>/dev/null
  sync; poweroff -f; sleep 5
}
# No usermode modprobe: every module is loaded here.
printf '\n' >/proc/sys/kernel/modprobe 2>/dev/null
while read -r m; do
  insmod "/lib/modules/$m.ko" || fail "insmod $m failed"
done </lib/modules/order
say "modules loaded at $(cut -d' ' -f1 /proc/uptime) s"
O9P=trans=virtio,version=9p2000.L,msize=262144
mkdir -p /job
mount -t 9p -o "$O9P,cache=none" hvjob /job || fail "cannot mount the job share"
mount -t 9p -o "$O9P,ro,cache=loose" hostroot /newroot || fail "cannot mount the host root"
R=/newroot
mount -t proc proc $R/proc
mount -t sysfs sysfs $R/sys
mount -t devtmpfs devtmpfs $R/dev
mkdir -p $R/dev/pts $R/dev/shm 2>/dev/null
mount -t devpts -o newinstance,ptmxmode=0666 devpts $R/dev/pts
mount -t tmpfs -o mode=1777 tmpfs $R/dev/shm
mount -t tmpfs -o mode=0755 tmpfs $R/run
mount -t tmpfs -o mode=1777 tmpfs $R/var/tmp
mkdir -p /ovl
mount -t tmpfs tmpfs /ovl
mkdir -p /ovl/lower /ovl/upper /ovl/work
chmod 1777 /ovl/upper
if mount --bind $R/tmp /ovl/lower &&
   mount -t overlay -o lowerdir=/ovl/lower,upperdir=/ovl/upper,workdir=/ovl/work overlay $R/tmp; then
  say "/tmp: overlay over the host's /tmp"
else
  echo "kernel-run(guest): overlay on /tmp failed; /tmp is an empty tmpfs" >&2
  mount -t tmpfs -o mode=1777 tmpfs $R/tmp
fi
mkdir -p $R/run/hv-kernel-run
mount --bind /job $R/run/hv-kernel-run
# Writable shares: tags hvout0.., host paths in job/outdirs (NUL-separated).
i=0
tr '\0' '\n' </job/outdirs >/outdirs.txt
while IFS= read -r d; do
  mkdir -p "$R$d" 2>/dev/null
  mount -t 9p -o "$O9P,cache=none" "hvout$i" "$R$d" || fail "cannot mount outdir $d"
  i=$((i + 1))
done </outdirs.txt
ip link set lo up
hostname hv-kernel-run
say "command starts at $(cut -d' ' -f1 /proc/uptime) s"
cut -d' ' -f1 /proc/uptime >/job/started
chroot $R /usr/bin/env -i /bin/bash /run/hv-kernel-run/runner.sh </dev/null >/dev/ttyS1 2>/dev/ttyS2
rc=$?
cut -d' ' -f1 /proc/uptime >/job/finished
echo $rc >/job/status
sync
echo "HV-KERNEL-EXIT=$rc" >/dev/console
poweroff -f
sleep 10
EOF
initrd_key=$( (printf '%s\n' "${modules[@]}"; printf '%s' "$INIT_SCRIPT"; sha256sum <"$BUSYBOX") |
  sha256sum | cut -c1-16)
initrd=$kdir/initrd-$initrd_key.gz
if ! [ -s "$initrd" ]; then
  work=$(mktemp -d "$cache/.build.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  mdir=$kdir/tree/lib/modules/$kver
  # name (with _ for -) -> path of its .ko[.xz|.zst]
  declare -A kopath=()
  while IFS= read -r f; do
    n=$(basename "$f"); n=${n%.xz}; n=${n%.zst}; n=${n%.gz}; n=${n%.ko}; n=${n//-/_}
    kopath[$n]=$f
  done < <(find "$mdir/kernel" -name '*.ko' -o -name '*.ko.xz' -o -name '*.ko.zst' -o -name '*.ko.gz')
  builtin_mod() { grep -q "/${1//_/[-_]}\.ko\$" "$mdir/modules.builtin" 2>/dev/null; }
  ko_text() {
    case "$1" in
      *.xz) xz -dc "$1" ;; *.zst) zstd -qdc "$1" ;; *.gz) gzip -dc "$1" ;; *) cat "$1" ;;
    esac
  }
  root=$work/root
  mkdir -p "$root"/{bin,dev,proc,sys,newroot,lib/modules}
  declare -A done_mod=()
  order=()
  add_module() {   # depth-first: dependencies first
    local n=${1//-/_} d deps
    [ -z "${done_mod[$n]:-}" ] || return 0
    done_mod[$n]=1
    if [ -z "${kopath[$n]:-}" ]; then
      builtin_mod "$n" && return 0
      die "module $n is neither in $(basename "$deb") nor built in"
    fi
    deps=$(ko_text "${kopath[$n]}" | LC_ALL=C tr '\0' '\n' | sed -n 's/^depends=//p' | head -n1)
    for d in ${deps//,/ }; do add_module "$d"; done
    ko_text "${kopath[$n]}" >"$root/lib/modules/$n.ko"
    order+=("$n")
  }
  for m in "${modules[@]}"; do add_module "$m"; done
  printf '%s\n' "${order[@]}" >"$root/lib/modules/order"
  cp "$BUSYBOX" "$root/bin/busybox"
  printf '%s\n' "$INIT_SCRIPT" >"$root/init"
  chmod 0755 "$root/init"
  (cd "$root" && find . | cpio -o -H newc --quiet | gzip -1 >"$work/initrd.gz")
  mv "$work/initrd.gz" "$initrd"
  rm -rf "$work"
  trap - EXIT
  echo "$SELF: built $initrd ($(stat -c %s "$initrd") bytes, modules: ${order[*]})" >&2
fi
flock -u 8

# --- the job -------------------------------------------------------------------------------
job=$(mktemp -d "${TMPDIR:-/tmp}/kernel-run.XXXXXX")
qpid=
catpid=
cleanup() {
  if [ -n "$qpid" ]; then kill "$qpid" 2>/dev/null || true; wait "$qpid" 2>/dev/null || true; fi
  if [ -n "$catpid" ]; then kill "$catpid" 2>/dev/null || true; fi
  rm -rf "$job"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
chmod 0755 "$job"
printf '%s\0' "$@" >"$job/argv"
printf '%s\0' "$PWD" >"$job/cwd"
env -0 >"$job/env"
: >"$job/outdirs"
virtfs=(-virtfs "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap"
  -virtfs "local,path=$job,mount_tag=hvjob,security_model=none,multidevs=remap")
i=0
for d in "${outdirs[@]}"; do
  mkdir -p "$d" || die "cannot create outdir $d"
  d=$(cd "$d" && pwd -P)
  case "$d" in *,*|*$'\n'*) die "outdir '$d' contains a comma or newline (not supported)" ;; esac
  printf '%s\0' "$d" >>"$job/outdirs"
  virtfs+=(-virtfs "local,path=$d,mount_tag=hvout$i,security_model=none,multidevs=remap")
  i=$((i + 1))
done
case "$job" in *,*) die "TMPDIR $job contains a comma" ;; esac
# The runner runs with bash inside the host root (static text: the caller's data is only read
# from the NUL-separated files).
cat >"$job/runner.sh" <<'EOF'
J=/run/hv-kernel-run
while IFS= read -r -d '' kv; do export "$kv" 2>/dev/null; done <"$J/env"
export HV_KERNEL_RUN=1
mapfile -d '' argv <"$J/argv"
mapfile -d '' cwd <"$J/cwd"
cd -- "${cwd[0]}" || { echo "kernel-run(guest): cannot cd to ${cwd[0]}" >&2; exit 125; }
exec -- "${argv[@]}"
EOF

append="console=ttyS0 panic=-1 rdinit=/init"
if [ "$verbose" = 1 ]; then append+=" hvkr.verbose"; else append+=" quiet"; fi
# The command's stderr reaches our fd 2 through a FIFO and cat (QEMU reopening /proc/self/fd/2
# would get its own file offset and overwrite what we write to a redirected stderr).
mkfifo "$job/stderr.in" "$job/stderr.out"
cat "$job/stderr.out" >&2 &
catpid=$!

t0=$(date +%s.%N)
set +e
timeout --kill-after=5 "$timeout_s" "$QEMU" -machine q35,accel=tcg -cpu max -smp "$cpus" -m "$mem" \
  -display none -no-reboot -nodefaults -nic none \
  -kernel "$kdir/vmlinuz" -initrd "$initrd" -append "$append" \
  -chardev file,id=s0,path="$job/console.log" -serial chardev:s0 \
  -chardev stdio,id=s1,signal=on -serial chardev:s1 \
  -chardev pipe,id=s2,path="$job/stderr" -serial chardev:s2 \
  "${virtfs[@]}" </dev/null &
qpid=$!
wait "$qpid"
qrc=$?
qpid=
# Unblocks cat if QEMU never opened the FIFO; otherwise cat sees EOF now that QEMU is gone.
exec 7<>"$job/stderr.out"; exec 7>&-
wait "$catpid"
catpid=
set -e
t1=$(date +%s.%N)

if [ -s "$job/status" ]; then
  rc=$(cat "$job/status")
  [[ "$rc" =~ ^[0-9]+$ ]] || rc=125
else
  if [ "$qrc" = 124 ] || [ "$qrc" = 137 ]; then
    echo "$SELF: timeout after ${timeout_s} s: guest killed" >&2
    rc=124
  else
    echo "$SELF: the guest stopped without reporting an exit status (QEMU exit $qrc; kernel panic? rerun with --verbose)" >&2
    rc=125
  fi
fi
if [ "$verbose" = 1 ] || [ "$rc" = 124 ] || [ "$rc" = 125 ]; then
  echo "$SELF: guest console:" >&2
  tr -d '\r' <"$job/console.log" | tail -n 200 | sed 's/^/  | /' >&2
fi
if [ "$quiet" = 0 ]; then
  boot=
  if [ -f "$job/started" ]; then
    boot=$(awk -v a="$t0" -v b="$(stat -c %.9Y "$job/started")" -v u="$(cat "$job/started")" \
      'BEGIN { printf "boot-to-command %.2f s (guest uptime %.2f s), ", b - a, u }')
  fi
  awk -v a="$t0" -v b="$t1" -v bt="$boot" -v rc="$rc" -v k="$kver" \
    'BEGIN { printf "kernel-run: exit %d, %stotal %.2f s (kernel %s, TCG)\n", rc, bt, b - a, k }' >&2
fi
exit "$rc"
