"""Logs for people and for machines: text logs carry ANSI colours only on a terminal (and not
with NO_COLOR), so a file, a pipe or journald gets plain lines; `log.format: json` or
`--log-format json` writes one JSON object per line for log shippers."""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests

from collector import free_ports, millwatch_bin

READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 60.0
ESC = b"\x1b["


def read_all(fd: int, into: bytearray) -> None:
    """Reads `fd` to its end (a pty's end is EIO once the child has exited)."""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            return
        if not chunk:
            return
        into.extend(chunk)


def run_and_stop(tmp_path: Path, output: str, args: tuple[str, ...] = (),
                 env: dict[str, str] | None = None) -> bytes:
    """Starts `millwatch run` with stdout and stderr to `output` ("file", "pipe" or "terminal"),
    waits for /readyz, stops it with SIGTERM and returns everything it wrote."""
    for _ in range(3):
        written = _run_once(tmp_path, output, args, env)
        if b"Address already in use" not in written:
            return written
    raise AssertionError(f"no free ports after 3 tries:\n{written.decode(errors='replace')}")


def _run_once(tmp_path: Path, output: str, args: tuple[str, ...], env: dict[str, str] | None) -> bytes:
    grpc, http, api = free_ports(3)
    cmd = [millwatch_bin(), "run", "--data-dir", str(tmp_path / "data"),
           "--otlp-grpc", f"127.0.0.1:{grpc}", "--otlp-http", f"127.0.0.1:{http}",
           "--http", f"127.0.0.1:{api}", *args]
    environ = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "MILLWATCH_LOG")}
    environ.update(env or {})
    written = bytearray()
    reader: threading.Thread | None = None
    log_path = tmp_path / "millwatch.log"
    if output == "file":
        with open(log_path, "wb") as f:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=f, stderr=f, env=environ)
    elif output == "pipe":
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, env=environ)
        reader = threading.Thread(target=read_all, args=(proc.stdout.fileno(), written))
    elif output == "terminal":
        master, slave = pty.openpty()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, env=environ)
        os.close(slave)
        reader = threading.Thread(target=read_all, args=(master, written))
    else:
        raise ValueError(output)
    if reader is not None:
        reader.start()
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                if requests.get(f"http://127.0.0.1:{api}/readyz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.05)
        else:
            if proc.poll() is None:
                raise AssertionError(f"millwatch not ready after {READY_TIMEOUT_S}s")
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=STOP_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if reader is not None:
            reader.join(timeout=10)
        if output == "terminal":
            os.close(master)
        if output == "pipe":
            proc.stdout.close()
    if output == "file":
        written.extend(log_path.read_bytes())
    text = written.decode(errors="replace")
    if "Address already in use" not in text:
        assert code == 0, f"millwatch exited with {code}:\n{text}"
        assert "millwatch is ready" in text, text
    return bytes(written)


@pytest.mark.parametrize("output", ["file", "pipe"])
def test_logs_to_a_file_or_a_pipe_carry_no_colour(tmp_path, output):
    written = run_and_stop(tmp_path, output)
    assert ESC not in written, f"ANSI escape in logs written to a {output}:\n{written!r}"
    assert b" INFO " in written, written.decode(errors="replace")


def test_logs_on_a_terminal_are_coloured(tmp_path):
    written = run_and_stop(tmp_path, "terminal")
    assert ESC in written, f"no colour on a terminal:\n{written!r}"


@pytest.mark.parametrize("no_color", ["1", "true"])
def test_no_color_turns_colour_off_on_a_terminal(tmp_path, no_color):
    written = run_and_stop(tmp_path, "terminal", env={"NO_COLOR": no_color})
    assert ESC not in written, f"colour despite NO_COLOR={no_color}:\n{written!r}"
    assert b" INFO " in written, written.decode(errors="replace")


@pytest.mark.parametrize("how", ["flag", "config"])
@pytest.mark.parametrize("output", ["pipe", "terminal"])
def test_json_logs_are_one_object_per_line(tmp_path, how, output):
    if how == "flag":
        args: tuple[str, ...] = ("--log-format", "json")
    else:
        config = tmp_path / "millwatch.yaml"
        config.write_text("log: {format: json}\n")
        args = ("--config", str(config))
    written = run_and_stop(tmp_path, output, args)
    assert ESC not in written, f"ANSI escape in JSON logs:\n{written!r}"
    lines = written.decode().splitlines()
    assert len(lines) >= 3, written
    records = []
    for line in lines:
        record = json.loads(line)
        assert {"timestamp", "level", "target", "fields"} <= record.keys(), line
        assert record["level"] in {"ERROR", "WARN", "INFO", "DEBUG", "TRACE"}, line
        assert isinstance(record["fields"].get("message"), str), line
        records.append(record)
    messages = [r["fields"]["message"] for r in records]
    assert "millwatch is ready" in messages, messages
    listening = [r for r in records if r["fields"]["message"].startswith("listening for")]
    assert listening and all("addr" in r["fields"] for r in listening), records
    assert all(r["target"].startswith("millwatch") for r in records), records
