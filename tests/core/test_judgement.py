"""Verdicts on one metric and on a gate's JSON results."""

from __future__ import annotations

from typing import Any

import pytest

from modelops.api import Metric
from modelops.api.deployment import Fairness, Gate, Verdict
from modelops.core import Reading, audit_fairness, check_outcome, judge_gate, judge_metric
from modelops.core.analysis import CheckOutcome

from .builders import T0

ACCURACY = Metric(name="accuracy", query="q", min=0.6, baseline={"maxDegradation": 0.05})
LATENCY = Metric(name="latency", query="q", max=0.5, baseline={"maxDegradation": 0.1})

METRIC_TABLE = [
    ("value_within_bounds_passes", ACCURACY, Reading.of(0.7), Reading.of(0.7), Verdict.PASS),
    ("value_below_min_fails", ACCURACY, Reading.of(0.55), Reading.of(0.56), Verdict.FAIL),
    ("degradation_exactly_at_the_limit_passes", ACCURACY, Reading.of(0.65), Reading.of(0.70), Verdict.PASS),
    ("degradation_past_the_limit_fails", ACCURACY, Reading.of(0.64), Reading.of(0.70), Verdict.FAIL),
    ("better_than_stable_passes", ACCURACY, Reading.of(0.9), Reading.of(0.7), Verdict.PASS),
    ("lower_is_better_metric_fails_when_higher", LATENCY, Reading.of(0.45), Reading.of(0.3), Verdict.FAIL),
    ("lower_is_better_metric_passes_when_lower", LATENCY, Reading.of(0.2), Reading.of(0.3), Verdict.PASS),
    ("no_data_is_its_own_verdict", ACCURACY, Reading.no_data(), Reading.of(0.7), Verdict.NO_DATA),
    ("query_error_is_its_own_verdict", ACCURACY, Reading.error("503"), Reading.of(0.7), Verdict.ERROR),
    ("stable_without_data_is_no_data", ACCURACY, Reading.of(0.7), Reading.no_data(), Verdict.NO_DATA),
    ("stable_error_is_error", ACCURACY, Reading.of(0.7), Reading.error("x"), Verdict.ERROR),
    ("threshold_failure_wins_over_missing_stable", ACCURACY, Reading.of(0.5), Reading.no_data(), Verdict.FAIL),
]


@pytest.mark.parametrize(
    ("metric", "candidate", "stable", "verdict"), [pytest.param(*c[1:], id=c[0]) for c in METRIC_TABLE]
)
def test_judge_metric(metric: Metric, candidate: Reading, stable: Reading, verdict: Verdict) -> None:
    result = judge_metric(metric, candidate, stable, T0)
    assert result.verdict == verdict, result.message
    assert result.at == T0
    assert result.name == metric.name


@pytest.mark.parametrize(
    ("verdicts", "outcome"),
    [
        ([], CheckOutcome.PASS),
        ([Verdict.PASS, Verdict.PASS], CheckOutcome.PASS),
        ([Verdict.PASS, Verdict.NO_DATA], CheckOutcome.UNAVAILABLE),
        ([Verdict.ERROR, Verdict.FAIL], CheckOutcome.FAIL),
    ],
)
def test_check_outcome(verdicts: list[Verdict], outcome: CheckOutcome) -> None:
    from modelops.api.deployment import MetricStatus

    assert check_outcome([MetricStatus(name="m", verdict=v) for v in verdicts]) == outcome


GATE = Gate.model_validate(
    {
        "name": "holdout",
        "template": {},
        "checks": [
            {"result": "accuracy", "min": 0.65, "baseline": {"maxDegradation": 0.02}},
            {"result": "latency.p99", "max": 0.3},
        ],
        "fairness": {"result": "positiveRate", "maxDifference": 0.1},
    }
)
FAIR = {"a": {"positiveRate": 0.5}, "b": {"positiveRate": 0.45}}


def results(accuracy: Any = 0.7, p99: Any = 0.2, groups: Any = FAIR) -> dict[str, Any]:
    return {"metrics": {"accuracy": accuracy, "latency": {"p99": p99}}, "groups": groups}


GATE_TABLE = [
    ("good_results_pass", results(), None, True, "2 checks passed"),
    ("below_min_fails", results(accuracy=0.6), None, False, "accuracy: 0.6 < min 0.65"),
    ("nested_result_above_max_fails", results(p99=0.4), None, False, "latency.p99: 0.4 > max 0.3"),
    ("missing_result_fails", {"metrics": {"accuracy": 0.7}, "groups": FAIR}, None, False, "missing"),
    ("non_numeric_result_fails", results(accuracy="high"), None, False, "missing"),
    ("boolean_is_not_a_number", results(accuracy=True), None, False, "missing"),
    ("worse_than_stable_fails", results(accuracy=0.66), {"accuracy": 0.70}, False, "worse than the stable"),
    ("close_to_stable_passes", results(accuracy=0.69), {"accuracy": 0.70}, True, "passed"),
    ("no_baseline_passes_on_thresholds_but_says_so", results(accuracy=0.66), None, True, "not compared"),
    (
        "unfair_difference_fails",
        results(groups={"a": {"positiveRate": 0.6}, "b": {"positiveRate": 0.4}}),
        None,
        False,
        "difference 0.2",
    ),
    ("one_group_cannot_be_audited", results(groups={"a": {"positiveRate": 0.6}}), None, False, "at least two groups"),
    ("no_json_fails", None, None, False, "no JSON"),
]


@pytest.mark.parametrize(("res", "baseline", "passed", "message"), [pytest.param(*c[1:], id=c[0]) for c in GATE_TABLE])
def test_judge_gate(res: Any, baseline: Any, passed: bool, message: str) -> None:
    judgement = judge_gate(GATE, res, baseline)
    assert judgement.passed is passed
    assert message in judgement.message


def gate_with(*checks: dict[str, Any], fairness: bool = True) -> Gate:
    return Gate.model_validate(
        {"name": "holdout", "template": {}, "checks": list(checks), **({"fairness": GATE.fairness} if fairness else {})}
    )


ACCURACY_VS_STABLE = {"result": "accuracy", "min": 0.65, "baseline": {"maxDegradation": 0.02}}
REQUIRED = {"result": "accuracy", "min": 0.65, "baseline": {"maxDegradation": 0.02, "required": True}}
P99 = {"result": "latency.p99", "max": 0.3}
NOT_COMPARED = "accuracy: 0.66 within its bounds, but not compared with the stable version (no baseline: {})"

#: (case, gate, results, baseline, stable version, passed, the whole message, not judged)
BASELINE_TABLE = [
    (
        "compared_with_the_baseline_is_judged_in_full",
        gate_with(ACCURACY_VS_STABLE, P99),
        results(accuracy=0.69),
        {"accuracy": 0.70},
        "v1",
        True,
        "2 checks passed, fair",
        (),
    ),
    (
        "no_stable_version_the_comparison_is_not_judged_and_not_counted_as_passed",
        gate_with(ACCURACY_VS_STABLE, P99),
        results(accuracy=0.66),
        None,
        None,
        True,
        "1 of 2 checks passed in full, fair; " + NOT_COMPARED.format("no stable version yet"),
        (NOT_COMPARED.format("no stable version yet"),),
    ),
    (
        "stable_version_without_results_of_this_gate",
        gate_with(ACCURACY_VS_STABLE),
        results(accuracy=0.66),
        None,
        "v1",
        True,
        "0 of 1 checks passed in full, fair; " + NOT_COMPARED.format("v1 has no results of this gate"),
        (NOT_COMPARED.format("v1 has no results of this gate"),),
    ),
    (
        "baseline_without_this_result",
        gate_with(ACCURACY_VS_STABLE, fairness=False),
        results(accuracy=0.66),
        {"auc": 0.8},
        "v1",
        True,
        "0 of 1 checks passed in full; " + NOT_COMPARED.format("the results of v1 from this gate have no accuracy"),
        (NOT_COMPARED.format("the results of v1 from this gate have no accuracy"),),
    ),
    (
        "a_check_that_only_compares_is_not_judged_at_all_without_a_baseline",
        gate_with({"result": "latency.p99", "baseline": {"maxDegradation": 0.1}}, fairness=False),
        results(),
        None,
        None,
        True,
        "0 of 1 checks passed in full; latency.p99: 0.2 not compared with the stable version"
        " (no baseline: no stable version yet)",
        ("latency.p99: 0.2 not compared with the stable version (no baseline: no stable version yet)",),
    ),
    (
        "required_baseline_missing_fails_the_gate",
        gate_with(REQUIRED, P99),
        results(accuracy=0.66),
        None,
        None,
        False,
        "accuracy: no baseline to compare with (no stable version yet) and baseline.required is set",
        (),
    ),
    (
        "required_baseline_missing_from_the_stable_results_fails_the_gate",
        gate_with(REQUIRED),
        results(accuracy=0.66),
        {"auc": 0.8},
        "v1",
        False,
        "accuracy: no baseline to compare with (the results of v1 from this gate have no accuracy)"
        " and baseline.required is set",
        (),
    ),
    (
        "required_baseline_present_is_compared_as_usual",
        gate_with(REQUIRED),
        results(accuracy=0.66),
        {"accuracy": 0.70},
        "v1",
        False,
        "accuracy: 0.66 is 0.04 worse than the stable version (0.7), max degradation 0.02",
        (),
    ),
    (
        "a_threshold_failure_is_reported_rather_than_the_missing_baseline",
        gate_with(ACCURACY_VS_STABLE),
        results(accuracy=0.6),
        None,
        None,
        False,
        "accuracy: 0.6 < min 0.65",
        (),
    ),
    (
        "a_failed_gate_still_says_which_comparison_was_not_done",
        gate_with(ACCURACY_VS_STABLE, P99, fairness=False),
        results(accuracy=0.66, p99=0.4),
        None,
        None,
        False,
        "latency.p99: 0.4 > max 0.3; " + NOT_COMPARED.format("no stable version yet"),
        (NOT_COMPARED.format("no stable version yet"),),
    ),
]


@pytest.mark.parametrize(
    ("gate", "res", "baseline", "stable", "passed", "message", "not_judged"),
    [pytest.param(*c[1:], id=c[0]) for c in BASELINE_TABLE],
)
def test_gate_evidence_says_exactly_what_was_judged(
    gate: Gate,
    res: Any,
    baseline: Any,
    stable: str | None,
    passed: bool,
    message: str,
    not_judged: tuple[str, ...],
) -> None:
    judgement = judge_gate(gate, res, baseline, stable_version=stable)
    assert (judgement.passed, judgement.message, judgement.not_judged) == (passed, message, not_judged)


def test_baseline_required_is_off_by_default_and_only_for_gate_checks() -> None:
    assert gate_with(ACCURACY_VS_STABLE).checks[0].baseline.required is False  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="required"):
        Metric(name="accuracy", query="q", min=0.6, baseline={"maxDegradation": 0.05, "required": True})


def test_four_fifths_rule() -> None:
    rule = Fairness(result="approved", minRatio=0.8)  # type: ignore[call-arg]
    assert audit_fairness(rule, {"groups": {"x": {"approved": 0.5}, "y": {"approved": 0.4}}}) is None
    assert audit_fairness(rule, {"groups": {"x": {"approved": 0.5}, "y": {"approved": 0.39}}}) is not None
    assert audit_fairness(rule, {"groups": {"x": {"approved": 0.0}, "y": {"approved": 0.0}}}) is None
