"""Performance estimated before labels arrive, end to end over OTLP: a binary classifier sends
scores through the OpenTelemetry Python SDK; its baseline's labels arrive, its windows' do not.
A covariate shift that lowers its accuracy raises MillwatchEstimatedPerformanceDrop from the
scores alone; when the windows' labels arrive, the realised accuracy lies within the estimate's
band."""

from __future__ import annotations

import math
import random
import time

import requests

from pysdk import SdkClient

MODEL = "press-fault"
CONFIG = """
detection:
  poll_interval: 100ms
  performance_interval: 1s
  baseline_events: 1000
  window_events: 1000
alerting:
  evaluation_interval: 200ms
  builtin:
    drift: {enabled: false}
    data_quality: {enabled: false}
    collector: {enabled: false}
"""


def wait_for(what: str, check, timeout_s: float = 120.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def detections(collector, **params) -> list[dict]:
    out: list[dict] = []
    url, query = f"{collector.api_base}/api/v1/models/{MODEL}/detections", params
    while url:
        r = requests.get(url, params=query, timeout=30)
        assert r.status_code == 200, r.text[:500]
        page = r.json()
        out.extend(page["detections"])
        url, query = page["next"] and collector.api_base + page["next"], None
    return out


def alerts(collector) -> list[dict]:
    r = requests.get(f"{collector.api_base}/api/v1/alerts", params={"state": "active"}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["alerts"]


def test_a_covariate_shift_alerts_from_scores_before_labels_and_labels_confirm_the_band(make_collector):
    collector = make_collector(config=CONFIG)
    client = SdkClient(collector, "grpc", service="press-line")
    logger = client.logger_provider.get_logger("press.model", "1.0.0")
    rng = random.Random(3)
    base = time.time_ns() - 3_600_000_000_000
    labels = []
    for i in range(3000):
        # calibrated scores; from event 2000 the force readings crowd where the model is unsure
        x = rng.gauss(0.0, 1.0 if i < 2000 else 0.25)
        score = 1.0 / (1.0 + math.exp(-2.5 * x))
        failed = rng.random() < score
        iid = f"press-{i}"
        logger.emit(timestamp=base + i * 1_000_000, event_name="ml.inference", attributes={
            "ml.model.name": MODEL, "ml.model.version": "1", "ml.inference.id": iid,
            "ml.feature.force_kn": x, "ml.prediction": 1.0 if score >= 0.5 else 0.0,
            "ml.prediction.score": score,
        })
        labels.append((iid, 1 if failed else 0, base + i * 1_000_000))
        if i == 999:
            # the baseline's labels arrive (acknowledged means stored) before any window closes
            for lid, label, t in labels:
                logger.emit(timestamp=t + 60_000_000_000, event_name="ml.feedback", attributes={
                    "ml.model.name": MODEL, "ml.inference.id": lid, "ml.label": label})
            assert client.logger_provider.force_flush(30_000), "logs force_flush timed out"
        if i % 500 == 499:
            assert client.logger_provider.force_flush(30_000), "logs force_flush timed out"

    fired = wait_for("MillwatchEstimatedPerformanceDrop", lambda: [
        a for a in alerts(collector)
        if a["labels"].get("alertname") == "MillwatchEstimatedPerformanceDrop"
    ])
    assert {a["labels"].get("model") for a in fired} == {MODEL}
    assert "accuracy" in {a["labels"].get("feature") for a in fired}, fired
    estimated = detections(collector, detector="estimated_performance")
    dropped = {(d["first_event_id"], d["feature"]) for d in estimated if d["drifted"]}
    windows = sorted({d["first_event_id"] for d in estimated})
    assert len(windows) == 2, windows
    assert (windows[1], "accuracy") in dropped and not {d for d in dropped if d[0] == windows[0]}, dropped
    # No label of a window has arrived: nothing realised yet.
    assert detections(collector, detector="performance") == []

    for lid, label, t in labels[1000:]:
        logger.emit(timestamp=t + 60_000_000_000, event_name="ml.feedback", attributes={
            "ml.model.name": MODEL, "ml.inference.id": lid, "ml.label": label})
    client.shutdown()
    client.sent.assert_all_succeeded()

    def realised() -> dict[int, float]:
        rows = detections(collector, detector="performance", feature="accuracy")
        got = {d["first_event_id"]: d["statistic"] for d in rows if d["details"]["labelled"] == 1000}
        return got if set(got) == set(windows) else {}

    accuracy = wait_for("realised accuracy of both windows", realised)
    for d in estimated:
        if d["feature"] != "accuracy":
            continue
        low, high = d["details"]["lower_confidence_bound"], d["details"]["upper_confidence_bound"]
        assert low <= accuracy[d["first_event_id"]] <= high, (d, accuracy)
