"""The operator's own Prometheus metrics: what dashboards and alerts read about rollouts and retirements.

The names below are a contract (the Helm chart's PrometheusRule and Grafana dashboard query them; their test
imports :data:`METRIC_NAMES`). Everything lives in a private ``CollectorRegistry`` so that tests can create as
many :class:`Telemetry` objects as they like and nothing else in the process leaks into ``/metrics``.

Per-object series are tracked, so that a series for a metric, phase or bound that no longer applies is removed
on the next observation, and all of an object's series go when it is deleted (:meth:`Telemetry.forget`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, start_http_server

from modelops import __version__
from modelops.api import (
    ModelDeploymentSpec,
    ModelDeploymentStatus,
    ModelRetirementStatus,
    Phase,
    RetirementPhase,
    Verdict,
    parse_duration,
)

__all__ = [
    "METRIC_NAMES",
    "ROLLOUT_OUTCOMES",
    "MetricsServer",
    "Telemetry",
]

#: Every metric family the operator exports, by the name PromQL uses (counters with ``_total``; the histogram
#: exports ``_bucket``, ``_sum`` and ``_count`` series). prometheus-client also adds a ``<name>_created`` series
#: (the start time) to counters and the histogram; dashboards and alerts do not use it.
METRIC_NAMES: tuple[str, ...] = (
    "modelops_rollout_phase",
    "modelops_canary_weight",
    "modelops_metric_value",
    "modelops_metric_threshold",
    "modelops_analysis_checks_total",
    "modelops_rollouts_total",
    "modelops_degraded",
    "modelops_monitoring_no_data",
    "modelops_rollout_last_progress_timestamp_seconds",
    "modelops_rollout_progress_deadline_seconds",
    "modelops_retirement_phase",
    "modelops_reconcile_duration_seconds",
    "modelops_reconcile_errors_total",
    "modelops_build_info",
)

ROLLOUT_OUTCOMES = ("Promoted", "RolledBack", "Failed", "Aborted", "Superseded")
Outcome = Literal["Promoted", "RolledBack", "Failed", "Aborted", "Superseded"]
Target = Literal["candidate", "stable", "monitoring"]

_DEPLOYMENT = "ModelDeployment"
_RETIREMENT = "ModelRetirement"

_Key = tuple[str, str]  # (namespace, name)
_Labels = tuple[str, ...]  # label values after namespace and name
_M = TypeVar("_M", Gauge, Counter)


class _PerObject(Generic[_M]):
    """A labelled metric whose first two labels are namespace and name, remembering which series each object has."""

    def __init__(self, metric: _M, kind: str) -> None:
        self.metric: _M = metric
        self.kind = kind
        self._series: dict[_Key, set[_Labels]] = {}

    def child(self, key: _Key, labels: _Labels = ()) -> _M:
        self._series.setdefault(key, set()).add(labels)
        child: _M = self.metric.labels(*key, *labels)
        return child

    def keep_only(self, key: _Key, keep: Iterable[_Labels]) -> None:
        """Remove the object's series not in ``keep`` (a metric dropped from the spec, an old phase label)."""
        wanted = set(keep)
        for labels in self._series.get(key, set()) - wanted:
            self._remove(key, labels)

    def forget(self, key: _Key) -> None:
        for labels in list(self._series.get(key, set())):
            self._remove(key, labels)
        self._series.pop(key, None)

    def _remove(self, key: _Key, labels: _Labels) -> None:
        with suppress(KeyError):
            self.metric.remove(*key, *labels)
        self._series.get(key, set()).discard(labels)


@dataclass
class MetricsServer:
    """A running ``/metrics`` endpoint (prometheus-client's WSGI server in a daemon thread)."""

    server: WSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return self.server.server_port

    def shutdown(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


class Telemetry:
    """The operator's metrics, in their own registry. Thread-safe: kopf handlers call it from several threads."""

    def __init__(self, registry: CollectorRegistry | None = None, version: str = __version__) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self._lock = threading.Lock()
        r = self.registry
        ns_name = ["namespace", "name"]
        self.rollout_phase = Gauge(
            "modelops_rollout_phase",
            "1 for the ModelDeployment's current phase, 0 for the others",
            [*ns_name, "phase"],
            registry=r,
        )
        self.canary_weight = Gauge(
            "modelops_canary_weight", "percent of traffic sent to the candidate", ns_name, registry=r
        )
        self.metric_value = Gauge(
            "modelops_metric_value",
            "last reading of an analysis or monitoring metric (target: candidate, stable or monitoring)",
            [*ns_name, "metric", "owner", "target"],
            registry=r,
        )
        self.metric_threshold = Gauge(
            "modelops_metric_threshold",
            "a metric's bound from the spec (bound: min or max)",
            [*ns_name, "metric", "bound"],
            registry=r,
        )
        self.analysis_checks = Counter(
            "modelops_analysis_checks",
            "analysis checks by verdict (Pass, Fail, NoData, Error)",
            [*ns_name, "metric", "result"],
            registry=r,
        )
        self.rollouts = Counter(
            "modelops_rollouts",
            "finished rollouts by outcome (Promoted, RolledBack, Failed, Aborted, Superseded)",
            [*ns_name, "outcome"],
            registry=r,
        )
        self.degraded = Gauge("modelops_degraded", "1 when the Degraded condition is True", ns_name, registry=r)
        self.monitoring_no_data = Gauge(
            "modelops_monitoring_no_data",
            "1 when the Degraded condition is Unknown with reason NoData: monitoring has had no data for degradedAfter"
            " checks in a row, so the stable version cannot be judged",
            ns_name,
            registry=r,
        )
        self.last_progress = Gauge(
            "modelops_rollout_last_progress_timestamp_seconds",
            "when the rollout last advanced (unix time)",
            ns_name,
            registry=r,
        )
        self.progress_deadline = Gauge(
            "modelops_rollout_progress_deadline_seconds",
            "spec.rollout.progressDeadline in seconds",
            ns_name,
            registry=r,
        )
        self.retirement_phase = Gauge(
            "modelops_retirement_phase",
            "1 for the ModelRetirement's current phase, 0 for the others",
            [*ns_name, "phase"],
            registry=r,
        )
        self.reconcile_duration = Histogram(
            "modelops_reconcile_duration_seconds",
            "time spent in one reconciliation, by kind",
            ["kind"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
            registry=r,
        )
        self.reconcile_errors = Counter(
            "modelops_reconcile_errors", "reconciliations that raised, by kind", ["kind"], registry=r
        )
        self.build_info = Gauge(
            "modelops_build_info", "always 1; the version label says which", ["version"], registry=r
        )
        self.build_info.labels(version).set(1)

        d, t = _DEPLOYMENT, _RETIREMENT
        self._phase = _PerObject(self.rollout_phase, d)
        self._weight = _PerObject(self.canary_weight, d)
        self._value = _PerObject(self.metric_value, d)
        self._threshold = _PerObject(self.metric_threshold, d)
        self._checks = _PerObject(self.analysis_checks, d)
        self._rollouts = _PerObject(self.rollouts, d)
        self._degraded = _PerObject(self.degraded, d)
        self._no_data = _PerObject(self.monitoring_no_data, d)
        self._last_progress = _PerObject(self.last_progress, d)
        self._deadline = _PerObject(self.progress_deadline, d)
        self._retirement = _PerObject(self.retirement_phase, t)
        self._all: list[_PerObject[Gauge] | _PerObject[Counter]] = [
            self._phase,
            self._weight,
            self._value,
            self._threshold,
            self._checks,
            self._rollouts,
            self._degraded,
            self._no_data,
            self._last_progress,
            self._deadline,
            self._retirement,
        ]

    # ------------------------------------------------------------------------------------------ objects

    def observe_deployment(
        self,
        namespace: str,
        name: str,
        status: ModelDeploymentStatus | Mapping[str, Any],
        spec: ModelDeploymentSpec | Mapping[str, Any] | None = None,
    ) -> None:
        """Set the gauges of one ModelDeployment from its status (and spec, for thresholds and the deadline).

        Metric values come from the status' last readings: ``analysis.metrics`` give ``candidate`` (and
        ``stable`` where a baseline was read), ``monitoring.metrics`` give ``monitoring``. Thresholds come from the
        spec's analysis and monitoring metrics; where both name the same metric, the analysis bounds win.
        ``status`` and ``spec`` may be the models or the raw (camelCase) dicts kopf hands over.
        """
        if not isinstance(status, ModelDeploymentStatus):
            status = ModelDeploymentStatus.model_validate(status)
        if spec is not None and not isinstance(spec, ModelDeploymentSpec):
            spec = ModelDeploymentSpec.model_validate(spec)
        key = (namespace, name)
        with self._lock:
            for phase in Phase:
                self._phase.child(key, (phase.value,)).set(1 if status.phase == phase.value else 0)
            self._weight.child(key).set(status.canary_weight)

            values: dict[_Labels, float] = {}
            for m in status.analysis.metrics:
                if m.value is not None:
                    values[(m.name, m.owner, "candidate")] = m.value
                if m.stable_value is not None:
                    values[(m.name, m.owner, "stable")] = m.stable_value
            for m in status.monitoring.metrics:
                if m.value is not None:
                    values[(m.name, m.owner, "monitoring")] = m.value
            for labels, value in values.items():
                self._value.child(key, labels).set(value)
            self._value.keep_only(key, values)

            degraded = next((c for c in status.conditions if c.type == "Degraded"), None)
            self._degraded.child(key).set(1 if degraded is not None and degraded.status == "True" else 0)
            no_data = degraded is not None and (degraded.status, degraded.reason) == ("Unknown", "NoData")
            self._no_data.child(key).set(1 if no_data else 0)

            progress = status.last_progress_at or status.step_started_at or status.rollout_started_at
            if progress is not None:
                self._last_progress.child(key).set(progress.timestamp())
            else:
                self._last_progress.keep_only(key, ())

            if spec is not None:
                bounds: dict[_Labels, float] = {}
                metrics = [*(spec.monitoring.metrics if spec.monitoring else []), *spec.rollout.analysis.metrics]
                for metric in metrics:
                    for bound in ("min", "max"):
                        bounds.pop((metric.name, bound), None)
                    if metric.min is not None:
                        bounds[(metric.name, "min")] = metric.min
                    if metric.max is not None:
                        bounds[(metric.name, "max")] = metric.max
                for labels, value in bounds.items():
                    self._threshold.child(key, labels).set(value)
                self._threshold.keep_only(key, bounds)
                deadline = parse_duration(spec.rollout.progress_deadline).total_seconds()
                self._deadline.child(key).set(deadline)

    def observe_retirement(self, namespace: str, name: str, status: ModelRetirementStatus | Mapping[str, Any]) -> None:
        """Set the phase gauge of one ModelRetirement (the model or the raw status dict)."""
        if not isinstance(status, ModelRetirementStatus):
            status = ModelRetirementStatus.model_validate(status)
        key = (namespace, name)
        with self._lock:
            for phase in RetirementPhase:
                self._retirement.child(key, (phase.value,)).set(1 if status.phase == phase.value else 0)

    def record_check(self, namespace: str, name: str, metric: str, result: Verdict | str) -> None:
        """Count one analysis check of one metric (result: Pass, Fail, NoData or Error)."""
        verdict = Verdict(result).value
        with self._lock:
            self._checks.child((namespace, name), (metric, verdict)).inc()

    def record_rollout(self, namespace: str, name: str, outcome: Outcome | str) -> None:
        """Count one finished rollout."""
        if outcome not in ROLLOUT_OUTCOMES:
            raise ValueError(f"unknown rollout outcome {outcome!r}; expected one of {ROLLOUT_OUTCOMES}")
        with self._lock:
            self._rollouts.child((namespace, name), (outcome,)).inc()

    def forget(self, namespace: str, name: str, *, kind: str | None = None) -> None:
        """Remove every series of a deleted object. ``kind`` (ModelDeployment or ModelRetirement) limits it to the
        series of that kind, since a retirement may share its name with a deployment."""
        with self._lock:
            for family in self._all:
                if kind is None or family.kind == kind:
                    family.forget((namespace, name))

    # ------------------------------------------------------------------------------------------ reconciles

    def observe_reconcile(self, kind: str, seconds: float, *, error: bool = False) -> None:
        self.reconcile_duration.labels(kind).observe(seconds)
        if error:
            self.reconcile_errors.labels(kind).inc()

    @contextmanager
    def reconcile(self, kind: str) -> Iterator[None]:
        """Time a reconciliation; an exception counts as an error and propagates."""
        start = time.monotonic()
        failed = True
        try:
            yield
            failed = False
        finally:
            self.observe_reconcile(kind, time.monotonic() - start, error=failed)

    # ------------------------------------------------------------------------------------------ exposition

    def exposition(self) -> bytes:
        """The text format, as ``/metrics`` serves it."""
        return generate_latest(self.registry)

    def serve(self, port: int, addr: str = "0.0.0.0") -> MetricsServer:
        """Serve ``/metrics`` in a daemon thread; ``port=0`` picks a free port (see ``MetricsServer.port``).

        The default address is every interface because Prometheus scrapes the operator's pod from outside it.
        """
        server, thread = start_http_server(port, addr=addr, registry=self.registry)
        return MetricsServer(server, thread)
