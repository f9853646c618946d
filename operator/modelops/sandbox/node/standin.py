"""A status-only node: a Node whose Pods run nowhere, for loads where thousands of Pods must cost no process.

:class:`StatusOnlyNode` does the part of a kubelet the control plane sees, and nothing else:

- it registers its Node (capacity for thousands of Pods, ``Ready``), renews its Lease in ``kube-node-lease`` and
  posts the Node's status now and then, so the node lifecycle controller keeps it schedulable;
- it watches the Pods bound to it (``spec.nodeName``) and writes each one ``Running`` and ``Ready`` once, with a
  ``podIP`` of its own from ``pod_network`` (not loopback: the EndpointSlice controller publishes these);
- it finishes the deletion of a Pod that has a ``deletionTimestamp`` with grace period 0, as a kubelet does once its
  containers stopped.

It starts nothing: no process, no readiness probe (every container is Ready at once), and a Job's Pod runs forever
(it never ends ``Succeeded`` or ``Failed``). Use :class:`~modelops.sandbox.node.NodeAgent` when what runs matters.
The real Deployment, ReplicaSet and EndpointSlice controllers and the scheduler do the rest, so a benchmark of the
operator sees the same chain of objects as on a cluster.

It is event-driven (one LIST, then a watch from its resourceVersion, a new LIST only when the watch expired), so
its cost is one status write per Pod, not a LIST per change. It authenticates as ``system:node:<name>`` (group
``system:nodes``); the Node authorizer and NodeRestriction limit it to its Node, its Lease and its Pods.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from kubernetes.watch.watch import iter_resp_lines

from ._kube import ApiError, Client, Kind

__all__ = ["StatusOnlyNode"]

log = logging.getLogger(__name__)

Obj = dict[str, Any]

NODES = Kind("", "v1", "nodes")
PODS = Kind("", "v1", "pods")
LEASES = Kind("coordination.k8s.io", "v1", "leases")
LEASE_NAMESPACE = "kube-node-lease"
#: What the Pods' status says ran them (``nodeInfo.kubeletVersion`` of the Node).
VERSION = "modelops-status-only-node"
#: The kubelet's Pod conditions, all True once the Pod "runs".
CONDITIONS = ("PodReadyToStartContainers", "Initialized", "ContainersReady", "Ready")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def running_status(pod: Mapping[str, Any], ip: str, host_ip: str = "127.0.0.1") -> Obj:
    """The status a kubelet would write once every container of ``pod`` runs and is ready, at address ``ip``.

    >>> s = running_status({"spec": {"containers": [{"name": "c", "image": "i"}]}}, "10.244.0.2")
    >>> s["phase"], s["podIP"], [c["type"] for c in s["conditions"]], s["containerStatuses"][0]["ready"]
    ('Running', '10.244.0.2', ['PodReadyToStartContainers', 'Initialized', 'ContainersReady', 'Ready'], True)
    """
    now = _now()
    containers = (pod.get("spec") or {}).get("containers") or []
    return {
        "phase": "Running",
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "startTime": now,
        "conditions": [{"type": t, "status": "True", "lastTransitionTime": now} for t in CONDITIONS],
        "containerStatuses": [
            {
                "name": str(c.get("name", "")),
                "image": str(c.get("image", "")),
                "imageID": "",
                "ready": True,
                "started": True,
                "restartCount": 0,
                "state": {"running": {"startedAt": now}},
            }
            for c in containers
        ],
    }


def is_running(status: Mapping[str, Any]) -> bool:
    """Whether a Pod's status already says Running, Ready, with an address."""
    if status.get("phase") != "Running" or not status.get("podIP"):
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])


class StatusOnlyNode:
    """Node ``name`` whose Pods are reported running without running (see the module docstring).

    ``api_client``: a ``kubernetes.client.ApiClient`` authenticated as ``system:node:<name>``. ``workers``: status
    writes and deletions in flight at once. ``taints``: the Node's ``spec.taints`` at registration (e.g. a
    ``NoSchedule`` taint, so that only Pods tolerating it land here beside another node). Use as a context manager,
    or :meth:`start` / :meth:`stop`.
    """

    def __init__(
        self,
        api_client: Any,
        *,
        name: str,
        capacity: Mapping[str, str] | None = None,
        taints: Sequence[Mapping[str, str]] = (),
        pod_network: str = "10.244.0.0/16",
        workers: int = 4,
        lease_seconds: int = 40,
        status_period: float = 60.0,
        watch_timeout: int = 300,
    ) -> None:
        self.client = Client(api_client)
        self.name = name
        self.capacity = dict(capacity or {"cpu": "1000", "memory": "4Ti", "pods": "20000"})
        self.taints = [dict(t) for t in taints]
        self.network = ipaddress.ip_network(pod_network)
        self.lease_seconds = lease_seconds
        self.status_period = status_period
        self.watch_timeout = watch_timeout
        self._lock = threading.Lock()
        self._ips: dict[str, str] = {}  # Pod uid -> address
        self._used: set[str] = set()
        self._hosts = self.network.hosts()
        self._writing: set[str] = set()  # uids with a status write queued or in flight
        self._deleting: set[str] = set()  # uids with a deletion queued or in flight
        self._running: set[str] = set()  # uids whose status says Running and Ready
        self._stopping = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"standin-{name}")
        self._response: Any = None
        self._watcher = threading.Thread(target=self._watch_loop, name=f"standin-{name}-watch", daemon=True)
        self._beater = threading.Thread(target=self._heartbeat_loop, name=f"standin-{name}-lease", daemon=True)
        #: set once the first LIST of the node's Pods was handled
        self.synced = threading.Event()
        #: status writes and deletions done (a benchmark's sanity check)
        self.written = 0
        self.deleted = 0

    # ------------------------------------------------------------------------------------------- lifecycle

    def __enter__(self) -> StatusOnlyNode:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        self._register()
        self._watcher.start()
        self._beater.start()

    def stop(self) -> None:
        """Stop watching and writing (the Node and its Pods stay in the API)."""
        self._stopping.set()
        response = self._response
        if response is not None:
            with contextlib.suppress(Exception):
                response.response.shutdown()
        self._watcher.join(10.0)
        self._beater.join(10.0)
        self._pool.shutdown(wait=True, cancel_futures=True)

    def running(self) -> int:
        """How many of the node's Pods are reported Running and Ready."""
        with self._lock:
            return len(self._running)

    # ------------------------------------------------------------------------------------------- node and lease

    def _register(self) -> None:
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.name,
                "labels": {
                    "kubernetes.io/hostname": self.name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "modelops.io/node-agent": "status-only",
                },
            },
            "spec": {"taints": self.taints} if self.taints else {},
        }
        try:
            self.client.request("POST", NODES.path(None), body=node)
        except ApiError as e:
            if e.status != 409:
                raise
        self._post_status()
        self._renew_lease()

    def _post_status(self) -> None:
        stamp = _now()
        conditions = [
            {"type": t, "status": "False", "reason": r, "message": "", "lastHeartbeatTime": stamp,
             "lastTransitionTime": stamp}
            for t, r in (("MemoryPressure", "KubeletHasSufficientMemory"), ("DiskPressure", "KubeletHasNoDiskPressure"),
                         ("PIDPressure", "KubeletHasSufficientPID"))
        ]  # fmt: skip
        conditions.append({"type": "Ready", "status": "True", "reason": "KubeletReady",
                           "message": "the status-only node is posting ready status", "lastHeartbeatTime": stamp,
                           "lastTransitionTime": stamp})  # fmt: skip
        status = {
            "capacity": self.capacity,
            "allocatable": self.capacity,
            "conditions": conditions,
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": self.name}],
            "nodeInfo": {
                "kubeletVersion": VERSION,
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": "amd64",
                "containerRuntimeVersion": "none://0",
                "osImage": "none",
                "kernelVersion": "",
                "machineID": "",
                "systemUUID": "",
                "bootID": "",
            },
        }
        self.client.request("PATCH", NODES.path(None, self.name, "status"), body={"status": status},
                            content_type="application/strategic-merge-patch+json")  # fmt: skip

    def _renew_lease(self) -> None:
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

    def _heartbeat_loop(self) -> None:
        posted = time.monotonic()
        while not self._stopping.wait(self.lease_seconds / 4):
            try:
                self._renew_lease()
                if time.monotonic() - posted >= self.status_period:
                    self._post_status()
                    posted = time.monotonic()
            except Exception as e:  # the next beat tries again; the lease lasts four of them
                log.warning("status-only node %s: heartbeat failed: %s", self.name, e)

    # ------------------------------------------------------------------------------------------- pods

    def _selector(self) -> tuple[str, str]:
        return ("fieldSelector", f"spec.nodeName={self.name}")

    def _list(self) -> str:
        """Handle every Pod bound to the node; returns the list's resourceVersion to watch from."""
        answer = self.client.request("GET", PODS.path(None), query=[self._selector()], timeout=60.0) or {}
        pods: list[Obj] = answer.get("items") or []
        uids = {str(p["metadata"].get("uid", "")) for p in pods}
        with self._lock:  # Pods deleted while no watch ran
            for uid in set(self._ips) - uids:
                self._release(uid)
        for pod in pods:
            self._observe(pod)
        self.synced.set()
        return str((answer.get("metadata") or {}).get("resourceVersion", ""))

    def _watch_loop(self) -> None:
        version = ""
        while not self._stopping.is_set():
            try:
                if not version:
                    version = self._list()
                version = self._watch(version)
            except Exception as e:
                if self._stopping.is_set():
                    return
                log.warning("status-only node %s: pod watch: %s (listing again)", self.name, e)
                version = ""
                self._stopping.wait(1.0)
            finally:
                self._response = None

    def _watch(self, version: str) -> str:
        """One watch from ``version`` until it times out (returns the last version seen) or expires (returns "")."""
        query = [
            self._selector(),
            ("watch", "true"),
            ("resourceVersion", version),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", str(self.watch_timeout)),
        ]
        self._response = self.client.request(
            "GET", PODS.path(None), query=query, timeout=(5.0, self.watch_timeout + 30.0), stream=True
        )
        for line in iter_resp_lines(self._response.response):  # type: ignore[no-untyped-call]
            if self._stopping.is_set():
                return version
            if not line.strip():
                continue
            event = json.loads(line)
            kind, obj = event.get("type"), event.get("object") or {}
            if kind == "ERROR":  # 410 Gone: the version is too old to watch from
                log.info("status-only node %s: watch ended: %s", self.name, obj.get("message"))
                return ""
            version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
            if kind == "DELETED":
                with self._lock:
                    self._release(str(obj["metadata"].get("uid", "")))
            elif kind in ("ADDED", "MODIFIED"):
                self._observe(obj)
        return version

    def _observe(self, pod: Obj) -> None:
        meta = pod.get("metadata") or {}
        uid = str(meta.get("uid", ""))
        status = pod.get("status") or {}
        with self._lock:
            if meta.get("deletionTimestamp"):
                if uid not in self._deleting:
                    self._deleting.add(uid)
                    self._pool.submit(self._delete, str(meta["namespace"]), str(meta["name"]), uid)
                return
            if uid in self._writing or status.get("phase") in ("Succeeded", "Failed"):
                return
            if is_running(status):
                ip = str(status["podIP"])
                if self._ips.get(uid) != ip and ip not in self._used:  # e.g. written before a restart of ours
                    self._ips[uid] = ip
                    self._used.add(ip)
                self._running.add(uid)
                return
            self._writing.add(uid)
            ip = self._address(uid)
        self._pool.submit(self._write, pod, ip)

    def _address(self, uid: str) -> str:
        ip = self._ips.get(uid)
        if ip is not None:
            return ip
        for _ in range(self.network.num_addresses):
            try:
                candidate = str(next(self._hosts))
            except StopIteration:
                self._hosts = self.network.hosts()
                continue
            if candidate not in self._used:
                self._ips[uid] = candidate
                self._used.add(candidate)
                return candidate
        raise RuntimeError(f"no pod address left in {self.network}")

    def _release(self, uid: str) -> None:
        ip = self._ips.pop(uid, None)
        if ip is not None:
            self._used.discard(ip)
        self._running.discard(uid)
        self._writing.discard(uid)
        self._deleting.discard(uid)

    def _write(self, pod: Obj, ip: str) -> None:
        meta = pod["metadata"]
        namespace, name, uid = str(meta["namespace"]), str(meta["name"]), str(meta.get("uid", ""))
        done = False
        try:
            # strategic merge: conditions merge by type (the scheduler's PodScheduled stays)
            self.client.request("PATCH", PODS.path(namespace, name, "status"),
                                body={"metadata": {"uid": uid}, "status": running_status(pod, ip)},
                                content_type="application/strategic-merge-patch+json")  # fmt: skip
            done = True
        except ApiError as e:
            if e.status not in (404, 409):  # gone, or another Pod of that name now
                log.warning("status-only node %s: Pod %s/%s: %s (retrying)", self.name, namespace, name, e)
                self._retry(pod, ip)
                return
        except Exception as e:
            log.warning("status-only node %s: Pod %s/%s: %s (retrying)", self.name, namespace, name, e)
            self._retry(pod, ip)
            return
        with self._lock:
            self._writing.discard(uid)
            if done and uid in self._ips:
                self._running.add(uid)
                self.written += 1

    def _retry(self, pod: Obj, ip: str) -> None:
        if self._stopping.wait(1.0):
            return
        with contextlib.suppress(RuntimeError):  # the pool is shut down
            self._pool.submit(self._write, pod, ip)

    def _delete(self, namespace: str, name: str, uid: str) -> None:
        body = {"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0, "preconditions": {"uid": uid}}
        try:
            self.client.request("DELETE", PODS.path(namespace, name), body=body)
        except ApiError as e:
            if e.status not in (404, 409):
                log.warning("status-only node %s: cannot delete Pod %s/%s: %s", self.name, namespace, name, e)
        with self._lock:
            self._release(uid)
            self.deleted += 1
