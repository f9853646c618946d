"""Judging a gate's JSON results against its checks, its fairness audit and the stable version's last results.

A gate Job reports ``{"metrics": {"accuracy": 0.75, "auc": {"macro": 0.8}}, "groups": {"<group>": {"<result>":
rate}}}``. A check's ``result`` is a dotted path into ``metrics``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from modelops.api.deployment import Fairness, Gate, GateCheck

from .analysis import TOLERANCE, degradation


@dataclass(frozen=True, slots=True)
class GateJudgement:
    """The verdict on one gate's results; ``not_judged`` the comparisons with the stable version not made, and why."""

    passed: bool
    message: str
    not_judged: tuple[str, ...] = ()


def lookup(results: Mapping[str, Any] | None, path: str) -> float | None:
    """The number at dotted ``path`` under ``results["metrics"]``; None when missing or not a number.

    >>> lookup({"metrics": {"auc": {"macro": 0.8}, "accuracy": 0.7}}, "auc.macro")
    0.8
    >>> lookup({"metrics": {"ok": True}}, "ok") is None
    True
    """
    node: Any = (results or {}).get("metrics")
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    if isinstance(node, bool) or not isinstance(node, int | float):
        return None
    return float(node)


def flatten_metrics(results: Mapping[str, Any] | None) -> dict[str, float]:
    """Every number under ``results["metrics"]`` by dotted path: what a later candidate is compared with.

    >>> flatten_metrics({"metrics": {"accuracy": 0.7, "auc": {"macro": 0.8}, "ok": True, "note": "x"}})
    {'accuracy': 0.7, 'auc.macro': 0.8}
    """
    out: dict[str, float] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, Mapping):
            for key, value in node.items():
                walk(value, f"{prefix}{key}.")
        elif isinstance(node, int | float) and not isinstance(node, bool):
            out[prefix[:-1]] = float(node)

    walk((results or {}).get("metrics"), "")
    return out


def _no_baseline(check: GateCheck, baseline: Mapping[str, float] | None, stable_version: str | None) -> str:
    """Why a check's comparison with the stable version cannot be made."""
    if baseline is None:
        if stable_version is None:
            return "no stable version yet"
        return f"{stable_version} has no results of this gate"
    return f"the results of {stable_version or 'the stable version'} from this gate have no {check.result}"


def _check(
    check: GateCheck, results: Mapping[str, Any], baseline: Mapping[str, float] | None, stable_version: str | None
) -> tuple[str | None, str | None]:
    """``(problem, not_judged)``: what fails the check, or the comparison that could not be made (else both None)."""
    value = lookup(results, check.result)
    if value is None:
        return f"{check.result}: missing from the results", None
    if check.min is not None and value < check.min - TOLERANCE:
        return f"{check.result}: {value:g} < min {check.min:g}", None
    if check.max is not None and value > check.max + TOLERANCE:
        return f"{check.result}: {value:g} > max {check.max:g}", None
    if check.baseline is None:
        return None, None
    previous = baseline.get(check.result) if baseline is not None else None
    if previous is None:
        why = _no_baseline(check, baseline, stable_version)
        if check.baseline.required:
            return f"{check.result}: no baseline to compare with ({why}) and baseline.required is set", None
        bounded = " within its bounds, but" if check.min is not None or check.max is not None else ""
        return None, f"{check.result}: {value:g}{bounded} not compared with the stable version (no baseline: {why})"
    worse = degradation(check.improves_upwards(), value, previous)
    if worse > check.baseline.max_degradation + TOLERANCE:
        return (
            f"{check.result}: {value:g} is {worse:g} worse than the stable version ({previous:g}),"
            f" max degradation {check.baseline.max_degradation:g}"
        ), None
    return None, None


def fairness_rates(results: Mapping[str, Any], result: str) -> dict[str, float]:
    """Per-group rates of ``result``: ``groups.<group>.<result>``; groups without a number are skipped."""
    groups = results.get("groups")
    rates: dict[str, float] = {}
    if not isinstance(groups, Mapping):
        return rates
    for group, values in groups.items():
        if isinstance(values, Mapping):
            rate = values.get(result)
            if isinstance(rate, int | float) and not isinstance(rate, bool):
                rates[str(group)] = float(rate)
    return rates


def audit_fairness(fairness: Fairness, results: Mapping[str, Any]) -> str | None:
    """A problem message, or None when the per-group rates are fair enough.

    The ratio is smallest over largest rate (all rates 0 count as equal); the difference is largest minus smallest.

    >>> f = Fairness(result="positiveRate", minRatio=0.8)
    >>> audit_fairness(f, {"groups": {"a": {"positiveRate": 0.5}, "b": {"positiveRate": 0.45}}}) is None
    True
    >>> audit_fairness(f, {"groups": {"a": {"positiveRate": 0.5}, "b": {"positiveRate": 0.3}}})
    'fairness positiveRate: ratio 0.6 (b 0.3 / a 0.5) < minRatio 0.8'
    """
    rates = fairness_rates(results, fairness.result)
    if len(rates) < 2:
        return f"fairness {fairness.result}: needs rates of at least two groups, got {sorted(rates)}"
    low = min(rates, key=lambda g: (rates[g], g))
    high = max(rates, key=lambda g: (rates[g], g))
    lo, hi = rates[low], rates[high]
    ratio = 1.0 if hi == 0 else lo / hi
    if fairness.min_ratio is not None and ratio < fairness.min_ratio - TOLERANCE:
        return (
            f"fairness {fairness.result}: ratio {ratio:.3g} ({low} {lo:g} / {high} {hi:g})"
            f" < minRatio {fairness.min_ratio:g}"
        )
    if fairness.max_difference is not None and hi - lo > fairness.max_difference + TOLERANCE:
        return (
            f"fairness {fairness.result}: difference {hi - lo:.3g} ({high} {hi:g} - {low} {lo:g})"
            f" > maxDifference {fairness.max_difference:g}"
        )
    return None


def judge_gate(
    gate: Gate,
    results: Mapping[str, Any] | None,
    baseline: Mapping[str, float] | None,
    *,
    stable_version: str | None = None,
) -> GateJudgement:
    """Pass when every check and the fairness audit pass; say exactly what was judged.

    ``baseline`` is the numbers ``stable_version`` reported from this gate (``flatten_metrics``). A comparison with
    it that cannot be made (no baseline: the first version, a gate the stable version did not pass; or no such
    result in it) is not a pass: it is listed in ``not_judged`` and in the message, and the check counts as passed
    in full only when it was compared. With ``baseline.required`` it fails the gate instead.

    >>> gate = Gate.model_validate({"name": "g", "template": {}, "checks": [
    ...     {"result": "accuracy", "min": 0.6, "baseline": {"maxDegradation": 0.05}}, {"result": "auc", "min": 0.5}]})
    >>> judge_gate(gate, {"metrics": {"accuracy": 0.7, "auc": 0.8}}, {"accuracy": 0.7}).message
    '2 checks passed'
    >>> print(*judge_gate(gate, {"metrics": {"accuracy": 0.7, "auc": 0.8}}, None).message.split("; "), sep="\\n")
    1 of 2 checks passed in full
    accuracy: 0.7 within its bounds, but not compared with the stable version (no baseline: no stable version yet)
    """
    if not isinstance(results, Mapping):
        return GateJudgement(False, "the gate reported no JSON results")
    problems: list[str] = []
    not_judged: list[str] = []
    passed = 0
    for check in gate.checks:
        problem, skipped = _check(check, results, baseline, stable_version)
        if problem:
            problems.append(problem)
        elif skipped:
            not_judged.append(skipped)
        else:
            passed += 1
    if gate.fairness is not None:
        problem = audit_fairness(gate.fairness, results)
        if problem:
            problems.append(problem)
    if problems:
        return GateJudgement(False, "; ".join(problems + not_judged), tuple(not_judged))
    total = len(gate.checks)
    count = (
        f"{passed} of {total} checks passed in full"
        if not_judged
        else f"{total} check{'' if total == 1 else 's'} passed"
    )
    message = "; ".join([count + (", fair" if gate.fairness else ""), *not_judged])
    return GateJudgement(True, message, tuple(not_judged))
