"""A small gateway for the sandbox: routes each ``/predict`` to a backend drawn at random by the route's weights.

It plays the part of the data plane behind an HTTPRoute (Gateway API), a VirtualService (Istio) or a Service that
selects the pods of every version (``replicas`` router), so the weights the operator writes move real traffic.

* ``weights()`` (given by the caller) returns ``{backend: weight}``; the adapters below turn an HTTPRoute rule's
  ``backendRefs``, a VirtualService http route's ``route[]`` or ready replica counts into that shape.
* ``resolve(backend)`` (given by the caller) returns the URLs of the backend's ready replicas; the gateway
  round-robins over them.
* Both are called at most every ``refresh_interval`` seconds (0.5 s by default) by the request that finds the table
  stale; meanwhile requests use the last table. A failing ``weights()`` keeps the last good table.
* A backend with weight but no ready replica is left out and the others share its traffic (the operator moves
  weight only to ready versions; this keeps a version that just went away from failing requests). No backend at
  all: 503. A replica refusing the connection is retried on another pick (the request never reached it), so a
  version removed between two refreshes costs no request; other upstream failures answer 502.

Endpoints: ``POST /predict`` (forwarded, answer header ``X-Modelops-Backend`` names the backend), ``GET /healthz``,
``GET /metrics`` (``gateway_requests_total{backend,code}``, ``gateway_backend_weight{backend}``).
"""

from __future__ import annotations

import bisect
import contextlib
import itertools
import logging
import random
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import httpx
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

WeightsSource = Callable[[], Mapping[str, float]]
Resolver = Callable[[str], Sequence[str]]

#: attempts per request when replicas refuse connections
MAX_ATTEMPTS = 3
MAX_BODY = 4 * 1024 * 1024


# ------------------------------------------------------------------------------------------- adapters (pure)


def _pick(items: Sequence[Mapping[str, Any]], name: str | None, what: str) -> Mapping[str, Any]:
    if not items:
        raise ValueError(f"no {what}s")
    if name is None:
        return items[0]
    for item in items:
        if item.get("name") == name:
            return item
    raise ValueError(f"no {what} named {name!r}")


def httproute_rule_weights(rule: Mapping[str, Any]) -> dict[str, float]:
    """``{service: weight}`` of one HTTPRoute rule; a backendRef without ``weight`` weighs 1 (Gateway API default).

    >>> httproute_rule_weights({"backendRefs": [{"name": "demo-v1", "port": 8080, "weight": 75},
    ...                                         {"name": "demo-v2", "port": 8080, "weight": 25}]})
    {'demo-v1': 75.0, 'demo-v2': 25.0}
    >>> httproute_rule_weights({"backendRefs": [{"name": "demo-v1"}]})
    {'demo-v1': 1.0}
    """
    weights: dict[str, float] = {}
    for ref in rule.get("backendRefs") or ():
        name = str(ref["name"])
        weights[name] = weights.get(name, 0.0) + float(ref.get("weight", 1))
    return weights


def httproute_weights(route: Mapping[str, Any], rule_name: str | None = None) -> dict[str, float]:
    """The weights of an HTTPRoute object's rule named ``rule_name`` (the first rule when ``None``)."""
    return httproute_rule_weights(_pick(route.get("spec", {}).get("rules") or [], rule_name, "rule"))


def virtualservice_route_weights(http_route: Mapping[str, Any]) -> dict[str, float]:
    """``{host: weight}`` of one VirtualService http route (``host/subset`` when a subset is named).

    Istio semantics: a lone destination takes all traffic whatever its weight says; among several, a missing
    weight is 0.

    >>> virtualservice_route_weights({"route": [{"destination": {"host": "demo-v1"}, "weight": 90},
    ...                                         {"destination": {"host": "demo-v2"}, "weight": 10}]})
    {'demo-v1': 90.0, 'demo-v2': 10.0}
    >>> virtualservice_route_weights({"route": [{"destination": {"host": "demo", "subset": "v1"}}]})
    {'demo/v1': 100.0}
    """
    routes = http_route.get("route") or []
    weights: dict[str, float] = {}
    for dest in routes:
        target = dest["destination"]
        name = f"{target['host']}/{target['subset']}" if target.get("subset") else str(target["host"])
        weight = 100.0 if len(routes) == 1 else float(dest.get("weight", 0))
        weights[name] = weights.get(name, 0.0) + weight
    return weights


def virtualservice_weights(vs: Mapping[str, Any], route_name: str | None = None) -> dict[str, float]:
    """The weights of a VirtualService object's http route named ``route_name`` (the first when ``None``)."""
    return virtualservice_route_weights(_pick(vs.get("spec", {}).get("http") or [], route_name, "http route"))


def replica_weights(ready_replicas: Mapping[str, int]) -> dict[str, float]:
    """Weights when one Service selects every version's pods: each version weighs its ready replicas.

    >>> replica_weights({"demo-v1": 3, "demo-v2": 1})
    {'demo-v1': 3.0, 'demo-v2': 1.0}
    """
    return {name: float(max(0, n)) for name, n in ready_replicas.items()}


# -------------------------------------------------------------------------------------------------- routing


@dataclass
class _Backend:
    name: str
    weight: float
    urls: tuple[str, ...]
    #: round-robin position over the replicas (``next`` on a count is atomic under the GIL)
    turn: Iterator[int] = field(default_factory=itertools.count)

    def next_url(self) -> str:
        return self.urls[next(self.turn) % len(self.urls)]


@dataclass(frozen=True)
class RoutingTable:
    """The backends that can take traffic, their weights and replica URLs, as of one refresh."""

    backends: tuple[_Backend, ...]
    cumulative: tuple[float, ...]

    @staticmethod
    def build(weights: Mapping[str, float], resolve: Resolver) -> RoutingTable:
        backends = []
        for name, weight in sorted(weights.items()):
            if weight <= 0:
                continue
            urls = tuple(u.rstrip("/") for u in resolve(name))
            if urls:
                backends.append(_Backend(name, float(weight), urls))
        return RoutingTable(tuple(backends), tuple(itertools.accumulate(b.weight for b in backends)))

    def weights(self) -> dict[str, float]:
        return {b.name: b.weight for b in self.backends}

    def choose(self, draw: float, exclude: frozenset[str] = frozenset()) -> tuple[str, str] | None:
        """The backend and replica URL for a uniform ``draw`` in [0, 1), skipping replica URLs in ``exclude``.

        >>> table = RoutingTable.build({"a": 25, "b": 75}, lambda name: [f"http://{name}"])
        >>> table.choose(0.1), table.choose(0.5)
        (('a', 'http://a'), ('b', 'http://b'))
        >>> table.choose(0.1, exclude=frozenset({"http://a"}))
        ('b', 'http://b')
        """
        live = [b for b in self.backends if any(u not in exclude for u in b.urls)]
        if len(live) != len(self.backends):
            return RoutingTable(tuple(live), tuple(itertools.accumulate(b.weight for b in live))).choose(draw, exclude)
        if not self.backends:
            return None
        index = min(bisect.bisect_right(self.cumulative, draw * self.cumulative[-1]), len(self.backends) - 1)
        backend = self.backends[index]
        for _ in backend.urls:
            url = backend.next_url()
            if url not in exclude:
                return backend.name, url
        return None  # pragma: no cover - excluded backends were filtered above


class Router:
    """Keeps a routing table no older than ``refresh_interval`` and draws backends from it."""

    def __init__(
        self,
        weights: WeightsSource,
        resolve: Resolver,
        refresh_interval: float = 0.5,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._weights, self._resolve = weights, resolve
        self.refresh_interval = refresh_interval
        self._rng = rng or random.Random()
        self._clock = clock
        self._table: RoutingTable | None = None
        self._refreshed_at = float("-inf")
        self._lock = threading.Lock()

    def table(self) -> RoutingTable | None:
        """The current table, refreshed first when stale (by one caller; the others use the old one meanwhile)."""
        now = self._clock()
        if now - self._refreshed_at >= self.refresh_interval and self._lock.acquire(blocking=self._table is None):
            try:
                if self._clock() - self._refreshed_at >= self.refresh_interval:
                    self._refresh()
            finally:
                self._lock.release()
        return self._table

    @property
    def current(self) -> RoutingTable | None:
        """The table as last refreshed, without refreshing it."""
        return self._table

    def _refresh(self) -> None:
        try:
            self._table = RoutingTable.build(self._weights(), self._resolve)
        except Exception:
            log.exception("cannot refresh the gateway's weights; keeping the last table")
        self._refreshed_at = self._clock()

    def choose(self, exclude: frozenset[str] = frozenset()) -> tuple[str, str] | None:
        table = self.table()
        return None if table is None else table.choose(self._rng.random(), exclude)


# --------------------------------------------------------------------------------------------------- server


class _PooledHTTPServer(HTTPServer):
    """An HTTP server whose connections are served by a bounded thread pool, not a thread each.

    Open connections are tracked so that closing the server also ends idle keep-alive connections at once, instead
    of leaving pool workers blocked in a read until their idle timeout.
    """

    request_queue_size = 256
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], workers: int) -> None:
        super().__init__(address, handler)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="gateway")
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        self._pool.submit(self._serve_connection, request, client_address)

    def _serve_connection(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            with self._open_lock:
                self._open.discard(request)
            self.shutdown_request(request)

    def server_close(self) -> None:
        super().server_close()
        with self._open_lock:
            still_open = list(self._open)
        for connection in still_open:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        self._pool.shutdown(wait=True, cancel_futures=True)


class _WeightCollector(Collector):
    def __init__(self, router: Router) -> None:
        self.router = router

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily("gateway_backend_weight", "weight of each backend in use", labels=["backend"])
        table = self.router.current  # a scrape reads the table, it does not refresh it
        for name, weight in sorted((table.weights() if table else {}).items()):
            family.add_metric([name], weight)
        yield family


class Gateway:
    """The gateway on 127.0.0.1; ``start()`` serves in background threads, ``stop()`` ends it."""

    def __init__(
        self,
        weights: WeightsSource,
        resolve: Resolver,
        port: int = 0,
        refresh_interval: float = 0.5,
        workers: int = 64,
        upstream_timeout: float = 10.0,
        idle_timeout: float = 5.0,
    ) -> None:
        self.router = Router(weights, resolve, refresh_interval)
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "gateway_requests", "requests by backend and answer code", ["backend", "code"], registry=self.registry
        )
        self.registry.register(_WeightCollector(self.router))
        self._client = httpx.Client(
            timeout=upstream_timeout,
            limits=httpx.Limits(max_connections=workers * 2, max_keepalive_connections=workers),
        )
        self._httpd = _PooledHTTPServer(("127.0.0.1", port), _make_handler(self, idle_timeout), workers)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Gateway:
        self._thread = threading.Thread(target=self.serve_forever, name=f"gateway-{self.port}", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._httpd.serve_forever(poll_interval=0.1)

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._client.close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Gateway:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def forward(self, path: str, body: bytes, content_type: str) -> tuple[int, bytes, str, str]:
        """Send one request to a backend drawn by weight: ``(status, body, content type, backend)``."""
        refused: set[str] = set()
        for _ in range(MAX_ATTEMPTS):
            choice = self.router.choose(frozenset(refused))
            if choice is None:
                break
            backend, url = choice
            try:
                answer = self._client.post(url + path, content=body, headers={"Content-Type": content_type})
            except httpx.ConnectError:
                refused.add(url)  # nothing was sent: safe to try another replica
                continue
            except httpx.HTTPError as exc:
                self.requests.labels(backend, "502").inc()
                return (
                    502,
                    f'{{"error": "upstream {backend}: {type(exc).__name__}"}}'.encode(),
                    "application/json",
                    backend,
                )
            self.requests.labels(backend, str(answer.status_code)).inc()
            ctype = answer.headers.get("content-type", "application/json")
            return answer.status_code, answer.content, ctype, backend
        self.requests.labels("", "503").inc()
        return 503, b'{"error": "no backend with weight and a ready replica"}', "application/json", ""


def _make_handler(gateway: Gateway, idle_timeout: float) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out in two writes: Nagle would hold the second
        server_version = "modelops-sandbox-gateway"
        timeout = idle_timeout  # an idle keep-alive connection gives its pool worker back after this long

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s " + format, self.address_string(), *args)

        def _send(self, status: int, body: bytes, content_type: str, backend: str = "") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            if backend:
                self.send_header("X-Modelops-Backend", backend)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                self._send(HTTPStatus.OK, b'{"status": "ok"}', "application/json")
            elif path == "/metrics":
                self._send(HTTPStatus.OK, generate_latest(gateway.registry), CONTENT_TYPE_LATEST)
            else:
                self._send(HTTPStatus.NOT_FOUND, b'{"error": "not found"}', "application/json")

        def do_POST(self) -> None:
            path = self.path.split("?", 1)[0]
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if not 0 <= length <= MAX_BODY:
                self.close_connection = True
                self._send(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, b'{"error": "bad Content-Length"}', "application/json")
                return
            body = self.rfile.read(length)
            if path != "/predict":
                self._send(HTTPStatus.NOT_FOUND, b'{"error": "only /predict is routed"}', "application/json")
                return
            ctype = self.headers.get("Content-Type", "application/json")
            self._send(*gateway.forward(path, body, ctype))

        def handle_one_request(self) -> None:
            try:
                super().handle_one_request()
            except (TimeoutError, ConnectionResetError, BrokenPipeError):
                self.close_connection = True

    return Handler
