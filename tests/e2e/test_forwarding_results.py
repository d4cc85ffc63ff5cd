"""An edge's own detection results and alerts reach the centre as OTLP logs, marked with where
they come from (issue 17): the edge detects drift and fires its alert on its own data, and the
central Millwatch stores and lists every one of its verdicts and alert changes once, with the
edge's site and host."""

from __future__ import annotations

from pathlib import Path

import requests

from collector import free_ports
from rawhttp import send_ok
from test_alerting import BASELINE, MODEL, inference_request
from test_forwarding import Pinned, own_metric, wait_for


def forwarded(c, kind: str) -> list[dict]:
    r = requests.get(f"{c.api_base}/api/v1/forwarded/{kind}", params={"limit": 10000}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["data"]


def test_the_edges_verdicts_and_alerts_reach_the_centre_with_their_origin(tmp_path: Path):
    ports = free_ports(6)
    central = Pinned(tmp_path / "central", ports[:3])
    edge = Pinned(tmp_path / "edge", ports[3:], f"""
detection:
  baseline_events: 200
  window_events: 200
  min_samples: 30
  poll_interval: 100ms
alerting:
  evaluation_interval: 200ms
  builtin:
    collector: {{enabled: false}}
exporters:
  otlp:
    - name: central
      endpoint: http://127.0.0.1:{central.grpc_port}
      signals: [logs, detections, alerts]
      origin: {{ site.name: plant-a, site.line: line-3 }}
      batch: {{ max_items: 200, max_delay: 50ms }}
      retry: {{ min_backoff: 50ms, max_backoff: 500ms }}
      queue: {{ dir: {tmp_path / "q"} }}
""")
    try:
        # The centre is down while the edge decides and alerts: nothing waits for it.
        edge.start()
        send_ok(edge, inference_request(MODEL, 0, [0.0]))  # the baseline
        send_ok(edge, inference_request(MODEL, BASELINE, [5.0]))  # a drifted window

        def edge_alert_firing() -> bool:
            r = requests.get(f"{edge.api_base}/api/v1/alerts", timeout=10)
            return r.status_code == 200 and "firing" in r.text
        wait_for("the edge's own alert to fire", edge_alert_firing, c=edge)
        assert own_metric(edge, "millwatch_otlp_exporter_queue_items") > 0

        central.start()
        wait_for("the edge's queue to drain",
                 lambda: own_metric(edge, "millwatch_otlp_exporter_queue_items") == 0, c=edge)

        def centre_has_both() -> bool:
            d = forwarded(central, "detections")
            a = forwarded(central, "alerts")
            return any(x["attributes"].get("millwatch.detection.drifted") for x in d) and \
                any(x["attributes"].get("millwatch.alert.state") == "firing" for x in a)
        wait_for("the drift verdict and the firing alert at the centre", centre_has_both, c=central)
        detections = forwarded(central, "detections")
        alerts = forwarded(central, "alerts")
        for row in detections + alerts:
            assert row["site"] == "plant-a", row
            assert row["host"], row
        drifted = [d for d in detections if d["attributes"].get("millwatch.detection.drifted")]
        assert all(d["attributes"]["ml.model.name"] == MODEL for d in drifted)
        assert any(d["attributes"].get("millwatch.detection.detector") == "drift" for d in drifted)
        # Filtered by site.
        r = requests.get(f"{central.api_base}/api/v1/forwarded/detections", params={"site": "elsewhere"}, timeout=10)
        assert r.json()["data"] == []

        # Every verdict the edge stored arrives once: the edge's `detections` rows (read while it
        # is stopped; started again, it forwards what it decided after its last tick) against
        # the centre's `millwatch.detection` records.
        edge.stop_clean()
        edb = edge.db()
        try:
            at_edge = sorted(edb.execute(
                "SELECT epoch_ns(time), coalesce(feature, ''), detector, verdict FROM detections").fetchall())
        finally:
            edb.close()
        edge.start()
        wait_for("every verdict at the centre",
                 lambda: len(forwarded(central, "detections")) >= len(at_edge), c=edge)
        wait_for("the edge's queue to drain",
                 lambda: own_metric(edge, "millwatch_otlp_exporter_queue_items") == 0, c=edge)
        edge.stop_clean()
        central.stop_clean()
        cdb = central.db()
        try:
            at_centre = sorted(cdb.execute(
                "SELECT epoch_ns(time), coalesce(attributes->>'$.\"millwatch.detection.feature\"', ''), "
                "attributes->>'$.\"millwatch.detection.detector\"', "
                "attributes->>'$.\"millwatch.detection.verdict\"' "
                "FROM logs WHERE event_name = 'millwatch.detection'").fetchall())
            tier = cdb.execute("SELECT DISTINCT r.tier FROM logs l JOIN resources r USING (resource_id) "
                               "WHERE l.event_name LIKE 'millwatch.%'").fetchall()
        finally:
            cdb.close()
        assert at_edge and at_centre == at_edge, "every verdict of the edge exactly once"
        assert tier == [("edge",)]
    finally:
        for c in (edge, central):
            if c.running:
                c.kill()
