"""Case 4: bad input gets the status OTLP specifies, with a readable message; the server keeps
serving, and what was stored before (and good items of the same request) is intact."""

from __future__ import annotations

import gzip
import random

import grpc
import pytest
from google.protobuf.message import DecodeError

import requests

from otlp import REQUEST_TYPES, inference_attrs, kvs, log_record, logs_request
from rawhttp import JSON, PROTOBUF, grpc_export, grpc_raw, post, post_streaming, send, send_ok
from storecheck import StoreChecker, count_rows
from traffic import RESOURCE, Traffic

MIB = 1 << 20
SIGNALS = ["logs", "metrics", "traces"]


def readable(message: str) -> bool:
    return bool(message.strip()) and message.isprintable() and len(message) < 4096


def assert_status_body(answer, want_type: str, what: str) -> None:
    assert answer.content_type.startswith(want_type), (
        f"{what}: error body should be {want_type} like the request, got {answer.content_type!r}"
    )
    st = answer.rpc_status()
    assert readable(st.message), f"{what}: google.rpc.Status message not readable: {st.message!r}"


class Session:
    """A collector with good traffic before and after each bad request."""

    def __init__(self, collector):
        self.c = collector
        self.good = Traffic()

    def send_good(self) -> None:
        send_ok(self.c, self.good.inferences(2))
        send_ok(self.c, self.good.metrics(2))
        send_ok(self.c, self.good.spans(1))
        self.c.assert_running()

    def finish(self, extra_requests=()):
        """Stops the collector; checks every good item is stored and nothing else is."""
        self.send_good()
        self.c.stop_clean()
        with self.c.db() as db:
            counts = StoreChecker(db).check_all([*self.good.made, *extra_requests])
            assert count_rows(db, "inferences") == counts.inferences
            assert count_rows(db, "feedback") == counts.feedback
            assert count_rows(db, "logs") == counts.logs
            assert count_rows(db, "metric_points") == counts.points
            assert count_rows(db, "spans") == counts.spans
            return db.execute("SELECT inference_id FROM inferences").fetchall()


@pytest.fixture
def session(collector):
    s = Session(collector)
    s.send_good()
    return s


def good_body(signal: str) -> bytes:
    t = Traffic("body")
    return {"logs": t.inferences, "metrics": t.metrics, "traces": t.spans}[signal]().SerializeToString()


@pytest.mark.parametrize("signal", SIGNALS)
def test_truncated_protobuf_is_400_with_status(session, signal):
    body = good_body(signal)
    truncated = body[: len(body) * 2 // 3]
    with pytest.raises(DecodeError):
        REQUEST_TYPES[signal]().ParseFromString(truncated)
    a = post(session.c, signal, truncated, PROTOBUF)
    assert a.status == 400, f"truncated protobuf: {a.status} {a.body[:300]!r}"
    assert_status_body(a, PROTOBUF, "truncated protobuf")
    session.finish()


@pytest.mark.parametrize("signal", SIGNALS)
def test_random_bytes_are_400_with_status(session, signal):
    junk = random.Random(20240917).randbytes(4096)
    with pytest.raises(DecodeError):
        REQUEST_TYPES[signal]().ParseFromString(junk)
    a = post(session.c, signal, junk, PROTOBUF)
    assert a.status == 400, f"random bytes: {a.status} {a.body[:300]!r}"
    assert_status_body(a, PROTOBUF, "random bytes")
    session.finish()


@pytest.mark.parametrize(
    "body",
    [b'{"resourceLogs": [{"scopeLogs": [', b"not json at all", b'{"resourceLogs": {"a": 1}}', b"\xff\xfe"],
    ids=["cut", "text", "wrong_shape", "not_utf8"],
)
def test_invalid_json_is_400_with_json_status(session, body):
    a = post(session.c, "logs", body, JSON)
    assert a.status == 400, f"invalid JSON {body!r}: {a.status} {a.body[:300]!r}"
    assert_status_body(a, JSON, f"invalid JSON {body!r}")
    session.finish()


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", "application/grpc"])
def test_wrong_content_type_is_415(session, content_type):
    a = post(session.c, "logs", good_body("logs"), content_type)
    assert a.status == 415, f"{content_type}: {a.status} {a.body[:300]!r}"
    session.finish()


def test_missing_content_type_is_415(session):
    r = requests.post(f"{session.c.http_base}/v1/logs", data=good_body("logs"), timeout=30,
                      headers={"Content-Type": ""})
    assert r.status_code == 415, f"no content type: {r.status_code} {r.content[:300]!r}"
    session.finish()


@pytest.mark.parametrize("framing", ["content_length", "chunked"])
def test_30_mib_body_is_413(session, framing):
    # small pieces, so the upload stops soon after the server answers
    piece, pieces = 256 * 1024, 120
    chunk = b"\x0a" * piece
    headers = {"Content-Type": PROTOBUF}
    if framing == "content_length":
        headers["Content-Length"] = str(piece * pieces)
        chunks = (chunk for _ in range(pieces))
    else:
        headers["Transfer-Encoding"] = "chunked"
        chunks = (*(b"%x\r\n" % piece + chunk + b"\r\n" for _ in range(pieces)), b"0\r\n\r\n")
    status, _, body = post_streaming(session.c, "/v1/metrics", headers, chunks)
    assert status == 413, f"30 MiB body ({framing}): {status} {body[:300]!r}"
    session.finish()


def test_gzip_bomb_is_413(session):
    bomb = gzip.compress(b"\x00" * (25 * MIB), compresslevel=9)
    assert len(bomb) < MIB // 4
    a = post(session.c, "logs", bomb, PROTOBUF, gzipped=True)
    assert a.status == 413, f"gzip bomb ({len(bomb)} bytes inflating to 25 MiB): {a.status} {a.body[:300]!r}"
    session.finish()


def test_body_that_is_not_gzip_is_400(session):
    a = post(session.c, "logs", good_body("logs"), PROTOBUF, gzipped=True)
    assert a.status == 400, f"Content-Encoding gzip on a plain body: {a.status} {a.body[:300]!r}"
    assert_status_body(a, PROTOBUF, "bad gzip")
    session.finish()


def _event(iid: str, t: int, **overrides):
    attrs = inference_attrs(iid, 1)
    for k, v in overrides.items():
        key = k.replace("__", ".")
        if v is None:
            attrs.pop(key)
        else:
            attrs[key] = v
    return log_record(t, attrs, event_name="ml.inference")


@pytest.mark.parametrize("encoding", ["protobuf", "json"])
def test_inference_without_model_name_is_partial_success(session, encoding):
    t = session.good.base + 7
    req = logs_request(
        [
            _event("keep-1", t),
            _event("drop-1", t + 1, ml__model__name=None),
            _event("keep-2", t + 2),
        ],
        RESOURCE,
    )
    a = send(session.c, req, encoding)
    assert a.status == 200, f"{a.status} {a.body[:300]!r}"
    assert a.content_type.startswith(JSON if encoding == "json" else PROTOBUF)
    ps = a.export_response("logs").partial_success
    assert ps.rejected_log_records == 1, f"partial_success: {ps}"
    assert "ml.model.name" in ps.error_message and readable(ps.error_message), ps.error_message
    kept = logs_request([req.resource_logs[0].scope_logs[0].log_records[i] for i in (0, 2)], RESOURCE)
    ids = {r[0] for r in session.finish([kept])}
    assert "drop-1" not in ids


def test_attributes_of_unexpected_types_are_partial_success(session):
    t = session.good.base + 99
    req = logs_request(
        [
            _event("model-as-int", t, ml__model__name=42),
            _event("score-as-string", t + 1, ml__prediction__score="high"),
            _event("version-as-bool", t + 2, ml__model__version=True),
            _event("ok-odd-feature", t + 3, ml__feature__weird=[1, 2, 3]),
            _event("task-unknown", t + 4, ml__model__task="classifier"),
            _event("ok-task", t + 5, ml__model__task="classification"),
        ],
        RESOURCE,
    )
    a = send(session.c, req)
    assert a.status == 200, f"{a.status} {a.body[:300]!r}"
    ps = a.export_response("logs").partial_success
    assert ps.rejected_log_records == 4, f"partial_success: {ps}"
    for key in ("ml.model.name", "ml.prediction.score", "ml.model.version", "ml.model.task"):
        assert key in ps.error_message, f"{key} not named in {ps.error_message!r}"
    assert '"classifier"' in ps.error_message and "regression" in ps.error_message, ps.error_message
    session.send_good()
    session.c.stop_clean()
    with session.c.db() as db:
        StoreChecker(db).check_all(session.good.made)
        ids = {r[0] for r in db.execute("SELECT inference_id FROM inferences").fetchall()}
        assert {"model-as-int", "score-as-string", "version-as-bool", "task-unknown"}.isdisjoint(ids)
        assert {"ok-odd-feature", "ok-task"} <= ids
        task = db.execute("SELECT task FROM inferences WHERE inference_id = 'ok-task'").fetchone()
        assert task == ("classification",), task
        row = db.execute(
            "SELECT f.value_type, f.value_string FROM inference_features f JOIN inferences i USING (event_id) "
            "WHERE i.inference_id = 'ok-odd-feature' AND f.feature = 'weird'"
        ).fetchone()
        assert row is not None and row[0] == "other", f"array feature stored as {row}"


def test_metric_point_without_value_and_bad_span_ids_are_partial_success(session):
    good = Traffic("mixed")
    mreq = good.metrics(2)
    bad = mreq.resource_metrics[0].scope_metrics[0].metrics.add(name="hw.power", unit="W")
    bad.gauge.data_points.add(time_unix_nano=good.base, attributes=kvs({"hw.id": "psu-0"}))  # no value
    a = send(session.c, mreq)
    assert a.status == 200, f"{a.status} {a.body[:300]!r}"
    ps = a.export_response("metrics").partial_success
    assert ps.rejected_data_points == 1 and readable(ps.error_message), f"partial_success: {ps}"

    treq = good.spans(2)
    treq.resource_spans[0].scope_spans[0].spans.add(
        name="bad-ids", trace_id=b"\x01" * 5, span_id=b"\x02" * 8,
        start_time_unix_nano=good.base, end_time_unix_nano=good.base + 1,
    )
    a = send(session.c, treq)
    assert a.status == 200, f"{a.status} {a.body[:300]!r}"
    ps = a.export_response("traces").partial_success
    assert ps.rejected_spans == 1 and readable(ps.error_message), f"partial_success: {ps}"

    # what was kept: the request without the bad items
    del mreq.resource_metrics[0].scope_metrics[0].metrics[-1]
    del treq.resource_spans[0].scope_spans[0].spans[-1]
    session.finish([mreq, treq])


@pytest.mark.parametrize("signal", SIGNALS)
def test_grpc_malformed_message_is_invalid_argument(session, signal):
    junk = random.Random(7).randbytes(2048)
    _, err = grpc_raw(session.c, signal, junk)
    assert err is not None, "malformed gRPC message was accepted"
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, f"{err.code()}: {err.details()}"
    assert readable(err.details() or ""), f"details: {err.details()!r}"
    truncated = good_body(signal)[:-3]
    _, err = grpc_raw(session.c, signal, truncated)
    assert err is not None and err.code() == grpc.StatusCode.INVALID_ARGUMENT, f"truncated: {err and err.code()}"
    # gRPC good traffic too
    resp, err = grpc_export(session.c, session.good.inferences(2))
    assert err is None, f"good gRPC export failed: {err}"
    session.finish()


LIMIT_CONFIG = """\
receivers:
  otlp:
    max_body_size: 1MiB
"""


def log_with_body(tag: str, body_bytes: int):
    """One log record whose body is `body_bytes` of text (gzip makes it a few KiB)."""
    return logs_request([log_record(Traffic(tag).base, {"component": tag}, body="x" * body_bytes)], RESOURCE)


def test_grpc_message_over_the_limit_is_out_of_range_or_resource_exhausted_once_inflated(make_collector):
    """README's "What comes back": a gRPC message over max_body_size is OUT_OF_RANGE, and
    RESOURCE_EXHAUSTED when it is over the limit only once decompressed; one under it is stored."""
    session = Session(make_collector(config=LIMIT_CONFIG))
    session.send_good()
    over = log_with_body("over", 2 * MIB).SerializeToString()
    _, err = grpc_raw(session.c, "logs", over)
    assert err is not None, "a 2 MiB message passed a 1 MiB limit"
    assert err.code() == grpc.StatusCode.OUT_OF_RANGE, f"{err.code()}: {err.details()}"
    assert readable(err.details() or "") and str(MIB) in err.details(), err.details()

    _, err = grpc_raw(session.c, "logs", over, compression=grpc.Compression.Gzip)
    assert err is not None, "a message inflating to 2 MiB passed a 1 MiB limit"
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, f"{err.code()}: {err.details()}"
    assert readable(err.details() or "") and str(MIB) in err.details(), err.details()

    under = {compression: log_with_body(f"under-{compression}", MIB - 4096)
             for compression in (grpc.Compression.NoCompression, grpc.Compression.Gzip)}
    for compression, req in under.items():
        _, err = grpc_raw(session.c, "logs", req.SerializeToString(), compression=compression)
        assert err is None, f"a message under the limit ({compression}): {err.code()}: {err.details()}"
    (grpc_logs,) = [r for r in session.c.stats()["receivers"] if (r["signal"], r["protocol"]) == ("logs", "grpc")]
    assert grpc_logs["requests_refused"]["too_large"] == 2, grpc_logs
    assert sum(grpc_logs["requests_refused"].values()) == 2, grpc_logs
    session.finish(list(under.values()))


def test_grpc_partial_success(session):
    t = session.good.base + 5
    req = logs_request([_event("grpc-keep", t), _event("grpc-drop", t + 1, ml__model__name=None)], RESOURCE)
    resp, err = grpc_export(session.c, req)
    assert err is None, f"gRPC export failed: {err}"
    assert resp.partial_success.rejected_log_records == 1, resp
    assert "ml.model.name" in resp.partial_success.error_message
    kept = logs_request([req.resource_logs[0].scope_logs[0].log_records[0]], RESOURCE)
    ids = {r[0] for r in session.finish([kept])}
    assert "grpc-drop" not in ids


def test_unknown_path_and_method(session):
    r = requests.post(f"{session.c.http_base}/v1/profiles-nope", data=b"x", timeout=30,
                      headers={"Content-Type": PROTOBUF})
    assert r.status_code == 404, r.status_code
    r = requests.get(f"{session.c.http_base}/v1/logs", timeout=30)
    assert r.status_code == 405, r.status_code
    session.finish()

