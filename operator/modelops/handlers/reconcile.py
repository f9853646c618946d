"""One reconcile of each kind: parse -> observe -> ``core`` decides -> execute the actions -> patch status.

Synchronous on purpose: the ``kubernetes`` client and the Prometheus client block, so kopf runs these in threads
(``asyncio.to_thread``), never inside the event loop. Nothing is kept between calls: every reconcile starts from
the object as the API server has it, so the operator can be restarted at any moment.

A reconcile that changes nothing writes nothing: status is patched only when the core returned a different one, and
the adapters skip writes whose desired state is already in place. When an action fails, the new status is not
written, so the next reconcile decides again from the same status (and retries the same actions).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from croniter import croniter
from pydantic import ValidationError

from modelops.adapters.kube import (
    DEPLOYMENTS,
    MODELDEPLOYMENTS,
    MODELREQUESTS,
    MODELRETIREMENTS,
    Conflict,
    KubeAdapter,
    KubeApi,
    KubeApiError,
    NotOwnedError,
    Obj,
    Resource,
    deployment_ready,
    owner_labels,
)
from modelops.adapters.prometheus import MetricsProvider
from modelops.adapters.routers import Router, RouterError, router_for
from modelops.api import (
    GatePhase,
    ModelDeployment,
    ModelDeploymentSpec,
    ModelDeploymentStatus,
    ModelRetirementSpec,
    ModelRetirementStatus,
    ObjectMeta,
    Phase,
    RequestPhase,
    RetirementPhase,
    describe,
    parse_duration,
)
from modelops.api.common import Metric
from modelops.core import (
    Action,
    AnswerRequest,
    ConditionType,
    DeleteJob,
    DeleteObject,
    DeleteWorkload,
    DeploymentObservations,
    DeploymentView,
    DrainTraffic,
    EmitEvent,
    EnsureWorkload,
    JobResult,
    Reading,
    Reason,
    RetirementObservations,
    SetWeights,
    StartGateJob,
    StartRetrainingJob,
    analysis_due,
    decide,
    desired_weights,
    desired_workloads,
    mark_blocked,
    mark_invalid_spec,
    monitoring_due,
    naming,
    pending_requests,
    plan_retirement,
    set_condition,
    workload_name,
)
from modelops.core.deployment import MAX_REQUESTS_PER_TICK, ROLLOUT_PHASES, route_unconfirmed
from modelops.core.naming import VERSION_LABEL
from modelops.core.observations import RouteAcceptance
from modelops.core.promql import TemplateError, render
from modelops.core.requests import REQUEST_ANNOTATION, annotation_request
from modelops.telemetry import Telemetry

log = logging.getLogger("modelops")

#: How often an object with nothing due is looked at anyway (route drift, deleted children).
IDLE_SECONDS = 60.0
#: Never reconcile one object more often than this.
MIN_SECONDS = 0.5


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Runtime:
    """What a reconcile talks to. Tests give fakes (``InMemoryKube``, a fake provider, a fixed clock)."""

    api: KubeApi
    metrics: MetricsProvider
    telemetry: Telemetry = field(default_factory=Telemetry)
    clock: Callable[[], datetime] = utcnow
    router_factory: Callable[[ModelDeploymentSpec, str, str], Router] | None = None
    poll_seconds: float = 5.0
    #: how often an object with nothing due is looked at anyway (route drift, deleted children)
    idle_seconds: float = IDLE_SECONDS
    #: the threads reconciles run in (``None``: the event loop's default executor)
    executor: Executor | None = None

    def router(self, spec: ModelDeploymentSpec, namespace: str, name: str) -> Router:
        if self.router_factory is not None:
            return self.router_factory(spec, namespace, name)
        return router_for(spec, namespace, name, self.api)


@dataclass(frozen=True)
class Outcome:
    """What a reconcile did: whether it wrote status, when it wants to run again, and the error if one stopped it."""

    wrote_status: bool
    next_in: float
    error: str | None = None
    actions: tuple[Action, ...] = ()
    #: the object's resourceVersion after our status write: the watch event carrying it is our own echo
    resource_version: str | None = None


# ------------------------------------------------------------------------------------------------- status


def _status_patch(before: Mapping[str, Any], after: Mapping[str, Any]) -> Obj:
    """A merge patch turning ``before`` into ``after`` (top-level status fields; removed ones become null)."""
    patch: Obj = {k: v for k, v in after.items() if before.get(k) != v}
    patch.update({k: None for k in before if k not in after})
    return patch


def write_status(api: KubeApi, resource: Resource, meta: ObjectMeta, raw_before: Mapping[str, Any], after: Obj) -> bool:
    """Patch ``status`` through the status subresource, only what changed, guarded by the resourceVersion read.

    Returns whether it wrote. A stale resourceVersion raises ``Conflict``: the caller reconciles again from a
    fresh read instead of overwriting what someone else wrote.
    """
    return patch_status(api, resource, meta, raw_before, after) is not None


def patch_status(
    api: KubeApi, resource: Resource, meta: ObjectMeta, raw_before: Mapping[str, Any], after: Obj
) -> str | None:
    """:func:`write_status`, returning the resourceVersion the write produced ("" if unknown), None if no write."""
    patch = _status_patch(raw_before, after)
    if not patch:
        return None
    body: Obj = {"status": patch}
    if meta.resource_version:
        body["metadata"] = {"resourceVersion": meta.resource_version}
    written = api.patch(resource, meta.namespace, meta.name, body, subresource="status")
    return str(((written or {}).get("metadata") or {}).get("resourceVersion") or "")


def _dump(status: ModelDeploymentStatus | ModelRetirementStatus) -> Obj:
    return status.model_dump(by_alias=True, exclude_none=True, mode="json")


S = TypeVar("S", ModelDeploymentStatus, ModelRetirementStatus)


def _parse_status(cls: type[S], raw: Mapping[str, Any]) -> S:
    try:
        return cls.model_validate(raw)
    except ValidationError as exc:
        # Written by another version of the operator, or by hand: start over rather than stop working.
        log.warning("status unreadable, starting from an empty one: %s", "; ".join(describe(exc, ("status",))))
        return cls()


# ------------------------------------------------------------------------------------------- deployments


def query_values(meta: ObjectMeta, spec: ModelDeploymentSpec, version: str, interval: str) -> dict[str, str]:
    return {"namespace": meta.namespace, "model": spec.model.name, "version": version, "interval": interval}


def semantic_errors(spec: ModelDeploymentSpec, meta: ObjectMeta) -> list[str]:
    """What the schema cannot catch and would break a rollout later: query templates that do not render."""
    errors = []
    sample = query_values(meta, spec, "v0", "1m")
    groups: list[tuple[str, list[Metric]]] = [("spec.rollout.analysis.metrics", spec.rollout.analysis.metrics)]
    if spec.monitoring is not None:
        groups.append(("spec.monitoring.metrics", spec.monitoring.metrics))
    for path, metrics in groups:
        for i, metric in enumerate(metrics):
            try:
                render(metric.query, sample)
            except TemplateError as exc:
                errors.append(f"{path}[{i}].query: {exc}")
    return errors


def _readings(rt: Runtime, asks: Sequence[tuple[str, Mapping[str, str]]]) -> list[Reading]:
    """The reading of each (query template, values), in order, from one call to the provider (one Prometheus
    request when it can batch them). A template that does not render reads as an error, without a query."""
    readings: list[Reading | None] = []
    rendered: list[str] = []
    for template, values in asks:
        try:
            rendered.append(render(template, values))
            readings.append(None)
        except TemplateError as exc:  # checked at parse time; kept for safety
            readings.append(Reading.error(str(exc)))
    answers = iter(rt.metrics.query_many(rendered) if rendered else [])
    return [r if r is not None else next(answers) for r in readings]


def observe_workloads(kube: KubeAdapter, md: ModelDeployment, cached: Mapping[str, bool] | None) -> dict[str, bool]:
    """Version -> ready, for the version Deployments of ``md``.

    ``cached`` is what the operator's watch of Deployments last saw (see ``handlers.operator``): then this costs no
    request in steady state. A version status already wants but the cache lacks (just created, or the watch is
    behind) is read directly, so "missing" is never reported from a stale cache. Without a cache, one LIST.
    """
    meta = md.metadata
    if cached is None:
        ready: dict[str, bool] = {}
        for obj in kube.api.list(DEPLOYMENTS, meta.namespace, owner_labels(md)):
            version = ((obj.get("metadata") or {}).get("labels") or {}).get(VERSION_LABEL)
            if version:
                ready[version] = deployment_ready(obj)
        return ready
    ready = dict(cached)
    wanted = owner_labels(md)
    for version in desired_workloads(md.spec, md.status):
        if version in ready:
            continue
        got = kube.api.get(DEPLOYMENTS, meta.namespace, workload_name(meta.name, version))
        found = ((got or {}).get("metadata") or {}).get("labels") or {}
        if got is not None and all(found.get(k) == v for k, v in wanted.items()):
            ready[version] = deployment_ready(got)
    return ready


def observe_deployment(
    rt: Runtime,
    kube: KubeAdapter,
    router: Router,
    md: ModelDeployment,
    now: datetime,
    retiring: bool,
    workloads: Mapping[str, bool] | None = None,
    *,
    verify_route: bool = True,
    requests: Sequence[Mapping[str, Any]] = (),
) -> DeploymentObservations:
    """Look at the world as far as this reconcile needs: Prometheus only when an analysis is due, the route once
    (when ``verify_route``), the Deployments from the watch cache when there is one (``workloads``: version ->
    ready), the ModelRequests not answered yet (``requests``, from the watch cache too)."""
    spec, status, meta = md.spec, md.status, md.metadata
    annotated = annotation_request(meta.annotations.get(REQUEST_ANNOTATION))
    manual = ((annotated,) if annotated is not None else ()) + pending_requests(requests)
    live = status.phase in (Phase.PROGRESSING, Phase.PAUSED) and status.candidate_version is not None
    candidate = status.candidate_version
    stable = status.stable_version

    versions = observe_workloads(kube, md, workloads)
    candidate_ready = candidate is not None and versions.get(candidate, False)
    stable_ready = stable is not None and versions.get(stable, False)

    gates: dict[str, JobResult] = {}
    for gate in status.gates:
        if gate.phase == GatePhase.RUNNING and gate.job_name:
            gates[gate.name] = kube.job_result(gate.job_name)
    retraining = None
    if status.retraining.phase == "Running" and status.retraining.job_name:
        retraining = kube.job_result(status.retraining.job_name)

    router_weights: dict[str, int] | None = None
    route_matches: bool | None = None
    acceptance: RouteAcceptance | None = None
    desired = desired_weights(status)
    # A step whose weights the Gateway has not accepted yet waits on the route: it is read at every tick until then.
    verify_route = verify_route or route_unconfirmed(spec, status)
    if not retiring and desired and verify_route:
        try:
            router_weights, route_matches, acceptance = router.observe(desired)
        except (RouterError, KubeApiError) as exc:
            log.warning("%s/%s: cannot read the route: %s", meta.namespace, meta.name, exc)

    cand_readings: dict[str, Reading] = {}
    stable_readings: dict[str, Reading] = {}
    monitoring: dict[str, Reading] = {}
    wanted: list[tuple[dict[str, Reading], str]] = []  # where each reading goes, under which metric name
    asks: list[tuple[str, Mapping[str, str]]] = []
    if live and candidate is not None and analysis_due(spec, status, now):
        interval = spec.rollout.analysis.interval
        for metric in spec.rollout.analysis.metrics:
            wanted.append((cand_readings, metric.name))
            asks.append((metric.query, query_values(meta, spec, candidate, interval)))
            if metric.baseline is not None and stable is not None:
                wanted.append((stable_readings, metric.name))
                asks.append((metric.query, query_values(meta, spec, stable, interval)))
    if spec.monitoring is not None and stable is not None and monitoring_due(spec, status, now):
        values = query_values(meta, spec, stable, spec.monitoring.interval)
        for metric in spec.monitoring.metrics:
            wanted.append((monitoring, metric.name))
            asks.append((metric.query, values))
    for (out, name), reading in zip(wanted, _readings(rt, asks), strict=True):
        out[name] = reading

    return DeploymentObservations(
        candidate=cand_readings,
        stable=stable_readings,
        candidate_ready=candidate_ready,
        stable_ready=stable_ready,
        gates=gates,
        retraining=retraining,
        router_weights=router_weights,
        route_matches=route_matches,
        route_acceptance=acceptance,
        requests=manual,
        monitoring=monitoring,
        # A retirement deletes the workloads on purpose: "missing" must not be repaired then.
        workloads=None if retiring else frozenset(versions),
        retiring=retiring,
    )


def _job_env(version: str, uri: str, stable_uri: str | None) -> dict[str, str]:
    env = {"MODEL_VERSION": version, "MODEL_URI": uri}
    if stable_uri:
        env["STABLE_URI"] = stable_uri
    return env


def execute_deployment_actions(
    kube: KubeAdapter,
    router: Router,
    md: ModelDeployment,
    actions: tuple[Action, ...],
    started_jobs: list[str] | None = None,
) -> None:
    """Carry out the core's actions in order; the first failure stops the rest (and the status write).
    ``started_jobs`` gets the names of the Jobs this call created."""
    spec = md.spec
    for action in actions:
        match action:
            case EnsureWorkload(version=version, uri=uri, replicas=replicas):
                kube.ensure_workload(md, version, uri, replicas=replicas)
                if spec.traffic.router == "replicas":
                    kube.ensure_shared_service(md)
            case DeleteWorkload(version=version):
                kube.delete_workload(md, version)
            case SetWeights(weights=weights):
                router.set_weights(weights)
            case StartGateJob(gate=gate_name, version=version, uri=uri, job_name=job_name):
                gate = next(g for g in spec.gates if g.name == gate_name)
                kube.start_job(
                    md,
                    job_name,
                    gate.template,
                    labels={"modelops.io/gate": gate.name, VERSION_LABEL: version},
                    env=_job_env(version, uri, md.status.stable_uri),
                    timeout=parse_duration(gate.timeout),
                    created=started_jobs,
                )
            case StartRetrainingJob(job_name=job_name, base_version=version, base_uri=uri):
                assert spec.retraining is not None
                kube.start_job(
                    md,
                    job_name,
                    spec.retraining.template,
                    labels={"modelops.io/job": "retraining", VERSION_LABEL: version},
                    env={**_job_env(version, uri, uri), "BASE_VERSION": version, "MODEL_NAME": spec.model.name},
                    timeout=parse_duration(spec.retraining.timeout),
                    created=started_jobs,
                )
            case DeleteJob(job_name=job_name):
                kube.delete_job(md, job_name)
            case EmitEvent(type=type_, reason=reason, message=message):
                kube.emit_event(md, type_, reason, message)
            case AnswerRequest():
                pass  # after the status write: answer_requests
            case _:
                raise TypeError(f"a ModelDeployment cannot execute {action!r}")


def answer_requests(api: KubeApi, namespace: str, actions: Sequence[Action], now: datetime) -> None:
    """Write each answered ModelRequest's status. A failure is only logged: the request stays unanswered in the
    watch cache, and the next reconcile answers it again from the record in the ModelDeployment's status."""
    for action in actions:
        if not isinstance(action, AnswerRequest):
            continue
        phase = RequestPhase.APPLIED if action.applied else RequestPhase.REFUSED
        status = {"phase": phase.value, "message": action.message, "handledAt": now.isoformat()}
        try:
            api.patch(MODELREQUESTS, namespace, action.name, {"status": status}, subresource="status")
        except KubeApiError as exc:
            log.warning("%s/%s: cannot answer the ModelRequest: %s", namespace, action.name, exc)


def _undo_jobs(kube: KubeAdapter, md: ModelDeployment, names: list[str]) -> None:
    """Delete the Jobs a reconcile created when its status was not written (a 409, a failed action).

    Their names come from the decision (a gate Job is named after the rollout's start), which was not recorded: the
    next reconcile decides again from a fresh read and names its Jobs anew, and these would run on unjudged (seen on
    the real API server, where kopf's own patch of a changed object races the first status write of a rollout).
    """
    for name in names:
        try:
            kube.delete_job(md, name)
        except (KubeApiError, NotOwnedError) as exc:
            log.warning("%s/%s: cannot delete Job %s: %s", md.metadata.namespace, md.metadata.name, name, exc)


def next_wake(
    spec: ModelDeploymentSpec, status: ModelDeploymentStatus, now: datetime, poll: float, idle: float = IDLE_SECONDS
) -> float:
    """Seconds until something may be due: a poll while gates, warm-up, retraining, a pause, or the wait at the end
    of a step run; else the next analysis, step end, monitoring check, scale-down or cron time; at most ``idle``."""
    due: list[datetime] = []
    steps = spec.rollout.steps
    in_step = status.step_started_at is not None and status.current_step is not None
    if in_step and status.phase == Phase.PROGRESSING:
        # Held within a step: its end and its analyses are timed below, and readiness changes wake the object
        # through the watch, so it is polled only once the pause is over (waiting for readiness or analysis).
        assert status.step_started_at is not None
        assert status.current_step is not None
        pause = parse_duration(steps[status.current_step].pause) if status.current_step < len(steps) else None
        if pause is None or now >= status.step_started_at + pause:
            due.append(now + timedelta(seconds=poll))
    elif status.phase in ROLLOUT_PHASES:
        due.append(now + timedelta(seconds=poll))
    if status.retraining.phase == "Running":
        due.append(now + timedelta(seconds=poll))
    if status.step_started_at is not None and status.current_step is not None:
        if status.current_step < len(steps):
            due.append(status.step_started_at + parse_duration(steps[status.current_step].pause))
        anchor = max(status.step_started_at, status.analysis.last_check_at or status.step_started_at)
        due.append(anchor + parse_duration(spec.rollout.analysis.interval))
    if spec.monitoring is not None and status.stable_version is not None:
        anchor = status.monitoring.last_check_at or status.promoted_at or now
        due.append(anchor + parse_duration(spec.monitoring.interval))
    if status.previous_stable_version is not None and status.promoted_at is not None:
        due.append(status.promoted_at + parse_duration(spec.rollout.scale_down_delay))
    if spec.retraining is not None and spec.retraining.schedule:
        due.append(croniter(spec.retraining.schedule, now).get_next(datetime))
    seconds = min([(d - now).total_seconds() for d in due] + [idle])
    return max(MIN_SECONDS, seconds)


def reconcile_deployment(
    rt: Runtime,
    body: Mapping[str, Any],
    *,
    retiring: bool = False,
    workloads: Mapping[str, bool] | None = None,
    verify_route: bool = True,
    requests: Sequence[Mapping[str, Any]] = (),
) -> Outcome:
    """One reconcile of a ModelDeployment, from its body as last seen (``workloads``: see ``observe_workloads``;
    ``requests``: its ModelRequests not answered yet, answered here once the status recording them is written).

    ``verify_route=False`` skips reading the route back: the weights are then still set whenever the decision
    changes them, but an edited route is not noticed by this reconcile (the loop asks for the read at least once
    per ``--resync`` period)."""
    meta = ObjectMeta.model_validate(body["metadata"])
    raw_status: Mapping[str, Any] = body.get("status") or {}
    status = _parse_status(ModelDeploymentStatus, raw_status)
    now = rt.clock()
    kube = KubeAdapter(rt.api, meta.namespace)
    try:
        spec = ModelDeploymentSpec.model_validate(body.get("spec") or {})
        problems = semantic_errors(spec, meta)
    except ValidationError as exc:
        spec, problems = None, describe(exc, ("spec",))
    if spec is None or problems:
        decision = mark_invalid_spec(status, "; ".join(problems), meta.generation, now, pending_requests(requests))
        for action in decision.actions:
            if isinstance(action, EmitEvent):
                kube.emit_event(dict(body), action.type, action.reason, action.message)
        wrote = write_status(rt.api, MODELDEPLOYMENTS, meta, raw_status, _dump(decision.status))
        answer_requests(rt.api, meta.namespace, decision.actions, now)
        return Outcome(wrote, rt.idle_seconds, actions=decision.actions)

    md = ModelDeployment(metadata=meta, spec=spec, status=status)
    router = rt.router(spec, meta.namespace, meta.name)
    with rt.telemetry.reconcile("ModelDeployment"):
        obs = observe_deployment(
            rt, kube, router, md, now, retiring, workloads, verify_route=verify_route, requests=requests
        )
        decision = decide(spec, meta, status, obs, now)
        started: list[str] = []
        try:
            execute_deployment_actions(kube, router, md, decision.actions, started)
        except NotOwnedError as exc:
            _undo_jobs(kube, md, started)
            return _blocked(rt, kube, md, raw_status, str(exc), now, obs.stable_ready)
        except (KubeApiError, RouterError) as exc:
            message = f"{type(exc).__name__}: {exc}"
            log.warning("%s/%s: %s", meta.namespace, meta.name, message)
            _safe_event(kube, md, "Warning", "ReconcileError", message)
            _undo_jobs(kube, md, started)
            return Outcome(False, rt.poll_seconds, error=message, actions=decision.actions)
        try:
            written = patch_status(rt.api, MODELDEPLOYMENTS, meta, raw_status, _dump(decision.status))
        except Conflict:
            _undo_jobs(kube, md, started)
            raise
        answer_requests(rt.api, meta.namespace, decision.actions, now)
    _record(rt, meta, spec, status, decision.status, obs)
    nxt = next_wake(spec, decision.status, now, rt.poll_seconds, rt.idle_seconds)
    if len(requests) > MAX_REQUESTS_PER_TICK:
        nxt = min(nxt, rt.poll_seconds)  # more requests than one reconcile takes: the rest soon
    return Outcome(written is not None, nxt, actions=decision.actions, resource_version=written or None)


def _blocked(
    rt: Runtime,
    kube: KubeAdapter,
    md: ModelDeployment,
    raw_status: Mapping[str, Any],
    message: str,
    now: datetime,
    stable_ready: bool,
) -> Outcome:
    """An action met an object the operator must write and does not own: it is left alone, the tick's decision is
    dropped, and the status before it gets condition ``Blocked`` saying why (``mark_blocked``), so the reason is on
    the object itself, not only in an event; the next reconcile tries again."""
    meta = md.metadata
    log.warning("%s/%s: blocked: %s", meta.namespace, meta.name, message)
    decision = mark_blocked(md.status, message, meta.generation, now, stable_ready)
    written = patch_status(rt.api, MODELDEPLOYMENTS, meta, raw_status, _dump(decision.status))
    # Said once the condition is recorded: a 409 on that write (kopf's own patch of a changed spec races it) makes
    # the next attempt decide again from the status without it, and the event would be said twice.
    for action in decision.actions:
        if isinstance(action, EmitEvent):
            _safe_event(kube, md, action.type, action.reason, action.message)
    return Outcome(
        written is not None,
        rt.poll_seconds,
        error=f"{NotOwnedError.__name__}: {message}",
        actions=decision.actions,
        resource_version=written or None,
    )


def _record(
    rt: Runtime,
    meta: ObjectMeta,
    spec: ModelDeploymentSpec,
    before: ModelDeploymentStatus,
    after: ModelDeploymentStatus,
    obs: DeploymentObservations,
) -> None:
    rt.telemetry.observe_deployment(meta.namespace, meta.name, after, spec)
    if after.analysis.last_check_at != before.analysis.last_check_at:
        for m in after.analysis.metrics:
            rt.telemetry.record_check(meta.namespace, meta.name, m.name, m.verdict)
    if after.history and (not before.history or after.history[-1] != before.history[-1]):
        outcome = after.history[-1].outcome
        if outcome != "Initial":  # the first version is not a rollout
            rt.telemetry.record_rollout(meta.namespace, meta.name, outcome)


def _safe_event(
    kube: KubeAdapter, involved: ModelDeployment | Mapping[str, Any], type_: str, reason: str, message: str
) -> None:
    try:
        kube.emit_event(involved, type_, reason, message)
    except KubeApiError as exc:
        log.warning("cannot emit event %s: %s", reason, exc)


def finalize_deployment(rt: Runtime, body: Mapping[str, Any], *, retiring: bool = False) -> None:
    """On delete: traffic back to the stable version (the route is shared and outlives us); children go with
    their ownerReferences (garbage collection), and are deleted here too in case nothing collects them.

    A deployment deleted by its retirement leaves the route alone: it already sends everything to the replacement.
    """
    meta = ObjectMeta.model_validate(body["metadata"])
    status = _parse_status(ModelDeploymentStatus, body.get("status") or {})
    try:
        spec = ModelDeploymentSpec.model_validate(body.get("spec") or {})
    except ValidationError:
        return  # never routed anything
    md = ModelDeployment(metadata=meta, spec=spec, status=status)
    if status.stable_version is not None and not retiring:
        try:
            rt.router(spec, meta.namespace, meta.name).finalize(status.stable_version)
        except (RouterError, NotOwnedError) as exc:
            log.warning("%s/%s: route not restored: %s", meta.namespace, meta.name, exc)
    kube = KubeAdapter(rt.api, meta.namespace)
    for obj in kube.list_owned(md):
        kube.delete_owned(md, obj)
    rt.telemetry.forget(meta.namespace, meta.name, kind="ModelDeployment")


# ------------------------------------------------------------------------------------------- retirements


def deployment_view(kube: KubeAdapter, body: Mapping[str, Any] | None) -> DeploymentView | None:
    if body is None:
        return None
    meta = ObjectMeta.model_validate(body["metadata"])
    status = _parse_status(ModelDeploymentStatus, body.get("status") or {})
    ready = False
    model_name = ((body.get("spec") or {}).get("model") or {}).get("name", "")
    labels = naming.owner_labels(meta.name, model_name or None)
    if status.stable_version is not None:
        obj = kube.api.get(DEPLOYMENTS, meta.namespace, workload_name(meta.name, status.stable_version))
        ready = obj is not None and deployment_ready(obj)
    return DeploymentView(
        name=meta.name,
        uid=meta.uid,
        owner_labels=labels,
        stable_version=status.stable_version,
        candidate_version=status.candidate_version,
        phase=status.phase,
        promoted_at=status.promoted_at,
        ready=ready,
    )


def _drain_router(
    rt: Runtime,
    target_body: Mapping[str, Any],
    replacement: DeploymentView,
) -> tuple[Router, str, str] | None:
    """The retired deployment's router, taught the replacement's stable Service as backend ``replacement``."""
    spec = ModelDeploymentSpec.model_validate(target_body.get("spec") or {})
    meta = ObjectMeta.model_validate(target_body["metadata"])
    status = _parse_status(ModelDeploymentStatus, target_body.get("status") or {})
    if status.stable_version is None or replacement.stable_version is None:
        return None
    router = rt.router(spec, meta.namespace, meta.name)
    key = f"{replacement.name}/{replacement.stable_version}"
    router.add_backends({key: workload_name(replacement.name, replacement.stable_version)})
    return router, status.stable_version, key


def drain_weights(retired: str, replacement: str, weight: int) -> dict[str, int]:
    """``weight`` percent to the replacement, the rest to the retired stable version.

    >>> drain_weights("v1", "next/v2", 25)
    {'v1': 75, 'next/v2': 25}
    """
    return {retired: 100 - weight, replacement: weight}


def reconcile_retirement(rt: Runtime, body: Mapping[str, Any]) -> Outcome:
    meta = ObjectMeta.model_validate(body["metadata"])
    raw_status: Mapping[str, Any] = body.get("status") or {}
    status = _parse_status(ModelRetirementStatus, raw_status)
    now = rt.clock()
    kube = KubeAdapter(rt.api, meta.namespace)
    try:
        spec = ModelRetirementSpec.model_validate(body.get("spec") or {})
    except ValidationError as exc:
        message = "; ".join(describe(exc, ("spec",)))
        st = status.model_copy(deep=True)
        st.phase, st.message = RetirementPhase.INVALID, message
        st.conditions = set_condition(
            st.conditions, ConditionType.INVALID_SPEC, "True", Reason.INVALID_SPEC, message, now, meta.generation
        )
        wrote = write_status(rt.api, MODELRETIREMENTS, meta, raw_status, _dump(st))
        if wrote and status.message != message:
            _safe_event(kube, body, "Warning", "InvalidSpec", message)
        return Outcome(wrote, rt.idle_seconds)

    with rt.telemetry.reconcile("ModelRetirement"):
        target_body = kube.api.get(MODELDEPLOYMENTS, meta.namespace, spec.model_deployment)
        target = deployment_view(kube, target_body)
        replacement_body = (
            kube.api.get(MODELDEPLOYMENTS, meta.namespace, spec.replacement) if spec.replacement else None
        )
        replacement = deployment_view(kube, replacement_body)
        drain = None
        router_weights = None
        route_matches = None
        if target_body is not None and replacement is not None and status.drain_step is not None:
            drain = _drain_router(rt, target_body, replacement)
            if drain is not None:
                router, retired_version, key = drain
                try:
                    want = drain_weights(retired_version, key, status.drained_weight)
                    router_weights, route_matches, _ = router.observe(want)
                except (RouterError, KubeApiError) as exc:
                    log.warning("%s/%s: cannot read the route: %s", meta.namespace, meta.name, exc)
        zero = None
        if target is not None and (status.drained_weight == 100 or (spec.replacement is None and status.started_at)):
            version = spec.version or target.stable_version or ""
            model = ((target_body or {}).get("spec") or {}).get("model", {}).get("name", spec.model_deployment)
            values = {
                "namespace": meta.namespace,
                "model": model,
                "version": version,
                "interval": spec.zero_traffic_check.window,
            }
            (zero,) = _readings(rt, [(spec.zero_traffic_check.query, values)])
        objects = kube.observe_objects(dict(target.owner_labels)) if target is not None else ()
        obs = RetirementObservations(
            target=target,
            replacement=replacement,
            router_weights=router_weights,
            route_matches=route_matches,
            zero_traffic=zero,
            objects=objects,
        )
        decision = plan_retirement(spec, meta, status, obs, now)
        try:
            for action in decision.actions:
                match action:
                    case DrainTraffic(replacement_weight=weight):
                        if drain is None and target_body is not None and replacement is not None:
                            drain = _drain_router(rt, target_body, replacement)
                        if drain is None:
                            raise RouterError("nothing to drain: no stable version on one side")
                        router, retired_version, key = drain
                        router.set_weights(drain_weights(retired_version, key, weight))
                    case DeleteObject(kind=kind, name=name, uid=uid):
                        _delete_for_retirement(kube, target_body, kind, name, uid)
                    case EmitEvent(type=type_, reason=reason, message=message):
                        kube.emit_event(body, type_, reason, message)
                    case _:
                        raise TypeError(f"a ModelRetirement cannot execute {action!r}")
        except (KubeApiError, RouterError, NotOwnedError) as exc:
            message = f"{type(exc).__name__}: {exc}"
            _safe_event(kube, body, "Warning", "ReconcileError", message)
            return Outcome(False, rt.poll_seconds, error=message, actions=decision.actions)
        wrote = write_status(rt.api, MODELRETIREMENTS, meta, raw_status, _dump(decision.status))
    rt.telemetry.observe_retirement(meta.namespace, meta.name, decision.status)
    active = decision.status.phase not in ("Retired",)
    nxt = rt.poll_seconds if active else rt.idle_seconds
    if decision.status.phase == "Scheduled" and decision.status.scheduled_for is not None:
        nxt = max(MIN_SECONDS, min(rt.idle_seconds, (decision.status.scheduled_for - now).total_seconds()))
    return Outcome(wrote, nxt, actions=decision.actions)


def _delete_for_retirement(
    kube: KubeAdapter, target_body: Mapping[str, Any] | None, kind: str, name: str, uid: str | None
) -> None:
    if target_body is None:
        return
    if kind == "ModelDeployment":
        kube.api.delete(MODELDEPLOYMENTS, kube.namespace, name, uid=uid)
        return
    md = ModelDeployment.model_validate({"metadata": target_body["metadata"], "spec": target_body["spec"]})
    kube.delete_object(md, kind, name, uid)


__all__ = [
    "Conflict",
    "Outcome",
    "Runtime",
    "finalize_deployment",
    "next_wake",
    "observe_workloads",
    "patch_status",
    "reconcile_deployment",
    "reconcile_retirement",
    "write_status",
]
