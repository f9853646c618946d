"""A Deployment becomes local processes whose readiness is written back; scaling, new templates, crashes, deletion."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from modelops.sandbox.runner import Client, LocalRunner
from modelops.sandbox.runner._kube import DEPLOYMENTS, PODS, SERVICES

from .helpers import TINY_SERVER, condition, deployment, gone, service, wait_for

pytestmark = pytest.mark.integration


def _status(kube: Client, ns: str, name: str) -> dict[str, Any]:
    return (kube.get(DEPLOYMENTS, ns, name) or {}).get("status") or {}


def _ready(kube: Client, ns: str, name: str, n: int) -> dict[str, Any] | None:
    """The Deployment's status once exactly ``n`` replicas exist, all updated and ready, for its latest generation."""
    obj = kube.get(DEPLOYMENTS, ns, name) or {}
    status = obj.get("status") or {}
    done = (
        status.get("observedGeneration") == obj.get("metadata", {}).get("generation")
        and status.get("replicas") == n
        and status.get("updatedReplicas") == n
        and status.get("readyReplicas") == n
    )
    return status if done else None


def _pids(runner: LocalRunner, name: str) -> set[int]:
    return {p.pid for p in runner.processes() if p.owner == name and p.pid is not None}


def test_a_deployment_becomes_ready_processes_with_status_pods_and_endpoints(
    runner: LocalRunner, kube: Client, apiserver_namespace: str
) -> None:
    ns = apiserver_namespace
    kube.create(DEPLOYMENTS, ns, deployment("web", replicas=2))
    kube.create(SERVICES, ns, service("web", {"app": "web"}))

    status = wait_for(lambda: _ready(kube, ns, "web", 2), what="2 ready replicas")

    assert (status["observedGeneration"], status["availableReplicas"]) == (1, 2)
    assert condition({"status": status}, "Available")["status"] == "True"
    assert condition({"status": status}, "Progressing")["reason"] == "NewReplicaSetAvailable"
    pids = _pids(runner, "web")
    assert len(pids) == 2
    assert all(TINY_SERVER in psutil.Process(pid).cmdline() for pid in pids)
    urls = wait_for(lambda: runner.resolve("web", ns) if len(runner.resolve("web", ns)) == 2 else None)
    answers = {httpx.post(f"{url}/predict", content=b"{}").json()["pid"] for url in urls}
    assert answers == pids
    pods = [p for p in kube.list(PODS, ns) if p["metadata"]["labels"].get("app") == "web"]
    assert sorted(p["metadata"]["name"] for p in pods) == sorted(p.pod for p in runner.processes())
    for pod in pods:
        assert pod["status"]["podIP"] == "127.0.0.1"
        assert pod["metadata"]["labels"]["modelops.io/version"] == "v1"
        assert pod["metadata"]["ownerReferences"][0]["kind"] == "Deployment"


def test_container_env_and_port_reach_the_process(runner: LocalRunner, kube: Client, apiserver_namespace: str) -> None:
    ns = apiserver_namespace
    kube.create(DEPLOYMENTS, ns, deployment("env", env={"MODEL_NAME": "tiny", "VERSION": "v7"}))
    wait_for(lambda: _ready(kube, ns, "env", 1))

    (proc,) = runner.processes()
    environ = psutil.Process(proc.pid).environ()

    assert (environ["MODEL_NAME"], environ["VERSION"]) == ("tiny", "v7")
    assert proc.url == f"http://127.0.0.1:{environ['PORT']}"


def test_scaling_up_and_down_follows_spec_replicas(runner: LocalRunner, kube: Client, apiserver_namespace: str) -> None:
    ns = apiserver_namespace
    kube.create(DEPLOYMENTS, ns, deployment("scale", replicas=1))
    wait_for(lambda: _ready(kube, ns, "scale", 1))

    kube.patch(DEPLOYMENTS, ns, "scale", {"spec": {"replicas": 3}})
    wait_for(lambda: _ready(kube, ns, "scale", 3), what="scaled up to 3")
    three = _pids(runner, "scale")
    kube.patch(DEPLOYMENTS, ns, "scale", {"spec": {"replicas": 1}})
    wait_for(lambda: _ready(kube, ns, "scale", 1), what="scaled down to 1")

    assert len(three) == 3
    remaining = _pids(runner, "scale")
    assert len(remaining) == 1
    assert gone(three - remaining)


def test_a_new_pod_template_replaces_every_process(runner: LocalRunner, kube: Client, apiserver_namespace: str) -> None:
    ns = apiserver_namespace
    kube.create(DEPLOYMENTS, ns, deployment("tmpl", replicas=2, version="v1"))
    kube.create(SERVICES, ns, service("tmpl", {"app": "tmpl"}))
    wait_for(lambda: _ready(kube, ns, "tmpl", 2))
    before = _pids(runner, "tmpl")

    new = deployment("tmpl", replicas=2, version="v2")
    kube.patch(DEPLOYMENTS, ns, "tmpl", {"spec": {"template": new["spec"]["template"]}})
    status = wait_for(lambda: _ready(kube, ns, "tmpl", 2), what="the new template rolled out")

    assert status["observedGeneration"] == 2
    assert gone(before)
    versions = {httpx.post(f"{url}/predict", content=b"{}").json()["version"] for url in runner.resolve("tmpl", ns)}
    assert versions == {"v2"}


def test_a_process_that_dies_is_restarted(runner: LocalRunner, kube: Client, apiserver_namespace: str) -> None:
    ns = apiserver_namespace
    kube.create(DEPLOYMENTS, ns, deployment("crash", replicas=1))
    wait_for(lambda: _ready(kube, ns, "crash", 1))
    (victim,) = _pids(runner, "crash")

    os.kill(victim, signal.SIGKILL)

    restarted = wait_for(lambda: (_pids(runner, "crash") - {victim}) and _ready(kube, ns, "crash", 1), what="restart")
    assert restarted["readyReplicas"] == 1
    (pod,) = [p for p in kube.list(PODS, ns) if p["metadata"]["labels"].get("app") == "crash"]
    wait_for(
        lambda: (kube.get(PODS, ns, pod["metadata"]["name"]) or {})["status"]["containerStatuses"][0]["restartCount"]
    )


def test_readiness_follows_the_probe(
    runner: LocalRunner, kube: Client, apiserver_namespace: str, tmp_path: Path
) -> None:
    ns = apiserver_namespace
    marker = tmp_path / "not-ready"
    kube.create(DEPLOYMENTS, ns, deployment("probe", replicas=2, env={"NOT_READY_FILE": str(marker)}))
    kube.create(SERVICES, ns, service("probe", {"app": "probe"}))
    wait_for(lambda: _ready(kube, ns, "probe", 2))

    marker.touch()
    down = wait_for(lambda: _status(kube, ns, "probe").get("readyReplicas") == 0 and _status(kube, ns, "probe"))
    endpoints_while_down = runner.resolve("probe", ns)
    marker.unlink()
    wait_for(lambda: _ready(kube, ns, "probe", 2), what="ready again")

    assert condition({"status": down}, "Available")["status"] == "False"
    assert endpoints_while_down == []
    assert len(runner.resolve("probe", ns)) == 2


def test_deleting_the_deployment_stops_its_processes(
    runner: LocalRunner, kube: Client, apiserver_namespace: str
) -> None:
    ns = apiserver_namespace
    kube.create(DEPLOYMENTS, ns, deployment("doomed", replicas=2))
    kube.create(DEPLOYMENTS, ns, deployment("kept", replicas=1))
    wait_for(lambda: _ready(kube, ns, "doomed", 2) and _ready(kube, ns, "kept", 1))
    doomed, kept = _pids(runner, "doomed"), _pids(runner, "kept")

    kube.delete(DEPLOYMENTS, ns, "doomed")

    assert gone(doomed), "the deleted Deployment's processes still run"
    assert all(psutil.pid_exists(pid) for pid in kept)
    assert _pids(runner, "doomed") == set()


def test_a_container_without_command_is_reported_not_run(
    runner: LocalRunner, kube: Client, apiserver_namespace: str
) -> None:
    ns = apiserver_namespace
    kube.create(DEPLOYMENTS, ns, deployment("image-only", command=[]))

    status = wait_for(lambda: _status(kube, ns, "image-only").get("conditions") and _status(kube, ns, "image-only"))

    assert status["readyReplicas"] == 0
    assert condition({"status": status}, "Available")["status"] == "False"
    assert "no command" in runner.errors[f"{ns}/image-only"]
