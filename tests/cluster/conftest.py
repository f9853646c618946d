"""What only the real API server can prove: its validation, its conflicts, its RBAC, its garbage collector, its
watch semantics, and the operator's replicas peering through it.

Everything runs on the session's cluster (``kube``, tests/plugins/cluster.py), each test in its own namespace
(prefixes other than ``it-``: the integration tests' operator watches ``it-*``). ``modelops run`` runs as a child
process, exactly as a replica would, with a ServiceAccount token so the chart's RBAC applies.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException
from prometheus_client.parser import text_string_to_metric_families

from modelops.adapters.kube import KubeApiError, RestKubeApi
from modelops.sandbox.prometheus import PrometheusServer, free_port
from plugins.cluster import KubeCluster
from plugins.waiting import wait_for

T = TypeVar("T")


def eventually(
    check: Callable[[], T], timeout: float = 30.0, interval: float = 0.2, what: str | Callable[[], str] = ""
) -> T:
    """Poll ``check`` until it returns something truthy (an ``AssertionError`` or an API error, of RestKubeApi or of
    the plain client, counts as not yet); fail with the last answer when ``timeout`` passes. ``what`` names the
    condition in the failure (a callable: evaluated then, e.g. to show the end of a log)."""
    return wait_for(check, timeout, what or "condition", interval=interval,
                    tolerate=(AssertionError, KubeApiError, ApiException))  # fmt: skip


def model_deployment(name: str, version: str = "v1", **spec: Any) -> dict[str, Any]:
    """The smallest ModelDeployment the operator acts on: the ``replicas`` router (no route object needed) and no
    rollout steps, gates or monitoring. Its pods never run (no ``command``), which no test here needs."""
    return {
        "apiVersion": "modelops.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {
            "model": {"name": name, "version": version, "uri": f"s3://models/{name}/{version}"},
            "server": {"image": "registry.local/model-server:1", "port": 8080, "replicas": 1},
            "traffic": {"router": "replicas", "replicas": {"service": name}},
            **spec,
        },
    }


class Operator:
    """``modelops run`` as a child process (one replica): its log, its ``/healthz``, its own ``/metrics``."""

    def __init__(self, name: str, argv: list[str], log_path: Path, metrics_port: int, health_port: int) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.metrics_port = metrics_port
        self.health_port = health_port
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, env: dict[str, str]) -> Operator:
        with self.log_path.open("ab") as out:
            self.process = subprocess.Popen(
                self.argv, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
            )
        return self

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def healthy(self) -> bool:
        assert self.alive, f"{self.name} exited:\n{self.tail()}"
        try:
            return httpx.get(f"http://127.0.0.1:{self.health_port}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def wait_healthy(self, timeout: float = 60.0) -> Operator:
        eventually(self.healthy, timeout, what=f"{self.name} healthy")
        return self

    def reconciles(self, kind: str = "ModelDeployment") -> float:
        """How many reconciles of ``kind`` this process ran, from its own metrics (0 before the first)."""
        text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text
        samples = [s for family in text_string_to_metric_families(text) for s in family.samples]
        assert any(s.name == "modelops_build_info" for s in samples), f"not the operator's metrics: {text[:200]}"
        counts = [
            s.value
            for s in samples
            if s.name == "modelops_reconcile_duration_seconds_count" and s.labels.get("kind") == kind
        ]
        return float(sum(counts))

    def kill(self) -> None:
        """SIGKILL: no goodbye to its peers, no cleanup."""
        if self.process is not None and self.alive:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self, timeout: float = 60.0) -> None:
        """SIGTERM, as the kubelet stops a pod, and wait for the exit."""
        if self.process is not None and self.alive:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


OperatorFactory = Callable[..., Operator]


def child_env() -> dict[str, str]:
    """This environment without what would configure ``modelops run`` behind the test's back."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MODELOPS_", "KUBERNETES_")) and k not in {"KUBECONFIG", "POD_ID"}
    }


@pytest.fixture
def start_operator(kube: KubeCluster, prometheus: PrometheusServer, tmp_path: Path) -> Iterator[OperatorFactory]:
    """Start ``modelops run`` processes (``*args`` are its flags); every one still running is stopped at the end
    (gracefully: a replica with peering takes its record along, and the next test's replicas find none of it)."""
    started: list[Operator] = []

    def start(*args: str, name: str = "operator", kubeconfig: Path | None = None) -> Operator:
        metrics_port, health_port = free_port(), free_port()
        argv = [
            sys.executable, "-m", "modelops", "run",
            f"--kubeconfig={kubeconfig or kube.operator_kubeconfig}",
            f"--prometheus-url={prometheus.url}",
            "--log-format=text",
            *args,
            # after the given flags: the last one wins, and every process needs ports of its own
            "--metrics-address=127.0.0.1", f"--metrics-port={metrics_port}", f"--health-port={health_port}",
        ]  # fmt: skip
        operator = Operator(name, argv, tmp_path / f"{name}.log", metrics_port, health_port)
        started.append(operator.start(child_env()))
        return operator

    yield start
    for operator in started:
        operator.stop()


@pytest.fixture
def admin(kube: KubeCluster) -> Iterator[RestKubeApi]:
    """``RestKubeApi`` as the cluster admin: the tests' own reads and writes."""
    client: ApiClient = kube.client()
    yield RestKubeApi(client, timeout=10)
    client.close()
