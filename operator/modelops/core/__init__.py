"""Pure decisions: spec, status, observations and ``now`` in; actions and the new status out.

Nothing in this package reads a clock, the network or the API server (an import-linter contract keeps kopf,
kubernetes, httpx, asyncio and time out of it).
"""

from .actions import (
    Action,
    AnswerRequest,
    DeleteJob,
    DeleteObject,
    DeleteWorkload,
    DrainTraffic,
    EmitEvent,
    EnsureWorkload,
    SetWeights,
    StartGateJob,
    StartRetrainingJob,
)
from .analysis import CheckOutcome, check_outcome, judge_metric
from .backtest import BacktestResult, Sample, TimelineEntry, replay
from .conditions import ConditionType, Reason, get_condition, set_condition
from .deployment import (
    Decision,
    analysis_due,
    decide,
    desired_weights,
    desired_workloads,
    mark_blocked,
    mark_invalid_spec,
    monitoring_due,
)
from .gates import GateJudgement, audit_fairness, judge_gate
from .naming import gate_job_name, retraining_job_name, workload_name
from .observations import (
    DeploymentObservations,
    DeploymentView,
    JobResult,
    JobState,
    ManualRequest,
    ObservedObject,
    OwnerRef,
    RetirementObservations,
)
from .readings import Reading, ReadingKind
from .requests import REQUEST_ANNOTATION, RequestAction, annotation_request, parse_request, pending_requests
from .retirement import RetirementDecision, belongs, plan_retirement
from .steps import canary_weights, effective_weight, split_replicas

__all__ = [
    "REQUEST_ANNOTATION",
    "Action",
    "AnswerRequest",
    "BacktestResult",
    "CheckOutcome",
    "ConditionType",
    "Decision",
    "DeleteJob",
    "DeleteObject",
    "DeleteWorkload",
    "DeploymentObservations",
    "DeploymentView",
    "DrainTraffic",
    "EmitEvent",
    "EnsureWorkload",
    "GateJudgement",
    "JobResult",
    "JobState",
    "ManualRequest",
    "ObservedObject",
    "OwnerRef",
    "Reading",
    "ReadingKind",
    "Reason",
    "RequestAction",
    "RetirementDecision",
    "RetirementObservations",
    "Sample",
    "SetWeights",
    "StartGateJob",
    "StartRetrainingJob",
    "TimelineEntry",
    "analysis_due",
    "annotation_request",
    "audit_fairness",
    "belongs",
    "canary_weights",
    "check_outcome",
    "decide",
    "desired_weights",
    "desired_workloads",
    "effective_weight",
    "gate_job_name",
    "get_condition",
    "judge_gate",
    "judge_metric",
    "mark_blocked",
    "mark_invalid_spec",
    "monitoring_due",
    "parse_request",
    "pending_requests",
    "plan_retirement",
    "replay",
    "retraining_job_name",
    "set_condition",
    "split_replicas",
    "workload_name",
]
