"""Checks that every item of OTLP export requests is in the store, exactly.

Given the request messages a client sent (and that were acknowledged), each item is looked up in
DuckDB and compared field by field: times as integer nanoseconds (`epoch_ns`), attributes as
parsed JSON with their types (1 and 1.0 and true differ), resources and scopes through their ids.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import duckdb

from otlp import (
    ExportLogsServiceRequest,
    ExportMetricsServiceRequest,
    ExportTraceServiceRequest,
    attrs_dict,
    from_any,
    metrics_pb2,
)

INFERENCE = "ml.inference"
FEEDBACK = "ml.feedback"
FEATURE_PREFIX = "ml.feature."
TEMPORALITY = {1: "delta", 2: "cumulative"}


@dataclass
class Counts:
    inferences: int = 0
    features: int = 0
    feedback: int = 0
    logs: int = 0
    points: int = 0
    distributions: int = 0
    spans: int = 0
    checked_resources: set = field(default_factory=set)

    def add(self, other: Counts) -> None:
        for k in ("inferences", "features", "feedback", "logs", "points", "distributions", "spans"):
            setattr(self, k, getattr(self, k) + getattr(other, k))
        self.checked_resources |= other.checked_resources


def same(a: Any, b: Any) -> bool:
    """Equality that keeps bool, int and float apart, and lets NaN equal NaN."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, float) or isinstance(b, float):
        if not (isinstance(a, float) and isinstance(b, float)):
            return False
        return (math.isnan(a) and math.isnan(b)) or a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def json_attrs(expected: dict[str, Any]) -> dict[str, Any]:
    """The stored JSON form of attributes: NaN and infinities become strings, as in proto3 JSON."""

    def conv(v):
        if isinstance(v, float) and not math.isfinite(v):
            return "NaN" if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity")
        if isinstance(v, list):
            return [conv(x) for x in v]
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        return v

    return {k: conv(v) for k, v in expected.items()}


def assert_json(stored: str | None, expected: dict[str, Any], what: str) -> None:
    if not expected:
        assert stored is None or json.loads(stored) == {}, f"{what}: expected no attributes, got {stored}"
        return
    assert stored is not None, f"{what}: attributes are NULL, expected {expected}"
    got = json.loads(stored)
    want = json_attrs(expected)
    assert same(got, want), f"{what}: attributes differ\n stored:   {got}\n expected: {want}"


def nanos_or_none(t: int) -> int | None:
    return t if t else None


def hex_or_none(b: bytes) -> str | None:
    return b.hex() if b and any(b) else None


class StoreChecker:
    def __init__(self, db: duckdb.DuckDBPyConnection):
        self.db = db
        self._resources: dict[int, Any] = {}

    def one(self, sql: str, params: list, what: str) -> tuple:
        rows = self.db.execute(sql, params).fetchall()
        assert len(rows) == 1, f"{what}: expected exactly 1 row, found {len(rows)} ({sql} {params})"
        return rows[0]

    # --- resources and scopes --------------------------------------------------------------
    def check_resource(self, resource_id: int, resource, what: str) -> None:
        expected = attrs_dict(resource.attributes)
        row = self.one(
            "SELECT service_name, environment, host_name, site_name, site_line, site_cell, attributes "
            "FROM resources WHERE resource_id = ?",
            [resource_id],
            f"{what}: resource {resource_id}",
        )

        def s(key: str, alt: str | None = None):
            v = expected.get(key, expected.get(alt) if alt else None)
            return v if isinstance(v, str) else None

        want = (
            s("service.name"),
            s("deployment.environment.name", "deployment.environment"),
            s("host.name"),
            s("site.name"),
            s("site.line"),
            s("site.cell"),
        )
        assert row[:6] == want, f"{what}: resource columns {row[:6]} != {want}"
        assert_json(row[6], expected, f"{what}: resource attributes")

    def check_scope(self, scope_id: int, scope, what: str) -> None:
        row = self.one(
            "SELECT name, version, attributes FROM scopes WHERE scope_id = ?",
            [scope_id],
            f"{what}: scope {scope_id}",
        )
        assert row[0] == (scope.name or None), f"{what}: scope name {row[0]!r} != {scope.name!r}"
        assert row[1] == (scope.version or None), f"{what}: scope version {row[1]!r} != {scope.version!r}"
        assert_json(row[2], attrs_dict(scope.attributes), f"{what}: scope attributes")

    # --- logs: inference events, feedback events, other logs -------------------------------
    def check_logs(self, req: ExportLogsServiceRequest) -> Counts:
        c = Counts()
        for rl in req.resource_logs:
            for sl in rl.scope_logs:
                for lr in sl.log_records:
                    attrs = attrs_dict(lr.attributes)
                    name = lr.event_name or (
                        attrs.get("event.name") if isinstance(attrs.get("event.name"), str) else ""
                    )
                    if name == INFERENCE:
                        rid, sid = self.check_inference(lr, attrs, c)
                    elif name == FEEDBACK:
                        rid, sid = self.check_feedback(lr, attrs)
                        c.feedback += 1
                    else:
                        rid, sid = self.check_log(lr, attrs)
                        c.logs += 1
                    self.check_resource(rid, rl.resource, f"log record {attrs}")
                    self.check_scope(sid, sl.scope, f"log record {attrs}")
                    c.checked_resources.add(rid)
        return c

    def check_inference(self, lr, attrs: dict[str, Any], c: Counts) -> tuple[int, int]:
        iid = attrs["ml.inference.id"]
        what = f"inference {iid}"
        row = self.one(
            "SELECT event_id, epoch_ns(time), epoch_ns(observed_time), model, version, prediction, "
            "prediction_label, score, duration_s, feature_count, trace_id, span_id, attributes, "
            "resource_id, scope_id, task FROM inferences WHERE inference_id = ?",
            [iid],
            what,
        )
        (event_id, t, obs, model, version, pred, label, score, dur, nfeat, tid, sid, stored_attrs,
         resource_id, scope_id, task) = row
        want_time = lr.time_unix_nano or lr.observed_time_unix_nano
        assert t == want_time, f"{what}: time {t} != {want_time}"
        assert obs == nanos_or_none(lr.observed_time_unix_nano), f"{what}: observed_time {obs}"
        assert model == attrs["ml.model.name"], f"{what}: model {model!r}"
        assert version == attrs["ml.model.version"], f"{what}: version {version!r}"
        p = attrs["ml.prediction"]
        if isinstance(p, str):
            assert (pred, label) == (None, p), f"{what}: prediction {pred!r}/{label!r} != class {p!r}"
        elif isinstance(p, bool):
            assert (pred, label) == (None, str(p).lower()), f"{what}: prediction {pred!r}/{label!r}"
        else:
            assert (pred, label) == (float(p), None), f"{what}: prediction {pred!r}/{label!r} != {p!r}"
        assert score == attrs.get("ml.prediction.score"), f"{what}: score {score!r}"
        assert dur == attrs.get("ml.inference.duration"), f"{what}: duration_s {dur!r}"
        assert task == attrs.get("ml.model.task"), f"{what}: task {task!r}"
        feats = {k[len(FEATURE_PREFIX):]: v for k, v in attrs.items() if k.startswith(FEATURE_PREFIX)}
        assert nfeat == len(feats), f"{what}: feature_count {nfeat} != {len(feats)}"
        assert tid == hex_or_none(lr.trace_id), f"{what}: trace_id {tid!r} != {lr.trace_id.hex()!r}"
        assert sid == hex_or_none(lr.span_id), f"{what}: span_id {sid!r} != {lr.span_id.hex()!r}"
        others = {k: v for k, v in attrs.items() if not k.startswith("ml.") and k != "event.name"}
        assert_json(stored_attrs, others, f"{what}: attributes outside ml.*")

        rows = self.db.execute(
            "SELECT feature, value_type, value_double, value_string, epoch_ns(time), model, version "
            "FROM inference_features WHERE event_id = ?",
            [event_id],
        ).fetchall()
        stored = {r[0]: r[1:4] for r in rows}
        assert len(rows) == len(stored), f"{what}: duplicate feature rows {rows}"
        for r in rows:
            assert (r[4], r[5], r[6]) == (t, model, version), f"{what}: feature row {r} out of step"
        want = {name: feature_row(v) for name, v in feats.items()}
        assert stored.keys() == want.keys(), f"{what}: features {sorted(stored)} != {sorted(want)}"
        for name in want:
            assert same(stored[name], want[name]), (
                f"{what}: feature {name}: stored {stored[name]} != expected {want[name]}"
            )
        c.inferences += 1
        c.features += len(rows)
        return resource_id, scope_id

    def check_feedback(self, lr, attrs: dict[str, Any]) -> tuple[int, int]:
        iid = attrs["ml.inference.id"]
        what = f"feedback for {iid}"
        row = self.one(
            "SELECT epoch_ns(time), epoch_ns(observed_time), model, label, label_class, attributes, "
            "resource_id, scope_id FROM feedback WHERE inference_id = ? AND model = ?",
            [iid, attrs["ml.model.name"]],
            what,
        )
        t, obs, model, label, label_class, stored_attrs, resource_id, scope_id = row
        assert t == (lr.time_unix_nano or lr.observed_time_unix_nano), f"{what}: time {t}"
        assert obs == nanos_or_none(lr.observed_time_unix_nano), f"{what}: observed_time {obs}"
        want = attrs["ml.label"]
        if isinstance(want, str):
            assert (label, label_class) == (None, want), f"{what}: label {label!r}/{label_class!r}"
        else:
            assert (label, label_class) == (float(want), None), f"{what}: label {label!r}/{label_class!r}"
        others = {k: v for k, v in attrs.items() if not k.startswith("ml.") and k != "event.name"}
        assert_json(stored_attrs, others, f"{what}: attributes outside ml.*")
        return resource_id, scope_id

    def check_log(self, lr, attrs: dict[str, Any]) -> tuple[int, int]:
        what = f"log record at {lr.time_unix_nano} {attrs}"
        rows = self.db.execute(
            "SELECT epoch_ns(observed_time), severity_number, severity_text, event_name, body, "
            "attributes, trace_id, span_id, flags, resource_id, scope_id FROM logs "
            "WHERE epoch_ns(time) IS NOT DISTINCT FROM ?",
            [nanos_or_none(lr.time_unix_nano)],
        ).fetchall()
        want_attrs = json_attrs(attrs)
        matches = [r for r in rows if r[5] is not None and same(json.loads(r[5]), want_attrs)]
        if not attrs:
            matches = [r for r in rows if r[5] is None]
        assert len(matches) == 1, f"{what}: expected 1 matching row, found {len(matches)} in {rows}"
        obs, sev, sev_text, event_name, body, _, tid, sid, flags, resource_id, scope_id = matches[0]
        assert obs == nanos_or_none(lr.observed_time_unix_nano), f"{what}: observed_time {obs}"
        assert sev == lr.severity_number, f"{what}: severity_number {sev}"
        assert sev_text == (lr.severity_text or None), f"{what}: severity_text {sev_text!r}"
        assert event_name == (lr.event_name or None), f"{what}: event_name {event_name!r}"
        if lr.HasField("body"):
            assert same(json.loads(body), json_attrs({"b": from_any(lr.body)})["b"]), f"{what}: body {body}"
        else:
            assert body is None, f"{what}: body {body!r}"
        assert tid == hex_or_none(lr.trace_id), f"{what}: trace_id {tid!r}"
        assert sid == hex_or_none(lr.span_id), f"{what}: span_id {sid!r}"
        assert flags == lr.flags, f"{what}: flags {flags}"
        return resource_id, scope_id

    # --- metrics ---------------------------------------------------------------------------
    def check_metrics(self, req: ExportMetricsServiceRequest) -> Counts:
        c = Counts()
        for rm in req.resource_metrics:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    kind = m.WhichOneof("data")
                    data = getattr(m, kind)
                    for p in data.data_points:
                        series_id, rid, sid = self.find_series(m, kind, data, p)
                        if kind in ("gauge", "sum"):
                            self.check_number_point(m.name, series_id, p)
                            c.points += 1
                        else:
                            self.check_distribution_point(m.name, kind, series_id, p)
                            c.distributions += 1
                        if rid not in c.checked_resources:
                            self.check_resource(rid, rm.resource, f"metric {m.name}")
                            self.check_scope(sid, sm.scope, f"metric {m.name}")
                            c.checked_resources.add(rid)
        return c

    def find_series(self, m, kind: str, data, p) -> tuple[int, int, int]:
        want_type = {
            "gauge": "gauge",
            "sum": "sum",
            "histogram": "histogram",
            "exponential_histogram": "exponential_histogram",
            "summary": "summary",
        }[kind]
        want_attrs = json_attrs(attrs_dict(p.attributes))
        rows = self.db.execute(
            "SELECT series_id, description, unit, type, temporality, monotonic, attributes, "
            "resource_id, scope_id FROM metric_series WHERE name = ?",
            [m.name],
        ).fetchall()
        assert rows, f"metric {m.name}: no series stored"
        matches = [r for r in rows if same(json.loads(r[6]), want_attrs)]
        assert len(matches) == 1, (
            f"metric {m.name} {want_attrs}: expected 1 series, found {len(matches)} among {rows}"
        )
        sid, desc, unit, typ, temporality, monotonic, _, resource_id, scope_id = matches[0]
        what = f"metric {m.name} {want_attrs}"
        assert typ == want_type, f"{what}: type {typ!r} != {want_type!r}"
        assert unit == (m.unit or None), f"{what}: unit {unit!r} != {m.unit!r}"
        assert desc == (m.description or None), f"{what}: description {desc!r}"
        if kind in ("sum", "histogram", "exponential_histogram"):
            want_t = TEMPORALITY.get(data.aggregation_temporality)
            assert temporality == want_t, f"{what}: temporality {temporality!r} != {want_t!r}"
        else:
            assert temporality is None, f"{what}: temporality {temporality!r}"
        want_mono = data.is_monotonic if kind == "sum" else None
        assert monotonic == want_mono, f"{what}: monotonic {monotonic!r} != {want_mono!r}"
        return sid, resource_id, scope_id

    def check_number_point(self, name: str, series_id: int, p) -> None:
        what = f"metric {name} point at {p.time_unix_nano}"
        row = self.one(
            "SELECT epoch_ns(start_time), value, int_value, flags FROM metric_points "
            "WHERE series_id = ? AND epoch_ns(time) = ?",
            [series_id, p.time_unix_nano],
            what,
        )
        start, value, int_value, flags = row
        assert start == nanos_or_none(p.start_time_unix_nano), f"{what}: start_time {start}"
        if p.WhichOneof("value") == "as_int":
            assert (value, int_value) == (float(p.as_int), p.as_int), f"{what}: {value}/{int_value} != {p.as_int}"
        else:
            assert same(value, p.as_double) and int_value is None, f"{what}: {value}/{int_value} != {p.as_double}"
        assert flags == p.flags, f"{what}: flags {flags}"

    def check_distribution_point(self, name: str, kind: str, series_id: int, p) -> None:
        what = f"metric {name} {kind} point at {p.time_unix_nano}"
        row = self.one(
            "SELECT epoch_ns(start_time), count, sum, min, max, bounds, bucket_counts, scale, "
            "zero_count, zero_threshold, positive_offset, positive_counts, negative_offset, "
            "negative_counts, quantiles, quantile_values, flags FROM metric_distributions "
            "WHERE series_id = ? AND epoch_ns(time) = ?",
            [series_id, p.time_unix_nano],
            what,
        )
        got = dict(
            zip(
                "start count sum min max bounds bucket_counts scale zero_count zero_threshold "
                "positive_offset positive_counts negative_offset negative_counts quantiles "
                "quantile_values flags".split(),
                row,
            )
        )
        want: dict[str, Any] = {
            "start": nanos_or_none(p.start_time_unix_nano),
            "count": p.count,
            "flags": p.flags,
        }
        if kind == "histogram":
            want.update(
                sum=p.sum if p.HasField("sum") else None,
                min=p.min if p.HasField("min") else None,
                max=p.max if p.HasField("max") else None,
                bounds=list(p.explicit_bounds),
                bucket_counts=list(p.bucket_counts),
            )
        elif kind == "exponential_histogram":
            want.update(
                sum=p.sum if p.HasField("sum") else None,
                min=p.min if p.HasField("min") else None,
                max=p.max if p.HasField("max") else None,
                scale=p.scale,
                zero_count=p.zero_count,
                zero_threshold=p.zero_threshold,
            )
            if p.HasField("positive"):
                want.update(positive_offset=p.positive.offset, positive_counts=list(p.positive.bucket_counts))
            if p.HasField("negative"):
                want.update(negative_offset=p.negative.offset, negative_counts=list(p.negative.bucket_counts))
        else:
            want.update(
                sum=p.sum,
                quantiles=[q.quantile for q in p.quantile_values],
                quantile_values=[q.value for q in p.quantile_values],
            )
        for k, v in want.items():
            g = got[k]
            if isinstance(v, int) and isinstance(g, float):
                g = int(g)
            if isinstance(v, float) and isinstance(g, int):
                g = float(g)
            assert same(g, v), f"{what}: {k} stored {got[k]!r} != sent {v!r}"

    # --- spans -----------------------------------------------------------------------------
    def check_traces(self, req: ExportTraceServiceRequest) -> Counts:
        c = Counts()
        for rs in req.resource_spans:
            for ss in rs.scope_spans:
                for s in ss.spans:
                    rid, sid = self.check_span(s)
                    c.spans += 1
                    if rid not in c.checked_resources:
                        self.check_resource(rid, rs.resource, f"span {s.name}")
                        self.check_scope(sid, ss.scope, f"span {s.name}")
                        c.checked_resources.add(rid)
        return c

    def check_span(self, s) -> tuple[int, int]:
        what = f"span {s.name} {s.trace_id.hex()}/{s.span_id.hex()}"
        row = self.one(
            "SELECT parent_span_id, trace_state, name, kind, epoch_ns(start_time), epoch_ns(end_time), "
            "duration_s, status_code, status_message, model, version, attributes, events, links, flags, "
            "resource_id, scope_id FROM spans WHERE trace_id = ? AND span_id = ?",
            [s.trace_id.hex(), s.span_id.hex()],
            what,
        )
        (parent, trace_state, name, kind, start, end, dur, code, msg, model, version, attrs_json,
         events, links, flags, resource_id, scope_id) = row
        attrs = attrs_dict(s.attributes)
        assert parent == hex_or_none(s.parent_span_id), f"{what}: parent {parent!r}"
        assert trace_state == (s.trace_state or None), f"{what}: trace_state {trace_state!r}"
        assert name == s.name, f"{what}: name {name!r}"
        assert kind == s.kind, f"{what}: kind {kind} != {s.kind}"
        assert (start, end) == (s.start_time_unix_nano, s.end_time_unix_nano), f"{what}: times {start}..{end}"
        assert math.isclose(dur, (s.end_time_unix_nano - s.start_time_unix_nano) / 1e9, rel_tol=1e-12), (
            f"{what}: duration_s {dur}"
        )
        assert code == s.status.code, f"{what}: status_code {code} != {s.status.code}"
        assert msg == (s.status.message or None), f"{what}: status_message {msg!r}"
        want_model = attrs.get("ml.model.name")
        want_version = attrs.get("ml.model.version")
        assert model == (want_model if isinstance(want_model, str) else None), f"{what}: model {model!r}"
        assert version == (want_version if isinstance(want_version, str) else None), f"{what}: version {version!r}"
        assert_json(attrs_json, attrs, f"{what}: attributes")
        want_events = [
            {"time_unix_nano": e.time_unix_nano, "name": e.name, "attributes": json_attrs(attrs_dict(e.attributes))}
            for e in s.events
        ]
        got_events = json.loads(events) if events else []
        assert same(got_events, want_events), f"{what}: events {got_events} != {want_events}"
        want_links = [
            {"trace_id": l.trace_id.hex(), "span_id": l.span_id.hex(), "attributes": json_attrs(attrs_dict(l.attributes))}
            for l in s.links
        ]
        got_links = json.loads(links) if links else []
        assert same(got_links, want_links), f"{what}: links {got_links} != {want_links}"
        assert flags == s.flags, f"{what}: flags {flags} != {s.flags}"
        return resource_id, scope_id

    # --- any request -----------------------------------------------------------------------
    def check(self, req) -> Counts:
        if isinstance(req, ExportLogsServiceRequest):
            return self.check_logs(req)
        if isinstance(req, ExportMetricsServiceRequest):
            return self.check_metrics(req)
        if isinstance(req, ExportTraceServiceRequest):
            return self.check_traces(req)
        raise TypeError(type(req))

    def check_all(self, reqs) -> Counts:
        total = Counts()
        for r in reqs:
            total.add(self.check(r))
        return total


def feature_row(v: Any) -> tuple[str, float | None, str | None]:
    """(value_type, value_double, value_string) that an ml.feature.* value is stored as."""
    if v is None:
        return ("missing", None, None)
    if isinstance(v, bool):
        return ("bool", 1.0 if v else 0.0, "true" if v else "false")
    if isinstance(v, int):
        return ("int", float(v), None)
    if isinstance(v, float):
        return ("missing", None, None) if math.isnan(v) else ("double", v, None)
    if isinstance(v, str):
        return ("missing", None, None) if v == "" else ("string", None, v)
    return ("other", None, json.dumps(v, separators=(",", ":")))


def count_rows(db: duckdb.DuckDBPyConnection, table: str) -> int:
    return db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


__all__ = ["StoreChecker", "Counts", "count_rows", "metrics_pb2"]
