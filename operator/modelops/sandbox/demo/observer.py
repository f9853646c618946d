"""Watches the demo's objects through the API, prints what changes, and records the timeline.

It reads what a person would read with ``kubectl get -o yaml`` and ``kubectl get events``: each ModelDeployment's
status (phase, canary weight, gates, each analysis and monitoring check with its owner and thresholds, the Degraded
condition, retraining, history), the ModelRetirement's status, and the Events the operator emits. Nothing here
talks to the operator: what the demo shows is what the API says.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TextIO

from modelops.adapters.kube.adapter import COMPONENT
from modelops.api import ModelDeploymentStatus, ModelRetirementStatus
from modelops.api.deployment import MetricStatus
from modelops.sandbox.node import ApiError, Client, Kind

__all__ = [
    "EVENTS",
    "MODELDEPLOYMENTS",
    "MODELRETIREMENTS",
    "MetricPoint",
    "Observer",
    "PhaseMark",
    "Printer",
    "WeightPoint",
    "format_metric",
]

log = logging.getLogger(__name__)

MODELDEPLOYMENTS = Kind("modelops.io", "v1alpha1", "modeldeployments")
MODELRETIREMENTS = Kind("modelops.io", "v1alpha1", "modelretirements")
EVENTS = Kind("", "v1", "events")
#: the component the operator reports its Events as
OPERATOR_COMPONENT = COMPONENT
#: phases in which a candidate is being rolled out
ACTIVE = frozenset({"Validating", "Progressing", "Paused"})


class Printer:
    """Timestamped lines on a stream: wall-clock time and seconds since the demo started."""

    def __init__(self, out: TextIO, started: float | None = None) -> None:
        self.out = out
        self.started = time.monotonic() if started is None else started
        self._lock = threading.Lock()

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def __call__(self, who: str, text: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        with self._lock:
            print(f"{stamp} +{self.elapsed():6.1f}s  {who:<22} {text}", file=self.out, flush=True)


@dataclass(frozen=True)
class WeightPoint:
    t: float
    owner: str
    #: the candidate (or, for a retirement, the replacement) and its percent of the traffic
    version: str | None
    weight: int


@dataclass(frozen=True)
class MetricPoint:
    t: float
    owner: str
    #: ``analysis`` (a candidate during its canary) or ``monitoring`` (the stable version)
    source: str
    version: str
    name: str
    team: str
    value: float | None
    stable_value: float | None
    min: float | None
    max: float | None
    verdict: str


@dataclass(frozen=True)
class PhaseMark:
    t: float
    owner: str
    phase: str
    version: str | None
    message: str


def format_metric(m: MetricStatus) -> str:
    """``accuracy 0.912 >= 0.8 vs stable 0.731 [data-science] Pass``: a reading against its thresholds."""
    value = "no data" if m.value is None else f"{m.value:.4g}"
    bounds = []
    if m.min is not None:
        bounds.append(f">= {m.min:g}")
    if m.max is not None:
        bounds.append(f"<= {m.max:g}")
    stable = f" vs stable {m.stable_value:.4g}" if m.stable_value is not None else ""
    return f"{m.name} {value} ({' '.join(bounds) or 'no bound'}){stable} [{m.owner or '-'}] {m.verdict}"


@dataclass
class _Seen:
    """The last state printed for one object."""

    phase: str | None = None
    weight: tuple[str | None, int] | None = None
    analysis_at: datetime | None = None
    monitoring_at: datetime | None = None
    gates: dict[tuple[str, str], str] = field(default_factory=dict)
    degraded: str | None = None
    retraining: tuple[str | None, str | None] = (None, None)
    history: set[tuple[str, str, datetime | None]] = field(default_factory=set)
    drained: int | None = None
    removed: int = 0
    exists: bool = False
    candidate: str | None = None
    active: bool = False
    last_weight: int = 0


class Observer:
    """Polls the demo's objects every ``interval`` seconds in a thread; prints changes; keeps the timeline."""

    def __init__(
        self,
        client: Client,
        namespace: str,
        printer: Printer,
        deployments: tuple[str, ...],
        retirements: tuple[str, ...],
        interval: float = 0.5,
    ) -> None:
        self.client, self.namespace, self.printer = client, namespace, printer
        self.deployments, self.retirements = deployments, retirements
        self.interval = interval
        self.weights: list[WeightPoint] = []
        self.metrics: list[MetricPoint] = []
        self.phases: list[PhaseMark] = []
        self.events: list[tuple[float, str, str, str, str]] = []
        self.statuses: dict[str, ModelDeploymentStatus] = {}
        self.retirement_statuses: dict[str, ModelRetirementStatus] = {}
        self._seen: dict[str, _Seen] = {}
        self._events_seen: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="demo-observer", daemon=True)
        self.errors = 0

    # -------------------------------------------------------------------------------------------- control

    def start(self) -> Observer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)

    def poll(self) -> None:
        """One look at every object (the thread calls it; the scenario may too, to see a change at once)."""
        with self._lock:
            for name in self.deployments:
                self._deployment(name)
            for name in self.retirements:
                self._retirement(name)
            self._events()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.poll()
            except Exception as exc:  # the API may be going away at the end; keep watching until stopped
                self.errors += 1
                log.debug("observer poll failed: %s", exc)

    # ------------------------------------------------------------------------------------------- queries

    def status(self, name: str) -> ModelDeploymentStatus | None:
        with self._lock:
            return self.statuses.get(name)

    def retirement(self, name: str) -> ModelRetirementStatus | None:
        with self._lock:
            return self.retirement_statuses.get(name)

    def select(self, predicate: Callable[[MetricPoint], bool]) -> list[MetricPoint]:
        with self._lock:
            return [p for p in self.metrics if predicate(p)]

    def marks(self, owner: str | None = None) -> list[PhaseMark]:
        with self._lock:
            return [m for m in self.phases if owner is None or m.owner == owner]

    def weights_of(self, owner: str, version: str) -> list[int]:
        with self._lock:
            return [w.weight for w in self.weights if w.owner == owner and w.version == version]

    # ------------------------------------------------------------------------------------------- objects

    def _get(self, kind: Kind, name: str) -> Mapping[str, Any] | None:
        try:
            return self.client.get(kind, self.namespace, name)
        except ApiError as exc:
            log.debug("cannot read %s: %s", name, exc)
            return None

    def _deployment(self, name: str) -> None:
        body = self._get(MODELDEPLOYMENTS, name)
        seen = self._seen.setdefault(name, _Seen())
        say = self.printer
        t = say.elapsed()
        if body is None:
            if seen.exists:
                say(name, "ModelDeployment deleted")
                self.phases.append(PhaseMark(t, name, "Deleted", None, "deleted"))
                seen.exists = False
            return
        seen.exists = True
        st = ModelDeploymentStatus.model_validate(body.get("status") or {})
        self.statuses[name] = st
        version = st.candidate_version or st.stable_version

        if st.phase != seen.phase:
            say(name, f"phase {seen.phase or '-'} -> {st.phase}  ({st.message or 'no message'})")
            self.phases.append(PhaseMark(t, name, str(st.phase), version, st.message))
            seen.phase = st.phase

        for gate in st.gates:
            key = (gate.version, gate.name)
            if seen.gates.get(key) != gate.phase:
                seen.gates[key] = gate.phase
                if gate.phase in ("Passed", "Failed"):
                    say(name, f"gate {gate.name} on {gate.version}: {gate.phase} - {gate.message}")
                elif gate.phase == "Running":
                    say(name, f"gate {gate.name} on {gate.version}: job {gate.job_name} running")

        if st.candidate_version is not None:
            seen.candidate = st.candidate_version
        weight = (st.candidate_version, st.canary_weight)
        if weight != seen.weight:
            if st.candidate_version is not None and st.canary_weight:
                say(name, f"weight: {st.candidate_version} {st.canary_weight}%, {st.stable_version} "
                    f"{100 - st.canary_weight}%")  # fmt: skip
            elif seen.weight is not None and seen.weight[1]:
                say(name, f"weight: {st.stable_version} 100%")
            seen.weight = weight
        # The timeline draws a canary while it runs, down to where it ended (0 when rolled back); not the first
        # version's validation, which has no stable version to share traffic with.
        active = st.phase in ACTIVE and st.stable_version is not None
        if active:
            seen.last_weight = st.canary_weight
            self.weights.append(WeightPoint(t, name, st.candidate_version, st.canary_weight))
        elif seen.active:  # the canary ended: all the traffic when promoted, none otherwise
            final = 100 if st.phase == "Promoted" else 0
            self.weights.append(WeightPoint(t, name, seen.candidate, final))
        seen.active = active

        if st.analysis.last_check_at is not None and st.analysis.last_check_at != seen.analysis_at:
            seen.analysis_at = st.analysis.last_check_at
            a = st.analysis
            candidate = st.candidate_version or seen.candidate or "?"
            pct = st.canary_weight if st.phase in ACTIVE else seen.last_weight
            head = (
                f"analysis of {candidate} at {pct}% "
                f"(passed {a.passed_checks}, failed {a.failed_checks}, unavailable {a.unavailable_checks}):"
            )
            say(name, head)
            for m in a.metrics:
                say(name, f"    {format_metric(m)}")
                self._metric(t, name, "analysis", candidate, m)

        mon = st.monitoring
        if mon.last_check_at is not None and mon.last_check_at != seen.monitoring_at and st.stable_version:
            seen.monitoring_at = mon.last_check_at
            say(name, f"monitoring of {st.stable_version} ({mon.consecutive_failures} failed checks in a row):")
            for m in mon.metrics:
                say(name, f"    {format_metric(m)}")
                self._metric(t, name, "monitoring", st.stable_version, m)

        degraded = next((c for c in st.conditions if c.type == "Degraded"), None)
        if degraded is not None and degraded.status != seen.degraded:
            if seen.degraded is not None or degraded.status == "True":
                say(name, f"condition Degraded={degraded.status} ({degraded.reason}): {degraded.message}")
                self.phases.append(
                    PhaseMark(t, name, f"Degraded={degraded.status}", st.stable_version, degraded.message)
                )
            seen.degraded = degraded.status

        r = st.retraining
        if (r.phase, r.job_name) != seen.retraining and r.phase is not None:
            say(name, f"retraining {r.phase} ({r.reason or 'no reason'}, job {r.job_name}): {r.message}")
            self.phases.append(PhaseMark(t, name, f"Retraining{r.phase}", r.produced_version, r.message))
            seen.retraining = (r.phase, r.job_name)

        for entry in st.history:
            done = (entry.version, str(entry.outcome), entry.finished_at)
            if done not in seen.history:
                seen.history.add(done)
                say(name, f"history: {entry.version} {entry.outcome} - {entry.reason}")

    def _metric(self, t: float, owner: str, source: str, version: str, m: MetricStatus) -> None:
        self.metrics.append(
            MetricPoint(t, owner, source, version, m.name, m.owner, m.value, m.stable_value, m.min, m.max, m.verdict)
        )

    def _retirement(self, name: str) -> None:
        body = self._get(MODELRETIREMENTS, name)
        if body is None:
            return
        seen = self._seen.setdefault(f"mret/{name}", _Seen())
        say, t = self.printer, self.printer.elapsed()
        st = ModelRetirementStatus.model_validate(body.get("status") or {})
        self.retirement_statuses[name] = st
        replacement = (body.get("spec") or {}).get("replacement")
        if st.phase != seen.phase:
            say(name, f"phase {seen.phase or '-'} -> {st.phase}  ({st.message or 'no message'})")
            self.phases.append(PhaseMark(t, name, str(st.phase), st.version, st.message))
            seen.phase = st.phase
        if st.drained_weight != seen.drained:
            if seen.drained is not None:
                say(name, f"drain: {replacement} {st.drained_weight}%, {st.version} {100 - st.drained_weight}%")
            seen.drained = st.drained_weight
        self.weights.append(WeightPoint(t, name, replacement, st.drained_weight))
        for removed in st.removed[seen.removed :]:
            say(name, f"removed {removed.kind} {removed.name}")
        seen.removed = len(st.removed)

    def _events(self) -> None:
        try:
            items = self.client.list(EVENTS, self.namespace)
        except ApiError as exc:
            log.debug("cannot list events: %s", exc)
            return
        fresh = []
        for ev in items:
            # A repeat of the same event only bumps its count (an action redone after a conflicting status write,
            # say): it is printed once.
            key = str((ev.get("metadata") or {}).get("name"))
            if key in self._events_seen:
                continue
            self._events_seen.add(key)
            # The operator's Events are about its own objects; the cluster's controllers report on theirs
            # (Pods scheduled, ReplicaSets scaled, ...), which is kubectl's to show, not the lifecycle's.
            if OPERATOR_COMPONENT in ((ev.get("source") or {}).get("component"), ev.get("reportingComponent")):
                fresh.append(ev)
        fresh.sort(key=lambda ev: str(ev.get("lastTimestamp") or ""))
        t = self.printer.elapsed()
        for ev in fresh:
            involved = ev.get("involvedObject") or {}
            who = str(involved.get("name") or "?")
            kind, reason, message = str(ev.get("type") or ""), str(ev.get("reason") or ""), str(ev.get("message") or "")
            self.events.append((t, who, kind, reason, message))
            self.printer(who, f"event {kind} {reason}: {message}")
