#!/usr/bin/env python3
"""Helpers for bench/*.sh (python3 stdlib only).

  benchlib.py timeit --warmup N --runs N --export-json FILE [-n NAME]... -- 'CMD' ['CMD'...]
      hyperfine's fallback: runs each command (split with shlex, no shell, stdout/stderr to
      /dev/null) and writes a hyperfine-compatible JSON export (times in seconds).
  benchlib.py list-report FILE --base NAME --cmp NAME [--goal 0.5]
      prints the results of a hyperfine JSON export and the ratio cmp/base.
  benchlib.py http-latency SOCKET PATH [--n 200] [--warmup 10]
      hvd's own answer time: N sequential GETs from one python process (one connection each,
      as hvctl does), so no process start-up is counted.
  benchlib.py mem PID [--label L] [--json FILE]
      one line of memory figures for PID: RSS, PSS, Private_Dirty, anon, file, threads.
  benchlib.py autostart-report DIR --rounds N [--goal 1.0]
      bench/autostart.sh's report from DIR/baseline.R.{total,vms} and DIR/autostart.R.{json,wall}:
      total wall times, per-VM start call times, scheduler overhead = autostart - baseline.
  benchlib.py breakdown PID [--top N]
      where the RSS of PID comes from: /proc/PID/smaps grouped by file, anonymous memory split
      into heap / thread stacks / malloc arenas / other, thread count.
"""
import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time


# ---------------------------------------------------------------- timing
def cmd_timeit(a):
    results = []
    for i, cmd in enumerate(a.commands):
        argv = shlex.split(cmd)
        name = a.name[i] if a.name and i < len(a.name) else cmd
        for _ in range(a.warmup):
            subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times, codes = [], []
        for _ in range(a.runs):
            t0 = time.perf_counter()
            p = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            times.append(time.perf_counter() - t0)
            codes.append(p.returncode)
        if any(codes):
            print(f"benchlib: '{cmd}' failed (exit codes {sorted(set(codes))})", file=sys.stderr)
            sys.exit(1)
        results.append({
            "command": name,
            "mean": statistics.mean(times),
            "stddev": statistics.stdev(times) if len(times) > 1 else 0.0,
            "median": statistics.median(times),
            "min": min(times),
            "max": max(times),
            "times": times,
            "exit_codes": codes,
        })
        print(f"  {name}: mean {statistics.mean(times) * 1000:.2f} ms over {a.runs} runs", file=sys.stderr)
    with open(a.export_json, "w") as f:
        json.dump({"results": results}, f, indent=2)


def cmd_list_report(a):
    with open(a.file) as f:
        res = {r["command"]: r for r in json.load(f)["results"]}
    print(f"{'command':<34} {'mean ms':>9} {'± sd':>7} {'median':>8} {'min':>7} {'max':>7} {'runs':>5}")
    for name, r in res.items():
        print(f"{name:<34} {r['mean'] * 1000:9.2f} {r['stddev'] * 1000:7.2f} {r['median'] * 1000:8.2f} "
              f"{r['min'] * 1000:7.2f} {r['max'] * 1000:7.2f} {len(r['times']):5d}")
    base, cmp_ = res[a.base], res[a.cmp]
    ratio = cmp_["mean"] / base["mean"]
    print()
    for other in a.also or []:
        if other in res:
            print(f"ratio {a.cmp} / {other}: {cmp_['mean'] / res[other]['mean']:.2f}")
    print(f"ratio {a.cmp} / {a.base}: {ratio:.2f} (median {cmp_['median'] / base['median']:.2f})")
    met = ratio <= a.goal
    print(f"goal {a.cmp} <= {a.goal} x {a.base}: {'MET' if met else 'NOT MET'}")


def cmd_http_latency(a):
    import http.client
    import socket

    class UnixConn(http.client.HTTPConnection):
        def __init__(self, path):
            super().__init__("hvd", timeout=30)
            self.unix_path = path

        def connect(self):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(30)
            s.connect(self.unix_path)
            self.sock = s

    def one():
        c = UnixConn(a.socket)
        c.request("GET", a.path, headers={"Accept": "application/json"})
        r = c.getresponse()
        body = r.read()
        c.close()
        if r.status != 200:
            print(f"benchlib: GET {a.path} answered {r.status}", file=sys.stderr)
            sys.exit(1)
        return len(body)

    for _ in range(a.warmup):
        one()
    times, size = [], 0
    for _ in range(a.n):
        t0 = time.perf_counter()
        size = one()
        times.append(time.perf_counter() - t0)
    ms = [t * 1000 for t in times]
    print(f"hvd answer alone, GET {a.path} ({size} bytes), {a.n} requests from one process: "
          f"mean {statistics.mean(ms):.2f} ms, median {statistics.median(ms):.2f} ms, "
          f"min {min(ms):.2f} ms, max {max(ms):.2f} ms")


# ---------------------------------------------------------------- memory
def rollup(pid):
    out = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3 and parts[2] == "kB":
                out[parts[0].rstrip(":")] = int(parts[1])
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("Threads",):
                out[k] = int(v.split()[0])
            elif k in ("VmHWM", "VmRSS", "VmSize", "RssAnon", "RssFile"):
                out[k] = int(v.split()[0])
    return out


def cmd_mem(a):
    r = rollup(a.pid)
    row = {
        "label": a.label,
        "pid": a.pid,
        "rss_kb": r["Rss"],
        "pss_kb": r["Pss"],
        "private_dirty_kb": r["Private_Dirty"],
        "anon_kb": r["Anonymous"],
        "file_kb": r.get("RssFile", r["Rss"] - r["Anonymous"]),
        "hwm_kb": r.get("VmHWM", 0),
        "threads": r.get("Threads", 0),
    }
    mb = lambda kb: f"{kb / 1024:7.2f}"
    print(f"{a.label:<28} RSS {mb(row['rss_kb'])} MiB  PSS {mb(row['pss_kb'])} MiB  "
          f"Private_Dirty {mb(row['private_dirty_kb'])} MiB  (anon {mb(row['anon_kb'])}, "
          f"file {mb(row['file_kb'])})  peak RSS {mb(row['hwm_kb'])} MiB  threads {row['threads']}")
    if a.json:
        rows = []
        if os.path.exists(a.json):
            with open(a.json) as f:
                rows = json.load(f)
        rows.append(row)
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=2)


def parse_smaps(pid):
    maps, cur = [], None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            first = line.split(None, 1)[0]
            if "-" in first and not first.endswith(":"):
                parts = line.split(None, 5)
                lo, hi = (int(x, 16) for x in parts[0].split("-"))
                cur = {"lo": lo, "hi": hi, "perms": parts[1],
                       "name": parts[5].strip() if len(parts) > 5 else "", "Rss": 0, "Pss": 0,
                       "Private_Dirty": 0, "Shared_Clean": 0, "Private_Clean": 0}
                maps.append(cur)
            else:
                k = first.rstrip(":")
                if k in cur:
                    cur[k] = int(line.split()[1])
    return maps


def classify_anon(maps, pid):
    """Labels anonymous mappings: thread stacks (from /proc/PID/task/*/stat's stack start is not
    exported, so: an 8 MiB-ish rw mapping right after a 4 KiB ---p guard), glibc malloc arenas (a rw
    head followed by ---p reserve inside a 64 MiB-aligned region), other."""
    labels = {}
    for i, m in enumerate(maps):
        if m["name"]:
            continue
        size = m["hi"] - m["lo"]
        prev = maps[i - 1] if i else None
        nxt = maps[i + 1] if i + 1 < len(maps) else None
        if ("rw" in m["perms"] and prev and not prev["name"] and prev["perms"].startswith("---")
                and prev["hi"] == m["lo"] and prev["hi"] - prev["lo"] == 4096 and size >= 64 * 1024):
            labels[i] = "[thread stacks]"
        elif (m["lo"] % (64 << 20) == 0 and "rw" in m["perms"] and nxt and not nxt["name"]
              and nxt["perms"].startswith("---") and nxt["lo"] == m["hi"]):
            labels[i] = "[malloc arenas]"
        elif m["perms"].startswith("---"):
            labels[i] = "[guard/reserve]"
        else:
            labels[i] = "[anon other]"
    return labels


def cmd_breakdown(a):
    maps = parse_smaps(a.pid)
    labels = classify_anon(maps, a.pid)
    groups = {}
    for i, m in enumerate(maps):
        name = m["name"] or labels.get(i, "[anon]")
        g = groups.setdefault(name, {"Rss": 0, "Pss": 0, "Private_Dirty": 0, "Shared_Clean": 0, "n": 0})
        for k in ("Rss", "Pss", "Private_Dirty", "Shared_Clean"):
            g[k] += m[k]
        g["n"] += 1
    libs = [n for n in groups if n.startswith("/") and ".so" in n]
    tot = {k: sum(g[k] for g in groups.values()) for k in ("Rss", "Pss", "Private_Dirty", "Shared_Clean")}
    lib_rss = sum(groups[n]["Rss"] for n in libs)
    nthreads = len(os.listdir(f"/proc/{a.pid}/task"))
    arenas = sum(1 for i in labels if labels[i] == "[malloc arenas]")
    stacks = sum(1 for i in labels if labels[i] == "[thread stacks]")
    print(f"RSS {tot['Rss']} kB = shared libraries {lib_rss} kB ({len(libs)} files) + rest "
          f"{tot['Rss'] - lib_rss} kB; Shared_Clean {tot['Shared_Clean']} kB, Private_Dirty "
          f"{tot['Private_Dirty']} kB; threads {nthreads} (stacks found {stacks}), malloc arenas "
          f"besides main: {arenas}")
    print(f"{'Rss kB':>8} {'Pss kB':>8} {'PrivDirty':>9} {'ShClean':>8} {'maps':>4}  mapping")
    for name, g in sorted(groups.items(), key=lambda kv: -kv[1]["Rss"])[: a.top]:
        print(f"{g['Rss']:8d} {g['Pss']:8d} {g['Private_Dirty']:9d} {g['Shared_Clean']:8d} {g['n']:4d}  {name}")


# ---------------------------------------------------------------- autostart
def cmd_autostart_report(a):
    def stats(xs):
        return (f"mean {statistics.mean(xs) * 1000:7.1f} ms  median {statistics.median(xs) * 1000:7.1f} ms  "
                f"max {max(xs) * 1000:7.1f} ms")

    overheads = []
    for r in range(1, a.rounds + 1):
        d = a.dir
        base_total = int(open(f"{d}/baseline.{r}.total").read()) / 1e9
        base_calls = [int(line.split()[1]) / 1e9 for line in open(f"{d}/baseline.{r}.vms") if line.strip()]
        res = json.load(open(f"{d}/autostart.{r}.json"))
        wall = int(open(f"{d}/autostart.{r}.wall").read()) / 1e9
        vms = res["vms"]
        calls = [v["start_duration"] for v in vms if v.get("start_duration", -1) >= 0]
        not_ready = [v["name"] for v in vms if v["state"] not in ("ready", "already-running")]
        total = res["duration"]
        # Per group: first start call issued -> last VM ready.
        groups = {}
        for v in vms:
            g = groups.setdefault(v["group"], [1e9, 0.0])
            g[0] = min(g[0], v["started_at"])
            g[1] = max(g[1], v["ready_at"])
        gaps = [groups[g + 1][0] - groups[g][1] for g in sorted(groups) if g + 1 in groups]
        over = total - base_total
        overheads.append(over)
        print(f"-- round {r}")
        print(f"baseline  virsh start, group by group: total {base_total:6.2f} s; per start call {stats(base_calls)}")
        print(f"autostart task duration:             total {total:6.2f} s; per start call {stats(calls)}"
              if calls else f"autostart task duration: total {total:6.2f} s (no start_duration in the result)")
        print(f"autostart wall time of `hvctl autostart run` (task submit + wait): {wall:6.2f} s")
        if gaps:
            print(f"between groups (last VM ready -> next group's first start call): "
                  f"mean {statistics.mean(gaps) * 1000:.1f} ms, max {max(gaps) * 1000:.1f} ms")
        if not_ready:
            print(f"NOT READY: {len(not_ready)} VMs, e.g. {not_ready[:3]}")
        print(f"scheduler overhead = autostart total - baseline total = {over:+.2f} s "
              f"(with hvctl's wall time: {wall - base_total:+.2f} s)")
    print()
    worst = max(overheads)
    print(f"goal: scheduler overhead <= {a.goal:.1f} s: worst round {worst:+.2f} s: "
          f"{'MET' if worst <= a.goal else 'NOT MET'}")


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("timeit")
    t.add_argument("--warmup", type=int, default=3)
    t.add_argument("--runs", type=int, default=20)
    t.add_argument("--export-json", required=True)
    t.add_argument("-n", "--name", action="append")
    t.add_argument("commands", nargs="+")
    r = sub.add_parser("list-report")
    r.add_argument("file")
    r.add_argument("--base", required=True)
    r.add_argument("--cmp", required=True)
    r.add_argument("--also", action="append")
    r.add_argument("--goal", type=float, default=0.5)
    h = sub.add_parser("http-latency")
    h.add_argument("socket")
    h.add_argument("path")
    h.add_argument("--n", type=int, default=200)
    h.add_argument("--warmup", type=int, default=10)
    m = sub.add_parser("mem")
    m.add_argument("pid", type=int)
    m.add_argument("--label", default="")
    m.add_argument("--json")
    b = sub.add_parser("breakdown")
    b.add_argument("pid", type=int)
    b.add_argument("--top", type=int, default=25)
    s = sub.add_parser("autostart-report")
    s.add_argument("dir")
    s.add_argument("--rounds", type=int, default=1)
    s.add_argument("--goal", type=float, default=1.0)
    a = p.parse_args()
    {"timeit": cmd_timeit, "list-report": cmd_list_report, "http-latency": cmd_http_latency, "mem": cmd_mem, "breakdown": cmd_breakdown,
     "autostart-report": cmd_autostart_report}[a.cmd](a)


if __name__ == "__main__":
    main()
