#!/usr/bin/env python3
"""Helpers for run.sh (stdlib only).

  bench_helper.py sample PIDS OUTFILE [INTERVAL_S]
      Samples target process(es) until SIGTERM/SIGINT: CPU seconds (utime+stime from /proc/PID/stat,
      summed over comma-separated PIDS), max RSS (sum of VmRSS over PIDS, polled), host CPU busy
      fraction (/proc/stat). Writes JSON to OUTFILE on exit.

  bench_helper.py report SCENARIO ITEMS_PER_REQ KIND RAW_OUT REQ_LOG SAMPLE_JSON LOADGEN_TIMES CHECK
      KIND is wrk or h2load. Prints one result row (tab separated) on stdout.

  bench_helper.py header
      Prints the column header row.

  bench_helper.py stored API_URL [TIMEOUT_S]
      Waits until a Millwatch collector's tables hold every item it acknowledged
      (/api/v1/stats: metric_points against the metrics receivers' items_stored, inferences + logs
      against the logs receivers'); prints the counts; exit 1 if they still differ after TIMEOUT_S (60).

  bench_helper.py table BASELINE_TSV MILLWATCH_TSV
      Prints the side-by-side Markdown table of README.md's performance section from two run.sh
      result files: items/s, ratio, CPU s per M items and p99 per scenario.
"""
import urllib.request
import json
import os
import re
import signal
import math
import sys
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")
COLUMNS = ["scenario", "req/s", "items/s", "p50_ms", "p99_ms", "non2xx",
           "cpu_s", "cpu_s_per_M_items", "max_rss_MB", "sock_err", "reqs_ok", "host_busy%", "loadgen_cpu_s", "check"]


def proc_cpu_s(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    # comm may contain spaces/parens: split after the last ')'
    fields = data[data.rindex(")") + 2:].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14, 15 of the full line
    return (utime + stime) / CLK_TCK


def proc_rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return 0


def host_cpu():
    with open("/proc/stat") as f:
        parts = f.readline().split()[1:]
    vals = [int(x) for x in parts]
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0)  # idle + iowait
    return sum(vals[:8]), idle  # user..steal; guest is already in user


def cmd_sample(pids_arg, out, interval="0.1"):
    pids = [p for p in pids_arg.split(",") if p.strip()]
    interval = float(interval)
    stop = {"flag": False}

    def on_sig(*_):
        stop["flag"] = True

    signal.signal(signal.SIGTERM, on_sig)
    signal.signal(signal.SIGINT, on_sig)
    t0 = time.monotonic()
    cpu0 = {p: proc_cpu_s(p) for p in pids}
    h0 = host_cpu()
    max_rss = 0
    samples = 0
    while not stop["flag"]:
        rss = [proc_rss_kb(p) for p in pids]
        max_rss = max(max_rss, sum(r for r in rss if r))
        samples += 1
        time.sleep(interval)
    cpu1 = {p: proc_cpu_s(p) for p in pids}
    h1 = host_cpu()
    rss = [proc_rss_kb(p) for p in pids]
    max_rss = max(max_rss, sum(r for r in rss if r))
    dead = [p for p in pids if cpu0[p] is None or cpu1[p] is None]
    cpu = None if dead or not pids else sum(cpu1[p] - cpu0[p] for p in pids)
    tot, idle = h1[0] - h0[0], h1[1] - h0[1]
    res = {"pids": pids, "cpu_s": cpu, "max_rss_kb": max_rss if pids else None, "dead_pids": dead,
           "wall_s": time.monotonic() - t0, "host_busy": (1 - idle / tot) if tot > 0 else None, "samples": samples}
    with open(out, "w") as f:
        json.dump(res, f)


def parse_wrk(raw):
    m = re.search(r"^BENCH (.*)$", raw, re.M)
    if not m:
        raise ValueError("no BENCH line in wrk output")
    kv = dict(x.split("=", 1) for x in m.group(1).split())
    reqs = int(kv["requests"])
    status_err = int(kv["status_err"])
    sock = sum(int(kv[k]) for k in ("connect_err", "read_err", "write_err", "timeout_err"))
    return {
        "duration_s": int(kv["duration_us"]) / 1e6,
        "ok": reqs - status_err,  # wrk: completed responses; status_err = status > 399
        "non2xx": status_err,
        "sock_err": sock,
        "p50_ms": int(kv["p50_us"]) / 1000,
        "p99_ms": int(kv["p99_us"]) / 1000,
    }


def percentile(sorted_vals, q):
    if not sorted_vals:
        return float("nan")
    k = max(0, min(len(sorted_vals) - 1, math.ceil(q / 100 * len(sorted_vals)) - 1))  # nearest rank
    return sorted_vals[k]


def parse_h2load(raw, log_path):
    m = re.search(r"finished in ([\d.]+)(m?s)", raw)
    if not m:
        raise ValueError("no 'finished in' line in h2load output")
    dur = float(m.group(1)) / (1000 if m.group(2) == "ms" else 1)
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout", raw)
    total, started, done, succ, failed, errored, timeout = map(int, m.groups())
    m = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", raw)
    s2, s3, s4, s5 = map(int, m.groups())
    lat = []
    if log_path and os.path.exists(log_path):
        with open(log_path) as f:
            for line in f:
                p = line.split("\t")
                if len(p) >= 3 and p[1].startswith("2"):
                    lat.append(int(p[2]))
    lat.sort()
    return {
        "duration_s": dur,
        "ok": s2,  # HTTP 2xx; NOTE: gRPC errors arrive as HTTP 200 + grpc-status trailer, h2load cannot see them
        "non2xx": (done - s2) + failed + errored,
        "sock_err": timeout,
        "p50_ms": percentile(lat, 50) / 1000,
        "p99_ms": percentile(lat, 99) / 1000,
    }


def fmt(v, nd=1):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def cmd_report(scenario, items_per_req, kind, raw_out, req_log, sample_json, loadgen_times, check):
    items_per_req = int(items_per_req)
    raw = open(raw_out, errors="replace").read()
    r = parse_wrk(raw) if kind == "wrk" else parse_h2load(raw, req_log)
    s = json.load(open(sample_json)) if os.path.exists(sample_json) else {}
    lg = None
    try:
        u, sy = open(loadgen_times).read().split()[:2]
        lg = float(u) + float(sy)
    except (OSError, ValueError):
        pass
    rps = r["ok"] / r["duration_s"] if r["duration_s"] else 0.0
    items = r["ok"] * items_per_req
    ips = items / r["duration_s"] if r["duration_s"] else 0.0
    cpu = s.get("cpu_s")
    cpu_per_m = (cpu / (items / 1e6)) if (cpu is not None and items) else None
    rss_mb = s.get("max_rss_kb") / 1024 if s.get("max_rss_kb") is not None else None
    busy = s.get("host_busy") * 100 if s.get("host_busy") is not None else None
    row = [scenario, fmt(rps, 1), fmt(ips, 0), fmt(r["p50_ms"], 2), fmt(r["p99_ms"], 2), fmt(r["non2xx"]),
           fmt(cpu, 2), fmt(cpu_per_m, 3), fmt(rss_mb, 1), fmt(r["sock_err"]), fmt(r["ok"]), fmt(busy, 0),
           fmt(lg, 2), check]
    print("\t".join(row))


def stats(api):
    with urllib.request.urlopen(f"{api}/api/v1/stats", timeout=10) as r:
        return json.load(r)


def cmd_stored(api, timeout="60"):
    api = api.rstrip("/")
    deadline = time.monotonic() + float(timeout)
    while True:
        s = stats(api)
        acked = {"metrics": 0, "logs": 0}
        for r in s["receivers"]:
            if r["signal"] in acked:
                acked[r["signal"]] += r["items_stored"]
        t = s["tables"]
        stored = {"metrics": t.get("metric_points", 0), "logs": t.get("inferences", 0) + t.get("logs", 0)}
        done = all(stored[k] >= acked[k] for k in acked)
        if done or time.monotonic() > deadline:
            word = "stored" if done else f"NOT all stored after {timeout} s"
            print(f"# millwatch {word}: metric points {stored['metrics']} of {acked['metrics']} acknowledged, "
                  f"inference events and logs {stored['logs']} of {acked['logs']} acknowledged")
            return 0 if done else 1
        time.sleep(0.2)


def read_tsv(path):
    rows = {}
    with open(path) as f:
        for line in f:
            if line.startswith("#") or line.startswith("scenario\t"):
                continue
            cols = line.rstrip("\n").split("\t")
            if len(cols) == len(COLUMNS):
                rows[cols[0]] = dict(zip(COLUMNS, cols))
    return rows


def cmd_table(baseline_tsv, millwatch_tsv):
    base, mw = read_tsv(baseline_tsv), read_tsv(millwatch_tsv)
    print("| scenario | baseline items/s | Millwatch items/s | ratio | Millwatch CPU s per M items (baseline) "
          "| Millwatch p99 ms (baseline) |")
    print("|---|---|---|---|---|---|")
    for sc, m in mw.items():
        b = base.get(sc)
        if b is None:
            continue
        try:
            ratio = f"{float(m['items/s']) / float(b['items/s']):.2f}x"
        except (ValueError, ZeroDivisionError):
            ratio = "-"
        print(f"| {sc} | {int(float(b['items/s'])):,} | {int(float(m['items/s'])):,} | {ratio} "
              f"| {m['cpu_s_per_M_items']} ({b['cpu_s_per_M_items']}) | {m['p99_ms']} ({b['p99_ms']}) |")


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        sys.exit(2)
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "sample":
        cmd_sample(*args)
    elif cmd == "report":
        cmd_report(*args)
    elif cmd == "header":
        print("\t".join(COLUMNS))
    elif cmd == "stored":
        sys.exit(cmd_stored(*args))
    elif cmd == "table":
        cmd_table(*args)
    else:
        print(__doc__)
        sys.exit(2)


if __name__ == "__main__":
    main()
