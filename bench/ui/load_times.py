"""The web UI's page load times in a browser, at the size `millwatch bench ui` fills (50 models x
30 features x 7 days of hourly windows by default): fills a store with `millwatch bench ui
--data-dir` (which also prints each page's server time), starts a collector on it with
detection off, and loads every page in headless Debian chromium with Playwright, reporting
the navigation's duration (request to the load event) and the server time the page's
`Server-Timing` header gave, median of --loads loads.

Usage: python bench/ui/load_times.py [--loads 5] [-- extra `bench ui` flags]
(the venv of tests/e2e has Playwright; MILLWATCH_BIN or target/release/millwatch is the binary;
chromium at /usr/bin/chromium).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.request import Request, urlopen

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[2]
CONFIG = "detection:\n  enabled: false\n"


def binary() -> str:
    return os.environ.get("MILLWATCH_BIN") or str(ROOT / "target" / "release" / "millwatch")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--loads", type=int, default=5)
    ap.add_argument("bench_args", nargs="*", help="passed to `millwatch bench ui`")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="millwatch-ui-load-"))
    try:
        data = work / "data"
        filled = subprocess.run([binary(), "bench", "ui", "--data-dir", str(data), "--requests", "5",
                                 "--format", "json", *args.bench_args],
                                check=True, capture_output=True, text=True)
        server = json.loads(filled.stdout)
        (work / "bench.yaml").write_text(CONFIG)
        api = free_port()
        proc = subprocess.Popen([binary(), "run", "--config", str(work / "bench.yaml"), "--data-dir", str(data),
                                 "--http", f"127.0.0.1:{api}", "--otlp-grpc", f"127.0.0.1:{free_port()}",
                                 "--otlp-http", f"127.0.0.1:{free_port()}"], stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{api}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    urlopen(Request(base + "/readyz"), timeout=2)
                    break
                except OSError:
                    assert time.monotonic() < deadline, "the collector did not start"
                    time.sleep(0.2)
            time.sleep(3)  # the audit trail's registry learns the model versions
            rows = []
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                            args=["--no-sandbox", "--disable-background-networking"])
                page = browser.new_page()
                for entry in server["pages"]:
                    loads, renders = [], []
                    for _ in range(args.loads + 1):
                        page.goto(base + entry["path"], wait_until="load")
                        nav = page.evaluate(
                            "() => { const n = performance.getEntriesByType('navigation')[0];"
                            " const t = n.serverTiming.find(s => s.name === 'render');"
                            " return [n.duration, t ? t.duration : null]; }")
                        loads.append(nav[0])
                        renders.append(nav[1])
                    loads, renders = loads[1:], [r for r in renders[1:] if r is not None]
                    rows.append((entry["page"], statistics.median(loads),
                                 statistics.median(renders) if renders else float("nan")))
                browser.close()
        finally:
            proc.terminate()
            proc.wait(timeout=60)
        print(f"{server['models']} models x {server['features']} features, {server['windows_per_model']} windows each, "
              f"{server['inferences']} inferences; median of {args.loads} loads in chromium")
        print(f"{'page':<20} {'load ms':>9} {'server ms':>10}")
        for page_name, load, render in rows:
            print(f"{page_name:<20} {load:>9.1f} {render:>10.1f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
