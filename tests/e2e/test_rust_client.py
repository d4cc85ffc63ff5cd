"""Case 3: the Rust OpenTelemetry SDK with its `opentelemetry-otlp` exporter (the tests crate's
`otlp_rust_client`) over gRPC, HTTP/protobuf and HTTP/JSON: every item it exported is stored."""

from __future__ import annotations

import json
import os
import subprocess
import uuid

import pytest

from otlp import REQUEST_TYPES
from storecheck import StoreChecker, count_rows

EVENTS = 24


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
