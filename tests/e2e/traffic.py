"""Good OTLP requests with unique ids, made on demand, and remembered so they can be checked."""

from __future__ import annotations

import itertools
import time
import uuid

from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from otlp import (
    ExportLogsServiceRequest,
    ExportMetricsServiceRequest,
    ExportTraceServiceRequest,
    inference_attrs,
    kvs,
    log_record,
    logs_request,
    resource,
    scope,
)

RESOURCE = {
    "service.name": "e2e-raw",
    "deployment.environment.name": "test",
    "host.name": "loopback",
    "site.name": "plant-e2e",
    "site.line": "line-1",
    "site.cell": "cell-1",
}


class Traffic:
    """Makes unique, valid requests: inference events (with features and a feedback event),
    gauge and sum points, and spans. Every request made is kept in `made`."""

    def __init__(self, tag: str = ""):
        self.tag = tag or uuid.uuid4().hex[:8]
        self.seq = itertools.count()
        self.base = time.time_ns() - 86_400_000_000_000
        self.made: list = []

    def _next(self) -> int:
        return next(self.seq)

    def inferences(self, n: int = 3, feedback: bool = True, extra: dict | None = None) -> ExportLogsServiceRequest:
        records = []
        for _ in range(n):
            k = self._next()
            iid = f"{self.tag}-{k}"
            t = self.base + k * 1_000_000_007
            attrs = {**inference_attrs(iid, k), **(extra or {})}
            records.append(log_record(t, attrs, event_name="ml.inference", observed_ns=t + 11))
            if feedback:
                fb = {"ml.model.name": attrs["ml.model.name"], "ml.inference.id": iid, "ml.label": "ok"}
                records.append(log_record(t + 5_000_000_001, fb, event_name="ml.feedback"))
        req = logs_request(records, RESOURCE)
        self.made.append(req)
        return req

    def metrics(self, n: int = 3) -> ExportMetricsServiceRequest:
        k = self._next()
        t = self.base + k * 1_000_000_007
        gauge = metrics_pb2.Metric(name="hw.temperature", unit="Cel")
        for i in range(n):
            gauge.gauge.data_points.add(
                time_unix_nano=t + i, as_double=40.0 + i + k / 8, attributes=kvs({"hw.id": f"{self.tag}-{k}-{i}"})
            )
        total = metrics_pb2.Metric(name="machine.parts.produced", unit="{part}")
        total.sum.aggregation_temporality = metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE
        total.sum.is_monotonic = True
        total.sum.data_points.add(
            start_time_unix_nano=self.base, time_unix_nano=t, as_int=1000 + k,
            attributes=kvs({"machine.id": f"{self.tag}-{k}"}),
        )
        req = ExportMetricsServiceRequest()
        rm = req.resource_metrics.add(resource=resource(RESOURCE))
        sm = rm.scope_metrics.add(scope=scope())
        sm.metrics.extend([gauge, total])
        self.made.append(req)
        return req

    def spans(self, n: int = 2) -> ExportTraceServiceRequest:
        req = ExportTraceServiceRequest()
        rs = req.resource_spans.add(resource=resource(RESOURCE))
        ss = rs.scope_spans.add(scope=scope())
        for _ in range(n):
            k = self._next()
            t = self.base + k * 1_000_000_007
            s = ss.spans.add(
                trace_id=uuid.uuid4().bytes,
                span_id=uuid.uuid4().bytes[:8],
                name="predict",
                kind=trace_pb2.Span.SPAN_KIND_SERVER,
                start_time_unix_nano=t,
                end_time_unix_nano=t + 3_000_001,
                attributes=kvs({"ml.model.name": "defect-detector", "ml.model.version": "3.2.1", "k": k}),
            )
            if k % 2:
                s.status.code = trace_pb2.Status.STATUS_CODE_ERROR
                s.status.message = "timeout"
        self.made.append(req)
        return req

    def all_metric_types(self) -> ExportMetricsServiceRequest:
        """One metric of each OTLP type, with int and double points, min/max, and negative buckets."""
        k = self._next()
        t = self.base + k * 1_000_000_007
        start = self.base - 60_000_000_000
        tag = {"run": f"{self.tag}-{k}"}
        req = ExportMetricsServiceRequest()
        rm = req.resource_metrics.add(resource=resource(RESOURCE), schema_url="https://opentelemetry.io/schemas/1.26.0")
        sm = rm.scope_metrics.add(scope=scope("e2e.metrics", "3.1"))

        g = sm.metrics.add(name="hw.gpu.utilization", unit="1", description="GPU busy share")
        g.gauge.data_points.add(time_unix_nano=t, as_double=0.8125, attributes=kvs({**tag, "hw.id": "gpu-0"}))
        g.gauge.data_points.add(time_unix_nano=t, as_int=-3, attributes=kvs({**tag, "hw.id": "gpu-1"}), flags=1)

        s = sm.metrics.add(name="hw.energy", unit="J")
        s.sum.aggregation_temporality = metrics_pb2.AGGREGATION_TEMPORALITY_DELTA
        s.sum.is_monotonic = True
        s.sum.data_points.add(start_time_unix_nano=start, time_unix_nano=t, as_int=9_007_199_254_740_993,
                              attributes=kvs(tag))

        h = sm.metrics.add(name="machine.cycle.duration", unit="s")
        h.histogram.aggregation_temporality = metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE
        h.histogram.data_points.add(
            start_time_unix_nano=start, time_unix_nano=t, count=10, sum=31.5, min=0.5, max=9.75,
            explicit_bounds=[1.0, 2.5, 5.0], bucket_counts=[2, 3, 4, 1], attributes=kvs(tag),
        )

        e = sm.metrics.add(name="gen_ai.client.operation.duration", unit="s")
        e.exponential_histogram.aggregation_temporality = metrics_pb2.AGGREGATION_TEMPORALITY_DELTA
        p = e.exponential_histogram.data_points.add(
            start_time_unix_nano=start, time_unix_nano=t, count=12, sum=-1.25, min=-2.0, max=3.5, scale=3,
            zero_count=1, zero_threshold=1e-9, attributes=kvs({**tag, "gen_ai.request.model": "llama-3"}),
        )
        p.positive.offset = -2
        p.positive.bucket_counts.extend([1, 0, 4, 2])
        p.negative.offset = 5
        p.negative.bucket_counts.extend([3, 1])

        q = sm.metrics.add(name="machine.vibration.rms", unit="mm/s")
        q.summary.data_points.add(
            start_time_unix_nano=start, time_unix_nano=t, count=100, sum=250.25, attributes=kvs(tag),
            quantile_values=[
                metrics_pb2.SummaryDataPoint.ValueAtQuantile(quantile=0.0, value=0.5),
                metrics_pb2.SummaryDataPoint.ValueAtQuantile(quantile=0.5, value=2.25),
                metrics_pb2.SummaryDataPoint.ValueAtQuantile(quantile=1.0, value=9.0),
            ],
        )
        self.made.append(req)
        return req

    def rich_spans(self) -> ExportTraceServiceRequest:
        """A parent and a child span with an event, a link, trace state, flags and an error."""
        k = self._next()
        t = self.base + k * 1_000_000_007
        trace_id = uuid.uuid4().bytes
        parent_id, child_id = uuid.uuid4().bytes[:8], uuid.uuid4().bytes[:8]
        req = ExportTraceServiceRequest()
        rs = req.resource_spans.add(resource=resource(RESOURCE))
        ss = rs.scope_spans.add(scope=scope("e2e.traces", "0.1"))
        ss.spans.add(trace_id=trace_id, span_id=parent_id, name="POST /predict", trace_state="mw=1",
                     kind=trace_pb2.Span.SPAN_KIND_SERVER, start_time_unix_nano=t, end_time_unix_nano=t + 9_000_003,
                     attributes=kvs({"http.response.status_code": 500}), flags=0x301)
        child = ss.spans.add(trace_id=trace_id, span_id=child_id, parent_span_id=parent_id, name="predict",
                             kind=trace_pb2.Span.SPAN_KIND_INTERNAL, start_time_unix_nano=t + 100,
                             end_time_unix_nano=t + 8_000_001,
                             attributes=kvs({"ml.model.name": "defect-detector", "ml.model.version": "3.2.1",
                                             "ratio": 0.25, "tags": ["a", "b"]}))
        child.status.code = trace_pb2.Status.STATUS_CODE_ERROR
        child.status.message = "CUDA out of memory"
        child.events.add(time_unix_nano=t + 200, name="exception", attributes=kvs({"exception.type": "OOM"}))
        child.links.add(trace_id=uuid.uuid4().bytes, span_id=uuid.uuid4().bytes[:8], attributes=kvs({"why": "batch"}))
        self.made.append(req)
        return req

    def inferences_in_trace(self, n: int = 2) -> ExportLogsServiceRequest:
        """Inference events carrying trace and span ids, plus an ordinary log with a map body."""
        records = []
        trace_id = uuid.uuid4().bytes
        for _ in range(n):
            k = self._next()
            t = self.base + k * 1_000_000_007
            records.append(log_record(t, inference_attrs(f"{self.tag}-{k}", k), event_name="ml.inference",
                                      trace_id=trace_id, span_id=uuid.uuid4().bytes[:8]))
        k = self._next()
        lr = log_record(self.base + k, {"component": "loader", "attempt": 2}, body={"msg": "cache miss", "n": 3},
                        trace_id=trace_id, span_id=uuid.uuid4().bytes[:8])
        lr.severity_number = 13
        lr.severity_text = "WARN"
        records.append(lr)
        req = logs_request(records, RESOURCE)
        self.made.append(req)
        return req
