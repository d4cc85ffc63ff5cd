"""The real `millwatch` binary as a test peer: free loopback ports, a temp data dir, stderr kept."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import duckdb
import requests

READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 60.0


def free_ports(n: int) -> list[int]:
    """`n` distinct free loopback ports: every socket stays bound until all are chosen, so the
    kernel cannot hand the same port out twice."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def free_port() -> int:
    return free_ports(1)[0]


def millwatch_bin() -> str:
    path = os.environ.get("MILLWATCH_BIN")
    if not path:
        raise RuntimeError("MILLWATCH_BIN is not set: run the tests through scripts/test")
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"MILLWATCH_BIN={path} is not an executable")
    return path


class PortTaken(AssertionError):
    """The collector could not bind a port chosen for it."""


class Collector:
    """One `millwatch run` process on loopback ports, with its own data dir."""

    def __init__(self, workdir: Path, config: str | None = None, data_dir: Path | None = None):
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.data_dir = data_dir or workdir / "data"
        self.config_path: Path | None = None
        if config is not None:
            self.config_path = workdir / "millwatch.yaml"
            self.config_path.write_text(config)
        self.proc: subprocess.Popen | None = None
        self.runs = 0
        self.stderr_paths: list[Path] = []
        self.exit_codes: list[int] = []

    # --- addresses -------------------------------------------------------------------------
    @property
    def grpc_endpoint(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def http_base(self) -> str:
        return f"http://127.0.0.1:{self.otlp_http_port}"

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def db_path(self) -> Path:
        return self.data_dir / "millwatch.duckdb"

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> Collector:
        assert self.proc is None, "already running"
        for attempt in range(3):
            try:
                return self._start_once()
            except PortTaken:
                # Another process took a chosen port between choosing and binding: choose again.
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _start_once(self) -> Collector:
        self.grpc_port, self.otlp_http_port, self.api_port = free_ports(3)
        self.runs += 1
        stderr_path = self.workdir / f"millwatch-run{self.runs}.stderr"
        self.stderr_paths.append(stderr_path)
        cmd = [
            millwatch_bin(),
            "run",
            "--data-dir",
            str(self.data_dir),
            "--otlp-grpc",
            self.grpc_endpoint,
            "--otlp-http",
            f"127.0.0.1:{self.otlp_http_port}",
            "--http",
            f"127.0.0.1:{self.api_port}",
        ]
        if self.config_path is not None:
            cmd += ["--config", str(self.config_path)]
        self.cmd = cmd
        with open(stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                cmd, cwd=self.workdir, stdin=subprocess.DEVNULL, stdout=err, stderr=err
            )
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        last = "no answer"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.proc = None
                this_run = self.stderr_paths[-1].read_text(errors="replace")
                if "Address already in use" in this_run:
                    raise PortTaken(this_run)
                raise AssertionError(
                    f"millwatch exited with {code} before /readyz answered 200\n"
                    f"command: {' '.join(self.cmd)}\n{self.stderr_tail()}"
                )
            try:
                r = requests.get(f"{self.api_base}/readyz", timeout=2)
                if r.status_code == 200:
                    return
                last = f"{r.status_code} {r.text[:200]}"
            except requests.RequestException as e:
                last = repr(e)
            time.sleep(0.05)
        self.kill()
        raise AssertionError(
            f"millwatch not ready after {READY_TIMEOUT_S}s (last /readyz: {last})\n"
            f"{self.stderr_tail()}"
        )

    def stop(self) -> int:
        """SIGTERM, wait for the drain; returns the exit code."""
        assert self.proc is not None, "not running"
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
            raise AssertionError(
                f"millwatch did not exit within {STOP_TIMEOUT_S}s of SIGTERM\n{self.stderr_tail()}"
            )
        self.proc = None
        self.exit_codes.append(code)
        return code

    def stop_clean(self) -> None:
        code = self.stop()
        assert code == 0, f"millwatch exited with {code} after SIGTERM\n{self.stderr_tail()}"

    def kill(self) -> None:
        """SIGKILL: no drain, no clean close."""
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.proc = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def assert_running(self) -> None:
        assert self.running, f"millwatch is no longer running\n{self.stderr_tail()}"

    # --- inspection ------------------------------------------------------------------------
    def stderr_tail(self, max_chars: int = 6000) -> str:
        out = []
        for path in self.stderr_paths:
            try:
                text = path.read_text(errors="replace")
            except FileNotFoundError:
                continue
            if len(text) > max_chars:
                text = "...\n" + text[-max_chars:]
            out.append(f"--- {path.name} ---\n{text}")
        return "\n".join(out)

    def db(self) -> duckdb.DuckDBPyConnection:
        """The store, opened read-only; the collector must be stopped first (DuckDB's file lock)."""
        assert self.proc is None, "stop the collector before opening its DuckDB file"
        assert self.db_path.exists(), f"{self.db_path} does not exist\n{self.stderr_tail()}"
        return duckdb.connect(str(self.db_path), read_only=True)

    def stats(self) -> dict:
        r = requests.get(f"{self.api_base}/api/v1/stats", timeout=10)
        assert r.status_code == 200, f"/api/v1/stats: {r.status_code} {r.text[:500]}"
        return r.json()
