"""Hand-made OTLP/HTTP and gRPC requests: chosen bodies, encodings and content types, with the
answer decoded (google.rpc.Status for errors, Export*ServiceResponse for success)."""

from __future__ import annotations

import gzip
import json
import select
import socket
import time
from dataclasses import dataclass

import grpc
import requests
from google.protobuf import json_format
from google.rpc import status_pb2

from otlp import GRPC_METHODS, RESPONSE_TYPES, SIGNAL_PATHS, signal_of, to_otlp_json

PROTOBUF = "application/x-protobuf"
JSON = "application/json"


@dataclass
class Answer:
    status: int
    headers: dict
    body: bytes
    content_type: str

    def json(self):
        return json.loads(self.body)

    def rpc_status(self) -> status_pb2.Status:
        """The google.rpc.Status body, decoded as the response's content type says."""
        st = status_pb2.Status()
        if self.content_type.startswith(JSON):
            json_format.Parse(self.body, st, ignore_unknown_fields=True)
        else:
            assert self.content_type.startswith(PROTOBUF), f"error body of type {self.content_type!r}"
            st.ParseFromString(self.body)
        return st

    def export_response(self, signal: str):
        msg = RESPONSE_TYPES[signal]()
        if self.content_type.startswith(JSON):
            json_format.Parse(self.body or b"{}", msg, ignore_unknown_fields=True)
        else:
            assert self.content_type.startswith(PROTOBUF), f"response of type {self.content_type!r}"
            msg.ParseFromString(self.body)
        return msg


def post(collector, signal: str, body: bytes, content_type: str, gzipped: bool = False,
         extra_headers: dict | None = None, timeout: float = 60) -> Answer:
    headers = {"Content-Type": content_type}
    if gzipped:
        headers["Content-Encoding"] = "gzip"
    headers.update(extra_headers or {})
    r = requests.post(f"{collector.http_base}{SIGNAL_PATHS[signal]}", data=body, headers=headers, timeout=timeout)
    return Answer(r.status_code, dict(r.headers), r.content, r.headers.get("Content-Type", ""))


def send(collector, req, encoding: str = "protobuf", gzipped: bool = False) -> Answer:
    """Sends an export request message over OTLP/HTTP as protobuf or JSON, optionally gzipped."""
    if encoding == "protobuf":
        body, ctype = req.SerializeToString(), PROTOBUF
    else:
        body, ctype = to_otlp_json(req), JSON
    if gzipped:
        body = gzip.compress(body)
    return post(collector, signal_of(req), body, ctype, gzipped)


def send_ok(collector, req, encoding: str = "protobuf", gzipped: bool = False):
    """Sends and asserts a full success; returns the decoded Export*ServiceResponse."""
    a = send(collector, req, encoding, gzipped)
    assert a.status == 200, f"expected 200, got {a.status}: {a.body[:500]!r}"
    want = JSON if encoding == "json" else PROTOBUF
    assert a.content_type.startswith(want), f"response content type {a.content_type!r}, request was {want}"
    resp = a.export_response(signal_of(req))
    assert not resp.HasField("partial_success") or (
        resp.partial_success.rejected_log_records == 0
        and getattr(resp.partial_success, "rejected_data_points", 0) == 0
        and getattr(resp.partial_success, "rejected_spans", 0) == 0
    ), f"unexpected partial success: {resp.partial_success}"
    return resp


def post_streaming(collector, path: str, headers: dict, body_chunks, timeout: float = 60) -> tuple[int, dict, bytes]:
    """POSTs over a raw socket, stopping the upload as soon as the server answers (a server may
    refuse a large body before reading it all). Returns (status, headers, body)."""
    deadline = time.monotonic() + timeout
    sock = socket.create_connection(("127.0.0.1", collector.otlp_http_port), timeout=timeout)
    try:
        head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        sock.sendall(head.encode())
        received = b""
        for chunk in body_chunks:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
        while time.monotonic() < deadline:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            received += data
            if _complete(received):
                break
    finally:
        sock.close()
    assert received, f"no answer to POST {path}"
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    if hdrs.get("transfer-encoding", "").lower() == "chunked":
        body = _dechunk(body)
    return status, hdrs, body


def _complete(received: bytes) -> bool:
    head, sep, body = received.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.decode("latin-1").split("\r\n")[1:]:
        k, _, v = line.partition(":")
        if k.strip().lower() == "content-length":
            return len(body) >= int(v.strip())
    return body.endswith(b"0\r\n\r\n")


def _dechunk(body: bytes) -> bytes:
    out = b""
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += rest[:size]
        body = rest[size + 2:]
    return out


def grpc_raw(collector, signal: str, payload: bytes, timeout: float = 30, compression=None):
    """Calls the OTLP gRPC Export method with raw bytes as the message, gzip'd on the wire with
    `compression=grpc.Compression.Gzip`. Returns (response bytes, None) or (None, grpc.RpcError)."""
    with grpc.insecure_channel(collector.grpc_endpoint) as channel:
        call = channel.unary_unary(GRPC_METHODS[signal], request_serializer=None, response_deserializer=None)
        try:
            return call(payload, timeout=timeout, compression=compression), None
        except grpc.RpcError as e:
            return None, e


def grpc_export(collector, req, timeout: float = 30):
    """Exports a request message over gRPC; returns (decoded response, None) or (None, error)."""
    signal = signal_of(req)
    raw, err = grpc_raw(collector, signal, req.SerializeToString(), timeout)
    if err is not None:
        return None, err
    resp = RESPONSE_TYPES[signal]()
    resp.ParseFromString(raw)
    return resp, None
