"""The model server: one version of the sandbox model behind ``/predict``, with Prometheus metrics.

Endpoints (127.0.0.1 only):

* ``POST /predict`` ``{"instances": [[f0, ..., f7], ...], "labels": [0, 1, ...]}`` (``labels`` optional) answers
  ``{"predictions": [...], "model": ..., "version": ...}``. When labels come along, every prediction is judged
  against its label, which is how the accuracy of live traffic becomes a metric.
* ``GET /healthz``: 200 once the model is loaded (the readiness probe), 503 before.
* ``GET /metrics``: the server's own registry, in the Prometheus text format.

Metrics, each labelled ``model`` and ``version`` (the scrape adds ``namespace``):

============================================ ========= ===============================================
name                                         type      meaning
============================================ ========= ===============================================
``model_requests_total``                     counter   ``/predict`` requests
``model_request_errors_total``               counter   ``/predict`` requests answered without predictions
``model_request_duration_seconds``           histogram time to answer ``/predict``
``model_predictions_judged_total``           counter   predictions that came with a true label
``model_predictions_correct_total``          counter   judged predictions equal to their label
``model_input_drift_psi{feature}``           gauge     PSI of the feature over recent inputs (``drift``)
``model_input_drift_psi_max``                gauge     the largest of those
============================================ ========= ===============================================

Accuracy over a window is ``rate(correct) / rate(judged)``; the error rate ``rate(errors) / rate(requests)``.
The drift gauges are absent until the window holds enough rows (no data is not the same as no drift).

The server binds before it loads the model, so it answers ``/healthz`` (503) while loading, as a pod would.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import threadpoolctl  # type: ignore[import-untyped]
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from .artifacts import ModelArtifact, load_artifact
from .data import N_FEATURES
from .drift import DriftMonitor

log = logging.getLogger(__name__)

#: latency buckets for a model answering in milliseconds
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
#: the largest request body accepted
MAX_BODY = 4 * 1024 * 1024


def _one_thread() -> None:
    threadpoolctl.threadpool_limits(limits=1, user_api="openmp")


class BadRequest(ValueError):
    """The request body is not a valid prediction request."""


def parse_predict_request(body: bytes) -> tuple[np.ndarray[Any, np.dtype[np.float64]], list[int] | None]:
    """The feature rows and optional labels of a ``/predict`` body; ``BadRequest`` says what is wrong.

    >>> x, labels = parse_predict_request(b'{"instances": [[0, 1, 2, 3, 4, 5, 6, 7]], "labels": [1]}')
    >>> x.shape, labels
    ((1, 8), [1])
    """
    try:
        payload = json.loads(body)
    except ValueError as exc:
        raise BadRequest(f"body is not JSON: {exc}") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("instances"), list) or not payload["instances"]:
        raise BadRequest('expected {"instances": [[...features...], ...]} with at least one row')
    instances = payload["instances"]
    if not all(isinstance(row, list) and len(row) == N_FEATURES for row in instances):
        raise BadRequest(f"every instance must be a list of {N_FEATURES} numbers")
    try:
        x = np.array(instances, dtype=np.float64)
    except (TypeError, ValueError):
        raise BadRequest("instances must hold numbers only") from None
    if not np.isfinite(x).all():
        raise BadRequest("instances must be finite numbers")
    labels = payload.get("labels")
    if labels is None:
        return x, None
    if not isinstance(labels, list) or len(labels) != len(instances):
        raise BadRequest("labels must be a list with one label per instance")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in labels):
        raise BadRequest("labels must be integers")
    return x, labels


class _DriftCollector(Collector):
    """Computes the drift gauges when scraped, from the monitor's current window."""

    def __init__(self, monitor: DriftMonitor, model: str, version: str) -> None:
        self.monitor, self.model, self.version = monitor, model, version

    def collect(self) -> Iterable[GaugeMetricFamily]:
        current = self.monitor.current()
        per_feature = GaugeMetricFamily(
            "model_input_drift_psi",
            "Population Stability Index of a feature over recent inputs vs the training distribution",
            labels=["model", "version", "feature"],
        )
        worst = GaugeMetricFamily(
            "model_input_drift_psi_max",
            "the largest model_input_drift_psi over the features",
            labels=["model", "version"],
        )
        for feature, value in sorted(current.items()):
            per_feature.add_metric([self.model, self.version, feature], value)
        if current:
            worst.add_metric([self.model, self.version], max(current.values()))
        yield per_feature
        yield worst


class ServerMetrics:
    """The server's metrics, in a registry of its own (several servers can share a process in tests)."""

    def __init__(self, model: str, version: str) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        labels = ["model", "version"]
        values = (model, version)
        self.requests = Counter("model_requests", "prediction requests", labels, registry=self.registry).labels(*values)
        self.errors = Counter(
            "model_request_errors", "prediction requests answered without predictions", labels, registry=self.registry
        ).labels(*values)
        self.duration = Histogram(
            "model_request_duration_seconds",
            "time to answer a prediction request",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        ).labels(*values)
        self.judged = Counter(
            "model_predictions_judged", "predictions that came with a true label", labels, registry=self.registry
        ).labels(*values)
        self.correct = Counter(
            "model_predictions_correct", "judged predictions equal to their true label", labels, registry=self.registry
        ).labels(*values)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class ModelServer:
    """One model version served over HTTP on ``host`` (127.0.0.1; a Pod's own address under the node agent).

    ``ModelServer(uri, "demo", "v1").start()`` serves in background threads (tests, the gateway's tests) and
    ``stop()`` ends it; the command line calls ``serve_forever()`` instead. Port 0 picks a free port (``port``).
    """

    def __init__(
        self,
        model_uri: str,
        model_name: str,
        model_version: str,
        port: int = 0,
        drift_window: int = 500,
        drift_min_samples: int = 100,
        host: str = "127.0.0.1",
    ) -> None:
        self.host = host
        self.model_uri, self.model_name, self.model_version = model_uri, model_name, model_version
        self.metrics = ServerMetrics(model_name, model_version)
        self.drift_window, self.drift_min_samples = drift_window, drift_min_samples
        self.drift: DriftMonitor | None = None
        self.artifact: ModelArtifact | None = None
        self.load_error: str | None = None
        self.ready = threading.Event()
        self._httpd = ThreadingHTTPServer((host, port), _make_handler(self))
        self._httpd.daemon_threads = True
        self._threads: list[threading.Thread] = []
        # Predictions run on one thread whose OpenMP pool is limited to one thread (the limit is per calling
        # thread): requests carry a few rows each, and OpenMP threads per prediction (boosted trees) cost far more
        # than they save, worst when several servers share two cores (measured: 10-25 ms against 1-2 ms per row).
        self._predictor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="predict", initializer=_one_thread)

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> ModelServer:
        """Serve in a background thread and load the model in another; returns at once."""
        thread = threading.Thread(target=self.serve_forever, name=f"model-server-{self.port}", daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def _load(self) -> None:
        try:
            artifact = load_artifact(self.model_uri)
        except Exception as exc:
            self.load_error = f"{type(exc).__name__}: {exc}"
            log.error("cannot load model %s: %s", self.model_uri, self.load_error)
            return
        if artifact.version != self.model_version:
            log.warning(
                "artifact %s holds version %s, serving it as %s", self.model_uri, artifact.version, self.model_version
            )
        self.drift = DriftMonitor(artifact.reference, self.drift_window, self.drift_min_samples)
        self.metrics.registry.register(_DriftCollector(self.drift, self.model_name, self.model_version))
        self.artifact = artifact
        self.ready.set()

    def serve_forever(self) -> None:
        """Load the model, then serve in the calling thread until ``stop`` (for the command line)."""
        loader = threading.Thread(target=self._load, name="model-server-load", daemon=True)
        loader.start()
        self._httpd.serve_forever(poll_interval=0.1)

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._predictor.shutdown(wait=True, cancel_futures=True)
        for thread in self._threads:
            thread.join(timeout=5)

    def predict(self, body: bytes) -> tuple[HTTPStatus, dict[str, Any]]:
        """Answer one ``/predict`` body, counting it; the HTTP status and the JSON answer."""
        started = time.perf_counter()
        self.metrics.requests.inc()
        try:
            status, answer = self._predict(body)
        except Exception as exc:  # the model failed on this input: a 500, counted, and the server goes on
            status, answer = HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"{type(exc).__name__}: {exc}"}
        if status != HTTPStatus.OK:
            self.metrics.errors.inc()
            # an error answer says who gave it too, so a client can tell the model's errors from the path's
            answer = {**answer, "model": self.model_name, "version": self.model_version}
        self.metrics.duration.observe(time.perf_counter() - started)
        return status, answer

    def _predict(self, body: bytes) -> tuple[HTTPStatus, dict[str, Any]]:
        artifact, drift = self.artifact, self.drift
        if artifact is None or drift is None:
            return HTTPStatus.SERVICE_UNAVAILABLE, {"error": self.load_error or "model not loaded yet"}
        try:
            x, labels = parse_predict_request(body)
        except BadRequest as exc:
            return HTTPStatus.BAD_REQUEST, {"error": str(exc)}
        drift.add(x.tolist())
        predictions = [int(p) for p in self._predictor.submit(artifact.predict, x).result()]
        if labels is not None:
            self.metrics.judged.inc(len(labels))
            self.metrics.correct.inc(sum(p == t for p, t in zip(predictions, labels, strict=True)))
        return HTTPStatus.OK, {"predictions": predictions, "model": self.model_name, "version": self.model_version}


def _make_handler(server: ModelServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out in two writes: Nagle would hold the second
        server_version = "modelops-sandbox-model"

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s " + format, self.address_string(), *args)

        def _send(self, status: HTTPStatus, body: bytes, content_type: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: HTTPStatus, payload: dict[str, Any]) -> None:
            self._send(status, json.dumps(payload).encode())

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                if server.ready.is_set():
                    self._json(HTTPStatus.OK, {"status": "ok", "version": server.model_version})
                else:
                    self._json(HTTPStatus.SERVICE_UNAVAILABLE, {"status": server.load_error or "loading"})
            elif path == "/metrics":
                self._send(HTTPStatus.OK, server.metrics.exposition(), CONTENT_TYPE_LATEST)
            else:
                self._json(HTTPStatus.NOT_FOUND, {"error": f"no such path {path}"})

        def do_POST(self) -> None:
            path = self.path.split("?", 1)[0]
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if not 0 <= length <= MAX_BODY:
                self.close_connection = True
                self._json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": f"Content-Length must be 0..{MAX_BODY}"})
                return
            body = self.rfile.read(length)
            if path == "/predict":
                self._json(*server.predict(body))
            else:
                self._json(HTTPStatus.NOT_FOUND, {"error": f"no such path {path}"})

    return Handler
