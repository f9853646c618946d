"""What the handlers observed, as plain frozen data: the core judges it, it never fetches anything itself."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from .readings import Reading


class JobState(StrEnum):
    """The state of a gate or retraining Job, as the jobs adapter reports it."""

    ABSENT = "Absent"  # not (yet) visible: created a moment ago, or removed by someone
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    TIMED_OUT = "TimedOut"  # the Job's own activeDeadlineSeconds fired


@dataclass(frozen=True, slots=True)
class JobResult:
    """A Job's outcome: ``results`` is the JSON it wrote (termination message) when it succeeded.

    ``job_name``, when set, ties the result to the Job status names: a result of another attempt's Job is ignored.
    """

    state: JobState
    results: Mapping[str, Any] | None = None
    message: str = ""
    job_name: str | None = None


@dataclass(frozen=True, slots=True)
class ManualRequest:
    """One manual request: a ModelRequest (``name``; ``id`` its uid) or the retired annotation; ``error`` is set
    when it is refused before it is looked at (unparsable, or from the annotation)."""

    id: str
    action: str
    team: str = ""
    by: str = ""
    error: str = ""
    name: str = ""


class Acceptance(StrEnum):
    """What the data plane's controller said of the route the operator wrote (Gateway API ``status.parents``)."""

    ACCEPTED = "Accepted"  # every parent accepted this generation and resolved its references
    PENDING = "Pending"  # no word yet on this generation (or no controller reports on the route at all)
    REJECTED = "Rejected"  # a parent refused this generation, or could not resolve a reference in it


@dataclass(frozen=True, slots=True)
class RouteAcceptance:
    """``state`` with the controller's own ``reason`` and a ``message`` naming the parent and the condition."""

    state: Acceptance
    reason: str
    message: str


def _no_readings() -> Mapping[str, Reading]:
    return {}


def _no_jobs() -> Mapping[str, JobResult]:
    return {}


@dataclass(frozen=True, slots=True)
class DeploymentObservations:
    """Everything one reconcile of a ModelDeployment looked at.

    Readings are keyed by metric name; a metric with no entry counts as "no data". ``gates`` holds the results of
    the Jobs named in ``status.gates`` (keyed by gate name), ``retraining`` the Job named in
    ``status.retraining.jobName``. ``router_weights`` is what the router reports (None when unreadable) and
    ``route_matches`` its own verdict on whether the weights in status are in effect (None when unknown): routers
    cannot always reproduce a weight exactly, so only ``route_matches is False`` counts as someone editing the route.
    ``route_acceptance`` is what the route's controller reported for the generation read (None: not read, or a
    router whose objects carry no such status).
    ``workloads`` lists the versions whose Deployment exists (None when not looked at). ``retiring`` says a
    ModelRetirement is draining this deployment: the route is then the retirement's, and is left alone.
    """

    candidate: Mapping[str, Reading] = field(default_factory=_no_readings)
    stable: Mapping[str, Reading] = field(default_factory=_no_readings)
    candidate_ready: bool = False
    stable_ready: bool = False
    gates: Mapping[str, JobResult] = field(default_factory=_no_jobs)
    retraining: JobResult | None = None
    router_weights: Mapping[str, int] | None = None
    route_matches: bool | None = None
    route_acceptance: RouteAcceptance | None = None
    requests: tuple[ManualRequest, ...] = ()
    monitoring: Mapping[str, Reading] = field(default_factory=_no_readings)
    workloads: frozenset[str] | None = None
    retiring: bool = False


@dataclass(frozen=True, slots=True)
class DeploymentView:
    """What a ModelRetirement needs to know of a ModelDeployment (the retired one or its replacement).

    ``owner_labels`` are the labels every child of it carries (``modelops.io/model``, ``modelops.io/deployment``,
    managed-by); ``ready`` whether its stable version serves.
    """

    name: str
    uid: str | None
    owner_labels: Mapping[str, str]
    stable_version: str | None = None
    candidate_version: str | None = None
    phase: str | None = None
    promoted_at: datetime | None = None
    ready: bool = False


@dataclass(frozen=True, slots=True)
class OwnerRef:
    kind: str
    name: str
    uid: str


@dataclass(frozen=True, slots=True)
class ObservedObject:
    """An object found by the model's labels; it may be deleted only if labels AND ownerReference match."""

    kind: str
    name: str
    uid: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    owners: tuple[OwnerRef, ...] = ()


@dataclass(frozen=True, slots=True)
class RetirementObservations:
    """Everything one reconcile of a ModelRetirement looked at.

    ``target`` is None when the retired ModelDeployment does not exist (any more). ``zero_traffic`` is the reading
    of the zero-traffic query (None when not queried).
    """

    target: DeploymentView | None
    replacement: DeploymentView | None = None
    router_weights: Mapping[str, int] | None = None
    route_matches: bool | None = None
    zero_traffic: Reading | None = None
    objects: tuple[ObservedObject, ...] = ()
