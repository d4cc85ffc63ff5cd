"""Edge → centre forwarding over OTLP with the persistent disk queue (issue 17), with real
processes on loopback: an edge Millwatch whose `exporters.otlp` points at a central Millwatch
(or at a receiver built from the official OTLP protos).

The outage here lasts as long as the test needs to send (a few seconds), not the issue's 60 s:
what matters to the queue is that nothing can be sent, and the exporter never gives up on an
outage whatever its length (it has no maximum elapsed time to reach)."""

from __future__ import annotations

import re
import subprocess
import threading
import time
from concurrent import futures
from pathlib import Path

import grpc
import pytest
import requests
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.metrics.v1 import metrics_pb2

import collector as collector_module
from collector import Collector, free_ports
from otlp import inference_attrs, kvs, log_record, logs_request, resource, scope
from rawhttp import grpc_export, send, send_ok

DRAIN_TIMEOUT_S = 60.0
MODEL = "press-vision"
# Event and point times: recent, or retention deletes them at start.
BASE_NS = time.time_ns() - 600 * 10**9


class Pinned(Collector):
    """A collector that keeps its ports across restarts, so that an edge can point at it while
    it is down."""

    def __init__(self, workdir: Path, ports: list[int], config: str | None = None):
        super().__init__(workdir, config)
        self.pinned = ports
        self.grpc_port, self.otlp_http_port, self.api_port = self.pinned

    def _start_once(self) -> Collector:
        original = collector_module.free_ports
        collector_module.free_ports = lambda n: list(self.pinned)
        try:
            return super()._start_once()
        finally:
            collector_module.free_ports = original


def edge_and_central(tmp_path: Path, queue_dir: Path, **kw) -> tuple[Collector, Collector]:
    """An edge forwarding to a central Millwatch that is not started yet. The six ports are
    chosen together, so the edge never gets one of the central's while that is down."""
    ports = free_ports(6)
    central = Pinned(tmp_path / "central", ports[:3])
    edge = Pinned(tmp_path / "edge", ports[3:],
                  edge_config(f"http://127.0.0.1:{central.grpc_port}", queue_dir, **kw))
    return edge, central


def edge_config(endpoint: str, queue_dir: Path, protocol: str = "grpc", max_bytes: int = 1 << 28,
                extra: str = "") -> str:
    return f"""
exporters:
  otlp:
    - name: central
      endpoint: {endpoint}
      protocol: {protocol}
      batch: {{ max_items: 200, max_delay: 50ms }}
      retry: {{ min_backoff: 50ms, max_backoff: 500ms }}
      queue: {{ dir: {queue_dir}, max_bytes: {max_bytes} }}
{extra}"""


def own_metric(c: Collector, name: str) -> float:
    text = requests.get(f"{c.api_base}/metrics", timeout=10).text
    m = re.search(rf'^{name}{{exporter="central"}} (\S+)$', text, re.M)
    assert m, f"{name} not on /metrics:\n{text[-3000:]}"
    return float(m.group(1))


def wait_for(what: str, check, timeout: float = DRAIN_TIMEOUT_S, c: Collector | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}\n{c.stderr_tail() if c else ''}")


def inference_batch(r: int, n: int = 5) -> tuple[object, list[str]]:
    ids = [f"inf-{r:04}-{k}" for k in range(n)]
    t0 = BASE_NS + r * 1_000_000
    records = [log_record(t0 + k, inference_attrs(iid, r * n + k, model=MODEL), event_name="ml.inference")
               for k, iid in enumerate(ids)]
    return logs_request(records, {"service.name": "press-line", "host.name": "edge-1"}), ids


def gauge_request(r: int) -> tuple[object, int]:
    t = BASE_NS + r * 1_000_000
    point = metrics_pb2.NumberDataPoint(time_unix_nano=t, as_double=float(r), attributes=kvs({"line": "a"}))
    metric = metrics_pb2.Metric(name="edge.press.force", unit="kN", gauge=metrics_pb2.Gauge(data_points=[point]))
    req = metrics_service_pb2.ExportMetricsServiceRequest(resource_metrics=[metrics_pb2.ResourceMetrics(
        resource=resource({"service.name": "press-line", "host.name": "edge-1"}),
        scope_metrics=[metrics_pb2.ScopeMetrics(scope=scope(), metrics=[metric])],
    )])
    return req, t


def central_rows(central: Collector) -> tuple[list[str], list[tuple[int, float]]]:
    db = central.db()
    try:
        ids = [r[0] for r in db.execute(
            "SELECT inference_id FROM inferences WHERE model = ? ORDER BY event_id", [MODEL]).fetchall()]
        points = db.execute(
            "SELECT epoch_ns(p.time), p.value FROM metric_points p JOIN metric_series s USING (series_id) "
            "WHERE s.name = 'edge.press.force' ORDER BY p.rowid").fetchall()
    finally:
        db.close()
    return ids, points


def test_everything_acknowledged_during_an_outage_and_a_kill_arrives_once_in_order(tmp_path):
    edge, central = edge_and_central(tmp_path, tmp_path / "q")
    try:
        edge.start()
        acked_ids: list[str] = []
        acked_points: list[tuple[int, float]] = []
        for r in range(60):
            if r == 30:
                # SIGKILL in the middle of the outage: what was acknowledged is on disk.
                edge.kill()
                edge.start()
            req, ids = inference_batch(r)
            send_ok(edge, req)
            acked_ids += ids
            if r % 2 == 0:
                mreq, t = gauge_request(r)
                send_ok(edge, mreq)
                acked_points.append((t, float(r)))
        total = len(acked_ids) + len(acked_points)
        assert own_metric(edge, "millwatch_otlp_exporter_queue_items") == total
        assert own_metric(edge, "millwatch_otlp_exporter_requests_retried_total") > 0
        assert own_metric(edge, "millwatch_otlp_exporter_queue_oldest_age_seconds") > 0

        central.start()
        wait_for("the edge's queue to drain",
                 lambda: own_metric(edge, "millwatch_otlp_exporter_queue_items") == 0, c=edge)
        assert own_metric(edge, "millwatch_otlp_exporter_queue_bytes") == 0
        assert own_metric(edge, "millwatch_otlp_exporter_queue_oldest_age_seconds") == 0
        # The second run sent everything, the first run's share included.
        assert own_metric(edge, "millwatch_otlp_exporter_items_sent_total") == total
        assert own_metric(edge, "millwatch_otlp_exporter_items_rejected_total") == 0
        edge.stop_clean()
        central.stop_clean()

        ids, points = central_rows(central)
        assert ids == acked_ids, "every acknowledged event exactly once, in the order sent"
        assert points == acked_points, "every acknowledged point exactly once, in the order sent"
        # Local detection keeps its data on the edge too.
        edge_db = edge.db()
        try:
            local = edge_db.execute("SELECT count(*) FROM inferences").fetchone()[0]
        finally:
            edge_db.close()
        assert local == len(acked_ids)
    finally:
        for c in (edge, central):
            if c.running:
                c.kill()


def segments(queue_dir: Path) -> list[Path]:
    return sorted(queue_dir.glob("*.seg"))


def test_a_corrupt_tail_is_reported_and_the_rest_forwarded(tmp_path):
    queue_dir = tmp_path / "q"
    edge, central = edge_and_central(tmp_path, queue_dir)
    try:
        edge.start()
        sent: list[list[str]] = []
        for r in range(10):
            req, ids = inference_batch(r)
            send_ok(edge, req)
            sent.append(ids)
        edge.stop_clean()
        [last] = segments(queue_dir)
        data = bytearray(last.read_bytes())
        # The last record (one request) torn by a crash: its last 40 bytes gone, and one byte of
        # the record before it garbled.
        starts = [m.start() for m in re.finditer(b"MWRW", bytes(data))]
        assert len(starts) >= 10, starts
        data = data[:-40]
        data[starts[-2] + 40] ^= 0xFF
        last.write_bytes(bytes(data))

        edge.start()
        skipped = own_metric(edge, "millwatch_otlp_exporter_queue_skipped_bytes_total")
        assert skipped == len(data) - starts[-2], "both damaged records counted as skipped bytes"
        log = edge.stderr_paths[-1].read_text(errors="replace")
        assert "skipping" in log and last.name in log, log[-3000:]
        assert own_metric(edge, "millwatch_otlp_exporter_queue_items") == 8 * 5

        central.start()
        wait_for("the edge's queue to drain",
                 lambda: own_metric(edge, "millwatch_otlp_exporter_queue_items") == 0, c=edge)
        edge.stop_clean()
        central.stop_clean()
        ids, _ = central_rows(central)
        assert ids == [i for batch in sent[:8] for i in batch]
    finally:
        for c in (edge, central):
            if c.running:
                c.kill()


def test_a_full_queue_refuses_with_retryable_statuses_and_loses_nothing(tmp_path):
    edge, central = edge_and_central(tmp_path, tmp_path / "q", max_bytes=64 << 10)
    try:
        edge.start()
        acked: list[str] = []
        refused = None
        for r in range(200):
            req, ids = inference_batch(r)
            a = send(edge, req)
            if a.status != 200:
                refused = (r, a)
                break
            acked += ids
        assert refused is not None, "the 64 KiB queue never filled"
        r, a = refused
        assert a.status == 503, a.status
        retry_after = {k.lower(): v for k, v in a.headers.items()}.get("retry-after")
        assert retry_after is not None and int(retry_after) >= 1, a.headers
        _, err = grpc_export(edge, inference_batch(r)[0])
        assert err is not None and err.code() == grpc.StatusCode.UNAVAILABLE, err
        assert own_metric(edge, "millwatch_otlp_exporter_items_refused_queue_full_total") >= 10

        # The centre comes back; the client retries what was refused, which now lands.
        central.start()
        wait_for("the refused request to be taken", lambda: send(edge, inference_batch(r)[0]).status == 200, c=edge)
        acked += inference_batch(r)[1]
        wait_for("the edge's queue to drain",
                 lambda: own_metric(edge, "millwatch_otlp_exporter_queue_items") == 0, c=edge)
        edge.stop_clean()
        central.stop_clean()
        ids, _ = central_rows(central)
        assert ids == acked
    finally:
        for c in (edge, central):
            if c.running:
                c.kill()


class Recorder(logs_service_pb2_grpc.LogsServiceServicer, metrics_service_pb2_grpc.MetricsServiceServicer):
    """An OTLP receiver made from the official protos alone: records every request."""

    def __init__(self):
        self.logs: list = []
        self.metrics: list = []
        self.metadata: list = []
        self.lock = threading.Lock()

    def Export(self, request, context):  # noqa: N802 (gRPC's name)
        with self.lock:
            self.metadata.append(dict(context.invocation_metadata()))
            if isinstance(request, logs_service_pb2.ExportLogsServiceRequest):
                self.logs.append(request)
                return logs_service_pb2.ExportLogsServiceResponse()
            self.metrics.append(request)
            return metrics_service_pb2.ExportMetricsServiceResponse()


@pytest.fixture
def recorder():
    rec = Recorder()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    logs_service_pb2_grpc.add_LogsServiceServicer_to_server(rec, server)
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(rec, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    rec.port = port
    yield rec
    server.stop(grace=None)


def test_a_receiver_built_from_the_official_protos_records_what_was_sent(tmp_path, recorder, monkeypatch):
    token_file = tmp_path / "token"
    token_file.write_text("edge-s3cret\n")
    extra = f"      token: {{ file: {token_file} }}\n      headers: {{ x-plant: north }}\n"
    config = edge_config(f"http://127.0.0.1:{recorder.port}", tmp_path / "q").replace(
        "      queue:", extra + "      queue:")
    edge = Collector(tmp_path / "edge", config)
    try:
        edge.start()
        sent_logs, sent_metrics = [], []
        for r in range(12):
            req, _ = inference_batch(r)
            send_ok(edge, req)
            sent_logs.extend(req.resource_logs)
            mreq, _ = gauge_request(r)
            send_ok(edge, mreq)
            sent_metrics.extend(mreq.resource_metrics)
        wait_for("the edge's queue to drain",
                 lambda: own_metric(edge, "millwatch_otlp_exporter_queue_items") == 0, c=edge)
        with recorder.lock:
            got_logs = [rl for req in recorder.logs for rl in req.resource_logs]
            got_metrics = [rm for req in recorder.metrics for rm in req.resource_metrics]
            metadata = list(recorder.metadata)
        assert got_logs == sent_logs, "log payloads arrive as sent, in order"
        assert got_metrics == sent_metrics, "metric payloads arrive as sent, in order"
        assert all(m.get("authorization") == "Bearer edge-s3cret" for m in metadata), metadata
        assert all(m.get("x-plant") == "north" for m in metadata), metadata
        edge.stop_clean()
        assert "edge-s3cret" not in edge.stderr_tail(10**6), "the token is never logged"
    finally:
        if edge.running:
            edge.kill()


def make_cert(d: Path, name: str, ca: str | None, ext: str) -> tuple[Path, Path]:
    """An EC key and certificate `name`, signed by the CA `ca` (made by this function with
    ca=None, self-signed)."""
    key, cert = d / f"{name}.key", d / f"{name}.pem"
    if ca is None:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", f"/CN={name}"],
                       check=True, capture_output=True)
        return cert, key
    csr, extfile = d / f"{name}.csr", d / f"{name}.ext"
    extfile.write_text(ext)
    subprocess.run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", key, "-out", csr, "-subj", f"/CN={name}"], check=True, capture_output=True)
    subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", d / f"{ca}.pem", "-CAkey", d / f"{ca}.key",
                    "-CAcreateserial", "-out", cert, "-days", "2", "-extfile", extfile],
                   check=True, capture_output=True)
    return cert, key


def test_mtls_a_wrong_or_missing_client_certificate_is_refused_the_right_one_passes(tmp_path):
    """The receiver (official protos, grpcio) requires a client certificate from the plant CA.
    Certificates are made here with openssl."""
    d = tmp_path / "pki"
    d.mkdir()
    ca, _ = make_cert(d, "plant-ca", None, "")
    make_cert(d, "other-ca", None, "")
    srv_cert, srv_key = make_cert(d, "central", "plant-ca", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    good_cert, good_key = make_cert(d, "edge", "plant-ca", "extendedKeyUsage=clientAuth\n")
    bad_cert, bad_key = make_cert(d, "intruder", "other-ca", "extendedKeyUsage=clientAuth\n")

    rec = Recorder()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    logs_service_pb2_grpc.add_LogsServiceServicer_to_server(rec, server)
    creds = grpc.ssl_server_credentials([(srv_key.read_bytes(), srv_cert.read_bytes())],
                                        root_certificates=ca.read_bytes(), require_client_auth=True)
    port = server.add_secure_port("127.0.0.1:0", creds)
    server.start()
    edges = []
    try:
        def edge_with(name: str, client: tuple[Path, Path] | None) -> Collector:
            tls = f"      tls: {{ ca_file: {ca}" + (
                f", cert_file: {client[0]}, key_file: {client[1]}" if client else "") + " }\n"
            config = edge_config(f"https://127.0.0.1:{port}", tmp_path / f"q-{name}").replace(
                "      queue:", tls + "      queue:")
            c = Collector(tmp_path / name, config)
            edges.append(c)
            c.start()
            req, _ = inference_batch(0)
            send_ok(c, req)
            return c

        for name, client in [("missing", None), ("wrong", (bad_cert, bad_key))]:
            c = edge_with(name, client)
            wait_for(f"{name} certificate: retries",
                     lambda: own_metric(c, "millwatch_otlp_exporter_requests_retried_total") >= 2, c=c)
            assert own_metric(c, "millwatch_otlp_exporter_items_sent_total") == 0
            assert own_metric(c, "millwatch_otlp_exporter_queue_items") == 5, "kept for later, not dropped"
            c.stop_clean()
        with rec.lock:
            assert rec.logs == [], "nothing passes without the right client certificate"

        good = edge_with("right", (good_cert, good_key))
        wait_for("the right certificate: sent",
                 lambda: own_metric(good, "millwatch_otlp_exporter_queue_items") == 0, c=good)
        with rec.lock:
            assert len(rec.logs) == 1 and rec.logs[0].resource_logs == inference_batch(0)[0].resource_logs
    finally:
        for c in edges:
            if c.running:
                c.kill()
        server.stop(grace=None)
