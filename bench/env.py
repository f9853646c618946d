"""The environment a benchmark runs in: the API emulator (in this process), a real Prometheus, an exporter of the
metrics the analyses query, a watch-driven "kubelet", and ``modelops run`` as a child process.

Everything listens on 127.0.0.1 on free ports. The operator is a separate process so that its RSS and CPU
(``psutil``) are its own; the emulator shares this process with the load generator, which is fine: what is
measured of the emulator is its request log, not its cost.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import kubernetes
import psutil
from kubernetes.client import ApiClient
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from modelops.adapters.kube import RestKubeApi
from modelops.sandbox.apiserver import (
    ApiServerEmulator,
    ApiServerThread,
    RequestRecord,
    guess_verb,
    parse_api_path,
    write_kubeconfig,
)
from modelops.sandbox.prometheus import PrometheusServer, ScrapeTarget, free_port

ROOT = Path(__file__).resolve().parents[1]
CRD_DIRS = (ROOT / "crds", ROOT / "operator" / "modelops" / "sandbox" / "crds")
#: The operator's client announces itself so (``modelops.handlers.runtime.USER_AGENT``); kopf's requests do not.
OPERATOR_AGENT = "modelops/"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: whether the emulator's RequestRecord carries the client's User-Agent (added after the emulator's first version)
RECORDS_AGENT = "user_agent" in {f.name for f in dataclasses.fields(RequestRecord)}


def _what(verb: str | None, resource: str | None, subresource: str | None) -> str | None:
    """``verb resource[/subresource]``, e.g. ``patch modeldeployments/status``."""
    if verb is None:
        return None
    return f"{verb} {resource or ''}{'/' + subresource if subresource else ''}"


def wait_for(check: Callable[[], Any], timeout: float, interval: float = 0.5, what: str = "condition") -> Any:
    """Poll ``check`` until it returns something truthy, with a deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(interval)
    raise TimeoutError(f"{what}: not reached within {timeout:.0f} s")


@dataclass
class ApiCounts:
    """The operator's requests (User-Agent ``modelops/...``) in a window, by verb; kopf's are counted apart."""

    reads: int = 0
    writes: int = 0
    kopf: int = 0
    by_verb: dict[str, int] = field(default_factory=dict)


class Emulator:
    """The API emulator served from a thread of this process, with its request log read by position."""

    def __init__(self, workdir: Path) -> None:
        self.emulator = ApiServerEmulator()
        for directory in CRD_DIRS:
            self.emulator.load_crds(directory)
        self.thread = ApiServerThread(self.emulator)
        self.thread.start()
        self.kubeconfig = write_kubeconfig(workdir / "kubeconfig", self.thread.url)

    @property
    def url(self) -> str:
        return self.thread.url

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return self.thread.call(fn, *args, **kwargs)

    def client(self, agent: str) -> ApiClient:
        configuration = kubernetes.client.Configuration()
        configuration.host = self.url
        client = ApiClient(configuration)
        client.user_agent = agent
        return client

    def position(self) -> int:
        """How many requests were served so far."""
        if RECORDS_AGENT:
            return int(self.call(lambda: len(self.emulator.log)))
        return int(self.call(lambda: sum(1 for _ in self.emulator)))

    def _requests(self, start: int, end: int) -> list[tuple[str, str | None, str]]:
        """(method, "verb resource", user agent) of requests ``start:end``: from the emulator's request log when
        its records carry the User-Agent, else from kmock's own request list (it keeps every request's headers)."""
        if RECORDS_AGENT:
            return [
                (r.method, _what(r.verb, r.resource, r.subresource), str(getattr(r, "user_agent", "")))
                for r in self.emulator.log[start:end]
            ]
        out: list[tuple[str, str | None, str]] = []
        for r in list(self.emulator)[start:end]:
            path = parse_api_path(r.url.path)
            verb = guess_verb(r.method, path, dict(r.params))
            what = _what(verb, path.resource if path else None, path.subresource if path else None)
            out.append((r.method, what, r.headers.get("User-Agent", "")))
        return out

    def counts(self, start: int, end: int) -> ApiCounts:
        """Classify requests ``start:end``: the operator's reads and writes (by verb), and kopf's total."""
        out = ApiCounts()
        for method, verb, agent in self.call(self._requests, start, end):
            if not agent.startswith(OPERATOR_AGENT):
                out.kopf += 1
                continue
            key = verb or method.lower()
            out.by_verb[key] = out.by_verb.get(key, 0) + 1
            if method in WRITE_METHODS:
                out.writes += 1
            else:
                out.reads += 1
        return out

    def stop(self) -> None:
        self.thread.stop()


class Kubelet:
    """Marks every Deployment of a namespace rolled out and ready, from a watch (a LIST per pass would cost the
    emulator more than the operator does at 1,000 objects)."""

    def __init__(self, client: ApiClient, namespace: str) -> None:
        self.api = kubernetes.client.AppsV1Api(client)
        self.namespace = namespace
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bench-kubelet", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                watch = kubernetes.watch.Watch()  # type: ignore[no-untyped-call]
                for event in watch.stream(  # type: ignore[no-untyped-call]
                    self.api.list_namespaced_deployment, self.namespace, timeout_seconds=30, _request_timeout=60
                ):
                    if self._stop.is_set():
                        watch.stop()  # type: ignore[no-untyped-call]
                        return
                    if event["type"] in ("ADDED", "MODIFIED"):
                        self._ready(event["raw_object"])
            except Exception:  # a restarted watch replays every object: nothing is lost
                time.sleep(0.2)

    def _ready(self, dep: dict[str, Any]) -> None:
        n = (dep.get("spec") or {}).get("replicas", 1)
        want = {
            "observedGeneration": dep["metadata"].get("generation", 1),
            "replicas": n,
            "readyReplicas": n,
            "updatedReplicas": n,
            "availableReplicas": n,
        }
        if {k: (dep.get("status") or {}).get(k) for k in want} != want:
            with contextlib.suppress(kubernetes.client.ApiException):
                self.api.patch_namespaced_deployment_status(dep["metadata"]["name"], self.namespace, {"status": want})


class Exporter:
    """Gauges the analysis queries read, per (namespace, model, version), served for Prometheus to scrape."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        labels = ("namespace", "model", "version")
        self.errors = Gauge("bench_error_ratio", "errors per request", labels, registry=self.registry)
        self.latency = Gauge("bench_latency_p99_seconds", "p99 latency", labels, registry=self.registry)
        self.port = free_port()
        self._server, _ = start_http_server(self.port, addr="127.0.0.1", registry=self.registry)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def set(self, namespace: str, model: str, version: str, errors: float = 0.01, latency: float = 0.1) -> None:
        self.errors.labels(namespace, model, version).set(errors)
        self.latency.labels(namespace, model, version).set(latency)

    def stop(self) -> None:
        self._server.shutdown()


@dataclass
class Seeded:
    """The harness's API access and the kubelet of a seeded namespace; ``close()`` stops both."""

    harness: ApiClient
    api: RestKubeApi
    kubelet: Kubelet

    def close(self) -> None:
        self.kubelet.stop()
        self.harness.close()  # type: ignore[no-untyped-call]


def seed(
    emulator: Emulator,
    exporter: Exporter,
    namespace: str,
    names: Iterable[str],
    objects: Callable[[str], Iterable[dict[str, Any]]],
) -> Seeded:
    """Create ``namespace``, the gauges of v1 and v2 of every model, and each model's ``objects(name)``; start a
    kubelet that reports the namespace's Deployments ready."""
    harness = emulator.client("bench-harness")
    kubelet = Kubelet(emulator.client("bench-kubelet"), namespace)
    kubelet.start()
    emulator.call(
        emulator.emulator.create_object, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
    )
    for name in names:
        exporter.set(namespace, name, "v1")
        exporter.set(namespace, name, "v2")
        for obj in objects(name):
            emulator.call(emulator.emulator.create_object, obj)
    return Seeded(harness, RestKubeApi(harness), kubelet)


def wait_scraped(url: str, namespace: str, series: int, timeout: float = 60) -> None:
    """Poll until Prometheus holds every gauge series of ``namespace`` (the analyses would read no data before)."""

    def scraped() -> bool:
        query = f'count(bench_error_ratio{{namespace="{namespace}"}})'
        answer = httpx.get(f"{url}/api/v1/query", params={"query": query}, timeout=10).json()
        result = answer.get("data", {}).get("result") or []
        return bool(result) and int(float(result[0]["value"][1])) >= series

    wait_for(scraped, timeout, what=f"Prometheus scraping {series} series of {namespace}")


def prometheus_queries(url: str) -> int:
    """Instant queries Prometheus has answered, from its own ``/metrics`` (reading them is not a query)."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    total = 0
    for line in text.splitlines():
        if line.startswith("prometheus_http_requests_total{") and 'handler="/api/v1/query"' in line:
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


def operator_metric(port: int, name: str, labels: str) -> float:
    """One sample of the operator's own ``/metrics`` (e.g. its reconcile count)."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    for line in text.splitlines():
        if line.startswith(f"{name}{{") and labels in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


class Operator:
    """``modelops run`` as a child process, its RSS sampled in the background (the peak is also read from
    ``VmHWM``, the kernel's own high-water mark)."""

    def __init__(self, kubeconfig: Path, namespace: str, prometheus_url: str, log_path: Path, *extra: str) -> None:
        self.metrics_port = free_port()
        modelops = Path(sys.executable).with_name("modelops")
        argv = [str(modelops)] if modelops.exists() else [sys.executable, "-m", "modelops"]
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            [
                *argv,
                "run",
                "--standalone",
                "--namespace",
                namespace,
                "--kubeconfig",
                str(kubeconfig),
                "--prometheus-url",
                prometheus_url,
                "--metrics-port",
                str(self.metrics_port),
                "--metrics-address",
                "127.0.0.1",
                "--health-port",
                "0",
                *extra,
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.ps = psutil.Process(self.process.pid)
        self.peak_rss = 0
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, name="rss-sampler", daemon=True)
        self._sampler.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.25):
            with contextlib.suppress(psutil.Error):
                self.peak_rss = max(self.peak_rss, self.ps.memory_info().rss)

    def cpu_seconds(self) -> tuple[float, float]:
        """(user, system) CPU seconds of the operator process so far."""
        times = self.ps.cpu_times()
        return float(times.user), float(times.system)

    def main_thread_seconds(self) -> float:
        """CPU seconds of the operator's main thread (the event loop: kopf's watches and handlers, the daemons);
        the rest of its CPU is the reconcile threads' (``--workers``) and the /metrics server's."""
        for thread in self.ps.threads():
            if thread.id == self.process.pid:
                return float(thread.user_time + thread.system_time)
        return 0.0

    def high_water_mark(self) -> int:
        """VmHWM from /proc (bytes): the peak RSS since the process started, as the kernel counts it."""
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        return self.peak_rss

    def reconciles(self) -> float:
        return operator_metric(self.metrics_port, "modelops_reconcile_duration_seconds_count", 'kind="ModelDeployment"')

    def wait_serving(self, timeout: float = 60) -> None:
        def up() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"modelops run exited with {self.process.returncode}")
            try:
                httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2)
            except httpx.HTTPError:
                return False
            return True

        wait_for(up, timeout, 0.2, "operator metrics endpoint")

    def stop(self) -> None:
        self._stop.set()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._log.close()


@contextlib.contextmanager
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="modelops-bench-"))
    try:
        yield path
    finally:
        if not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(path, ignore_errors=True)


def prometheus(exporter: Exporter, scrape_interval: str = "1s") -> PrometheusServer:
    return PrometheusServer([ScrapeTarget("bench", exporter.address)], scrape_interval=scrape_interval)


__all__ = [
    "ApiCounts",
    "Emulator",
    "Exporter",
    "Kubelet",
    "Operator",
    "prometheus",
    "prometheus_queries",
    "wait_for",
    "workdir",
]
