"""The replay of a policy over recorded readings, with outcomes worked out by hand from the policy:
steps 10% (5m), 50% (5m), 100%; analysis every minute; failureLimit 1; Hold, maxUnavailableChecks 10."""

from __future__ import annotations

from datetime import timedelta

from modelops.cli.backtest_data import load_samples
from modelops.core.backtest import replay

from .helpers import MIN, OUTAGE_CSV, T0, decisions, healthy, minutes, policy

END = T0 + 20 * MIN


def test_a_healthy_candidate_advances_at_each_step_end_and_is_promoted() -> None:
    result = replay(policy(), healthy(), T0, END, candidate="v2", stable="v1")
    assert decisions(result) == [(0, "start", 10), (5, "advance", 50), (10, "advance", 100), (11, "promote", 100)]
    assert result.outcome == "Promoted"
    assert result.outcome_at == T0 + 11 * MIN
    assert (result.passed_checks, result.failed_checks, result.unavailable_checks) == (11, 0, 0)
    assert result.step_weights() == [10, 50, 100]


def test_an_outage_holds_the_weight_then_the_rollout_goes_on() -> None:
    """The recorded file: a spike at minute 3 (tolerated: failureLimit 1) and no data at minutes 7-10."""
    result = replay(policy(), load_samples(OUTAGE_CSV), T0, END, candidate="v2", stable="v1")
    assert decisions(result) == [
        (0, "start", 10),
        (3, "check-failed", 10),
        (5, "advance", 50),
        (7, "hold", 50),
        (8, "hold", 50),
        (9, "hold", 50),
        (10, "hold", 50),  # the step's pause is over, but its last check had no data
        (11, "advance", 100),
        (12, "promote", 100),
    ]
    holds = [e for e in result.entries if e.kind == "hold"]
    assert "metrics unavailable (4/10)" in holds[-1].reason
    assert {m.verdict for m in holds[0].metrics} == {"NoData"}
    assert (result.failed_checks, result.unavailable_checks) == (1, 4)


def test_the_same_outage_under_policy_rollback_rolls_back_at_once() -> None:
    spec = policy("rollout.analysis.onMetricsUnavailable=Rollback")
    result = replay(spec, load_samples(OUTAGE_CSV), T0, END, candidate="v2", stable="v1")
    assert decisions(result)[-1] == (7, "rollback", 0)
    assert result.outcome == "RolledBack"
    assert "metrics unavailable (policy Rollback)" in result.entries[-1].reason
    assert result.step_weights() == [10, 50]


def test_max_unavailable_checks_ends_a_long_outage() -> None:
    spec = policy("rollout.analysis.maxUnavailableChecks=3")
    result = replay(spec, load_samples(OUTAGE_CSV), T0, END, candidate="v2", stable="v1")
    assert decisions(result)[-3:] == [(7, "hold", 50), (8, "hold", 50), (9, "rollback", 0)]
    assert "3 checks in a row" in result.entries[-1].reason


def test_failure_limit_decides_whether_a_spike_rolls_back() -> None:
    spikes = healthy(error_rate=lambda m: 0.2 if m in (3, 6) else 0.01)
    strict = replay(policy(), spikes, T0, END)
    lenient = replay(policy("rollout.analysis.failureLimit=3"), spikes, T0, END)
    assert decisions(strict) == [(0, "start", 10), (3, "check-failed", 10), (5, "advance", 50), (6, "rollback", 0)]
    assert "2 failed checks (limit 1): error-rate: 0.2 > max 0.05" in strict.entries[-1].reason
    assert lenient.outcome == "Promoted"
    assert decisions(lenient)[-1] == (11, "promote", 100)
    assert lenient.failed_checks == 2


def test_query_errors_count_as_unavailable_not_as_failures() -> None:
    samples = healthy(error_rate=lambda m: "error" if m in (2, 3) else 0.01)
    result = replay(policy(), samples, T0, END)
    assert [(m, k) for m, k, _ in decisions(result)][:3] == [(0, "start"), (2, "hold"), (3, "hold")]
    assert result.outcome == "Promoted"
    assert (result.failed_checks, result.unavailable_checks) == (0, 2)
    first_hold = next(e for e in result.entries if e.kind == "hold")
    assert [m.verdict for m in first_hold.metrics] == ["Error", "Pass"]
    assert "timeout" in first_hold.reason


def test_the_baseline_compares_with_the_stable_readings() -> None:
    # above min 0.8, but 0.06 worse than the stable version (maxDegradation 0.02) from minute 2 on
    samples = healthy(accuracy=lambda m: 0.85 if m < 2 else 0.80)
    result = replay(policy(), samples, T0, END)
    assert decisions(result) == [(0, "start", 10), (2, "check-failed", 10), (3, "rollback", 0)]
    assert "worse than stable (0.86), max degradation 0.02" in result.entries[-1].reason
    # without stable readings the baseline cannot be judged: unavailable, not a failure
    no_stable = [s for s in samples if s.target != "stable"]
    held = replay(policy(), no_stable, T0, END)
    assert held.failed_checks == 0
    assert held.entries[1].kind == "hold"
    assert "stable: no recorded stable reading of accuracy" in held.entries[1].reason


def test_readings_older_than_max_age_are_no_data() -> None:
    sparse = [s for s in healthy() if s.at.minute % 2 == 0]  # a sample every 2 minutes
    result = replay(policy(), sparse, T0, END)
    # checks run at sample times and at step ends (minute 5: the sample of minute 4 is 1m old, still fresh)
    assert result.unavailable_checks == 0
    assert result.outcome == "Promoted"
    stale = replay(policy(), sparse, T0, END, max_age=timedelta(seconds=30))
    # each step end falls between samples: no data there (5), the advance waits for the sample at 6, and the
    # next step, started at 6, ends at 11, again between samples
    assert [(m, k) for m, k, _ in decisions(stale) if k in ("hold", "advance")] == [
        (5, "hold"),
        (6, "advance"),
        (11, "hold"),
        (12, "advance"),
    ]


def test_a_metric_never_recorded_has_no_data() -> None:
    only_errors = minutes(20, "error-rate", "candidate", lambda m: 0.01)
    result = replay(policy(), only_errors, T0, END)
    assert result.passed_checks == 0
    assert result.entries[1].kind == "hold"
    assert "no recorded candidate reading of accuracy" in result.entries[1].reason
