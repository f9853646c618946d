"""``ModelDeployment``: one logical model served in one namespace, its rollout policy and its status."""

from __future__ import annotations

import itertools
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from croniter import croniter
from pydantic import ConfigDict, Field, field_validator, model_validator

from .common import (
    UNIQUE_NAMES_RULE,
    ApiModel,
    Baseline,
    Condition,
    Duration,
    Metric,
    Name,
    VersionStr,
    Weight,
    parse_duration,
    require_unique,
)

KIND = "ModelDeployment"
PLURAL = "modeldeployments"

#: An embedded Kubernetes object (a pod or Job template): kept as given, not checked field by field.
Embedded = Annotated[
    dict[str, Any],
    Field(json_schema_extra={"x-kubernetes-preserve-unknown-fields": True}),
]


# ----------------------------------------------------------------------------------------------- spec


class ModelRef(ApiModel):
    name: Name = Field(description="the logical model's name; used in labels and object names")
    version: VersionStr = Field(description="the version to run; changing it starts a rollout")
    uri: str = Field(min_length=1, max_length=2048, description="where the artifact of this version lives")


class EnvVar(ApiModel):
    name: str = Field(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
    value: str = ""


class Resources(ApiModel):
    requests: dict[str, str] = Field(default_factory=dict)
    limits: dict[str, str] = Field(default_factory=dict)


class ServerSpec(ApiModel):
    """Enough of a pod template to run a model server: each version gets its own Deployment and Service."""

    image: str = Field(min_length=1, max_length=1024)
    port: int = Field(default=8080, ge=1, le=65535)
    replicas: int = Field(default=1, ge=0, le=1000)
    resources: Resources | None = None
    env: list[EnvVar] = Field(default_factory=list)
    command: list[str] = Field(default_factory=list)
    args: list[str] = Field(default_factory=list)
    readiness_path: str = Field(default="/healthz", pattern=r"^/.*")
    metrics_path: str = Field(default="/metrics", pattern=r"^/.*")


class GatewayAPIRouter(ApiModel):
    http_route: Name = Field(description="the HTTPRoute whose rule the operator manages")
    rule_name: str | None = Field(
        default=None, max_length=253, description="the rule (by name) to manage; the first rule when unset"
    )
    wait_for_acceptance: bool = Field(
        default=True,
        description=(
            "a step's weights count as set (its pause and analysis start) only once every parent Gateway's "
            "controller reports the route Accepted and ResolvedRefs for the generation written (status.parents); "
            "turn off only where no controller reports on the route"
        ),
    )


class IstioRouter(ApiModel):
    virtual_service: Name = Field(description="the VirtualService whose http route the operator manages")
    route_name: str | None = Field(
        default=None, max_length=253, description="the http route (by name) to manage; the first when unset"
    )
    host: str | None = Field(default=None, max_length=253, description="destination host; the Service when unset")


class ReplicasRouter(ApiModel):
    service: Name = Field(description="the Service that selects every version's pods by the model label")


class TrafficSpec(ApiModel):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "(self.router == 'gatewayAPI') == has(self.gatewayAPI)",
                    "message": "gatewayAPI settings are required for router gatewayAPI and forbidden otherwise",
                },
                {
                    "rule": "(self.router == 'istio') == has(self.istio)",
                    "message": "istio settings are required for router istio and forbidden otherwise",
                },
                {
                    "rule": "(self.router == 'replicas') == has(self.replicas)",
                    "message": "replicas settings are required for router replicas and forbidden otherwise",
                },
            ]
        }
    )

    router: Literal["gatewayAPI", "istio", "replicas"]
    gateway_api: GatewayAPIRouter | None = Field(default=None, alias="gatewayAPI")
    istio: IstioRouter | None = None
    replicas: ReplicasRouter | None = None

    @model_validator(mode="after")
    def _settings_match_router(self) -> TrafficSpec:
        settings = {"gatewayAPI": self.gateway_api, "istio": self.istio, "replicas": self.replicas}
        for router, value in settings.items():
            if router == self.router and value is None:
                raise ValueError(f"{router} settings are required when router is {router!r}")
            if router != self.router and value is not None:
                raise ValueError(f"{router} settings are forbidden when router is {self.router!r}")
        return self


class Step(ApiModel):
    weight: Weight = Field(description="percent of traffic sent to the candidate during this step")
    pause: Duration = Field(default="0s", description="how long the step is held (analysis runs meanwhile)")


def _check_steps(steps: list[Step]) -> list[Step]:
    if not steps:
        raise ValueError("at least one step is required")
    weights = [s.weight for s in steps]
    for a, b in itertools.pairwise(weights):
        if not a < b:
            raise ValueError(f"step weights must be strictly increasing, got {weights}")
    if weights[-1] != 100:
        raise ValueError(f"the last step must have weight 100, got {weights[-1]}")
    if weights[0] == 0:
        raise ValueError("the first step must send some traffic (weight > 0)")
    return steps


DEFAULT_STEPS = [
    Step(weight=5, pause="5m"),
    Step(weight=25, pause="5m"),
    Step(weight=50, pause="5m"),
    Step(weight=100),
]


class Analysis(ApiModel):
    interval: Duration = "1m"
    failure_limit: int = Field(default=2, ge=0, le=1000, description="failed checks tolerated; one more rolls back")
    on_metrics_unavailable: Literal["Hold", "Rollback"] = "Hold"
    max_unavailable_checks: int = Field(
        default=10,
        ge=1,
        le=10000,
        description="unavailable checks in a row after which the rollout rolls back",
    )
    metrics: list[Metric] = Field(
        default_factory=list,
        max_length=64,
        json_schema_extra={
            "x-kubernetes-validations": [{"rule": UNIQUE_NAMES_RULE, "message": "metric names must be unique"}]
        },
    )

    @field_validator("metrics")
    @classmethod
    def _unique(cls, v: list[Metric]) -> list[Metric]:
        require_unique([m.name for m in v], "metric")
        return v

    @field_validator("interval")
    @classmethod
    def _positive(cls, v: str) -> str:
        if parse_duration(v).total_seconds() <= 0:
            raise ValueError("interval must be positive")
        return v


class RolloutSpec(ApiModel):
    steps: list[Step] = Field(
        default_factory=lambda: [s.model_copy() for s in DEFAULT_STEPS],
        min_length=1,
        max_length=100,
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.all(s, self.filter(t, t.weight == s.weight).size() == 1)"
                    " && self.map(s, s.weight).isSorted()",
                    "message": "step weights must be strictly increasing",
                },
                {
                    "rule": "self[size(self) - 1].weight == 100",
                    "message": "the last step must have weight 100",
                },
            ]
        },
    )
    analysis: Analysis = Field(default_factory=Analysis)
    progress_deadline: Duration = Field(default="1h", description="no step advance for this long rolls back")
    scale_down_delay: Duration = Field(default="10m", description="old stable kept this long after promotion")

    @field_validator("steps")
    @classmethod
    def _steps(cls, v: list[Step]) -> list[Step]:
        return _check_steps(v)


class GateCheckBaseline(Baseline):
    """A gate check's comparison with the stable version's last results of the same gate.

    Without a baseline (the first version, a gate the stable version did not pass, a result it did not report) the
    comparison cannot be made: it is reported as not judged (``status.gates[].notJudged``), never counted as passed.
    ``required`` makes that a failure of the gate.
    """

    required: bool = Field(
        default=False,
        description="fail the gate when there is no baseline to compare with (by default the comparison is reported"
        " as not judged and the gate decides on its other checks)",
    )


class GateCheck(ApiModel):
    """A threshold on one value of a gate's JSON result (a dotted path into ``metrics``)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.min) || has(self.max) || has(self.baseline)",
                    "message": "a gate check needs min, max or baseline",
                },
                {
                    "rule": "!has(self.min) || !has(self.max) || self.min < self.max",
                    "message": "min must be less than max",
                },
            ]
        }
    )

    result: str = Field(min_length=1, max_length=253, description="key in the gate's result metrics")
    min: float | None = None
    max: float | None = None
    baseline: GateCheckBaseline | None = Field(
        default=None, description="compared with the stable version's last result"
    )

    @model_validator(mode="after")
    def _bounds(self) -> GateCheck:
        if self.min is None and self.max is None and self.baseline is None:
            raise ValueError("a gate check needs min, max or baseline")
        if self.min is not None and self.max is not None and not self.min < self.max:
            raise ValueError(f"min ({self.min}) must be less than max ({self.max})")
        return self

    def improves_upwards(self) -> bool:
        if self.baseline is not None and self.baseline.direction is not None:
            return self.baseline.direction == "HigherIsBetter"
        return self.max is None


class Fairness(ApiModel):
    """A fairness audit over per-group rates the gate reports under ``groups.<group>.<result>``.

    ``minRatio`` is the lowest allowed ratio of the smallest to the largest group rate (0.8 is the "four-fifths
    rule"); ``maxDifference`` the largest allowed gap between them.
    """

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.minRatio) || has(self.maxDifference)",
                    "message": "fairness needs minRatio or maxDifference",
                }
            ]
        }
    )

    result: str = Field(min_length=1, max_length=253, description="per-group rate, e.g. positiveRate")
    min_ratio: float | None = Field(default=None, gt=0, le=1)
    max_difference: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _one(self) -> Fairness:
        if self.min_ratio is None and self.max_difference is None:
            raise ValueError("fairness needs minRatio or maxDifference")
        return self


class Gate(ApiModel):
    """A pre-deployment test run as a Job; it writes JSON results to its termination message.

    A termination message holds at most 4096 bytes: a result cut at that limit fails the gate, naming the limit.
    """

    name: Name
    owner: str = Field(default="", max_length=63)
    template: Embedded = Field(description="a Job spec template (pod template under spec.template)")
    timeout: Duration = "30m"
    checks: list[GateCheck] = Field(default_factory=list, max_length=64)
    fairness: Fairness | None = None


class Approval(ApiModel):
    team: Name = Field(description="a team that must approve before promotion")


class MonitoringSpec(ApiModel):
    interval: Duration = "5m"
    degraded_after: int = Field(
        default=3,
        ge=1,
        le=1000,
        description="failed checks in a row before the model is Degraded (and checks without data in a row before"
        " Degraded is Unknown, reason NoData)",
    )
    metrics: list[Metric] = Field(
        default_factory=list,
        max_length=64,
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": UNIQUE_NAMES_RULE, "message": "metric names must be unique"},
                {"rule": "self.all(m, !has(m.baseline))", "message": "monitoring metrics have no baseline"},
            ]
        },
    )

    @field_validator("metrics")
    @classmethod
    def _unique(cls, v: list[Metric]) -> list[Metric]:
        require_unique([m.name for m in v], "monitoring metric")
        for m in v:
            if m.baseline is not None:
                raise ValueError(f"monitoring metric {m.name!r}: baseline is only for rollout analysis")
        return v


class RetrainingSpec(ApiModel):
    """A retraining Job; its JSON result ``{"version": ..., "uri": ...}`` becomes the next candidate."""

    template: Embedded = Field(description="a Job spec template")
    schedule: str | None = Field(default=None, max_length=128, description="cron schedule, e.g. '0 3 1 * *'")
    on_degradation: bool = False
    min_interval: Duration = Field(default="1d", description="never two retraining runs closer than this")
    timeout: Duration = "6h"

    @field_validator("schedule")
    @classmethod
    def _cron(cls, v: str | None) -> str | None:
        if v is not None and not croniter.is_valid(v):
            raise ValueError(f"invalid cron expression {v!r}")
        return v


class ModelDeploymentSpec(ApiModel):
    model: ModelRef
    server: ServerSpec
    traffic: TrafficSpec
    rollout: RolloutSpec = Field(default_factory=RolloutSpec)
    gates: list[Gate] = Field(
        default_factory=list,
        max_length=32,
        json_schema_extra={
            "x-kubernetes-validations": [{"rule": UNIQUE_NAMES_RULE, "message": "gate names must be unique"}]
        },
    )
    approvals: list[Approval] = Field(default_factory=list, max_length=32)
    monitoring: MonitoringSpec | None = None
    retraining: RetrainingSpec | None = None

    @field_validator("gates")
    @classmethod
    def _unique_gates(cls, v: list[Gate]) -> list[Gate]:
        require_unique([g.name for g in v], "gate")
        return v

    @field_validator("approvals")
    @classmethod
    def _unique_teams(cls, v: list[Approval]) -> list[Approval]:
        require_unique([a.team for a in v], "approval team")
        return v


# --------------------------------------------------------------------------------------------- status


class Phase(StrEnum):
    PENDING = "Pending"
    VALIDATING = "Validating"
    PROGRESSING = "Progressing"
    PAUSED = "Paused"
    PROMOTED = "Promoted"
    ROLLED_BACK = "RolledBack"
    FAILED = "Failed"
    INVALID = "InvalidSpec"


class Verdict(StrEnum):
    PASS = "Pass"
    FAIL = "Fail"
    NO_DATA = "NoData"
    ERROR = "Error"


class MetricStatus(ApiModel):
    name: str
    owner: str = ""
    value: float | None = None
    stable_value: float | None = None
    min: float | None = None
    max: float | None = None
    verdict: Verdict
    message: str = ""
    at: datetime | None = None


class AnalysisStatus(ApiModel):
    failed_checks: int = 0
    unavailable_checks: int = 0
    consecutive_unavailable: int = 0
    passed_checks: int = 0
    last_check_at: datetime | None = None
    metrics: list[MetricStatus] = Field(default_factory=list)


class GatePhase(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    PASSED = "Passed"
    FAILED = "Failed"


class GateStatus(ApiModel):
    name: str
    version: str = ""
    phase: GatePhase = GatePhase.PENDING
    job_name: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    results: dict[str, Any] | None = Field(
        default=None, json_schema_extra={"x-kubernetes-preserve-unknown-fields": True}
    )
    message: str = ""
    not_judged: list[str] = Field(
        default_factory=list,
        description="the comparisons with the stable version that could not be made, and why (no baseline):"
        " not counted as passed",
    )


class GateBaseline(ApiModel):
    """The numbers one gate reported for the stable version: the baseline a candidate's checks compare with.

    ``metrics`` is flattened to dotted paths (``{"auc": {"macro": 0.8}}`` becomes ``{"auc.macro": 0.8}``).
    """

    name: str
    version: str = ""
    metrics: dict[str, float] = Field(default_factory=dict)


class ApprovalStatus(ApiModel):
    team: str
    approved_at: datetime
    by: str = ""


class MonitoringStatus(ApiModel):
    last_check_at: datetime | None = None
    consecutive_failures: int = 0
    consecutive_no_data: int = Field(
        default=0,
        description="checks in a row that could not be judged (a metric without data or its query failing);"
        " degradedAfter of them set Degraded=Unknown (NoData)",
    )
    metrics: list[MetricStatus] = Field(default_factory=list)


class RetrainingStatus(ApiModel):
    last_started_at: datetime | None = None
    last_finished_at: datetime | None = None
    job_name: str | None = None
    phase: Literal["Running", "Succeeded", "Failed"] | None = None
    reason: str = ""
    produced_version: str | None = None
    produced_uri: str | None = None
    consumed_at: datetime | None = Field(
        default=None, description="when the produced version was taken as a candidate (or dropped)"
    )
    message: str = ""


class HistoryEntry(ApiModel):
    version: str
    outcome: Literal["Promoted", "RolledBack", "Failed", "Superseded", "Aborted", "Initial"]
    reason: str = ""
    started_at: datetime | None = None
    finished_at: datetime | None = None


class RequestRecord(ApiModel):
    id: str = Field(description="the ModelRequest's uid")
    #: the ModelRequest's name
    name: str = ""
    action: str
    by: str = ""
    at: datetime | None = None
    accepted: bool | None = None
    result: str = ""


#: How many rollouts ``status.history`` keeps.
HISTORY_LIMIT = 20


class ModelDeploymentStatus(ApiModel):
    phase: Phase = Phase.PENDING
    message: str = ""
    stable_version: str | None = None
    stable_uri: str | None = None
    candidate_version: str | None = None
    candidate_uri: str | None = None
    candidate_source: Literal["Spec", "Retraining"] | None = None
    canary_weight: int = Field(default=0, ge=0, le=100)
    current_step: int | None = Field(default=None, ge=0)
    step_started_at: datetime | None = None
    rollout_started_at: datetime | None = None
    last_progress_at: datetime | None = None
    paused: bool = False
    previous_stable_version: str | None = None
    previous_stable_uri: str | None = None
    promoted_at: datetime | None = None
    analysis: AnalysisStatus = Field(default_factory=AnalysisStatus)
    gates: list[GateStatus] = Field(default_factory=list)
    stable_gates: list[GateBaseline] = Field(
        default_factory=list, description="the stable version's gate results: the baseline of the next candidate"
    )
    approvals: list[ApprovalStatus] = Field(default_factory=list)
    monitoring: MonitoringStatus = Field(default_factory=MonitoringStatus)
    retraining: RetrainingStatus = Field(default_factory=RetrainingStatus)
    conditions: list[Condition] = Field(default_factory=list)
    observed_generation: int | None = None
    observed_spec_version: str | None = Field(
        default=None, description="spec.model.version when last seen: a different one starts a rollout"
    )
    last_request: RequestRecord | None = None
    requests: list[RequestRecord] = Field(
        default_factory=list, max_length=HISTORY_LIMIT, description="the manual requests consumed, newest last"
    )
    history: list[HistoryEntry] = Field(default_factory=list, max_length=HISTORY_LIMIT)


class ObjectMeta(ApiModel):
    """The part of metadata the operator reads."""

    model_config = ConfigDict(extra="ignore")

    name: str
    namespace: str = "default"
    uid: str | None = None
    generation: int | None = None
    resource_version: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class ModelDeployment(ApiModel):
    api_version: Literal["modelops.io/v1alpha1"] = "modelops.io/v1alpha1"
    kind: Literal["ModelDeployment"] = "ModelDeployment"
    metadata: ObjectMeta
    spec: ModelDeploymentSpec
    status: ModelDeploymentStatus = Field(default_factory=ModelDeploymentStatus)
