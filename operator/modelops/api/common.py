"""Shared building blocks of the API: the base model, durations, conditions, metric templates."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from pydantic.alias_generators import to_camel

GROUP = "modelops.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

#: Kubernetes-style duration: one or more of ``<n>d``, ``<n>h``, ``<n>m``, ``<n>s`` in that order.
DURATION_PATTERN = r"^([0-9]+d)?([0-9]+h)?([0-9]+m)?([0-9]+s)?$"
_DURATION_RE = re.compile(r"^(?:(?P<d>[0-9]+)d)?(?:(?P<h>[0-9]+)h)?(?:(?P<m>[0-9]+)m)?(?:(?P<s>[0-9]+)s)?$")

#: A DNS-1123 label, as Kubernetes names of Deployments and Services must be.
NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
#: A version becomes part of object names and label values: lower-case alphanumerics, '-' and '.'.
VERSION_PATTERN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"

Duration = Annotated[str, StringConstraints(pattern=DURATION_PATTERN, min_length=2, max_length=32)]
Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN, min_length=1, max_length=63)]
VersionStr = Annotated[str, StringConstraints(pattern=VERSION_PATTERN, min_length=1, max_length=40)]
Weight = Annotated[int, Field(ge=0, le=100)]


def parse_duration(text: str) -> timedelta:
    """Parse a Kubernetes-style duration.

    >>> parse_duration("30s")
    datetime.timedelta(seconds=30)
    >>> parse_duration("1h30m")
    datetime.timedelta(seconds=5400)
    >>> parse_duration("90d").days
    90
    """
    match = _DURATION_RE.match(text)
    if not text or match is None or not any(match.groupdict().values()):
        raise ValueError(f"invalid duration {text!r}: expected e.g. 30s, 5m, 1h30m, 7d")
    parts = {k: int(v) if v else 0 for k, v in match.groupdict().items()}
    return timedelta(days=parts["d"], hours=parts["h"], minutes=parts["m"], seconds=parts["s"])


def format_duration(delta: timedelta) -> str:
    """The shortest duration string for a whole number of seconds.

    >>> format_duration(timedelta(seconds=5400))
    '1h30m'
    >>> format_duration(timedelta(0))
    '0s'
    """
    total = int(delta.total_seconds())
    if total <= 0:
        return "0s"
    out = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if total >= size:
            out.append(f"{total // size}{unit}")
            total %= size
    return "".join(out)


class ApiModel(BaseModel):
    """Base of every API object: camelCase on the wire, unknown fields rejected, validated on assignment."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        validate_assignment=False,
        use_enum_values=True,
        allow_inf_nan=False,
    )

    def to_k8s(self) -> dict[str, Any]:
        """The object as the API server stores it: camelCase keys, no nulls."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class Condition(ApiModel):
    """A Kubernetes-style condition (metav1.Condition)."""

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str = Field(default="", max_length=1024)
    message: str = Field(default="", max_length=32768)
    last_transition_time: datetime | None = None
    observed_generation: int | None = Field(default=None, ge=0)


class Threshold(ApiModel):
    """Bounds on one value: ``min`` and/or ``max``; at least one, and ``min < max`` when both."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.min) || has(self.max)",
                    "message": "at least one of min and max is required",
                },
                {
                    "rule": "!has(self.min) || !has(self.max) || self.min < self.max",
                    "message": "min must be less than max",
                },
            ]
        }
    )

    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _bounds(self) -> Threshold:
        if self.min is None and self.max is None:
            raise ValueError("at least one of min and max is required")
        if self.min is not None and self.max is not None and not self.min < self.max:
            raise ValueError(f"min ({self.min}) must be less than max ({self.max})")
        return self

    def higher_is_better(self) -> bool:
        """A metric with only a lower bound improves upwards; one with an upper bound improves downwards."""
        return self.max is None


class Baseline(ApiModel):
    """Compare the candidate with the stable version on the same query.

    ``maxDegradation`` is in the metric's own units: for a metric where higher is better (only ``min`` set) the
    candidate fails when ``stable - candidate > maxDegradation``; where lower is better (``max`` set) when
    ``candidate - stable > maxDegradation``. ``direction`` overrides that inference.
    """

    max_degradation: float = Field(ge=0)
    direction: Literal["HigherIsBetter", "LowerIsBetter"] | None = None


class Metric(Threshold):
    """One metric checked by PromQL against thresholds, owned by a team.

    The query is a template: ``{{ namespace }}``, ``{{ model }}``, ``{{ version }}`` and ``{{ interval }}`` are
    replaced by escaped values, never pasted raw.
    """

    name: Name
    owner: str = Field(default="", max_length=63, description="the team that owns this metric")
    query: str = Field(min_length=1, max_length=8192)
    baseline: Baseline | None = None

    def improves_upwards(self) -> bool:
        if self.baseline is not None and self.baseline.direction is not None:
            return self.baseline.direction == "HigherIsBetter"
        return self.higher_is_better()


def require_unique(names: list[str], what: str) -> None:
    seen: set[str] = set()
    for n in names:
        if n in seen:
            raise ValueError(f"duplicate {what} name {n!r}")
        seen.add(n)


UNIQUE_NAMES_RULE = "self.all(a, self.filter(b, b.name == a.name).size() == 1)"
