"""The status-only node (``modelops.sandbox.node.standin``): Pods the real controllers make and the real scheduler
binds to it are reported Running and Ready, with addresses the EndpointSlice controller publishes, and their
deletion is finished; nothing runs. It registers a tainted Node beside the session's node agent, so only the Pods
of these tests (which tolerate the taint) land on it."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterator
from typing import Any

import pytest

from modelops.sandbox.node import ApiError, Client, Kind
from modelops.sandbox.node._kube import DEPLOYMENTS, PODS, SERVICES
from modelops.sandbox.node.standin import StatusOnlyNode, is_running, running_status
from plugins.cluster import KubeCluster

from .helpers import wait_for

pytestmark = pytest.mark.integration

NODES = Kind("", "v1", "nodes")
LEASES = Kind("coordination.k8s.io", "v1", "leases")
ENDPOINTSLICES = Kind("discovery.k8s.io", "v1", "endpointslices")
TAINT = {"key": "modelops.io/status-only", "value": "true", "effect": "NoSchedule"}
NETWORK = ipaddress.ip_network("10.244.0.0/16")


@pytest.fixture
def node(kube: KubeCluster, api: Client) -> Iterator[StatusOnlyNode]:
    name = f"status-only-{os.getpid()}"
    identity = kube.cluster.user_kubeconfig(f"node-{name}", f"system:node:{name}", ["system:nodes"])
    client = kube.client(identity)
    standin = StatusOnlyNode(client, name=name, taints=[TAINT], lease_seconds=8)
    standin.start()
    try:
        yield standin
    finally:
        standin.stop()
        client.close()
        try:  # its Pods (if any are left) go with it: the Pod garbage collector deletes them
            api.request("DELETE", NODES.path(None, name))
        except ApiError as e:
            if e.status != 404:
                raise


def deployment(name: str, node: str, replicas: int) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "nodeSelector": {"kubernetes.io/hostname": node},
                    "tolerations": [{"key": TAINT["key"], "operator": "Exists", "effect": "NoSchedule"}],
                    # an image and no command: the node agent could not run this; nothing needs to
                    "containers": [{"name": "server", "image": "example/server:1", "ports": [{"containerPort": 80}]}],
                },
            },
        },
    }


def pods_of(api: Client, ns: str, app: str) -> list[dict[str, Any]]:
    return [p for p in api.list(PODS, ns) if (p["metadata"].get("labels") or {}).get("app") == app]


def available(api: Client, ns: str, name: str, n: int) -> bool:
    status = (api.get(DEPLOYMENTS, ns, name) or {}).get("status") or {}
    return all(status.get(k) == n for k in ("replicas", "readyReplicas", "availableReplicas"))


def test_running_status_is_what_a_kubelet_writes() -> None:
    pod = {"spec": {"containers": [{"name": "a", "image": "x:1"}, {"name": "b", "image": "y:2"}]}}
    status = running_status(pod, "10.244.0.7")
    assert is_running(status)
    assert [(c["name"], c["image"], c["ready"]) for c in status["containerStatuses"]] == [
        ("a", "x:1", True),
        ("b", "y:2", True),
    ]
    assert not is_running({**status, "phase": "Pending"})
    assert not is_running({**status, "conditions": [{"type": "Ready", "status": "False"}]})


def test_pods_are_reported_running_and_deletions_finished(
    kube: KubeCluster, api: Client, ns: str, node: StatusOnlyNode
) -> None:
    api.create(DEPLOYMENTS, ns, deployment("web", node.name, 3))
    api.create(
        SERVICES,
        ns,
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
         "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}},
    )  # fmt: skip
    wait_for(lambda: available(api, ns, "web", 3), 60, "the Deployment's 3 replicas available")

    pods = pods_of(api, ns, "web")
    assert {p["spec"]["nodeName"] for p in pods} == {node.name}
    ips = [p["status"]["podIP"] for p in pods]
    assert len(set(ips)) == 3
    assert all(ipaddress.ip_address(ip) in NETWORK for ip in ips)
    for p in pods:
        assert is_running(p["status"])
        types = {c["type"]: c["status"] for c in p["status"]["conditions"]}
        assert types["PodScheduled"] == "True"  # the scheduler's condition is kept
        assert types["ContainersReady"] == "True"
    assert node.running() == 3

    def published() -> set[str]:
        slices = api.list(ENDPOINTSLICES, ns)
        return {a for s in slices for e in s.get("endpoints") or [] for a in e.get("addresses") or []}

    wait_for(lambda: published() == set(ips), 30, "the EndpointSlice controller publishing the Pods' addresses")

    lease = api.get(LEASES, "kube-node-lease", node.name) or {}
    assert lease.get("spec", {}).get("holderIdentity") == node.name
    registered = api.request("GET", NODES.path(None, node.name))
    ready = {c["type"]: c["status"] for c in registered["status"]["conditions"]}
    assert ready["Ready"] == "True"

    # Scaling down: the ReplicaSet controller deletes gracefully, the node finishes it (grace period 0).
    api.patch(DEPLOYMENTS, ns, "web", {"spec": {"replicas": 1}})
    wait_for(lambda: len(pods_of(api, ns, "web")) == 1, 60, "two of the Pods deleted")
    wait_for(lambda: available(api, ns, "web", 1), 30, "the Deployment at 1 replica")
    assert node.deleted >= 2
    wait_for(lambda: node.running() == 1, 10, "the node to forget the deleted Pods")
