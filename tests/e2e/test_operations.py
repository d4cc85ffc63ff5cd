"""What the people running Millwatch see: start-up failures said once and plainly (a busy port
fails before the data directory is touched; a data directory in use names the process holding
it), pointers instead of empty 404s, and `--print-config` in the README's form that
`millwatch validate` accepts."""

from __future__ import annotations

import re
import socket
import subprocess

import pytest
import requests

from collector import free_ports, millwatch_bin
from rawhttp import send_ok
from traffic import Traffic

RUN_TIMEOUT_S = 120


def millwatch(*args: str) -> subprocess.CompletedProcess:
    """One `millwatch` command to its end; the timeout only keeps a hang from stalling the suite."""
    return subprocess.run([millwatch_bin(), *args], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=RUN_TIMEOUT_S)


def error_lines(stderr: str) -> list[str]:
    """Lines that report a failure: `error: ...`, or a log line at ERROR level (colours removed)."""
    plain = re.sub(r"\x1b\[[0-9;]*m", "", stderr)
    return [line for line in plain.splitlines() if line.startswith("error: ") or " ERROR " in line]


# --- start-up failures ---------------------------------------------------------------------------
@pytest.mark.parametrize("flag,setting", [
    ("--http", "api.endpoint"),
    ("--otlp-http", "receivers.otlp.http.endpoint"),
    ("--otlp-grpc", "receivers.otlp.grpc.endpoint"),
])
def test_a_busy_port_stops_the_start_with_one_message_and_no_data_dir(tmp_path, flag, setting):
    data = tmp_path / "data"
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = f"127.0.0.1:{busy.getsockname()[1]}"
        addrs = dict(zip(["--http", "--otlp-http", "--otlp-grpc"], (f"127.0.0.1:{p}" for p in free_ports(3))))
        addrs[flag] = taken
        p = millwatch("run", "--data-dir", str(data), *[x for pair in addrs.items() for x in pair])
    assert p.returncode == 1, p.stderr
    errors = error_lines(p.stderr)
    assert len(errors) == 1, f"said once:\n{p.stderr}"
    assert errors[0].startswith(f"error: cannot listen on {taken} for "), errors
    assert "Address already in use" in errors[0] and setting in errors[0] and flag in errors[0], errors
    assert p.stderr.count("Address already in use") == 1, p.stderr
    assert not data.exists(), "the store must not be created, migrated or replayed before the ports are bound"


def test_a_second_collector_on_a_data_dir_in_use_names_it_and_the_holder(collector):
    grpc, http, api = free_ports(3)
    p = millwatch("run", "--data-dir", str(collector.data_dir), "--otlp-grpc", f"127.0.0.1:{grpc}",
                  "--otlp-http", f"127.0.0.1:{http}", "--http", f"127.0.0.1:{api}")
    assert p.returncode == 1, p.stderr
    errors = error_lines(p.stderr)
    assert len(errors) == 1, f"said once:\n{p.stderr}"
    line = errors[0]
    assert line.startswith(f"error: the data directory {collector.data_dir} is in use: "), line
    assert f"millwatch (PID {collector.proc.pid}) holds the lock on {collector.db_path}" in line, line
    assert "Error code" not in p.stderr and "Unknown error code" not in p.stderr, p.stderr
    assert "--data-dir" in line, "says how to get past it"
    # the first collector goes on undisturbed
    collector.assert_running()
    send_ok(collector, Traffic().inferences(2))


# --- pointers instead of empty 404s ---------------------------------------------------------------
def test_root_and_unknown_paths_point_to_metrics_the_api_and_the_docs(collector):
    api, otlp = collector.api_base, collector.http_base
    asked = [(api, "/", 200), (api, "/nope", 404), (api, "/api/v1/nope", 404),
             (otlp, "/", 200), (otlp, "/metrics", 404), (otlp, "/v1/nope", 404)]
    for base, path, status in asked:
        r = requests.get(base + path, timeout=10)
        assert r.status_code == status, f"GET {base}{path}: {r.status_code} {r.text[:300]}"
        assert r.headers["Content-Type"].startswith("application/json"), r.headers
        body = r.json()
        assert body["metrics"] == f"{api}/metrics", body
        assert f"{api}/api/v1/stats" in body["api"] and f"{api}/readyz" in body["health"], body
        assert f"POST {otlp}/v1/logs" in body["otlp"]["http"], body
        assert body["otlp"]["grpc"] == f"http://{collector.grpc_endpoint}", body
        assert "docs/signals.md" in body["docs"] and "README.md" in body["docs"], body
        if status == 404:
            assert body["error"] == f"no such resource: GET {path}", body
        else:
            assert "error" not in body, body
    # the pointers lead somewhere
    assert requests.get(f"{api}/metrics", timeout=10).status_code == 200
    assert requests.get(f"{api}/api/v1/stats", timeout=10).status_code == 200
    # an OTLP path asked with the wrong method says which one it takes
    r = requests.get(f"{otlp}/v1/logs", timeout=10)
    assert r.status_code == 405 and r.headers.get("Allow") == "POST", (r.status_code, r.headers)
    assert r.json()["error"] == "GET /v1/logs is not served here: use POST"
    # so does an API path: not axum's bare 405
    r = requests.patch(f"{api}/api/v1/silences", timeout=10)
    assert r.status_code == 405 and r.headers.get("Allow") == "GET,HEAD,POST", (r.status_code, r.headers)
    assert r.json()["error"] == "PATCH /api/v1/silences is not served here: use GET,HEAD,POST"
    # and OTLP itself is unchanged
    send_ok(collector, Traffic().inferences(1))


# --- --print-config ---------------------------------------------------------------------------
CUSTOM = """\
receivers:
  otlp:
    max_body_size: 4MiB
store:
  retention: 7d
  commit_interval: 1500ms
exporters:
  prometheus:
    series_ttl: 90s
detection:
  time_window_grace: 1m30s
alerting:
  receivers:
    am: {type: alertmanager, urls: ["http://127.0.0.1:9093"], resend_interval: 2m}
  route: {receiver: am, group_wait: 45s}
  delivery: {keep_delivered: 2d, keep_failed: 30d}
"""


def print_config(*args: str) -> str:
    p = millwatch("run", *args, "--print-config")
    assert p.returncode == 0 and not p.stderr, p.stderr
    return p.stdout


@pytest.mark.parametrize("config,lines", [
    (None, ["  retention: 30d", "  retention_interval: 1h", "  commit_interval: 250ms",
            "    max_body_size: 20MiB", "  checkpoint_threshold: 256MiB", "    series_ttl: 5m",
            "  time_window_grace: 10s"]),
    (CUSTOM, ["  retention: 7d", "  commit_interval: 1s500ms", "    max_body_size: 4MiB",
              "    series_ttl: 1m30s", "  time_window_grace: 1m30s", "      resend_interval: 2m",
              "    keep_delivered: 2d", "    keep_failed: 30d"]),
], ids=["default", "custom"])
def test_print_config_writes_the_readme_form_and_round_trips_through_validate(tmp_path, config, lines):
    args = []
    if config is not None:
        (tmp_path / "in.yaml").write_text(config)
        args = ["--config", str(tmp_path / "in.yaml")]
    printed = print_config(*args)
    for line in lines:
        assert f"\n{line}\n" in printed, f"{line!r} in\n{printed}"
    assert "days" not in printed and "20971520" not in printed, printed
    out = tmp_path / "printed.yaml"
    out.write_text(printed)
    v = millwatch("validate", "--config", str(out))
    assert v.returncode == 0 and v.stdout.strip() == f"{out}: ok", v.stderr
    assert print_config("--config", str(out)) == printed, "read back as the same settings"
