"""``SandboxEnv`` in-process, on its own local cluster: the node agent runs the Pods of real Deployments, Traefik
moves real requests by the weights of the HTTPRoute in the API (and says so in the route's status), and ``stop()``
leaves no process of it running.

Local cluster only: these tests start the sandbox itself (control plane, node agent, Prometheus, Traefik)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from modelops.adapters.routers.gateway_api import route_acceptance
from modelops.core.observations import Acceptance
from modelops.sandbox.cluster import NODE_NAME
from modelops.sandbox.env import HTTPROUTES, ModelEntry, SandboxEnv
from modelops.sandbox.node import Client
from modelops.sandbox.node._kube import DEPLOYMENTS, PODS, SERVICES, Kind
from modelops.sandbox.traefik import CONTROLLER, route_host
from node.helpers import alive, deployment, gone, wait_for

from .target import local_cluster_only

pytestmark = [
    pytest.mark.e2e,
    local_cluster_only("the sandbox starts a local cluster of its own (with the node agent, Prometheus, Traefik)"),
]
ENDPOINTSLICES = Kind("discovery.k8s.io", "v1", "endpointslices")
MODELDEPLOYMENTS = Kind("modelops.io", "v1alpha1", "modeldeployments")
EVENTS = Kind("", "v1", "events")
REPO = Path(__file__).resolve().parents[2]


def _route(v1: int, v2: int) -> dict[str, Any]:
    refs = [
        {"name": "recommender-v1", "port": 8080, "weight": v1},
        {"name": "recommender-v2", "port": 8080, "weight": v2},
    ]
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "recommender"},
        "spec": {
            "parentRefs": [{"name": "sandbox"}],
            "hostnames": [route_host("default", "recommender")],
            "rules": [{"backendRefs": refs}],
        },
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


def _backends(entry: ModelEntry, n: int = 20) -> set[str]:
    """The versions that answered ``n`` requests (``HTTP <code>`` for an answer that is not a model's)."""
    with httpx.Client(timeout=10, headers=entry.headers) as client:
        answers = [client.post(f"{entry.url}/predict", content=b"{}") for _ in range(n)]
    return {a.json()["version"] if a.status_code == 200 else f"HTTP {a.status_code}" for a in answers}


def _ready_endpoints(kube: Client, service: str) -> list[str]:
    slices = [s for s in kube.list(ENDPOINTSLICES, "default")
              if s["metadata"].get("labels", {}).get("kubernetes.io/service-name") == service]  # fmt: skip
    return [a for s in slices for e in s.get("endpoints") or [] if (e.get("conditions") or {}).get("ready")
            for a in e["addresses"]]  # fmt: skip


def test_traefik_follows_the_httproute_weights_and_accepts_the_route(env: SandboxEnv) -> None:
    kube = Client(env.api_client)
    entry = env.gateway("default/recommender")
    for version in ("v1", "v2"):
        name = f"recommender-{version}"
        kube.create(DEPLOYMENTS, "default", deployment(name, version=version))
        kube.create(SERVICES, "default", _service(name))
    kube.create(HTTPROUTES, "default", _route(100, 0))
    # the EndpointSlice controller publishes the node agent's Pod addresses (not loopback ones)
    addresses = wait_for(
        lambda: (
            all(_ready_endpoints(kube, f"recommender-{v}") for v in ("v1", "v2"))
            and _ready_endpoints(kube, "recommender-v1")
        ),
        60,
        "both versions' EndpointSlices ready",
    )
    assert all(a.startswith("198.18.") for a in addresses), addresses

    before = wait_for(lambda: _backends(entry) == {"v1"} and "v1", what="all traffic on v1")
    kube.patch(HTTPROUTES, "default", "recommender", {"spec": _route(0, 100)["spec"]})
    after = wait_for(lambda: _backends(entry) == {"v2"} and "v2", what="all traffic moved to v2")
    assert (before, after) == ("v1", "v2")
    accepted = wait_for(
        lambda: (
            (a := route_acceptance(kube.get(HTTPROUTES, "default", "recommender") or {})).state == Acceptance.ACCEPTED
            and a
        ),
        30,
        "Traefik accepting the route's last generation",
    )
    assert accepted.message.startswith("accepted by Gateway default/sandbox")
    # and that is Traefik's own word, in the route's status, for the generation last written
    route = kube.get(HTTPROUTES, "default", "recommender") or {}
    (parent,) = route["status"]["parents"]
    assert parent["controllerName"] == CONTROLLER
    conditions = {c["type"]: c for c in parent["conditions"]}
    for type_ in ("Accepted", "ResolvedRefs"):
        assert conditions[type_]["status"] == "True"
        assert conditions[type_]["observedGeneration"] == route["metadata"]["generation"]
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


def test_a_route_traefik_rejects_is_a_condition_on_the_model_deployment_with_traefiks_reason(tmp_path: Path) -> None:
    """The platform's route has a rule to a Service that does not exist: Traefik reports ResolvedRefs=False
    (BackendNotFound) on the route, and the operator shows exactly that on the ModelDeployment."""
    done = subprocess.run(
        [sys.executable, "-m", "modelops.sandbox.models", "train", "--version", "v1", "--out", str(tmp_path / "v1")],
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    uri = json.loads(done.stdout.strip().splitlines()[-1])["uri"]
    md: dict[str, Any] = yaml.safe_load((REPO / "examples" / "recommender.yaml").read_text())
    spec = md["spec"]
    spec["model"]["uri"] = uri
    spec["server"] |= {"replicas": 1, "args": ["--host=$(POD_IP)", "--port=$(PORT)"]}
    for part in ("gates", "monitoring", "retraining", "approvals"):
        spec.pop(part, None)
    route = _route(100, 0)
    route["spec"]["rules"] = [
        {"name": "docs", "matches": [{"path": {"value": "/docs"}}], "backendRefs": [{"name": "no-such", "port": 80}]},
        {"name": "model", "backendRefs": []},
    ]
    spec["traffic"]["gatewayAPI"]["ruleName"] = "model"

    with SandboxEnv(tmp_path / "sandbox", operator_args=["--standalone", "--gate-poll", "1"]) as env:
        kube = Client(env.api_client)
        kube.create(HTTPROUTES, "default", route)
        kube.create(MODELDEPLOYMENTS, "default", md)

        def condition() -> dict[str, Any] | None:
            body = kube.get(MODELDEPLOYMENTS, "default", "recommender") or {}
            found = [c for c in (body.get("status") or {}).get("conditions") or [] if c["type"] == "RouteAccepted"]
            return found[0] if found and found[0]["status"] == "False" else None

        rejected = wait_for(condition, 120, "condition RouteAccepted=False on the ModelDeployment")
        events = wait_for(
            lambda: [e for e in kube.list(EVENTS, "default") if e.get("reason") == "RouteRejected"],
            30,
            "a RouteRejected event",
        )

    assert rejected["reason"] == "BackendNotFound"
    assert rejected["message"].startswith(
        "traefik.io/gateway-controller on Gateway default/sandbox: ResolvedRefs=False"
    )
    assert "default/no-such" in rejected["message"], "Traefik's own message names the missing Service"
    assert events[0]["message"] == rejected["message"]
