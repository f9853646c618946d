"""Traefik, the sandbox's Gateway API data plane: a real controller routes the traffic by the HTTPRoutes in the API.

Traefik v3 is built from its Go module by ``scripts/build-traefik.sh`` (pinned in ``hack/traefik``) and runs as a
plain process against the local cluster with its Kubernetes Gateway provider. It authenticates as the user
``modelops-sandbox:traefik`` (:func:`rbac`: read Gateway API objects, Services, EndpointSlices, Secrets,
ConfigMaps and Namespaces; write the status of Gateways, GatewayClasses and routes), watches the GatewayClass
``traefik`` (:func:`gateway_class`), and serves each Gateway's HTTP listener on its entry point ``web``
(``127.0.0.1:<port>``): a listener's ``port`` must be that port, which :func:`gateway` writes. Backends are the
ready addresses of a Service's EndpointSlices (Pod addresses of the node agent: see ``node._network``), balanced by
the backendRefs' weights; Traefik reports on each route in ``status.parents`` (``Accepted``, ``ResolvedRefs``).

Its own entry point ``traefik`` (another loopback port) answers ``/ping`` and serves Prometheus metrics
(``traefik_service_requests_total{service=...}``); ``errors.log`` beside its log lists every 5xx answer (JSON access
log: backend, status, duration).
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from modelops.sandbox.build import built
from modelops.sandbox.node import kill_tree
from modelops.sandbox.prometheus import free_port

__all__ = [
    "CONTROLLER",
    "GATEWAY_CLASS",
    "TRAEFIK_USER",
    "Traefik",
    "TraefikError",
    "gateway",
    "gateway_class",
    "rbac",
    "route_host",
    "traefik_binary",
]

log = logging.getLogger(__name__)

#: a Traefik binary to use instead of building one
BIN_ENV = "MODELOPS_TRAEFIK_BIN"
GATEWAY_CLASS = "traefik"
CONTROLLER = "traefik.io/gateway-controller"
#: the identity Traefik's Kubernetes client has in the cluster
TRAEFIK_USER = "modelops-sandbox:traefik"
#: the sandbox's Gateway in each namespace that has a route to serve (routes name it as their parentRef)
GATEWAY_NAME = "sandbox"
LISTENER = "http"


class TraefikError(RuntimeError):
    """Traefik could not be built or did not start (the message has the end of its log)."""


def traefik_binary(*, quiet: bool = False) -> Path:
    """``$MODELOPS_TRAEFIK_BIN``, else the binary ``scripts/build-traefik.sh`` builds once per version."""
    given = os.environ.get(BIN_ENV)
    if given:
        if not Path(given).is_file():
            raise TraefikError(f"${BIN_ENV}={given} is not a file")
        return Path(given)
    return built("build-traefik.sh", TraefikError, quiet=quiet)


def route_host(namespace: str, name: str) -> str:
    """The host name the sandbox gives a model's route (its ``hostnames``), which clients send as ``Host``.

    >>> route_host("demo", "recommender")
    'recommender.demo.sandbox.internal'
    """
    return f"{name}.{namespace}.sandbox.internal"


def rbac() -> list[dict[str, Any]]:
    """What Traefik's Gateway provider reads and writes, granted to :data:`TRAEFIK_USER` cluster-wide."""
    rules = [
        {"apiGroups": [""], "resources": ["namespaces", "services", "secrets", "configmaps"],
         "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["gateway.networking.k8s.io"],
         "resources": ["gatewayclasses", "gateways", "httproutes", "grpcroutes", "referencegrants",
                       "backendtlspolicies"],
         "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["gateway.networking.k8s.io"],
         "resources": ["gatewayclasses/status", "gateways/status", "httproutes/status", "grpcroutes/status",
                       "backendtlspolicies/status"],
         "verbs": ["update", "patch"]},
    ]  # fmt: skip
    return [
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": TRAEFIK_USER},
         "rules": rules},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": TRAEFIK_USER},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": TRAEFIK_USER},
         "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": TRAEFIK_USER}]},
    ]  # fmt: skip


def gateway_class() -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "GatewayClass",
        "metadata": {"name": GATEWAY_CLASS},
        "spec": {"controllerName": CONTROLLER},
    }


def gateway(namespace: str, port: int, name: str = GATEWAY_NAME) -> dict[str, Any]:
    """A Gateway of class ``traefik`` in ``namespace`` with one HTTP listener on Traefik's ``web`` port, for the
    routes of its own namespace."""
    listener = {"name": LISTENER, "protocol": "HTTP", "port": port, "allowedRoutes": {"namespaces": {"from": "Same"}}}
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"gatewayClassName": GATEWAY_CLASS, "listeners": [listener]},
    }


class Traefik:
    """``start()`` runs Traefik with the kubeconfig of :data:`TRAEFIK_USER`; ``url`` is its ``web`` entry point."""

    def __init__(self, workdir: Path, kubeconfig: Path, *, port: int = 0, env: dict[str, str] | None = None) -> None:
        self.workdir = workdir
        self.kubeconfig = kubeconfig
        self.port = port or free_port()
        self.admin_port = free_port()
        self.env = dict(env if env is not None else os.environ)
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "traefik.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def metrics_address(self) -> str:
        return f"127.0.0.1:{self.admin_port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None and self.process.poll() is None else None

    def config(self) -> dict[str, Any]:
        """Traefik's static configuration: the two entry points, the Gateway provider, ping and metrics."""
        return {
            "global": {"checkNewVersion": False, "sendAnonymousUsage": False},
            "entryPoints": {
                # a client's idle keep-alive connection is closed by the client first (the traffic driver: 2 s)
                "web": {"address": f"127.0.0.1:{self.port}",
                        "transport": {"respondingTimeouts": {"idleTimeout": "5s"}}},
                "traefik": {"address": self.metrics_address},
            },
            # a change of the API (weights, endpoints) is applied at once, not batched for the default 2 s: a deleted
            # Pod leaves the load balancer before its server's drain (2 s) ends
            "providers": {
                "providersThrottleDuration": "0s",
                "kubernetesGateway": {"throttleDuration": "0s", "statusAddress": {"ip": "127.0.0.1"}},
            },
            # every answer that is an error, with the backend it came from
            "accessLog": {"filePath": str(self.workdir / "errors.log"), "format": "json",
                          "filters": {"statusCodes": ["500-599"]}},
            "ping": {"entryPoint": "traefik"},
            "metrics": {"prometheus": {"entryPoint": "traefik", "addServicesLabels": True, "addRoutersLabels": True}},
            "log": {"level": "INFO"},
        }  # fmt: skip

    def start(self, timeout: float = 60.0) -> Traefik:
        binary = traefik_binary()
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "traefik.yml"
        config.write_text(yaml.safe_dump(self.config(), sort_keys=False))
        env = {**self.env, "KUBECONFIG": str(self.kubeconfig)}
        with self.log_path.open("ab") as out:
            self.process = subprocess.Popen(
                [str(binary), f"--configFile={config}"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=self.workdir,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise TraefikError(f"traefik exited with {self.process.returncode}:\n{self.tail()}")
            try:
                if httpx.get(f"http://{self.metrics_address}/ping", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if time.monotonic() >= deadline:
                message = f"traefik did not answer /ping within {timeout:g}s:\n{self.tail()}"
                self.stop()  # nobody else holds it yet: the caller gets no Traefik to stop
                raise TraefikError(message)
            time.sleep(0.2)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None:
            kill_tree(process, grace=5.0)

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""
