"""The whole local environment in one object: API emulator, real Prometheus, local runner, gateway, operator.

``SandboxEnv`` is what ``modelops sandbox up`` runs, and what the demo and the end-to-end tests use directly::

    with SandboxEnv(Path(".sandbox")) as env:
        api = env.api_client                    # kubernetes.client.ApiClient on the emulator
        env.kubeconfig, env.prometheus_url, env.gateway_url, env.runner

Everything listens on 127.0.0.1. Every process it starts (model servers, jobs, Prometheus, the operator) carries
the environment variable ``MODELOPS_SANDBOX_ID`` (the ``sandbox_id``), so a later ``down`` can find and stop any of
them even if the supervising process died without cleaning up.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import httpx

from modelops.sandbox.gateway import Gateway, httproute_weights, replica_weights, virtualservice_weights
from modelops.sandbox.prometheus import PrometheusServer, ScrapeTarget, free_port
from modelops.sandbox.runner import Client, Kind, LocalRunner, kill_tree

__all__ = [
    "SANDBOX_ID_ENV",
    "OperatorProcess",
    "SandboxEnv",
    "SandboxError",
    "find_sandbox_processes",
    "route_weights",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Environment variable carried by every process of one sandbox (its value is the sandbox id).
SANDBOX_ID_ENV = "MODELOPS_SANDBOX_ID"
#: The repository's CRDs, next to operator/ in a source checkout.
REPO_CRDS = Path(__file__).resolve().parents[3] / "crds"

MODELDEPLOYMENTS = Kind("modelops.io", "v1alpha1", "modeldeployments")
HTTPROUTES = Kind("gateway.networking.k8s.io", "v1", "httproutes")
VIRTUALSERVICES = Kind("networking.istio.io", "v1", "virtualservices")
DEPLOYMENTS = Kind("apps", "v1", "deployments")

#: A permissive VirtualService CRD: kmock's bundled resources have Gateway API routes but no Istio.
VIRTUALSERVICE_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "virtualservices.networking.istio.io"},
    "spec": {
        "group": "networking.istio.io",
        "scope": "Namespaced",
        "names": {"plural": "virtualservices", "singular": "virtualservice", "kind": "VirtualService",
                  "shortNames": ["vs"]},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
            }
        ],
    },
}  # fmt: skip


class SandboxError(RuntimeError):
    """A part of the sandbox could not start (the message says which, with the end of its log)."""


@dataclass
class OperatorProcess:
    """``modelops run`` as a child process, pointed at the emulator and Prometheus."""

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

    ``namespaces``: where the runner and the operator look (``None``: every namespace). ``gateway_models``: the
    ModelDeployments (``namespace/name`` or ``name`` in ``default``) that get a gateway at start; more can be had
    with :meth:`gateway`. ``operator``: start ``modelops run`` (skipped, with a note, where it does not exist yet).
    """

    directory: Path
    namespaces: Sequence[str] | None = None
    gateway_models: Sequence[str] = ("default/recommender",)
    operator: bool = True
    operator_args: Sequence[str] = ()
    apiserver_port: int = 0
    prometheus_port: int = 0
    gateway_port: int = 0
    scrape_interval: str = "1s"
    crds: Sequence[Path] = ()
    sandbox_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    start_timeout: float = 60.0

    notes: list[str] = field(default_factory=list, init=False)
    _apiserver: Any = field(default=None, init=False)
    _api_client: Any = field(default=None, init=False)
    _prometheus: PrometheusServer | None = field(default=None, init=False)
    _runner: LocalRunner | None = field(default=None, init=False)
    _gateways: dict[str, Gateway] = field(default_factory=dict, init=False)
    _operator: OperatorProcess | None = field(default=None, init=False)
    _runner_targets: list[ScrapeTarget] = field(default_factory=list, init=False)
    _targets_lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def __post_init__(self) -> None:
        # Absolute: children (Prometheus, model servers) run with other working directories.
        self.directory = Path(self.directory).resolve()

    # ------------------------------------------------------------------------------------------- accessors

    @property
    def kubeconfig(self) -> Path:
        return self.directory / "kubeconfig"

    @property
    def state_file(self) -> Path:
        return self.directory / "state.json"

    @property
    def api_url(self) -> str:
        return str(self._require(self._apiserver, "apiserver").url)

    @property
    def api_client(self) -> Any:
        """A ``kubernetes.client.ApiClient`` configured from :attr:`kubeconfig`."""
        return self._require(self._api_client, "apiserver")

    @property
    def emulator(self) -> Any:
        """The in-process :class:`~modelops.sandbox.apiserver.ApiServerEmulator` (call it via ``apiserver.call``)."""
        return self._require(self._apiserver, "apiserver").emulator

    @property
    def apiserver(self) -> Any:
        """The :class:`~modelops.sandbox.apiserver.ApiServerThread` serving the emulator."""
        return self._require(self._apiserver, "apiserver")

    @property
    def prometheus(self) -> PrometheusServer:
        return self._require(self._prometheus, "prometheus")

    @property
    def prometheus_url(self) -> str:
        return self.prometheus.url

    @property
    def runner(self) -> LocalRunner:
        return self._require(self._runner, "runner")

    @property
    def gateway_url(self) -> str:
        """The URL of the first gateway (``gateway_models[0]``)."""
        if not self._gateways:
            raise SandboxError("no gateway runs (gateway_models is empty)")
        return next(iter(self._gateways.values())).url

    @property
    def gateways(self) -> Mapping[str, Gateway]:
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
        """The environment of every process the sandbox starts: this one's, the sandbox id, the kubeconfig."""
        return {**os.environ, SANDBOX_ID_ENV: self.sandbox_id, "KUBECONFIG": str(self.kubeconfig.resolve())}

    def start(self) -> SandboxEnv:
        """Start every part, in dependency order; on any failure stop what started and raise."""
        self.directory.mkdir(parents=True, exist_ok=True)
        try:
            self._start_apiserver()
            self._start_prometheus()
            self._start_runner()
            for model in self.gateway_models:
                self.gateway(model)
            if self.operator:
                self._start_operator()
            self._publish_targets()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop everything that started, the operator first (so it does not act on a half-stopped world)."""
        operator, self._operator = self._operator, None
        if operator is not None and operator.process is not None:
            kill_tree(operator.process, grace=10.0)
        for gateway in self._gateways.values():
            gateway.stop()
        self._gateways.clear()
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.stop()
        prometheus, self._prometheus = self._prometheus, None
        if prometheus is not None:
            prometheus.stop()
        if self._api_client is not None:
            self._api_client.close()
            self._api_client = None
        apiserver, self._apiserver = self._apiserver, None
        if apiserver is not None:
            apiserver.stop()

    # ------------------------------------------------------------------------------------------- parts

    def _start_apiserver(self) -> None:
        import kubernetes

        from modelops.sandbox.apiserver import ApiServerEmulator, ApiServerThread, write_kubeconfig

        emulator = ApiServerEmulator()
        crds = list(self.crds) or ([REPO_CRDS] if REPO_CRDS.is_dir() else [])
        if crds:
            emulator.load_crds(*crds)
        else:  # an installed package without the repository: the CRDs from the API models
            from modelops.api.crd import crds as generated

            for crd in generated().values():
                emulator.create_object(crd)
        emulator.create_object(VIRTUALSERVICE_CRD)
        self._apiserver = ApiServerThread(emulator, port=self.apiserver_port)
        self._apiserver.start()
        write_kubeconfig(self.kubeconfig, self._apiserver.url)
        self._api_client = kubernetes.config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(self.kubeconfig)
        )

    def _start_prometheus(self) -> None:
        self._prometheus = PrometheusServer(
            port=self.prometheus_port or None,
            workdir=self.directory / "prometheus",
            scrape_interval=self.scrape_interval,
            evaluation_interval=self.scrape_interval,
        )
        with _environ({SANDBOX_ID_ENV: self.sandbox_id}):
            self._prometheus.start(wait_for_targets=False)

    def _start_runner(self) -> None:
        self._runner = LocalRunner(
            self.api_client,
            self.directory / "runner",
            namespaces=self.namespaces,
            base_env=self.child_env(),
            on_targets=self._on_runner_targets,
        )
        self._runner.start()
        if not self._runner.synced.wait(self.start_timeout):
            raise SandboxError("the local runner could not list objects from the emulator")

    def gateway(self, model: str) -> Gateway:
        """The gateway of one ModelDeployment (``namespace/name`` or ``name``), started on first use.

        Weights come from the route the ModelDeployment names (HTTPRoute backendRefs, VirtualService route
        weights) or, for the ``replicas`` router and before the route exists, from ready replicas per version.
        """
        namespace, _, name = model.rpartition("/")
        namespace = namespace or "default"
        key = f"{namespace}/{name}"
        if key not in self._gateways:
            port = self.gateway_port if not self._gateways and self.gateway_port else 0
            runner = self.runner
            gw = Gateway(route_weights(Client(self.api_client), namespace, name), runner.resolver(namespace), port=port)
            gw.start()
            self._gateways[key] = gw
            self._publish_targets()
        return self._gateways[key]

    def _start_operator(self) -> None:
        if importlib.util.find_spec("modelops.handlers.runtime") is None:
            note = "operator not started: `modelops run` is not available yet (modelops.handlers.runtime missing)"
            log.warning(note)
            self.notes.append(note)
            return
        metrics_port, health_port = free_port(), free_port()
        argv = [
            sys.executable,
            "-c",
            "import sys; from modelops.cli import main; sys.exit(main())",
            "run",
            *(["--all-namespaces"] if not self.namespaces else [a for ns in self.namespaces for a in ("-n", ns)]),
            "--kubeconfig",
            str(self.kubeconfig.resolve()),
            "--prometheus-url",
            self.prometheus_url,
            "--metrics-address",
            "127.0.0.1",
            "--metrics-port",
            str(metrics_port),
            "--health-port",
            str(health_port),
            "--standalone",
            *self.operator_args,
        ]
        log_path = self.directory / "logs" / "operator.log"
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
        self._operator = operator
        deadline = time.monotonic() + self.start_timeout
        while True:
            if operator.process.poll() is not None:
                raise SandboxError(f"the operator exited with {operator.process.returncode}:\n{_tail(log_path)}")
            try:
                if operator.health_url and httpx.get(operator.health_url, timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() >= deadline:
                raise SandboxError(f"the operator was not healthy after {self.start_timeout}s:\n{_tail(log_path)}")
            time.sleep(0.2)

    # ------------------------------------------------------------------------------------------- scrape targets

    def _on_runner_targets(self, targets: list[ScrapeTarget]) -> None:
        with self._targets_lock:
            self._runner_targets = list(targets)
        self._publish_targets()

    def _publish_targets(self) -> None:
        prometheus = self._prometheus
        if prometheus is None:
            return
        with self._targets_lock:
            static = [
                ScrapeTarget("modelops-gateway", f"127.0.0.1:{gw.port}", labels={"gateway": key})
                for key, gw in self._gateways.items()
            ]
            if self._operator is not None:
                static.append(ScrapeTarget("modelops-operator", f"127.0.0.1:{self._operator.metrics_port}"))
            prometheus.set_targets([*static, *self._runner_targets], wait=False)

    # ------------------------------------------------------------------------------------------- state

    def state(self) -> dict[str, Any]:
        """What runs, as ``up`` records it in the state file (pids, ports, URLs) for ``down`` and ``status``."""
        runner = self._runner
        return {
            "sandbox_id": self.sandbox_id,
            "supervisor_pid": os.getpid(),
            "directory": str(self.directory.resolve()),
            "kubeconfig": str(self.kubeconfig.resolve()),
            "apiserver": {"url": self.api_url} if self._apiserver is not None else None,
            "prometheus": {"url": self.prometheus_url, "pid": self.prometheus.pid} if self._prometheus else None,
            "gateways": {key: gw.url for key, gw in self._gateways.items()},
            "operator": (
                {"pid": self._operator.pid, "log": str(self._operator.log_path)} if self._operator is not None else None
            ),
            "processes": [
                {
                    "kind": p.kind,
                    "namespace": p.namespace,
                    "owner": p.owner,
                    "pod": p.pod,
                    "pid": p.pid,
                    "url": p.url,
                    "ready": p.ready,
                    "log": str(p.log_path),
                }
                for p in (runner.processes() if runner is not None else [])
            ],
            "notes": list(self.notes),
        }

    def write_state(self, **extra: Any) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({**self.state(), **extra}, indent=2))
        tmp.replace(self.state_file)


def route_weights(client: Client, namespace: str, name: str) -> Callable[[], dict[str, float]]:
    """The weights source of a ModelDeployment's gateway: read from the API each time the gateway refreshes."""

    def ready_replicas() -> dict[str, float]:
        counts: dict[str, int] = {}
        for d in client.list(DEPLOYMENTS, namespace):
            labels = (d.get("metadata") or {}).get("labels") or {}
            if labels.get("modelops.io/deployment", labels.get("modelops.io/model")) == name:
                counts[d["metadata"]["name"]] = int((d.get("status") or {}).get("readyReplicas") or 0)
        return replica_weights(counts)

    def weights() -> dict[str, float]:
        md = client.get(MODELDEPLOYMENTS, namespace, name)
        if md is None:
            # Retired (or not yet created): the platform's route of that name, if any, still carries the traffic,
            # e.g. to the replacement a ModelRetirement drained it to.
            route = client.get(HTTPROUTES, namespace, name)
            return httproute_weights(route) if route is not None else ready_replicas()
        traffic = (md.get("spec") or {}).get("traffic") or {}
        router = traffic.get("router")
        if router == "gatewayAPI":
            settings = traffic.get("gatewayAPI") or {}
            route = client.get(HTTPROUTES, namespace, settings.get("httpRoute", name))
            if route is not None:
                return httproute_weights(route, settings.get("ruleName"))
        elif router == "istio":
            settings = traffic.get("istio") or {}
            vs = client.get(VIRTUALSERVICES, namespace, settings.get("virtualService", name))
            if vs is not None:
                return virtualservice_weights(vs, settings.get("routeName"))
        return ready_replicas()

    return weights


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
