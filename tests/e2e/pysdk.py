"""The OpenTelemetry Python SDK as a client: metrics, inference and feedback events, spans.

Each exporter is the SDK's own OTLP exporter, wrapped so that what it exported is also encoded
with the SDK's own encoder and kept: the exact requests the collector got, item for item, with
the export result. Tests then look every item up in the store.
"""

from __future__ import annotations

import time
import uuid

import grpc
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogExporter
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
    OTLPMetricExporter as GrpcMetricExporter,
)
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
    OTLPMetricExporter as HttpMetricExporter,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogRecordExportResult
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricExportResult, PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult
from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context

from otlp import inference_attrs

HOUR_MS = 3_600_000


@dataclass
class Sent:
    """What the wrapped exporters exported: (request message, succeeded) per export call."""

    exports: list[tuple[Any, bool]] = field(default_factory=list)

    def requests(self) -> list:
        return [req for req, _ in self.exports]

    def assert_all_succeeded(self) -> None:
        failed = [i for i, (_, ok) in enumerate(self.exports) if not ok]
        assert self.exports, "the SDK exported nothing"
        assert not failed, f"exports {failed} of {len(self.exports)} failed"


def _recording(base, encode, ok_result):
    class Recording(base):
        def __init__(self, sent: Sent, **kw):
            super().__init__(**kw)
            self._sent = sent

        def export(self, data, *args, **kwargs):
            result = super().export(data, *args, **kwargs)
            self._sent.exports.append((encode(data), result == ok_result))
            return result

    Recording.__name__ = f"Recording{base.__name__}"
    return Recording


RecGrpcLogs = _recording(GrpcLogExporter, encode_logs, LogRecordExportResult.SUCCESS)
RecHttpLogs = _recording(HttpLogExporter, encode_logs, LogRecordExportResult.SUCCESS)
RecGrpcMetrics = _recording(GrpcMetricExporter, encode_metrics, MetricExportResult.SUCCESS)
RecHttpMetrics = _recording(HttpMetricExporter, encode_metrics, MetricExportResult.SUCCESS)
RecGrpcSpans = _recording(GrpcSpanExporter, encode_spans, SpanExportResult.SUCCESS)
RecHttpSpans = _recording(HttpSpanExporter, encode_spans, SpanExportResult.SUCCESS)


def resource_attrs(service: str) -> dict[str, Any]:
    return {
        "service.name": service,
        "service.instance.id": str(uuid.uuid4()),
        "deployment.environment.name": "staging",
        "host.name": "edge-box-7",
        "site.name": "plant-lyon",
        "site.line": "line-2",
        "site.cell": "cell-b",
    }


class SdkClient:
    """One process's worth of SDK providers exporting to a collector over one protocol.

    protocol: "grpc" or "http/protobuf"; gzip compresses requests on either.
    """

    def __init__(self, collector, protocol: str, service: str, gzip: bool = False):
        self.sent = Sent()
        self.resource_attrs = resource_attrs(service)
        self.resource = Resource.create(self.resource_attrs)
        if protocol == "grpc":
            kw = dict(endpoint=collector.grpc_endpoint, insecure=True, timeout=30)
            if gzip:
                kw["compression"] = grpc.Compression.Gzip
            log_exp = RecGrpcLogs(self.sent, **kw)
            metric_exp = RecGrpcMetrics(self.sent, **kw)
            span_exp = RecGrpcSpans(self.sent, **kw)
        elif protocol == "http/protobuf":
            comp = Compression.Gzip if gzip else Compression.NoCompression
            base = collector.http_base
            log_exp = RecHttpLogs(self.sent, endpoint=f"{base}/v1/logs", compression=comp, timeout=30)
            metric_exp = RecHttpMetrics(self.sent, endpoint=f"{base}/v1/metrics", compression=comp, timeout=30)
            span_exp = RecHttpSpans(self.sent, endpoint=f"{base}/v1/traces", compression=comp, timeout=30)
        else:
            raise ValueError(protocol)
        self.logger_provider = LoggerProvider(resource=self.resource)
        self.logger_provider.add_log_record_processor(BatchLogRecordProcessor(log_exp))
        self.metric_reader = PeriodicExportingMetricReader(metric_exp, export_interval_millis=HOUR_MS)
        self.meter_provider = MeterProvider(
            resource=self.resource,
            metric_readers=[self.metric_reader],
            # instruments that match no view keep their default aggregation
            views=[
                View(instrument_name="ml.inference.latency", aggregation=ExponentialBucketHistogramAggregation(max_size=40)),
            ],
        )
        self.tracer_provider = TracerProvider(resource=self.resource)
        self.tracer_provider.add_span_processor(BatchSpanProcessor(span_exp))

    # --- the scenario ----------------------------------------------------------------------
    def send_metrics(self) -> None:
        meter = self.meter_provider.get_meter("millwatch.e2e.machines", "1.2.0")
        temp = meter.create_gauge("hw.temperature", unit="Cel", description="Component temperature")
        parts = meter.create_counter("machine.parts.produced", unit="{part}", description="Parts made")
        queue = meter.create_up_down_counter("machine.queue.length", unit="{part}")
        cycle = meter.create_histogram("machine.cycle.duration", unit="s")
        latency = meter.create_histogram("ml.inference.latency", unit="s")
        for round_ in range(2):
            for hw in range(3):
                temp.set(
                    41.5 + hw + round_ * 0.125,
                    {"hw.id": f"spindle-{hw}", "hw.type": "temperature", "hw.sensor_location": "spindle"},
                )
            parts.add(7 + round_, {"machine.id": "cnc-1"})
            parts.add(3, {"machine.id": "cnc-2"})
            queue.add(5, {"machine.id": "cnc-1"})
            queue.add(-2 - round_, {"machine.id": "cnc-1"})
            for i in range(20):
                cycle.record(10.0 + i * 0.5 + round_, {"machine.id": "cnc-1"})
                latency.record(0.002 * (i + 1) * (round_ + 1), {"ml.model.name": "defect-detector"})
            # Each flush is one export with its own collection time: two points per series.
            assert self.meter_provider.force_flush(30_000), "metrics force_flush timed out"

    def send_events(self, n: int = 40) -> list[str]:
        """n inference events (half with the LogRecord event_name, half with the event.name
        attribute of older SDKs) and a feedback event for every other one; returns the ids."""
        logger = self.logger_provider.get_logger("millwatch.e2e.inference", "2.0.0")
        base = time.time_ns() - 3_600_000_000_000
        ids = []
        for i in range(n):
            iid = f"inf-{uuid.uuid4()}"
            ids.append(iid)
            attrs = inference_attrs(iid, i)
            t = base + i * 1_000_003 + 7  # not microsecond multiples: nanoseconds must survive
            if i % 2:
                logger.emit(timestamp=t, observed_timestamp=t + 999, event_name="ml.inference", attributes=attrs)
            else:
                logger.emit(timestamp=t, observed_timestamp=t + 999, attributes={**attrs, "event.name": "ml.inference"})
            if i % 2 == 0:
                label = attrs["ml.prediction"] if i % 4 else "scratch"
                fb = {"ml.model.name": "defect-detector", "ml.inference.id": iid, "ml.label": label,
                      "label.source": "inspector"}
                logger.emit(timestamp=t + 86_400_000_000_123, event_name="ml.feedback", attributes=fb)
        # an ordinary log record goes to `logs`
        logger.emit(timestamp=base + 5, severity_text="WARN", severity_number=None, body="spindle warm",
                    attributes={"hw.id": "spindle-0", "count": 3})
        assert self.logger_provider.force_flush(30_000), "logs force_flush timed out"
        return ids

    def send_spans(self) -> None:
        tracer = self.tracer_provider.get_tracer("millwatch.e2e.serving", "0.9.0")
        base = time.time_ns() - 1_800_000_000_000
        logger = self.logger_provider.get_logger("millwatch.e2e.inference", "2.0.0")
        for i in range(4):
            start = base + i * 50_000_001
            parent = tracer.start_span(
                "POST /predict",
                kind=SpanKind.SERVER,
                start_time=start,
                attributes={"http.request.method": "POST", "http.response.status_code": 200 if i else 500},
            )
            ctx = set_span_in_context(parent)
            child = tracer.start_span(
                "predict",
                context=ctx,
                kind=SpanKind.INTERNAL,
                start_time=start + 1_000,
                attributes={"ml.model.name": "defect-detector", "ml.model.version": "3.2.1", "batch": i},
            )
            child.add_event("features.ready", {"n": 12}, timestamp=start + 2_000)
            if i == 0:
                child.set_status(Status(StatusCode.ERROR, "model raised ValueError"))
                parent.set_status(Status(StatusCode.ERROR))
            else:
                child.set_status(Status(StatusCode.OK))
            # an inference event inside the span carries its trace and span ids
            iid = f"inf-span-{uuid.uuid4()}"
            logger.emit(
                timestamp=start + 3_000,
                context=set_span_in_context(child),
                event_name="ml.inference",
                attributes=inference_attrs(iid, i),
            )
            child.end(end_time=start + 12_345_678)
            parent.end(end_time=start + 20_000_017)
        assert self.tracer_provider.force_flush(30_000), "spans force_flush timed out"
        assert self.logger_provider.force_flush(30_000), "logs force_flush timed out"

    def shutdown(self) -> None:
        # MeterProvider.shutdown collects and exports once more: a third point per series.
        self.meter_provider.shutdown()
        self.logger_provider.shutdown()
        self.tracer_provider.shutdown()
