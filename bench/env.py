"""The environment a benchmark runs in: the real local control plane (etcd, kube-apiserver, kube-controller-manager,
kube-scheduler), a status-only node that reports every Pod bound to it Running and Ready, the operator's chart
installed with ``helm`` and ``modelops run`` as a child process authenticated with its ServiceAccount's token, a
real Prometheus and an exporter of the metrics the analyses query.

Everything listens on 127.0.0.1 on free ports. The operator is a separate process so that its RSS and CPU
(``psutil``) are its own; so are the control plane's components, whose CPU is read per window too. The status-only
node (:class:`modelops.sandbox.node.standin.StatusOnlyNode`) runs in this process, with the harness and the exporter:
thousands of Pods cost it one status write each, and no process.

The operator's API requests are counted from the API server's audit log, narrowed by the policy to the operator's
ServiceAccount (``AUDIT_POLICY``): the log has the user and the User-Agent, so the operator's own requests
(``modelops/<version>``) are told from kopf's, which the API server's ``apiserver_request_total`` cannot do (it
has no user label; it is read beside as a cross-check of the status writes).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import yaml
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from modelops.adapters.kube import HTTPROUTES, MODELDEPLOYMENTS, RestKubeApi
from modelops.sandbox.cluster import NODE_NAME, AuditRecord, LocalCluster
from modelops.sandbox.install import Installation, install_operator, install_router_crds
from modelops.sandbox.node.standin import StatusOnlyNode
from modelops.sandbox.prometheus import PrometheusServer, ScrapeTarget, free_port

#: The operator's client announces itself so (``modelops.handlers.runtime.USER_AGENT``); kopf's requests do not.
OPERATOR_AGENT = "modelops/"
#: The audit log's verbs that write (reads are get, list, watch).
WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})
#: The namespace of the chart's release (``modelops.sandbox.install.NAMESPACE``): its ServiceAccounts' group.
OPERATOR_GROUP = "system:serviceaccounts:modelops-system"
#: Only the operator's requests are audited: every audit event costs the API server (encoding, a blocking write),
#: and the control plane's, the node's and the harness's own requests are not what is counted.
AUDIT_POLICY: dict[str, Any] = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived", "ResponseStarted"],
    "rules": [{"level": "Metadata", "userGroups": [OPERATOR_GROUP]}, {"level": "None"}],
}
#: Client rate limits of the controller-manager and the scheduler: their defaults (20 and 50 requests/s) would make
#: the ReplicaSet controller and the scheduler, not the operator, set the pace at thousands of Pods.
CONTROLLER_QPS, CONTROLLER_BURST = 200, 400
#: The Services' ClusterIPs: two Services per ModelDeployment during a canary do not fit the cluster's /24.
SERVICE_CIDR = "10.0.0.0/16"
#: What :meth:`BenchCluster.seed` creates, by kind.
KINDS = {r.kind: r for r in (HTTPROUTES, MODELDEPLOYMENTS)}


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
    #: the operator's requests answered with an error, by ``verb resource code`` (e.g. a 409 Conflict)
    failed: dict[str, int] = field(default_factory=dict)


def _what(verb: str, resource: str, subresource: str) -> str:
    """``verb resource[/subresource]``, e.g. ``patch modeldeployments/status``."""
    return f"{verb} {resource}{'/' + subresource if subresource else ''}"


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (0 when it is gone)."""
    with contextlib.suppress(psutil.Error):
        times = psutil.Process(pid).cpu_times()
        return float(times.user + times.system)
    return 0.0


class BenchCluster:
    """One run's cluster: the control plane under ``directory``, the router CRDs, ``namespace``, the chart (with
    ``watchNamespaces: [namespace]``: a Role there), and a status-only node. ``audit``: the operator-only audit log
    (without it :meth:`counts` has nothing to count)."""

    def __init__(self, directory: Path, namespace: str, *, audit: bool = True) -> None:
        self.directory = directory
        self.namespace = namespace
        directory.mkdir(parents=True, exist_ok=True)
        policy = directory / "bench-audit-policy.yaml"
        policy.write_text(yaml.safe_dump(AUDIT_POLICY, sort_keys=False))
        scheduler = directory / "bench-scheduler.yaml"
        control_plane = directory / "control-plane"
        scheduler.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "kubescheduler.config.k8s.io/v1",
                    "kind": "KubeSchedulerConfiguration",
                    "clientConnection": {
                        # written by LocalCluster.start() before the scheduler starts
                        "kubeconfig": str(control_plane / "kubeconfigs" / "kube-scheduler.kubeconfig"),
                        "qps": CONTROLLER_QPS,
                        "burst": CONTROLLER_BURST,
                    },
                    "leaderElection": {"leaderElect": False},
                },
                sort_keys=False,
            )
        )
        # A flag given twice takes its last value: these follow LocalCluster's own.
        self.cluster = LocalCluster(
            control_plane,
            audit=audit,
            extra_args={
                "kube-apiserver": [
                    *([f"--audit-policy-file={policy}"] if audit else []),
                    f"--service-cluster-ip-range={SERVICE_CIDR}",
                ],
                "kube-controller-manager": [
                    f"--kube-api-qps={CONTROLLER_QPS}",
                    f"--kube-api-burst={CONTROLLER_BURST}",
                    f"--service-cluster-ip-range={SERVICE_CIDR}",
                ],
                "kube-scheduler": [f"--config={scheduler}"],
            },
        )
        self.audit = audit
        self.node: StatusOnlyNode | None = None
        self.installation: Installation | None = None
        self._admin: Any = None
        self._http: httpx.Client | None = None

    # ------------------------------------------------------------------------------------------- lifecycle

    def __enter__(self) -> BenchCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> BenchCluster:
        started = time.monotonic()
        try:
            self.cluster.start()
            install_router_crds(self.cluster)
            self._admin = self.cluster.api_client()
            self._admin.user_agent = "bench-harness"
            self.api = RestKubeApi(self._admin)
            self.cluster.kubectl("create", "namespace", self.namespace)
            self.installation = install_operator(self.cluster, values={"watchNamespaces": [self.namespace]})
            identity = self.cluster.user_kubeconfig("node", f"system:node:{NODE_NAME}", ["system:nodes"])
            node_client = self.cluster.api_client(identity)
            node_client.user_agent = "bench-status-only-node"
            self.node = StatusOnlyNode(node_client, name=NODE_NAME)
            self.node.start()
            admin = self.cluster.pki.client("admin", "admin", ["system:masters"])
            context = ssl.create_default_context(cafile=str(self.cluster.ca))
            context.load_cert_chain(str(admin.cert), str(admin.key))
            self._http = httpx.Client(base_url=self.cluster.server, verify=context, timeout=30)
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - started
        return self

    def stop(self) -> None:
        if self.node is not None:
            self.node.stop()
            self.node = None
        if self._http is not None:
            self._http.close()
            self._http = None
        if self._admin is not None:
            self._admin.close()
            self._admin = None
        self.cluster.stop()

    @property
    def operator_kubeconfig(self) -> Path:
        assert self.installation is not None
        return self.installation.kubeconfig

    # ------------------------------------------------------------------------------------------- objects

    def seed(
        self, exporter: Exporter, names: Iterable[str], objects: Callable[[str], Iterable[dict[str, Any]]]
    ) -> None:
        """The gauges of v1 and v2 of every model, then each model's ``objects(name)`` (created by the admin, a few
        at a time: the operator is not running yet, so this only shortens the set-up)."""
        names = list(names)
        for name in names:
            exporter.set(self.namespace, name, "v1")
            exporter.set(self.namespace, name, "v2")

        def create(name: str) -> None:
            for obj in objects(name):
                self.api.create(KINDS[obj["kind"]], self.namespace, obj)

        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(create, names))

    def model_deployments(self) -> list[dict[str, Any]]:
        return self.api.list(MODELDEPLOYMENTS, self.namespace)

    def statuses(self) -> list[dict[str, Any]]:
        return [o.get("status") or {} for o in self.model_deployments()]

    # ------------------------------------------------------------------------------------------- counting

    def position(self) -> int:
        """Where the audit log's last complete line ends now (a line being written belongs to the next window)."""
        log = self.cluster.audit_log
        if not log.exists():
            return 0
        with log.open("rb") as f:
            size = f.seek(0, os.SEEK_END)
            back = min(size, 1 << 16)
            f.seek(size - back)
            tail = f.read(back)
        return size - back + tail.rfind(b"\n") + 1

    def counts(self, start: int, end: int) -> ApiCounts:
        """Classify the audit records between byte offsets ``start`` and ``end`` (from :meth:`position`): the
        operator's reads and writes (by verb), and kopf's total (same ServiceAccount, kopf's own User-Agent)."""
        assert self.installation is not None
        with self.cluster.audit_log.open("rb") as f:
            f.seek(start)
            data = f.read(end - start)
        out = ApiCounts()
        for line in data.splitlines():
            if not line.strip():
                continue
            record = AuditRecord.from_event(json.loads(line))
            if record.user != self.installation.username:
                continue
            if not record.user_agent.startswith(OPERATOR_AGENT):
                out.kopf += 1
                continue
            key = _what(record.verb, record.resource, record.subresource)
            out.by_verb[key] = out.by_verb.get(key, 0) + 1
            if not 200 <= record.status < 300:
                failed = f"{key} {record.status}"
                out.failed[failed] = out.failed.get(failed, 0) + 1
            if record.verb in WRITE_VERBS:
                out.writes += 1
            else:
                out.reads += 1
        return out

    def apiserver_requests(self) -> dict[str, float]:
        """The API server's own ``apiserver_request_total`` (every client), summed by ``VERB group/resource[/sub]``."""
        assert self._http is not None
        text = self._http.get("/metrics").text
        out: dict[str, float] = {}
        for line in text.splitlines():
            if not line.startswith("apiserver_request_total{"):
                continue
            labels_text, value = line[len("apiserver_request_total{") :].rsplit("} ", 1)
            labels = dict(part.split("=", 1) for part in labels_text.split(",") if "=" in part)
            labels = {k: v.strip('"') for k, v in labels.items()}
            resource = labels.get("resource", "")
            if not resource:
                continue
            sub = labels.get("subresource", "")
            key = f"{labels.get('verb', '')} {labels.get('group', '')}/{resource}{'/' + sub if sub else ''}"
            out[key] = out.get(key, 0.0) + float(value)
        return out

    def cpu(self, **extra: int | None) -> dict[str, float]:
        """CPU seconds so far of each control-plane component, this process (the status-only node, the harness, the
        exporter) and ``extra`` processes by name."""
        out = {name: process_cpu(pid) for name, pid in self.cluster.pids().items()}
        out["bench (status-only node, harness)"] = process_cpu(os.getpid())
        for name, pid in extra.items():
            if pid is not None:
                out[name] = process_cpu(pid)
        return out


def machine_busy() -> float:
    """CPU seconds the whole machine spent not idle so far (every core)."""
    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


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

    def rss(self) -> int:
        """The operator's resident set size now (bytes)."""
        with contextlib.suppress(psutil.Error):
            return int(self.ps.memory_info().rss)
        return 0

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
    "BenchCluster",
    "Exporter",
    "Operator",
    "machine_busy",
    "prometheus",
    "prometheus_queries",
    "wait_for",
    "workdir",
]
