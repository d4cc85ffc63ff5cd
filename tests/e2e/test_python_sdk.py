"""Case 1: the OpenTelemetry Python SDK over gRPC and OTLP/HTTP protobuf (also gzip-compressed):
every metric point, inference event, feedback event, log record and span is in DuckDB, exactly."""

from __future__ import annotations

import pytest

from pysdk import SdkClient
from storecheck import StoreChecker, count_rows


def run_scenario(collector, protocol: str, gzip: bool = False):
    client = SdkClient(collector, protocol, service=f"quality-inspection-{protocol}", gzip=gzip)
    client.send_metrics()
    ids = client.send_events(n=40)
    client.send_spans()
    client.shutdown()
    client.sent.assert_all_succeeded()
    collector.stop_clean()
    return client, ids


@pytest.mark.parametrize(
    "protocol,gzip",
    [("grpc", False), ("grpc", True), ("http/protobuf", False), ("http/protobuf", True)],
    ids=["python_sdk_grpc", "python_sdk_grpc_gzip", "python_sdk_http_protobuf", "python_sdk_http_protobuf_gzip"],
)
def test_python_sdk_signals_stored_exactly(collector, protocol, gzip):
    client, ids = run_scenario(collector, protocol, gzip)
    with collector.db() as db:
        counts = StoreChecker(db).check_all(client.sent.requests())
        # 40 events + 4 emitted inside spans; 20 feedback; 1 other log; 4+4 spans
        assert counts.inferences == 44
        assert counts.features == 44 * 12
        assert counts.feedback == 20
        assert counts.logs == 1
        assert counts.spans == 8
        # at least the two flushed collections: 3 gauge + 2 counter + 1 up-down points and
        # 2 distributions each (the SDK's shutdown may export a third)
        assert counts.points >= 12
        assert counts.distributions >= 4
        # nothing else was stored: the store holds exactly what was sent
        assert count_rows(db, "inferences") == counts.inferences
        assert count_rows(db, "inference_features") == counts.features
        assert count_rows(db, "feedback") == counts.feedback
        assert count_rows(db, "logs") == counts.logs
        assert count_rows(db, "spans") == counts.spans
        assert count_rows(db, "metric_points") == counts.points
        assert count_rows(db, "metric_distributions") == counts.distributions
        assert count_rows(db, "resources") == 1
        types = dict(db.execute("SELECT name, type FROM metric_series GROUP BY ALL").fetchall())
        assert types == {
            "hw.temperature": "gauge",
            "machine.parts.produced": "sum",
            "machine.queue.length": "sum",
            "machine.cycle.duration": "histogram",
            "ml.inference.latency": "exponential_histogram",
        }
        stored_ids = {r[0] for r in db.execute("SELECT inference_id FROM inferences").fetchall()}
        assert set(ids) <= stored_ids
        errors = db.execute("SELECT count(*) FROM spans WHERE status_code = 2 AND model IS NOT NULL").fetchone()[0]
        assert errors == 1
