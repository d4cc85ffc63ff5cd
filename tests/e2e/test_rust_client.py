"""Case 3: the Rust OpenTelemetry SDK with its `opentelemetry-otlp` exporter (the tests crate's
`otlp_rust_client`) over gRPC, HTTP/protobuf and HTTP/JSON: every item it exported is stored.
And README's Rust program (`tests/examples/readme_rust_client.rs`) is the one built here, with
the tests crate's crate versions, and what it sends is stored."""

from __future__ import annotations

import json
import os
import re
import subprocess
import tomllib
import uuid
from pathlib import Path

import pytest

from otlp import REQUEST_TYPES
from storecheck import StoreChecker, count_rows

EVENTS = 24
ROOT = Path(__file__).resolve().parents[2]
README_EXAMPLE = ROOT / "tests" / "examples" / "readme_rust_client.rs"


def rust_client() -> str:
    path = os.environ.get("MILLWATCH_RUST_CLIENT")
    if not path:
        raise RuntimeError("MILLWATCH_RUST_CLIENT is not set: run the tests through scripts/test")
    return path


def run_client(collector, protocol: str, run_id: str) -> list:
    endpoint = f"http://{collector.grpc_endpoint}" if protocol == "grpc" else collector.http_base
    cmd = [rust_client(), "--protocol", protocol, "--endpoint", endpoint, "--run-id", run_id, "--events", str(EVENTS)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    lines = [json.loads(line) for line in p.stdout.splitlines() if line.strip()]
    failed = [e for e in lines if not e["ok"]]
    assert p.returncode == 0 and not failed, (
        f"otlp_rust_client exited {p.returncode}; failed exports: {[e['error'] for e in failed]}\n"
        f"stderr:\n{p.stderr[-4000:]}"
    )
    reqs = []
    for e in lines:
        msg = REQUEST_TYPES[e["signal"]]()
        msg.ParseFromString(bytes.fromhex(e["request_hex"]))
        reqs.append(msg)
    assert {e["signal"] for e in lines} == {"logs", "metrics", "traces"}, "a signal was never exported"
    return reqs


@pytest.mark.parametrize("protocol", ["grpc", "http-proto", "http-json"],
                         ids=["rust_otlp_grpc", "rust_otlp_http_protobuf", "rust_otlp_http_json"])
def test_rust_otlp_exporter_signals_stored_exactly(collector, protocol):
    run_id = f"rust-{protocol}-{uuid.uuid4().hex[:8]}"
    reqs = run_client(collector, protocol, run_id)
    collector.stop_clean()
    with collector.db() as db:
        counts = StoreChecker(db).check_all(reqs)
        assert counts.inferences == EVENTS
        assert counts.features == EVENTS * 12
        assert counts.feedback == EVENTS // 2
        assert counts.spans == EVENTS + 2
        assert counts.points >= 2 * (2 + 1 + 1), "two flushes of 2 gauge, 1 counter, 1 up-down points"
        assert counts.distributions >= 2
        for table, n in [("inferences", counts.inferences), ("feedback", counts.feedback),
                         ("spans", counts.spans), ("metric_points", counts.points),
                         ("metric_distributions", counts.distributions), ("logs", counts.logs)]:
            assert count_rows(db, table) == n, f"{table}: {count_rows(db, table)} rows, {n} sent"
        # every inference event is joined to its span through the trace context
        joined = db.execute(
            "SELECT count(*) FROM inferences i JOIN spans s ON i.trace_id = s.trace_id AND i.span_id = s.span_id "
            "WHERE s.model = i.model"
        ).fetchone()[0]
        assert joined == EVENTS
        errors = db.execute("SELECT count(*) FROM spans WHERE status_code = 2").fetchone()[0]
        assert errors == sum(1 for i in range(EVENTS) if i % 7 == 3)


# --- README's Rust program ----------------------------------------------------------------------
def readme_blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", (ROOT / "README.md").read_text(), re.S | re.M)


def readme_client() -> str:
    """The example's binary: cargo builds examples (`--all-targets`) beside the tests crate's bins."""
    path = os.environ.get("MILLWATCH_README_CLIENT") or str(Path(rust_client()).parent / "examples" / "readme_rust_client")
    assert os.access(path, os.X_OK), f"{path} was not built: cargo build --release -p millwatch-e2e --examples"
    return path


def test_readme_rust_program_is_the_built_example_with_the_tests_crate_versions():
    assert README_EXAMPLE.read_text() in readme_blocks("rust"), "README's Rust block differs from the example"
    [deps] = [tomllib.loads(b)["dependencies"] for b in readme_blocks("toml") if "opentelemetry-otlp" in b]
    ours = tomllib.loads((ROOT / "tests" / "Cargo.toml").read_text())["dependencies"]
    for crate in ["opentelemetry", "opentelemetry_sdk", "opentelemetry-otlp"]:
        assert deps[crate]["version"] == ours[crate]["version"], crate
        assert set(deps[crate]["features"]) <= set(ours[crate]["features"]), f"{crate}: the example builds with these"


def test_readme_rust_program_sends_an_inference_that_is_stored(collector):
    env = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{collector.grpc_endpoint}"}
    p = subprocess.run([readme_client()], capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0, p.stderr[-4000:]
    collector.stop_clean()
    with collector.db() as db:
        rows = db.execute(
            "SELECT i.model, i.version, i.inference_id, i.prediction, i.score, r.service_name, r.site_line "
            "FROM inferences i JOIN resources r USING (resource_id)").fetchall()
        assert rows == [("spindle-failure", "3.2.0", "inf-0001", 1.0, 0.87, "spindle-predictor", "line-3")], rows
        features = dict(db.execute("SELECT feature, coalesce(value_double::VARCHAR, value_string) "
                                   "FROM inference_features").fetchall())
        assert features == {"vibration_rms": "4.2", "bearing_temp_c": "71.5", "station": "mill"}, features
