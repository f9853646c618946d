"""The operator running for real (kopf, our handlers) in the test process, against the session's local cluster.

It authenticates as ``modelops run`` does (:func:`modelops.handlers.runtime.api_client` and ``connection_info``) with
the kubeconfig of the chart's ServiceAccount (``kube.operator_kubeconfig``): every request it makes is authorized by
the chart's RBAC, and one the chart does not grant is answered 403 and fails the test (:func:`forbidden`). The
Deployments, ReplicaSets, Pods and Jobs it creates are run by the real controllers and the node agent; metrics come
from a prometheus-client exporter the tests set, scraped by the real Prometheus.

Each user of :func:`running_operator` watches namespaces of its own prefix (``it-*`` for tests/integration, ``pl-*``
for the kubectl plugin, ...), so two operators never handle the same object. A fixture imported from a conftest into
another directory's conftest would be a second fixture of the same name: a second operator on the same namespaces.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import kopf
import kopf.testing
from kopf._cogs.helpers import aiohttpcaps
from kubernetes.client import ApiClient, ApiException

from modelops.adapters.kube import KubeApiError, RestKubeApi
from modelops.adapters.prometheus import PrometheusProvider
from modelops.handlers.operator import register
from modelops.handlers.reconcile import Runtime
from modelops.handlers.runtime import api_client, connection_info
from modelops.sandbox.cluster import AuditRecord
from modelops.telemetry import Telemetry
from plugins.cluster import KubeCluster, RequestLog
from plugins.prometheus import Exporter
from plugins.waiting import wait_for

#: the model server the ModelDeployments of these tests run (see its docstring)
MODEL_SERVER = Path(__file__).with_name("model_server.py")


def eventually(check: Callable[[], Any], timeout: float = 30.0, interval: float = 0.1) -> Any:
    """Poll ``check`` until it returns something truthy (assertion errors count as not yet), with a deadline."""
    return wait_for(check, timeout, interval=interval,
                    tolerate=(AssertionError, ApiException, KubeApiError, KeyError, TypeError, IndexError))  # fmt: skip


class Cluster:
    """What a test talks to: the cluster (``kube``), the API as admin (plain dicts), the exporter, the operator's
    runtime, the namespace prefix its operator watches, and the API server's records since the operator started."""

    def __init__(
        self,
        kube: KubeCluster,
        client: ApiClient,
        exporter: Exporter,
        runtime: Runtime,
        prefix: str = "it",
        requests: RequestLog | None = None,
    ) -> None:
        self.kube = kube
        #: every request the API server answered since this operator started (the tests', the operator's, ...)
        self.requests = requests or kube.requests()
        #: the tests' own API access, as the cluster's admin (not the operator's user: not counted as its requests)
        self.client = client
        self.api = RestKubeApi(client)
        self.exporter = exporter
        self.runtime = runtime
        self.prefix = prefix

    def namespace(self, prefix: str | None = None) -> str:
        """A fresh namespace; of this operator's prefix unless told otherwise (then no operator here watches it).

        A watched one is returned once the operator watches it: its first LIST of ModelDeployments there is in the
        audit log. kopf learns of new namespaces from a watch of Namespaces, and on the real API server it was seen
        to miss the ADDED event of a namespace created right after it started (it then noticed the namespace only
        when it changed again); so a namespace it has not listed within a few seconds gets a label, which kopf
        sees as a change."""
        log = self.kube.requests()
        name = self.kube.namespace(prefix or self.prefix)
        if not self.watched(name):
            return name
        user = self.kube.operator_user

        def listed() -> bool:
            return bool(log.matching(user=user, verb="list", resource="modeldeployments", namespace=name))

        for attempt in range(5):
            deadline = time.monotonic() + 5.0
            while time.monotonic() < deadline:
                if listed():
                    return name
                time.sleep(0.1)
            self.kube.cluster.kubectl("label", "namespace", name, f"modelops.io/nudge={attempt}", "--overwrite")
        raise AssertionError(f"the operator never started watching namespace {name}")

    def watched(self, namespace: str) -> bool:
        return namespace.startswith(f"{self.prefix}-")


def forbidden(log: RequestLog, user: str) -> list[AuditRecord]:
    """The requests of ``user`` that the API server refused (403): what the chart's RBAC does not grant."""
    return [r for r in log.records if r.user == user and r.status == 403]


@contextmanager
def running_operator(
    kube: KubeCluster, prometheus: Any, exporter: Exporter, prefix: str, requests: RequestLog | None = None
) -> Iterator[Cluster]:
    """kopf with our handlers, in this process, on namespaces ``<prefix>-*``, as the chart's ServiceAccount.
    ``requests``: the log to keep as ``Cluster.requests`` (default: one from now on)."""
    operator_client = api_client(str(kube.operator_kubeconfig))  # with the operator's User-Agent, as `modelops run`
    metrics = PrometheusProvider(prometheus.url)
    runtime = Runtime(
        api=RestKubeApi(operator_client),
        metrics=metrics,
        telemetry=Telemetry(),
        poll_seconds=0.5,
        idle_seconds=1.0,
    )
    registry = kopf.OperatorRegistry()
    register(registry, lambda: runtime)

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return connection_info(operator_client)

    client = kube.client()
    requests = requests or kube.requests()
    args = ["run", "--standalone", f"--namespace={prefix}-*"]
    # kopf closes its watch streams' responses gracefully, and over TLS that close (close_notify) needs the event loop
    # for a moment more: the runner's pause for old aiohttp versions gives it that, or the stopped loop leaves their
    # sockets open (ResourceWarning: unclosed transport, at garbage collection).
    graceful = mock.patch.object(aiohttpcaps, "AIOHTTP_HAS_GRACEFUL_SHUTDOWN", False)
    try:
        with (
            graceful,
            kopf.testing.KopfRunner(args, registry=registry, settings=kopf.OperatorSettings(), timeout=120) as runner,
        ):
            yield Cluster(kube, client, exporter, runtime, prefix, requests)
    finally:
        metrics.close()
        operator_client.close()
        client.close()
    assert runner.exception is None, runner.exception
