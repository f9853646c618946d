"""A Deployment's Pods, made by the real Deployment and ReplicaSet controllers and bound by the real scheduler, run
under the node agent as processes on addresses of their own; their readiness, restarts and deletion are the agent's
part, and the controllers report what it does (``readyReplicas``)."""

from __future__ import annotations

import itertools
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from modelops.sandbox.cluster import NODE_NAME
from modelops.sandbox.node import Client
from modelops.sandbox.node._kube import DEPLOYMENTS, PODS, SERVICES
from plugins.cluster import KubeCluster

from .helpers import (
    TINY_SERVER,
    alive,
    condition,
    container_status,
    deployment,
    gone,
    pids,
    pod,
    pods,
    processes,
    ready_endpoints,
    wait_for,
)

pytestmark = pytest.mark.integration


def ready(api: Client, ns: str, name: str, n: int) -> dict[str, Any] | None:
    """The Deployment's status once the controller reports exactly ``n`` replicas, all updated, ready and
    available, for its latest generation."""
    obj = api.get(DEPLOYMENTS, ns, name) or {}
    status = obj.get("status") or {}
    done = status.get("observedGeneration") == obj.get("metadata", {}).get("generation") and all(
        status.get(field, 0) == n for field in ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas")
    )
    return status if done else None


def service(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": "http"}]},
    }


def test_each_pod_runs_as_a_process_on_its_own_address_and_becomes_ready_from_its_probe(
    kube: KubeCluster, api: Client, ns: str
) -> None:
    api.create(DEPLOYMENTS, ns, deployment("web", replicas=2, env={"MODEL_NAME": "tiny"}))

    status = wait_for(lambda: ready(api, ns, "web", 2), what="the controller to count 2 ready replicas")

    assert condition({"status": status}, "Available")["status"] == "True"  # type: ignore[index]
    assert condition({"status": status}, "Progressing")["reason"] == "NewReplicaSetAvailable"  # type: ignore[index]
    listed = pods(api, ns, app="web")
    assert len(listed) == 2
    addresses = [p["status"]["podIP"] for p in listed]
    assert len(set(addresses)) == 2, addresses
    local = {p.name: p for p in processes(kube.node, ns, "web-")}
    for item in listed:
        meta, spec, status_ = item["metadata"], item["spec"], item["status"]
        ip = status_["podIP"]
        assert kube.node.pod_network is not None
        assert ip in kube.node.pod_network
        assert ip != "127.0.0.1"
        assert (spec["nodeName"], status_["hostIP"], status_["phase"]) == (NODE_NAME, "127.0.0.1", "Running")
        assert meta["ownerReferences"][0]["kind"] == "ReplicaSet"  # made by the real controllers
        assert condition(item, "Ready")["status"] == "True"  # type: ignore[index]
        state = container_status(item)
        assert (state["ready"], state["restartCount"], list(state["state"])) == (True, 0, ["running"])
        process = local[meta["name"]]
        assert process.ip == ip
        assert TINY_SERVER in psutil.Process(process.pid).cmdline()  # type: ignore[arg-type]
        environ = psutil.Process(process.pid).environ()  # type: ignore[arg-type]
        assert (environ["POD_IP"], environ["PORT"], environ["MODEL_NAME"]) == (ip, "8080", "tiny")
        assert "KUBECONFIG" not in environ  # the agent's credentials stay the agent's
        # the same port on every Pod: each listens on its own address
        answer = httpx.post(f"http://{ip}:8080/predict", content=b"{}", timeout=5).json()
        assert answer["pid"] == process.pid


def test_container_env_field_refs_and_variable_expansion_reach_the_process(
    kube: KubeCluster, api: Client, ns: str, tmp_path: Path
) -> None:
    out = tmp_path / "env.json"
    body = pod("envpod", ["python", "-c", "import json, os, sys; open(sys.argv[1], 'w').write(json.dumps("
               "[dict(os.environ), sys.argv[2:]])); import time; time.sleep(600)", str(out), "--at=$(POD_IP):$(PORT)",
               "$(NOPE)", "$$(PORT)"])  # fmt: skip
    main = body["spec"]["containers"][0]
    main["ports"] = [{"containerPort": 9000}]
    main["env"] = [
        {"name": "A", "value": "1"},
        {"name": "B", "value": "$(A)-2"},
        {"name": "MY_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "MY_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "MY_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "MY_APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
        {"name": "MY_NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
    ]
    api.create(PODS, ns, body)

    environ, args = wait_for(lambda: out.exists() and out.stat().st_size and json.loads(out.read_text()))

    ip = wait_for(lambda: ((api.get(PODS, ns, "envpod") or {}).get("status") or {}).get("podIP"))
    expected = {"A": "1", "B": "1-2", "MY_NAME": "envpod", "MY_NAMESPACE": ns, "MY_IP": ip, "MY_APP": "envpod",
                "MY_NODE": NODE_NAME, "POD_IP": ip, "PORT": "9000"}  # fmt: skip
    assert {k: environ.get(k) for k in expected} == expected
    assert args == [f"--at={ip}:9000", "$(NOPE)", "$(PORT)"]


def test_readiness_follows_the_probe(kube: KubeCluster, api: Client, ns: str, tmp_path: Path) -> None:
    marker = tmp_path / "not-ready"
    api.create(DEPLOYMENTS, ns, deployment("probe", replicas=2, env={"NOT_READY_FILE": str(marker)}))
    api.create(SERVICES, ns, service("probe"))
    wait_for(lambda: ready(api, ns, "probe", 2), what="2 ready replicas")
    # the EndpointSlice controller publishes the ready Pods' own addresses
    addresses = wait_for(lambda: len(ready_endpoints(api, ns, "probe")) == 2 and ready_endpoints(api, ns, "probe"))
    assert sorted(p["status"]["podIP"] for p in pods(api, ns, app="probe")) == addresses

    marker.touch()
    down = wait_for(lambda: (s := (api.get(DEPLOYMENTS, ns, "probe") or {}).get("status") or {}).get(
        "readyReplicas", 0) == 0 and s, what="no replica ready")  # fmt: skip
    not_ready = pods(api, ns, app="probe")
    wait_for(lambda: ready_endpoints(api, ns, "probe") == [], what="no ready endpoint while no replica is ready")
    marker.unlink()
    wait_for(lambda: ready(api, ns, "probe", 2), what="ready again")

    assert down.get("unavailableReplicas") == 2
    assert [condition(p, "Ready")["status"] for p in not_ready] == ["False", "False"]  # type: ignore[index]
    assert [container_status(p)["ready"] for p in not_ready] == [False, False]
    assert [p["status"]["phase"] for p in not_ready] == ["Running", "Running"]  # running, only not ready
    wait_for(lambda: len(ready_endpoints(api, ns, "probe")) == 2, what="both endpoints ready again")


def test_a_crashing_container_is_restarted_with_backoff(
    kube: KubeCluster, api: Client, ns: str, tmp_path: Path
) -> None:
    starts = tmp_path / "starts"
    crash = ["python", "-c", "import sys, time; open(sys.argv[1], 'a').write(f'{time.time()}\\n'); sys.exit(3)",
             str(starts)]  # fmt: skip
    api.create(DEPLOYMENTS, ns, deployment("crash", command=crash))
    states: set[str] = set()

    def restarted(n: int) -> dict[str, Any] | None:
        (item,) = pods(api, ns, app="crash") or [{}]
        status = container_status(item)
        state = status.get("state") or {}
        assert len(state) <= 1, state  # running, waiting or terminated: one at a time
        states.update(state)
        if state.get("waiting"):
            states.add(state["waiting"].get("reason", ""))
        started = len(starts.read_text().split()) if starts.exists() else 0
        return item if status.get("restartCount", 0) >= n and started > n else None

    item = wait_for(lambda: restarted(2), 30, "two restarts")

    times = [float(t) for t in starts.read_text().split()]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(times) >= 3
    # crash-loop backoff: the agent waits 1 s, then 2 s, ... before starting the container again
    assert gaps[0] >= 0.9, gaps
    assert gaps[1] >= 1.8, gaps
    assert "CrashLoopBackOff" in states, states
    # counted as the container starts again (the last start may not have written its line yet)
    assert container_status(item)["restartCount"] in (len(times) - 1, len(times))
    assert container_status(item)["lastState"]["terminated"]["exitCode"] == 3
    assert item["status"]["phase"] == "Running"
    assert container_status(item)["ready"] is False
    assert ((api.get(DEPLOYMENTS, ns, "crash") or {}).get("status") or {}).get("readyReplicas", 0) == 0


def test_a_server_that_dies_is_started_again_and_ready_again(kube: KubeCluster, api: Client, ns: str) -> None:
    api.create(DEPLOYMENTS, ns, deployment("phoenix"))
    wait_for(lambda: ready(api, ns, "phoenix", 1))
    (victim,) = pids(kube.node, ns, "phoenix-")

    os.kill(victim, signal.SIGKILL)

    wait_for(lambda: (pids(kube.node, ns, "phoenix-") - {victim}) and ready(api, ns, "phoenix", 1), what="restart")
    (item,) = pods(api, ns, app="phoenix")
    assert container_status(item)["restartCount"] == 1
    assert condition(item, "Ready")["status"] == "True"  # type: ignore[index]


def test_deleting_a_deployment_stops_its_processes_and_its_pods_go(kube: KubeCluster, api: Client, ns: str) -> None:
    api.create(DEPLOYMENTS, ns, deployment("doomed", replicas=2))
    api.create(DEPLOYMENTS, ns, deployment("kept"))
    wait_for(lambda: ready(api, ns, "doomed", 2) and ready(api, ns, "kept", 1))
    doomed, kept = pids(kube.node, ns, "doomed-"), pids(kube.node, ns, "kept-")
    assert len(doomed) == 2

    api.delete(DEPLOYMENTS, ns, "doomed")  # background propagation: the garbage collector deletes the Pods

    assert gone(doomed, 30), "the deleted Deployment's processes still run"
    wait_for(lambda: not pods(api, ns, app="doomed"), 30, "the Pods gone from the API")
    assert alive(kept) == sorted(kept)
    assert processes(kube.node, ns, "doomed-") == []


TERM_HANDLER = (
    "import signal, sys, time\n"
    "log = open(sys.argv[1], 'a', buffering=1)\n"
    "def term(*_):\n"
    "    log.write(f'term {time.time()}\\n'); time.sleep(float(sys.argv[2])); log.write('done\\n'); sys.exit(0)\n"
    "signal.signal(signal.SIGTERM, term)\n"
    "log.write('started\\n')\n"
    "while True: time.sleep(1)\n"
)


def test_a_deleted_pod_gets_its_grace_period_and_stays_terminating_until_its_process_ended(
    kube: KubeCluster, api: Client, ns: str, tmp_path: Path
) -> None:
    log = tmp_path / "term.log"
    api.create(PODS, ns, pod("graceful", ["python", "-c", TERM_HANDLER, str(log), "2"], grace=20))
    wait_for(lambda: log.exists() and "started" in log.read_text(), what="the process started")
    (pid,) = pids(kube.node, ns, "graceful")

    started = time.monotonic()
    api.request("DELETE", PODS.path(ns, "graceful"))  # the Pod's own grace period (20 s)
    wait_for(lambda: "term" in log.read_text(), 15, "SIGTERM")
    during = api.get(PODS, ns, "graceful")
    wait_for(lambda: api.get(PODS, ns, "graceful") is None, 30, "the Pod gone")
    took = time.monotonic() - started

    assert during is not None
    assert during["metadata"].get("deletionTimestamp"), "the Pod must stay Terminating"
    assert during["metadata"]["deletionGracePeriodSeconds"] == 20
    assert log.read_text().splitlines()[-1] == "done", "the process was killed before its 2 s of clean-up ended"
    assert gone([pid])
    assert took >= 2.0


def test_a_container_without_command_is_pending_unrunnable(kube: KubeCluster, api: Client, ns: str) -> None:
    api.create(DEPLOYMENTS, ns, deployment("image-only", command=[]))

    def unrunnable() -> dict[str, Any] | None:
        (item,) = pods(api, ns, app="image-only") or [{}]
        waiting = (container_status(item).get("state") or {}).get("waiting") or {}
        return item if waiting.get("reason") == "Unrunnable" else None

    item = wait_for(unrunnable, what="the Pod marked Unrunnable")

    message = container_status(item)["state"]["waiting"]["message"]
    assert "'server' has no command" in message
    assert "not images" in message
    assert item["status"]["phase"] == "Pending"
    assert condition(item, "Ready")["status"] == "False"  # type: ignore[index]
    assert [p.pid for p in processes(kube.node, ns, "image-only-")] == [None]
    status = (api.get(DEPLOYMENTS, ns, "image-only") or {}).get("status") or {}
    assert (status.get("readyReplicas", 0), status.get("unavailableReplicas")) == (0, 1)
