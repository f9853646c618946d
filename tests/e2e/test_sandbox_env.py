"""``SandboxEnv`` in-process, on its own local cluster: the node agent runs the Pods of real Deployments, the gateway
moves real requests by the weights of the HTTPRoute in the API, and ``stop()`` leaves no process of it running.

Local cluster only: these tests start the sandbox itself (control plane, node agent, Prometheus, gateway)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from modelops.sandbox.cluster import NODE_NAME
from modelops.sandbox.endpoints import ServiceEndpoints
from modelops.sandbox.env import HTTPROUTES, SandboxEnv
from modelops.sandbox.node import Client
from modelops.sandbox.node._kube import DEPLOYMENTS, PODS, SERVICES
from node.helpers import alive, deployment, gone, wait_for

from .target import local_cluster_only

pytestmark = [
    pytest.mark.e2e,
    local_cluster_only("the sandbox starts a local cluster of its own (with the node agent, Prometheus, the gateway)"),
]


def _route(v1: int, v2: int) -> dict[str, Any]:
    refs = [
        {"name": "recommender-v1", "port": 8080, "weight": v1},
        {"name": "recommender-v2", "port": 8080, "weight": v2},
    ]
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "recommender"},
        "spec": {"parentRefs": [{"name": "sandbox"}], "rules": [{"backendRefs": refs}]},
    }


def _service(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"selector": {"app": name}, "ports": [{"port": 8080, "targetPort": 8080}]},
    }


@pytest.fixture
def env(tmp_path: Path) -> Iterator[SandboxEnv]:
    with SandboxEnv(tmp_path / "sandbox", operator=False) as sandbox:
        yield sandbox


def _backends(url: str, n: int = 20) -> set[str]:
    with httpx.Client(timeout=10) as client:
        return {client.post(f"{url}/predict", content=b"{}").json()["version"] for _ in range(n)}


def test_the_gateway_follows_the_httproute_weights(env: SandboxEnv) -> None:
    kube = Client(env.api_client)
    for version in ("v1", "v2"):
        name = f"recommender-{version}"
        kube.create(DEPLOYMENTS, "default", deployment(name, version=version))
        kube.create(SERVICES, "default", _service(name))
    kube.create(HTTPROUTES, "default", _route(100, 0))
    endpoints = ServiceEndpoints(kube, "default", max_age=0)
    wait_for(lambda: all(endpoints.resolve(f"recommender-{v}") for v in ("v1", "v2")), 60, "both versions ready")

    before = wait_for(lambda: _backends(env.gateway_url) == {"v1"} and "v1", what="all traffic on v1")
    kube.patch(HTTPROUTES, "default", "recommender", {"spec": _route(0, 100)["spec"]})
    after = wait_for(lambda: _backends(env.gateway_url) == {"v2"} and "v2", what="all traffic moved to v2")

    assert (before, after) == ("v1", "v2")
    # the Pods are the real controllers', bound by the real scheduler to the node agent's Node
    for pod in kube.list(PODS, "default"):
        assert pod["spec"]["nodeName"] == NODE_NAME
        assert pod["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet"


def test_stop_leaves_no_process(tmp_path: Path) -> None:
    sandbox = SandboxEnv(tmp_path / "sandbox", operator=False, gateway_models=())
    sandbox.start()
    try:
        kube = Client(sandbox.api_client)
        kube.create(DEPLOYMENTS, "default", deployment("web", replicas=2))
        wait_for(
            lambda: ((kube.get(DEPLOYMENTS, "default", "web") or {}).get("status") or {}).get("readyReplicas") == 2,
            60,
            "2 ready replicas",
        )
        state = sandbox.state()
        pids = [*sandbox.node.pids(), sandbox.prometheus.pid, *sandbox.cluster.pids().values()]
        assert len(sandbox.node.pids()) == 2
        assert set(sandbox.cluster.pids()) >= {"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"}
        assert [p["ready"] for p in state["processes"]] == [True, True]
        assert len(alive(p for p in pids if p is not None)) == len(pids)
    finally:
        sandbox.stop()

    assert gone([p for p in pids if p is not None], 30)
