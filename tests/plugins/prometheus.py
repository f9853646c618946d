"""pytest fixtures for a real Prometheus server (see modelops.sandbox.prometheus).

- ``prometheus``: one server for the whole session, already scraping ``prometheus_exporter``. Starting a server or
  adding a target costs ~6 s (Prometheus hands new targets to its scrapers at most every 5 s), so tests share it.
- ``exporter``: the shared exporter, seen by one test: metrics the test creates through it are unregistered at the
  end of the test. Use names unique to the test (``exporter.unique("name")``) since the registry is shared.
- ``exporter_factory``: new exporters on free ports (not scraped unless a test adds them as targets).
- ``prometheus_factory``: private servers (e.g. one a test stops and starts again), stopped at the end of the test.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server
from prometheus_client.registry import Collector

from modelops.sandbox.prometheus import PrometheusServer, ScrapeTarget

_counter = itertools.count()


class Exporter:
    """A prometheus-client registry served over HTTP on 127.0.0.1 (a free port): values are whatever a test sets."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self._server, self._thread = start_http_server(0, addr="127.0.0.1", registry=self.registry)
        self.port: int = self._server.server_port
        self.address = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.address}/metrics"
        self._collectors: list[Collector] = []

    def gauge(self, name: str, documentation: str = "test gauge", labelnames: Sequence[str] = ()) -> Gauge:
        gauge = Gauge(name, documentation, labelnames=labelnames, registry=self.registry)
        self._collectors.append(gauge)
        return gauge

    def counter(self, name: str, documentation: str = "test counter", labelnames: Sequence[str] = ()) -> Counter:
        counter = Counter(name, documentation, labelnames=labelnames, registry=self.registry)
        self._collectors.append(counter)
        return counter

    @staticmethod
    def unique(prefix: str) -> str:
        """A metric name no other test uses (the session exporter is shared)."""
        return f"{re.sub(r'[^a-zA-Z0-9_]', '_', prefix)}_{next(_counter)}"

    def target(self, job: str = "exporter", **labels: str) -> ScrapeTarget:
        return ScrapeTarget(job=job, address=self.address, labels=labels)

    def unregister_all(self) -> None:
        for collector in self._collectors:
            self.registry.unregister(collector)
        self._collectors.clear()

    def close(self) -> None:
        self.unregister_all()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


class _View(Exporter):
    """The shared exporter as one test sees it: same registry and port, its own list of collectors."""

    def __init__(self, shared: Exporter) -> None:  # no super().__init__: no second server
        self.registry = shared.registry
        self.port = shared.port
        self.address = shared.address
        self.url = shared.url
        self._collectors = []

    def close(self) -> None:
        self.unregister_all()


def wait_for_value(
    prometheus: PrometheusServer | str,
    promql: str,
    expected: float | Callable[[list[dict[str, Any]]], bool],
    timeout: float = 20.0,
) -> list[dict[str, Any]]:
    """Poll an instant query until its single sample equals ``expected`` (or ``expected(result)`` holds).

    Returns the result; fails the test with the last result seen when the deadline passes.
    """
    url = prometheus.url if isinstance(prometheus, PrometheusServer) else prometheus
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            body = httpx.post(f"{url}/api/v1/query", data={"query": promql}, timeout=5.0).json()
            last = body
            if body.get("status") == "success":
                result: list[dict[str, Any]] = body["data"]["result"]
                if callable(expected):
                    if expected(result):
                        return result
                elif len(result) == 1 and float(result[0]["value"][1]) == expected:
                    return result
        except httpx.HTTPError as exc:
            last = repr(exc)
        if time.monotonic() >= deadline:
            pytest.fail(f"{promql!r} did not reach {expected!r} within {timeout}s; last answer: {last}")
        time.sleep(0.2)


@pytest.fixture(scope="session")
def prometheus_exporter() -> Iterator[Exporter]:
    exporter = Exporter()
    yield exporter
    exporter.close()


@pytest.fixture(scope="session")
def prometheus(prometheus_exporter: Exporter) -> Iterator[PrometheusServer]:
    """A real Prometheus for the session, scraping ``prometheus_exporter`` every second."""
    with PrometheusServer([prometheus_exporter.target(job="exporter", namespace="tests")]) as server:
        yield server


@pytest.fixture
def exporter(prometheus_exporter: Exporter) -> Iterator[Exporter]:
    view = _View(prometheus_exporter)
    yield view
    view.close()


@pytest.fixture
def exporter_factory() -> Iterator[Callable[[], Exporter]]:
    made: list[Exporter] = []

    def make() -> Exporter:
        made.append(Exporter())
        return made[-1]

    yield make
    for exporter in made:
        exporter.close()


@pytest.fixture
def prometheus_factory() -> Iterator[Callable[..., PrometheusServer]]:
    """Start private Prometheus servers (same arguments as PrometheusServer); all are closed after the test."""
    made: list[PrometheusServer] = []

    def make(targets: Sequence[ScrapeTarget] = (), **kwargs: Any) -> PrometheusServer:
        server = PrometheusServer(targets, **kwargs)
        made.append(server)
        server.start()
        return server

    yield make
    for server in made:
        server.close()
