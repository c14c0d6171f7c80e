# shellcheck shell=bash
# Shared helpers for bench/*.sh (sourced, not run). bash only.
#
# Every bench script gets its own temporary directory, its own private libvirtd (in its own
# mount + network namespace, scripts/private-libvirtd.sh) and its own hvd. Everything is stopped
# by recorded PID on exit (trap), never by name.
#
# Environment understood by all scripts:
#   HVD_BIN, HVCTL_BIN   binaries to test (default: build/src/daemon/hvd, build/src/cli/hvctl)
#   BENCH_VMS            number of VMs to define (default 200)
#   BENCH_TMP            parent of the temporary directory (default /tmp)
#   BENCH_KEEP=1         keep the temporary directory (logs, JSON exports) after the run
#   HVD_ENV              extra environment for hvd, e.g. "MALLOC_ARENA_MAX=2"
#   HVD_ARGS             extra hvd arguments, e.g. "--config /path/workers2.toml"
#   HVD_NETNS            run hvd in this network namespace (/proc/PID/ns/net)

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
REPO_DIR=$(cd "$BENCH_DIR/.." && pwd -P)
HVD_BIN=${HVD_BIN:-$REPO_DIR/build/src/daemon/hvd}
HVCTL_BIN=${HVCTL_BIN:-$REPO_DIR/build/src/cli/hvctl}
BENCH_VMS=${BENCH_VMS:-200}
PRIVATE_LIBVIRTD=$REPO_DIR/scripts/private-libvirtd.sh

say() { echo "[$(date +%H:%M:%S)] $*" >&2; }
die() {
  say "ERROR: $*"
  exit 1
}

need_bins() {
  [ -x "$HVD_BIN" ] || die "hvd not found at $HVD_BIN (build first or set HVD_BIN)"
  [ -x "$HVCTL_BIN" ] || die "hvctl not found at $HVCTL_BIN (build first or set HVCTL_BIN)"
  local t
  for t in curl virsh python3 nsenter unshare; do
    command -v "$t" >/dev/null || die "'$t' is required"
  done
}

# bench_setup NAME: temp dir, traps. Sets T (temp dir).
bench_setup() {
  need_bins
  T=$(mktemp -d "${BENCH_TMP:-/tmp}/hv-bench-$1.XXXXXX")
  T=$(cd "$T" && pwd -P)
  LV_DIR=$T/libvirt
  HVD_SOCK=$T/hvd.sock
  HVD_STATE=$T/state
  HVD_PID=
  LIBVIRTD_PID=
  URI=
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
  say "work directory $T"
}

# pid_running PID -> 0 when it exists and is not a zombie
pid_running() {
  local st
  kill -0 "$1" 2>/dev/null || return 1
  st=$(sed -n 's/^[0-9]* (.*) \([A-Za-z]\) .*/\1/p' "/proc/$1/stat" 2>/dev/null)
  [ -n "$st" ] && [ "$st" != Z ]
}

# stop_pid PID [SECONDS]: SIGTERM, wait, SIGKILL as a last resort.
stop_pid() {
  local pid=$1 secs=${2:-10} i
  [ -n "$pid" ] || return 0
  pid_running "$pid" || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < secs * 10; i++)); do
    pid_running "$pid" || { wait "$pid" 2>/dev/null || true; return 0; }
    sleep 0.1
  done
  say "pid $pid did not exit after SIGTERM; sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

bench_cleanup() { # [RC]: exit status to keep (default: $?)
  local rc=${1:-$?}
  trap - EXIT INT TERM
  set +e
  if [ -n "$URI" ] && [ -n "$LIBVIRTD_PID" ] && pid_running "$LIBVIRTD_PID"; then
    undefine_bench_vms
  fi
  if [ -n "$HVD_PID" ]; then
    say "stopping hvd (pid $HVD_PID)"
    stop_pid "$HVD_PID" 10
  fi
  if [ -n "$T" ] && [ -e "$LV_DIR/holder.pid" ]; then
    say "stopping private libvirtd (pid ${LIBVIRTD_PID:-?})"
    "$PRIVATE_LIBVIRTD" stop "$LV_DIR" >/dev/null 2>&1 || say "private-libvirtd.sh stop failed"
  fi
  if [ -n "$T" ] && [ -d "$T" ]; then
    if [ "${BENCH_KEEP:-0}" = 1 ] || [ "$rc" -ne 0 ]; then
      say "kept $T (logs: $T/hvd.log, $LV_DIR/log/libvirtd.log)"
    else
      rm -rf "$T"
    fi
  fi
  exit "$rc"
}

start_libvirtd() {
  say "starting private libvirtd in $LV_DIR"
  URI=$("$PRIVATE_LIBVIRTD" start "$LV_DIR") || die "private libvirtd did not start"
  LIBVIRTD_PID=$(tr -dc '0-9' <"$LV_DIR/run/libvirtd.pid")
  say "libvirtd pid $LIBVIRTD_PID, $URI"
}

hv_curl() { # hv_curl METHOD PATH [BODY]
  if [ $# -ge 3 ]; then
    curl -sS --max-time 30 --unix-socket "$HVD_SOCK" -X "$1" -H 'Content-Type: application/json' \
      --data-binary "$3" "http://hvd$2"
  else
    curl -sS --max-time 30 --unix-socket "$HVD_SOCK" -X "$1" "http://hvd$2"
  fi
}

start_hvd() {
  local i extra_env=() extra_args=()
  # shellcheck disable=SC2206
  [ -n "${HVD_ENV:-}" ] && extra_env=($HVD_ENV)
  # shellcheck disable=SC2206
  [ -n "${HVD_ARGS:-}" ] && extra_args=($HVD_ARGS)
  local netns=()
  # HVD_NETNS=/proc/PID/ns/net: hvd in that network namespace (bench/rbd.sh: the Ceph lab's)
  [ -n "${HVD_NETNS:-}" ] && netns=(nsenter "--net=$HVD_NETNS" --)
  say "starting hvd ${HVD_ENV:+($HVD_ENV) }$HVD_BIN ${HVD_ARGS:-}"
  ${netns[@]+"${netns[@]}"} env ${extra_env[@]+"${extra_env[@]}"} "$HVD_BIN" --socket "$HVD_SOCK" --state-dir "$HVD_STATE" \
    --libvirt-uri "$URI" --accel tcg --log-level warn ${extra_args[@]+"${extra_args[@]}"} \
    </dev/null >"$T/hvd.log" 2>&1 &
  HVD_PID=$!
  for ((i = 0; i < 200; i++)); do
    pid_running "$HVD_PID" || { cat "$T/hvd.log" >&2; die "hvd exited"; }
    if [ -S "$HVD_SOCK" ] && hv_curl GET /v1/host 2>/dev/null | grep -q '"libvirt_connected":true'; then
      say "hvd pid $HVD_PID answers on $HVD_SOCK"
      return 0
    fi
    sleep 0.05
  done
  cat "$T/hvd.log" >&2
  die "hvd did not answer within 10 s"
}

now() { date +%s.%N; }
# time_best CLEANUP CMD...: the best wall time (seconds) of RUNS (default 2) runs of CMD, in
# $best; CLEANUP (a command or function) runs before each, untimed; after a sync.
best=
time_best() {
  local cleanup=$1 i t0 t1 d
  shift
  best=
  for ((i = 0; i < ${RUNS:-2}; i++)); do
    $cleanup
    sync
    t0=$(now)
    "$@" >/dev/null
    t1=$(now)
    d=$(echo "$t1 - $t0" | bc -l)
    if [ -z "$best" ] || (($(echo "$d < $best" | bc -l))); then best=$d; fi
  done
}

vm_name() { printf 'bench-%04d' "$1"; }

count_bench_domains() {
  virsh -q -c "$URI" list --all --name 2>/dev/null | grep -c '^bench-' || true
}

# define_vms N: POST /v1/vms (no disks, 64 MiB) N times, in parallel, then waits until every
# create task is final and N domains exist in libvirt.
define_vms() {
  local n=$1 i cfg=$T/create.curl t0 t1 have
  : >"$cfg"
  for ((i = 1; i <= n; i++)); do
    {
      echo "silent"
      echo "show-error"
      echo "unix-socket = \"$HVD_SOCK\""
      echo "url = \"http://hvd/v1/vms\""
      echo "request = \"POST\""
      echo "header = \"Content-Type: application/json\""
      echo "data = \"{\\\"name\\\":\\\"$(vm_name "$i")\\\",\\\"memory\\\":\\\"64M\\\"}\""
      echo "output = \"/dev/null\""
      printf '%s\n' 'write-out = "%{http_code}\n"'
      [ "$i" -lt "$n" ] && echo "next"
    } >>"$cfg"
  done
  say "defining $n VMs through POST /v1/vms (curl --parallel)"
  t0=$(date +%s%N)
  curl -sS --parallel --parallel-max 8 -K "$cfg" >"$T/create.codes" 2>"$T/create.err" || {
    cat "$T/create.err" >&2
    die "curl failed"
  }
  if grep -qv '^202$' "$T/create.codes"; then
    sort "$T/create.codes" | uniq -c >&2
    die "some POST /v1/vms did not answer 202"
  fi
  # Wait until every create task is final (none failed), then check libvirt has every domain.
  local st=1
  for ((i = 0; i < 1200; i++)); do
    st=0
    hv_curl GET /v1/tasks >"$T/tasks.json" || st=1
    if [ $st = 0 ]; then
      python3 - "$T/tasks.json" <<'PY' || st=$?
import json, sys
ts = [t for t in json.load(open(sys.argv[1])) if t["kind"] == "vm.create"]
failed = [t for t in ts if t["state"] in ("failed", "cancelled")]
if failed:
    print("failed create tasks:", json.dumps(failed[:3]), file=sys.stderr)
    sys.exit(2)
sys.exit(1 if any(t["state"] != "succeeded" for t in ts) else 0)
PY
    fi
    [ $st = 2 ] && die "VM creation failed"
    [ $st = 0 ] && break
    sleep 0.1
  done
  [ $st = 0 ] || die "create tasks did not finish within 120 s"
  have=$(count_bench_domains)
  t1=$(date +%s%N)
  [ "$have" -eq "$n" ] || die "libvirt has $have bench domains, expected $n"
  say "$n VMs defined in $(((t1 - t0) / 1000000)) ms"
}

# undefine_bench_vms: removes every bench-* domain from the private libvirtd (one virsh session).
undefine_bench_vms() {
  local names cmds
  names=$(virsh -q -c "$URI" list --all --name 2>/dev/null | grep '^bench-' || true)
  [ -n "$names" ] || return 0
  say "undefining $(echo "$names" | wc -l) VMs"
  cmds=$(echo "$names" | sed 's/.*/undefine --nvram &/' | paste -sd ';')
  virsh -q -c "$URI" "$cmds" >/dev/null 2>&1 || true
  names=$(virsh -q -c "$URI" list --all --name 2>/dev/null | grep '^bench-' || true)
  [ -z "$names" ] || say "WARNING: still defined: $(echo "$names" | head -3 | paste -sd ' ') ..."
}
