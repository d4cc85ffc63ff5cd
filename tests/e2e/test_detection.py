"""Detection end to end: a simulated model sends 20,000 inference events through the
OpenTelemetry Python SDK, with a shift in two features and in the error rate after event 10,000
(feedback events carry the labels). The detections table, the API and /metrics report drift on
exactly those two features and the performance drop, and nothing before the shift. A model
whose baseline is a CSV or Parquet file is compared with that file from its first event."""

from __future__ import annotations

import json
import random
import re
import time
from pathlib import Path

import duckdb
import pytest
import requests

from otlp import log_record, logs_request
from pysdk import SdkClient
from rawhttp import send_ok
from traffic import RESOURCE

MODEL = "weld-inspector"
EVENTS = 20_000
SHIFT_AT = 10_000
FEATURES = ["current", "voltage", "speed", "gap", "wire_feed", "gas_flow"]
SHIFTED = {"voltage", "gap"}

CONFIG = """
detection:
  poll_interval: 100ms
  performance_interval: 1s
"""


def send(client: SdkClient) -> None:
    rng = random.Random(42)
    logger = client.logger_provider.get_logger("weld.inspector", "1.0.0")
    base = time.time_ns() - 3_600_000_000_000
    for i in range(EVENTS):
        shifted = i >= SHIFT_AT
        features = {f"ml.feature.{f}": rng.gauss(10.0 * (k + 1), 1.0 + k) for k, f in enumerate(FEATURES)}
        if shifted:
            features["ml.feature.voltage"] += 1.5  # 0.75 sd of voltage
            features["ml.feature.gap"] += 2.0  # 0.5 sd of gap
        actual = "good" if rng.random() < 0.7 else "porous"
        wrong = rng.random() < (0.35 if shifted else 0.10)
        predicted = ("porous" if actual == "good" else "good") if wrong else actual
        iid = f"weld-{i}"
        t = base + i * 1_000_000
        logger.emit(
            timestamp=t,
            event_name="ml.inference",
            attributes={
                "ml.model.name": MODEL,
                "ml.model.version": "2.1.0",
                "ml.inference.id": iid,
                "ml.prediction": predicted,
                **features,
            },
        )
        logger.emit(
            timestamp=t + 60_000_000_000,
            event_name="ml.feedback",
            attributes={"ml.model.name": MODEL, "ml.inference.id": iid, "ml.label": actual},
        )
        if i % 500 == 499:
            # The batch processor drops records past its queue: flush as we go.
            assert client.logger_provider.force_flush(30_000), "logs force_flush timed out"
    assert client.logger_provider.force_flush(30_000), "logs force_flush timed out"


def detections(collector, model: str = MODEL, **params) -> list[dict]:
    """Every page of the model's detections, following `next`."""
    out: list[dict] = []
    url, query = f"{collector.api_base}/api/v1/models/{model}/detections", params
    while url:
        r = requests.get(url, params=query, timeout=30)
        assert r.status_code == 200, r.text[:500]
        page = r.json()
        out.extend(page["detections"])
        url, query = page["next"] and collector.api_base + page["next"], None
    return out


def wait_for(what: str, check, timeout_s: float = 180.0):
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def test_drift_and_performance_drop_after_the_shift_only(make_collector):
    collector = make_collector(config=CONFIG)
    client = SdkClient(collector, "grpc", service="weld-line-3")
    send(client)
    client.shutdown()
    client.sent.assert_all_succeeded()

    windows = (EVENTS - 1000) // 1000  # the first 1,000 events are the baseline
    wait_for(
        "every window decided",
        lambda: len({d["first_event_id"] for d in detections(collector, detector="drift")}) == windows,
    )
    # Performance of the windows after the shift, once the pass has read their feedback.
    wait_for(
        "performance of every window",
        lambda: len({d["first_event_id"] for d in detections(collector, detector="performance_change")}) == windows,
    )

    drift = [d for d in detections(collector, detector="drift") if d["test"]]
    assert len(drift) == windows * (len(FEATURES) + 1)  # every feature and the prediction
    # The error rate's jump also moves the prediction's distribution (more "porous" answers):
    # that is prediction drift, reported after the shift only; the features are what changed.
    flagged = [d for d in drift if d["drifted"] and d["feature"] != "ml.prediction"]
    prediction = [d for d in drift if d["drifted"] and d["feature"] == "ml.prediction"]
    assert all(d["first_event_id"] >= SHIFT_AT for d in prediction), "prediction drift before the shift"
    assert {d["feature"] for d in flagged} == SHIFTED
    assert all(d["first_event_id"] >= SHIFT_AT for d in flagged), "drift flagged before the shift"
    after = {d["first_event_id"] for d in drift if d["first_event_id"] >= SHIFT_AT}
    for start in after:
        assert {d["feature"] for d in flagged if d["first_event_id"] == start} == SHIFTED, start
    for d in flagged:
        assert d["decided_by"] == "p_value_and_effect"
        assert d["p_value_corrected"] < 0.05 and d["effect_size"] >= 0.1

    change = detections(collector, detector="performance_change")
    degraded = {d["first_event_id"] for d in change if d["drifted"]}
    assert degraded, "no performance drop reported"
    assert min(degraded) >= SHIFT_AT, f"performance drop reported before the shift: {sorted(degraded)}"
    assert len(degraded) >= len(after) - 1, sorted(degraded)

    models = requests.get(f"{collector.api_base}/api/v1/models", timeout=30).json()["models"]
    (model,) = [m for m in models if m["model"] == MODEL]
    (version,) = model["versions"]
    assert version["version"] == "2.1.0" and version["events"] == EVENTS
    assert version["environments"] == ["staging"] and version["windows"] == windows

    metrics = requests.get(f"{collector.api_base}/metrics", timeout=30).text
    labels = f'model="{MODEL}",version="2.1.0"'

    def value(name: str, extra: str) -> float:
        pattern = re.escape(name) + r"\{([^}]*)\} (\S+)"
        for m in re.finditer(pattern, metrics):
            got = set(m.group(1).split(","))
            if set(labels.split(",")) | set(extra.split(",")) <= got:
                return float(m.group(2))
        raise AssertionError(f"{name}{{{labels},{extra}}} not on /metrics")

    for f in FEATURES:
        assert value("millwatch_drift_detected", f'feature="{f}"') == (1.0 if f in SHIFTED else 0.0), f
    assert value("millwatch_model_performance_degraded", 'metric="error_rate"') == 1.0
    assert 0.55 < value("millwatch_model_performance", 'metric="accuracy"') < 0.75
    assert value("millwatch_detection_windows_total", labels.split(",")[0]) == windows
    assert "millwatch_detection_lag_events 0" in metrics

    collector.stop_clean()
    with collector.db() as db:
        before = db.execute(
            "SELECT count(*) FROM detections WHERE drifted AND detector IN ('drift', 'performance_change') AND first_event_id < ?",
            [SHIFT_AT],
        ).fetchone()[0]
        assert before == 0


FAILURE_MODEL = "spindle-failure"
FAILURE_CONFIG = """
detection:
  poll_interval: 100ms
  performance_interval: 1s
  baseline_events: 300
  window_events: 300
"""
CLASSIFIER_METRICS = {"accuracy", "precision", "recall", "f1", "error_rate", "roc_auc"}
REGRESSION_METRICS = {"mae", "rmse", "r2", "mape"}


def test_a_scored_failure_classifier_gets_classifier_metrics_and_roc_auc(make_collector):
    """README's example shape: `ml.prediction` 1.0/0.0 with `ml.prediction.score`, then
    `ml.feedback` labels 0/1. Measured as a binary classifier (accuracy, precision, recall, F1,
    ROC AUC from the scores), never as a regression (MAE, RMSE, R², and a MAPE of ~1e15 from
    the 0 labels); from event 600 the scores stop separating the classes: the AUC drops."""
    collector = make_collector(config=FAILURE_CONFIG)
    client = SdkClient(collector, "grpc", service="spindle-predictor")
    rng = random.Random(7)
    logger = client.logger_provider.get_logger("spindle.model", "1.0.0")
    base = time.time_ns() - 3_600_000_000_000
    for i in range(900):
        failing = rng.random() < 0.3
        if i >= 600:
            score = rng.random()
        elif failing:
            score = 0.4 + 0.6 * rng.random()
        else:
            score = 0.6 * rng.random()
        iid = f"inf-{i:04d}"
        t = base + i * 1_000_000
        logger.emit(timestamp=t, event_name="ml.inference", attributes={
            "ml.model.name": FAILURE_MODEL, "ml.model.version": "3.2.0", "ml.inference.id": iid,
            "ml.feature.vibration_rms": rng.gauss(4.2, 0.5), "ml.feature.bearing_temp_c": rng.gauss(71.5, 2.0),
            "ml.prediction": 1.0 if score >= 0.5 else 0.0, "ml.prediction.score": score,
            "ml.inference.duration": 0.004,
        })
        logger.emit(timestamp=t + 60_000_000_000, event_name="ml.feedback", attributes={
            "ml.model.name": FAILURE_MODEL, "ml.inference.id": iid, "ml.label": 1 if failing else 0,
        })
        if i % 300 == 299:
            assert client.logger_provider.force_flush(30_000), "logs force_flush timed out"
    client.shutdown()
    client.sent.assert_all_succeeded()

    def found(**params) -> list[dict]:
        return detections(collector, FAILURE_MODEL, **params)

    def newest(rows: list[dict]) -> list[dict]:
        """The newest evaluation of each window (late feedback re-evaluates; rows come newest first)."""
        at: dict[int, str] = {}
        for d in rows:
            at.setdefault(d["first_event_id"], d["time"])
        return [d for d in rows if d["time"] == at[d["first_event_id"]]]

    # Both windows (300-599, 600-899) measured with all their 300 labels.
    wait_for(
        "performance of both windows with all their labels",
        lambda: {
            d["first_event_id"] for d in newest(found(detector="performance"))
            if d["details"]["labelled"] == 300
        } == {300, 600},
    )
    measured = newest(found(detector="performance"))
    for start in (300, 600):
        names = {d["feature"] for d in measured if d["first_event_id"] == start}
        assert names == CLASSIFIER_METRICS, (start, sorted(names))
    assert all(d["details"]["task"] == "binary_classification" for d in measured), measured[0]
    assert all(d["details"]["task_rule"] == "score" for d in measured), measured[0]
    auc = {d["first_event_id"]: d["statistic"] for d in measured if d["feature"] == "roc_auc"}
    assert auc[300] > 0.9 and 0.35 < auc[600] < 0.65, auc
    changes = newest(found(detector="performance_change"))
    degraded = {(d["first_event_id"], d["feature"]) for d in changes if d["drifted"]}
    assert (600, "roc_auc") in degraded and not {d for d in degraded if d[0] == 300}, changes

    def shown() -> dict[str, float]:
        metrics = requests.get(f"{collector.api_base}/metrics", timeout=30).text
        out = {}
        for m in re.finditer(r"^millwatch_model_performance(_degraded)?\{([^}]*)\} (\S+)$", metrics, re.M):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2)))
            if labels.get("model") == FAILURE_MODEL and labels.get("version") == "3.2.0":
                out[("degraded " if m.group(1) else "") + labels["metric"]] = float(m.group(3))
        return out

    # The gauges follow the newest window's evaluation once its pass has published it.
    gauges = wait_for("the newest window's AUC on /metrics", lambda: (g := shown()).get("roc_auc") == auc[600] and g)
    assert {k for k in gauges if not k.startswith("degraded ")} == CLASSIFIER_METRICS, sorted(gauges)
    assert not {k.removeprefix("degraded ") for k in gauges} & REGRESSION_METRICS, sorted(gauges)
    assert gauges["degraded roc_auc"] == 1.0, gauges


FILE_MODEL = "press-brake"
FILE_WINDOW = 500
FILE_EVENTS = 3 * FILE_WINDOW


def reference_file(directory: Path, fmt: str) -> Path:
    """1,000 reference rows: force ~ N(10, 1), stroke ~ N(20, 2); as CSV or Parquet."""
    rng = random.Random(7)
    csv = directory / "reference.csv"
    csv.write_text("force,stroke\n" + "".join(f"{rng.gauss(10.0, 1.0)!r},{rng.gauss(20.0, 2.0)!r}\n"
                                               for _ in range(1000)))
    if fmt == "csv":
        return csv
    parquet = directory / "reference.parquet"
    duckdb.sql(f"COPY (SELECT * FROM read_csv('{csv}')) TO '{parquet}' (FORMAT parquet)")
    return parquet


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_a_baseline_from_a_file_is_the_reference_from_the_first_event(make_collector, tmp_path, fmt):
    """The live force is 1.5 sd above the file's and the stroke is as in the file. Against the
    file, every window from event 0 drifts on force only; against its own first events (the
    default baseline) the version would have no window before event 1,000, and none would drift."""
    path = reference_file(tmp_path, fmt)
    collector = make_collector(config=f"""
detection:
  poll_interval: 100ms
  models:
    - name: {FILE_MODEL}
      baseline: {{file: '{path}'}}
      window_events: {FILE_WINDOW}
""")
    rng = random.Random(11)
    base = time.time_ns() - 3_600_000_000_000
    for start in range(0, FILE_EVENTS, FILE_WINDOW):
        records = [
            log_record(base + i * 1_000_000, {
                "ml.model.name": FILE_MODEL,
                "ml.model.version": "4.0",
                "ml.inference.id": f"press-{i}",
                "ml.prediction": "ok",
                "ml.feature.force": rng.gauss(11.5, 1.0),
                "ml.feature.stroke": rng.gauss(20.0, 2.0),
            }, event_name="ml.inference")
            for i in range(start, start + FILE_WINDOW)
        ]
        send_ok(collector, logs_request(records, RESOURCE))

    last = FILE_EVENTS - FILE_WINDOW
    wait_for(f"the window from event {last}", lambda: any(
        d["first_event_id"] == last for d in detections(collector, FILE_MODEL, detector="drift")), 60)
    drift = [d for d in detections(collector, FILE_MODEL, detector="drift") if d["test"]]
    windows = {d["first_event_id"] for d in drift}
    assert windows == set(range(0, FILE_EVENTS, FILE_WINDOW)), f"windows from events {sorted(windows)}"
    for start in windows:
        verdicts = {d["feature"]: d["drifted"] for d in drift if d["first_event_id"] == start}
        assert verdicts == {"force": True, "stroke": False}, f"window from {start}: {verdicts}"

    collector.stop_clean()
    with collector.db() as db:
        rows = db.execute("SELECT origin::VARCHAR, first_event_id FROM detection_baselines "
                          "WHERE model = ?", [FILE_MODEL]).fetchall()
    assert [(json.loads(origin), first) for origin, first in rows] == [({"file": str(path)}, None)], rows

