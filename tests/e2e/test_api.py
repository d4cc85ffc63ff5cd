"""The HTTP API next to the receivers: health, readiness, /api/v1/stats counts that match DuckDB,
/metrics counters that count what was stored (test_prometheus.py runs promtool on /metrics), and
the detections API's answers: 404 for an unknown model, pages that follow their `next` link."""

from __future__ import annotations

import time

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


DETECTION_CONFIG = """\
detection:
  baseline_events: 40
  window_events: 40
  min_samples: 30
  poll_interval: 100ms
"""
MODEL = "defect-detector"  # the model Traffic's inference events name


def detections_page(collector, path: str, **params):
    r = requests.get(f"{collector.api_base}{path}", params=params, timeout=30)
    return r.status_code, r.json()


def test_detections_of_an_unknown_model_are_a_404(collector):
    code, body = detections_page(collector, "/api/v1/models/no-such-model/detections")
    assert code == 404, body
    assert "no model `no-such-model`" in body["error"], body


def test_detections_come_in_pages_linked_by_next(make_collector):
    c = make_collector(config=DETECTION_CONFIG)
    send_ok(c, Traffic().inferences(160, feedback=False))  # a baseline and three windows
    path = f"/api/v1/models/{MODEL}/detections"
    deadline = time.monotonic() + 120
    while True:
        code, body = detections_page(c, path, detector="drift", limit=10000)
        assert code == 200, body
        if len({d["first_event_id"] for d in body["detections"]}) == 3:
            break
        assert time.monotonic() < deadline, f"three windows not decided: {body}"
        time.sleep(0.2)
    everything = body["detections"]
    assert body["next"] is None
    # The verdicts of windows decided in one pass are written at one time: pages of 5 end
    # inside such runs of rows.
    assert len(everything) > 15 and len({d["time"] for d in everything}) <= 3, everything

    pages, link = [], None
    code, page = detections_page(c, path, detector="drift", limit=5)
    while True:
        assert code == 200, page
        assert set(page) == {"detections", "next"}, page
        pages.append(page["detections"])
        link = page["next"]
        if link is None:
            break
        assert link.startswith(path + "?") and "detector=drift" in link and "limit=5" in link, link
        code, page = detections_page(c, link)
    assert all(len(p) == 5 for p in pages[:-1]) and 1 <= len(pages[-1]) <= 5, [len(p) for p in pages]
    paged = [d for p in pages for d in p]
    assert paged == everything, "pages repeat, skip or reorder rows"
    assert [d["time"] for d in paged] == sorted((d["time"] for d in paged), reverse=True)

    # Bad pages are refused with the reason; a known model with nothing matching is an empty page.
    for params, want in [({"limit": 0}, "limit=0"), ({"limit": 10001}, "limit=10001"),
                         ({"cursor": "not-a-cursor"}, "cursor")]:
        code, body = detections_page(c, path, **params)
        assert code == 400 and want in body["error"], (params, body)
    code, body = detections_page(c, path, detector="no-such-detector")
    assert (code, body) == (200, {"detections": [], "next": None})
