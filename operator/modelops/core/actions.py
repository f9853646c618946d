"""What the core asks the outside world to do: plain data, executed in order by the handlers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

EventType = Literal["Normal", "Warning"]


@dataclass(frozen=True, slots=True)
class EnsureWorkload:
    """Create or update one version's Deployment and Service (idempotent)."""

    version: str
    uri: str
    replicas: int


@dataclass(frozen=True, slots=True)
class DeleteWorkload:
    """Delete one version's Deployment and Service (only objects the operator owns)."""

    version: str


@dataclass(frozen=True, slots=True)
class SetWeights:
    """Set the traffic split: percent per version, each 0..100, summing to 100."""

    weights: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class StartGateJob:
    gate: str
    version: str
    uri: str
    job_name: str


@dataclass(frozen=True, slots=True)
class StartRetrainingJob:
    """Start the retraining Job; ``base_version``/``base_uri`` is the stable model it retrains."""

    job_name: str
    base_version: str
    base_uri: str
    reason: str


@dataclass(frozen=True, slots=True)
class DeleteJob:
    """Stop and delete a Job the operator started (superseded gate, timed-out retraining)."""

    job_name: str


@dataclass(frozen=True, slots=True)
class EmitEvent:
    type: EventType
    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class AnswerRequest:
    """Write a ModelRequest's answer into its status; carried out once the ModelDeployment's status (which records
    the request as consumed) is written, so that a request is never answered without being applied."""

    name: str
    applied: bool
    message: str


@dataclass(frozen=True, slots=True)
class DrainTraffic:
    """Retirement: send ``replacement_weight`` percent of the retired deployment's traffic to the replacement."""

    model_deployment: str
    replacement: str
    replacement_weight: int


@dataclass(frozen=True, slots=True)
class DeleteObject:
    """Retirement: delete one object, with ``uid`` as a precondition (it must still be the object that was judged)."""

    kind: str
    name: str
    uid: str | None


Action = (
    EnsureWorkload
    | DeleteWorkload
    | SetWeights
    | StartGateJob
    | StartRetrainingJob
    | DeleteJob
    | EmitEvent
    | AnswerRequest
    | DrainTraffic
    | DeleteObject
)
