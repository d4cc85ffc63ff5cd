"""OTLP messages for the tests: builders, OTLP/JSON encoding, and AnyValue to Python."""

from __future__ import annotations

import base64
import json
import math
from typing import Any, Iterable

from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

# OTLP/JSON carries these bytes fields as hex, not base64 (OTLP specification, JSON encoding).
HEX_ID_KEYS = {"traceId", "spanId", "parentSpanId"}
# 64-bit integer fields, which proto3 JSON writes as strings and receivers also take as numbers.
JSON_INT64_KEYS = {
    "timeUnixNano", "startTimeUnixNano", "endTimeUnixNano", "observedTimeUnixNano",
    "count", "zeroCount", "bucketCounts", "intValue", "asInt",
}

SIGNAL_PATHS = {"logs": "/v1/logs", "metrics": "/v1/metrics", "traces": "/v1/traces"}
REQUEST_TYPES = {
    "logs": ExportLogsServiceRequest,
    "metrics": ExportMetricsServiceRequest,
    "traces": ExportTraceServiceRequest,
}
RESPONSE_TYPES = {
    "logs": ExportLogsServiceResponse,
    "metrics": ExportMetricsServiceResponse,
    "traces": ExportTraceServiceResponse,
}
GRPC_METHODS = {
    "logs": "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
    "metrics": "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
    "traces": "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
}


def signal_of(req) -> str:
    for signal, cls in REQUEST_TYPES.items():
        if isinstance(req, cls):
            return signal
    raise TypeError(type(req))


# --- AnyValue <-> Python ----------------------------------------------------------------------
def to_any(v: Any) -> AnyValue:
    if isinstance(v, AnyValue):
        return v
    if isinstance(v, bool):
        return AnyValue(bool_value=v)
    if isinstance(v, int):
        return AnyValue(int_value=v)
    if isinstance(v, float):
        return AnyValue(double_value=v)
    if isinstance(v, str):
        return AnyValue(string_value=v)
    if isinstance(v, bytes):
        return AnyValue(bytes_value=v)
    if isinstance(v, (list, tuple)):
        out = AnyValue()
        out.array_value.values.extend(to_any(x) for x in v)
        return out
    if isinstance(v, dict):
        out = AnyValue()
        out.kvlist_value.values.extend(kvs(v))
        return out
    raise TypeError(f"no AnyValue for {v!r}")


def kvs(attrs: dict[str, Any]) -> list[KeyValue]:
    return [KeyValue(key=k, value=to_any(v)) for k, v in attrs.items()]


def from_any(v: AnyValue) -> Any:
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [from_any(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: from_any(kv.value) for kv in v.kvlist_value.values}
    if kind == "bytes_value":
        return base64.b64encode(v.bytes_value).decode()
    return getattr(v, kind)


def attrs_dict(kv_list: Iterable[KeyValue]) -> dict[str, Any]:
    return {kv.key: from_any(kv.value) for kv in kv_list}


# --- builders ---------------------------------------------------------------------------------
def resource(attrs: dict[str, Any]) -> Resource:
    return Resource(attributes=kvs(attrs))


def scope(name: str = "e2e", version: str = "1.0") -> InstrumentationScope:
    return InstrumentationScope(name=name, version=version)


def log_record(
    time_ns: int,
    attrs: dict[str, Any],
    event_name: str = "",
    body: Any = None,
    observed_ns: int = 0,
    trace_id: bytes = b"",
    span_id: bytes = b"",
) -> LogRecord:
    lr = LogRecord(
        time_unix_nano=time_ns,
        observed_time_unix_nano=observed_ns,
        attributes=kvs(attrs),
        event_name=event_name,
        trace_id=trace_id,
        span_id=span_id,
    )
    if body is not None:
        lr.body.CopyFrom(to_any(body))
    return lr


def logs_request(
    records: list[LogRecord], resource_attrs: dict[str, Any], scope_name: str = "e2e"
) -> ExportLogsServiceRequest:
    return ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(
                resource=resource(resource_attrs),
                scope_logs=[ScopeLogs(scope=scope(scope_name), log_records=records)],
            )
        ]
    )


def features(i: int) -> dict[str, Any]:
    """Twelve ml.feature.* attributes: 4 double, 3 int, 2 bool, 3 string, varying with i."""
    return {
        "ml.feature.temperature": 20.5 + i * 0.25,
        "ml.feature.pressure": 101.325 - i / 7,
        "ml.feature.vibration_rms": 0.001 * (i + 1),
        "ml.feature.humidity": -3.5e-7 * i,
        "ml.feature.batch_size": 32 + i,
        "ml.feature.spindle_rpm": 12000 - 17 * i,
        "ml.feature.tool_wear_count": -(2**40) - i,
        "ml.feature.coolant_on": i % 2 == 0,
        "ml.feature.door_open": i % 3 == 0,
        "ml.feature.material": ["steel", "aluminium", "titanium"][i % 3],
        "ml.feature.operator": f"op-{i % 5}",
        "ml.feature.shift": "ü-night" if i % 2 else "day",
    }


def inference_attrs(
    inference_id: str, i: int, model: str = "defect-detector", version: str = "3.2.1"
) -> dict[str, Any]:
    a: dict[str, Any] = {
        "ml.model.name": model,
        "ml.model.version": version,
        "ml.inference.id": inference_id,
        **features(i),
        "ml.prediction.score": min(1.0, 0.05 + i / 100),
        "ml.inference.duration": 0.0125 + i * 1e-4,
        "line.station": f"st-{i % 4}",
    }
    if i % 2:
        a["ml.prediction"] = ["ok", "scratch", "dent"][i % 3]
    else:
        a["ml.prediction"] = 0.5 + i * 0.01
    return a


# --- encodings --------------------------------------------------------------------------------
def _fix_ids(node: Any) -> Any:
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if k in HEX_ID_KEYS and isinstance(v, str):
                out[k] = base64.b64decode(v).hex()
            else:
                out[k] = _fix_ids(v)
        return out
    if isinstance(node, list):
        return [_fix_ids(x) for x in node]
    return node


def to_otlp_json(msg) -> bytes:
    """OTLP/JSON: lowerCamelCase keys, enums as integers, 64-bit ints as strings, hex ids."""
    d = json_format.MessageToDict(msg, use_integers_for_enums=True)
    return json.dumps(_fix_ids(d)).encode()


def _hex_to_b64(node: Any) -> Any:
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if k in HEX_ID_KEYS and isinstance(v, str):
                out[k] = base64.b64encode(bytes.fromhex(v)).decode()
            else:
                out[k] = _hex_to_b64(v)
        return out
    if isinstance(node, list):
        return [_hex_to_b64(x) for x in node]
    return node


def from_otlp_json(data: Any, cls):
    """Parses OTLP/JSON (already json.loads'ed) into a request message of type cls."""
    msg = cls()
    json_format.ParseDict(_hex_to_b64(data), msg, ignore_unknown_fields=True)
    return msg


def is_nan(v: Any) -> bool:
    return isinstance(v, float) and math.isnan(v)


__all__ = [
    "ExportLogsServiceRequest",
    "ExportMetricsServiceRequest",
    "ExportTraceServiceRequest",
    "metrics_pb2",
]
