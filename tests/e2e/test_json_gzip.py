"""Case 2: OTLP/HTTP with JSON bodies (as the OTLP specification writes them, and in the looser
forms it allows) and gzip-compressed protobuf and JSON: every item is stored exactly."""

from __future__ import annotations

import gzip
import json

import pytest
import requests

from otlp import JSON_INT64_KEYS, signal_of, to_otlp_json
from rawhttp import JSON, PROTOBUF, post, send_ok
from storecheck import StoreChecker, count_rows
from traffic import Traffic


def every_kind(t: Traffic) -> list:
    return [t.inferences(4), t.inferences_in_trace(3), t.all_metric_types(), t.metrics(3), t.rich_spans(), t.spans(3)]


def check_exactly(collector, reqs) -> None:
    collector.stop_clean()
    with collector.db() as db:
        counts = StoreChecker(db).check_all(reqs)
        assert counts.inferences and counts.feedback and counts.logs and counts.points
        assert counts.distributions and counts.spans
        assert count_rows(db, "inferences") == counts.inferences
        assert count_rows(db, "inference_features") == counts.features
        assert count_rows(db, "feedback") == counts.feedback
        assert count_rows(db, "logs") == counts.logs
        assert count_rows(db, "metric_points") == counts.points
        assert count_rows(db, "metric_distributions") == counts.distributions
        assert count_rows(db, "spans") == counts.spans


@pytest.mark.parametrize(
    "encoding,gzipped",
    [("json", False), ("json", True), ("protobuf", True)],
    ids=["http_json", "http_json_gzip", "http_protobuf_gzip"],
)
def test_http_encodings_stored_exactly(collector, encoding, gzipped):
    t = Traffic()
    reqs = every_kind(t)
    for r in reqs:
        send_ok(collector, r, encoding, gzipped)
    check_exactly(collector, reqs)


def loosen(node, depth=0):
    """The forms OTLP/JSON receivers must also accept: 64-bit integers as JSON numbers, and
    fields they do not know (ignored)."""
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if k in JSON_INT64_KEYS and isinstance(v, str):
                out[k] = int(v)
            elif k in JSON_INT64_KEYS and isinstance(v, list):
                out[k] = [int(x) for x in v]
            else:
                out[k] = loosen(v, depth + 1)
        out["someFutureField"] = {"nested": [1, "two", None, {"x": True}]} if depth % 2 else 42
        return out
    if isinstance(node, list):
        return [loosen(x, depth + 1) for x in node]
    return node


def test_http_json_numbers_and_unknown_fields(collector):
    t = Traffic()
    reqs = every_kind(t)
    for r in reqs:
        body = json.dumps(loosen(json.loads(to_otlp_json(r)))).encode()
        a = post(collector, signal_of(r), body, JSON)
        assert a.status == 200, f"{a.status}: {a.body[:500]!r}\nrequest: {body[:500]!r}"
        assert a.content_type.startswith(JSON)
        resp = a.export_response(signal_of(r))
        assert not resp.partial_success.error_message, resp.partial_success
    check_exactly(collector, reqs)


def test_gzip_protobuf_and_plain_mixed_on_one_connection(collector):
    """Clients reuse connections: compressed and plain requests interleave."""
    t = Traffic()
    reqs = [t.inferences(2) for _ in range(6)]
    with requests.Session() as s:
        for i, r in enumerate(reqs):
            body = r.SerializeToString()
            headers = {"Content-Type": PROTOBUF}
            if i % 2:
                body = gzip.compress(body)
                headers["Content-Encoding"] = "gzip"
            resp = s.post(f"{collector.http_base}/v1/logs", data=body, headers=headers, timeout=30)
            assert resp.status_code == 200, resp.content[:300]
    collector.stop_clean()
    with collector.db() as db:
        counts = StoreChecker(db).check_all(reqs)
        assert counts.inferences == 12
