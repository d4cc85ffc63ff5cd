"""A full disk queue with a real OpenTelemetry Python SDK client (issue 17): the edge answers
the SDK's export with UNAVAILABLE (gRPC) or 503 + Retry-After (HTTP), the SDK's own retry
policy tries again, and once the centre is back and the queue drains, the retry lands: every
event the SDK got acknowledged arrives at the centre exactly once."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import pytest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource

from otlp import inference_attrs
from pysdk import RecGrpcLogs, RecHttpLogs, Sent
from rawhttp import send
from test_forwarding import MODEL, central_rows, edge_and_central, inference_batch, own_metric, wait_for


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_the_sdk_retries_a_full_edge_and_everything_acknowledged_arrives_once(tmp_path: Path, protocol):
    edge, central = edge_and_central(tmp_path, tmp_path / "q", max_bytes=64 << 10)
    try:
        edge.start()
        # Fill the queue with the centre down: requests of five events, then of one, until
        # even one event does not fit.
        acked: list[str] = []
        r = 0
        for n in (5, 1):
            for _ in range(300):
                req, ids = inference_batch(r, n)
                r += 1
                if send(edge, req).status != 200:
                    break
                acked += ids
            else:
                raise AssertionError("the 64 KiB queue never filled")
        refused_before = own_metric(edge, "millwatch_otlp_exporter_items_refused_queue_full_total")

        sent = Sent()
        if protocol == "grpc":
            exporter = RecGrpcLogs(sent, endpoint=edge.grpc_endpoint, insecure=True, timeout=60)
        else:
            exporter = RecHttpLogs(sent, endpoint=f"{edge.http_base}/v1/logs", timeout=60)
        provider = LoggerProvider(resource=Resource.create({"service.name": "press-line"}))
        # The SDK's batch processor: three events in one export, flushed on the client's thread,
        # which blocks through the SDK's retries.
        provider.add_log_record_processor(BatchLogRecordProcessor(exporter, schedule_delay_millis=3_600_000))
        logger = provider.get_logger("millwatch.e2e.sdk")
        sdk_ids = [f"sdk-{uuid.uuid4()}" for _ in range(3)]

        def emit_all() -> None:
            for k, iid in enumerate(sdk_ids):
                logger.emit(event_name="ml.inference", attributes=inference_attrs(iid, 1000 + k, model=MODEL))
            assert provider.force_flush(120_000)

        client = threading.Thread(target=emit_all)
        client.start()
        wait_for("the SDK's export to be refused",
                 lambda: own_metric(edge, "millwatch_otlp_exporter_items_refused_queue_full_total") > refused_before,
                 c=edge)
        # The centre comes back while the SDK is between its tries.
        central.start()
        client.join(timeout=120)
        assert not client.is_alive(), "the SDK's export never returned"
        sent.assert_all_succeeded()
        assert len(sent.exports) == 1
        wait_for("the edge's queue to drain",
                 lambda: own_metric(edge, "millwatch_otlp_exporter_queue_items") == 0, c=edge)
        provider.shutdown()
        edge.stop_clean()
        central.stop_clean()
        ids, _ = central_rows(central)
        assert sorted(ids) == sorted(acked + sdk_ids), "everything acknowledged, exactly once"
        assert ids[:len(acked)] == acked, "in order"
    finally:
        for c in (edge, central):
            if c.running:
                c.kill()
