"""The HTTP API next to the receivers: health, readiness, /api/v1/stats counts that match DuckDB,
and /metrics counters that count what was stored (test_prometheus.py runs promtool on /metrics)."""

from __future__ import annotations

import requests

from otlp import log_record, logs_request, inference_attrs
from rawhttp import PROTOBUF, post, send, send_ok
from storecheck import count_rows
from traffic import RESOURCE, Traffic

TABLES = ["inferences", "inference_features", "feedback", "logs", "metric_points", "metric_distributions", "spans"]


def test_health_and_readiness(collector):
    r = requests.get(f"{collector.api_base}/healthz", timeout=10)
    assert r.status_code == 200
    r = requests.get(f"{collector.api_base}/readyz", timeout=10)
    assert r.status_code == 200


def test_stats_count_what_is_stored_accepted_and_refused(collector):
    t = Traffic()
    reqs = [t.inferences(5), t.inferences_in_trace(2), t.all_metric_types(), t.rich_spans()]
    for r in reqs:
        send_ok(collector, r)
    bad = logs_request([log_record(t.base, {**inference_attrs("no-model", 1), "ml.model.name": 7},
                                   event_name="ml.inference")], RESOURCE)
    a = send(collector, bad)
    assert a.status == 200
    a = post(collector, "logs", b"\xff" * 32, PROTOBUF)
    assert a.status == 400
    stats = collector.stats()
    collector.stop_clean()
    with collector.db() as db:
        stored = {table: count_rows(db, table) for table in TABLES}
    tables = stats["tables"]
    for table in TABLES:
        assert tables.get(table) == stored[table], f"/api/v1/stats {table}={tables.get(table)}, DuckDB {stored[table]}"
    items = sum(stored[t] for t in TABLES if t != "inference_features")
    assert stats["accepted"] == items, stats
    assert stats["rejected"] == 1, stats
    assert stats["refused_requests"] == 1, stats


def test_metrics_count_stored_items(collector):
    t = Traffic()
    send_ok(collector, t.inferences(3))
    send_ok(collector, t.metrics(4))
    r = requests.get(f"{collector.api_base}/metrics", timeout=10)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/plain")
    stored = {}
    for line in r.text.splitlines():
        if line.startswith("millwatch_receiver_items_stored_total{"):
            labels, value = line.rsplit(" ", 1)
            stored[labels] = float(value)
    logs = [v for k, v in stored.items() if 'signal="logs"' in k and 'protocol="http_protobuf"' in k]
    metrics = [v for k, v in stored.items() if 'signal="metrics"' in k and 'protocol="http_protobuf"' in k]
    assert logs == [6.0], stored  # 3 inference + 3 feedback events
    assert metrics == [4.0 + 1.0], stored  # 4 gauge points + 1 sum point
