"""Case 5: SIGKILL while clients send; after a restart on the same data dir every acknowledged
request is entirely in DuckDB, with every group committed before its acknowledgement and with
the journal; a journal damaged on disk loses only the requests it hit, keeps the evidence and
tells the operator. Case 6: a tiny queue refuses with 429 / UNAVAILABLE and a retry hint, and
nothing acknowledged is lost; no refused request of any signal (logs, metrics, traces) is
stored."""

from __future__ import annotations

import threading
import time

import grpc
import pytest
import requests
from google.rpc import code_pb2, error_details_pb2, status_pb2

from otlp import GRPC_METHODS, RESPONSE_TYPES, signal_of
from rawhttp import PROTOBUF
from storecheck import StoreChecker, count_rows
from traffic import Traffic

SIGNAL_PATHS = {"logs": "/v1/logs", "metrics": "/v1/metrics", "traces": "/v1/traces"}


class Sender(threading.Thread):
    """Sends unique requests in a loop, bounded in count and time, and sorts them by answer."""

    def __init__(self, collector, name: str, protocol: str, stop: threading.Event,
                 max_requests: int = 400, deadline_s: float = 90, events_per_request: int = 100):
        super().__init__(name=name, daemon=True)
        self.c = collector
        self.protocol = protocol
        self.stop_event = stop
        self.max_requests = max_requests
        self.deadline = time.monotonic() + deadline_s
        self.events = events_per_request
        self.traffic = Traffic(name)
        self.acked: list = []
        self.refused: list = []  # (request, status, retry hint, message)
        self.failed: list = []  # (request, error): transport errors, e.g. the process was killed
        self.unexpected: list = []

    def next_request(self, i: int):
        kind = i % 4
        if kind == 2:
            return self.traffic.metrics(20)
        if kind == 3:
            return self.traffic.spans(20)
        return self.traffic.inferences(self.events, feedback=(kind == 0))

    def run(self) -> None:
        channel = grpc.insecure_channel(self.c.grpc_endpoint) if self.protocol == "grpc" else None
        session = requests.Session()
        try:
            for i in range(self.max_requests):
                if self.stop_event.is_set() or time.monotonic() > self.deadline:
                    return
                req = self.next_request(i)
                try:
                    if channel is not None:
                        self._send_grpc(channel, req)
                    else:
                        self._send_http(session, req)
                except (requests.RequestException, ConnectionError) as e:
                    self.failed.append((req, repr(e)))
                if self.refused and self.refused[-1][0] is req:
                    time.sleep(0.05)  # a short pause, as a client backing off would (shorter than the hint)
        finally:
            session.close()
            if channel is not None:
                channel.close()

    def _send_http(self, session, req) -> None:
        signal = signal_of(req)
        r = session.post(f"{self.c.http_base}{SIGNAL_PATHS[signal]}", data=req.SerializeToString(),
                         headers={"Content-Type": PROTOBUF}, timeout=60)
        if r.status_code == 200:
            resp = RESPONSE_TYPES[signal]()
            resp.ParseFromString(r.content)
            self.acked.append(req)
        elif r.status_code in (429, 503):
            st = status_pb2.Status()
            st.ParseFromString(r.content)
            self.refused.append((req, r.status_code, r.headers.get("Retry-After"), (st.code, st.message)))
        else:
            self.unexpected.append((req, r.status_code, r.content[:300]))

    def _send_grpc(self, channel, req) -> None:
        signal = signal_of(req)
        call = channel.unary_unary(GRPC_METHODS[signal], request_serializer=None, response_deserializer=None)
        try:
            call(req.SerializeToString(), timeout=60)
            self.acked.append(req)
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.UNAVAILABLE and retry_info(e) is not None:
                self.refused.append((req, "UNAVAILABLE", retry_info(e), (code_pb2.UNAVAILABLE, e.details())))
            else:
                # after SIGKILL: UNAVAILABLE without RetryInfo (connection refused) and the like
                self.failed.append((req, f"{e.code()}: {e.details()}"))


def retry_info(e: grpc.RpcError):
    """The google.rpc.RetryInfo detail of a gRPC error, if the server sent one."""
    for key, value in (e.trailing_metadata() or ()):
        if key == "grpc-status-details-bin":
            st = status_pb2.Status()
            st.ParseFromString(value)
            for d in st.details:
                if d.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                    info = error_details_pb2.RetryInfo()
                    d.Unpack(info)
                    return info
    return None


def run_senders(collector, protocols: list[str], **kw) -> tuple[list[Sender], threading.Event]:
    stop = threading.Event()
    senders = [Sender(collector, f"s{i}-{p}", p, stop, **kw) for i, p in enumerate(protocols)]
    for s in senders:
        s.start()
    return senders, stop


STORE_CONFIGS = {
    # No journal: every group of requests is committed to DuckDB before it is acknowledged.
    "commit-per-group": """\
store:
  journal: { enabled: false }
""",
    # Every request journaled and acknowledged before its DuckDB commit, and no commit for an
    # hour: what the kill leaves is in the journal only, and the restart must commit it.
    "journal": """\
store:
  commit_interval: 1h
  journal: { above_rows_per_second: 0 }
""",
}


@pytest.mark.parametrize("store", sorted(STORE_CONFIGS))
def test_sigkill_while_sending_loses_no_acknowledged_request(make_collector, store):
    c = make_collector(config=STORE_CONFIGS[store], name=f"crash-{store}")
    senders, stop = run_senders(c, ["http", "http", "http", "grpc"], events_per_request=150)
    # kill once a fair amount is acknowledged and requests are in flight
    deadline = time.monotonic() + 60
    while sum(len(s.acked) for s in senders) < 30 and time.monotonic() < deadline:
        time.sleep(0.02)
    acked_before_kill = sum(len(s.acked) for s in senders)
    c.kill()
    stop.set()
    for s in senders:
        s.join(timeout=120)
        assert not s.is_alive(), f"sender {s.name} did not stop"
    assert acked_before_kill >= 30, f"only {acked_before_kill} requests acknowledged in 60 s"
    for s in senders:
        assert not s.unexpected, f"{s.name}: unexpected answers {[u[1:] for u in s.unexpected[:3]]}"

    # restart on the same data dir: the store must open (WAL replay) and keep serving
    c.start()
    after = Traffic("after-restart")
    r = requests.post(f"{c.http_base}/v1/logs", data=after.inferences(5).SerializeToString(),
                      headers={"Content-Type": PROTOBUF}, timeout=60)
    assert r.status_code == 200, r.content[:300]
    c.stop_clean()
    restart_log = c.stderr_paths[-1].read_text(errors="replace")
    replayed = "committed the journal's acknowledged requests" in restart_log
    if store == "journal":
        assert replayed, restart_log[-3000:]
    else:
        # the journal was never opened: what was acknowledged was in DuckDB already
        assert not (c.data_dir / "journal").exists(), "commit-per-group ran with the journal on"
        assert not replayed, restart_log[-3000:]

    acked = [req for s in senders for req in s.acked]
    with c.db() as db:
        checker = StoreChecker(db)
        for req in [*acked, *after.made]:
            checker.check(req)
        # every acknowledged request is whole: each request had a fixed number of items
        for table in ("inferences", "inference_features", "feedback", "metric_points", "spans"):
            assert count_rows(db, table) > 0
    failed = sum(len(s.failed) for s in senders)
    assert failed > 0, "the kill interrupted no request: nothing was in flight"
    print(f"acknowledged {len(acked)} requests ({acked_before_kill} before the kill); {failed} failed")


# As the "journal" store config, and the collector's own alerts fire at once. No retention:
# its first pass runs at start and commits what the journal holds, which would take the first
# requests out of the segment when it lands after them.
DAMAGE_CONFIG = STORE_CONFIGS["journal"] + """\
  retention: null
alerting:
  builtin:
    collector: {for: 0s}
"""


def record_starts(segment: bytes) -> list[int]:
    """Where each record of a journal segment starts: `[u32 length][u32 CRC][payload]`."""
    starts, at = [], 0
    while at + 8 <= len(segment):
        starts.append(at)
        at += 8 + int.from_bytes(segment[at:at + 4], "little")
    return starts


def own_sample(c, name: str) -> float | None:
    text = requests.get(f"{c.api_base}/metrics", timeout=10).text
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def journal_alerts(c) -> list[dict]:
    r = requests.get(f"{c.api_base}/api/v1/alerts", timeout=10)
    assert r.status_code == 200, r.text
    return [a for a in r.json()["alerts"] if a["labels"].get("alertname") == "MillwatchJournalDamaged"]


def test_journal_damage_keeps_every_readable_request_and_tells_the_operator(make_collector):
    c = make_collector(config=DAMAGE_CONFIG, name="journal-damage")
    traffic = Traffic("damage")
    for _ in range(5):
        r = requests.post(f"{c.http_base}/v1/logs", data=traffic.inferences(4).SerializeToString(),
                          headers={"Content-Type": PROTOBUF}, timeout=60)
        assert r.status_code == 200, r.content[:300]
    c.kill()  # acknowledged from the journal, none committed (commit_interval: 1h)

    journal = c.data_dir / "journal"
    [segment] = sorted(journal.glob("*.journal"))
    data = bytearray(segment.read_bytes())
    starts = record_starts(bytes(data))
    assert len(starts) == 5, starts
    # A disk error in the middle of the third request's record; the two after it are whole.
    data[(starts[2] + starts[3]) // 2] ^= 0xFF
    segment.write_bytes(bytes(data))

    c.start()
    kept = journal / "quarantine" / segment.name
    log = c.stderr_paths[-1].read_text(errors="replace")
    assert "1 acknowledged request (journal record seq 3) could not be read and is lost" in log, log[-3000:]
    assert str(kept) in log, log[-3000:]
    assert kept.read_bytes() == bytes(data), "the damaged segment is kept as it was found"
    assert len(list(journal.glob("*.journal"))) == 1, "only the new, empty segment is left"
    assert own_sample(c, "millwatch_store_journal_lost_records_total") == 1
    assert own_sample(c, "millwatch_store_journal_quarantined_segments") == 1
    stats = c.stats()["journal"]
    assert (stats["lost_records"], stats["quarantined_segments"]) == (1, 1), stats

    deadline = time.monotonic() + 30
    while not journal_alerts(c) and time.monotonic() < deadline:
        time.sleep(0.2)
    [alert] = journal_alerts(c)
    assert alert["value"] == 1, alert
    assert "journal record seq 3" in alert["annotations"]["description"], alert
    assert str(kept) in alert["annotations"]["description"], alert

    # Once inspected and removed, the alert resolves.
    kept.unlink()
    deadline = time.monotonic() + 30
    while journal_alerts(c) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not journal_alerts(c), "still active after the kept segment was removed"
    assert own_sample(c, "millwatch_store_journal_quarantined_segments") == 0
    c.stop_clean()

    with c.db() as db:
        checker = StoreChecker(db)
        lost = traffic.made[2]
        for req in traffic.made[:2] + traffic.made[3:]:
            checker.check(req)
        ids = sorted({kv.value.string_value for rl in lost.resource_logs for sl in rl.scope_logs
                      for lr in sl.log_records for kv in lr.attributes if kv.key == "ml.inference.id"})
        assert len(ids) == 4, ids
        placeholders = ", ".join("?" for _ in ids)
        [(n,)] = db.execute(f"SELECT count(*) FROM inferences WHERE inference_id IN ({placeholders})",
                            ids).fetchall()
        assert n == 0, "the lost request's events were not made up"


OVERLOAD_CONFIG = """\
pipeline:
  max_queued_rows: 1
  retry_after: 2s
"""


def refused_by_reason(collector, protocol: str) -> dict[str, dict[str, int]]:
    """/api/v1/stats: the refused requests of each signal by reason, for one protocol."""
    name = "grpc" if protocol == "grpc" else "http_protobuf"
    return {r["signal"]: r["requests_refused"] for r in collector.stats()["receivers"] if r["protocol"] == name}


def stored_ids(db) -> dict[str, set[str]]:
    """What identifies each stored item of Traffic's requests, by signal."""
    def one(sql: str) -> set[str]:
        return {r[0] for r in db.execute(sql).fetchall()}

    return {
        "logs": one("SELECT inference_id FROM inferences") | one("SELECT inference_id FROM feedback"),
        "metrics": one("SELECT coalesce(attributes->>'hw.id', attributes->>'machine.id') FROM metric_series")
        | one("SELECT coalesce(s.attributes->>'hw.id', s.attributes->>'machine.id') "
              "FROM metric_points p JOIN metric_series s USING (series_id)"),
        "traces": one("SELECT span_id FROM spans"),
    }


def item_ids(req) -> set[str]:
    """What identifies each item of a Traffic request (see stored_ids)."""
    signal = signal_of(req)
    if signal == "logs":
        return {kv.value.string_value for rl in req.resource_logs for sl in rl.scope_logs for lr in sl.log_records
                for kv in lr.attributes if kv.key == "ml.inference.id"}
    if signal == "metrics":
        return {kv.value.string_value for rm in req.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
                for p in getattr(m, m.WhichOneof("data")).data_points
                for kv in p.attributes if kv.key in ("hw.id", "machine.id")}
    return {sp.span_id.hex() for rs in req.resource_spans for ss in rs.scope_spans for sp in ss.spans}


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_tiny_queue_refuses_with_retry_hint_and_loses_nothing(make_collector, protocol):
    c = make_collector(config=OVERLOAD_CONFIG, name=f"overload-{protocol}")
    senders, stop = run_senders(c, [protocol] * 6, max_requests=60, deadline_s=60, events_per_request=200)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and any(s.is_alive() for s in senders):
        refused_signals = {signal_of(x[0]) for s in senders for x in list(s.refused)}
        if refused_signals == {"logs", "metrics", "traces"} and sum(len(s.acked) for s in senders) >= 10:
            break
        time.sleep(0.05)
    stop.set()
    for s in senders:
        s.join(timeout=120)
    refused = [x for s in senders for x in s.refused]
    acked = [req for s in senders for req in s.acked]
    for s in senders:
        assert not s.unexpected, f"{s.name}: unexpected answers {[u[1:] for u in s.unexpected[:3]]}"
        assert not s.failed, f"{s.name}: transport errors {[f[1] for f in s.failed[:3]]}"
    assert acked, "nothing was acknowledged"
    by_signal = {sig: [x for x in refused if signal_of(x[0]) == sig] for sig in ("logs", "metrics", "traces")}
    assert all(by_signal.values()), (
        f"a queue of 1 row refused {({k: len(v) for k, v in by_signal.items()})} of each signal "
        f"while acknowledging {len(acked)} concurrent requests"
    )
    for _, status, hint, (code, message) in refused:
        # README's "What comes back": a full queue is 429 with Retry-After / UNAVAILABLE with
        # RetryInfo; 503 is for a store that cannot commit, which this is not.
        if protocol == "http":
            assert status == 429, f"{status}: {message}"
            assert hint is not None and hint.isdigit() and int(hint) == 2, f"Retry-After: {hint!r}"
        else:
            assert hint.retry_delay.seconds == 2 and hint.retry_delay.nanos == 0, f"RetryInfo: {hint}"
        assert code == code_pb2.UNAVAILABLE and "the ingest queue is full" in message, (code, message)
    # the collector counted each refusal as a full queue, and nothing else was refused
    counted = refused_by_reason(c, protocol)
    for signal, items in by_signal.items():
        reasons = counted.get(signal, {})
        assert reasons.get("queue_full") == len(items), f"{signal}: {reasons}, {len(items)} refused"
        assert sum(reasons.values()) == len(items), f"{signal}: {reasons}"
    c.stop_clean()
    with c.db() as db:
        StoreChecker(db).check_all(acked)
        stored = stored_ids(db)
    for signal, items in by_signal.items():
        refused_ids = set().union(*(item_ids(req) for req, *_ in items))
        assert refused_ids, f"{signal}: the refused requests carry no ids"
        assert refused_ids.isdisjoint(stored[signal]), (
            f"{len(refused_ids & stored[signal])} items of refused {signal} requests were stored"
        )
    print(f"{protocol}: acknowledged {len(acked)} requests, refused "
          f"{ {k: len(v) for k, v in by_signal.items()} }")
