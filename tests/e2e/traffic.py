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
