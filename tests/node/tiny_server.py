"""A tiny HTTP server standing in for a model server in the node agent's tests (starts in ~50 ms, unlike sklearn).

Listens on ``$POD_IP:$PORT`` (the Pod's own loopback address and its first containerPort, from the node agent).
``GET /healthz``: 200, or 503 while the file named by ``NOT_READY_FILE`` exists. ``GET /metrics``: one counter in the
Prometheus text format. ``POST /predict``: ``{"version": $VERSION, "pid": ...}``.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

REQUESTS = 0


class Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        sys.stderr.write(format % args + "\n")

    def _send(self, code: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/healthz":
            marker = os.environ.get("NOT_READY_FILE")
            self._send(503 if marker and os.path.exists(marker) else 200, b"ok")
        elif self.path == "/metrics":
            text = f"# TYPE tiny_requests_total counter\ntiny_requests_total {REQUESTS}\n"
            self._send(200, text.encode(), "text/plain; version=0.0.4")
        else:
            self._send(404, b"{}")

    def do_POST(self) -> None:
        global REQUESTS
        REQUESTS += 1
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._send(200, json.dumps({"version": os.environ.get("VERSION", ""), "pid": os.getpid()}).encode())


def main() -> None:
    server = ThreadingHTTPServer((os.environ["POD_IP"], int(os.environ["PORT"])), Handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server.serve_forever()
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
