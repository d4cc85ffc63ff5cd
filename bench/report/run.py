"""How long `millwatch report` takes over a big store: 1M inference events of one model (two
versions, two environments), 30 days of hourly windows with 12 features' drift results, data
quality and prediction drift, and 10,000 audit entries (hash-chained here, as documented).

Usage: python bench/report/run.py [--events 1000000] [--days 30] [--audit 10000]
(the venv of tests/e2e has duckdb; MILLWATCH_BIN or target/release/millwatch is the binary).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parents[2]
HOUR_NS = 3_600_000_000_000


def binary() -> str:
    return os.environ.get("MILLWATCH_BIN") or str(ROOT / "target" / "release" / "millwatch")


def create_schema(data: Path) -> None:
    """A collector started once and stopped makes the store with every migration."""
    cmd = [binary(), "run", "--data-dir", str(data), "--otlp-grpc", "127.0.0.1:0",
           "--otlp-http", "127.0.0.1:0", "--http", "127.0.0.1:0"]
    p = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    for line in p.stderr:
        if "millwatch is ready" in line:
            break
    p.terminate()
    p.wait(timeout=60)


def fill(db_path: Path, events: int, days: int, audit: int) -> None:
    now = time.time_ns()
    start = now - days * 24 * HOUR_NS
    step = days * 24 * HOUR_NS // events
    windows = days * 24
    with duckdb.connect(str(db_path)) as db:
        db.execute("""INSERT INTO resources (resource_id, service_name, environment, host_name, site_name, site_line)
                      VALUES (1, 'svc', 'production', 'prod-01', 'plant', 'line-2'),
                             (2, 'svc', 'staging', 'stg-01', 'plant', 'lab')""")
        db.execute("INSERT INTO scopes (scope_id, name) VALUES (1, 'bench')")
        db.execute(f"""INSERT INTO inferences (event_id, time, model, version, prediction, feature_count, resource_id, scope_id)
            SELECT i, make_timestamp_ns({start} + i * {step}), 'bench-model',
                   CASE WHEN i < {events // 2} THEN '1.0' ELSE '2.0' END, random(), 12,
                   1 + (i % 2), 1
            FROM range({events}) t(i)""")
        features = [f"f{f:02d}" for f in range(12)] + ["ml.prediction"]
        db.execute(f"""INSERT INTO detections (time, window_start, window_end, model, version, feature, detector, test,
                                               statistic, p_value, threshold, drifted, verdict)
            SELECT make_timestamp_ns({start} + (w + 1) * {HOUR_NS}), make_timestamp_ns({start} + w * {HOUR_NS}),
                   make_timestamp_ns({start} + (w + 1) * {HOUR_NS} - 1), 'bench-model',
                   CASE WHEN w < {windows // 2} THEN '1.0' ELSE '2.0' END, f,
                   'drift', CASE WHEN f = 'ml.prediction' THEN 'ztest' ELSE 'ks' END,
                   CASE WHEN f = 'f03' AND w % 10 = 0 THEN 0.4 ELSE 0.05 END, 0.5, 0.2,
                   f = 'f03' AND w % 10 = 0, CASE WHEN f = 'f03' AND w % 10 = 0 THEN 'drift' ELSE 'no_drift' END
            FROM range({windows}) t(w), unnest(?::VARCHAR[]) u(f)""", [features])
        db.execute(f"""INSERT INTO detections (time, model, version, feature, detector, test, statistic, threshold, drifted, verdict)
            SELECT make_timestamp_ns({start} + (w + 1) * {HOUR_NS}), 'bench-model', '1.0', f, 'data_quality', 'quality',
                   0.0, 0.1, false, 'ok'
            FROM range({windows}) t(w), unnest(?::VARCHAR[]) u(f)""", [features[:12]])
        # The entries the collector wrote when it made the store give way to a long chain.
        db.execute("DELETE FROM audit_log")
        prev = "0" * 64
        rows = []
        for seq in range(1, audit + 1):
            t = start + seq * (days * 24 * HOUR_NS // audit)
            text_time = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t // 1_000_000_000)) + f".{t % 1_000_000_000:09d}Z"
            obj = json.dumps({"model": "bench-model", "feature": "f03"}, separators=(",", ":"))
            canonical = json.dumps([seq, text_time, "system", None, "drift.started", "bench-model", obj, None, None,
                                    "bench", prev], separators=(",", ":"), ensure_ascii=False)
            h = hashlib.sha256(canonical.encode()).hexdigest()
            rows.append((seq, t, "system", None, "drift.started", "bench-model", obj, None, None, "bench", prev, h))
            prev = h
        db.executemany("INSERT INTO audit_log VALUES (?, make_timestamp_ns(?), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        db.execute("CHECKPOINT")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--audit", type=int, default=10_000)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="millwatch-report-bench-"))
    try:
        data = tmp / "data"
        create_schema(data)
        t0 = time.monotonic()
        fill(data / "millwatch.duckdb", args.events, args.days, args.audit)
        print(f"store filled in {time.monotonic() - t0:.1f} s: {args.events} events, {args.days * 24} windows, "
              f"{args.audit} audit entries")
        for fmt in ("json", "html", "csv", "md"):
            out = tmp / f"report.{fmt}"
            t0 = time.monotonic()
            p = subprocess.run([binary(), "report", "--data-dir", str(data), "--model", "bench-model",
                                "--format", fmt, "--out", str(out)], capture_output=True, text=True)
            took = time.monotonic() - t0
            assert p.returncode == 0, p.stderr
            print(f"report --format {fmt}: {took:.2f} s, {out.stat().st_size / 1e6:.1f} MB")
        report = json.loads((tmp / "report.json").read_text())
        assert report["audit_verification"]["ok"], report["audit_verification"]
        assert [v["events"] for v in report["versions"]] == [args.events // 2, args.events - args.events // 2]
        assert report["feature_drift"][0]["feature"] == "f03"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
