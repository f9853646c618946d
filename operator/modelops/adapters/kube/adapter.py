"""The kube adapter: per-version Deployments and Services, gate/retraining Jobs, Events.

Writes happen only when something differs (``ensure_*`` compares the fields it manages), and deletes only for
objects :func:`~modelops.adapters.kube.objects.owned_by` the ModelDeployment. Methods are synchronous; call them
from plain ``def`` kopf handlers or threads.

Who owns ``Deployment.spec.replicas``: with the ``gatewayAPI`` and ``istio`` routers, this adapter (``replicas``,
by default ``spec.server.replicas``, is kept in line on every tick). With the ``replicas`` router, the router: the
Deployment is created with 0 replicas (no pods behind the shared Service, so no traffic, until ``set_weights``
scales it) and the field is never compared or written again here, whatever ``replicas`` the caller passes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from modelops.api.deployment import ModelDeployment, ModelDeploymentSpec
from modelops.core.naming import (
    COMPONENT_LABEL,
    DEPLOYMENT_LABEL,
    MANAGED_BY_LABEL,
    MANAGER,
    SERVER_COMPONENT,
    workload_name,
)
from modelops.core.observations import JobResult, JobState, ObservedObject

from .api import DEPLOYMENTS, EVENTS, JOBS, PODS, SERVICES, Conflict, KubeApi, Obj, Resource, as_kube_api
from .objects import (
    build_deployment,
    build_job,
    build_service,
    build_shared_service,
    is_subset,
    observed,
    owned_by,
)

#: The component name Events are reported under.
COMPONENT = "modelops"
#: The kubelet keeps at most this many bytes of a container's termination message (and drops the rest)...
MAX_TERMINATION_MESSAGE = 4096
#: ... and at most this many for all the containers of a Pod (init containers included), shared equally.
MAX_TERMINATION_MESSAGES_PER_POD = 12 * 1024


def termination_budget(pod: Mapping[str, Any]) -> int:
    """The bytes of termination message the kubelet keeps for each container of ``pod``.

    >>> termination_budget({"spec": {"containers": [{}]}})
    4096
    >>> termination_budget({"spec": {"initContainers": [{}, {}], "containers": [{}, {}]}})  # e.g. a mesh sidecar
    3072
    """
    spec = pod.get("spec") or {}
    count = len(spec.get("containers") or []) + len(spec.get("initContainers") or [])
    return min(MAX_TERMINATION_MESSAGE, MAX_TERMINATION_MESSAGES_PER_POD // max(1, count))


class NotOwnedError(Exception):
    """An object the operator wants to create already exists and is not the ModelDeployment's: it is left alone."""


def router_owns_replicas(spec: ModelDeploymentSpec) -> bool:
    """Whether the traffic router, not the kube adapter, sets the version Deployments' ``spec.replicas``."""
    return spec.traffic.router == "replicas"


def _without_replicas(obj: Obj) -> Obj:
    out = dict(obj)
    out["spec"] = {k: v for k, v in obj["spec"].items() if k != "replicas"}
    return out


class KubeAdapter:
    """Children of ModelDeployments in one namespace, through a :class:`~modelops.adapters.kube.api.KubeApi`."""

    def __init__(self, api: Any, namespace: str) -> None:
        """``api`` is a ``kubernetes.client.ApiClient`` or any :class:`KubeApi` (the in-memory fake in tests)."""
        self.api: KubeApi = as_kube_api(api)
        self.namespace = namespace

    # --------------------------------------------------------------------------------------- workloads

    def ensure_workload(self, md: ModelDeployment, version: str, uri: str, *, replicas: int | None = None) -> bool:
        """Create or correct ``version``'s Deployment and Service; returns whether anything was written.

        ``replicas`` defaults to ``spec.server.replicas``; it is ignored under the ``replicas`` router (see above).
        """
        if router_owns_replicas(md.spec):
            deployment = build_deployment(md, version, uri, replicas=None)
            # Created at 0 (no traffic until the router scales it); afterwards the router owns the field.
            wrote = self._ensure(
                DEPLOYMENTS,
                md,
                _without_replicas(deployment),
                on_create=deployment | {"spec": {**deployment["spec"], "replicas": 0}},
            )
        else:
            count = md.spec.server.replicas if replicas is None else replicas
            wrote = self._ensure(DEPLOYMENTS, md, build_deployment(md, version, uri, replicas=count))
        service = build_service(md, version)
        name = service["metadata"]["name"]
        return self._ensure(SERVICES, md, self._upgrade_safe(service, [name])) or wrote

    def ensure_shared_service(self, md: ModelDeployment) -> bool:
        """The ``replicas`` router's Service (``spec.traffic.replicas.service``); no-op for other routers."""
        if md.spec.traffic.replicas is None:
            return False
        service = build_shared_service(md, md.spec.traffic.replicas.service)
        selector = {MANAGED_BY_LABEL: MANAGER, DEPLOYMENT_LABEL: md.metadata.name}
        names = [d["metadata"]["name"] for d in self.api.list(DEPLOYMENTS, self.namespace, selector)]
        return self._ensure(SERVICES, md, self._upgrade_safe(service, names))

    def _upgrade_safe(self, service: Obj, deployments: list[str]) -> Obj:
        """``service``, or, while its Pods do not all carry ``modelops.io/component: server`` yet, the same without
        that key in its selector.

        Services made before the serving Pods carried the label select them without it. Adding it to such a
        Service while its Deployment rolls the labelled Pods out would leave it without endpoints until they are
        ready: the key goes in once every Deployment behind it has rolled out Pods that carry it (at a later
        ensure). A new Service gets it at once (its Pods are new too)."""
        current = self.api.get(SERVICES, self.namespace, service["metadata"]["name"])
        if current is None or COMPONENT_LABEL in ((current.get("spec") or {}).get("selector") or {}):
            return service
        for name in deployments:
            deployment = self.api.get(DEPLOYMENTS, self.namespace, name)
            template = (((deployment or {}).get("spec") or {}).get("template") or {}).get("metadata") or {}
            if deployment is None or (template.get("labels") or {}).get(COMPONENT_LABEL) != SERVER_COMPONENT:
                break
            if not deployment_ready(deployment):
                break
        else:
            return service
        selector = {k: v for k, v in service["spec"]["selector"].items() if k != COMPONENT_LABEL}
        return {**service, "spec": {**service["spec"], "selector": selector}}

    def delete_workload(self, md: ModelDeployment, version: str) -> bool:
        """Delete ``version``'s Deployment and Service when (and only when) they are ``md``'s; whether any went."""
        name = workload_name(md.metadata.name, version)
        deleted = False
        for resource in (SERVICES, DEPLOYMENTS):
            deleted = self._delete_if_owned(resource, md, name) or deleted
        return deleted

    def workload_ready(self, md: ModelDeployment, version: str) -> bool:
        """Whether ``version``'s Deployment has rolled out: the controller saw the latest generation and every
        wanted replica is updated and ready (a Deployment scaled to 0 is trivially ready)."""
        obj = self.api.get(DEPLOYMENTS, self.namespace, workload_name(md.metadata.name, version))
        if obj is None:
            return False
        return deployment_ready(obj)

    def list_owned(self, md: ModelDeployment) -> list[Obj]:
        """Every Deployment, Service and Job that belongs to ``md`` (labels and ownerReference both match)."""
        selector = {MANAGED_BY_LABEL: MANAGER, DEPLOYMENT_LABEL: md.metadata.name}
        out: list[Obj] = []
        for resource in (DEPLOYMENTS, SERVICES, JOBS):
            for obj in self.api.list(resource, self.namespace, selector):
                if owned_by(obj, md):
                    obj.setdefault("kind", resource.kind)
                    out.append(obj)
        return out

    def observe_objects(self, selector: Mapping[str, str]) -> tuple[ObservedObject, ...]:
        """Deployments, Services and Jobs carrying ``selector``'s labels, owned or not, for the core to judge
        (a retirement deletes only those whose labels and ownerReference both match)."""
        found: list[ObservedObject] = []
        for resource in (DEPLOYMENTS, SERVICES, JOBS):
            for obj in self.api.list(resource, self.namespace, selector):
                obj.setdefault("kind", resource.kind)
                found.append(observed(obj))
        return tuple(found)

    def delete_object(self, md: ModelDeployment, kind: str, name: str, uid: str | None = None) -> bool:
        """Delete one Deployment, Service or Job of ``md`` (the core's ``DeleteObject``).

        Ownership is checked again on a fresh read, and ``uid`` (when given) must still be the object's: a
        same-named object created since the core judged it is left alone. Returns whether it deleted.
        """
        resource = {r.kind: r for r in (DEPLOYMENTS, SERVICES, JOBS)}.get(kind)
        if resource is None:
            raise ValueError(f"modelops never deletes objects of kind {kind!r}")
        return self._delete_if_owned(resource, md, name, uid=uid)

    def delete_owned(self, md: ModelDeployment, obj: Mapping[str, Any]) -> bool:
        """Delete one object from :meth:`list_owned` (see :meth:`delete_object`)."""
        meta = obj.get("metadata") or {}
        return self.delete_object(md, str(obj.get("kind")), str(meta.get("name")), meta.get("uid"))

    # -------------------------------------------------------------------------------------------- jobs

    def start_job(
        self,
        md: ModelDeployment,
        name: str,
        template: Mapping[str, Any],
        *,
        labels: Mapping[str, str],
        env: Mapping[str, str],
        timeout: timedelta | None = None,
        created: list[str] | None = None,
    ) -> Obj:
        """Create the Job (idempotent: a Job of that name already owned by ``md`` is returned as it is).

        ``env`` is MODEL_VERSION / MODEL_URI / STABLE_URI for gates, whatever the caller decides for retraining.
        ``created`` gets the name appended when this call created the Job (not when it was there already).
        """
        body = build_job(md, name, template, job_labels=labels, env=env, timeout=timeout)
        try:
            job = self.api.create(JOBS, self.namespace, body)
            if created is not None:
                created.append(name)
            return job
        except Conflict:
            existing = self.api.get(JOBS, self.namespace, name)
            if existing is None or not owned_by(existing, md):
                raise NotOwnedError(f"Job {name!r} exists and does not belong to {md.metadata.name!r}") from None
            return existing

    def job_result(self, name: str) -> JobResult:
        """The Job's state and, once it has finished, the JSON object its container wrote as termination message.

        A message that is not JSON fails the Job's result; one as long as the kubelet keeps (:func:`termination_budget`:
        4096 bytes, less in a Pod of more than three containers) that is not JSON was cut by the kubelet, and the
        failure says so, naming the limit.
        """
        job = self.api.get(JOBS, self.namespace, name)
        if job is None:
            return JobResult(JobState.ABSENT, message=f"Job {name!r} not found")
        state, reason = job_state(job)
        if state is JobState.RUNNING:
            return JobResult(state)
        if state is JobState.FAILED and reason.startswith("DeadlineExceeded"):
            state = JobState.TIMED_OUT
        pods = self.api.list(PODS, self.namespace, {"job-name": name})
        raw = termination_message(pods)
        budget = min((termination_budget(p) for p in pods), default=MAX_TERMINATION_MESSAGE)
        text = raw.strip()
        if not text:
            message = f"Job {name!r} {state.value.lower()}" + (f": {reason}" if reason else "")
            if state is JobState.SUCCEEDED:
                message += "; it wrote no termination message"
            return JobResult(state, None, message)
        try:
            results = json.loads(text)
        except ValueError as e:
            size = len(raw.encode())
            if size >= budget:
                return JobResult(
                    JobState.FAILED,
                    None,
                    f"Job {name!r}: its result was cut at the {budget}-byte termination message limit"
                    f" ({size} bytes arrived, not valid JSON): write a smaller result",
                )
            return JobResult(JobState.FAILED, None, f"Job {name!r}: termination message is not JSON ({e}): {text!r}")
        if not isinstance(results, dict):
            return JobResult(JobState.FAILED, None, f"Job {name!r}: termination message is not a JSON object: {text!r}")
        return JobResult(state, results, reason)

    def delete_job(self, md: ModelDeployment, name: str) -> bool:
        """Delete the Job (and, by background propagation, its pods) if it is ``md``'s."""
        return self._delete_if_owned(JOBS, md, name)

    # ------------------------------------------------------------------------------------------ events

    def emit_event(
        self,
        involved: ModelDeployment | Mapping[str, Any],
        type: str,
        reason: str,
        message: str,
        *,
        now: datetime | None = None,
    ) -> None:
        """Record a core/v1 Event about ``involved``; a repeat of the same reason and message bumps ``count``.

        The Event's name is derived from the object's uid, the reason and the message, so a repeat finds it.
        """
        ref = _object_reference(involved)
        when = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
        digest = hashlib.sha256(f"{ref.get('uid')}|{type}|{reason}|{message}".encode()).hexdigest()[:16]
        name = f"{ref['name']}.{digest}"
        existing = self.api.get(EVENTS, self.namespace, name)
        if existing is not None:
            patch = {"count": int(existing.get("count") or 1) + 1, "lastTimestamp": when}
            self.api.patch(EVENTS, self.namespace, name, patch)
            return
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": self.namespace},
            "involvedObject": ref,
            "type": type,
            "reason": reason,
            "message": message[:1024],
            "count": 1,
            "firstTimestamp": when,
            "lastTimestamp": when,
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
        }
        try:
            self.api.create(EVENTS, self.namespace, event)
        except Conflict:  # created concurrently: counting it once is enough
            return

    # --------------------------------------------------------------------------------------- internals

    def _ensure(self, resource: Resource, md: ModelDeployment, desired: Obj, *, on_create: Obj | None = None) -> bool:
        name = desired["metadata"]["name"]
        actual = self.api.get(resource, self.namespace, name)
        if actual is None:
            try:
                self.api.create(resource, self.namespace, on_create or desired)
                return True
            except Conflict:  # created since we looked: compare with what is there now
                actual = self.api.get(resource, self.namespace, name)
                if actual is None:
                    raise
        if not owned_by(actual, md):
            raise NotOwnedError(
                f"{resource.kind} {name!r} exists and does not belong to ModelDeployment {md.metadata.name!r}"
            )
        managed = {"metadata": {"labels": desired["metadata"]["labels"]}, "spec": desired["spec"]}
        if is_subset(managed, actual):
            return False
        self.api.patch(resource, self.namespace, name, managed)
        return True

    def _delete_if_owned(self, resource: Resource, md: ModelDeployment, name: str, uid: str | None = None) -> bool:
        obj = self.api.get(resource, self.namespace, name)
        if obj is None or not owned_by(obj, md):
            return False
        if uid is not None and obj["metadata"].get("uid") != uid:
            return False
        self.api.delete(resource, self.namespace, name, uid=obj["metadata"].get("uid"))
        return True


def deployment_ready(obj: Mapping[str, Any]) -> bool:
    """Readiness from a Deployment's status (pure, so it is tested on its own).

    >>> deployment_ready({"metadata": {"generation": 2}, "spec": {"replicas": 2},
    ...                   "status": {"observedGeneration": 2, "readyReplicas": 2, "updatedReplicas": 2}})
    True
    >>> deployment_ready({"metadata": {"generation": 3}, "spec": {"replicas": 2},
    ...                   "status": {"observedGeneration": 2, "readyReplicas": 2, "updatedReplicas": 2}})
    False
    """
    generation = int((obj.get("metadata") or {}).get("generation") or 0)
    wanted = int((obj.get("spec") or {}).get("replicas", 1))
    status = obj.get("status") or {}
    return (
        int(status.get("observedGeneration") or 0) >= generation
        and int(status.get("readyReplicas") or 0) >= wanted
        and int(status.get("updatedReplicas") or 0) >= wanted
    )


def job_state(job: Mapping[str, Any]) -> tuple[JobState, str]:
    """Running, Succeeded or Failed from a Job's conditions (then its counters), with the condition's reason.

    (A Failed Job whose reason is ``DeadlineExceeded`` is reported as ``TimedOut`` by :meth:`KubeAdapter.job_result`.)
    """
    status = job.get("status") or {}
    for condition in status.get("conditions") or []:
        if condition.get("status") != "True":
            continue
        detail = ": ".join(x for x in (condition.get("reason"), condition.get("message")) if x)
        if condition.get("type") in ("Complete", "SuccessCriteriaMet"):
            return JobState.SUCCEEDED, detail
        if condition.get("type") in ("Failed", "FailureTarget"):
            return JobState.FAILED, detail
    if int(status.get("succeeded") or 0) > 0:
        return JobState.SUCCEEDED, ""
    if int(status.get("failed") or 0) > 0:
        return JobState.FAILED, ""
    return JobState.RUNNING, ""


def termination_message(pods: list[Obj]) -> str:
    """The termination message of the newest pod's first terminated container that left one, as the pod status
    holds it (not stripped: its length tells whether the kubelet cut it)."""
    newest_first = sorted(pods, key=lambda p: (p.get("metadata") or {}).get("creationTimestamp") or "", reverse=True)
    for pod in newest_first:
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            message = ((status.get("state") or {}).get("terminated") or {}).get("message")
            if message:
                return str(message)
    return ""


def _object_reference(involved: ModelDeployment | Mapping[str, Any]) -> Obj:
    if isinstance(involved, ModelDeployment):
        body: Mapping[str, Any] = involved.model_dump(by_alias=True, mode="json")
    else:
        body = involved
    meta = body.get("metadata") or {}
    ref = {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "name": meta.get("name"),
        "namespace": meta.get("namespace"),
        "uid": meta.get("uid"),
        "resourceVersion": meta.get("resourceVersion"),
    }
    return {k: v for k, v in ref.items() if v is not None}
