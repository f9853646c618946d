"""pytest fixtures for the real Kubernetes control plane (see modelops.sandbox.cluster).

- ``kube``: one local cluster for the whole session (etcd, kube-apiserver, kube-controller-manager,
  kube-scheduler, built from their Go modules), a node agent that runs its Pods as processes, and the operator's
  chart installed with ``helm`` (``replicaCount: 0``: CRDs, ServiceAccount, RBAC). Tests isolate by namespace
  (``kube.namespace()``). Starting it costs ~20 s; the binaries are built once per machine by ``make deps``.
- ``kube.operator_kubeconfig``: a kubeconfig with a token of the chart's ServiceAccount: what the operator runs
  with, so the API server enforces exactly the chart's RBAC.
- ``kube_cluster``: the same object, for tests under a conftest that defines a ``kube`` of its own (tests/adapters).
- ``api_requests``: the requests the API server answered during the current test, from its audit log.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from modelops.sandbox.cluster import NODE_NAME, AuditRecord, LocalCluster
from modelops.sandbox.install import Installation, install_operator, install_router_crds
from modelops.sandbox.node import NodeAgent

_namespaces = itertools.count()


@dataclass
class KubeCluster:
    """The session's cluster: ``cluster`` (control plane), ``node`` (agent), ``installation`` (the chart)."""

    cluster: LocalCluster
    node: NodeAgent
    installation: Installation

    @property
    def kubeconfig(self) -> Path:
        """Admin (``system:masters``): for set-up and the tests' own reads."""
        return self.cluster.kubeconfig

    @property
    def operator_kubeconfig(self) -> Path:
        return self.installation.kubeconfig

    @property
    def operator_user(self) -> str:
        return self.installation.username

    def client(self, kubeconfig: Path | None = None) -> kubernetes.client.ApiClient:
        """A new ``ApiClient`` (admin unless ``kubeconfig``); the caller closes it."""
        return self.cluster.api_client(kubeconfig)

    def namespace(self, prefix: str = "test") -> str:
        """A fresh namespace, created through the API (its ``default`` ServiceAccount is the controller's job)."""
        name = f"{prefix}-{next(_namespaces)}-{os.getpid() % 1000}"
        self.cluster.kubectl("create", "namespace", name)
        return name

    def requests(self) -> RequestLog:
        return RequestLog(self.cluster)


class RequestLog:
    """The audit records from the moment this was made on (the log itself is the session's)."""

    def __init__(self, cluster: LocalCluster) -> None:
        self._cluster = cluster
        # the audit log is written a whole event per line (blocking mode), so its size is a line boundary
        self._offset = cluster.audit_log.stat().st_size if cluster.audit_log.exists() else 0
        self._records: list[AuditRecord] = []

    @property
    def records(self) -> list[AuditRecord]:
        new, self._offset = self._cluster.audit_records(self._offset)
        self._records += new
        return list(self._records)

    def matching(self, **fields: Any) -> list[AuditRecord]:
        """Records whose attributes equal all of ``fields``, e.g. ``matching(verb="patch", subresource="status")``."""
        return [r for r in self.records if all(getattr(r, k) == v for k, v in fields.items())]

    def count(self, **fields: Any) -> int:
        return len(self.matching(**fields))


@pytest.fixture(scope="session")
def kube_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeCluster]:
    """The session's cluster; ``kube`` under a name no conftest shadows (tests/adapters has a ``kube`` fake)."""
    directory = tmp_path_factory.mktemp("cluster")
    cluster = LocalCluster(directory / "control-plane")
    cluster.start()
    node: NodeAgent | None = None
    try:
        install_router_crds(cluster)
        node_kubeconfig = cluster.user_kubeconfig("node", f"system:node:{NODE_NAME}", ["system:nodes"])
        node = NodeAgent(cluster.api_client(node_kubeconfig), directory / "node", name=NODE_NAME)
        node.start()
        installation = install_operator(cluster)
        yield KubeCluster(cluster, node, installation)
    finally:
        if node is not None:
            node.stop()
        cluster.stop()


@pytest.fixture(scope="session")
def kube(kube_cluster: KubeCluster) -> KubeCluster:
    return kube_cluster


@pytest.fixture
def api_requests(kube_cluster: KubeCluster) -> RequestLog:
    return kube_cluster.requests()
