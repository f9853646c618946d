"""The operator running for real against the emulator and a real Prometheus, for the plugin and backtest tests.

Built from the integration tests' pieces (``Cluster``, ``Kubelet``, the handlers' registry), but watching its own
namespace pattern: a fixture imported from ``integration.conftest`` into another directory's conftest would be a
second fixture of the same name, i.e. a second operator on the same ``it-*`` namespaces. Module-scoped by the
callers, so it stops when their module is done.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import kopf
import kopf.testing
import kubernetes

from integration.conftest import SANDBOX_CRDS, Cluster, Kubelet
from modelops.adapters.kube import RestKubeApi
from modelops.adapters.prometheus import PrometheusProvider
from modelops.handlers.operator import register
from modelops.handlers.reconcile import Runtime
from modelops.telemetry import Telemetry
from plugins.prometheus import Exporter

_counter = itertools.count()


class PrefixedCluster(Cluster):
    """A :class:`Cluster` whose namespaces all carry the prefix its operator watches."""

    prefix = "it"

    def namespace(self, prefix: str = "") -> str:
        name = f"{self.prefix}-{next(_counter)}"
        kubernetes.client.CoreV1Api(self.client).create_namespace({"metadata": {"name": name}})
        self.kubelet.namespaces.add(name)
        return name


@contextmanager
def running_operator(apiserver: Any, prometheus: Any, exporter: Exporter, prefix: str) -> Iterator[PrefixedCluster]:
    apiserver.call(apiserver.emulator.load_crds, SANDBOX_CRDS)
    client = apiserver.client()
    api = RestKubeApi(client)
    metrics = PrometheusProvider(prometheus.url)
    runtime = Runtime(api=api, metrics=metrics, telemetry=Telemetry(), poll_seconds=0.5, idle_seconds=1.0)
    kubelet = Kubelet(api)
    kubelet.start()
    registry = kopf.OperatorRegistry()
    register(registry, lambda: runtime)

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return kopf.ConnectionInfo(server=apiserver.url, insecure=True)

    args = ["run", "--standalone", f"--namespace={prefix}-*"]
    try:
        with kopf.testing.KopfRunner(args, registry=registry, settings=kopf.OperatorSettings(), timeout=120) as runner:
            cluster = PrefixedCluster(client, api, kubelet, exporter, runtime, apiserver)
            cluster.prefix = prefix
            yield cluster
    finally:
        kubelet.stop()
        metrics.close()
        client.close()
    assert runner.exception is None, runner.exception
