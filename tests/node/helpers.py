"""Builders of the objects the tests give the real controllers, and polling with a deadline."""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import psutil

from modelops.sandbox.node import Client, NodeAgent, PodProcess
from modelops.sandbox.node._kube import PODS, Kind
from plugins.waiting import wait_for as wait_for  # the suite's one polling helper, re-exported for the node tests

TINY_SERVER = str(Path(__file__).with_name("tiny_server.py"))


def alive(pids: Iterable[int]) -> list[int]:
    """The pids that still run (zombies run nothing)."""
    out = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                out.append(pid)
        except psutil.NoSuchProcess:
            pass
    return out


def gone(pids: Iterable[int], timeout: float = 15.0) -> bool:
    """Whether every pid has exited within ``timeout``."""
    pids = list(pids)
    deadline = time.monotonic() + timeout
    while alive(pids):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def processes(node: NodeAgent, namespace: str, prefix: str = "") -> list[PodProcess]:
    """What the agent runs for the Pods of ``namespace`` whose name starts with ``prefix``."""
    return [p for p in node.processes() if p.namespace == namespace and p.name.startswith(prefix)]


def pids(node: NodeAgent, namespace: str, prefix: str = "") -> set[int]:
    return {p.pid for p in processes(node, namespace, prefix) if p.pid is not None}


def pods(api: Client, namespace: str, **labels: str) -> list[dict[str, Any]]:
    """The Pods of ``namespace`` carrying every label in ``labels`` (``job_name`` stands for ``job-name``)."""
    wanted = {k.replace("_", "-"): v for k, v in labels.items()}
    return [
        p
        for p in api.list(PODS, namespace)
        if all((p["metadata"].get("labels") or {}).get(k) == v for k, v in wanted.items())
    ]


ENDPOINTSLICES = Kind("discovery.k8s.io", "v1", "endpointslices")


def ready_endpoints(api: Client, namespace: str, service: str) -> list[str]:
    """The ready addresses of a Service, as the EndpointSlice controller published them."""
    slices = [
        s
        for s in api.list(ENDPOINTSLICES, namespace)
        if ((s.get("metadata") or {}).get("labels") or {}).get("kubernetes.io/service-name") == service
    ]
    return sorted(a for s in slices for e in s.get("endpoints") or [] if (e.get("conditions") or {}).get("ready")
                  for a in e.get("addresses") or [])  # fmt: skip


def container_status(pod: dict[str, Any]) -> dict[str, Any]:
    statuses = (pod.get("status") or {}).get("containerStatuses") or [{}]
    status: dict[str, Any] = statuses[0]
    return status


def condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any] | None:
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == type_:
            return dict(c)
    return None


def container(
    command: list[str] | None,
    *,
    name: str = "main",
    env: dict[str, str] | None = None,
    port: int | None = None,
    probe: str | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "image": "ghcr.io/modelops/not-pulled:0"}
    if command:
        out["command"] = command
    if env:
        out["env"] = [{"name": k, "value": v} for k, v in env.items()]
    if port is not None:
        out["ports"] = [{"name": "http", "containerPort": port}]
    if probe is not None:
        out["readinessProbe"] = {"httpGet": {"path": probe, "port": "http" if port else 8080}, "periodSeconds": 1}
    return out


def deployment(
    name: str,
    *,
    replicas: int = 1,
    version: str = "v1",
    env: dict[str, str] | None = None,
    command: list[str] | None = None,
    probe: bool = True,
    grace: int | None = None,
) -> dict[str, Any]:
    """A Deployment like the operator's: labels on the template, a port, a readiness probe (``tiny_server``)."""
    labels = {"app": name, "modelops.io/version": version}
    main = container(
        ["python", TINY_SERVER] if command is None else command,
        name="server",
        env={"VERSION": version, **(env or {})},
        port=8080,
        probe="/healthz" if probe else None,
    )
    pod_spec: dict[str, Any] = {"containers": [main]}
    if grace is not None:
        pod_spec["terminationGracePeriodSeconds"] = grace
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        },
    }


def job(
    name: str,
    code: str,
    *,
    backoff_limit: int = 0,
    deadline: int | None = None,
    policy: str | None = None,
) -> dict[str, Any]:
    """A Job running ``python -c code`` (the agent's ``python`` is this interpreter)."""
    main = container(["python", "-c", code], name="evaluate")
    if policy is not None:
        main["terminationMessagePolicy"] = policy
    spec: dict[str, Any] = {
        "backoffLimit": backoff_limit,
        "template": {
            "metadata": {"labels": {"modelops.io/gate": "held-out-eval"}},
            "spec": {"restartPolicy": "Never", "containers": [main]},
        },
    }
    if deadline is not None:
        spec["activeDeadlineSeconds"] = deadline
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name}, "spec": spec}


def pod(
    name: str,
    command: list[str] | None,
    *,
    restart: str = "Always",
    grace: int | None = None,
    deadline: int | None = None,
    node: str | None = None,
    tolerate: str | None = None,
) -> dict[str, Any]:
    """A bare Pod; ``node`` binds it to that Node directly (no scheduler), ``tolerate`` tolerates that taint key."""
    spec: dict[str, Any] = {"restartPolicy": restart, "containers": [container(command)]}
    if grace is not None:
        spec["terminationGracePeriodSeconds"] = grace
    if deadline is not None:
        spec["activeDeadlineSeconds"] = deadline
    if node is not None:
        spec["nodeName"] = node
    if tolerate is not None:
        spec["tolerations"] = [{"key": tolerate, "operator": "Exists"}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": name}}, "spec": spec}
