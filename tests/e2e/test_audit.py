"""The audit trail and reports end to end, with the real binary: two versions of one model on two
environments over OTLP, a rollout, one shifted feature, an SMTP sink receiving the drift alert, a
silence made through the API, an `ml.deployment` event and a person's annotation. Then: the
registry lists both versions where they ran; the audit log holds the deployments, the drift
start, the alert, the e-mail delivery with its recipient, the silence; the report's numbers equal
the same figures computed here with stock DuckDB; a changed audit row is named by `millwatch
audit verify`, a deleted tail is caught against an exported head; audit rows survive a retention
that deletes every inference event; the HTML report renders in headless Chromium.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import textwrap
import time
from pathlib import Path

import duckdb
import pytest
import requests

from collector import free_port, millwatch_bin
from otlp import log_record, logs_request
from peer_processes import mails, wait_for
from rawhttp import send_ok
from test_alerting import quantiles

MODEL = "press-vision"
BASELINE = 200
WINDOW = 200
FEATURES = 3
SHIFTED = "f01"
RECIPIENT = "oncall@plant.example"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def config(smtp_port: int, extra: str = "", detection: str = "", audit: str = "") -> str:
    return textwrap.dedent(f"""\
        detection:
          baseline_events: {BASELINE}
          window_events: {WINDOW}
          min_samples: 30
          poll_interval: 100ms
          {detection}
        audit:
          poll_interval: 200ms
          {audit}
        alerting:
          evaluation_interval: 200ms
          builtin:
            data_quality: {{enabled: false}}
            collector: {{enabled: false}}
          delivery: {{initial_backoff: 500ms, max_backoff: 3s}}
          receivers:
            ops-mail:
              type: email
              host: 127.0.0.1
              port: {smtp_port}
              tls: none
              from: millwatch@plant.example
              to: [{RECIPIENT}]
          route:
            receiver: ops-mail
            group_by: [alertname, model]
            group_wait: 1s
            group_interval: 2s
        """) + extra


class Plant:
    """Inference events of MODEL from hosts of two environments, over OTLP/HTTP."""

    PLACES = {
        "production": {"host.name": "prod-01", "site.name": "plant-lyon", "site.line": "line-2"},
        "staging": {"host.name": "stg-01", "site.name": "plant-lyon", "site.line": "lab"},
    }

    def __init__(self, collector):
        self.c = collector
        self.t = time.time_ns() - 3_600_000_000_000
        self.sent: dict[tuple[str, str], int] = {}
        self.i = 0

    def resource(self, env: str) -> dict:
        return {"service.name": "press-vision-svc", "deployment.environment.name": env,
                "service.instance.id": f"{env}-1", **self.PLACES[env]}

    def send(self, version: str, env: str, n: int, shift: dict[str, float] | None = None) -> None:
        shift = shift or {}
        draws = quantiles(n)
        records = []
        for k in range(n):
            attrs = {"ml.model.name": MODEL, "ml.model.version": version,
                     "ml.inference.id": f"{self.i}", "ml.prediction": float(draws[k] > 0)}
            for f in range(FEATURES):
                name = f"f{f:02d}"
                attrs[f"ml.feature.{name}"] = draws[(k + 7 * f) % n] + shift.get(name, 0.0)
            records.append(log_record(self.t, attrs, event_name="ml.inference"))
            self.t += 1_000_000
            self.i += 1
        for chunk in range(0, n, 100):
            send_ok(self.c, logs_request(records[chunk:chunk + 100], self.resource(env)))
        self.sent[(version, env)] = self.sent.get((version, env), 0) + n

    def declare(self, version: str, env: str, actor: str, ticket: str) -> None:
        attrs = {"ml.model.name": MODEL, "ml.model.version": version, "ml.deployment.actor": actor,
                 "ml.deployment.reason": "scheduled rollout", "ml.deployment.change_ticket": ticket}
        send_ok(self.c, logs_request([log_record(self.t, attrs, event_name="ml.deployment")],
                                     self.resource(env)))


def audit(c, **params) -> list[dict]:
    entries, url = [], f"{c.api_base}/api/v1/audit"
    while url:
        r = requests.get(url, params=params, timeout=10)
        assert r.status_code == 200, r.text
        body = r.json()
        entries += body["entries"]
        url, params = (f"{c.api_base}{body['next']}", None) if body["next"] else (None, None)
    return entries


def mw(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([millwatch_bin(), *args], capture_output=True, text=True, timeout=120)


def canonical_hash(row: tuple) -> str:
    """The documented hash, from a row read with stock DuckDB."""
    (seq, time_text, actor, source, action, model, obj, old, new, reason, prev, _) = row
    text = json.dumps([seq, time_text, actor, source, action, model, obj, old, new, reason, prev],
                      separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


AUDIT_ROWS = """SELECT seq, strftime(time, '%Y-%m-%dT%H:%M:%S.%nZ'), actor, source, action, model, object,
                       old_value, new_value, reason, prev_hash, hash FROM audit_log ORDER BY seq"""


def test_registry_audit_trail_report_and_tamper_evidence(make_collector, peers, tmp_path):
    smtp_port = free_port()
    box = tmp_path / "mail"
    peers.smtp(smtp_port, box)
    c = make_collector(config(smtp_port))
    plant = Plant(c)
    # v1 everywhere, then a window of v1 with one feature shifted, then v2 rolled out.
    plant.send("1.0", "production", BASELINE)
    plant.send("1.0", "staging", WINDOW, shift={SHIFTED: 5.0})
    plant.declare("2.0", "staging", "release-bot", "CHG-1234")
    plant.send("2.0", "staging", BASELINE)
    plant.send("2.0", "production", WINDOW)

    mail = wait_for(lambda: mails(box), "the drift alert e-mail", collector=c)
    assert mail[0]["To"] == RECIPIENT
    r = requests.post(f"{c.api_base}/api/v1/silences", timeout=10, json={
        "matchers": [f'model="{MODEL}"'], "duration": "2h", "created_by": "alice",
        "comment": "retraining press-vision"})
    assert r.status_code in (200, 201), r.text
    silence_id = r.json()["silenceID"]
    p = mw("annotate", "--api", c.api_base, "--model", MODEL, "--version", "2.0",
           "--author", "bob", "--text", "v2 approved by QA")
    assert p.returncode == 0, p.stderr

    def has(action: str, pred=lambda e: True):
        return [e for e in audit(c, action=action) if pred(e)]

    deployments = wait_for(lambda: len(has("deployment")) >= 5 and has("deployment"),
                           "five deployment entries", collector=c)
    by_place = {(e["object"]["version"], e["object"]["environment"], e["actor"]): e for e in deployments}
    assert set(by_place) == {("1.0", "production", "system"), ("1.0", "staging", "system"),
                             ("2.0", "staging", "system"), ("2.0", "production", "system"),
                             ("2.0", "staging", "release-bot")}, by_place.keys()
    rollout = by_place[("2.0", "production", "system")]
    assert rollout["old_value"]["version"] == "1.0" and rollout["object"]["host"] == "prod-01"
    assert rollout["source"] == "prod-01"
    declared = by_place[("2.0", "staging", "release-bot")]
    assert declared["object"]["change_ticket"] == "CHG-1234" and declared["reason"] == "scheduled rollout"

    drift = wait_for(lambda: has("drift.started", lambda e: e["object"]["feature"] == SHIFTED),
                     "drift.started for the shifted feature", collector=c)
    assert drift[0]["object"] == {"model": MODEL, "version": "1.0", "feature": SHIFTED, "detector": "drift"}
    assert not has("drift.started", lambda e: e["object"]["feature"] not in (SHIFTED, "ml.prediction")
                   and e["object"]["detector"] == "drift")
    fired = wait_for(lambda: has("alert.fired", lambda e: e["model"] == MODEL), "alert.fired", collector=c)
    assert fired[0]["object"]["labels"]["alertname"] == "MillwatchDrift"
    delivered = wait_for(lambda: has("notification.delivered"), "notification.delivered", collector=c)
    assert delivered[0]["object"]["channel"] == "email"
    assert delivered[0]["object"]["recipient"] == RECIPIENT
    assert delivered[0]["object"]["receiver"] == "ops-mail"
    silence = wait_for(lambda: has("silence.created"), "silence.created", collector=c)
    assert silence[0]["actor"] == "alice" and silence[0]["reason"] == "retraining press-vision"
    assert silence[0]["model"] == MODEL
    # Who ended the silence early, and why, is the expiry's actor and reason.
    p = mw("silence", "expire", silence_id, "--api", c.api_base, "--author", "carol", "--comment", "retrained")
    assert p.returncode == 0, p.stderr
    expired = wait_for(lambda: has("silence.expired"), "silence.expired", collector=c)
    assert [(e["actor"], e["reason"], e["object"]["silence"]) for e in expired] == [("carol", "retrained", silence_id)]
    note = has("annotation")
    assert [(n["actor"], n["reason"], n["object"]["version"]) for n in note] == [("bob", "v2 approved by QA", "2.0")]
    # The address the annotation came from (the CLI, on this host).
    assert note[0]["source"] == "127.0.0.1", note[0]
    assert has("config.loaded") and has("audit.head")

    registry = requests.get(f"{c.api_base}/api/v1/registry", timeout=10).json()
    placed = {(p["version"], p["environment"], p["host"], p["line"]): p["events"]
              for p in registry["placements"] if p["model"] == MODEL}
    assert placed == {("1.0", "production", "prod-01", "line-2"): BASELINE,
                      ("1.0", "staging", "stg-01", "lab"): WINDOW,
                      ("2.0", "staging", "stg-01", "lab"): BASELINE,
                      ("2.0", "production", "prod-01", "line-2"): WINDOW}
    assert len([d for d in registry["deployments"] if d["model"] == MODEL]) == 5

    # The report, made by the running collector, and the chain as the API sees it.
    report_path = tmp_path / "report.json"
    p = mw("report", "--api", c.api_base, "--model", MODEL, "--format", "json", "--out", str(report_path))
    assert p.returncode == 0, p.stderr
    report = json.loads(report_path.read_text())
    html_path = tmp_path / "report.html"
    p = mw("report", "--api", c.api_base, "--model", MODEL, "--format", "html", "--out", str(html_path))
    assert p.returncode == 0, p.stderr
    verify = requests.get(f"{c.api_base}/api/v1/audit/verify", timeout=10).json()
    assert verify["ok"], verify
    csv_text = requests.get(f"{c.api_base}/api/v1/audit", headers={"Accept": "text/csv"}, timeout=10).text
    assert csv_text.splitlines()[0].startswith("seq,time,actor,source,action,model,object")
    c.stop_clean()

    # Every figure of the report, again with stock DuckDB over the store.
    with duckdb.connect(str(c.db_path), read_only=True) as db:
        versions = dict(db.execute("SELECT version, count(*) FROM inferences WHERE model = ? GROUP BY 1",
                                   [MODEL]).fetchall())
        assert {v["version"]: v["events"] for v in report["versions"]} == versions == {"1.0": 400, "2.0": 400}
        drift_rows = db.execute("""
            SELECT feature, count(DISTINCT (time, version)), count(DISTINCT (time, version)) FILTER (WHERE drifted),
                   max(statistic), count(*)
            FROM detections WHERE model = ? AND detector = 'drift' AND feature <> 'ml.prediction'
            GROUP BY feature ORDER BY 3 DESC, 1""", [MODEL]).fetchall()
        got = [(f["feature"], f["windows"], f["drifted_windows"], f["max_statistic"], len(f["results"]))
               for f in report["feature_drift"]]
        assert got == [(f, w, d, pytest.approx(s, rel=1e-12), n) for f, w, d, s, n in drift_rows]
        assert got[0][0] == SHIFTED and got[0][2] >= 1 and all(g[2] == 0 for g in got[1:])
        stats = db.execute("""SELECT statistic, p_value FROM detections WHERE model = ? AND detector = 'drift'
                              AND feature = ? ORDER BY time, version, test""", [MODEL, SHIFTED]).fetchall()
        assert [(w["statistic"], w["p_value"]) for w in report["feature_drift"][0]["results"]] == \
            [(pytest.approx(s, rel=1e-12), pytest.approx(p, rel=1e-12, abs=1e-300) if p is not None else None)
             for s, p in stats]
        pred = db.execute("SELECT count(*) FROM detections WHERE model = ? AND feature = 'ml.prediction' "
                          "AND detector = 'drift'", [MODEL]).fetchone()[0]
        assert len(report["prediction_drift"]) == pred
        head = report["audit_verification"]["head"]["seq"]
        in_report = db.execute("SELECT count(*) FROM audit_log WHERE model = ? AND seq <= ?",
                               [MODEL, head]).fetchone()[0]
        assert len(report["audit"]) == in_report
        assert report["audit_verification"]["ok"]
        deployed = db.execute("SELECT count(*) FROM audit_log WHERE model = ? AND action = 'deployment' AND seq <= ?",
                              [MODEL, head]).fetchone()[0]
        assert len(report["deployments"]) == deployed == 5
        rows = db.execute(AUDIT_ROWS).fetchall()
    # The hash is what the documentation says it is: recomputed here, chained.
    prev = "0" * 64
    for row in rows:
        assert row[10] == prev and canonical_hash(row) == row[11], row
        prev = row[11]

    html = html_path.read_text()
    assert f'id="chart-{SHIFTED}"' in html and "http://" not in html and "https://" not in html
    render_in_chromium(html_path, tmp_path)

    # Tampering: one changed row is named, by number.
    p = mw("audit", "verify", "--data-dir", str(c.data_dir))
    assert p.returncode == 0, p.stdout + p.stderr
    target = drift[0]["seq"]
    with duckdb.connect(str(c.db_path)) as db:
        original = db.execute("SELECT new_value FROM audit_log WHERE seq = ?", [target]).fetchone()[0]
        db.execute("UPDATE audit_log SET new_value = replace(new_value, 'true', 'false') WHERE seq = ?", [target])
    p = mw("audit", "verify", "--data-dir", str(c.data_dir))
    assert p.returncode == 1, p.stdout + p.stderr
    assert f"failed at entry {target}:" in p.stderr and "was changed" in p.stderr, p.stderr
    with duckdb.connect(str(c.db_path)) as db:
        db.execute("UPDATE audit_log SET new_value = ? WHERE seq = ?", [original, target])

    # A deleted tail passes on its own but not against the exported head.
    p = mw("audit", "head", "--data-dir", str(c.data_dir))
    assert p.returncode == 0, p.stderr
    exported = tmp_path / "head.json"
    exported.write_text(p.stdout)
    last = json.loads(p.stdout)["seq"]
    with duckdb.connect(str(c.db_path)) as db:
        db.execute("DELETE FROM audit_log WHERE seq > ?", [last - 3])
    assert mw("audit", "verify", "--data-dir", str(c.data_dir)).returncode == 0
    p = mw("audit", "verify", "--data-dir", str(c.data_dir), "--head", str(exported))
    assert p.returncode == 1
    assert f"failed at entry {last - 2}: the exported head is entry {last}" in p.stderr, p.stderr

    # The export names the same entries as the table.
    out = tmp_path / "audit.csv"
    p = mw("audit", "export", "--data-dir", str(c.data_dir), "--format", "csv", "--out", str(out))
    assert p.returncode == 0, p.stderr
    assert len(out.read_text().strip().splitlines()) == 1 + (last - 3)


def render_in_chromium(html: Path, tmp_path: Path) -> None:
    """The report opens in headless Chromium with nothing fetched and no console error; the
    screenshot is kept beside the test's files."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} not found: apt-get install chromium")
    shot = tmp_path / "report.png"
    log = tmp_path / "chromium.log"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--enable-logging=stderr", "--v=0", f"--user-data-dir={tmp_path / 'chromium-profile'}",
           "--window-size=1200,3000", f"--screenshot={shot}", html.as_uri()]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    log.write_text(p.stdout + p.stderr)
    assert p.returncode == 0 and shot.exists() and shot.stat().st_size > 10_000, p.stderr[-3000:]
    console = [l for l in p.stderr.splitlines() if "CONSOLE" in l or "Failed to load resource" in l]
    assert not console, console
    artefacts = os.environ.get("MILLWATCH_ARTEFACTS")
    if artefacts:
        Path(artefacts).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(artefacts) / "audit-report.png")


def test_audit_rows_survive_a_retention_that_deletes_every_inference(make_collector, tmp_path):
    port = free_port()
    c = make_collector(config(port), name="keep")
    plant = Plant(c)
    plant.send("1.0", "production", BASELINE)
    wait_for(lambda: audit(c, action="deployment"), "the deployment entry", collector=c)
    c.stop_clean()
    # Events are an hour old: a 30-minute data retention deletes them all.
    c.config_path.write_text(config(port, "store:\n  retention: 30m\n  retention_interval: 1s\n"))
    c.start()
    wait_for(lambda: c.stats()["tables"]["inferences"] == 0, "retention to delete every inference", collector=c)
    entries = audit(c)
    assert [e["object"]["version"] for e in entries if e["action"] == "deployment"] == ["1.0"]
    assert requests.get(f"{c.api_base}/api/v1/audit/verify", timeout=10).json()["ok"]
    c.stop_clean()
    with duckdb.connect(str(c.db_path), read_only=True) as db:
        assert db.execute("SELECT count(*) FROM inferences").fetchone()[0] == 0
        assert db.execute("SELECT count(*) FROM audit_log WHERE action = 'deployment'").fetchone()[0] == 1
        changed = db.execute("SELECT reason FROM audit_log WHERE action = 'config.loaded' ORDER BY seq").fetchall()
    assert changed[-1][0].startswith("changed since the previous start: ")
    assert "store.retention, store.retention_interval" in changed[-1][0], changed
    p = mw("audit", "verify", "--data-dir", str(c.data_dir))
    assert p.returncode == 0, p.stderr


def test_late_labels_show_in_the_report_and_the_head_is_written_every_interval(make_collector, tmp_path):
    """Labels (`ml.feedback`) that arrive after their window was judged show in the report as
    the window's realised performance, equal to what stock DuckDB computes from the store; the
    chain's head is written every `audit.head_interval` (here 1s rather than an hour), each
    naming the entry before it."""
    c = make_collector(config(free_port(), detection="performance_interval: 500ms", audit="head_interval: 1s"),
                       name="late")
    plant = Plant(c)
    plant.send("1.0", "production", BASELINE)
    plant.send("1.0", "production", WINDOW)

    def report() -> dict:
        r = requests.get(f"{c.api_base}/api/v1/reports/{MODEL}", params={"format": "json"}, timeout=30)
        assert r.status_code == 200, r.text
        return r.json()

    # The window is judged (drift) before any label exists: no performance yet.
    wait_for(lambda: len(report()["feature_drift"]) == FEATURES, "the window's drift results", collector=c)
    assert report()["performance"] == []
    # Then the labels, late: the baseline's all right, the window's wrong for every 4th event.
    labels, draws = [], quantiles(WINDOW)
    assert BASELINE == WINDOW  # Plant.send drew both periods' predictions from quantiles(200)
    for i in range(BASELINE + WINDOW):
        predicted = float(draws[i % WINDOW] > 0)
        wrong = i >= BASELINE and i % 4 == 0
        labels.append(log_record(plant.t, {"ml.model.name": MODEL, "ml.inference.id": f"{i}",
                                           "ml.label": 1.0 - predicted if wrong else predicted},
                                 event_name="ml.feedback"))
    for chunk in range(0, len(labels), 100):
        send_ok(c, logs_request(labels[chunk:chunk + 100], plant.resource("production")))

    def accuracy():
        rows = [w for w in report()["performance"] if w["feature"] == "accuracy" and w["detector"] == "performance"]
        return rows if rows and rows[-1]["statistic"] is not None else None

    shown = wait_for(accuracy, "the window's accuracy in the report", collector=c)
    heads = wait_for(lambda: (h := audit(c, action="audit.head")) and len(h) >= 3 and h,
                     "three audit.head entries", collector=c)
    c.stop_clean()

    with duckdb.connect(str(c.db_path), read_only=True) as db:
        window = db.execute("""SELECT first_event_id, last_event_id FROM detections
                               WHERE model = ? AND detector = 'performance' AND feature = 'accuracy'
                               ORDER BY time DESC LIMIT 1""", [MODEL]).fetchone()
        right, total = db.execute("""
            SELECT count(*) FILTER (WHERE i.prediction = f.label), count(*)
            FROM inferences i JOIN feedback f ON f.inference_id = i.inference_id
            WHERE i.model = ? AND i.event_id BETWEEN ? AND ?""", [MODEL, *window]).fetchone()
        rows = db.execute(AUDIT_ROWS).fetchall()
    assert total == WINDOW and right == WINDOW - WINDOW // 4
    assert shown[-1]["statistic"] == pytest.approx(right / total, rel=1e-12)
    # Each head entry names the entry written just before it.
    by_seq = {r[0]: r for r in rows}
    for h in heads:
        named = h["new_value"]
        if named["seq"] > 0:
            assert by_seq[named["seq"]][11] == named["hash"] and named["seq"] == h["seq"] - 1, h
