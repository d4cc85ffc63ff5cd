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


REGRESSOR, COUPLED = "tool-rul", "spindle-coupling"
LIVE_CONFIG = CONFIG.replace("    collector: {enabled: false}\n",
                             "    collector: {enabled: false}\n    multivariate_drift: {enabled: true}\n")


def model_detections(collector, model: str, **params) -> list[dict]:
    r = requests.get(f"{collector.api_base}/api/v1/models/{model}/detections",
                     params={"limit": 10000, **params}, timeout=30)
    assert r.status_code == 200, r.text[:500]
    return r.json()["detections"]


def test_a_regressors_rising_error_and_a_broken_correlation_alert_before_labels(make_collector):
    """DLE and multivariate drift in the live engine over OTLP: a regressor whose torque runs
    higher (where its errors are larger) raises MillwatchEstimatedPerformanceDrop on MAE from its
    features alone; a model whose two sensors stop moving together raises
    MillwatchMultivariateDrift (enabled here), while each sensor alone keeps its distribution.
    When the regressor's labels arrive, the estimator's own error is reported."""
    collector = make_collector(config=LIVE_CONFIG)
    client = SdkClient(collector, "grpc", service="mill-line")
    logger = client.logger_provider.get_logger("mill.model", "1.0.0")
    rng = random.Random(5)
    base = time.time_ns() - 3_600_000_000_000
    labels = []
    for i in range(3000):
        t = base + i * 1_000_000
        torque = rng.gauss(40.0, 6.0) if i < 2000 else rng.gauss(48.0, 4.0)
        wear = rng.uniform(0.0, 200.0)
        predicted = 300.0 - 2.0 * torque - 0.5 * wear
        actual = predicted + rng.gauss(0.0, 0.005 * torque * torque)
        logger.emit(timestamp=t, event_name="ml.inference", attributes={
            "ml.model.name": REGRESSOR, "ml.model.version": "1", "ml.inference.id": f"rul-{i}",
            "ml.feature.torque_nm": torque, "ml.feature.tool_wear_min": wear, "ml.prediction": predicted})
        labels.append((f"rul-{i}", actual, t))
        x1 = rng.gauss(0.0, 1.0)
        x2 = 0.95 * x1 + rng.gauss(0.0, 0.312) if i < 2000 else rng.gauss(0.0, 1.0)
        logger.emit(timestamp=t, event_name="ml.inference", attributes={
            "ml.model.name": COUPLED, "ml.model.version": "1", "ml.inference.id": f"cpl-{i}",
            "ml.feature.spindle_current_a": x1, "ml.feature.spindle_power_kw": x2,
            "ml.feature.coolant_c": rng.gauss(20.0, 1.0), "ml.prediction": x1 + x2})
        if i == 999:
            for lid, label, lt in labels:
                logger.emit(timestamp=lt + 60_000_000_000, event_name="ml.feedback", attributes={
                    "ml.model.name": REGRESSOR, "ml.inference.id": lid, "ml.label": label})
            assert client.logger_provider.force_flush(30_000), "logs force_flush timed out"
        if i % 500 == 499:
            assert client.logger_provider.force_flush(30_000), "logs force_flush timed out"

    def fired():
        got = {(a["labels"].get("alertname"), a["labels"].get("model"), a["labels"].get("feature"))
               for a in alerts(collector)}
        want = {("MillwatchEstimatedPerformanceDrop", REGRESSOR, "mae"),
                ("MillwatchMultivariateDrift", COUPLED, "reconstruction_error")}
        return got if want <= got else None

    got = wait_for("MillwatchEstimatedPerformanceDrop on MAE and MillwatchMultivariateDrift", fired)
    assert not {a for a in got if a[1] == COUPLED and a[0] != "MillwatchMultivariateDrift"}, got
    estimated = model_detections(collector, REGRESSOR, detector="estimated_performance")
    rose = sorted((d["first_event_id"], d["feature"]) for d in estimated if d["drifted"])
    windows = sorted({d["first_event_id"] for d in estimated})
    assert len(windows) == 2, windows
    assert rose == [(windows[1], "mae"), (windows[1], "rmse")], rose
    assert all(d["test"] == "dle" for d in estimated)
    assert model_detections(collector, REGRESSOR, detector="performance") == []
    multivariate = model_detections(collector, COUPLED, detector="multivariate_drift")
    assert [d["drifted"] for d in sorted(multivariate, key=lambda d: d["first_event_id"])] == [False, True]
    metrics = requests.get(f"{collector.api_base}/metrics", timeout=10)
    assert metrics.status_code == 200, metrics.text[:500]

    def sample(name: str, **labels) -> float | None:
        for line in metrics.text.splitlines():
            if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
        return None
    assert sample("millwatch_multivariate_drift_detected", model=COUPLED, version="1") == 1
    assert sample("millwatch_model_performance_estimated_dropped", model=REGRESSOR, version="1", metric="mae") == 1
    upper = sample("millwatch_model_performance_estimated_threshold", model=REGRESSOR, metric="mae", side="upper")
    assert upper is not None and upper < sample("millwatch_model_performance_estimated", model=REGRESSOR, metric="mae")

    for lid, label, lt in labels[1000:]:
        logger.emit(timestamp=lt + 60_000_000_000, event_name="ml.feedback", attributes={
            "ml.model.name": REGRESSOR, "ml.inference.id": lid, "ml.label": label})
    client.shutdown()
    client.sent.assert_all_succeeded()

    def errors():
        rows = model_detections(collector, REGRESSOR, detector="estimation_error", feature="mae")
        return rows if {d["first_event_id"] for d in rows} == set(windows) else None

    for d in wait_for("the estimator's own error on both windows", errors):
        realised, estimate = d["details"]["realised"], d["details"]["estimated"]
        assert abs(realised - estimate) < 0.15 * realised, d
