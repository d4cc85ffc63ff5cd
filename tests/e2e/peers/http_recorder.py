"""A real HTTP receiver for the notifier tests: records every request (method, path, headers,
body) as one JSON file in --dir and answers as the path says:

  /status/NNN[?retry_after=S]   answer NNN (with Retry-After: S)
  /delay/S                      wait S seconds, then answer 200
  anything else                 answer --status (default 200)

With --hmac-secret it also records the signature it expects, computed here independently of
the code under test: "sha256=" + hex(HMAC-SHA256(secret, body)).
With --tls-cert and --tls-key it speaks HTTPS with that certificate.
"""

import argparse
import hashlib
import hmac
import json
import os
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

COUNTER = 0
LOCK = threading.Lock()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--dir", required=True)
    p.add_argument("--status", type=int, default=200)
    p.add_argument("--hmac-secret", default=None)
    p.add_argument("--tls-cert", default=None)
    p.add_argument("--tls-key", default=None)
    args = p.parse_args()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            global COUNTER
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            url = urlparse(self.path)
            record = {
                "method": self.command,
                "path": url.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body.decode("utf-8", "replace"),
            }
            if args.hmac_secret is not None:
                digest = hmac.new(args.hmac_secret.encode(), body, hashlib.sha256).hexdigest()
                record["expected_signature"] = "sha256=" + digest
            with LOCK:
                COUNTER += 1
                n = COUNTER
            tmp = os.path.join(args.dir, f"{n:04d}.json.tmp")
            with open(tmp, "w") as f:
                json.dump(record, f)
            os.rename(tmp, os.path.join(args.dir, f"{n:04d}.json"))

            status, extra = args.status, {}
            parts = url.path.strip("/").split("/")
            if len(parts) >= 2 and parts[0] == "status":
                status = int(parts[1])
                q = parse_qs(url.query)
                if "retry_after" in q:
                    extra["Retry-After"] = q["retry_after"][0]
            elif len(parts) >= 2 and parts[0] == "delay":
                time.sleep(float(parts[1]))
                status = 200
            answer = f"recorder answered {status}".encode()
            self.send_response(status)
            for k, v in extra.items():
                self.send_header(k, v)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, fmt, *a):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    if args.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        # The handshake happens in the request's thread, not in accept().
        server.socket = ctx.wrap_socket(
            server.socket, server_side=True, do_handshake_on_connect=False
        )
    server.serve_forever()


if __name__ == "__main__":
    main()
