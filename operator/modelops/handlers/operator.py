"""kopf glue: one daemon per object runs the reconcile loop; watch events wake it; deletion runs under a finalizer.

Why a daemon and not ``on.create``/``on.update`` plus a timer: the analysis interval differs per object and the
next due moment (a step's end, the next check, a scale-down) is known from status, so each object sleeps exactly
until then; any watch event (a spec change, a manual request, our own status write) wakes it at once. kopf's
create/update handlers would also store their progress in annotations: writes the operator does not need, since
status is its only state.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, cast

import kopf

from modelops.adapters.kube import MODELDEPLOYMENTS, MODELRETIREMENTS, Conflict, KubeApi, deployment_ready
from modelops.api import GROUP, VERSION
from modelops.core.naming import DEPLOYMENT_LABEL, MANAGED_BY_LABEL, MANAGER, MODEL_LABEL, VERSION_LABEL

from .reconcile import Outcome, Runtime, finalize_deployment, reconcile_deployment, reconcile_retirement

log = logging.getLogger("modelops")

FINALIZER = "modelops.io/finalizer"
#: A reconcile whose status write meets a newer object (409) starts again from a fresh read, this many times.
CONFLICT_RETRIES = 3
#: How long a reconcile waits for the watch to bring back the object its previous status write produced.
ECHO_SECONDS = 2.0
#: Retirement phases during which the retired deployment's route belongs to the retirement.
DRAINING_PHASES = frozenset({"Draining", "CleaningUp", "Retired"})

Key = tuple[str, str]


def retiring(entries: Sequence[Mapping[str, Any]], now: datetime) -> bool:
    """Whether a ModelRetirement owns the route of its target now: it started draining, or its time has come.

    Looking at the schedule too (not only the phase) closes most of the window between the retirement's first route
    write and its first status write, during which the deployment would otherwise "repair" the drained route.
    """
    for entry in entries:
        status = entry.get("status") or {}
        spec = entry.get("spec") or {}
        if status.get("phase") in DRAINING_PHASES or status.get("startedAt"):
            return True
        when = status.get("scheduledFor") or spec.get("notBefore")
        if when and datetime.fromisoformat(str(when).replace("Z", "+00:00")) <= now:
            return True
        if not spec.get("notBefore") and not spec.get("afterReplacementPromoted"):
            return True  # no schedule: it starts at once
    return False


def _reconcile_fresh(
    api: KubeApi, reconcile: Callable[[Mapping[str, Any]], Outcome], resource: Any, body: Mapping[str, Any]
) -> Outcome:
    """Reconcile; on a 409 from the status write, read the object again and reconcile that."""
    for _ in range(CONFLICT_RETRIES):
        try:
            return reconcile(body)
        except Conflict:
            meta = body["metadata"]
            fresh = api.get(resource, meta["namespace"], meta["name"])
            if fresh is None:
                return Outcome(False, 0.0)
            body = fresh
    return reconcile(body)


class Wake(asyncio.Event):
    """What makes an object's loop look again before its next due moment: set by watch events and by its
    children. Remembers whether the one thing that set it was a watch event of a given resourceVersion."""

    def __init__(self) -> None:
        super().__init__()
        self._only: str | None = None

    def set(self) -> None:
        self._only = None
        super().set()

    def set_by_watch(self, resource_version: str) -> None:
        """Set by a watch event of the object itself at ``resource_version``."""
        first = not self.is_set()
        super().set()
        self._only = resource_version if first and resource_version else None

    def only_seen(self, resource_version: str) -> bool:
        """Whether the watch event at ``resource_version`` is all that set this since it was last cleared."""
        return self.is_set() and self._only == resource_version

    def clear(self) -> None:
        self._only = None
        super().clear()


async def in_thread(rt: Runtime, fn: Callable[..., Outcome], *args: Any) -> Outcome:
    """Run a blocking reconcile in the runtime's worker threads (``--workers`` of them), off the event loop."""
    return await asyncio.get_running_loop().run_in_executor(rt.executor, functools.partial(fn, *args))


class Guard:
    """One object's reconciles and its finalizer, one at a time, and no reconcile once the finalizer has started.

    A reconcile runs in a worker thread; when the object is deleted, kopf cancels the daemon's task at once, but
    not the thread, and runs the delete handler in the same pass. Without this, a reconcile still in flight could
    set the route back to the canary's weights after the finalizer restored it (or recreate a child it deleted).
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.finalizing = False


def guard_of(memo: Any) -> Guard:
    """The object's guard, shared by its daemon and its delete handler through kopf's per-object memo."""
    guard: Guard = memo.setdefault("guard", Guard())  # dict.setdefault: atomic, so one guard even across threads
    return guard


def cached_workloads(entries: Iterable[Mapping[str, Any]], model: str | None) -> dict[str, bool]:
    """Version -> ready from the Deployment index's entries of one ModelDeployment (of its current model name:
    the same Deployments a LIST by ``owner_labels`` returns).

    >>> cached_workloads([{"version": "v1", "model": "m", "ready": True}, {"version": "v0", "model": "x"}], "m")
    {'v1': True}
    """
    return {str(e["version"]): bool(e.get("ready")) for e in entries if e.get("model") == model and e.get("version")}


def echo_of(memo: Any) -> asyncio.Event:
    """Set when the watch brings back the object as our last status write left it."""
    event: asyncio.Event | None = getattr(memo, "echo", None)
    if event is None:
        event = asyncio.Event()
        memo.echo = event
    return event


async def _sleep(stopped: kopf.DaemonStopped, wake: asyncio.Event, seconds: float) -> None:
    """Until ``seconds`` pass, ``wake`` is set (the object changed, or our write came back), or the daemon stops."""
    waiters = [asyncio.ensure_future(wake.wait()), asyncio.ensure_future(stopped.wait())]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()


class LeanDiffBase(kopf.AnnotationsDiffBaseStorage):
    """kopf's diff base (what kopf compares to tell a change of spec from any other event), built from the object
    without its status and system metadata.

    kopf deep-copies the whole object at every watch event and then throws the status and most of the metadata
    away; here they are left out before the copy, so the echo of each status write no longer copies that status.
    The essence is the same (tested against kopf's own).
    """

    #: the metadata kopf's essence or its key conventions look at
    META = ("name", "namespace", "uid", "labels", "annotations", "ownerReferences")

    def build(self, *, body: kopf.Body, extra_fields: Iterable[Any] | None = None) -> kopf.BodyEssence:
        fields = list(extra_fields or [])
        if any(_field_path(f)[:1] in (("status",), ("metadata",)) for f in fields):
            return super().build(body=body, extra_fields=fields)  # asks for what the lean copy leaves out
        meta = body.get("metadata") or {}
        lean = {key: value for key, value in body.items() if key not in ("status", "metadata")}
        lean["metadata"] = {key: meta[key] for key in self.META if key in meta}
        return super().build(body=kopf.Body(cast(kopf.RawBody, lean)), extra_fields=fields)


def _field_path(field: Any) -> tuple[str, ...]:
    """kopf's field spec (``"a.b"``, a list or tuple of parts) as a tuple of parts."""
    return tuple(field.split(".")) if isinstance(field, str) else tuple(field)


def register(registry: kopf.OperatorRegistry, runtime: Callable[[], Runtime]) -> None:
    """Register the handlers of the three kinds in ``registry``; ``runtime()`` gives what reconciles talk to."""
    wakers: dict[Key, Wake] = {}

    def waker(memo: Any, namespace: str, name: str) -> Wake:
        event: Wake | None = getattr(memo, "wake", None)
        if event is None:
            event = Wake()
            memo.wake = event
        wakers[(namespace, name)] = event
        return event

    #: the last (version, ready) seen of each version Deployment: only a change of either wakes its owner
    seen: dict[Key, tuple[str, bool]] = {}

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.persistence.finalizer = FINALIZER
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="modelops.io")
        settings.persistence.diffbase_storage = LeanDiffBase(prefix="modelops.io")
        settings.posting.level = logging.WARNING  # kopf's own log lines are not turned into Events
        settings.execution.max_workers = 32
        # kopf gives each object a worker task that ends after ``idle_timeout`` (5 s) without watch events. During
        # a canary each object's status is written once per analysis interval: a worker kept for a resync period
        # is not started again at every analysis (a new task and queue per write; see docs/performance.md).
        settings.queueing.idle_timeout = max(settings.queueing.idle_timeout, runtime().idle_seconds)

    @kopf.index(GROUP, VERSION, "modelrequests", registry=registry, id="requests_by_target")
    def requests_by_target(*, namespace: str | None, body: kopf.Body, **_: Any) -> dict[Key, dict[str, Any]]:
        """The ModelRequests not answered yet, by the ModelDeployment they are for: a reconcile reads them here."""
        if (body.get("status") or {}).get("phase"):
            return {}
        meta = body.get("metadata") or {}
        lean = {key: meta.get(key) for key in ("name", "uid", "creationTimestamp")}
        return {(namespace or "", str((body.get("spec") or {}).get("modelDeployment"))): {
            "metadata": lean, "spec": dict(body.get("spec") or {})}}  # fmt: skip

    @kopf.on.event(GROUP, VERSION, "modelrequests", registry=registry)
    async def request_changed(*, type: str | None, namespace: str | None, body: kopf.Body, **_: Any) -> None:
        """A new request wakes its ModelDeployment at once."""
        if type == "DELETED" or (body.get("status") or {}).get("phase"):
            return
        owner = wakers.get((namespace or "", str((body.get("spec") or {}).get("modelDeployment"))))
        if owner is not None:
            owner.set()

    @kopf.index(GROUP, VERSION, "modelretirements", registry=registry, id="retirements_by_target")
    def retirements_by_target(
        *, namespace: str | None, spec: kopf.Spec, status: kopf.Status, **_: Any
    ) -> dict[Key, dict[str, Any]]:
        target = spec.get("modelDeployment")
        return {(namespace or "", str(target)): {"spec": dict(spec), "status": dict(status)}}

    # -------------------------------------------------------------------------- version Deployments (children)

    children: dict[str, Any] = {
        MANAGED_BY_LABEL: MANAGER,
        DEPLOYMENT_LABEL: kopf.PRESENT,
        VERSION_LABEL: kopf.PRESENT,
    }

    @kopf.index("apps", "v1", "deployments", registry=registry, labels=children, id="workloads_by_owner")
    def workloads_by_owner(
        *, namespace: str | None, labels: kopf.Labels, body: kopf.Body, **_: Any
    ) -> dict[Key, dict[str, Any]]:
        """Readiness of every version Deployment, kept from the watch: a reconcile reads it instead of a LIST."""
        entry = {"version": labels[VERSION_LABEL], "model": labels.get(MODEL_LABEL), "ready": deployment_ready(body)}
        return {(namespace or "", labels[DEPLOYMENT_LABEL]): entry}

    @kopf.on.event("apps", "v1", "deployments", registry=registry, labels=children)
    async def workload_changed(
        *, type: str | None, namespace: str | None, name: str, labels: kopf.Labels, body: kopf.Body, **_: Any
    ) -> None:
        """Wake the owner when a version Deployment appears, goes, or its readiness flips (not on every status
        write of its controller): a candidate that becomes ready moves on at once, without polling."""
        key = (namespace or "", name)
        now = (str(labels.get(VERSION_LABEL)), deployment_ready(body))
        if type == "DELETED":
            seen.pop(key, None)
        elif seen.get(key) == now:
            return
        else:
            seen[key] = now
        owner = wakers.get((namespace or "", str(labels.get(DEPLOYMENT_LABEL))))
        if owner is not None:
            owner.set()

    # ------------------------------------------------------------------------------------ ModelDeployment

    @kopf.on.event(GROUP, VERSION, "modeldeployments", registry=registry)
    async def deployment_changed(*, memo: Any, namespace: str | None, name: str, body: kopf.Body, **_: Any) -> None:
        rv = (body.get("metadata") or {}).get("resourceVersion")
        if rv and rv == getattr(memo, "awaited", None):
            memo.awaited = None
            echo_of(memo).set()
            if getattr(memo, "quiet_echo", False):
                return  # the echo of a status-only write of our own: nothing new to look at
            waker(memo, namespace or "", name).set()
            return
        # Maybe a change, maybe the echo of the write a reconcile is finishing (the watch can be faster than the
        # write's answer): the loop tells which once that reconcile returned.
        waker(memo, namespace or "", name).set_by_watch(str(rv or ""))

    @kopf.daemon(
        GROUP,
        VERSION,
        "modeldeployments",
        registry=registry,
        cancellation_timeout=30.0,
        when=lambda body, **_: not body.get("metadata", {}).get("deletionTimestamp"),
    )
    async def deployment_loop(
        *, stopped: kopf.DaemonStopped, body: kopf.Body, memo: Any, namespace: str | None, name: str, **kwargs: Any
    ) -> None:
        ns = namespace or ""
        index: kopf.Index[Key, dict[str, Any]] = kwargs["retirements_by_target"]
        workloads: kopf.Index[Key, dict[str, Any]] = kwargs["workloads_by_owner"]
        requests: kopf.Index[Key, dict[str, Any]] = kwargs["requests_by_target"]
        wake = waker(memo, ns, name)
        guard = guard_of(memo)
        rt = runtime()
        while not stopped:
            if getattr(memo, "awaited", None) is not None:
                # Our last status write has not come back through the watch yet: a reconcile now would decide from
                # the status before it (and, say, set the route back to the previous step's weights).
                await _sleep(stopped, echo_of(memo), ECHO_SECONDS)
                memo.awaited = None
            wake.clear()
            echo_of(memo).clear()
            snapshot = copy.deepcopy(dict(body))
            if (snapshot.get("metadata") or {}).get("deletionTimestamp"):
                return  # being deleted: the finalizer restores the route; a reconcile now would undo that
            is_retiring = retiring(list(index.get((ns, name), [])), rt.clock())
            model = ((snapshot.get("spec") or {}).get("model") or {}).get("name")
            cached = cached_workloads(list(workloads.get((ns, name), [])), model)
            pending = copy.deepcopy(list(requests.get((ns, name), [])))

            # The route is read back (to notice someone editing it) at least once per resync period, not at every
            # tick: during a canary a tick per analysis interval would read it each time for nothing.
            verify = time.monotonic() - getattr(memo, "route_read_at", -math.inf) >= rt.idle_seconds

            def one(
                b: Mapping[str, Any],
                is_retiring: bool = is_retiring,
                cached: dict[str, bool] = cached,
                verify: bool = verify,
                pending: list[dict[str, Any]] = pending,
            ) -> Outcome:
                with guard.lock:
                    if guard.finalizing:
                        return Outcome(False, rt.poll_seconds)  # being deleted: the finalizer has the route
                    outcome = reconcile_deployment(
                        rt, b, retiring=is_retiring, workloads=cached, verify_route=verify, requests=pending
                    )
                # Set here, in the reconcile's thread right after the write: the echo comes through kopf later.
                # A write of status alone (no action) needs no second look: its echo is not a wake-up.
                memo.quiet_echo = not outcome.actions
                memo.awaited = outcome.resource_version
                return outcome

            try:
                outcome = await in_thread(rt, _reconcile_fresh, rt.api, one, MODELDEPLOYMENTS, snapshot)
                delay = outcome.next_in
                if verify:
                    memo.route_read_at = time.monotonic()
                awaited = getattr(memo, "awaited", None)
                if awaited and wake.only_seen(awaited):
                    # The watch brought our write back before its answer reached us: no need to wait for it, and
                    # after a status-only write, nothing to look at again.
                    memo.awaited = None
                    if memo.quiet_echo:
                        wake.clear()
            except Exception:  # never let one object's bug stop its loop for good
                log.exception("%s/%s: reconcile failed", ns, name)
                rt.telemetry.observe_reconcile("ModelDeployment", 0.0, error=True)
                delay = rt.poll_seconds
            await _sleep(stopped, wake, delay)

    @kopf.on.delete(GROUP, VERSION, "modeldeployments", registry=registry)
    def deployment_deleted(*, body: kopf.Body, memo: Any, namespace: str | None, name: str, **kwargs: Any) -> None:
        rt = runtime()
        index: kopf.Index[Key, dict[str, Any]] = kwargs["retirements_by_target"]
        is_retiring = retiring(list(index.get((namespace or "", name), [])), rt.clock())
        guard = guard_of(memo)
        with guard.lock:  # waits for a reconcile still in flight; none runs after this
            guard.finalizing = True
            finalize_deployment(rt, copy.deepcopy(dict(body)), retiring=is_retiring)
        wakers.pop((namespace or "", name), None)

    # ------------------------------------------------------------------------------------ ModelRetirement

    @kopf.on.event(GROUP, VERSION, "modelretirements", registry=registry)
    async def retirement_changed(*, memo: Any, namespace: str | None, name: str, **_: Any) -> None:
        waker(memo, namespace or "", f"retirement:{name}").set()

    @kopf.daemon(GROUP, VERSION, "modelretirements", registry=registry, cancellation_timeout=30.0)
    async def retirement_loop(
        *, stopped: kopf.DaemonStopped, body: kopf.Body, memo: Any, namespace: str | None, name: str, **_: Any
    ) -> None:
        ns = namespace or ""
        wake = waker(memo, ns, f"retirement:{name}")
        rt = runtime()
        while not stopped:
            wake.clear()
            snapshot = copy.deepcopy(dict(body))
            try:
                outcome = await in_thread(
                    rt, _reconcile_fresh, rt.api, lambda b: reconcile_retirement(rt, b), MODELRETIREMENTS, snapshot
                )
                delay = outcome.next_in
                target = (snapshot.get("spec") or {}).get("modelDeployment")
                if outcome.actions and target and (ns, target) in wakers:
                    wakers[(ns, target)].set()  # the target sees the retirement's new phase promptly
            except Exception:
                log.exception("%s/%s: retirement reconcile failed", ns, name)
                rt.telemetry.observe_reconcile("ModelRetirement", 0.0, error=True)
                delay = rt.poll_seconds
            await _sleep(stopped, wake, delay)


__all__ = ["FINALIZER", "Guard", "LeanDiffBase", "cached_workloads", "guard_of", "register", "retiring"]
