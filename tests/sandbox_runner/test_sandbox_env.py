"""``SandboxEnv`` in-process: the gateway moves real requests by the weights of the route in the emulator."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
import yaml

from modelops.sandbox.env import HTTPROUTES, MODELDEPLOYMENTS, SandboxEnv
from modelops.sandbox.runner import Client
from modelops.sandbox.runner._kube import DEPLOYMENTS, SERVICES

from .helpers import deployment, gone, service, wait_for

pytestmark = pytest.mark.e2e

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "recommender.yaml"


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


@pytest.fixture
def env(tmp_path: Path) -> Iterator[SandboxEnv]:
    with SandboxEnv(tmp_path / "sandbox", operator=False) as sandbox:
        yield sandbox


def _backends(url: str, n: int = 20) -> set[str]:
    with httpx.Client() as client:
        return {client.post(f"{url}/predict", content=b"{}").json()["version"] for _ in range(n)}


def test_the_gateway_follows_the_httproute_weights(env: SandboxEnv) -> None:
    kube = Client(env.api_client)
    kube.create(MODELDEPLOYMENTS, "default", yaml.safe_load(EXAMPLE.read_text()))
    for version in ("v1", "v2"):
        name = f"recommender-{version}"
        kube.create(
            DEPLOYMENTS, "default", deployment(name, version=version, labels={"modelops.io/model": "recommender"})
        )
        kube.create(SERVICES, "default", service(name, {"app": name}))
    kube.create(HTTPROUTES, "default", _route(100, 0))
    wait_for(lambda: all(env.runner.resolve(f"recommender-{v}") for v in ("v1", "v2")), what="both versions ready")

    before = wait_for(lambda: _backends(env.gateway_url) == {"v1"} and "v1", what="all traffic on v1")
    route = kube.get(HTTPROUTES, "default", "recommender") or {}
    kube.patch(HTTPROUTES, "default", "recommender", {"spec": _route(0, 100)["spec"], "metadata": {
        "resourceVersion": route["metadata"]["resourceVersion"]}})  # fmt: skip
    after = wait_for(lambda: _backends(env.gateway_url) == {"v2"} and "v2", what="all traffic moved to v2")

    assert (before, after) == ("v1", "v2")


def test_stop_leaves_no_process(tmp_path: Path) -> None:
    sandbox = SandboxEnv(tmp_path / "sandbox", operator=False, gateway_models=())
    sandbox.start()
    try:
        kube = Client(sandbox.api_client)
        kube.create(DEPLOYMENTS, "default", deployment("web", replicas=2))
        wait_for(lambda: len(sandbox.runner.pids()) == 2 and all(p.ready for p in sandbox.runner.processes()))
        pids = [*sandbox.runner.pids(), sandbox.prometheus.pid]
        assert all(psutil.pid_exists(p) for p in pids if p is not None)
    finally:
        sandbox.stop()

    assert gone([p for p in pids if p is not None])
