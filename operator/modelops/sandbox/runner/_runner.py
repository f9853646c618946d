"""The local runner: plays kubelet and controller-manager for the Deployments and Jobs the operator creates.

Level-triggered like a controller: it lists Deployments, Jobs and Services (watches only shorten the wait between
lists), compares them with the local processes it runs, starts and stops processes to match, and writes what it sees
back as status. One loop thread owns all state and does every API call; one thread per process waits and probes.

- A Deployment with N replicas is N processes of its first container's command (``python`` = this interpreter),
  each with ``PORT`` set to a free loopback port. A new pod template starts a full new set; the old set is stopped
  once the new one is ready (so a spec change never drops traffic). Status is written through ``/status``.
- A Job is one process at a time, retried up to ``backoffLimit``, killed at ``activeDeadlineSeconds``. The file named
  by ``TERMINATION_LOG`` becomes the Pod's termination message, and the Job gets Complete or Failed.
- Services become an endpoint table (``resolve``) of ready processes matching their selector, and ready replicas
  become Prometheus scrape targets labelled ``namespace``, ``model``, ``version``, ``pod``.
"""

from __future__ import annotations

import logging
import secrets
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import Any

from modelops.sandbox.prometheus import ScrapeTarget, free_port

from . import _spec as spec
from ._kube import DEPLOYMENTS, JOBS, PODS, SERVICES, ApiError, Client, Watcher
from ._process import Backoff, JobProcess, ProcessSpec, ServerProcess

log = logging.getLogger(__name__)

Obj = dict[str, Any]
Key = tuple[str, str]

#: The Prometheus job name of the model servers' scrape targets.
SCRAPE_JOB = "modelops-models"
MODEL_LABEL = "modelops.io/model"
VERSION_LABEL = "modelops.io/version"


@dataclass(frozen=True)
class ProcessInfo:
    """One process the runner runs, for ``sandbox status`` and for tests."""

    kind: str  # "Deployment" | "Job"
    namespace: str
    owner: str
    pod: str
    pid: int | None
    url: str | None
    ready: bool
    log_path: Path


@dataclass
class _Replica:
    pod: str
    hash: str
    labels: dict[str, str]
    metrics_path: str
    container: str
    process: ServerProcess
    pod_created: bool = False
    pod_ready: bool | None = None
    pod_restarts: int = 0


@dataclass
class _Deployment:
    namespace: str
    name: str
    uid: str
    obj: Obj
    replicas: list[_Replica] = field(default_factory=list)
    written: Obj | None = None
    error: str | None = None


@dataclass
class _Job:
    namespace: str
    name: str
    uid: str
    obj: Obj
    failed: int = 0
    start_time: datetime | None = None
    done: bool = False
    process: JobProcess | None = None
    pod: str | None = None
    pod_created: bool = False
    termination_file: Path | None = None
    policy: str = "File"
    container: str = "main"
    retry_at: float = 0.0
    backoff: Backoff = field(default_factory=lambda: Backoff(initial=1.0, maximum=10.0))


class LocalRunner:
    """Runs what the API asks for as local processes until :meth:`stop`. Use as a context manager, or start/stop.

    ``api_client`` is a ``kubernetes.client.ApiClient`` (``kubernetes.config.new_client_from_config``);
    ``namespaces`` limits it (``None``: every namespace). ``on_targets`` receives the scrape targets whenever they
    change (the sandbox passes ``PrometheusServer.set_targets``); ``on_endpoints`` the endpoint table.
    """

    def __init__(
        self,
        api_client: Any,
        workdir: Path,
        *,
        namespaces: Sequence[str] | None = None,
        python: str = sys.executable,
        base_env: Mapping[str, str] | None = None,
        on_targets: Callable[[list[ScrapeTarget]], None] | None = None,
        on_endpoints: Callable[[Mapping[Key, tuple[str, ...]]], None] | None = None,
        create_pods: bool = True,
        resync: float = 2.0,
        tick: float = 0.2,
        probe_period: float = 0.25,
        grace: float = 5.0,
        drain: float = 1.0,
        watch: bool = True,
    ) -> None:
        self.client = Client(api_client)
        self.workdir = Path(workdir)
        self.namespaces: tuple[str | None, ...] = tuple(namespaces) if namespaces else (None,)
        self.python = python
        self.base_env = spec.default_env(base_env)
        self.on_targets = on_targets
        self.on_endpoints = on_endpoints
        self.create_pods = create_pods
        self.resync = resync
        self.tick = tick
        self.probe_period = probe_period
        self.grace = grace
        #: seconds a replica out of the endpoints keeps serving before its SIGTERM (a preStop delay, in Kubernetes
        #: terms): a router still on its previous table (the gateway refreshes every 0.5 s) finishes what it sent
        #: there instead of seeing the connection cut (a 502)
        self.drain = drain
        self._deployments: dict[Key, _Deployment] = {}
        self._jobs: dict[Key, _Job] = {}
        self._services: dict[Key, dict[str, str]] = {}
        self._endpoints: Mapping[Key, tuple[str, ...]] = MappingProxyType({})
        self._targets: list[ScrapeTarget] | None = None
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._relist = threading.Event()
        self._stopping = threading.Event()
        self._stoppers: list[threading.Thread] = []
        self._errors: dict[str, str] = {}
        self._watchers = (
            [
                Watcher(self.client, kind, ns, self._on_event)
                for kind in (DEPLOYMENTS, JOBS, SERVICES)
                for ns in self.namespaces
            ]
            if watch
            else []
        )
        self._thread = threading.Thread(target=self._loop, name="local-runner", daemon=True)
        self.synced = threading.Event()

    # ------------------------------------------------------------------------------------------- lifecycle

    def __enter__(self) -> LocalRunner:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        for watcher in self._watchers:
            watcher.start()
        self._thread.start()

    def stop(self) -> None:
        """Stop the loop, then every process (all at once, each with its grace period); returns when none is left."""
        self._stopping.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(self.tick + 30.0)
        for watcher in self._watchers:
            watcher.stop()
        with self._lock:
            victims: list[ServerProcess | JobProcess] = [
                r.process for d in self._deployments.values() for r in d.replicas
            ]
            victims += [j.process for j in self._jobs.values() if j.process is not None]
            self._deployments.clear()
            self._jobs.clear()
        threads = [threading.Thread(target=v.stop, daemon=True) for v in victims]
        for t in threads:
            t.start()
        for t in [*threads, *self._stoppers]:
            t.join(self.grace + 10.0)

    def wake(self) -> None:
        """List again now (instead of at the next resync)."""
        self._relist.set()
        self._wake.set()

    # ------------------------------------------------------------------------------------------- reading

    @property
    def endpoints(self) -> Mapping[Key, tuple[str, ...]]:
        """``(namespace, service) -> ("http://127.0.0.1:port", ...)``: the ready processes each Service selects."""
        return self._endpoints

    def resolve(self, service: str, namespace: str = "default") -> list[str]:
        """The URLs behind a Service: ``name`` (in ``namespace``), ``name.ns``, or ``name.ns.svc[.cluster.local]``."""
        parts = service.split(".")
        name = parts[0]
        ns = parts[1] if len(parts) > 1 and parts[1] != "svc" else namespace
        return list(self._endpoints.get((ns, name), ()))

    def resolver(self, namespace: str = "default") -> Callable[[str], list[str]]:
        """``resolve`` bound to a default namespace, the shape the gateway takes."""
        return lambda service: self.resolve(service, namespace)

    @property
    def scrape_targets(self) -> list[ScrapeTarget]:
        return list(self._targets or [])

    def processes(self) -> list[ProcessInfo]:
        with self._lock:
            out = [
                ProcessInfo(
                    "Deployment",
                    d.namespace,
                    d.name,
                    r.pod,
                    r.process.pid,
                    r.process.url,
                    r.process.ready,
                    r.process.spec.log_path,
                )
                for d in self._deployments.values()
                for r in d.replicas
            ]
            out += [
                ProcessInfo(
                    "Job", j.namespace, j.name, j.pod or "", j.process.pid, None, False, j.process.spec.log_path
                )
                for j in self._jobs.values()
                if j.process is not None
            ]
        return out

    def pids(self) -> list[int]:
        return [p.pid for p in self.processes() if p.pid is not None]

    @property
    def errors(self) -> Mapping[str, str]:
        """Objects the runner cannot run (``namespace/name -> why``), e.g. a container without a command."""
        return dict(self._errors)

    # ------------------------------------------------------------------------------------------- the loop

    def _on_event(self) -> None:
        self.wake()

    def _notify(self) -> None:
        self._wake.set()

    def _loop(self) -> None:
        next_list = 0.0
        while not self._stopping.is_set():
            now = time.monotonic()
            try:
                with self._lock:
                    if self._relist.is_set() or now >= next_list:
                        self._relist.clear()
                        self._list()
                        next_list = now + self.resync
                        self.synced.set()
                    self._step()
            except Exception:
                log.exception("local runner: step failed (retrying)")
                next_list = 0.0
            self._wake.wait(self.tick)
            self._wake.clear()

    def _list(self) -> None:
        deployments: list[Obj] = []
        jobs: list[Obj] = []
        services: list[Obj] = []
        for ns in self.namespaces:
            deployments += self.client.list(DEPLOYMENTS, ns)
            jobs += self.client.list(JOBS, ns)
            services += self.client.list(SERVICES, ns)
        self._sync_deployments(deployments)
        self._sync_jobs(jobs)
        self._services = {
            _key(s): dict((s.get("spec") or {}).get("selector") or {}) for s in services if not _deleting(s)
        }

    def _step(self) -> None:
        for state in list(self._deployments.values()):
            self._reconcile_replicas(state)
        # Endpoints before status: whoever sees a replica ready in the API finds it behind its Service too.
        self._publish()
        for state in list(self._deployments.values()):
            self._write_deployment(state)
            self._write_pods(state)
        for job in list(self._jobs.values()):
            self._reconcile_job(job)

    # ------------------------------------------------------------------------------------------- deployments

    def _sync_deployments(self, objs: Iterable[Obj]) -> None:
        seen: set[Key] = set()
        for obj in objs:
            if _deleting(obj):
                continue
            key = _key(obj)
            seen.add(key)
            uid = str(obj["metadata"].get("uid", ""))
            state = self._deployments.get(key)
            if state is not None and state.uid != uid:
                self._drop_deployment(state)
                state = None
            if state is None:
                state = self._deployments[key] = _Deployment(key[0], key[1], uid, obj)
            state.obj = obj
        for key in set(self._deployments) - seen:
            self._drop_deployment(self._deployments[key])

    def _drop_deployment(self, state: _Deployment) -> None:
        del self._deployments[(state.namespace, state.name)]
        for replica in list(state.replicas):
            self._retire(state, replica, delete_pod=False)
        state.replicas = []

    def _reconcile_replicas(self, state: _Deployment) -> None:
        obj_spec = state.obj.get("spec") or {}
        desired = int(obj_spec.get("replicas", 1))
        template = obj_spec.get("template") or {}
        digest = spec.template_hash(template)
        current = [r for r in state.replicas if r.hash == digest]
        old = [r for r in state.replicas if r.hash != digest]
        while len(current) < desired:
            replica = self._new_replica(state, template, digest)
            if replica is None:
                break
            current.append(replica)
            state.replicas.append(replica)
        if len(current) > desired:
            # Scale down the least useful first: not ready, then the newest.
            surplus = sorted(current, key=lambda r: (r.process.ready, -r.process.started_at.timestamp()))
            for replica in surplus[: len(current) - desired]:
                current.remove(replica)
                self._retire(state, replica)
        if old and sum(1 for r in current if r.process.ready) >= desired:
            for replica in old:
                self._retire(state, replica)

    def _new_replica(self, state: _Deployment, template: Obj, digest: str) -> _Replica | None:
        where = f"{state.namespace}/{state.name}"
        try:
            container = spec.first_container(template)
            pod = f"{state.name}-{digest}-{secrets.token_hex(3)[:5]}"
            labels = {str(k): str(v) for k, v in ((template.get("metadata") or {}).get("labels") or {}).items()}
            labels["pod-template-hash"] = digest
            port = free_port()
            meta = {"metadata": {"name": pod, "namespace": state.namespace, "labels": labels}}
            env = {**self.base_env, **spec.container_env(container, meta), "PORT": str(port), "HOST": "127.0.0.1"}
            argv = spec.local_argv(container, env, self.python)
        except spec.UnrunnableError as e:
            if self._errors.get(where) != str(e):
                log.error("cannot run Deployment %s: %s", where, e)
            self._errors[where] = str(e)
            return None
        self._errors.pop(where, None)
        process = ServerProcess(
            ProcessSpec(argv, env, self._pod_dir(state.namespace, pod), self._log_path(state.namespace, pod)),
            port=port,
            readiness_path=spec.readiness_path(container),
            on_change=self._notify,
            probe_period=self.probe_period,
            grace=self.grace,
        )
        process.start()
        log.info("Deployment %s: started %s on port %d", where, pod, port)
        return _Replica(pod, digest, labels, spec.metrics_path(template), str(container.get("name", "main")), process)

    def _retire(self, state: _Deployment, replica: _Replica, *, delete_pod: bool = True) -> None:
        """Take a replica out of service now (endpoints, status); stop it in the background ``drain`` s later."""
        if replica in state.replicas:
            state.replicas.remove(replica)
        log.info("Deployment %s/%s: stopping %s", state.namespace, state.name, replica.pod)

        def stop() -> None:
            self._stopping.wait(self.drain)  # out of the endpoints already; the whole runner stopping cuts it short
            replica.process.stop()
            if delete_pod and replica.pod_created:
                self._quietly(self.client.delete, PODS, state.namespace, replica.pod)

        thread = threading.Thread(target=stop, name=f"stop-{replica.pod}", daemon=True)
        self._stoppers = [t for t in self._stoppers if t.is_alive()] + [thread]
        thread.start()

    def _write_deployment(self, state: _Deployment) -> None:
        if (state.namespace, state.name) not in self._deployments:
            return
        current = spec.template_hash((state.obj.get("spec") or {}).get("template") or {})
        views = [spec.ReplicaView(r.hash == current, r.process.ready) for r in state.replicas]
        status = spec.deployment_status(state.obj, views, datetime.now(UTC))
        previous = state.written if state.written is not None else state.obj.get("status")
        if not spec.status_changed(previous, status):
            return
        try:
            self.client.patch_status(DEPLOYMENTS, state.namespace, state.name, status)
        except ApiError as e:
            if e.status == 404:
                self.wake()
                return
            raise
        state.written = status
        state.obj["status"] = status

    def _write_pods(self, state: _Deployment) -> None:
        if not self.create_pods:
            return
        now = datetime.now(UTC)
        for replica in list(state.replicas):
            ready = replica.process.ready
            restarts = replica.process.restarts
            if replica.pod_created and replica.pod_ready == ready and replica.pod_restarts == restarts:
                continue
            status = spec.pod_status(
                replica.container, ready=ready, started=replica.process.started_at, now=now, restarts=restarts
            )
            if not replica.pod_created:
                body = spec.pod_body(replica.pod, state.namespace, replica.labels, _owner(state.obj), replica.container)
                if self._quietly(self.client.create, PODS, state.namespace, body) is None:
                    continue
                replica.pod_created = True
            if self._quietly(self.client.patch_status, PODS, state.namespace, replica.pod, status):
                replica.pod_ready = ready
                replica.pod_restarts = restarts

    # ------------------------------------------------------------------------------------------- jobs

    def _sync_jobs(self, objs: Iterable[Obj]) -> None:
        seen: set[Key] = set()
        for obj in objs:
            if _deleting(obj):
                continue
            key = _key(obj)
            seen.add(key)
            uid = str(obj["metadata"].get("uid", ""))
            job = self._jobs.get(key)
            if job is not None and job.uid != uid:
                self._drop_job(job)
                job = None
            if job is None:
                status = obj.get("status") or {}
                job = self._jobs[key] = _Job(
                    key[0],
                    key[1],
                    uid,
                    obj,
                    failed=int(status.get("failed") or 0),
                    start_time=_parse_time(status.get("startTime")),
                    done=spec.job_finished(obj),
                )
            job.obj = obj
        for key in set(self._jobs) - seen:
            self._drop_job(self._jobs[key])

    def _drop_job(self, job: _Job) -> None:
        del self._jobs[(job.namespace, job.name)]
        process, job.process = job.process, None
        if process is None:
            return
        log.info("Job %s/%s deleted: stopping %s", job.namespace, job.name, job.pod)
        pod, created = job.pod, job.pod_created

        def stop() -> None:
            process.stop()
            if created and pod:
                self._quietly(self.client.delete, PODS, job.namespace, pod)

        thread = threading.Thread(target=stop, name=f"stop-{job.name}", daemon=True)
        self._stoppers = [t for t in self._stoppers if t.is_alive()] + [thread]
        thread.start()

    def _reconcile_job(self, job: _Job) -> None:
        if job.done:
            return
        if job.process is None:
            if time.monotonic() >= job.retry_at:
                self._start_job(job)
            return
        if job.process.outcome is not None:
            self._finish_job(job)

    def _start_job(self, job: _Job) -> None:
        where = f"{job.namespace}/{job.name}"
        now = datetime.now(UTC)
        job.start_time = job.start_time or now
        deadline = spec.active_deadline(job.obj)
        remaining = None if deadline is None else deadline - (now - job.start_time).total_seconds()
        if remaining is not None and remaining <= 0:
            self._fail_job(job, "DeadlineExceeded", "Job was active longer than specified deadline")
            return
        template = (job.obj.get("spec") or {}).get("template") or {}
        pod = f"{job.name}-{secrets.token_hex(3)[:5]}"
        labels = {str(k): str(v) for k, v in ((template.get("metadata") or {}).get("labels") or {}).items()}
        labels.update({"job-name": job.name, "batch.kubernetes.io/job-name": job.name, "controller-uid": job.uid})
        pod_dir = self._pod_dir(job.namespace, pod)
        termination = pod_dir / "termination-log"
        try:
            container = spec.first_container(template)
            meta = {"metadata": {"name": pod, "namespace": job.namespace, "labels": labels}}
            env = {**self.base_env, **spec.container_env(container, meta), **spec.termination_env(termination)}
            argv = spec.local_argv(container, env, self.python)
        except spec.UnrunnableError as e:
            log.error("cannot run Job %s: %s", where, e)
            self._errors[where] = str(e)
            self._fail_job(job, "Unrunnable", str(e))
            return
        pod_dir.mkdir(parents=True, exist_ok=True)
        termination.write_bytes(b"")
        process = JobProcess(
            ProcessSpec(argv, env, pod_dir, self._log_path(job.namespace, pod)),
            on_change=self._notify,
            deadline=remaining,
            grace=self.grace,
        )
        try:
            process.start()
        except OSError as e:
            log.error("cannot start Job %s: %s", where, e)
            self._fail_job(job, "StartError", str(e))
            return
        job.process, job.pod, job.pod_created, job.termination_file = process, pod, False, termination
        job.policy = str(container.get("terminationMessagePolicy") or "File")
        job.container = str(container.get("name") or "main")
        log.info("Job %s: started %s (pid %s)", where, pod, process.pid)
        if self.create_pods:
            body = spec.pod_body(pod, job.namespace, labels, _owner(job.obj), job.container)
            if self._quietly(self.client.create, PODS, job.namespace, body) is not None:
                job.pod_created = True
                status = spec.pod_status(job.container, ready=True, started=now, now=now)
                self._quietly(self.client.patch_status, PODS, job.namespace, pod, status)
        self._job_status(job, {"startTime": spec.rfc3339(job.start_time), "active": 1, "failed": job.failed or None})

    def _finish_job(self, job: _Job) -> None:
        process = job.process
        assert process is not None
        assert process.outcome is not None
        outcome = process.outcome
        code = outcome.exit_code if outcome.exit_code >= 0 else 128 - outcome.exit_code
        message = spec.termination_message(
            _read(job.termination_file), _read_tail(process.spec.log_path), code, job.policy
        )
        terminated = spec.terminated_state(code, message, outcome.started, outcome.finished)
        if job.pod_created and job.pod:
            status = spec.pod_status(
                job.container,
                ready=False,
                started=outcome.started,
                now=outcome.finished,
                terminated=terminated,
            )
            self._quietly(self.client.patch_status, PODS, job.namespace, job.pod, status)
        log.info("Job %s/%s: %s exited %d %s", job.namespace, job.name, job.pod, code, outcome.reason)
        job.process = None
        if code == 0:
            job.done = True
            now = datetime.now(UTC)
            conditions = spec.set_condition(
                (job.obj.get("status") or {}).get("conditions") or [], "Complete", True, "", "", now
            )
            self._job_status(
                job,
                {"active": None, "succeeded": 1, "completionTime": spec.rfc3339(now), "conditions": conditions},
            )
            return
        job.failed += 1
        if outcome.reason == "DeadlineExceeded":
            self._fail_job(job, "DeadlineExceeded", "Job was active longer than specified deadline")
        elif job.failed > spec.backoff_limit(job.obj):
            self._fail_job(job, "BackoffLimitExceeded", "Job has reached the specified backoff limit")
        else:
            job.retry_at = time.monotonic() + job.backoff.next(0.0)
            self._job_status(job, {"active": None, "failed": job.failed})

    def _fail_job(self, job: _Job, reason: str, message: str) -> None:
        job.done = True
        now = datetime.now(UTC)
        conditions = spec.set_condition(
            (job.obj.get("status") or {}).get("conditions") or [], "Failed", True, reason, message, now
        )
        self._job_status(job, {"active": None, "failed": job.failed or None, "conditions": conditions})

    def _job_status(self, job: _Job, status: Obj) -> None:
        try:
            job.obj = self.client.patch_status(JOBS, job.namespace, job.name, status)
        except ApiError as e:
            if e.status != 404:
                raise
            self.wake()

    # ------------------------------------------------------------------------------------------- services

    def _publish(self) -> None:
        table: dict[Key, tuple[str, ...]] = {}
        for (ns, name), selector in self._services.items():
            table[(ns, name)] = tuple(
                sorted(
                    r.process.url
                    for d in self._deployments.values()
                    if d.namespace == ns
                    for r in d.replicas
                    if r.process.ready and spec.labels_match(selector, r.labels)
                )
            )
        if table != dict(self._endpoints):
            self._endpoints = MappingProxyType(table)
            if self.on_endpoints is not None:
                self._quietly(self.on_endpoints, self._endpoints)
        targets = sorted(
            (
                ScrapeTarget(
                    job=SCRAPE_JOB,
                    address=f"127.0.0.1:{r.process.port}",
                    metrics_path=r.metrics_path,
                    labels=_target_labels(d, r),
                )
                for d in self._deployments.values()
                for r in d.replicas
                if r.process.ready
            ),
            key=lambda t: t.address,
        )
        if targets != self._targets:
            if self.on_targets is not None:
                try:
                    self.on_targets(targets)
                except Exception as e:
                    log.warning("could not publish scrape targets: %s", e)
                    return
            self._targets = targets

    # ------------------------------------------------------------------------------------------- helpers

    def _pod_dir(self, namespace: str, pod: str) -> Path:
        return self.workdir / "pods" / namespace / pod

    def _log_path(self, namespace: str, pod: str) -> Path:
        return self.workdir / "logs" / namespace / f"{pod}.log"

    def _quietly(self, call: Callable[..., Any], *args: Any) -> Any:
        """An optional write (Pods) or callback: logged and skipped when it fails."""
        try:
            return call(*args)
        except Exception as e:
            log.debug("optional write failed: %s", e)
            return None


def _key(obj: Mapping[str, Any]) -> Key:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or "default"), str(meta["name"])


def _deleting(obj: Mapping[str, Any]) -> bool:
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))


def _owner(obj: Mapping[str, Any]) -> Obj:
    return {"apiVersion": obj.get("apiVersion", ""), "kind": obj.get("kind", ""), "metadata": obj.get("metadata") or {}}


def _target_labels(d: _Deployment, r: _Replica) -> dict[str, str]:
    deployment_labels = (d.obj.get("metadata") or {}).get("labels") or {}
    labels = {"namespace": d.namespace, "pod": r.pod, "deployment": d.name}
    for source, target in ((MODEL_LABEL, "model"), (VERSION_LABEL, "version")):
        value = deployment_labels.get(source) or r.labels.get(source)
        if value:
            labels[target] = str(value)
    return labels


def _parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def _read(path: Path | None) -> bytes:
    if path is None:
        return b""
    try:
        return path.read_bytes()
    except OSError:
        return b""


def _read_tail(path: Path, size: int = 16384) -> bytes:
    try:
        with path.open("rb") as f:
            f.seek(0, 2)
            f.seek(max(f.tell() - size, 0))
            return f.read()
    except OSError:
        return b""
