"""The node agent: a kubelet for local processes.

It registers one Node (capacity, conditions, addresses), renews its Lease in ``kube-node-lease``, and runs each Pod
the scheduler binds to it as local processes. Deployments, ReplicaSets, Jobs and garbage collection are the real
controllers' work; the agent only does what a kubelet does:

- **Run.** The first container's ``command`` + ``args`` (``$(VAR)`` expanded, ``python`` meaning this interpreter;
  there is no container runtime, so an image without a command cannot run: its Pod waits with reason
  ``Unrunnable``). Each Pod gets an address of its own (``198.18.x.y``, ``status.podIP``, from a block of
  ``198.18.0.0/15`` that no other agent on the machine holds and that a local route makes this machine's, so the
  EndpointSlice controller publishes it: see ``_network``), given to the process as ``POD_IP`` (and through
  ``fieldRef: status.podIP``), with ``PORT`` set to its first ``containerPort``: two Pods listen on the same port
  without clashing, as on a cluster network.
- **Restart.** ``restartPolicy: Always`` processes are restarted with crash-loop backoff (``restartCount``, counted
  at each restart, and ``lastState``); other ones run once (``OnFailure`` is not restarted in place), and the Pod
  ends ``Succeeded`` or ``Failed`` with the container's exit code and its termination message (the file named by
  ``TERMINATION_LOG``, its last 4096 bytes, or with ``FallbackToLogsOnError`` the end of the container's output,
  as the kubelet does); ``activeDeadlineSeconds`` fails it with reason ``DeadlineExceeded``. A run-once container
  that was running under an agent that stopped is not run twice: its Pod fails (``ContainerStatusUnknown``).
- **Readiness.** The container's ``readinessProbe.httpGet`` against the Pod's address; without a probe a running
  container is ready. Status is written through ``pods/status`` only when it changes.
- **Deletion.** A Pod with a ``deletionTimestamp`` is stopped (SIGTERM, SIGKILL after its grace period, at most
  ``max_grace`` seconds); it stays ``Terminating`` until nothing of it runs, and is then deleted with grace period 0,
  as the kubelet finishes a deletion.
- **Stop.** :meth:`NodeAgent.stop` stops every process and leaves the Pods in the API; an agent started again for
  the same Node takes them over.

It authenticates as ``system:node:<name>`` (group ``system:nodes``): the API server's Node authorizer and the
NodeRestriction admission plugin limit it to its own Node, its Lease and the Pods bound to it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from . import _spec as spec
from ._kube import ApiError, Client, Kind
from ._network import PodNetwork, ensure_local_route
from ._process import Backoff, JobProcess, ProcessSpec, ServerProcess

__all__ = ["NodeAgent", "PodProcess"]

log = logging.getLogger(__name__)

Obj = dict[str, Any]
Key = tuple[str, str]

NODES = Kind("", "v1", "nodes")
PODS = Kind("", "v1", "pods")
LEASES = Kind("coordination.k8s.io", "v1", "leases")
LEASE_NAMESPACE = "kube-node-lease"
#: Variables of the agent's own environment that a Pod never inherits (the agent's credentials among them).
PRIVATE_ENV = ("KUBECONFIG", "MODELOPS_NODE_KUBECONFIG")


@dataclass
class PodProcess:
    """What runs for one Pod: its address, its process, and what was last written to its status."""

    namespace: str
    name: str
    uid: str
    ip: str
    container: str
    restart: bool
    server: ServerProcess | None = None
    job: JobProcess | None = None
    termination_file: Path | None = None
    policy: str = "File"
    error: str | None = None
    written: Obj | None = None
    stopping: bool = False
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def pid(self) -> int | None:
        process = self.server or self.job
        return process.pid if process is not None else None

    @property
    def log_path(self) -> Path | None:
        process = self.server or self.job
        return process.spec.log_path if process is not None else None


class NodeAgent:
    """Runs the Pods bound to Node ``name`` until :meth:`stop`. ``api_client``: a ``kubernetes.client.ApiClient``
    authenticated as the node (``system:node:<name>``). Use as a context manager, or start/stop."""

    def __init__(
        self,
        api_client: Any,
        workdir: Path,
        *,
        name: str,
        capacity: Mapping[str, str] | None = None,
        python: str = sys.executable,
        base_env: Mapping[str, str] | None = None,
        resync: float = 2.0,
        probe_period: float = 0.25,
        max_grace: float = 10.0,
        lease_seconds: int = 40,
        taints: Sequence[Mapping[str, str]] = (),
    ) -> None:
        self.client = Client(api_client)
        self.workdir = Path(workdir)
        self.name = name
        self.capacity = dict(capacity or {"cpu": "32", "memory": "64Gi", "pods": "500"})
        self.python = python
        self.base_env = {k: v for k, v in (base_env if base_env is not None else os.environ).items()
                         if k not in PRIVATE_ENV}  # fmt: skip
        self.resync = resync
        self.probe_period = probe_period
        self.max_grace = max_grace
        self.lease_seconds = lease_seconds
        #: ``spec.taints`` the Node registers with (as ``kubelet --register-with-taints``; never changed later)
        self.taints = [dict(t) for t in taints]
        self._pods: dict[Key, PodProcess] = {}
        #: the block the Pods' addresses come from, claimed in :meth:`start` (see ``_network``)
        self.pod_network: PodNetwork | None = None
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._stoppers: list[threading.Thread] = []
        #: Pods being stopped (their deletion is finished once nothing of them runs), by key and uid
        self._terminating: set[tuple[Key, str]] = set()
        #: Pods whose deletion the agent finished (grace period 0) but which a finalizer still holds
        self._deleted: dict[Key, str] = {}
        self._watch_response: Any = None
        self._ready_since: str | None = None
        self._thread = threading.Thread(target=self._loop, name=f"node-{name}", daemon=True)
        self._watcher = threading.Thread(target=self._watch, name=f"node-{name}-watch", daemon=True)
        self._heartbeat_at = 0.0
        self._lease_at = 0.0
        self.synced = threading.Event()

    # ------------------------------------------------------------------------------------------- lifecycle

    def __enter__(self) -> NodeAgent:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        ensure_local_route()
        self.pod_network = PodNetwork.claim()
        self._register()
        self._thread.start()
        self._watcher.start()

    def stop(self) -> None:
        """Stop the loop and every process (Pods stay in the API: a restarted agent runs them again)."""
        self._stopping.set()
        self._wake.set()
        response = self._watch_response
        if response is not None:
            with contextlib.suppress(Exception):
                response.close()
        if self._thread.is_alive():
            self._thread.join(30.0)
        with self._lock:
            pods = list(self._pods.values())
            self._pods.clear()
        threads = [threading.Thread(target=self._kill, args=(p, self.max_grace), daemon=True) for p in pods]
        for t in threads:
            t.start()
        for t in [*threads, *self._stoppers]:
            t.join(self.max_grace + 10.0)
        if self.pod_network is not None:
            self.pod_network.release()

    def wake(self) -> None:
        self._wake.set()

    # ------------------------------------------------------------------------------------------- reading

    def processes(self) -> list[PodProcess]:
        with self._lock:
            return list(self._pods.values())

    def pids(self) -> list[int]:
        return [p.pid for p in self.processes() if p.pid is not None]

    def pod_ip(self, namespace: str, name: str) -> str | None:
        with self._lock:
            pod = self._pods.get((namespace, name))
            return pod.ip if pod is not None else None

    # ------------------------------------------------------------------------------------------- node and lease

    def _register(self) -> None:
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.name,
                "labels": {"kubernetes.io/hostname": self.name, "kubernetes.io/os": "linux",
                           "kubernetes.io/arch": "amd64", "modelops.io/node-agent": "process"},
            },
        }  # fmt: skip
        if self.taints:
            node["spec"] = {"taints": self.taints}
        try:
            self.client.create(NODES, None, node)  # type: ignore[arg-type]
        except ApiError as e:
            if e.status != 409:
                raise
        self._heartbeat(force=True)
        self._renew_lease()

    def _heartbeat(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._heartbeat_at < 20.0:
            return
        stamp = spec.rfc3339(datetime.now(UTC))
        since = self._ready_since = self._ready_since or stamp  # the conditions hold since the agent started
        ready = {"type": "Ready", "status": "True", "reason": "KubeletReady",
                 "message": "the modelops node agent is posting ready status",
                 "lastHeartbeatTime": stamp, "lastTransitionTime": since}  # fmt: skip
        pressure = [
            {"type": t, "status": "False", "reason": f"KubeletHas{r}", "message": "", "lastHeartbeatTime": stamp,
             "lastTransitionTime": since}
            for t, r in (("MemoryPressure", "SufficientMemory"), ("DiskPressure", "NoDiskPressure"),
                         ("PIDPressure", "SufficientPID"))
        ]  # fmt: skip
        status = {
            "capacity": self.capacity,
            "allocatable": self.capacity,
            "conditions": [*pressure, ready],
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": self.name}],
            "nodeInfo": {
                "kubeletVersion": "modelops-node-agent",
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": "amd64",
                "containerRuntimeVersion": "local-process://1",
                "osImage": "local processes",
                "kernelVersion": os.uname().release,
                "machineID": "",
                "systemUUID": "",
                "bootID": "",
            },
        }
        self.client.request(
            "PATCH",
            NODES.path(None, self.name, "status"),
            body={"status": status},
            content_type="application/strategic-merge-patch+json",
        )
        self._heartbeat_at = now

    def _renew_lease(self) -> None:
        now = time.monotonic()
        if now - self._lease_at < self.lease_seconds / 4:
            return
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        body = {"spec": {"holderIdentity": self.name, "leaseDurationSeconds": self.lease_seconds, "renewTime": stamp}}
        try:
            self.client.patch(LEASES, LEASE_NAMESPACE, self.name, body)
        except ApiError as e:
            if e.status != 404:
                raise
            lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                     "metadata": {"name": self.name, "namespace": LEASE_NAMESPACE}, **body}  # fmt: skip
            self.client.create(LEASES, LEASE_NAMESPACE, lease)
        self._lease_at = now

    # ------------------------------------------------------------------------------------------- the loop

    def _list_pods(self) -> list[Obj]:
        answer = self.client.request("GET", PODS.path(None), query=[("fieldSelector", f"spec.nodeName={self.name}")])
        items: list[Obj] = (answer or {}).get("items") or []
        return items

    def _watch(self) -> None:
        """Watch the Pods bound to this node; every event only wakes the loop (which lists: level-triggered)."""
        query = [("watch", "true"), ("fieldSelector", f"spec.nodeName={self.name}"), ("timeoutSeconds", "30")]
        while not self._stopping.is_set():
            try:
                response = self.client.request("GET", PODS.path(None), query=query, timeout=(5.0, 40.0), stream=True)
                self._watch_response = response
                for chunk in response.response.stream(1024, decode_content=True):
                    if self._stopping.is_set():
                        return
                    if chunk:
                        self._wake.set()
            except Exception as e:
                log.debug("pod watch: %s", e)
                self._stopping.wait(1.0)

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                self._heartbeat()
                self._renew_lease()
                pods = self._list_pods()
                with self._lock:
                    self._sync(pods)
                self.synced.set()
            except Exception:
                log.exception("node agent: sync failed (retrying)")
            self._wake.wait(self.resync)
            self._wake.clear()

    def _sync(self, pods: list[Obj]) -> None:
        seen: set[Key] = set()
        for pod in pods:
            meta = pod["metadata"]
            key = (str(meta["namespace"]), str(meta["name"]))
            uid = str(meta.get("uid", ""))
            seen.add(key)
            local = self._pods.get(key)
            if local is not None and local.uid != uid:
                self._release(local, delete=False)
                local = None
            if meta.get("deletionTimestamp"):
                if local is not None:
                    self._release(local, delete=True, grace=_grace(pod, self.max_grace))
                elif (key, uid) not in self._terminating and self._deleted.get(key) != uid:
                    # not (or no longer) running here: nothing to wait for
                    self._delete_now(key[0], key[1], uid)
                continue
            phase = (pod.get("status") or {}).get("phase")
            if local is None:
                if phase in ("Succeeded", "Failed"):
                    continue
                if _ran_once(pod):
                    self._fail_lost(pod)
                    continue
                local = self._run(pod)
                if local is None:
                    continue
            self._write_status(local, pod)
        for key in set(self._pods) - seen:  # deleted at once (grace period 0) by someone else
            self._release(self._pods[key], delete=False)
        for key in set(self._deleted) - seen:
            del self._deleted[key]

    # ------------------------------------------------------------------------------------------- running

    def _allocate_ip(self, wanted: str | None) -> str:
        if self.pod_network is None:
            raise RuntimeError("the node agent is not started")
        return self.pod_network.allocate(wanted)

    def _free_ip(self, address: str) -> None:
        if self.pod_network is not None:
            self.pod_network.free(address)

    def _run(self, pod: Obj) -> PodProcess | None:
        meta, pod_spec = pod["metadata"], pod.get("spec") or {}
        namespace, name = str(meta["namespace"]), str(meta["name"])
        containers = pod_spec.get("containers") or [{}]
        container: Obj = containers[0]
        restart = pod_spec.get("restartPolicy", "Always") == "Always"
        ip = self._allocate_ip((pod.get("status") or {}).get("podIP"))
        local = PodProcess(namespace, name, str(meta.get("uid", "")), ip, str(container.get("name", "main")), restart)
        self._pods[(namespace, name)] = local
        pod_dir = self.workdir / "pods" / namespace / name
        log_path = self.workdir / "logs" / namespace / f"{name}.log"
        ports = [int(p["containerPort"]) for p in container.get("ports") or [] if p.get("containerPort")]
        with_ip = {**pod, "status": {**(pod.get("status") or {}), "podIP": ip}}
        env = {**self.base_env, "POD_IP": ip, "HOSTNAME": name, **spec.container_env(container, with_ip, ip=ip)}
        if ports:
            env.setdefault("PORT", str(ports[0]))
        try:
            if not restart:
                local.termination_file = pod_dir / "termination-log"
                env.update(spec.termination_env(local.termination_file))
            argv = spec.local_argv(container, env, self.python)
        except spec.UnrunnableError as e:
            local.error = str(e)
            log.error("cannot run Pod %s/%s: %s", namespace, name, e)
            return local
        process_spec = ProcessSpec(argv, env, pod_dir, log_path)
        if restart:
            probe_port, probe_path = _readiness(container, ports)
            local.server = ServerProcess(
                process_spec,
                port=probe_port,
                readiness_path=probe_path,
                on_change=self.wake,
                host=ip,
                probe_period=self.probe_period,
                grace=self.max_grace,
                backoff=Backoff(initial=1.0, maximum=10.0),
            )
            local.server.start()
        else:
            local.policy = str(container.get("terminationMessagePolicy") or "File")
            pod_dir.mkdir(parents=True, exist_ok=True)
            local.termination_file.write_bytes(b"")  # type: ignore[union-attr]
            deadline = pod_spec.get("activeDeadlineSeconds")
            local.job = JobProcess(process_spec, on_change=self.wake, deadline=deadline, grace=self.max_grace)
            try:
                local.job.start()
            except OSError as e:
                local.error = f"cannot start: {e}"
                local.job = None
        log.info("Pod %s/%s: running on %s (pid %s)", namespace, name, ip, local.pid)
        return local

    def _release(self, local: PodProcess, *, delete: bool, grace: float = 0.0) -> None:
        """Stop a Pod's processes in the background; then (``delete``) finish its deletion in the API.

        Until its processes are gone the Pod stays in the API (``Terminating``), as a kubelet keeps it for its
        grace period: its deletion is finished only once nothing of it runs."""
        local.stopping = True
        key = (local.namespace, local.name)
        self._pods.pop(key, None)
        if delete:
            self._terminating.add((key, local.uid))

        def stop() -> None:
            try:
                self._kill(local, grace)
                if delete:
                    self._delete_now(local.namespace, local.name, local.uid)
            finally:
                with self._lock:
                    self._terminating.discard((key, local.uid))

        thread = threading.Thread(target=stop, name=f"stop-{local.name}", daemon=True)
        self._stoppers = [t for t in self._stoppers if t.is_alive()] + [thread]
        thread.start()

    def _kill(self, local: PodProcess, grace: float) -> None:
        if local.server is not None:
            local.server.grace = grace
            local.server.stop()
        if local.job is not None:
            local.job.grace = grace
            local.job.stop()
        with self._lock:
            self._free_ip(local.ip)
        log.info("Pod %s/%s: stopped", local.namespace, local.name)

    def _delete_now(self, namespace: str, name: str, uid: str) -> None:
        """Finish a Pod's deletion (grace period 0); a finalizer (the Job controller's) may hold it a while longer,
        so it is asked once per Pod."""
        body = {"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0, "preconditions": {"uid": uid}}
        try:
            self.client.request("DELETE", PODS.path(namespace, name), body=body)
        except ApiError as e:
            if e.status not in (404, 409):
                log.warning("cannot delete Pod %s/%s: %s", namespace, name, e)
                return
        with self._lock:
            self._deleted[(namespace, name)] = uid

    # ------------------------------------------------------------------------------------------- status

    def _fail_lost(self, pod: Obj) -> None:
        """A run-once Pod whose container was running under an agent that stopped: its process ended with that
        agent, and running it again would run it twice, so it fails (as a kubelet reports a container it lost)."""
        meta, old = pod["metadata"], pod.get("status") or {}
        now = datetime.now(UTC)
        containers = (pod.get("spec") or {}).get("containers") or [{}]
        started = spec.parse_time(old.get("startTime")) or now
        message = "the node agent stopped while the container ran: a container does not outlive its agent"
        terminated = {"terminated": spec.terminated_state(137, message, started, now, "ContainerStatusUnknown")}
        status = {"phase": "Failed", **spec.pod_conditions(old, ready=False, now=now),
                  "containerStatuses": [spec.container_status(str(containers[0].get("name", "main")), False, 0,
                                                              terminated)]}  # fmt: skip
        log.warning("Pod %s/%s: its container ran under a stopped agent; failed", meta["namespace"], meta["name"])
        try:
            self.client.request(
                "PATCH",
                PODS.path(str(meta["namespace"]), str(meta["name"]), "status"),
                body={"status": status},
                content_type="application/strategic-merge-patch+json",
            )
        except ApiError as e:
            if e.status != 404:
                raise

    def _write_status(self, local: PodProcess, pod: Obj) -> None:
        status = self._status(local, pod)
        previous = local.written if local.written is not None else pod.get("status")
        if not spec.status_changed(_comparable(previous), status):
            return
        try:
            # strategic merge: conditions merge by type (PodScheduled stays), so a reason or message the new
            # condition has not is removed explicitly; containerStatuses are replaced whole
            body = {"status": {**status, "conditions": [{"reason": None, "message": None, **c}
                                                        for c in status.get("conditions") or []]}}  # fmt: skip
            self.client.request("PATCH", PODS.path(local.namespace, local.name, "status"), body=body,
                                content_type="application/strategic-merge-patch+json")  # fmt: skip
        except ApiError as e:
            if e.status == 404:
                self.wake()
                return
            raise
        local.written = status

    def _status(self, local: PodProcess, pod: Obj) -> Obj:
        now = datetime.now(UTC)
        old = pod.get("status") or {}
        started = spec.parse_time(old.get("startTime")) or local.started_at
        base: Obj = {"hostIP": "127.0.0.1", "hostIPs": [{"ip": "127.0.0.1"}], "podIP": local.ip,
                     "podIPs": [{"ip": local.ip}], "startTime": spec.rfc3339(started)}  # fmt: skip
        if local.error is not None:
            waiting = {"waiting": {"reason": "Unrunnable", "message": local.error}}
            return {**base, "phase": "Pending", **spec.pod_conditions(old, ready=False, now=now),
                    "containerStatuses": [spec.container_status(local.container, False, 0, waiting)]}  # fmt: skip
        if local.server is not None:
            ready = local.server.ready and local.server.pid is not None
            running = {"running": {"startedAt": spec.rfc3339(local.server.started_at)}}
            state = running if local.server.pid is not None else {"waiting": {"reason": "CrashLoopBackOff"}}
            container = spec.container_status(local.container, ready, local.server.restarts, state)
            if local.server.last_exit is not None:
                code, began, ended = local.server.last_exit
                container["lastState"] = {"terminated": spec.terminated_state(code, "", began, ended)}
            return {**base, "phase": "Running", **spec.pod_conditions(old, ready=ready, now=now),
                    "containerStatuses": [container]}  # fmt: skip
        job = local.job
        assert job is not None
        if job.outcome is None:
            running = {"running": {"startedAt": spec.rfc3339(job.started_at)}}
            return {**base, "phase": "Running", **spec.pod_conditions(old, ready=True, now=now),
                    "containerStatuses": [spec.container_status(local.container, True, 0, running)]}  # fmt: skip
        outcome = job.outcome
        code = outcome.exit_code if outcome.exit_code >= 0 else 128 - outcome.exit_code
        message = spec.termination_message(
            _read(local.termination_file), _read_tail(job.spec.log_path, job.output_offset), code, local.policy
        )
        terminated = {"terminated": spec.terminated_state(code, message, outcome.started, outcome.finished,
                                                          outcome.reason)}  # fmt: skip
        phase = "Succeeded" if code == 0 else "Failed"
        extra = {"reason": "DeadlineExceeded", "message": "Pod was active on the node longer than the specified "
                 "deadline"} if outcome.reason == "DeadlineExceeded" else {}  # fmt: skip
        self._free_ip(local.ip)
        return {**base, "phase": phase, **extra, **spec.pod_conditions(old, ready=False, now=now),
                "containerStatuses": [spec.container_status(local.container, False, 0, terminated)]}  # fmt: skip


def _readiness(container: Mapping[str, Any], ports: list[int]) -> tuple[int, str | None]:
    """The port and path of the container's HTTP readiness probe (a named port resolved), or no probe."""
    http = (container.get("readinessProbe") or {}).get("httpGet")
    if not http:
        return (ports[0] if ports else 0), None
    port = http.get("port")
    if isinstance(port, str) and not port.isdigit():
        named = {p.get("name"): p.get("containerPort") for p in container.get("ports") or []}
        port = named.get(port)
    return int(port or (ports[0] if ports else 0)), str(http.get("path") or "/")


def _ran_once(pod: Mapping[str, Any]) -> bool:
    """A Pod that runs its container once (``restartPolicy`` other than ``Always``) and whose container already
    started (under an agent that has stopped since)."""
    if ((pod.get("spec") or {}).get("restartPolicy") or "Always") == "Always":
        return False
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return any("running" in (c.get("state") or {}) or "terminated" in (c.get("state") or {}) for c in statuses)


def _grace(pod: Mapping[str, Any], cap: float) -> float:
    meta_grace = (pod.get("metadata") or {}).get("deletionGracePeriodSeconds")
    value = meta_grace if meta_grace is not None else (pod.get("spec") or {}).get("terminationGracePeriodSeconds", 30)
    return float(min(max(float(value or 0), 0.0), cap))


def _comparable(status: Mapping[str, Any] | None) -> Obj | None:
    """The part of a Pod status the agent writes (the scheduler's PodScheduled condition is not its own)."""
    if status is None:
        return None
    out = dict(status)
    out["conditions"] = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
    return out


def _read(path: Path | None) -> bytes:
    if path is None:
        return b""
    try:
        return path.read_bytes()
    except OSError:
        return b""


def _read_tail(path: Path, start: int = 0, size: int = 16384) -> bytes:
    """The last ``size`` bytes of a log from offset ``start`` on (the container's own output: the agent's line
    before it left out)."""
    try:
        with path.open("rb") as f:
            f.seek(0, 2)
            f.seek(max(f.tell() - size, start))
            return f.read()
    except OSError:
        return b""
