"""Peer processes the tests talk to — a real SMTP server (aiosmtpd, peers/smtp_sink.py), an HTTP
recorder, Debian's prometheus-alertmanager — and waiting for what they received. The `peers`
fixture (conftest.py) gives a test a `Peers` stopped at teardown."""

from __future__ import annotations

import email
import email.policy
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

PEERS = Path(__file__).resolve().parent / "peers"
ALERTMANAGER = os.environ.get("ALERTMANAGER", "/usr/bin/prometheus-alertmanager")
AMTOOL = os.environ.get("AMTOOL", "/usr/bin/amtool")
TIMEOUT_S = 90.0


def wait_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{what} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"{what} did not listen on {port} within {timeout}s")


class Peers:
    """Peer processes of one test, stopped at teardown."""

    def __init__(self, tmp_path: Path):
        self.tmp = tmp_path
        self.procs: list[subprocess.Popen] = []

    def _start(self, cmd: list[str], port: int, what: str) -> subprocess.Popen:
        log = open(self.tmp / f"{what}-{port}.log", "wb")
        proc = subprocess.Popen(cmd, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        self.procs.append(proc)
        wait_port(port, proc, what)
        return proc

    def smtp(self, port: int, directory: Path) -> subprocess.Popen:
        directory.mkdir(parents=True, exist_ok=True)
        return self._start(
            [sys.executable, str(PEERS / "smtp_sink.py"), "--port", str(port), "--dir", str(directory)],
            port, "smtp")

    def http(self, port: int, directory: Path) -> subprocess.Popen:
        directory.mkdir(parents=True, exist_ok=True)
        return self._start(
            [sys.executable, str(PEERS / "http_recorder.py"), "--port", str(port), "--dir", str(directory)],
            port, "http")

    def alertmanager(self, port: int, resolve_timeout: str = "5m") -> subprocess.Popen:
        for tool in (ALERTMANAGER, AMTOOL):
            if not os.access(tool, os.X_OK):
                pytest.fail(f"{tool} not found: apt-get install prometheus-alertmanager")
        cfg = self.tmp / "alertmanager.yml"
        cfg.write_text(f"global:\n  resolve_timeout: {resolve_timeout}\n"
                       "route:\n  receiver: blackhole\n  group_wait: 1h\nreceivers:\n  - name: blackhole\n")
        return self._start([
            ALERTMANAGER, f"--config.file={cfg}", f"--storage.path={self.tmp / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=", "--log.level=warn",
        ], port, "alertmanager")

    @staticmethod
    def stop(proc: subprocess.Popen) -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def stop_all(self) -> None:
        for p in self.procs:
            self.stop(p)


def mails(directory: Path) -> list[email.message.EmailMessage]:
    return [email.message_from_bytes(f.read_bytes(), policy=email.policy.default)
            for f in sorted(directory.glob("*.eml"))]


def hooks(directory: Path) -> list[dict]:
    return [json.loads(f.read_text()) for f in sorted(directory.glob("*.json"))]


def wait_for(pred, what: str, timeout: float = TIMEOUT_S, collector=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.2)
    tail = collector.stderr_tail() if collector is not None else ""
    raise AssertionError(f"timed out waiting for {what}\n{tail}")
