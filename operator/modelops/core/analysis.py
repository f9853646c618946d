"""Judging one metric: thresholds, and ``baseline.maxDegradation`` against the stable version's value.

Like Argo Rollouts' ``assessMetricStatus``: a pure function of numbers. "No data" and query errors are verdicts
of their own, counted apart from failures.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum

from modelops.api.common import Metric
from modelops.api.deployment import MetricStatus, Verdict

from .readings import Reading, ReadingKind

#: Slack for float rounding: a value exactly on a bound (0.7 - 0.65 vs 0.05) passes.
TOLERANCE = 1e-9


class CheckOutcome(StrEnum):
    """One analysis run over all metrics: any failure fails it; else any missing reading makes it unavailable."""

    PASS = "Pass"
    FAIL = "Fail"
    UNAVAILABLE = "Unavailable"


def _unavailable(reading: Reading, who: str) -> tuple[Verdict, str]:
    verdict = Verdict.ERROR if reading.kind is ReadingKind.ERROR else Verdict.NO_DATA
    return verdict, f"{who}: {reading.message or verdict.value}"


def degradation(metric_improves_upwards: bool, candidate: float, stable: float) -> float:
    """How much worse the candidate is than the stable version, in the metric's units (negative: better).

    >>> round(degradation(True, 0.65, 0.70), 6)   # accuracy: higher is better
    0.05
    >>> degradation(False, 120.0, 100.0)          # latency: lower is better
    20.0
    """
    return stable - candidate if metric_improves_upwards else candidate - stable


def judge_metric(
    metric: Metric, candidate: Reading, stable: Reading | None, now: datetime, *, subject: str = "candidate"
) -> MetricStatus:
    """The verdict on one metric's reading for the candidate (or, in monitoring, the stable version).

    ``stable`` is only used when the metric has a ``baseline``: the candidate fails when it is worse than the
    stable version by more than ``maxDegradation``; when the stable reading is missing the check cannot be made
    and the verdict is that reading's (NoData or Error). ``subject`` names the reading in the message of a
    missing one (``candidate: no data``; monitoring passes the metric's name).
    """
    status = MetricStatus(
        name=metric.name,
        owner=metric.owner,
        min=metric.min,
        max=metric.max,
        verdict=Verdict.PASS,
        at=now,
    )
    if not candidate.available or candidate.value is None:
        status.verdict, status.message = _unavailable(candidate, subject)
        return status
    value = candidate.value
    status.value = value
    problems: list[str] = []
    if metric.min is not None and value < metric.min - TOLERANCE:
        problems.append(f"{value:g} < min {metric.min:g}")
    if metric.max is not None and value > metric.max + TOLERANCE:
        problems.append(f"{value:g} > max {metric.max:g}")
    if metric.baseline is not None:
        if stable is None or not stable.available or stable.value is None:
            if not problems:
                status.verdict, status.message = _unavailable(stable or Reading.no_data("not observed"), "stable")
                return status
        else:
            status.stable_value = stable.value
            worse = degradation(metric.improves_upwards(), value, stable.value)
            if worse > metric.baseline.max_degradation + TOLERANCE:
                limit = metric.baseline.max_degradation
                problems.append(f"{worse:g} worse than stable ({stable.value:g}), max degradation {limit:g}")
    if problems:
        status.verdict = Verdict.FAIL
        status.message = f"{metric.name}: " + "; ".join(problems)
    else:
        status.message = f"{metric.name}: {value:g} ok"
    return status


def check_outcome(results: Sequence[MetricStatus]) -> CheckOutcome:
    """Fail if any metric failed, Unavailable if any had no reading, else Pass (an empty check passes)."""
    verdicts = {r.verdict for r in results}
    if Verdict.FAIL in verdicts:
        return CheckOutcome.FAIL
    if verdicts & {Verdict.NO_DATA, Verdict.ERROR}:
        return CheckOutcome.UNAVAILABLE
    return CheckOutcome.PASS


def summary(results: Sequence[MetricStatus], *verdicts: Verdict) -> str:
    """The messages of the metrics with one of ``verdicts``, for events and status."""
    return "; ".join(r.message for r in results if r.verdict in verdicts)
