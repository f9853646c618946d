"""The node agent on the session's real cluster (``kube``: its agent is ``kube.node``), a namespace per test.

The Pods come from the real controllers (Deployment, ReplicaSet, Job, garbage collector) and the real scheduler;
the agent does only what a kubelet does. A test's namespace is deleted at its end, and the agent must then stop
every process it ran for it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from modelops.sandbox.node import ApiError, Client, Kind
from plugins.cluster import KubeCluster

from .helpers import gone, pids, processes, wait_for

SERVICEACCOUNTS = Kind("", "v1", "serviceaccounts")
NAMESPACES = Kind("", "v1", "namespaces")


@pytest.fixture
def api(kube: KubeCluster) -> Iterator[Client]:
    """The cluster's admin, for the tests' own requests."""
    client = kube.client()
    try:
        yield Client(client)
    finally:
        client.close()


@pytest.fixture
def ns(kube: KubeCluster, api: Client) -> Iterator[str]:
    """A fresh namespace, ready for Pods (its ``default`` ServiceAccount exists); deleted at the end, when no
    process of it may be left."""
    name = kube.namespace("node")
    wait_for(lambda: api.get(SERVICEACCOUNTS, name, "default"), what="the namespace's default ServiceAccount")
    try:
        yield name
    finally:
        running = pids(kube.node, name)
        try:
            api.request("DELETE", NAMESPACES.path(None, name))
        except ApiError as e:
            if e.status != 404:
                raise
        wait_for(lambda: not processes(kube.node, name), 60, f"the agent to stop the Pods of {name}")
        assert gone(running), f"processes of namespace {name} still run: {running}"
