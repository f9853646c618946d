"""Backtesting a rollout policy: the operator's own ``decide`` replayed over recorded metric readings.

Why here and pure: a backtest is only worth trusting if it runs the very decisions the operator runs, so the replay
drives :func:`~modelops.core.deployment.decide` tick by tick with recorded readings instead of Prometheus, with the
time of each tick as ``now``. Nothing is fetched; the caller (``modelops backtest``) loads the readings.

The replay starts with a stable version serving and a candidate whose gates passed (gates, approvals, monitoring
and retraining are not part of a rollout *policy* and are left out), then ticks, by default:

- at every recorded sample time (an analysis runs there when one is due, as the operator's would),
- at every step's end (the operator wakes up then to advance),
- and at ``end``;

or at given moments (``ticks``: e.g. the reconcile times of a recorded run).

At each tick a metric's reading is its latest sample for that target at most ``max_age`` old (empty value: no
data; an error: an error); with no such sample the metric has no data, as when Prometheus was down.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from modelops.api.common import parse_duration
from modelops.api.deployment import ModelDeploymentSpec, ModelDeploymentStatus, ObjectMeta, Phase

from .actions import EmitEvent
from .conditions import Reason
from .deployment import analysis_due, decide
from .observations import DeploymentObservations
from .readings import Reading

Target = Literal["candidate", "stable"]
DecisionKind = Literal["start", "advance", "check-passed", "check-failed", "hold", "rollback", "promote", "pause"]

#: Phases after which a replay has nothing left to decide.
FINAL_PHASES = frozenset({Phase.PROMOTED, Phase.ROLLED_BACK, Phase.FAILED})


@dataclass(frozen=True, slots=True)
class Sample:
    """One recorded reading of one metric for one target at one time."""

    at: datetime
    metric: str
    target: Target
    reading: Reading


@dataclass(frozen=True, slots=True)
class MetricPoint:
    """What one analysis saw of one metric: for the timeline's metric panels."""

    metric: str
    value: float | None
    verdict: str
    message: str


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """A tick where something was decided: an analysis ran, the step or phase changed."""

    at: datetime
    phase: str
    weight: int
    step: int | None
    kind: DecisionKind
    reason: str
    metrics: tuple[MetricPoint, ...] = ()


@dataclass(frozen=True, slots=True)
class BacktestResult:
    """The replay of one policy: every decision, and the outcome."""

    name: str
    entries: tuple[TimelineEntry, ...]
    outcome: str  # Promoted | RolledBack | InProgress
    outcome_at: datetime | None
    final_weight: int
    failed_checks: int
    unavailable_checks: int
    passed_checks: int
    weights: tuple[tuple[datetime, int], ...] = field(default=())

    def step_weights(self) -> list[int]:
        """The weights the candidate was advanced to, in order (the operator's StepAdvanced events)."""
        return [e.weight for e in self.entries if e.kind in ("start", "advance")]


class SampleIndex:
    """Samples per (metric, target), sorted by time, for "latest sample no older than max_age" lookups."""

    def __init__(self, samples: Iterable[Sample], max_age: timedelta) -> None:
        series: dict[tuple[str, str], list[Sample]] = defaultdict(list)
        for s in samples:
            series[(s.metric, s.target)].append(s)
        self._series = {k: sorted(v, key=lambda s: s.at) for k, v in series.items()}
        self._times = {k: [s.at for s in v] for k, v in self._series.items()}
        self.max_age = max_age

    def times(self) -> list[datetime]:
        return sorted({t for ts in self._times.values() for t in ts})

    def reading(self, metric: str, target: Target, at: datetime) -> Reading:
        key = (metric, target)
        times = self._times.get(key)
        if not times:
            return Reading.no_data(f"no recorded {target} reading of {metric}")
        i = bisect.bisect_right(times, at) - 1
        if i < 0 or at - times[i] > self.max_age:
            return Reading.no_data(f"no {target} reading of {metric} within {self.max_age.total_seconds():g}s")
        return self._series[key][i].reading


def replay_spec(spec: ModelDeploymentSpec, candidate: str, stable: str) -> ModelDeploymentSpec:
    """The spec the replay runs: the rollout policy only (no gates, approvals, monitoring or retraining), with a
    route that takes each step's weights at once (no Gateway acceptance to wait for)."""
    out = spec.model_copy(deep=True)
    if out.traffic.gateway_api is not None:
        out.traffic.gateway_api.wait_for_acceptance = False
    out.gates = []
    out.approvals = []
    out.monitoring = None
    out.retraining = None
    out.model.version = candidate
    out.model.uri = f"backtest://{candidate}"
    return out


def initial_status(stable: str, at: datetime) -> ModelDeploymentStatus:
    """A stable version serving everything, promoted an hour before the replay starts."""
    return ModelDeploymentStatus(
        phase=Phase.PROMOTED,
        stable_version=stable,
        stable_uri=f"backtest://{stable}",
        observed_spec_version=stable,
        promoted_at=at - timedelta(hours=1),
    )


def _kind(events: Sequence[EmitEvent], before: ModelDeploymentStatus, after: ModelDeploymentStatus) -> DecisionKind:
    reasons = {e.reason for e in events}
    if after.phase == Phase.PROMOTED and before.phase != Phase.PROMOTED:
        return "promote"
    if after.phase == Phase.ROLLED_BACK and before.phase != Phase.ROLLED_BACK:
        return "rollback"
    if Reason.STEP_ADVANCED.value in reasons:
        return "start" if before.current_step is None else "advance"
    if after.phase == Phase.PAUSED and before.phase != Phase.PAUSED:
        return "pause"
    if Reason.CHECK_FAILED.value in reasons:
        return "check-failed"
    if Reason.METRICS_UNAVAILABLE.value in reasons:
        return "hold"
    return "check-passed"


def _reason(kind: DecisionKind, events: Sequence[EmitEvent], after: ModelDeploymentStatus) -> str:
    wanted = {
        "promote": (Reason.PROMOTED,),
        "rollback": (Reason.ANALYSIS_FAILED, Reason.METRICS_UNAVAILABLE, Reason.PROGRESS_DEADLINE_EXCEEDED),
        "start": (Reason.STEP_ADVANCED,),
        "advance": (Reason.STEP_ADVANCED,),
        "check-failed": (Reason.CHECK_FAILED,),
        "hold": (Reason.METRICS_UNAVAILABLE,),
        "check-passed": (),
        "pause": (Reason.AWAITING_APPROVAL,),
    }[kind]
    values = {r.value for r in wanted}
    messages = [e.message for e in events if e.reason in values]
    if kind == "rollback":
        return after.message
    if kind == "check-passed":
        return "check passed; " + after.message
    if messages:
        return "; ".join(messages)
    return after.message


def replay(
    spec: ModelDeploymentSpec,
    samples: Sequence[Sample],
    start: datetime,
    end: datetime,
    *,
    name: str = "policy",
    candidate: str = "candidate",
    stable: str = "stable",
    max_age: timedelta | None = None,
    namespace: str = "backtest",
    ticks: Sequence[datetime] | None = None,
) -> BacktestResult:
    """Replay ``spec``'s rollout policy from ``start`` to ``end`` over ``samples``.

    The candidate is ready throughout (the workload's readiness is not in metric data). ``max_age`` defaults to
    the analysis interval: a sample older than that is no reading at all. ``ticks``, when given, are the only
    moments decided at (besides ``start`` and ``end``): the reconcile times of a recorded run reproduce that run's
    schedule exactly; by default the replay decides at every sample time and at every step's end.
    """
    rspec = replay_spec(spec, candidate, stable)
    interval = parse_duration(rspec.rollout.analysis.interval)
    index = SampleIndex(samples, max_age if max_age is not None else interval)
    meta = ObjectMeta(name=name, namespace=namespace, generation=1)
    status = initial_status(stable, start)
    moments = index.times() if ticks is None else ticks
    pending = sorted({t for t in moments if start <= t <= end} | {start, end})
    entries: list[TimelineEntry] = []
    weights: list[tuple[datetime, int]] = [(start, 0)]
    outcome_at: datetime | None = None
    i = 0
    while i < len(pending):
        now = pending[i]
        i += 1
        due = analysis_due(rspec, status, now)
        metrics = rspec.rollout.analysis.metrics
        cand = {m.name: index.reading(m.name, "candidate", now) for m in metrics} if due else {}
        stab = {m.name: index.reading(m.name, "stable", now) for m in metrics if m.baseline is not None} if due else {}
        obs = DeploymentObservations(
            candidate=cand,
            stable=stab,
            candidate_ready=True,
            stable_ready=True,
            router_weights=None,
            workloads=None,
        )
        decision = decide(rspec, meta, status, obs, now)
        after = decision.status
        events = [a for a in decision.actions if isinstance(a, EmitEvent)]
        analysed = after.analysis.last_check_at == now and status.analysis.last_check_at != now
        moved = (
            after.phase != status.phase
            or after.current_step != status.current_step
            or after.canary_weight != status.canary_weight
        )
        if analysed or moved:
            kind = _kind(events, status, after)
            points = (
                tuple(MetricPoint(m.name, m.value, str(m.verdict), m.message) for m in after.analysis.metrics)
                if analysed
                else ()
            )
            reason = _reason(kind, events, after)
            step = after.current_step
            entries.append(TimelineEntry(now, str(after.phase), _final_weight(after), step, kind, reason, points))
        if _final_weight(after) != weights[-1][1]:
            weights.append((now, _final_weight(after)))
        status = after
        if status.phase in FINAL_PHASES:
            outcome_at = now
            break
        # the step's end is a moment the operator wakes up for
        if ticks is None and status.current_step is not None and status.step_started_at is not None:
            step_end = status.step_started_at + parse_duration(rspec.rollout.steps[status.current_step].pause)
            if now < step_end <= end and step_end not in pending[i:]:
                bisect.insort(pending, step_end, lo=i)
    weights.append((end, _final_weight(status)))
    a = status.analysis
    phase = Phase(status.phase)
    outcome = "Promoted" if phase == Phase.PROMOTED else "RolledBack" if phase == Phase.ROLLED_BACK else "InProgress"
    return BacktestResult(
        name=name,
        entries=tuple(entries),
        outcome=outcome,
        outcome_at=outcome_at,
        final_weight=_final_weight(status),
        failed_checks=a.failed_checks,
        unavailable_checks=a.unavailable_checks,
        passed_checks=a.passed_checks,
        weights=tuple(weights),
    )


def _final_weight(status: ModelDeploymentStatus) -> int:
    """The candidate's share of traffic: 100 once promoted, 0 after a rollback."""
    if status.phase == Phase.PROMOTED:
        return 100
    if status.phase == Phase.ROLLED_BACK:
        return 0
    return status.canary_weight


__all__ = [
    "BacktestResult",
    "MetricPoint",
    "Sample",
    "SampleIndex",
    "TimelineEntry",
    "initial_status",
    "replay",
    "replay_spec",
]
