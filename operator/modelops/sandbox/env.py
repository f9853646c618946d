"""The whole local environment in one object: a real Kubernetes control plane, the node agent, a real Prometheus,
Traefik (a real Gateway API data plane), and the operator installed from its Helm chart.

``SandboxEnv`` is what ``modelops sandbox up`` runs, and what the demo and the end-to-end tests use directly::

    with SandboxEnv(Path(".sandbox")) as env:
        api = env.api_client                    # kubernetes.client.ApiClient, admin of the local cluster
        env.kubeconfig, env.prometheus_url, env.gateway_url, env.cluster, env.node, env.installation

Everything listens on 127.0.0.1 (Pods on addresses of 198.18.0.0/15 routed to this machine). The cluster is
:class:`~modelops.sandbox.cluster.LocalCluster`
(etcd, kube-apiserver, kube-controller-manager, kube-scheduler, built from their Go modules); Pods run as local
processes under :class:`~modelops.sandbox.node.NodeAgent`; the operator's CRDs, ServiceAccount and RBAC come from
``helm install`` of ``charts/modelops-operator`` and ``modelops run`` authenticates with that ServiceAccount's token.
Prometheus discovers the model servers from the API's Pods, as ``kubernetes_sd_configs`` would in a cluster
(:class:`~modelops.sandbox.discovery.PodDiscovery` writes them to a ``file_sd`` file). Traffic goes through
:class:`~modelops.sandbox.traefik.Traefik`: one process serving a Gateway ``sandbox`` in each namespace that has a
model to reach (:meth:`SandboxEnv.gateway`), routing by the HTTPRoutes in the API (the operator's weights) to the
Services' EndpointSlices.

Every process it starts carries the environment variable ``MODELOPS_SANDBOX_ID`` (the ``sandbox_id``), so a later
``down`` can find and stop any of them even if the supervising process died without cleaning up.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import httpx
import yaml

from modelops.sandbox.cluster import NODE_NAME, LocalCluster
from modelops.sandbox.discovery import PodDiscovery, scrape_config
from modelops.sandbox.install import Installation, install_operator, install_router_crds
from modelops.sandbox.node import Client, Kind, NodeAgent, kill_tree
from modelops.sandbox.prometheus import PrometheusServer, ScrapeTarget, free_port
from modelops.sandbox.traefik import TRAEFIK_USER, Traefik, gateway, gateway_class, rbac, route_host

__all__ = [
    "SANDBOX_ID_ENV",
    "ModelEntry",
    "OperatorProcess",
    "SandboxEnv",
    "SandboxError",
    "find_sandbox_processes",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Environment variable carried by every process of one sandbox (its value is the sandbox id).
SANDBOX_ID_ENV = "MODELOPS_SANDBOX_ID"
#: The identity of the sandbox's Prometheus service discovery in the cluster; it may read Pods, nothing else.
PROMETHEUS_USER = "modelops-sandbox:prometheus"

MODELDEPLOYMENTS = Kind("modelops.io", "v1alpha1", "modeldeployments")
HTTPROUTES = Kind("gateway.networking.k8s.io", "v1", "httproutes")
DEPLOYMENTS = Kind("apps", "v1", "deployments")


@dataclass(frozen=True)
class ModelEntry:
    """How clients reach one model through Traefik: ``url`` with header ``Host: host``. The model's HTTPRoute
    names the Gateway ``sandbox`` of its namespace as its parent and ``host`` among its ``hostnames``."""

    namespace: str
    name: str
    url: str
    host: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Host": self.host}


class SandboxError(RuntimeError):
    """A part of the sandbox could not start (the message says which, with the end of its log)."""


@dataclass
class OperatorProcess:
    """``modelops run`` as a child process, authenticated as the chart's ServiceAccount."""

    argv: list[str]
    log_path: Path
    health_url: str | None
    metrics_port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None and self.process.poll() is None else None


@dataclass
class SandboxEnv:
    """Start with :meth:`start` (or ``with``), stop with :meth:`stop`. See the module docstring.

    ``namespaces``: where the operator looks (``None``: every namespace; else the chart gets ``watchNamespaces``
    and they are created first). ``gateway_models``: the ModelDeployments (``namespace/name`` or ``name`` in
    ``default``) whose namespace gets a Gateway at start; more can be had with :meth:`gateway`. ``operator``:
    install the chart and start ``modelops run``. ``chart_values``: more Helm values.
    """

    directory: Path
    namespaces: Sequence[str] | None = None
    gateway_models: Sequence[str] = ("default/recommender",)
    operator: bool = True
    operator_args: Sequence[str] = ()
    prometheus_port: int = 0
    gateway_port: int = 0
    scrape_interval: str = "1s"
    chart_values: Mapping[str, Any] = field(default_factory=dict)
    sandbox_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    start_timeout: float = 120.0
    audit: bool = True

    notes: list[str] = field(default_factory=list, init=False)
    _cluster: LocalCluster | None = field(default=None, init=False)
    _api_client: Any = field(default=None, init=False)
    _node: NodeAgent | None = field(default=None, init=False)
    _prometheus: PrometheusServer | None = field(default=None, init=False)
    _discovery: PodDiscovery | None = field(default=None, init=False)
    _traefik: Traefik | None = field(default=None, init=False)
    _gateways: dict[str, ModelEntry] = field(default_factory=dict, init=False)
    _installation: Installation | None = field(default=None, init=False)
    _operator: OperatorProcess | None = field(default=None, init=False)
    _targets_lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    #: the API clients of the node agent and of Prometheus' discovery, closed by stop()
    _clients: list[Any] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        # Absolute: children (Prometheus, model servers) run with other working directories.
        self.directory = Path(self.directory).resolve()

    # ------------------------------------------------------------------------------------------- accessors

    @property
    def kubeconfig(self) -> Path:
        """The cluster's admin kubeconfig (``kubectl --kubeconfig`` it)."""
        return self.directory / "kubeconfig"

    @property
    def state_file(self) -> Path:
        return self.directory / "state.json"

    @property
    def cluster(self) -> LocalCluster:
        return self._require(self._cluster, "cluster")

    @property
    def api_url(self) -> str:
        return self.cluster.server

    @property
    def api_client(self) -> Any:
        """A ``kubernetes.client.ApiClient`` of the cluster's admin."""
        return self._require(self._api_client, "cluster")

    @property
    def node(self) -> NodeAgent:
        return self._require(self._node, "node agent")

    @property
    def installation(self) -> Installation:
        return self._require(self._installation, "operator's Helm release")

    @property
    def prometheus(self) -> PrometheusServer:
        return self._require(self._prometheus, "prometheus")

    @property
    def prometheus_url(self) -> str:
        return self.prometheus.url

    @property
    def traefik(self) -> Traefik:
        return self._require(self._traefik, "Traefik")

    @property
    def gateway_url(self) -> str:
        """Traefik's entry point (send ``Host: <ModelEntry.host>`` to reach a model)."""
        return self.traefik.url

    @property
    def gateways(self) -> Mapping[str, ModelEntry]:
        return dict(self._gateways)

    @property
    def operator_process(self) -> OperatorProcess | None:
        return self._operator

    @staticmethod
    def _require(value: T | None, what: str) -> T:
        if value is None:
            raise SandboxError(f"the sandbox's {what} is not running (call start() first)")
        return value

    # ------------------------------------------------------------------------------------------- lifecycle

    def __enter__(self) -> SandboxEnv:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def child_env(self) -> dict[str, str]:
        """The environment of every process the sandbox starts: this one's and the sandbox id (no credentials)."""
        env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
        return {**env, SANDBOX_ID_ENV: self.sandbox_id}

    def start(self) -> SandboxEnv:
        """Start every part, in dependency order; on any failure stop what started and raise."""
        self.directory.mkdir(parents=True, exist_ok=True)
        try:
            self._start_cluster()
            self._start_node()
            self._start_prometheus()
            self._start_traefik()
            for model in self.gateway_models:
                self.gateway(model)
            if self.operator:
                self.install()
                self.start_operator()
            self._publish_targets()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop everything that started, the operator first (so it does not act on a half-stopped world)."""
        self.stop_operator()
        traefik, self._traefik = self._traefik, None
        if traefik is not None:
            traefik.stop()
        self._gateways.clear()
        node, self._node = self._node, None
        if node is not None:
            node.stop()
        prometheus, self._prometheus = self._prometheus, None
        if prometheus is not None:
            prometheus.stop()
        discovery, self._discovery = self._discovery, None
        if discovery is not None:
            discovery.stop()
        for client in [self._api_client, *self._clients]:
            if client is not None:
                client.close()
        self._api_client = None
        self._clients.clear()
        cluster, self._cluster = self._cluster, None
        if cluster is not None:
            cluster.stop()

    # ------------------------------------------------------------------------------------------- parts

    def _start_cluster(self) -> None:
        cluster = LocalCluster(
            self.directory / "cluster", env={SANDBOX_ID_ENV: self.sandbox_id}, audit=self.audit,
            start_timeout=self.start_timeout,
        )  # fmt: skip
        self._cluster = cluster
        cluster.start()
        # The admin kubeconfig, at the sandbox's top (what `sandbox up` prints and kubectl is pointed at).
        self.kubeconfig.write_text(cluster.kubeconfig.read_text())
        self.kubeconfig.chmod(0o600)
        self._api_client = cluster.api_client()
        install_router_crds(cluster)
        rbac = [
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
             "metadata": {"name": PROMETHEUS_USER},
             "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
             "metadata": {"name": PROMETHEUS_USER},
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": PROMETHEUS_USER},
             "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": PROMETHEUS_USER}]},
        ]  # fmt: skip
        self._apply(rbac)
        for namespace in self.namespaces or ():
            self._apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}])

    def _apply(self, objects: Sequence[Mapping[str, Any]]) -> None:
        path = self.directory / "cluster" / "apply.yaml"
        path.write_text(yaml.safe_dump_all(list(objects), sort_keys=False))
        self.cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(path))

    def _start_node(self) -> None:
        kubeconfig = self.cluster.user_kubeconfig("node", f"system:node:{NODE_NAME}", ["system:nodes"])
        client = self.cluster.api_client(kubeconfig)
        self._clients.append(client)
        self._node = NodeAgent(client, self.directory / "node", name=NODE_NAME, base_env=self.child_env())
        self._node.start()

    def _start_prometheus(self) -> None:
        identity = self.cluster.user_kubeconfig("prometheus", PROMETHEUS_USER)
        targets = self.directory / "prometheus" / "pods.json"
        client = self.cluster.api_client(identity)
        self._clients.append(client)
        self._discovery = PodDiscovery(Client(client), targets)
        self._discovery.start()
        self._prometheus = PrometheusServer(
            port=self.prometheus_port or None,
            workdir=self.directory / "prometheus",
            scrape_interval=self.scrape_interval,
            evaluation_interval=self.scrape_interval,
            extra_scrape_configs=[scrape_config(targets, self.scrape_interval)],
        )
        with _environ({SANDBOX_ID_ENV: self.sandbox_id}):
            self._prometheus.start(wait_for_targets=False)

    def _start_traefik(self) -> None:
        self._apply([*rbac(), gateway_class()])
        identity = self.cluster.user_kubeconfig("traefik", TRAEFIK_USER)
        self._traefik = Traefik(
            self.directory / "traefik", identity, port=self.gateway_port, env=self.child_env()
        ).start()

    def gateway(self, model: str) -> ModelEntry:
        """How to reach one ModelDeployment (``namespace/name`` or ``name``) through Traefik; its namespace gets
        the Gateway ``sandbox`` on first use. Its HTTPRoute must name that Gateway as parent and
        :func:`~modelops.sandbox.traefik.route_host` among its ``hostnames``."""
        namespace, _, name = model.rpartition("/")
        namespace = namespace or "default"
        key = f"{namespace}/{name}"
        if key not in self._gateways:
            if not any(entry.namespace == namespace for entry in self._gateways.values()):
                self._apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}])
                self._apply([gateway(namespace, self.traefik.port)])
            self._gateways[key] = ModelEntry(namespace, name, self.traefik.url, route_host(namespace, name))
        return self._gateways[key]

    def install(self, values: Mapping[str, Any] | None = None) -> Installation:
        """``helm upgrade --install`` the operator's chart (CRDs, ServiceAccount, RBAC; no operator Pod) and write
        the kubeconfig with its ServiceAccount's token."""
        chart_values: dict[str, Any] = {
            "prometheus": {"url": self.prometheus_url},
            **self.chart_values,
            **(values or {}),
        }
        if self.namespaces:
            chart_values.setdefault("watchNamespaces", list(self.namespaces))
        self._installation = install_operator(self.cluster, values=chart_values)
        return self._installation

    def start_operator(self, *extra_args: str, name: str = "operator") -> OperatorProcess:
        """Start ``modelops run`` with the chart's ServiceAccount token; returns once ``/healthz`` answers.

        ``name`` tells processes apart (several replicas): the log is ``logs/<name>.log``."""
        installation = self.installation
        metrics_port, health_port = free_port(), free_port()
        argv = [
            sys.executable,
            "-c",
            "import sys; from modelops.cli import main; sys.exit(main())",
            "run",
            *(["--all-namespaces"] if not self.namespaces else [a for ns in self.namespaces for a in ("-n", ns)]),
            "--kubeconfig",
            str(installation.kubeconfig),
            "--prometheus-url",
            self.prometheus_url,
            "--metrics-address",
            "127.0.0.1",
            "--metrics-port",
            str(metrics_port),
            "--health-port",
            str(health_port),
            *(self.operator_args or ["--standalone"]),
            *extra_args,
        ]
        log_path = self.directory / "logs" / f"{name}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        operator = OperatorProcess(argv, log_path, f"http://127.0.0.1:{health_port}/healthz", metrics_port)
        with log_path.open("ab") as out:
            operator.process = subprocess.Popen(
                argv,
                env=self.child_env(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=self.directory,
            )
        if name == "operator":
            self._operator = operator
        deadline = time.monotonic() + self.start_timeout
        while True:
            if operator.process.poll() is not None:
                raise SandboxError(f"the operator exited with {operator.process.returncode}:\n{_tail(log_path)}")
            try:
                if operator.health_url and httpx.get(operator.health_url, timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() >= deadline:
                raise SandboxError(f"the operator was not healthy after {self.start_timeout}s:\n{_tail(log_path)}")
            time.sleep(0.2)
        self._publish_targets()
        return operator

    def stop_operator(self) -> None:
        operator, self._operator = self._operator, None
        if operator is not None and operator.process is not None:
            kill_tree(operator.process, grace=10.0)

    # ------------------------------------------------------------------------------------------- scrape targets

    def _publish_targets(self) -> None:
        prometheus = self._prometheus
        if prometheus is None:
            return
        with self._targets_lock:
            traefik = self._traefik
            static = [ScrapeTarget("traefik", traefik.metrics_address)] if traefik is not None else []
            if self._operator is not None:
                static.append(ScrapeTarget("modelops-operator", f"127.0.0.1:{self._operator.metrics_port}"))
            prometheus.set_targets(static, wait=False)

    # ------------------------------------------------------------------------------------------- state

    def state(self) -> dict[str, Any]:
        """What runs, as ``up`` records it in the state file (pids, ports, URLs) for ``down`` and ``status``."""
        node = self._node
        cluster = self._cluster
        return {
            "sandbox_id": self.sandbox_id,
            "supervisor_pid": os.getpid(),
            "directory": str(self.directory.resolve()),
            "kubeconfig": str(self.kubeconfig.resolve()),
            "kube_bin": str(cluster.bin) if cluster is not None else None,
            "apiserver": {"url": cluster.server, "pids": cluster.pids()} if cluster is not None else None,
            "prometheus": {"url": self.prometheus_url, "pid": self.prometheus.pid} if self._prometheus else None,
            "traefik": {"url": self._traefik.url, "pid": self._traefik.pid} if self._traefik else None,
            "gateways": {key: {"url": e.url, "host": e.host} for key, e in self._gateways.items()},
            "operator": (
                {"pid": self._operator.pid, "log": str(self._operator.log_path)} if self._operator is not None else None
            ),
            "processes": [
                {
                    "kind": "Pod",
                    "namespace": p.namespace,
                    "pod": p.name,
                    "ip": p.ip,
                    "pid": p.pid,
                    "ready": bool(p.server is not None and p.server.ready),
                    "log": str(p.log_path) if p.log_path else None,
                }
                for p in (node.processes() if node is not None else [])
            ],
            "notes": list(self.notes),
        }

    def write_state(self, **extra: Any) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({**self.state(), **extra}, indent=2))
        tmp.replace(self.state_file)


def find_sandbox_processes(sandbox_id: str) -> list[Any]:
    """Every process carrying ``MODELOPS_SANDBOX_ID=sandbox_id`` (``psutil.Process`` objects)."""
    import psutil

    found = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if proc.environ().get(SANDBOX_ID_ENV) == sandbox_id:
                found.append(proc)
        except (psutil.Error, OSError):
            continue
    return found


@contextmanager
def _environ(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the duration of a block (for children started by code we do not own)."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
