"""``decide``, one transition per case: given a status and observations at a time, then the phase and actions.

Each case is named after the behaviour it pins down. ``actions`` is the exact list of non-event actions, in order;
``events`` the reasons that must be among the events.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest

from modelops.api import Condition, ModelDeploymentSpec, ModelDeploymentStatus
from modelops.api.deployment import (
    AnalysisStatus,
    ApprovalStatus,
    GatePhase,
    GateStatus,
    MetricStatus,
    MonitoringStatus,
    Phase,
    RequestRecord,
    RetrainingStatus,
    Verdict,
)
from modelops.core import (
    Action,
    AnswerRequest,
    DeleteJob,
    DeleteWorkload,
    DeploymentObservations,
    EmitEvent,
    EnsureWorkload,
    JobResult,
    JobState,
    ManualRequest,
    Reading,
    SetWeights,
    StartGateJob,
    StartRetrainingJob,
    annotation_request,
    decide,
    get_condition,
    mark_blocked,
    mark_invalid_spec,
    parse_request,
)
from modelops.core.deployment import INVALID_SPEC_REFUSAL, Decision
from modelops.core.observations import Acceptance, RouteAcceptance

from .builders import (
    DAY,
    GOOD_GATE,
    HOUR,
    MIN,
    T0,
    events,
    meta,
    non_events,
    obs,
    progressing,
    promoted,
    readings,
    request,
    spec,
    validating,
)

V1 = "s3://models/churn/v1"
V2 = "s3://models/churn/v2"
V3 = "s3://models/churn/v3"
GATE_V2 = "churn-v2-holdout-6955b900"  # gate_job_name("churn", "v2", "holdout", T0)

SPEC_V1 = {"model": {"name": "churn", "version": "v1", "uri": V1}}
APPROVALS = {"approvals": [{"team": "risk"}, {"team": "legal"}]}
MONITORING = {
    "monitoring": {
        "interval": "1h",
        "degradedAfter": 3,
        "metrics": [{"name": "accuracy", "query": "acc{version='{{ version }}'}", "min": 0.66}],
    }
}
REQUIRED_CHECK = {"result": "accuracy", "min": 0.65, "baseline": {"maxDegradation": 0.02, "required": True}}
#: what the sandbox's job writer leaves in the termination log instead of a result too large for it
OVERSIZED_ERROR = "the result is 5120 bytes, more than the 4096-byte termination message limit: not written"
#: what the kube adapter reports of a termination message the kubelet cut
CUT_RESULT = (
    "Job 'gate-job': its result was cut at the 4096-byte termination message limit (4096 bytes arrived, not valid"
    " JSON): write a smaller result"
)
MONITORING_TWO = {
    "monitoring": {
        **MONITORING["monitoring"],
        "metrics": [
            *MONITORING["monitoring"]["metrics"],
            {"name": "drift", "query": "d", "max": 0.2},
        ],
    }
}
RETRAINING = {
    "retraining": {"template": {"spec": {}}, "onDegradation": True, "minInterval": "7d", "timeout": "6h"},
    **MONITORING,
}


def gate_done(results: Any = GOOD_GATE, state: JobState = JobState.SUCCEEDED, message: str = "") -> dict[str, Any]:
    return {"gates": {"holdout": JobResult(state, results, message, job_name="gate-job")}}


def failing_checks(n: int) -> AnalysisStatus:
    return AnalysisStatus(failed_checks=n)


def monitoring(failures: int, last: timedelta = -HOUR, no_data: int = 0) -> MonitoringStatus:
    return MonitoringStatus(last_check_at=T0 + last, consecutive_failures=failures, consecutive_no_data=no_data)


def without_data(n: int = 3) -> ModelDeploymentStatus:
    """v1 promoted, its monitoring without data for ``n`` checks: Degraded=Unknown (NoData) since a day."""
    cond = Condition(type="Degraded", status="Unknown", reason="NoData", last_transition_time=T0 - DAY)
    return promoted(monitoring=monitoring(0, no_data=n), conditions=[cond], observed_generation=2)


def degraded_is(d: Decision, status: str, reason: str, *message: str, absent: str = "within bounds") -> bool:
    """Degraded has ``status`` and ``reason``, and its message every part of ``message`` but not ``absent``."""
    c = cond(d, "Degraded")
    assert (c.status, c.reason) == (status, reason), c
    assert all(part in c.message for part in message), c.message
    assert absent not in c.message, c.message
    return True


def degraded(**kw: Any) -> ModelDeploymentStatus:
    cond = Condition(type="Degraded", status="True", reason="MetricsDegraded", last_transition_time=T0 - DAY)
    return promoted(monitoring=monitoring(3), conditions=[cond], **kw)


def named(action: str, name: str, team: str = "", by: str = "") -> ManualRequest:
    """A request as a ModelRequest object gives it: its name, and its uid as id."""
    return ManualRequest(id=f"uid-{name}", name=name, action=action, team=team, by=by)


def answers(d: Decision) -> list[tuple[str, bool, str]]:
    return [(a.name, a.applied, a.message) for a in d.actions if isinstance(a, AnswerRequest)]


#: a Gateway whose controller must accept each step's route before the step starts (the default for gatewayAPI)
GATEWAY: dict[str, Any] = {"traffic": {"router": "gatewayAPI", "gatewayAPI": {"httpRoute": "churn"}}}
PENDING = RouteAcceptance(Acceptance.PENDING, "Pending", "gw.example/controller on Gateway ml/public has not reported")
ACCEPTED = RouteAcceptance(Acceptance.ACCEPTED, "Accepted", "accepted by Gateway ml/public at generation 5")
REJECTED = RouteAcceptance(
    Acceptance.REJECTED,
    "BackendNotFound",
    "gw.example/controller on Gateway ml/public: ResolvedRefs=False (BackendNotFound)",
)


@dataclass
class Case:
    status: ModelDeploymentStatus
    obs: DeploymentObservations = field(default_factory=obs)
    at: timedelta = timedelta(0)
    phase: Phase | None = None
    actions: list[Action] | None = None
    events: tuple[str, ...] = ()
    spec: dict[str, Any] = field(default_factory=dict)
    generation: int = 2
    check: Callable[[Decision], Any] | None = None


def cond(d: Decision, type_: str) -> Condition:
    found = get_condition(d.status.conditions, type_)
    assert found is not None, f"no condition {type_}"
    return found


def event_actions(d: Decision) -> list[EmitEvent]:
    return [a for a in d.actions if isinstance(a, EmitEvent)]


def history(d: Decision) -> tuple[str, str]:
    last = d.status.history[-1]
    return last.version, last.outcome


CASES = {
    # ----------------------------------------------------------------------------------- new versions and gates
    "first_version_starts_its_gates": Case(
        ModelDeploymentStatus(),
        obs=DeploymentObservations(),
        spec=SPEC_V1,
        generation=1,
        phase=Phase.VALIDATING,
        actions=[StartGateJob("holdout", "v1", V1, "churn-v1-holdout-6955b900")],
        events=("NewCandidate", "GateStarted"),
    ),
    "first_version_passing_its_gates_goes_live_at_100_as_initial": Case(
        validating(stable_version=None, stable_uri=None, stable_gates=[], candidate_version="v1", candidate_uri=V1),
        obs=DeploymentObservations(**gate_done()),
        spec=SPEC_V1,
        generation=1,
        phase=Phase.PROMOTED,
        actions=[EnsureWorkload("v1", V1, 4), SetWeights({"v1": 100})],
        events=("InitialDeployment",),
        check=lambda d: history(d) == ("v1", "Initial") and d.status.stable_version == "v1",
    ),
    "first_version_without_gates_goes_live_in_one_call": Case(
        ModelDeploymentStatus(),
        obs=DeploymentObservations(),
        spec={**SPEC_V1, "gates": []},
        generation=1,
        phase=Phase.PROMOTED,
        actions=[EnsureWorkload("v1", V1, 4), SetWeights({"v1": 100})],
    ),
    "new_spec_version_validates_without_touching_the_stable_traffic": Case(
        promoted(),
        phase=Phase.VALIDATING,
        actions=[StartGateJob("holdout", "v2", V2, GATE_V2), EnsureWorkload("v1", V1, 4), SetWeights({"v1": 100})],
        check=lambda d: d.status.candidate_source == "Spec" and d.status.observed_spec_version == "v2",
    ),
    "spec_edit_without_a_new_version_only_reapplies_the_workload": Case(
        promoted(),
        spec={"model": {"name": "churn", "version": "v1", "uri": V1}, "server": {"image": "x:2", "replicas": 4}},
        phase=Phase.PROMOTED,
        actions=[EnsureWorkload("v1", V1, 4), SetWeights({"v1": 100})],
    ),
    "nothing_new_changes_nothing": Case(
        promoted(observed_generation=2), spec=SPEC_V1, phase=Phase.PROMOTED, actions=[]
    ),
    "running_gate_is_waited_for": Case(
        validating(),
        obs=obs(gates={"holdout": JobResult(JobState.RUNNING, job_name="gate-job")}),
        at=10 * MIN,
        phase=Phase.VALIDATING,
        actions=[],
    ),
    "gate_below_its_threshold_fails_and_leaves_stable_alone": Case(
        validating(),
        obs=obs(**gate_done({**GOOD_GATE, "metrics": {"accuracy": 0.60}})),
        phase=Phase.FAILED,
        actions=[],
        events=("GateFailed", "GatesFailed"),
        check=lambda d: history(d) == ("v2", "Failed") and "0.6 < min 0.65" in d.status.message,
    ),
    "gate_worse_than_the_stable_baseline_fails": Case(
        validating(),
        obs=obs(**gate_done({**GOOD_GATE, "metrics": {"accuracy": 0.67}})),
        phase=Phase.FAILED,
        check=lambda d: "worse than the stable version (0.7)" in d.status.gates[0].message,
    ),
    "gate_without_a_baseline_passes_on_its_thresholds_and_says_the_comparison_was_not_done": Case(
        validating(stable_gates=[]),
        obs=obs(candidate_ready=False, **gate_done()),
        phase=Phase.PROGRESSING,
        events=("GatePassed",),
        check=lambda d: (
            d.status.gates[0].not_judged
            == [
                "accuracy: 0.75 within its bounds, but not compared with the stable version"
                " (no baseline: v1 has no results of this gate)"
            ]
            and d.status.gates[0].message.startswith("0 of 1 checks passed in full, fair; accuracy: 0.75")
            and any(e.reason == "GatePassed" and "not compared" in e.message for e in event_actions(d))
        ),
    ),
    "gate_with_a_required_baseline_and_none_fails": Case(
        validating(stable_gates=[]),
        obs=obs(**gate_done()),
        spec={"gates": [{**spec().gates[0].model_dump(by_alias=True, exclude_none=True), "checks": [REQUIRED_CHECK]}]},
        phase=Phase.FAILED,
        events=("GateFailed", "GatesFailed"),
        check=lambda d: (
            d.status.gates[0].message
            == "accuracy: no baseline to compare with (v1 has no results of this gate) and baseline.required is set"
            and d.status.stable_version == "v1"
        ),
    ),
    "gate_compared_with_its_baseline_has_nothing_unjudged": Case(
        validating(),
        obs=obs(candidate_ready=False, **gate_done()),
        phase=Phase.PROGRESSING,
        check=lambda d: d.status.gates[0].not_judged == [] and d.status.gates[0].message == "1 check passed, fair",
    ),
    "gate_job_that_refused_an_oversized_result_fails_with_its_error": Case(
        validating(),
        obs=obs(**gate_done({"error": OVERSIZED_ERROR}, JobState.FAILED, "BackoffLimitExceeded")),
        phase=Phase.FAILED,
        check=lambda d: d.status.gates[0].message == f"job failed: {OVERSIZED_ERROR} (BackoffLimitExceeded)",
    ),
    "gate_result_cut_at_the_termination_message_limit_fails_naming_it": Case(
        validating(),
        obs=obs(**gate_done(None, JobState.FAILED, CUT_RESULT)),
        phase=Phase.FAILED,
        check=lambda d: d.status.gates[0].message == f"job failed: {CUT_RESULT}" and "4096-byte" in d.status.message,
    ),
    "unfair_gate_fails_the_audit": Case(
        validating(),
        obs=obs(**gate_done({**GOOD_GATE, "groups": {"a": {"positiveRate": 0.5}, "b": {"positiveRate": 0.3}}})),
        phase=Phase.FAILED,
        check=lambda d: "ratio 0.6" in d.status.gates[0].message,
    ),
    "failed_gate_job_fails_with_its_message": Case(
        validating(),
        obs=obs(**gate_done(None, JobState.FAILED, "OOMKilled")),
        phase=Phase.FAILED,
        check=lambda d: d.status.gates[0].message == "job failed: OOMKilled",
    ),
    "gate_past_its_timeout_fails_and_its_job_is_deleted": Case(
        validating(),
        obs=obs(gates={"holdout": JobResult(JobState.RUNNING, job_name="gate-job")}),
        at=30 * MIN,
        phase=Phase.FAILED,
        actions=[DeleteJob("gate-job")],
        check=lambda d: d.status.gates[0].message == "timed out after 30m",
    ),
    "result_of_another_attempts_gate_job_is_ignored": Case(
        validating(),
        obs=obs(gates={"holdout": JobResult(JobState.SUCCEEDED, GOOD_GATE, job_name="old-job")}),
        phase=Phase.VALIDATING,
        actions=[],
    ),
    "passing_gates_start_the_candidate_at_weight_0": Case(
        validating(),
        obs=obs(candidate_ready=False, **gate_done()),
        phase=Phase.PROGRESSING,
        actions=[EnsureWorkload("v2", V2, 4), SetWeights({"v1": 100, "v2": 0})],
        events=("GatePassed", "GatesPassed"),
        check=lambda d: d.status.current_step is None and d.status.stable_gates[0].version == "v1",
    ),
    # ------------------------------------------------------------------------------------------ canary steps
    "ready_candidate_enters_the_first_step": Case(
        progressing(None),
        at=MIN,
        phase=Phase.PROGRESSING,
        actions=[SetWeights({"v1": 90, "v2": 10})],
        events=("StepAdvanced",),
        check=lambda d: (d.status.current_step, d.status.step_started_at) == (0, T0 + MIN),
    ),
    # ------------------------------------------------------------------ a Gateway that must accept the route first
    "with_a_gateway_a_step_is_entered_but_not_started_until_the_route_is_accepted": Case(
        progressing(None),
        spec=GATEWAY,
        at=MIN,
        phase=Phase.PROGRESSING,
        actions=[SetWeights({"v1": 90, "v2": 10})],
        events=("StepAdvanced",),
        check=lambda d: (d.status.current_step, d.status.step_started_at) == (0, None),
    ),
    "a_step_whose_route_is_not_accepted_yet_holds_and_says_why": Case(
        progressing(0, step_started_at=None),
        spec=GATEWAY,
        obs=obs(route_acceptance=PENDING),
        at=5 * MIN,
        phase=Phase.PROGRESSING,
        actions=[],
        check=lambda d: (
            d.status.step_started_at is None
            and d.status.analysis.last_check_at is None
            and cond(d, "Progressing").reason == "AwaitingRoute"
            and PENDING.message in d.status.message
            and (cond(d, "RouteAccepted").status, cond(d, "RouteAccepted").reason) == ("Unknown", "Pending")
        ),
    ),
    "an_accepted_route_starts_the_step_and_its_pause_counts_from_then": Case(
        progressing(0, step_started_at=None),
        spec=GATEWAY,
        obs=obs(route_acceptance=ACCEPTED),
        at=2 * MIN,
        phase=Phase.PROGRESSING,
        actions=[],
        check=lambda d: (
            d.status.step_started_at == T0 + 2 * MIN
            and d.status.current_step == 0
            and cond(d, "RouteAccepted").status == "True"
        ),
    ),
    "an_accepted_route_that_does_not_carry_the_steps_weights_does_not_start_it": Case(
        progressing(0, step_started_at=None),
        spec=GATEWAY,
        obs=obs(route_acceptance=ACCEPTED, route_matches=False, router_weights={"v1": 100}),
        at=2 * MIN,
        phase=Phase.PROGRESSING,
        actions=[SetWeights({"v1": 90, "v2": 10})],
        events=("RouteDrift",),
        check=lambda d: d.status.step_started_at is None,
    ),
    "a_rejected_route_is_a_condition_with_the_controllers_reason_and_an_event": Case(
        progressing(0, step_started_at=None),
        spec=GATEWAY,
        obs=obs(route_acceptance=REJECTED),
        at=2 * MIN,
        phase=Phase.PROGRESSING,
        actions=[],
        events=("RouteRejected",),
        check=lambda d: (
            (cond(d, "RouteAccepted").status, cond(d, "RouteAccepted").reason) == ("False", "BackendNotFound")
            and cond(d, "RouteAccepted").message == REJECTED.message
            and d.status.step_started_at is None
        ),
    ),
    "a_route_never_accepted_rolls_back_at_the_progress_deadline": Case(
        progressing(0, step_started_at=None),
        spec=GATEWAY,
        obs=obs(route_acceptance=REJECTED),
        at=11 * MIN,
        phase=Phase.ROLLED_BACK,
        actions=[SetWeights({"v1": 100}), DeleteWorkload("v2")],
        check=lambda d: cond(d, "Progressing").reason == "RouteNotAccepted" and "BackendNotFound" in d.status.message,
    ),
    "a_route_condition_goes_when_the_router_is_no_longer_gateway_api": Case(
        promoted(conditions=[Condition(type="RouteAccepted", status="False", reason="BackendNotFound")]),
        spec={"traffic": {"router": "replicas", "replicas": {"service": "churn"}}},
        generation=1,
        check=lambda d: get_condition(d.status.conditions, "RouteAccepted") is None,
    ),
    "candidate_never_ready_rolls_back_at_the_deadline": Case(
        progressing(None),
        obs=obs(candidate_ready=False),
        at=10 * MIN,
        phase=Phase.ROLLED_BACK,
        actions=[SetWeights({"v1": 100}), DeleteWorkload("v2")],
        check=lambda d: cond(d, "Progressing").reason == "CandidateNotReady",
    ),
    "step_is_held_for_its_pause": Case(
        progressing(0), at=30 * timedelta(seconds=1), phase=Phase.PROGRESSING, actions=[]
    ),
    "passing_analysis_after_the_pause_advances_a_step": Case(
        progressing(0),
        at=MIN,
        phase=Phase.PROGRESSING,
        actions=[SetWeights({"v1": 50, "v2": 50})],
        check=lambda d: (d.status.current_step, d.status.analysis.passed_checks) == (1, 1),
    ),
    "step_waits_for_a_passing_analysis_in_it": Case(
        progressing(
            0,
            analysis=AnalysisStatus(
                failed_checks=1,
                last_check_at=T0 + MIN,
                metrics=[MetricStatus(name="accuracy", verdict=Verdict.FAIL)],
            ),
        ),
        at=90 * timedelta(seconds=1),
        phase=Phase.PROGRESSING,
        actions=[],
    ),
    "a_check_made_as_the_step_began_does_not_count_for_it": Case(
        progressing(
            1,
            analysis=AnalysisStatus(
                passed_checks=3,
                last_check_at=T0,
                metrics=[MetricStatus(name="accuracy", verdict=Verdict.PASS)],
            ),
        ),
        spec={"rollout": {"steps": [{"weight": w, "pause": "0s"} for w in (10, 50, 100)]}},
        at=10 * timedelta(seconds=1),
        phase=Phase.PROGRESSING,
        actions=[],
    ),
    "failed_check_within_the_limit_is_counted_and_holds": Case(
        progressing(0),
        obs=obs(**readings(accuracy=0.55)),
        at=MIN,
        phase=Phase.PROGRESSING,
        actions=[],
        events=("CheckFailed",),
        check=lambda d: (d.status.analysis.failed_checks, d.status.canary_weight) == (1, 10),
    ),
    "failed_checks_over_the_limit_roll_back": Case(
        progressing(1, analysis=failing_checks(1)),
        obs=obs(**readings(latency=0.9)),
        at=MIN,
        phase=Phase.ROLLED_BACK,
        actions=[SetWeights({"v1": 100}), DeleteWorkload("v2")],
        events=("AnalysisFailed",),
        check=lambda d: history(d) == ("v2", "RolledBack") and "latency: 0.9 > max 0.5" in d.status.message,
    ),
    "candidate_worse_than_stable_by_more_than_max_degradation_fails_the_check": Case(
        progressing(0),
        obs=obs(**readings(accuracy=0.66, stable_accuracy=0.70)),
        at=MIN,
        check=lambda d: (
            d.status.analysis.failed_checks == 1
            and d.status.analysis.metrics[0].stable_value == 0.70
            and "worse than stable" in d.status.analysis.metrics[0].message
        ),
    ),
    "candidate_within_max_degradation_of_stable_passes": Case(
        progressing(0),
        obs=obs(**readings(accuracy=0.68, stable_accuracy=0.70)),
        at=MIN,
        check=lambda d: d.status.analysis.failed_checks == 0 and d.status.current_step == 1,
    ),
    "no_data_is_counted_apart_and_holds_the_weight": Case(
        progressing(0),
        obs=obs(candidate={"accuracy": Reading.no_data(), "latency": Reading.of(0.1)}),
        at=MIN,
        phase=Phase.PROGRESSING,
        actions=[],
        events=("MetricsUnavailable",),
        check=lambda d: (d.status.analysis.unavailable_checks, d.status.analysis.failed_checks) == (1, 0),
    ),
    "query_error_is_an_unavailable_check_with_its_message": Case(
        progressing(0),
        obs=obs(candidate={"accuracy": Reading.error("bad_data: parse error"), "latency": Reading.of(0.1)}),
        at=MIN,
        actions=[],
        check=lambda d: (
            d.status.analysis.metrics[0].verdict == "Error" and "parse error" in d.status.analysis.metrics[0].message
        ),
    ),
    "missing_stable_reading_makes_a_baseline_check_unavailable": Case(
        progressing(0),
        obs=obs(stable={}),
        at=MIN,
        actions=[],
        check=lambda d: d.status.analysis.unavailable_checks == 1,
    ),
    "at_full_weight_the_stable_serves_nothing_so_thresholds_alone_decide": Case(
        progressing(2),
        obs=obs(stable={}),
        at=MIN,
        phase=Phase.PROMOTED,
        check=lambda d: d.status.history[-1].outcome == "Promoted" and d.status.analysis.unavailable_checks == 0,
    ),
    "without_metrics_a_step_ends_with_its_pause": Case(
        progressing(0),
        obs=obs(candidate={}),
        spec={"rollout": {"analysis": {"onMetricsUnavailable": "Rollback", "metrics": []}}},
        at=MIN,
        phase=Phase.PROGRESSING,
        actions=[SetWeights({"v1": 50, "v2": 50})],
    ),
    "unavailable_metrics_with_policy_rollback_roll_back_at_once": Case(
        progressing(0),
        obs=obs(candidate={}),
        spec={
            "rollout": {
                "steps": [{"weight": w, "pause": "1m"} for w in (10, 50, 100)],
                "analysis": {
                    "interval": "1m",
                    "onMetricsUnavailable": "Rollback",
                    "metrics": [{"name": "latency", "query": "q", "max": 0.5}],
                },
            }
        },
        at=MIN,
        phase=Phase.ROLLED_BACK,
        actions=[SetWeights({"v1": 100}), DeleteWorkload("v2")],
        check=lambda d: "policy Rollback" in d.status.message,
    ),
    "max_unavailable_checks_in_a_row_roll_back_and_say_why": Case(
        progressing(0, analysis=AnalysisStatus(unavailable_checks=2, consecutive_unavailable=2)),
        obs=obs(candidate={}),
        at=MIN,
        phase=Phase.ROLLED_BACK,
        events=("MetricsUnavailable",),
        check=lambda d: "3 checks in a row" in d.status.message,
    ),
    "no_passing_analysis_by_the_deadline_rolls_back": Case(
        progressing(0, analysis=AnalysisStatus(failed_checks=3, last_check_at=T0 + 10 * MIN)),
        obs=obs(**readings(accuracy=0.5)),
        spec={
            "rollout": {
                "analysis": {
                    "interval": "1m",
                    "failureLimit": 100,
                    "metrics": spec().rollout.analysis.model_dump(by_alias=True)["metrics"],
                }
            }
        },
        at=11 * MIN,
        phase=Phase.ROLLED_BACK,
        events=("ProgressDeadlineExceeded",),
    ),
    "last_step_completed_promotes_and_keeps_the_old_stable": Case(
        progressing(2),
        at=MIN,
        phase=Phase.PROMOTED,
        actions=[],
        events=("Promoted",),
        check=lambda d: (
            (d.status.stable_version, d.status.previous_stable_version, history(d)) == ("v2", "v1", ("v2", "Promoted"))
        ),
    ),
    "old_stable_is_deleted_after_scale_down_delay": Case(
        promoted("v2", previous_stable_version="v1", previous_stable_uri=V1, promoted_at=T0, observed_generation=2),
        at=30 * MIN,
        actions=[SetWeights({"v2": 100}), DeleteWorkload("v1")],
        events=("OldStableDeleted",),
    ),
    "old_stable_is_kept_before_scale_down_delay": Case(
        promoted("v2", previous_stable_version="v1", previous_stable_uri=V1, promoted_at=T0, observed_generation=2),
        at=29 * MIN,
        actions=[],
    ),
    # ------------------------------------------------------------------------------------ approvals, requests
    "approvals_pause_the_rollout_before_full_traffic": Case(
        progressing(1),
        spec=APPROVALS,
        at=MIN,
        phase=Phase.PAUSED,
        actions=[],
        events=("AwaitingApproval",),
        check=lambda d: d.status.canary_weight == 50 and "risk, legal" in d.status.message,
    ),
    "approval_by_one_team_keeps_waiting_for_the_others": Case(
        progressing(1, phase=Phase.PAUSED),
        obs=obs(requests=(request("approve", team="risk"),)),
        spec=APPROVALS,
        at=2 * MIN,
        phase=Phase.PAUSED,
        actions=[],
        events=("RequestAccepted",),
        check=lambda d: [a.team for a in d.status.approvals] == ["risk"],
    ),
    "last_approval_moves_the_candidate_to_full_traffic": Case(
        progressing(
            1,
            phase=Phase.PAUSED,
            approvals=[ApprovalStatus(team="risk", approved_at=T0)],
            analysis=AnalysisStatus(last_check_at=T0 + MIN, metrics=[MetricStatus(name="a", verdict=Verdict.PASS)]),
        ),
        obs=obs(requests=(request("approve", team="legal"),)),
        spec=APPROVALS,
        at=90 * timedelta(seconds=1),
        phase=Phase.PROGRESSING,
        actions=[SetWeights({"v1": 0, "v2": 100})],
    ),
    "approval_from_a_team_not_listed_is_rejected": Case(
        progressing(1, phase=Phase.PAUSED),
        obs=obs(requests=(request("approve", team="marketing"),)),
        spec=APPROVALS,
        at=30 * timedelta(seconds=1),
        actions=[],
        events=("RequestRejected",),
        check=lambda d: d.status.approvals == [],
    ),
    "manual_promote_skips_the_remaining_steps": Case(
        progressing(0),
        obs=obs(requests=(request("promote"),)),
        at=10 * timedelta(seconds=1),
        phase=Phase.PROMOTED,
        events=("RequestAccepted", "Promoted"),
        actions=[SetWeights({"v2": 100, "v1": 0})],
        check=lambda d: "promoted by ana" in d.status.history[-1].reason,
    ),
    "manual_promote_without_the_approvals_is_rejected": Case(
        progressing(0),
        obs=obs(requests=(request("promote"),)),
        spec=APPROVALS,
        at=10 * timedelta(seconds=1),
        phase=Phase.PROGRESSING,
        actions=[],
        events=("RequestRejected",),
    ),
    "promote_after_a_rollback_is_rejected_and_recorded": Case(
        progressing(None, phase=Phase.ROLLED_BACK),
        obs=obs(requests=(request("promote", id_="p-7"),)),
        phase=Phase.ROLLED_BACK,
        actions=[],
        events=("RequestRejected",),
        check=lambda d: (
            d.status.last_request is not None
            and d.status.last_request.id == "p-7"
            and d.status.last_request.result.startswith("Rejected")
            and d.status.requests[-1].id == "p-7"
        ),
    ),
    "manual_abort_rolls_back_with_outcome_aborted": Case(
        progressing(1),
        obs=obs(requests=(request("abort"),)),
        phase=Phase.ROLLED_BACK,
        actions=[SetWeights({"v1": 100}), DeleteWorkload("v2")],
        check=lambda d: history(d) == ("v2", "Aborted"),
    ),
    "abort_during_validation_stops_the_gate_jobs": Case(
        validating(),
        obs=obs(requests=(request("abort"),)),
        phase=Phase.ROLLED_BACK,
        actions=[DeleteJob("gate-job")],
    ),
    "pause_holds_the_step_past_its_pause": Case(
        progressing(0),
        obs=obs(requests=(request("pause"),)),
        at=5 * MIN,
        phase=Phase.PAUSED,
        actions=[],
        check=lambda d: d.status.paused and d.status.current_step == 0,
    ),
    "resume_continues_and_restarts_the_deadline_clock": Case(
        progressing(0, paused=True, phase=Phase.PAUSED),
        obs=obs(requests=(request("resume"),)),
        at=HOUR,
        phase=Phase.PROGRESSING,
        check=lambda d: not d.status.paused and d.status.last_progress_at == T0 + HOUR,
    ),
    "request_already_consumed_is_ignored": Case(
        progressing(1, last_request=RequestRecord(id="r1", action="abort")),
        obs=obs(requests=(request("abort", id_="r1"),)),
        at=10 * timedelta(seconds=1),
        phase=Phase.PROGRESSING,
        actions=[],
    ),
    "malformed_request_is_rejected_with_its_error": Case(
        progressing(1),
        obs=obs(requests=tuple(filter(None, [parse_request("please promote")]))),
        at=10 * timedelta(seconds=1),
        events=("RequestRejected",),
        check=lambda d: d.status.last_request is not None and "not JSON" in d.status.last_request.result,
    ),
    "two_approvals_in_the_same_tick_are_both_applied_and_each_answered": Case(
        progressing(1, phase=Phase.PAUSED),
        obs=obs(
            requests=(
                named("approve", "a-risk", team="risk", by="rita"),
                named("approve", "a-legal", team="legal", by="lee"),
            )
        ),
        spec=APPROVALS,
        at=2 * MIN,
        events=("RequestAccepted", "RequestAccepted"),
        check=lambda d: (
            [(a.team, a.by) for a in d.status.approvals] == [("risk", "rita"), ("legal", "lee")]
            and answers(d) == [("a-risk", True, "risk approved v2"), ("a-legal", True, "legal approved v2")]
            and [r.name for r in d.status.requests] == ["a-risk", "a-legal"]
        ),
    ),
    "an_abort_racing_a_promote_applies_the_older_and_refuses_the_other": Case(
        progressing(1),
        obs=obs(requests=(named("abort", "r-abort"), named("promote", "r-promote"))),
        phase=Phase.ROLLED_BACK,
        events=("RequestAccepted", "RequestRejected"),
        check=lambda d: (
            answers(d)
            == [
                ("r-abort", True, "rollout of v2 aborted"),
                ("r-promote", False, "cannot promote in phase RolledBack"),
            ]
        ),
    ),
    "a_request_recorded_but_not_answered_is_answered_again_without_being_applied_twice": Case(
        progressing(
            1,
            phase=Phase.PAUSED,
            approvals=[ApprovalStatus(team="risk", approved_at=T0, by="rita")],
            requests=[
                RequestRecord(
                    id="uid-a-risk",
                    name="a-risk",
                    action="approve",
                    by="rita",
                    accepted=True,
                    result="Accepted: risk approved v2",
                )
            ],
        ),
        obs=obs(requests=(named("approve", "a-risk", team="risk", by="rita"),)),
        spec=APPROVALS,
        at=2 * MIN,
        phase=Phase.PAUSED,
        actions=[AnswerRequest("a-risk", True, "risk approved v2")],
        check=lambda d: len(d.status.approvals) == 1 and not {"RequestAccepted", "RequestRejected"} & set(events(d)),
    ),
    "a_request_in_the_retired_annotation_is_refused_with_what_to_do_instead": Case(
        progressing(1),
        obs=obs(requests=tuple(filter(None, [annotation_request('{"id": "x1", "action": "promote"}')]))),
        at=10 * timedelta(seconds=1),
        phase=Phase.PROGRESSING,
        actions=[],
        events=("RequestRejected",),
        check=lambda d: d.status.last_request is not None and "create a ModelRequest" in d.status.last_request.result,
    ),
    "retry_after_a_rollback_restarts_from_the_gates": Case(
        progressing(None, phase=Phase.ROLLED_BACK),
        obs=obs(requests=(request("retry"),)),
        at=HOUR,
        phase=Phase.VALIDATING,
        actions=[StartGateJob("holdout", "v2", V2, "churn-v2-holdout-6955c710")],
    ),
    # ------------------------------------------------------------------------------ supersede, drift, replicas
    "newer_spec_version_mid_rollout_supersedes_the_candidate": Case(
        progressing(1),
        spec={"model": {"name": "churn", "version": "v3", "uri": V3}},
        generation=3,
        phase=Phase.VALIDATING,
        actions=[
            StartGateJob("holdout", "v3", V3, "churn-v3-holdout-6955b900"),
            EnsureWorkload("v1", V1, 4),
            SetWeights({"v1": 100}),
            DeleteWorkload("v2"),
        ],
        events=("Superseded", "NewCandidate"),
        check=lambda d: d.status.history[-1].outcome == "Superseded" and d.status.candidate_version == "v3",
    ),
    "spec_reverted_to_the_stable_version_ends_the_rollout": Case(
        progressing(1),
        spec=SPEC_V1,
        generation=3,
        phase=Phase.PROMOTED,
        actions=[EnsureWorkload("v1", V1, 4), SetWeights({"v1": 100}), DeleteWorkload("v2")],
        events=("RevertedToStable",),
    ),
    "route_edited_by_someone_is_set_back_with_a_warning": Case(
        progressing(1),
        obs=obs(route_matches=False, router_weights={"v1": 100}),
        at=10 * timedelta(seconds=1),
        actions=[SetWeights({"v1": 50, "v2": 50})],
        events=("RouteDrift",),
    ),
    "unreadable_route_is_left_alone": Case(
        progressing(1), obs=obs(route_matches=None, router_weights=None), at=10 * timedelta(seconds=1), actions=[]
    ),
    "missing_stable_workload_is_recreated": Case(
        promoted(observed_generation=2),
        spec=SPEC_V1,
        obs=obs(workloads=frozenset()),
        actions=[EnsureWorkload("v1", V1, 4)],
        events=("WorkloadMissing",),
    ),
    "replicas_router_moves_replicas_with_the_weight": Case(
        progressing(0),
        spec={"traffic": {"router": "replicas", "replicas": {"service": "churn"}}},
        generation=2,
        at=MIN,
        actions=[EnsureWorkload("v1", V1, 2), EnsureWorkload("v2", V2, 2), SetWeights({"v1": 50, "v2": 50})],
    ),
    # ------------------------------------------------------------------------------------ monitoring, retraining
    "monitoring_failures_below_the_threshold_do_not_degrade": Case(
        promoted(monitoring=monitoring(1), observed_generation=2),
        spec={**SPEC_V1, **MONITORING},
        obs=obs(monitoring={"accuracy": Reading.of(0.64)}),
        check=lambda d: (
            d.status.monitoring.consecutive_failures == 2
            and degraded_is(d, "False", "MetricsHealthy", "2 failed checks in a row (Degraded after 3)")
        ),
    ),
    "monitoring_failures_in_a_row_set_degraded": Case(
        promoted(monitoring=monitoring(2), observed_generation=2),
        spec={**SPEC_V1, **MONITORING},
        obs=obs(monitoring={"accuracy": Reading.of(0.64)}),
        events=("MetricsDegraded",),
        check=lambda d: cond(d, "Degraded").status == "True",
    ),
    "monitoring_recovery_clears_degraded": Case(
        degraded(observed_generation=2),
        spec={**SPEC_V1, **MONITORING},
        obs=obs(monitoring={"accuracy": Reading.of(0.70)}),
        events=("MetricsHealthy",),
        check=lambda d: cond(d, "Degraded").status == "False",
    ),
    "monitoring_without_data_neither_fails_nor_recovers": Case(
        promoted(monitoring=monitoring(2), observed_generation=2),
        spec={**SPEC_V1, **MONITORING},
        obs=obs(monitoring={}),
        check=lambda d: (
            d.status.monitoring.consecutive_failures == 2
            and d.status.monitoring.consecutive_no_data == 1
            and d.status.monitoring.metrics[0].verdict == "NoData"
            and degraded_is(d, "False", "MetricsHealthy", "no data in 1 check in a row (Unknown after 3)")
        ),
    ),
    "monitoring_without_data_for_degraded_after_checks_is_degraded_unknown_no_data": Case(
        promoted(monitoring=monitoring(0, no_data=2), observed_generation=2),
        spec={**SPEC_V1, **MONITORING},
        obs=obs(monitoring={}),
        actions=[],
        events=("NoData",),
        check=lambda d: (
            d.status.monitoring.consecutive_no_data == 3
            and degraded_is(
                d, "Unknown", "NoData", "v1: cannot be judged, no data in 3 checks in a row", "accuracy: not observed"
            )
            and cond(d, "Degraded").last_transition_time == T0
        ),
    ),
    "monitoring_query_errors_count_as_checks_without_data": Case(
        promoted(monitoring=monitoring(0, no_data=2), observed_generation=2),
        spec={**SPEC_V1, **MONITORING},
        obs=obs(monitoring={"accuracy": Reading.error("503 Service Unavailable")}),
        events=("NoData",),
        check=lambda d: degraded_is(d, "Unknown", "NoData", "accuracy: 503 Service Unavailable"),
    ),
    "monitoring_with_one_metric_without_data_is_not_within_bounds": Case(
        promoted(monitoring=monitoring(0, no_data=2), observed_generation=2),
        spec={**SPEC_V1, **MONITORING_TWO},
        obs=obs(monitoring={"accuracy": Reading.of(0.9), "drift": Reading.no_data("query 'd' returned no series")}),
        events=("NoData",),
        check=lambda d: degraded_is(d, "Unknown", "NoData", "drift: query 'd' returned no series", absent="accuracy"),
    ),
    "monitoring_still_without_data_says_nothing_new": Case(
        without_data(3),
        spec={**SPEC_V1, **MONITORING},
        obs=obs(monitoring={}),
        actions=[],
        check=lambda d: (
            "NoData" not in events(d)
            and d.status.monitoring.consecutive_no_data == 4
            and degraded_is(d, "Unknown", "NoData", "no data in 4 checks in a row")
            and cond(d, "Degraded").last_transition_time == T0 - DAY
        ),
    ),
    "monitoring_data_again_ends_no_data_with_an_event": Case(
        without_data(5),
        spec={**SPEC_V1, **MONITORING},
        obs=obs(monitoring={"accuracy": Reading.of(0.70)}),
        events=("MetricsHealthy",),
        check=lambda d: (
            d.status.monitoring.consecutive_no_data == 0
            and degraded_is(d, "False", "MetricsHealthy", "v1: monitoring metrics within bounds", absent="no data")
        ),
    ),
    "monitoring_failure_after_checks_without_data_counts_as_a_failure": Case(
        promoted(monitoring=monitoring(0, no_data=2), observed_generation=2),
        spec={**SPEC_V1, **MONITORING},
        obs=obs(monitoring={"accuracy": Reading.of(0.60)}),
        check=lambda d: (
            (d.status.monitoring.consecutive_failures, d.status.monitoring.consecutive_no_data) == (1, 0)
            and degraded_is(d, "False", "MetricsHealthy", "1 failed check in a row (Degraded after 3)")
        ),
    ),
    "degraded_stays_degraded_without_data_and_says_so": Case(
        degraded(observed_generation=2),
        spec={**SPEC_V1, **MONITORING},
        obs=obs(monitoring={}),
        check=lambda d: (
            "MetricsDegraded" not in events(d)
            and degraded_is(d, "True", "MetricsDegraded", "3 failed checks in a row; since then no data in 1 check")
        ),
    ),
    "monitoring_before_its_first_check_is_not_within_bounds": Case(
        promoted(promoted_at=T0 - 30 * MIN, observed_generation=2),
        spec={**SPEC_V1, **MONITORING},
        obs=obs(monitoring={}),
        actions=[],
        check=lambda d: degraded_is(d, "False", "MetricsHealthy", "v1: no monitoring check yet"),
    ),
    "monitoring_waits_for_its_interval": Case(
        promoted(monitoring=monitoring(2, last=-30 * MIN), observed_generation=2),
        spec={**SPEC_V1, **MONITORING},
        obs=obs(monitoring={"accuracy": Reading.of(0.1)}),
        actions=[],
        check=lambda d: d.status.monitoring.consecutive_failures == 2,
    ),
    "degradation_starts_retraining_when_asked": Case(
        degraded(observed_generation=2),
        spec={**SPEC_V1, **RETRAINING},
        obs=obs(monitoring={"accuracy": Reading.of(0.6)}),
        actions=[StartRetrainingJob("churn-retrain-6955b900", "v1", V1, "Degradation")],
        events=("RetrainingStarted",),
    ),
    "retraining_never_runs_more_often_than_its_minimum_interval": Case(
        degraded(observed_generation=2, retraining=RetrainingStatus(last_started_at=T0 - 6 * DAY, phase="Failed")),
        spec={**SPEC_V1, **RETRAINING},
        obs=obs(monitoring={"accuracy": Reading.of(0.6)}),
        actions=[],
    ),
    "cron_schedule_starts_retraining_when_a_slot_has_passed": Case(
        promoted(observed_generation=2),
        spec={**SPEC_V1, "retraining": {"template": {}, "schedule": "0 3 * * *", "minInterval": "1h"}},
        actions=[StartRetrainingJob("churn-retrain-6955b900", "v1", V1, "Schedule")],
    ),
    "cron_schedule_waits_for_the_next_slot": Case(
        promoted(observed_generation=2, promoted_at=T0 - HOUR),
        spec={**SPEC_V1, "retraining": {"template": {}, "schedule": "0 3 * * *", "minInterval": "1h"}},
        actions=[],
    ),
    "retraining_output_becomes_a_candidate_from_retraining": Case(
        promoted(
            observed_generation=2,
            retraining=RetrainingStatus(phase="Running", job_name="rt", last_started_at=T0 - HOUR),
        ),
        spec=SPEC_V1,
        obs=obs(retraining=JobResult(JobState.SUCCEEDED, {"version": "v1.1", "uri": "s3://m/v1.1"}, job_name="rt")),
        phase=Phase.VALIDATING,
        actions=[StartGateJob("holdout", "v1.1", "s3://m/v1.1", "churn-v1-1-holdout-6955b900")],
        events=("RetrainingSucceeded", "NewCandidate"),
        check=lambda d: d.status.candidate_source == "Retraining" and d.status.retraining.consumed_at == T0,
    ),
    "retraining_output_without_a_valid_version_fails_the_job": Case(
        promoted(observed_generation=2, retraining=RetrainingStatus(phase="Running", job_name="rt")),
        spec=SPEC_V1,
        obs=obs(retraining=JobResult(JobState.SUCCEEDED, {"version": "V 1!", "uri": "s3://m"}, job_name="rt")),
        phase=Phase.PROMOTED,
        actions=[],
        events=("RetrainingFailed",),
    ),
    "retraining_job_that_refused_an_oversized_result_fails_with_its_error": Case(
        promoted(observed_generation=2, retraining=RetrainingStatus(phase="Running", job_name="rt")),
        spec=SPEC_V1,
        obs=obs(retraining=JobResult(JobState.FAILED, {"error": OVERSIZED_ERROR}, "BackoffLimitExceeded", "rt")),
        phase=Phase.PROMOTED,
        actions=[],
        events=("RetrainingFailed",),
        check=lambda d: (
            (d.status.retraining.phase, d.status.retraining.message)
            == ("Failed", f"job failed: {OVERSIZED_ERROR} (BackoffLimitExceeded)")
        ),
    ),
    "retraining_past_its_timeout_is_stopped": Case(
        promoted(
            observed_generation=2,
            retraining=RetrainingStatus(phase="Running", job_name="rt", last_started_at=T0 - 6 * HOUR),
        ),
        spec={**SPEC_V1, **RETRAINING},
        obs=obs(retraining=JobResult(JobState.RUNNING, job_name="rt")),
        actions=[DeleteJob("rt")],
        check=lambda d: d.status.retraining.phase == "Failed",
    ),
    "no_retraining_starts_during_a_rollout": Case(
        progressing(0, monitoring=monitoring(3)),
        spec=RETRAINING,
        obs=obs(monitoring={"accuracy": Reading.of(0.1)}),
        at=10 * timedelta(seconds=1),
        actions=[],
    ),
    "spec_change_drops_a_pending_retraining_output": Case(
        promoted(retraining=RetrainingStatus(phase="Succeeded", produced_version="v1.1", produced_uri="s3://m")),
        phase=Phase.VALIDATING,
        events=("RetrainingOutputDiscarded", "NewCandidate"),
        check=lambda d: d.status.candidate_version == "v2" and d.status.retraining.consumed_at == T0,
    ),
    # ----------------------------------------------------------------------------------------- conditions
    "stable_not_ready_makes_ready_false": Case(
        promoted(observed_generation=2),
        spec=SPEC_V1,
        obs=obs(stable_ready=False),
        check=lambda d: cond(d, "Ready").reason == "StableNotReady",
    ),
    "valid_spec_after_invalid_spec_resumes_the_interrupted_phase": Case(
        progressing(1, phase=Phase.INVALID),
        at=10 * timedelta(seconds=1),
        phase=Phase.PROGRESSING,
        check=lambda d: get_condition(d.status.conditions, "InvalidSpec") is None,
    ),
}


def _spec(overrides: dict[str, Any]) -> ModelDeploymentSpec:
    return spec(**overrides)


@pytest.mark.parametrize("case", [pytest.param(c, id=name) for name, c in CASES.items()])
def test_transition(case: Case) -> None:
    before = case.status.model_copy(deep=True)
    decision = decide(_spec(case.spec), meta(case.generation), case.status, case.obs, T0 + case.at)
    assert case.status == before, "decide must not modify its input"
    if case.phase is not None:
        assert decision.status.phase == case.phase, decision.status.message
    if case.actions is not None:
        assert non_events(decision) == case.actions
    missing = [r for r in case.events if r not in events(decision)]
    assert not missing, f"events {missing} not in {events(decision)}"
    if case.check is not None:
        assert case.check(decision), decision.status.model_dump(exclude_defaults=True)
    again = decide(_spec(case.spec), meta(case.generation), decision.status, case.obs, T0 + case.at)
    # A request still seen pending (its answer not back through the watch yet) is answered again, never re-applied.
    redone = [a for a in non_events(again) if not isinstance(a, AnswerRequest)]
    assert redone == [] or (case.obs.route_matches is False or case.obs.workloads is not None)
    assert again.status == decision.status


def test_there_are_at_least_forty_transitions() -> None:
    assert len(CASES) >= 40


def test_invalid_spec_is_marked_once_and_changes_nothing_else() -> None:
    status = progressing(1)
    first = mark_invalid_spec(status, "gate 'x': template has no containers", 3, T0)
    assert first.status.phase == Phase.INVALID
    invalid = get_condition(first.status.conditions, "InvalidSpec")
    assert invalid is not None
    assert (invalid.status, invalid.last_transition_time) == ("True", T0)
    assert events(first) == ["InvalidSpec"]
    assert first.status.canary_weight == status.canary_weight
    assert first.status.candidate_version == "v2"
    second = mark_invalid_spec(first.status, "gate 'x': template has no containers", 3, T0 + MIN)
    assert second.actions == ()
    assert second.status == first.status
    resumed = decide(spec(), meta(3), second.status, obs(), T0 + 2 * MIN)
    assert resumed.status.phase == Phase.PROGRESSING
    invalid = get_condition(resumed.status.conditions, "InvalidSpec")
    assert invalid is not None
    assert (invalid.status, invalid.reason) == ("False", "SpecValid")


def test_requests_to_an_invalid_spec_are_refused_and_none_is_applied() -> None:
    status = progressing(1)
    pending = (named("abort", "r-abort"), request("pause"))  # the second has no ModelRequest to answer
    decision = mark_invalid_spec(status, "gate 'x': template has no containers", 3, T0, pending)
    assert answers(decision) == [("r-abort", False, INVALID_SPEC_REFUSAL)]
    assert decision.status.requests == []
    assert decision.status.phase == Phase.INVALID


BLOCKED_BY = "DestinationRule ml/churn exists and does not belong to ModelDeployment 'churn'"


def test_an_object_not_its_own_blocks_the_tick_and_says_so_once() -> None:
    """An action met an object the operator must write and does not own: the status is the one before the tick with
    condition Blocked, an event says so once, and the next tick whose actions all succeed clears it."""
    status = progressing(1)
    first = mark_blocked(status, BLOCKED_BY, 3, T0)
    blocked = get_condition(first.status.conditions, "Blocked")
    assert blocked is not None
    assert (blocked.status, blocked.reason, blocked.message) == ("True", "ObjectNotOwned", BLOCKED_BY)
    assert (blocked.last_transition_time, blocked.observed_generation) == (T0, 3)
    assert events(first) == ["ObjectNotOwned"]
    assert non_events(first) == [], "nothing is tried meanwhile"
    assert first.status.model_copy(update={"conditions": status.conditions}) == status, "nothing else changes"
    assert first.status.observed_generation == status.observed_generation, "the next tick decides the same again"

    again = mark_blocked(first.status, BLOCKED_BY, 3, T0 + MIN)
    assert (again.actions, again.status) == ((), first.status), "said once: nothing to write"
    elsewhere = mark_blocked(first.status, "Service ml/churn-v2 exists and does not belong to it", 3, T0 + MIN)
    assert events(elsewhere) == ["ObjectNotOwned"], "another object in the way is said again"

    down = mark_blocked(first.status, BLOCKED_BY, 3, T0 + MIN, stable_ready=False)
    ready = get_condition(down.status.conditions, "Ready")
    assert ready is not None
    assert (ready.status, ready.reason) == ("False", "StableNotReady"), "Ready says what was seen, blocked or not"
    assert down.actions == ()

    resumed = decide(spec(), meta(3), again.status, obs(), T0 + 2 * MIN)
    cleared = get_condition(resumed.status.conditions, "Blocked")
    assert cleared is not None
    assert (cleared.status, cleared.reason) == ("False", "NotBlocked")
    assert "ObjectNotOwned" not in events(resumed), "cleared quietly, as InvalidSpec is"


def test_a_model_deployment_never_blocked_has_no_blocked_condition() -> None:
    decision = decide(spec(), meta(3), progressing(1), obs(), T0 + MIN)
    assert get_condition(decision.status.conditions, "Blocked") is None


def test_gate_added_during_validation_is_started() -> None:
    two_gates = spec(
        gates=[
            spec().gates[0].model_dump(by_alias=True),
            {"name": "bias", "template": {}, "fairness": {"result": "positiveRate", "maxDifference": 0.1}},
        ]
    )
    d = decide(two_gates, meta(), validating(), obs(), T0 + MIN)
    assert StartGateJob("bias", "v2", V2, "churn-v2-bias-6955b900") in d.actions
    assert [g.phase for g in d.status.gates] == [GatePhase.RUNNING, GatePhase.RUNNING]


def test_history_is_bounded() -> None:
    status = progressing(1)
    for i in range(30):
        d = decide(spec(), meta(), status, obs(requests=(request("abort", id_=f"a{i}"),)), T0 + i * MIN)
        d = decide(spec(), meta(), d.status, obs(requests=(request("retry", id_=f"r{i}"),)), T0 + i * MIN)
        status = d.status
    assert len(status.history) == 20
    assert len(status.requests) == 20
    assert status.requests[-1].id == "r29"


def test_request_with_unknown_action_never_acts() -> None:
    req = parse_request('{"id": "x", "action": "delete-everything"}')
    assert isinstance(req, ManualRequest)
    assert req.error.startswith("unknown action")
    d = decide(spec(), meta(), progressing(1), obs(requests=(req,)), T0)
    assert non_events(d) == []
    assert events(d) == ["RequestRejected"]


def test_gate_status_of_a_superseded_rollout_is_stopped() -> None:
    status = validating()
    d = decide(spec(model={"name": "churn", "version": "v3", "uri": V3}), meta(3), status, obs(), T0)
    assert DeleteJob("gate-job") in d.actions
    assert d.status.gates[0] == GateStatus(
        name="holdout",
        version="v3",
        phase=GatePhase.RUNNING,
        job_name="churn-v3-holdout-6955b900",
        started_at=T0,
    )
