"""The operator running for real (kopf, our handlers) against the API emulator and a real Prometheus.

One operator serves the whole module set (kopf's graceful stop takes seconds); it watches namespaces ``it-*``, and
each test gets its own namespace. A small "kubelet" thread plays the part of the controllers this environment lacks:
it reports every Deployment's replicas ready, so the operator sees readiness through Deployment status as it would
in a cluster. Metrics come from a prometheus-client exporter the tests set, scraped by the real Prometheus.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kopf
import kopf.testing
import kubernetes
import pytest
import yaml
from kubernetes.client import ApiClient, ApiException

from modelops.adapters.kube import DEPLOYMENTS, JOBS, PODS, RestKubeApi
from modelops.adapters.prometheus import PrometheusProvider
from modelops.handlers.operator import register
from modelops.handlers.reconcile import Runtime
from modelops.handlers.runtime import USER_AGENT
from modelops.telemetry import Telemetry
from plugins.prometheus import Exporter

SANDBOX_CRDS = Path(__file__).resolve().parents[2] / "operator" / "modelops" / "sandbox" / "crds"
_namespaces = itertools.count()


def eventually(check: Callable[[], Any], timeout: float = 30.0, interval: float = 0.1) -> Any:
    """Poll ``check`` until it returns something truthy (assertion errors count as not yet), with a deadline."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
        except (AssertionError, ApiException, KeyError, TypeError) as exc:
            last = exc
        else:
            if result:
                return result
        time.sleep(interval)
    raise AssertionError(f"not true after {timeout} s: {last!r}") from last


class Kubelet:
    """Reports every Deployment in the watched namespaces as rolled out and ready (observedGeneration, replicas)."""

    def __init__(self, api: RestKubeApi) -> None:
        self.api = api
        self.namespaces: set[str] = set()
        self.paused: set[str] = set()  # Deployment names never made ready (a candidate that never starts)
        #: what each Job "prints" as its termination message, by the value of its MODEL_VERSION env
        self.job_results: dict[str, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="kubelet", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _loop(self) -> None:
        while not self._stop.wait(0.2):
            for ns in list(self.namespaces):
                try:
                    self.sync(ns)
                except Exception:  # the namespace may be going away
                    continue

    def sync(self, namespace: str) -> None:
        self.sync_jobs(namespace)
        for dep in self.api.list(DEPLOYMENTS, namespace):
            name = dep["metadata"]["name"]
            if name in self.paused:
                continue
            n = dep["spec"].get("replicas", 1)
            want = {
                "observedGeneration": dep["metadata"].get("generation", 1),
                "replicas": n,
                "readyReplicas": n,
                "updatedReplicas": n,
                "availableReplicas": n,
            }
            if {k: (dep.get("status") or {}).get(k) for k in want} != want:
                self.api.patch(DEPLOYMENTS, namespace, name, {"status": want}, subresource="status")

    def sync_jobs(self, namespace: str) -> None:
        """A Job runs "instantly": its Pod terminates with the message set for its model version, and the Job
        completes (as the local runner reports a real process; see tests/sandbox_runner)."""
        for job in self.api.list(JOBS, namespace):
            if (job.get("status") or {}).get("conditions"):
                continue
            name = job["metadata"]["name"]
            container = job["spec"]["template"]["spec"]["containers"][0]
            env = {e["name"]: e.get("value", "") for e in container.get("env", [])}
            message = self.job_results.get(env.get("MODEL_VERSION", ""), '{"metrics": {}}')
            pod = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": f"{name}-run", "labels": {"job-name": name}},
                "spec": {"containers": [{"name": container["name"], "image": container.get("image", "x")}]},
            }
            self.api.create(PODS, namespace, pod)
            terminated = {"exitCode": 0, "reason": "Completed", "message": message}
            self.api.patch(
                PODS,
                namespace,
                f"{name}-run",
                {
                    "status": {
                        "phase": "Succeeded",
                        "containerStatuses": [{"name": container["name"], "state": {"terminated": terminated}}],
                    }
                },
                subresource="status",
            )
            done = {"type": "Complete", "status": "True", "reason": "Completed"}
            self.api.patch(
                JOBS, namespace, name, {"status": {"succeeded": 1, "conditions": [done]}}, subresource="status"
            )


class Cluster:
    """What a test talks to: the API (plain dicts), the kubelet, the exporter, the operator's runtime."""

    def __init__(
        self,
        client: ApiClient,
        api: RestKubeApi,
        kubelet: Kubelet,
        exporter: Exporter,
        runtime: Runtime,
        apiserver: Any,
    ) -> None:
        #: the tests' own API access (the client's default User-Agent: not counted as the operator's requests)
        self.client = client
        self.api = api
        self.kubelet = kubelet
        self.exporter = exporter
        self.runtime = runtime
        self.apiserver = apiserver

    def namespace(self, prefix: str = "it") -> str:
        name = f"{prefix}-{next(_namespaces)}"
        kubernetes.client.CoreV1Api(self.client).create_namespace({"metadata": {"name": name}})
        self.kubelet.namespaces.add(name)
        return name


@pytest.fixture(scope="session")
def cluster(apiserver: Any, prometheus: Any, prometheus_exporter: Exporter) -> Iterator[Cluster]:
    apiserver.call(apiserver.emulator.load_crds, SANDBOX_CRDS)
    operator_client = apiserver.client()
    operator_client.user_agent = USER_AGENT  # as `modelops run` does: the RBAC test tells its requests apart
    client = apiserver.client()
    api = RestKubeApi(client)
    metrics = PrometheusProvider(prometheus.url)
    runtime = Runtime(
        api=RestKubeApi(operator_client),
        metrics=metrics,
        telemetry=Telemetry(),
        poll_seconds=0.5,
        idle_seconds=1.0,
    )
    kubelet = Kubelet(RestKubeApi(client))
    kubelet.start()
    registry = kopf.OperatorRegistry()
    register(registry, lambda: runtime)

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return kopf.ConnectionInfo(server=apiserver.url, insecure=True)

    settings = kopf.OperatorSettings()
    args = ["run", "--standalone", "--namespace=it-*"]
    with kopf.testing.KopfRunner(args, registry=registry, settings=settings, timeout=120) as runner:
        yield Cluster(client, api, kubelet, prometheus_exporter, runtime, apiserver)
    kubelet.stop()
    metrics.close()
    operator_client.close()
    client.close()
    assert runner.exception is None, runner.exception


def load(text: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(text)
    return doc
