"""The model server of the operator's integration tests: the node agent runs it as a ModelDeployment's Pods.

It binds ``$POD_IP:$PORT`` (the Pod's own loopback address, from the node agent) and answers ``GET /healthz``: 200,
or 503 for ever when ``$MODEL_VERSION`` is among the comma-separated ``$NOT_READY_VERSIONS`` (a candidate that never
becomes ready: its readiness probe fails, so its Deployment never reports a ready replica). It starts in ~50 ms, which
a rollout's timing needs; what it serves is not the point (the analysis reads the tests' own exporter).
"""

from __future__ import annotations

import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType


def ready() -> bool:
    never = {v.strip() for v in os.environ.get("NOT_READY_VERSIONS", "").split(",") if v.strip()}
    return os.environ.get("MODEL_VERSION", "") not in never


class Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # the probes would fill the Pod's log
        pass

    def do_GET(self) -> None:
        if self.path == "/healthz":
            code, body = (200, b"ok") if ready() else (503, b"not ready")
        else:
            code, body = 404, b"not found"
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main() -> None:
    server = ThreadingHTTPServer((os.environ["POD_IP"], int(os.environ["PORT"])), Handler)

    def stop(signum: int, frame: FrameType | None) -> None:
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    try:
        server.serve_forever()
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
