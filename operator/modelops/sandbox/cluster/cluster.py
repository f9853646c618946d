"""A real Kubernetes control plane on 127.0.0.1: etcd, kube-apiserver, kube-controller-manager, kube-scheduler.

The binaries are the upstream ones, built from their Go modules by ``scripts/build-kube.sh`` (pinned in
``hack/kube/go.mod``) and cached per version outside the checkout. Nothing here answers an API request itself::

    with LocalCluster(Path(".sandbox/cluster")) as cluster:
        cluster.kubeconfig              # admin (group system:masters)
        cluster.api_client()            # kubernetes.client.ApiClient as admin
        cluster.audit_log               # every request the API server served (JSON lines, audit.k8s.io/v1)

The API server runs with TLS, ``--authorization-mode=Node,RBAC``, service-account token signing and an audit log;
the controller-manager runs every default controller with per-controller service-account credentials; the
scheduler binds Pods to the node agent's Node (:mod:`modelops.sandbox.node`). Every process carries the sandbox id
(``MODELOPS_SANDBOX_ID``) so ``modelops sandbox down`` can find it, and state lives under one directory, so a
stopped cluster starts again with its objects.
"""

from __future__ import annotations

import json
import logging
import os
import ssl
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import yaml

from modelops.sandbox.build import built
from modelops.sandbox.node._process import ProcessSpec, kill_tree, spawn
from modelops.sandbox.prometheus import free_port

from .pki import CertPair, Pki

__all__ = ["AuditRecord", "ClusterError", "LocalCluster", "kube_binaries", "write_kubeconfig"]

log = logging.getLogger(__name__)

#: The repository's scripts/ (a source checkout: operator/modelops/sandbox/cluster/ is four levels below it).
REPO = Path(__file__).resolve().parents[4]
BUILD_SCRIPT = REPO / "scripts" / "build-kube.sh"
#: Environment variable naming a directory that already holds the binaries (skips the build).
BIN_DIR_ENV = "MODELOPS_KUBE_BIN_DIR"
SERVICE_CIDR = "10.0.0.0/24"
ISSUER = "https://kubernetes.default.svc.cluster.local"
#: The node agent's identity: the Node authorizer lets it touch only its own Node and the Pods bound to it.
NODE_NAME = "modelops-node"

AUDIT_POLICY: dict[str, Any] = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived", "ResponseStarted"],
    "rules": [
        # The control plane's own traffic is not what tests look at.
        {"level": "None", "users": ["system:kube-controller-manager", "system:kube-scheduler", "system:apiserver"]},
        {"level": "None", "userGroups": ["system:serviceaccounts:kube-system", "system:nodes"]},
        {"level": "None", "nonResourceURLs": ["/readyz*", "/healthz*", "/livez*", "/version"]},
        {"level": "Metadata"},
    ],
}


class ClusterError(RuntimeError):
    """A component did not build, start or become ready (the message has the end of its log)."""


@dataclass(frozen=True)
class AuditRecord:
    """One request the API server answered, from its audit log."""

    user: str
    user_agent: str
    verb: str
    group: str
    resource: str
    subresource: str
    namespace: str
    name: str
    status: int
    uri: str

    @classmethod
    def from_event(cls, event: Mapping[str, Any]) -> AuditRecord:
        ref = event.get("objectRef") or {}
        return cls(
            user=str((event.get("user") or {}).get("username", "")),
            user_agent=str(event.get("userAgent", "")),
            verb=str(event.get("verb", "")),
            group=str(ref.get("apiGroup", "")),
            resource=str(ref.get("resource", "")),
            subresource=str(ref.get("subresource", "")),
            namespace=str(ref.get("namespace", "")),
            name=str(ref.get("name", "")),
            status=int((event.get("responseStatus") or {}).get("code", 0)),
            uri=str(event.get("requestURI", "")),
        )


def kube_binaries(*, quiet: bool = False) -> Path:
    """The directory with ``kube-apiserver``, ``kube-controller-manager``, ``kube-scheduler``, ``kubectl`` and
    ``etcd``: ``$MODELOPS_KUBE_BIN_DIR``, else built (once per version) by ``scripts/build-kube.sh``."""
    given = os.environ.get(BIN_DIR_ENV)
    if given:
        path = Path(given)
        if not (path / "kube-apiserver").exists() or not (path / "etcd").exists():
            raise ClusterError(f"${BIN_DIR_ENV}={given} has no kube-apiserver or etcd")
        return path
    return built(BUILD_SCRIPT.name, ClusterError, quiet=quiet)


def write_kubeconfig(
    path: Path,
    server: str,
    ca: Path,
    *,
    user: str = "admin",
    client: CertPair | None = None,
    token: str | None = None,
    namespace: str | None = None,
) -> Path:
    """A kubeconfig with one cluster, one user (a client certificate or a bearer token) and one current context."""
    credentials: dict[str, Any] = {}
    if client is not None:
        credentials = {"client-certificate": str(client.cert), "client-key": str(client.key)}
    if token is not None:
        credentials = {"token": token}
    context: dict[str, Any] = {"cluster": "modelops-local", "user": user}
    if namespace:
        context["namespace"] = namespace
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "modelops-local", "cluster": {"server": server, "certificate-authority": str(ca)}}],
        "users": [{"name": user, "user": credentials}],
        "contexts": [{"name": "modelops-local", "context": context}],
        "current-context": "modelops-local",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(config, sort_keys=False))
    tmp.chmod(0o600)
    tmp.replace(path)
    return path


@dataclass
class _Component:
    name: str
    argv: list[str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class LocalCluster:
    """The control plane under ``directory`` (see the module docstring). Ports are picked once and kept, so a
    restarted component comes back on the same address with the same data."""

    directory: Path
    env: Mapping[str, str] = field(default_factory=dict)
    bin_dir: Path | None = None
    audit: bool = True
    start_timeout: float = 120.0
    #: extra flags per component, e.g. {"kube-apiserver": ["--max-requests-inflight=800"]}
    extra_args: Mapping[str, Sequence[str]] = field(default_factory=dict)

    _components: dict[str, _Component] = field(default_factory=dict, init=False)
    _ports: dict[str, int] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.directory = Path(self.directory).resolve()

    # ------------------------------------------------------------------------------------------- addresses

    @property
    def pki(self) -> Pki:
        return Pki(self.directory / "pki")

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self._port('apiserver')}"

    @property
    def etcd_url(self) -> str:
        return f"http://127.0.0.1:{self._port('etcd')}"

    @property
    def ca(self) -> Path:
        return self.directory / "pki" / "ca.crt"

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig (group ``system:masters``): for set-up, tests' own reads, and ``kubectl``."""
        return self.directory / "kubeconfig"

    @property
    def audit_log(self) -> Path:
        return self.directory / "logs" / "audit.log"

    @property
    def bin(self) -> Path:
        if self.bin_dir is None:
            self.bin_dir = kube_binaries()
        return self.bin_dir

    def kubectl(self, *args: str, kubeconfig: Path | None = None, check: bool = True) -> str:
        """Run the cluster's own ``kubectl`` (admin unless ``kubeconfig``); returns its output."""
        done = subprocess.run(
            [str(self.bin / "kubectl"), f"--kubeconfig={kubeconfig or self.kubeconfig}", *args],
            check=False,
            capture_output=True,
            text=True,
        )
        if check and done.returncode != 0:
            raise ClusterError(f"kubectl {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def user_kubeconfig(self, name: str, user: str, groups: Sequence[str] = ()) -> Path:
        """A kubeconfig authenticating with a client certificate as ``user`` in ``groups`` (made on first use)."""
        pair = self.pki.client(name, user, groups)
        return write_kubeconfig(self.directory / "kubeconfigs" / f"{name}.kubeconfig", self.server, self.ca,
                                user=user, client=pair)  # fmt: skip

    def editor_kubeconfig(self, user: str, groups: Sequence[str], namespace: str) -> Path:
        """A kubeconfig of ``user`` in ``groups`` who edits ``namespace``: bound there to Kubernetes' ``edit`` role
        (which the chart's aggregated roles extend to modelops objects), as a platform team would make a member of
        an ML team."""
        kubeconfig = self.user_kubeconfig(f"{user}-in-{namespace}", user, groups)
        binding = f"{user}-edit"
        if not self.kubectl("get", "rolebinding", binding, f"--namespace={namespace}", "--ignore-not-found", "-o=name"):
            self.kubectl("create", "rolebinding", binding, "--clusterrole=edit", f"--user={user}",
                         f"--namespace={namespace}")  # fmt: skip
        return kubeconfig

    def api_client(self, kubeconfig: Path | None = None) -> Any:
        """A ``kubernetes.client.ApiClient`` for ``kubeconfig`` (default: admin)."""
        import kubernetes

        return kubernetes.config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(kubeconfig or self.kubeconfig)
        )

    def audit_records(self, since: int = 0) -> tuple[list[AuditRecord], int]:
        """The audit records after byte offset ``since``, and the offset to pass next time."""
        if not self.audit_log.exists():
            return [], since
        with self.audit_log.open("rb") as f:
            f.seek(since)
            data = f.read()
        end = data.rfind(b"\n") + 1  # a line still being written is read next time
        records = [AuditRecord.from_event(json.loads(line)) for line in data[:end].splitlines() if line.strip()]
        return records, since + end

    # ------------------------------------------------------------------------------------------- lifecycle

    def __enter__(self) -> LocalCluster:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> LocalCluster:
        """Start etcd, the API server, the controller-manager and the scheduler; return once the API is ready and
        the controllers work (the ``default`` ServiceAccount exists). On failure, stop what started and raise."""
        started = time.monotonic()
        _ = self.bin  # build (or find) the binaries before any port is taken
        (self.directory / "logs").mkdir(parents=True, exist_ok=True)
        try:
            self._write_files()
            self._start("etcd", self._etcd_argv())
            self._wait_etcd()
            self._start("kube-apiserver", self._apiserver_argv())
            self._wait_apiserver()
            self._start("kube-controller-manager", self._controller_manager_argv())
            self._start("kube-scheduler", self._scheduler_argv())
            self._wait_controllers()
        except BaseException:
            self.stop()
            raise
        log.info("local cluster ready at %s in %.1f s", self.server, time.monotonic() - started)
        return self

    def stop(self) -> None:
        """Stop every component, the controllers first and etcd last; state stays on disk."""
        for name in ("kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd"):
            component = self._components.pop(name, None)
            if component is not None and component.process is not None:
                kill_tree(component.process, grace=10.0)

    def restart(self, name: str) -> None:
        """Stop one component (``etcd``, ``kube-apiserver``, ...) and start it again on the same port and data."""
        component = self._components.get(name)
        if component is None or component.process is None:
            raise ClusterError(f"{name} is not running")
        kill_tree(component.process, grace=10.0)
        self._start(name, component.argv)
        if name == "etcd":
            self._wait_etcd()
        elif name == "kube-apiserver":
            self._wait_apiserver()

    def pids(self) -> dict[str, int]:
        return {n: c.process.pid for n, c in self._components.items() if c.process is not None and c.alive()}

    # ------------------------------------------------------------------------------------------- internals

    def _port(self, name: str) -> int:
        if name not in self._ports:
            saved = self.directory / "ports.json"
            if saved.exists() and not self._ports:
                self._ports.update(json.loads(saved.read_text()))
            if name not in self._ports:
                self._ports[name] = free_port()
                self.directory.mkdir(parents=True, exist_ok=True)
                saved.write_text(json.dumps(self._ports))
        return self._ports[name]

    def _write_files(self) -> None:
        pki = self.pki
        pki.serving(["127.0.0.1", "10.0.0.1", "localhost", "kubernetes", "kubernetes.default",
                     "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"])  # fmt: skip
        write_kubeconfig(self.kubeconfig, self.server, self.ca, client=pki.client("admin", "admin", ["system:masters"]))
        self.user_kubeconfig("kube-controller-manager", "system:kube-controller-manager")
        self.user_kubeconfig("kube-scheduler", "system:kube-scheduler")
        (self.directory / "audit-policy.yaml").write_text(yaml.safe_dump(AUDIT_POLICY, sort_keys=False))
        scheduler = {
            "apiVersion": "kubescheduler.config.k8s.io/v1",
            "kind": "KubeSchedulerConfiguration",
            "clientConnection": {"kubeconfig": str(self.directory / "kubeconfigs" / "kube-scheduler.kubeconfig")},
            "leaderElection": {"leaderElect": False},
        }
        (self.directory / "scheduler.yaml").write_text(yaml.safe_dump(scheduler, sort_keys=False))

    def _etcd_argv(self) -> list[str]:
        client, peer = self._port("etcd"), self._port("etcd-peer")
        return [
            str(self.bin / "etcd"),
            "--name=modelops",
            f"--data-dir={self.directory / 'etcd'}",
            f"--listen-client-urls=http://127.0.0.1:{client}",
            f"--advertise-client-urls=http://127.0.0.1:{client}",
            f"--listen-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-cluster=modelops=http://127.0.0.1:{peer}",
            "--unsafe-no-fsync",  # a test bed: durability across power loss is not what it is for
            "--log-level=warn",
            *self.extra_args.get("etcd", ()),
        ]

    def _apiserver_argv(self) -> list[str]:
        pki = self.pki
        serving = pki.serving([])
        sa_key = pki.service_account_key
        audit = (
            [f"--audit-policy-file={self.directory / 'audit-policy.yaml'}", f"--audit-log-path={self.audit_log}",
             "--audit-log-format=json", "--audit-log-mode=blocking"]
            if self.audit else []
        )  # fmt: skip
        return [
            str(self.bin / "kube-apiserver"),
            f"--etcd-servers={self.etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={self._port('apiserver')}",
            f"--cert-dir={self.directory / 'pki'}",
            f"--tls-cert-file={serving.cert}",
            f"--tls-private-key-file={serving.key}",
            f"--client-ca-file={self.ca}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            f"--service-account-issuer={ISSUER}",
            f"--service-account-key-file={sa_key}",
            f"--service-account-signing-key-file={sa_key}",
            # no kube-proxy and no Service network here: nothing reads the kubernetes Service's endpoints
            "--endpoint-reconciler-type=none",
            "--allow-privileged=true",
            "--profiling=false",
            *audit,
            *self.extra_args.get("kube-apiserver", ()),
        ]

    def _controller_manager_argv(self) -> list[str]:
        kubeconfig = self.directory / "kubeconfigs" / "kube-controller-manager.kubeconfig"
        return [
            str(self.bin / "kube-controller-manager"),
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            f"--service-account-private-key-file={self.pki.service_account_key}",
            f"--root-ca-file={self.ca}",
            "--use-service-account-credentials=true",
            "--controllers=*",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            "--secure-port=0",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            # the garbage collector and the Job controller react within a second, not a sync period
            "--concurrent-gc-syncs=5",
            *self.extra_args.get("kube-controller-manager", ()),
        ]

    def _scheduler_argv(self) -> list[str]:
        return [
            str(self.bin / "kube-scheduler"),
            f"--config={self.directory / 'scheduler.yaml'}",
            "--secure-port=0",
            *self.extra_args.get("kube-scheduler", ()),
        ]

    def _start(self, name: str, argv: list[str]) -> None:
        log_path = self.directory / "logs" / f"{name}.log"
        spec = ProcessSpec(argv=argv, env={**os.environ, **self.env}, cwd=self.directory, log_path=log_path)
        component = _Component(name, argv, log_path, spawn(spec))
        self._components[name] = component

    def _tail(self, name: str, lines: int = 25) -> str:
        path = self.directory / "logs" / f"{name}.log"
        try:
            return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def _poll(self, name: str, check: Any, what: str) -> None:
        deadline = time.monotonic() + self.start_timeout
        while True:
            component = self._components[name]
            if not component.alive():
                raise ClusterError(f"{name} exited while starting:\n{self._tail(name)}")
            try:
                if check():
                    return
            except (httpx.HTTPError, OSError):
                pass
            if time.monotonic() > deadline:
                raise ClusterError(f"{what} not within {self.start_timeout:.0f} s:\n{self._tail(name)}")
            time.sleep(0.2)

    def _wait_etcd(self) -> None:
        self._poll("etcd", lambda: httpx.get(f"{self.etcd_url}/health", timeout=2).status_code == 200, "etcd healthy")

    def _admin_http(self) -> httpx.Client:
        admin = self.pki.client("admin", "admin", ["system:masters"])
        context = ssl.create_default_context(cafile=str(self.ca))
        context.load_cert_chain(str(admin.cert), str(admin.key))
        return httpx.Client(base_url=self.server, verify=context, timeout=5)

    def _wait_apiserver(self) -> None:
        with self._admin_http() as http:
            self._poll("kube-apiserver", lambda: http.get("/readyz").status_code == 200, "kube-apiserver ready")

    def _wait_controllers(self) -> None:
        with self._admin_http() as http:
            self._poll(
                "kube-controller-manager",
                lambda: http.get("/api/v1/namespaces/default/serviceaccounts/default").status_code == 200,
                "the controller-manager's ServiceAccount controller",
            )
