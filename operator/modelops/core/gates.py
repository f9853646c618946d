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
    passed: bool
    message: str


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


def _check(check: GateCheck, results: Mapping[str, Any], baseline: Mapping[str, float] | None) -> str | None:
    value = lookup(results, check.result)
    if value is None:
        return f"{check.result}: missing from the results"
    if check.min is not None and value < check.min - TOLERANCE:
        return f"{check.result}: {value:g} < min {check.min:g}"
    if check.max is not None and value > check.max + TOLERANCE:
        return f"{check.result}: {value:g} > max {check.max:g}"
    if check.baseline is not None and baseline is not None:
        previous = baseline.get(check.result)
        if previous is not None:
            worse = degradation(check.improves_upwards(), value, previous)
            if worse > check.baseline.max_degradation + TOLERANCE:
                return (
                    f"{check.result}: {value:g} is {worse:g} worse than the stable version ({previous:g}),"
                    f" max degradation {check.baseline.max_degradation:g}"
                )
    return None


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


def judge_gate(gate: Gate, results: Mapping[str, Any] | None, baseline: Mapping[str, float] | None) -> GateJudgement:
    """Pass when every check and the fairness audit pass.

    ``baseline`` is the stable version's numbers from this gate (``flatten_metrics``); without it (first version,
    new gate) the baseline comparisons are skipped, the absolute thresholds still apply.
    """
    if not isinstance(results, Mapping):
        return GateJudgement(False, "the gate reported no JSON results")
    problems = [p for p in (_check(c, results, baseline) for c in gate.checks) if p]
    if gate.fairness is not None:
        problem = audit_fairness(gate.fairness, results)
        if problem:
            problems.append(problem)
    if problems:
        return GateJudgement(False, "; ".join(problems))
    return GateJudgement(True, f"{len(gate.checks)} checks passed" + (", fair" if gate.fairness else ""))
