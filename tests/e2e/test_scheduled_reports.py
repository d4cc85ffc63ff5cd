"""Scheduled reports and the audit log's OTLP copy, end to end with the real binary.

A report scheduled `every 3s` is made while the SMTP server is down: its e-mail waits in the
alert outbox (the attempt fails, as the audit log says), Millwatch restarts, the SMTP server comes
up, and the report arrives as attachments — once; every report arrives at most once, each made
report is an audit entry with its files, and each delivery one with its recipient. The files are
also written to a directory. Separately, the audit log is copied as OTLP log records through an
OTLP exporter to a second Millwatch, entry by entry with its hash.
"""

from __future__ import annotations

import json
import textwrap
from collections import Counter

import duckdb
import requests

from collector import free_port
from peer_processes import mails, wait_for
from test_audit import MODEL, RECIPIENT, Plant, audit, config

REPORT = "shift"


def report_config(smtp_port: int, directory) -> str:
    return config(smtp_port, textwrap.dedent(f"""\
        reports:
          - name: {REPORT}
            schedule: every 3s
            models: [{MODEL}]
            formats: [json, csv]
            receivers: [ops-mail]
            directory: {directory}
        """))


def subject_of(entry: dict) -> str:
    """The e-mail subject of a `report.generated` entry's report."""
    o = entry["object"]
    return f"Millwatch report {REPORT}: {MODEL} ({o['since'][:19]} to {o['until'][:19]} UTC)"


def test_a_report_made_while_smtp_is_down_arrives_once_after_a_restart(make_collector, peers, tmp_path):
    smtp_port = free_port()
    box = tmp_path / "mail"
    files = tmp_path / "reports"
    c = make_collector(report_config(smtp_port, files))
    Plant(c).send("1.0", "production", 200)

    # Made, queued, tried: the SMTP server is not there.
    first = wait_for(lambda: audit(c, action="report.generated"), "a report made", collector=c)[0]
    assert first["object"]["models"] == [MODEL] and first["model"] == MODEL
    assert [f["filename"].rsplit(".", 1)[1] for f in first["new_value"]["files"]] == ["json", "csv"]
    assert first["new_value"]["queued_for"] == [
        {"receiver": "ops-mail", "channel": "email", "recipient": RECIPIENT}]
    failed = wait_for(lambda: audit(c, action="report.failed"), "the failed attempt", collector=c)
    assert failed[0]["object"]["group"] == first["object"]["group"]
    assert any(files.iterdir())  # the directory copy does not wait for SMTP
    c.stop_clean()

    peers.smtp(smtp_port, box)
    c.start()

    def arrived():
        return [m for m in mails(box) if m["Subject"] == subject_of(first)]

    mail = wait_for(arrived, "the report made during the outage", collector=c)[0]
    assert mail["To"] == RECIPIENT
    attached = {p.get_filename(): p.get_content() for p in mail.iter_attachments()}
    names = [f["filename"] for f in first["new_value"]["files"]]
    assert sorted(attached) == sorted(names)
    report = json.loads(attached[names[0]])
    assert report["model"] == MODEL and report["since"] == first["object"]["since"]
    assert attached[names[1]].splitlines()[0].startswith("section,")
    delivered = wait_for(lambda: audit(c, action="report.delivered"), "report.delivered", collector=c)
    assert delivered[0]["object"]["recipient"] == RECIPIENT and delivered[0]["object"]["channel"] == "email"
    # A report made after the restart arrives too.
    wait_for(lambda: len(mails(box)) >= 2, "a second report", collector=c)
    c.stop_clean()

    subjects = Counter(m["Subject"] for m in mails(box))
    assert max(subjects.values()) == 1, subjects  # nothing sent twice
    with duckdb.connect(str(c.db_path), read_only=True) as db:
        made = [json.loads(o) for (o,) in db.execute(
            "SELECT object FROM audit_log WHERE action = 'report.generated' ORDER BY seq").fetchall()]
        sent = db.execute("SELECT count(*) FROM alert_outbox WHERE group_key LIKE 'report/%' "
                          "AND delivery = 'delivered'").fetchone()[0]
        delivered_entries = db.execute(
            "SELECT count(*) FROM audit_log WHERE action = 'report.delivered'").fetchone()[0]
    made_subjects = {subject_of({"object": o}) for o in made}
    assert set(subjects) <= made_subjects
    assert len(subjects) == sent == delivered_entries
    # Periods follow one another: each report starts where the one before ended.
    assert all(a["until"] == b["since"] for a, b in zip(made, made[1:])), made
    # Every made report's files are in the directory.
    on_disk = {p.name for p in files.iterdir()}
    assert {f"{MODEL}-{REPORT}-" in n for n in on_disk} == {True} and len(on_disk) == 2 * len(made)


def test_the_audit_log_is_copied_as_otlp_log_records(make_collector, tmp_path):
    sink = make_collector(name="sink")
    c = make_collector(config(free_port(), textwrap.dedent(f"""\
        exporters:
          otlp:
            - name: plant-logs
              endpoint: {sink.http_base}
              protocol: http
              signals: [metrics]
              queue: {{dir: {tmp_path / 'otlp-queue'}}}
        """), audit="otlp_exporters: [plant-logs]"), name="source")
    Plant(c).send("1.0", "production", 200)
    r = requests.post(f"{c.api_base}/api/v1/annotations", timeout=10,
                      json={"model": MODEL, "author": "dana", "text": "line 2 back from maintenance"})
    assert r.status_code == 201, r.text
    note = r.json()

    # Each entry is one log record in the sink (the inference events are not logs).
    wait_for(lambda: sink.stats()["tables"]["logs"] >= note["seq"], "the entries up to the annotation in the sink",
             collector=c)
    c.stop_clean()
    sink.stop_clean()
    with duckdb.connect(str(c.db_path), read_only=True) as db:
        entries = db.execute("SELECT seq, action, actor, hash FROM audit_log ORDER BY seq").fetchall()
    with duckdb.connect(str(sink.db_path), read_only=True) as db:
        rows = db.execute("SELECT CAST(attributes AS VARCHAR), body FROM logs "
                          "WHERE event_name = 'millwatch.audit'").fetchall()
    got = {}
    for attrs, body in rows:
        a = json.loads(attrs)
        got.setdefault(int(a["audit.seq"]), (a, body))
    # Every entry up to the annotation (later ones may still be queued at the stop), each with its
    # chain fields, and nothing that is not in the log.
    by_seq = {e[0]: e for e in entries}
    assert set(range(1, note["seq"] + 1)) <= set(got) <= set(by_seq)
    for seq, (a, _) in got.items():
        _, action, actor, hash_ = by_seq[seq]
        assert (a["audit.action"], a["audit.actor"], a["audit.hash"]) == (action, actor, hash_)
    a, body = got[note["seq"]]
    assert a["audit.model"] == MODEL and "line 2 back from maintenance" in str(body)
