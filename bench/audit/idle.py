"""What an idle collector spends on the audit watcher: the CPU time (user + system, from
/proc/PID/stat) of `millwatch run` over a plant-sized store (bench/report/run.py's: 1M inference
events, 30 days of hourly windows, 10,000 audit entries) while nothing arrives, once per
configuration given. The difference between configurations is the watcher's.

Usage: python bench/audit/idle.py [--seconds 60] [--settle 30] NAME=BINARY[:AUDIT_YAML] ...
  e.g. old=/path/to/old/millwatch  new=/path/to/millwatch  'new-2s=/path/to/millwatch:idle_poll_interval: 2s'
(the venv of tests/e2e has duckdb).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "report"))
import run as report_bench  # noqa: E402  (bench/report/run.py: the store)

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def measure(binary: str, audit_yaml: str, template: Path, seconds: float, settle: float) -> float:
    work = Path(tempfile.mkdtemp(prefix="mw-idle-"))
    try:
        data = work / "data"
        shutil.copytree(template, data)
        config = work / "millwatch.yaml"
        config.write_text("audit:\n" + "".join(f"  {line}\n" for line in audit_yaml.split(";") if line))
        cmd = [binary, "run", "--config", str(config), "--data-dir", str(data), "--otlp-grpc", "127.0.0.1:0",
               "--otlp-http", "127.0.0.1:0", "--http", "127.0.0.1:0"]
        p = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
        for line in p.stderr:
            if "millwatch is ready" in line:
                break
        time.sleep(settle)
        before = cpu_seconds(p.pid)
        time.sleep(seconds)
        spent = cpu_seconds(p.pid) - before
        p.terminate()
        p.wait(timeout=60)
        return spent
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--settle", type=float, default=30)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("runs", nargs="+")
    args = ap.parse_args()
    template = Path(tempfile.mkdtemp(prefix="mw-idle-store-"))
    try:
        os.environ.setdefault("MILLWATCH_BIN", args.runs[0].split("=", 1)[1].split(":", 1)[0])
        report_bench.create_schema(template)
        report_bench.fill(template / "millwatch.duckdb", args.events, 30, 10_000)
        for run in args.runs:
            name, rest = run.split("=", 1)
            binary, _, audit_yaml = rest.partition(":")
            spent = measure(binary, audit_yaml, template, args.seconds, args.settle)
            print(f"{name}: {spent:.2f} s CPU in {args.seconds:.0f} s idle "
                  f"({100 * spent / args.seconds:.2f} % of a core)", flush=True)
    finally:
        shutil.rmtree(template, ignore_errors=True)


if __name__ == "__main__":
    main()
