"""The alert manager end to end, with real peers started here: drift produced by inference events
sent through the OpenTelemetry Python SDK fires Millwatch's built-in drift rule; the notification
reaches an SMTP server (aiosmtpd), an HTTP receiver (Alertmanager webhook payload, version 4) and
Debian's prometheus-alertmanager (`amtool alert query`); an SMTP outage across a Millwatch restart
loses nothing and sends nothing twice; 50 drifting features make one notification, then one
resolved notification; silences and acknowledgements through the CLI; `millwatch validate`
explains alert-config mistakes.
"""

from __future__ import annotations

import email
import datetime
import json
import re
import statistics
import subprocess
import textwrap
import time

import pytest
import requests
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.metrics.v1 import metrics_pb2

from collector import free_port, millwatch_bin
from otlp import kvs, log_record, logs_request, resource, scope
from pysdk import RecGrpcLogs, Sent, resource_attrs
from peer_processes import AMTOOL, hooks, mails, wait_for
from rawhttp import send_ok

MODEL = "press-vision"
VERSION = "4.1.0"
BASELINE = 200
WINDOW = 200
FEATURES = 50
GO_ZERO_TIME = "0001-01-01T00:00:00Z"
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$")


# --- drift through the SDK -------------------------------------------------------------------
def quantiles(n: int) -> list[float]:
    """n standard-normal quantiles in a scrambled order: every window of n draws has exactly the
    same values, so an unshifted window cannot drift and a shifted one surely does."""
    nd = statistics.NormalDist()
    values = [nd.inv_cdf((k + 0.5) / n) for k in range(n)]
    return [values[(k * 37) % n] for k in range(n)]


class Inferences:
    """Inference events of one model version, FEATURES numeric features, sent over OTLP/gRPC
    with the OpenTelemetry Python SDK."""

    def __init__(self, collector, model: str = MODEL, features: int = FEATURES):
        self.collector = collector
        self.model = model
        self.features = features
        self.sent_events = 0
        self.base = time.time_ns() - 3_600_000_000_000

    def send(self, n: int, shift: float) -> None:
        sent = Sent()
        provider = LoggerProvider(resource=Resource.create(resource_attrs("press-vision-service")))
        provider.add_log_record_processor(BatchLogRecordProcessor(
            RecGrpcLogs(sent, endpoint=self.collector.grpc_endpoint, insecure=True, timeout=30)))
        logger = provider.get_logger("millwatch.e2e.alerting", "1.0.0")
        draws = quantiles(n)
        for k in range(n):
            i = self.sent_events + k
            attrs = {
                "ml.model.name": self.model,
                "ml.model.version": VERSION,
                "ml.inference.id": f"{self.model}-{i}",
                "ml.prediction": "ok",
            }
            for f in range(self.features):
                attrs[f"ml.feature.f{f:02d}"] = draws[(k + 7 * f) % n] + shift
            logger.emit(timestamp=self.base + i * 1_000_000, event_name="ml.inference", attributes=attrs)
        assert provider.force_flush(60_000), "logs force_flush timed out"
        provider.shutdown()
        sent.assert_all_succeeded()
        self.sent_events += n

    def drift(self) -> None:
        """A baseline, then one window shifted by five standard deviations."""
        if self.sent_events == 0:
            self.send(BASELINE, 0.0)
        self.send(WINDOW, 5.0)

    def calm(self) -> None:
        """One window like the baseline."""
        self.send(WINDOW, 0.0)


# --- config ----------------------------------------------------------------------------------
def config(receivers: str, route: str, extra: str = "") -> str:
    """Detection small enough for a test, the drift rule only (data quality and the collector's
    own rules would add their own groups), quick retries."""
    return textwrap.dedent("""\
        detection:
          baseline_events: {baseline}
          window_events: {window}
          min_samples: 30
          poll_interval: 100ms
        alerting:
          evaluation_interval: 200ms
          builtin:
            data_quality: {{enabled: false}}
            collector: {{enabled: false}}
          delivery: {{initial_backoff: 500ms, max_backoff: 3s}}
          receivers:
        {receivers}
          route:
        {route}
        {extra}""").format(
        baseline=BASELINE, window=WINDOW,
        receivers=textwrap.indent(textwrap.dedent(receivers).strip("\n"), "    "),
        route=textwrap.indent(textwrap.dedent(route).strip("\n"), "    "),
        extra=textwrap.indent(textwrap.dedent(extra).strip("\n"), "  "),
    )


def mail_config(port: int, settings: str) -> str:
    """One email receiver `ops-mail` on 127.0.0.1:`port` with `settings` (YAML lines: tls,
    auth, ...), routed to by group of alertname and model."""
    receiver = textwrap.indent(textwrap.dedent(settings).strip("\n"), "  ")
    return config(
        receivers=f"""
ops-mail:
  type: email
  host: 127.0.0.1
  port: {port}
  from: millwatch@plant.example
  to: [oncall@plant.example]
{receiver}
        """,
        route="""
            receiver: ops-mail
            group_by: [alertname, model]
            group_wait: 1s
            group_interval: 2s
        """)


def alerts(collector, state: str = "active") -> list[dict]:
    r = requests.get(f"{collector.api_base}/api/v1/alerts", params={"state": state}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["alerts"]


def notifications(collector) -> list[dict]:
    r = requests.get(f"{collector.api_base}/api/v1/notifications", timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["notifications"]


def feature_alerts(items: list[dict]) -> list[dict]:
    return [a for a in items if a["labels"].get("detector") == "drift"]


def am_fingerprint(labels: dict[str, str]) -> str:
    """Prometheus' label-set fingerprint, written here from its definition (FNV-1a 64 over
    sorted names and values, each followed by 0xff)."""
    h = 14695981039346656037
    for k in sorted(labels):
        for part in (k.encode(), b"\xff", labels[k].encode(), b"\xff"):
            for b in part:
                h ^= b
                h = (h * 1099511628211) % (1 << 64)
    return f"{h:016x}"


def mw(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    p = subprocess.run([millwatch_bin(), *args], capture_output=True, text=True, timeout=60)
    if check:
        assert p.returncode == 0, f"millwatch {' '.join(args)}: {p.returncode}\n{p.stdout}\n{p.stderr}"
    return p


# --- tests -----------------------------------------------------------------------------------
def test_drift_mail_arrives_at_real_smtp_with_subject_and_content(make_collector, peers, tmp_path):
    smtp_port = free_port()
    box = tmp_path / "mail"
    peers.smtp(smtp_port, box)
    c = make_collector(config(
        receivers=f"""
            ops-mail:
              type: email
              host: 127.0.0.1
              port: {smtp_port}
              tls: none
              from: millwatch@plant.example
              to: [oncall@plant.example, ml-team@plant.example]
        """,
        route="""
            receiver: ops-mail
            group_by: [alertname, model]
            group_wait: 1s
            group_interval: 2s
        """,
        extra="""
            rules:
              - name: PressVisionDrift
                detections: ['detector="drift"', 'model="press-vision"', 'feature="f01"']
                severity: critical
                labels: {team: vision}
                annotations:
                  summary: "{{ $labels.model }} drifted on {{ $labels.feature }}"
                  value: "statistic {{ $value }}"
        """))
    Inferences(c, features=3).drift()
    got = wait_for(lambda: len(mails(box)) >= 2 and mails(box), "two mails (built-in and own rule)", collector=c)
    by_subject = {m["Subject"]: m for m in got}
    drift_subjects = [s for s in by_subject if s.startswith("[FIRING:")]
    assert len(drift_subjects) == 2, by_subject.keys()
    builtin = by_subject.get(f"[FIRING:4] MillwatchDrift (model={MODEL})")
    assert builtin is not None, f"subjects: {list(by_subject)}"
    own = by_subject.get(f"[FIRING:1] PressVisionDrift (model={MODEL})")
    assert own is not None, f"subjects: {list(by_subject)}"
    envelope = json.loads((box / "0001.json").read_text())
    assert sorted(envelope["rcpt_tos"]) == ["ml-team@plant.example", "oncall@plant.example"]
    assert envelope["mail_from"] == "millwatch@plant.example"
    text = builtin.get_body(preferencelist=("plain",)).get_content()
    html = builtin.get_body(preferencelist=("html",)).get_content()
    for feature in ("f00", "f01", "f02"):
        assert feature in text and feature in html, text
    assert f"{MODEL} {VERSION}: f01 drifted" in text
    assert c.api_base in text, text
    own_text = own.get_body(preferencelist=("plain",)).get_content()
    assert f"{MODEL} drifted on f01" in own_text, own_text
    assert "f00" not in own_text and "f02" not in own_text, own_text
    # The first window after the baseline drifted: one verdict per feature is no history,
    # so there is no chart.
    for m in got:
        assert charts(m) == [], m["Subject"]


def charts(m: email.message.EmailMessage) -> list[email.message.EmailMessage]:
    return [p for p in m.walk() if p.get_content_type() == "image/png"]


def test_drift_mail_has_a_chart_of_the_statistic_when_there_is_history(make_collector, peers, tmp_path):
    smtp_port = free_port()
    box = tmp_path / "mail"
    peers.smtp(smtp_port, box)
    c = make_collector(mail_config(smtp_port, "tls: none"))
    inf = Inferences(c, features=3)
    inf.send(BASELINE, 0.0)
    # Two calm windows: their verdicts are the history before the drift.
    for n in (1, 2):
        inf.calm()
        wait_for(lambda: decided_windows(c) >= n, f"the verdicts of calm window {n}", collector=c)
    assert alerts(c) == []
    inf.send(WINDOW, 5.0)
    got = wait_for(lambda: mails(box), "the drift mail", collector=c)
    assert len(got) == 1, [m["Subject"] for m in got]
    m = got[0]
    assert m["Subject"] == f"[FIRING:4] MillwatchDrift (model={MODEL})"
    pngs = charts(m)
    # One chart per alert: the three features and the drift share.
    assert len(pngs) == 4, [p.get_content_type() for p in m.walk()]
    html = m.get_body(preferencelist=("html",)).get_content()
    related = next(p for p in m.walk() if p.get_content_type() == "multipart/related")
    assert html in related.get_body(preferencelist=("html",)).get_content()
    for p in pngs:
        assert p.get_content_disposition() == "inline"
        assert p.get_content().startswith(b"\x89PNG\r\n\x1a\n")
        cid = p["Content-ID"].strip("<>")
        assert f"cid:{cid}" in html, cid


def decided_windows(c) -> int:
    """Windows with a stored drift verdict on feature f00."""
    r = requests.get(f"{c.api_base}/api/v1/models/{MODEL}/detections",
                     params={"detector": "drift", "feature": "f00", "limit": 10000}, timeout=10)
    assert r.status_code == 200, r.text
    return len({d["window_end"] for d in r.json()["detections"]})


def test_webhook_gets_alertmanager_v4_payload_field_by_field(make_collector, peers, tmp_path):
    port = free_port()
    box = tmp_path / "hook"
    peers.http(port, box)
    c = make_collector(config(
        receivers=f"""
            hook:
              type: webhook
              url: http://127.0.0.1:{port}/alerts
        """,
        route="""
            receiver: hook
            group_by: [alertname, model]
            group_wait: 1s
            group_interval: 2s
        """))
    inf = Inferences(c, features=3)
    inf.drift()
    got = wait_for(lambda: hooks(box), "a webhook request", collector=c)
    assert len(got) == 1, [h["body"][:200] for h in got]
    req = got[0]
    assert req["method"] == "POST" and req["path"] == "/alerts"
    assert req["headers"]["content-type"].startswith("application/json")
    body = json.loads(req["body"])
    assert set(body) == {"receiver", "status", "alerts", "groupLabels", "commonLabels",
                         "commonAnnotations", "externalURL", "version", "groupKey", "truncatedAlerts"}
    assert body["version"] == "4"
    assert body["receiver"] == "hook"
    assert body["status"] == "firing"
    assert body["groupLabels"] == {"alertname": "MillwatchDrift", "model": MODEL}
    assert body["commonLabels"]["alertname"] == "MillwatchDrift"
    assert body["commonLabels"]["model"] == MODEL
    assert body["commonLabels"]["severity"] == "warning"
    assert body["externalURL"] == c.api_base
    assert body["truncatedAlerts"] == 0
    assert body["groupKey"] == 'route:{alertname="MillwatchDrift",model="press-vision"}'
    features = sorted(a["labels"].get("feature", "") for a in body["alerts"])
    assert features == ["", "f00", "f01", "f02"]  # "" is the dataset's drift share
    for a in body["alerts"]:
        assert set(a) == {"status", "labels", "annotations", "startsAt", "endsAt", "generatorURL", "fingerprint"}
        assert a["status"] == "firing"
        assert RFC3339.match(a["startsAt"]), a["startsAt"]
        assert a["endsAt"] == GO_ZERO_TIME
        assert a["generatorURL"] == f"{c.api_base}/api/v1/alerts"
        assert a["fingerprint"] == am_fingerprint(a["labels"])
        assert a["labels"]["version"] == VERSION
        assert "summary" in a["annotations"] and "description" in a["annotations"]
    f01 = next(a for a in body["alerts"] if a["labels"].get("feature") == "f01")
    assert f01["labels"]["detector"] == "drift"
    assert float(f01["annotations"]["value"]) > 0
    # The API lists the same alerts with the same fingerprints.
    listed = {a["fingerprint"]: a for a in alerts(c)}
    for a in body["alerts"]:
        assert listed[a["fingerprint"]]["state"] == "firing"
        assert listed[a["fingerprint"]]["receivers"] == ["hook"]
    # The drift ends: one resolved notification, with endsAt set.
    inf.calm()
    got = wait_for(lambda: len(hooks(box)) >= 2 and hooks(box), "the resolved notification", collector=c)
    resolved = json.loads(got[1]["body"])
    assert resolved["status"] == "resolved"
    assert resolved["groupKey"] == body["groupKey"]
    assert sorted(a["fingerprint"] for a in resolved["alerts"]) == sorted(a["fingerprint"] for a in body["alerts"])
    for a in resolved["alerts"]:
        assert a["status"] == "resolved" and RFC3339.match(a["endsAt"]) and a["endsAt"] != GO_ZERO_TIME


def test_alertmanager_lists_millwatch_alerts_in_amtool(make_collector, peers):
    am_port = free_port()
    peers.alertmanager(am_port)
    c = make_collector(config(
        receivers=f"""
            am:
              type: alertmanager
              urls: ["http://127.0.0.1:{am_port}"]
        """,
        route="""
            receiver: am
            group_by: [alertname, model]
            group_wait: 1s
            group_interval: 2s
        """))
    Inferences(c, features=3).drift()

    listed = wait_for(lambda: am_active(am_port, at_least=4), "alerts in amtool alert query", collector=c)
    ours = {a["fingerprint"]: a for a in listed}
    mine = {a["fingerprint"]: a for a in alerts(c)}
    assert set(ours) == set(mine)
    for fp, a in ours.items():
        assert a["labels"] == mine[fp]["labels"]
        assert a["labels"]["alertname"] == "MillwatchDrift"
        assert a["status"]["state"] == "active"
        assert a["generatorURL"] == f"{c.api_base}/api/v1/alerts"


def am_active(port: int, at_least: int = 1) -> list[dict] | None:
    """The alerts Alertmanager holds active (`amtool alert query`), when at least `at_least`."""
    out = subprocess.run([AMTOOL, f"--alertmanager.url=http://127.0.0.1:{port}",
                          "alert", "query", "-o", "json"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    listed = [a for a in json.loads(out.stdout or "[]") if a["status"]["state"] == "active"]
    return listed if len(listed) >= at_least else None


def test_alertmanager_keeps_firing_alerts_past_its_resolve_timeout_while_millwatch_reposts(
        make_collector, peers):
    am_port = free_port()
    # Alertmanager takes an alert without endsAt for resolved after resolve_timeout.
    peers.alertmanager(am_port, resolve_timeout="2s")
    c = make_collector(config(
        receivers=f"""
            am:
              type: alertmanager
              urls: ["http://127.0.0.1:{am_port}"]
              resend_interval: 1s
        """,
        route="""
            receiver: am
            group_by: [alertname, model]
            group_wait: 1s
            group_interval: 1h
            repeat_interval: 1h
        """))
    Inferences(c, features=3).drift()
    first = wait_for(lambda: am_active(am_port, at_least=4), "alerts in Alertmanager", collector=c)
    ends = {a["fingerprint"]: a["endsAt"] for a in first}
    # Three times the resolve_timeout later, nothing changed in Millwatch: still active there,
    # because Millwatch posted them again (with endsAt moved on), not once per group_interval.
    time.sleep(6)
    later = am_active(am_port, at_least=4)
    assert later is not None, am_active(am_port, at_least=0)
    assert {a["fingerprint"] for a in later} == set(ends)
    for a in later:
        assert a["endsAt"] > ends[a["fingerprint"]], (a["endsAt"], ends[a["fingerprint"]])
    posts = [n for n in notifications(c) if n["receiver"] == "am" and n["status"] == "firing"]
    assert len(posts) >= 4, len(posts)
    assert all(n["delivery"] == "delivered" for n in posts[1:]), posts[:2]
    # Millwatch goes away: each post was valid for four resend intervals, so Alertmanager
    # resolves the alerts on its own soon after.
    c.stop_clean()
    wait_for(lambda: am_active(am_port, at_least=0) == [], "Alertmanager resolving the alerts", timeout=30)


def test_fifty_drifting_features_one_notification_per_group_then_one_resolved(make_collector, peers, tmp_path):
    port = free_port()
    box = tmp_path / "hook"
    peers.http(port, box)
    c = make_collector(config(
        receivers=f"""
            hook:
              type: webhook
              url: http://127.0.0.1:{port}/grouped
        """,
        route="""
            receiver: hook
            group_by: [alertname, model]
            group_wait: 2s
            group_interval: 2s
        """))
    inf = Inferences(c, features=FEATURES)
    inf.drift()
    first = wait_for(lambda: hooks(box), "the grouped notification", collector=c)
    body = json.loads(first[0]["body"])
    assert body["status"] == "firing"
    assert len(feature_alerts(body["alerts"])) == FEATURES
    assert len(body["alerts"]) == FEATURES + 1  # and the dataset's drift share
    inf.calm()
    got = wait_for(lambda: len(hooks(box)) >= 2 and hooks(box), "the resolved notification", collector=c)
    # The engine has seen the calm window once it resolved everything; wait until the outbox
    # has nothing pending, then count.
    wait_for(lambda: all(n["delivery"] == "delivered" for n in notifications(c)), "an empty outbox", collector=c)
    got = hooks(box)
    bodies = [json.loads(h["body"]) for h in got]
    assert [b["status"] for b in bodies] == ["firing", "resolved"], [b["status"] for b in bodies]
    assert len({b["groupKey"] for b in bodies}) == 1
    assert len(bodies[1]["alerts"]) == FEATURES + 1
    assert all(a["status"] == "resolved" for a in bodies[1]["alerts"])
    assert alerts(c) == []
    assert len(feature_alerts(alerts(c, "resolved"))) == FEATURES


def test_smtp_down_for_a_minute_then_mail_arrives_exactly_once_across_a_restart(make_collector, peers, tmp_path):
    smtp_port = free_port()
    box = tmp_path / "mail"
    started = time.monotonic()
    c = make_collector(config(
        receivers=f"""
            ops-mail:
              type: email
              host: 127.0.0.1
              port: {smtp_port}
              tls: none
              from: millwatch@plant.example
              to: [oncall@plant.example]
              timeout: 5s
        """,
        route="""
            receiver: ops-mail
            group_by: [alertname, model]
            group_wait: 1s
            group_interval: 2s
        """))
    Inferences(c, features=3).drift()
    # Attempts fail while nothing listens: each one is recorded as retryable.
    def failing():
        ns = notifications(c)
        return ns and ns[-1]["attempts"] >= 2 and ns
    ns = wait_for(failing, "two failed attempts", collector=c)
    assert len(ns) == 1
    assert ns[0]["delivery"] == "pending"
    assert {a["outcome"] for a in ns[0]["attempt_log"]} == {"retryable"}
    assert all(a["receiver"] == "ops-mail" for a in ns[0]["attempt_log"])
    firing_before = {a["fingerprint"]: a["starts_at"] for a in alerts(c)}
    # Restart in between: the outbox and the alerts survive.
    c.stop_clean()
    c.start()
    listed = {a["fingerprint"]: a["starts_at"] for a in alerts(c)}
    assert listed == firing_before
    after = notifications(c)
    assert [n["id"] for n in after] == [ns[0]["id"]]
    # The SMTP server comes up a minute after the test began.
    remaining = 60.0 - (time.monotonic() - started)
    if remaining > 0:
        time.sleep(remaining)
    peers.smtp(smtp_port, box)
    wait_for(lambda: mails(box), "the mail after the outage", collector=c)
    wait_for(lambda: all(n["delivery"] == "delivered" for n in notifications(c)), "delivered", collector=c)
    # Give a duplicate every chance to show up: more evaluation rounds and outbox polls, and
    # another restart.
    c.stop_clean()
    c.start()
    wait_for(lambda: len(alerts(c)) == len(firing_before), "alerts after the second restart", collector=c)
    final = notifications(c)
    assert len(final) == 1, final
    log = final[0]["attempt_log"]
    assert log[-1]["outcome"] == "delivered"
    assert [a["outcome"] for a in log[:-1]] == ["retryable"] * (len(log) - 1)
    assert len(log) >= 3
    got = mails(box)
    assert len(got) == 1, [m["Subject"] for m in got]
    assert got[0]["Subject"] == f"[FIRING:4] MillwatchDrift (model={MODEL})"


def inference_request(model: str, first: int, shifts: list[float], features: int = 3):
    """One OTLP request holding one window (WINDOW events) per shift, each feature of a window
    the same scrambled normal quantiles moved by its shift: every window is decided from this one
    commit, in one pass of the detection engine."""
    base = time.time_ns() - 3_600_000_000_000
    draws = quantiles(WINDOW)
    records = []
    for w, shift in enumerate(shifts):
        for k in range(WINDOW):
            i = first + w * WINDOW + k
            attrs = {"ml.model.name": model, "ml.model.version": VERSION,
                     "ml.inference.id": f"{model}-{i}", "ml.prediction": "ok"}
            for f in range(features):
                attrs[f"ml.feature.f{f:02d}"] = draws[(k + 7 * f) % WINDOW] + shift
            records.append(log_record(base + i * 1_000_000, attrs, event_name="ml.inference"))
    return logs_request(records, resource_attrs("press-vision-service"))


def json_log(c) -> list[dict]:
    """The collector's log lines (it logs JSON: `log: {format: json}`), each line's fields."""
    out = []
    for path in c.stderr_paths:
        for line in path.read_text(errors="replace").splitlines():
            try:
                out.append(json.loads(line)["fields"])
            except (ValueError, KeyError):
                continue
    return out


def test_one_drifted_window_then_clean_ones_within_an_evaluation_fires_resolves_and_is_notified(
        make_collector, peers, tmp_path):
    """Issue 23: one drifted window and the clean windows after it are decided in one pass,
    well within the 1 s evaluation interval. The newest verdict of every series is clean, yet
    the drift and data-quality alerts fire, resolve, and reach the webhook both ways, with texts
    that name what happened; the log says each step."""
    port = free_port()
    box = tmp_path / "hook"
    peers.http(port, box)
    c = make_collector(textwrap.dedent(f"""\
        detection:
          baseline_events: {BASELINE}
          window_events: {WINDOW}
          min_samples: 30
          poll_interval: 100ms
        alerting:
          builtin:
            collector: {{enabled: false}}
          receivers:
            hook: {{type: webhook, url: "http://127.0.0.1:{port}/alerts"}}
          route:
            receiver: hook
            group_by: [alertname, model]
            group_wait: 1s
            group_interval: 1s
        log: {{format: json}}
        """))
    send_ok(c, inference_request(MODEL, 0, [0.0]))  # the baseline
    send_ok(c, inference_request(MODEL, BASELINE, [5.0, 0.0, 0.0]))

    def groups_told_both_ways():
        by_group: dict[str, list[dict]] = {}
        for h in hooks(box):
            body = json.loads(h["body"])
            by_group.setdefault(body["groupLabels"]["alertname"], []).append(body)
        done = {name: bodies for name, bodies in by_group.items()
                if [b["status"] for b in bodies] == ["firing", "resolved"]}
        return len(done) == 2 and done
    got = wait_for(groups_told_both_ways, "firing then resolved notifications of both groups", collector=c)
    assert set(got) == {"MillwatchDrift", "MillwatchDataQuality"}, list(got)
    drift_firing, drift_resolved = got["MillwatchDrift"]
    # Three features and the dataset's drift share, told firing (as they were), then resolved.
    assert sorted(a["labels"].get("feature", "") for a in drift_firing["alerts"]) == ["", "f00", "f01", "f02"]
    assert all(a["status"] == "firing" and a["endsAt"] == GO_ZERO_TIME for a in drift_firing["alerts"])
    assert sorted(a["fingerprint"] for a in drift_resolved["alerts"]) == sorted(
        a["fingerprint"] for a in drift_firing["alerts"])
    assert all(a["status"] == "resolved" and a["endsAt"] != GO_ZERO_TIME for a in drift_resolved["alerts"])
    # The texts name what happened: the feature, or how many columns drifted; the failed check
    # and its share.
    by_feature = {a["labels"].get("feature", ""): a["annotations"] for a in drift_firing["alerts"]}
    assert by_feature["f01"]["summary"] == f"{MODEL} {VERSION}: f01 drifted"
    assert by_feature["f01"]["description"].startswith(
        f"The ks test on f01 of model {MODEL} version {VERSION} found drift: statistic "), by_feature["f01"]
    share = by_feature[""]
    assert re.fullmatch(rf"{MODEL} {VERSION}: 3 of \d+ columns drifted \(\d+(\.\d+)?%\)", share["summary"]), share
    assert "  " not in share["summary"] and "  " not in share["description"], share
    assert share["description"].startswith(f"In one window of model {MODEL} version {VERSION}, 3 of "), share
    quality_firing, quality_resolved = got["MillwatchDataQuality"]
    assert sorted(a["labels"]["feature"] for a in quality_firing["alerts"]) == ["f00", "f01", "f02"]
    assert len(quality_resolved["alerts"]) == 3
    q = next(a["annotations"] for a in quality_firing["alerts"] if a["labels"]["feature"] == "f01")
    assert re.fullmatch(
        rf"{MODEL} {VERSION}: f01 failed the data-quality check: out_of_range \d+(\.\d+)?%", q["summary"]), q
    assert re.search(r"\d+(\.\d+)?% of values outside the baseline's range \(out_of_range\)", q["description"]), q
    assert float(q["value"]) > 0.5, q  # the share out of range, not the missing share (0)
    # The API lists them resolved, nothing active.
    assert alerts(c) == []
    assert len(alerts(c, "resolved")) == 7
    # The log told each step once: the new version, the drift and its end, the alerts, the
    # deliveries.
    wait_for(lambda: sum(f.get("message") == "notification delivered" for f in json_log(c)) >= 1,
             "a delivery line", collector=c)
    lines = json_log(c)
    said = [f.get("message") for f in lines]
    new_version = [f for f in lines if f.get("message") == "new model version"]
    assert [(f["model"], f["version"]) for f in new_version] == [(MODEL, VERSION)], new_version
    assert f"its first {BASELINE} events" in new_version[0]["baseline"]
    drifted = [f for f in lines if f.get("message") == "window drifted"]
    assert len(drifted) == 1 and sorted(drifted[0]["features"].split(",")) == ["f00", "f01", "f02"], drifted
    assert said.count("window recovered: no drift") == 1, said
    assert said.count("alert firing") == 7 and said.count("alert resolved") == 7, said
    firing_f01 = [f for f in lines if f.get("message") == "alert firing" and "feature=f01" in f["labels"]
                  and f["alertname"] == "MillwatchDrift"]
    assert firing_f01 and firing_f01[0]["summary"] == f"{MODEL} {VERSION}: f01 drifted", firing_f01
    delivered = [f for f in lines if f.get("message") == "notification delivered"]
    assert all(f["receiver"] == "hook" for f in delivered), delivered
    assert any(f.get("message", "").startswith("a new group of alerts is notified after group_wait")
               and f["group_wait"] == "1s" for f in lines), said


def test_without_a_receiver_the_log_says_alerts_are_not_sent(make_collector):
    c = make_collector("log: {format: json}\n")
    hint = [f for f in json_log(c) if f.get("message", "").startswith("no receiver is configured")]
    assert len(hint) == 1, c.stderr_tail()
    assert "/api/v1/alerts" in hint[0]["message"] and "alerting.route" in hint[0]["message"]


def test_silence_and_acknowledge_through_the_cli(make_collector, peers, tmp_path):
    port = free_port()
    box = tmp_path / "hook"
    peers.http(port, box)
    c = make_collector(config(
        receivers=f"""
            hook:
              type: webhook
              url: http://127.0.0.1:{port}/alerts
        """,
        route="""
            receiver: hook
            group_by: [alertname, model]
            group_wait: 1s
            group_interval: 1s
        """))
    api = ["--api", c.api_base]
    sid = mw("silence", "add", "-m", f'model="{MODEL}"', "-m", 'alertname=~"Millwatch.*"',
             "--duration", "2h", "--author", "ana", "--comment", "retraining the model", *api).stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{16}", sid), sid
    listing = mw("silence", "list", *api).stdout
    assert sid in listing and "ana" in listing and "retraining the model" in listing and "active" in listing
    Inferences(c, features=3).drift()
    firing = wait_for(lambda: len(alerts(c, "firing")) >= 4 and alerts(c, "firing"), "firing alerts", collector=c)
    assert all(a["silenced_by"] == [sid] for a in firing)
    table = mw("alerts", *api).stdout
    assert "MillwatchDrift" in table and "silenced" in table
    assert re.search(TABLE_TIME, table) and not re.search(r"\d{2}:\d{2}:\d{2}\.\d+Z", table), table
    # Silenced: give the group its group_wait and a few intervals; nothing is queued. (Had the
    # silence not muted them, the notification would be sent now and not again after expiry.)
    time.sleep(4)
    assert notifications(c) == []
    mw("silence", "expire", sid, *api)
    bad = mw("silence", "expire", sid, *api, check=False)
    assert bad.returncode == 1 and "no active or pending silence" in bad.stderr
    got = wait_for(lambda: hooks(box), "the notification once the silence expired", collector=c)
    assert json.loads(got[0]["body"])["status"] == "firing"
    fp = firing[0]["fingerprint"]
    mw("alerts", "ack", fp, "--by", "ben", "--comment", "looking into it", *api)
    acked = wait_for(lambda: [a for a in alerts(c) if a["fingerprint"] == fp and a["acknowledged"]], "the acknowledgement")
    assert acked[0]["acknowledged"]["by"] == "ben"
    assert acked[0]["acknowledged"]["comment"] == "looking into it"
    as_json = json.loads(mw("alerts", "--json", "--state", "all", *api).stdout)
    assert {a["fingerprint"] for a in as_json["alerts"]} >= {a["fingerprint"] for a in firing}
    r = requests.post(f"{c.api_base}/api/v1/silences", json={"matchers": ["model~x"], "duration": "1h",
                                                             "created_by": "a", "comment": "c"}, timeout=10)
    assert r.status_code == 400 and "bad matcher" in r.json()["error"]


TABLE_TIME = r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC"


def test_silence_add_needs_an_end_on_the_cli_as_in_the_api_and_lists_readable_times(make_collector):
    """The CLI asks for --duration or --ends-at as the API does (one, not both, checked before
    anything is sent), and `silence list` shows times to the second, the JSON to the nanosecond."""
    c = make_collector()
    api = ["--api", c.api_base]
    base = ["silence", "add", "-m", 'model="press"', "--author", "ana", "--comment", "retraining"]
    usage = mw("silence", "add", "--help").stdout
    assert "<--duration <DURATION>|--ends-at <ENDS_AT>>" in usage, usage
    for extra, want in [([], "--duration"),
                        (["--duration", "2h", "--ends-at", "2099-01-01T00:00:00Z"], "cannot be used with"),
                        (["--duration", "soon"], "write e.g. 2h"),
                        (["--ends-at", "tomorrow"], "not an RFC 3339 time")]:
        p = mw(*base, *extra, *api, check=False)
        assert p.returncode == 1 and want in p.stderr, (extra, p.stderr)
        if not extra:
            assert "--ends-at" in p.stderr and "required" in p.stderr, p.stderr
    assert json.loads(mw("silence", "list", "--json", *api).stdout)["silences"] == []
    # The API refuses the same, with the same two ways to give an end.
    r = requests.post(f"{c.api_base}/api/v1/silences", json={"matchers": ['model="press"'], "created_by": "ana",
                                                             "comment": "retraining"}, timeout=10)
    assert r.status_code == 400 and "ends_at or duration" in r.json()["error"], r.text

    sid = mw(*base, "--duration", "2h", *api).stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{16}", sid), sid
    (silence,) = json.loads(mw("silence", "list", "--json", *api).stdout)["silences"]
    # To the second: the end is the start (to the nanosecond) plus two hours.
    starts, ends = (datetime.datetime.strptime(silence[k][:19], "%Y-%m-%dT%H:%M:%S") for k in ("starts_at", "ends_at"))
    assert ends - starts == datetime.timedelta(hours=2), silence
    table = mw("silence", "list", *api).stdout.splitlines()
    assert table[0].split() == ["ID", "STATE", "STARTS", "ENDS", "CREATED_BY", "MATCHERS", "COMMENT"], table
    (row,) = [line for line in table if line.startswith(sid)]
    times = re.findall(TABLE_TIME, row)
    assert times == [starts.strftime("%Y-%m-%d %H:%M:%S UTC"), ends.strftime("%Y-%m-%d %H:%M:%S UTC")], row
    assert not re.search(r"\d{2}T\d{2}:", row), f"an RFC 3339 time left in the table: {row}"


def temperature_request(res: dict, readings: dict[str, float]) -> ExportMetricsServiceRequest:
    """Gauge points of `hw.temperature`; the same `res` keeps the same series."""
    now = time.time_ns()
    metric = metrics_pb2.Metric(
        name="hw.temperature",
        unit="Cel",
        gauge=metrics_pb2.Gauge(data_points=[
            metrics_pb2.NumberDataPoint(time_unix_nano=now, as_double=v, attributes=kvs({"hw.id": k}))
            for k, v in readings.items()
        ]),
    )
    return ExportMetricsServiceRequest(resource_metrics=[metrics_pb2.ResourceMetrics(
        resource=resource(res),
        scope_metrics=[metrics_pb2.ScopeMetrics(scope=scope(), metrics=[metric])],
    )])


def test_metric_rule_fires_with_templated_annotations_and_resolves(make_collector, peers, tmp_path):
    port = free_port()
    box = tmp_path / "hook"
    peers.http(port, box)
    c = make_collector(config(
        receivers=f"""
            hook:
              type: webhook
              url: http://127.0.0.1:{port}/machines
        """,
        route="""
            receiver: hook
            group_by: [alertname]
            group_wait: 1s
            group_interval: 1s
        """,
        extra="""
            rules:
              - name: SpindleHot
                metric: {name: hw.temperature, matchers: ['hw_id=~"spindle-.*"'], op: ">", threshold: 80}
                for: 1s
                severity: critical
                labels: {line: line-2}
                annotations:
                  summary: "{{ $labels.hw_id }} at {{ $value }} °C"
        """))
    res = resource_attrs("press-line-2")
    send_ok(c, temperature_request(res, {"spindle-0": 85.5, "spindle-1": 60.0, "coolant-0": 95.0}))
    got = wait_for(lambda: hooks(box), "the SpindleHot notification", collector=c)
    body = json.loads(got[0]["body"])
    assert body["status"] == "firing"
    assert [a["labels"] for a in body["alerts"]] == [{
        "alertname": "SpindleHot", "severity": "critical", "line": "line-2",
        "hw_id": "spindle-0", "metric": "hw.temperature",
    }]
    assert body["alerts"][0]["annotations"]["summary"] == "spindle-0 at 85.5 °C"
    assert body["alerts"][0]["annotations"]["threshold"] == "80"
    send_ok(c, temperature_request(res, {"spindle-0": 70.0}))
    got = wait_for(lambda: len(hooks(box)) >= 2 and hooks(box), "the resolved notification", collector=c)
    resolved = json.loads(got[1]["body"])
    assert resolved["status"] == "resolved"
    assert resolved["alerts"][0]["labels"]["hw_id"] == "spindle-0"


def test_validate_explains_alert_config_mistakes(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(textwrap.dedent("""\
        alerting:
          receivers:
            mail: {type: email, host: 127.0.0.1, from: a@b.example, to: [c@d.example]}
          rules:
            - name: Hot
              metric: {name: hw.temperature, matchers: ['hw_id~"spindle-0"'], op: ">", threshold: 41}
            - name: Drifty
              detections: ['detector="drift"']
              annotations:
                summary: "{{ $lables.model }} drifted"
          route:
            receiver: mail
            routes:
              - matchers: ['severity="critical"']
                receiver: pager
        """))
    p = mw("validate", "--config", str(cfg), check=False)
    assert p.returncode == 1, p.stdout
    err = p.stderr
    assert f"{cfg}:6:" in err and "bad matcher `hw_id~\"spindle-0\"`" in err, err
    assert f"{cfg}:10:" in err and "unknown template expression `$lables.model`" in err, err
    good = tmp_path / "good.yaml"
    good.write_text(textwrap.dedent("""\
        alerting:
          receivers:
            mail: {type: email, host: 127.0.0.1, from: a@b.example, to: [c@d.example]}
          route:
            receiver: mail
            routes:
              - matchers: ['severity="critical"']
                receiver: pager
        """))
    p = mw("validate", "--config", str(good), check=False)
    assert p.returncode == 1
    # At the key that names the unknown receiver, not at `alerting:`.
    assert (f"{good}:8:9: alerting.route.routes[0].receiver: unknown receiver `pager` "
            "(known receivers: mail)") in p.stderr, p.stderr
    fixed = good.read_text().replace("receiver: pager", "receiver: mail")
    good.write_text(fixed)
    mw("validate", "--config", str(good))
    # `for` counts decided windows on rules over verdicts; a metric rule has none.
    windows = tmp_path / "windows.yaml"
    windows.write_text(textwrap.dedent("""\
        alerting:
          builtin:
            drift: {for: 2 windows}
          rules:
            - name: ChurnDrift
              detections: ['detector="drift"', 'model="churn"']
              for: 3 windows
        """))
    mw("validate", "--config", str(windows))
    metric = tmp_path / "metric-windows.yaml"
    metric.write_text(textwrap.dedent("""\
        alerting:
          rules:
            - name: Hot
              metric: {name: hw.temperature, op: ">", threshold: 41}
              for: 3 windows
        """))
    p = mw("validate", "--config", str(metric), check=False)
    assert p.returncode == 1
    assert (f"{metric}:5:7: alerting.rules[0].for: `3 windows` counts decided windows, which only "
            "`detections` rules have") in p.stderr, p.stderr
