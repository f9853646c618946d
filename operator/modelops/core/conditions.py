"""Conditions change through one helper, and every reason the operator writes lives in one enum.

Following Argo Rollouts' ``utils/conditions``: ``lastTransitionTime`` moves only when a condition's status
changes, so a reconcile that learns nothing new writes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Literal

from modelops.api.common import Condition

ConditionStatus = Literal["True", "False", "Unknown"]

#: The API's limit on a condition message (metav1.Condition); longer messages are cut.
MAX_MESSAGE = 32768


class ConditionType(StrEnum):
    READY = "Ready"
    PROGRESSING = "Progressing"
    DEGRADED = "Degraded"
    INVALID_SPEC = "InvalidSpec"
    #: what the route's controller said of the route the operator wrote (Gateway API routers)
    ROUTE_ACCEPTED = "RouteAccepted"
    #: ModelRetirement: it cannot go on safely; ModelDeployment: an object it must write is not its own
    BLOCKED = "Blocked"
    # ModelRetirement
    RETIRED = "Retired"


class Reason(StrEnum):
    """Every reason of a condition or an event, in one place (CamelCase, as Kubernetes reasons are)."""

    # Ready
    STABLE_READY = "StableReady"
    STABLE_NOT_READY = "StableNotReady"
    NO_STABLE_VERSION = "NoStableVersion"
    # rollout
    NO_CANDIDATE = "NoCandidate"
    NEW_CANDIDATE = "NewCandidate"
    GATE_STARTED = "GateStarted"
    GATE_PASSED = "GatePassed"
    GATE_FAILED = "GateFailed"
    GATES_RUNNING = "GatesRunning"
    GATES_PASSED = "GatesPassed"
    GATES_FAILED = "GatesFailed"
    CANDIDATE_STARTING = "CandidateStarting"
    CANDIDATE_NOT_READY = "CandidateNotReady"
    STEP_ADVANCED = "StepAdvanced"
    ROLLOUT_IN_PROGRESS = "RolloutInProgress"
    CHECK_FAILED = "CheckFailed"
    ANALYSIS_FAILED = "AnalysisFailed"
    METRICS_UNAVAILABLE = "MetricsUnavailable"
    PROGRESS_DEADLINE_EXCEEDED = "ProgressDeadlineExceeded"
    AWAITING_APPROVAL = "AwaitingApproval"
    ROLLOUT_PAUSED = "RolloutPaused"
    ROLLOUT_RESUMED = "RolloutResumed"
    INITIAL_DEPLOYMENT = "InitialDeployment"
    PROMOTED = "Promoted"
    ROLLED_BACK = "RolledBack"
    ABORTED = "Aborted"
    SUPERSEDED = "Superseded"
    REVERTED_TO_STABLE = "RevertedToStable"
    OLD_STABLE_DELETED = "OldStableDeleted"
    ROUTE_DRIFT = "RouteDrift"
    #: a step's weights are written; the Gateway's controller has not accepted them yet
    AWAITING_ROUTE = "AwaitingRoute"
    ROUTE_REJECTED = "RouteRejected"
    ROUTE_NOT_ACCEPTED = "RouteNotAccepted"
    WORKLOAD_MISSING = "WorkloadMissing"
    #: Blocked=True: an object the operator must write (a version's Deployment or Service, the DestinationRule of
    #: Istio's host mode) exists and is not its own; it is left alone, and nothing that needs it moves
    OBJECT_NOT_OWNED = "ObjectNotOwned"
    # monitoring
    METRICS_HEALTHY = "MetricsHealthy"
    METRICS_DEGRADED = "MetricsDegraded"
    #: Degraded=Unknown: degradedAfter monitoring checks in a row had a metric without data (or a failed query)
    NO_DATA = "NoData"
    NO_MONITORING = "NoMonitoring"
    # retraining
    RETRAINING_STARTED = "RetrainingStarted"
    RETRAINING_SUCCEEDED = "RetrainingSucceeded"
    RETRAINING_FAILED = "RetrainingFailed"
    RETRAINING_OUTPUT_DISCARDED = "RetrainingOutputDiscarded"
    # manual requests
    REQUEST_ACCEPTED = "RequestAccepted"
    REQUEST_REJECTED = "RequestRejected"
    # spec
    INVALID_SPEC = "InvalidSpec"
    SPEC_VALID = "SpecValid"
    # ModelRetirement
    SCHEDULED = "Scheduled"
    WAITING_FOR_REPLACEMENT = "WaitingForReplacement"
    DRAINING = "Draining"
    DRAIN_STEP = "DrainStep"
    TARGET_NOT_FOUND = "TargetNotFound"
    REPLACEMENT_NOT_READY = "ReplacementNotReady"
    VERSION_SERVING = "VersionServing"
    TRAFFIC_REMAINS = "TrafficRemains"
    ZERO_TRAFFIC_UNKNOWN = "ZeroTrafficUnknown"
    ZERO_TRAFFIC_CONFIRMED = "ZeroTrafficConfirmed"
    NOT_BLOCKED = "NotBlocked"
    CLEANING_UP = "CleaningUp"
    OBJECT_DELETED = "ObjectDeleted"
    RETIRED = "Retired"
    NOT_RETIRED = "NotRetired"


def get_condition(conditions: Sequence[Condition], type_: str) -> Condition | None:
    """The condition of ``type_``, if present."""
    return next((c for c in conditions if c.type == type_), None)


def set_condition(
    conditions: Sequence[Condition],
    type_: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    now: datetime,
    observed_generation: int | None = None,
) -> list[Condition]:
    """A new list with condition ``type_`` set; ``lastTransitionTime`` is kept unless the status changes.

    Order is kept (a new type is appended), so setting a condition to what it already is returns an equal list.

    >>> from datetime import UTC, datetime
    >>> t0, t1 = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)
    >>> cs = set_condition([], "Ready", "True", "StableReady", "v1 serving", t0)
    >>> cs = set_condition(cs, "Ready", "True", "StableReady", "v2 serving", t1)
    >>> cs[0].last_transition_time == t0, cs[0].message
    (True, 'v2 serving')
    >>> set_condition(cs, "Ready", "False", "StableNotReady", "", t1)[0].last_transition_time == t1
    True
    """
    message = message[:MAX_MESSAGE]
    out: list[Condition] = []
    found = False
    for cond in conditions:
        if cond.type != type_:
            out.append(cond)
            continue
        found = True
        moved = cond.status != status or cond.last_transition_time is None
        out.append(
            Condition(
                type=type_,
                status=status,
                reason=reason,
                message=message,
                last_transition_time=now if moved else cond.last_transition_time,
                observed_generation=observed_generation,
            )
        )
    if not found:
        out.append(
            Condition(
                type=type_,
                status=status,
                reason=reason,
                message=message,
                last_transition_time=now,
                observed_generation=observed_generation,
            )
        )
    return out
