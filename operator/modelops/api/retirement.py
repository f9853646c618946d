"""``ModelRetirement``: the retirement plan of one ModelDeployment (or one version of it)."""

from __future__ import annotations

import itertools
from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from .common import ApiModel, Condition, Duration, Name, VersionStr, Weight, parse_duration
from .deployment import ObjectMeta

KIND = "ModelRetirement"
PLURAL = "modelretirements"

#: The default zero-traffic query: requests per second still reaching the retired model.
DEFAULT_ZERO_TRAFFIC_QUERY = (
    'sum(rate(model_requests_total{namespace="{{ namespace }}",model="{{ model }}",'
    'version="{{ version }}"}[{{ interval }}]))'
)


class DrainSpec(ApiModel):
    """How traffic leaves the retired model: each step is the percent moved to the replacement."""

    steps: list[Weight] = Field(
        default_factory=lambda: [25, 50, 75, 100],
        min_length=1,
        max_length=100,
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.all(s, self.filter(t, t == s).size() == 1) && self.isSorted()",
                    "message": "drain steps must be strictly increasing",
                },
                {"rule": "self[size(self) - 1] == 100", "message": "the last drain step must be 100"},
            ]
        },
    )
    interval: Duration = Field(default="1h", description="how long each drain step is held")

    @field_validator("steps")
    @classmethod
    def _steps(cls, v: list[int]) -> list[int]:
        for a, b in itertools.pairwise(v):
            if not a < b:
                raise ValueError(f"drain steps must be strictly increasing, got {v}")
        if v[-1] != 100:
            raise ValueError(f"the last drain step must be 100, got {v[-1]}")
        return v


class ZeroTrafficCheck(ApiModel):
    """Before anything is deleted, this query (a template like a metric's) must read at most ``maxValue``."""

    query: str = Field(default=DEFAULT_ZERO_TRAFFIC_QUERY, min_length=1, max_length=8192)
    max_value: float = Field(default=0.0, ge=0)
    window: Duration = Field(default="5m", description="the {{ interval }} of the query")


CleanupKind = Literal["Deployment", "Service", "Job", "ModelDeployment"]


class CleanupSpec(ApiModel):
    """What the retirement deletes: only objects that belong to the retired model (label and owner both match)."""

    keep: list[CleanupKind] = Field(default_factory=list, description="kinds to leave in place")


class ModelRetirementSpec(ApiModel):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!(has(self.notBefore) && has(self.afterReplacementPromoted))",
                    "message": "notBefore and afterReplacementPromoted are mutually exclusive",
                },
                {
                    "rule": "!has(self.afterReplacementPromoted) || has(self.replacement)",
                    "message": "afterReplacementPromoted needs a replacement",
                },
            ]
        }
    )

    model_deployment: Name = Field(description="the ModelDeployment to retire")
    version: VersionStr | None = Field(default=None, description="retire only this version of it")
    replacement: Name | None = Field(default=None, description="the ModelDeployment that takes the traffic")
    not_before: datetime | None = None
    after_replacement_promoted: Duration | None = None
    drain: DrainSpec = Field(default_factory=DrainSpec)
    cleanup: CleanupSpec = Field(default_factory=CleanupSpec)
    zero_traffic_check: ZeroTrafficCheck = Field(default_factory=ZeroTrafficCheck)

    @model_validator(mode="after")
    def _schedule(self) -> ModelRetirementSpec:
        if self.not_before is not None and self.after_replacement_promoted is not None:
            raise ValueError("notBefore and afterReplacementPromoted are mutually exclusive")
        if self.after_replacement_promoted is not None:
            if self.replacement is None:
                raise ValueError("afterReplacementPromoted needs a replacement")
            parse_duration(self.after_replacement_promoted)
        if self.replacement is not None and self.replacement == self.model_deployment:
            raise ValueError("replacement must differ from modelDeployment")
        return self


class RetirementPhase(StrEnum):
    SCHEDULED = "Scheduled"
    DRAINING = "Draining"
    CLEANING_UP = "CleaningUp"
    RETIRED = "Retired"
    BLOCKED = "Blocked"
    INVALID = "InvalidSpec"


class RemovedObject(ApiModel):
    kind: str
    name: str
    at: datetime | None = None


class ModelRetirementStatus(ApiModel):
    phase: RetirementPhase = RetirementPhase.SCHEDULED
    message: str = ""
    version: str | None = Field(default=None, description="the version retired, fixed when draining starts")
    scheduled_for: datetime | None = None
    drain_step: int | None = Field(default=None, ge=0)
    drained_weight: int = Field(default=0, ge=0, le=100, description="percent moved to the replacement")
    step_started_at: datetime | None = None
    started_at: datetime | None = None
    retired_at: datetime | None = None
    blocked_reason: str | None = None
    removed: list[RemovedObject] = Field(default_factory=list)
    conditions: list[Condition] = Field(default_factory=list)
    observed_generation: int | None = None


class ModelRetirement(ApiModel):
    api_version: Literal["modelops.io/v1alpha1"] = "modelops.io/v1alpha1"
    kind: Literal["ModelRetirement"] = "ModelRetirement"
    metadata: ObjectMeta
    spec: ModelRetirementSpec
    status: ModelRetirementStatus = Field(default_factory=ModelRetirementStatus)
