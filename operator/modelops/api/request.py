"""``ModelRequest``: one manual request to a ModelDeployment (promote, abort, pause, resume, approve, retry).

A request is an object of its own rather than a field or an annotation of the ModelDeployment: two requests made in
the same second are two objects, so neither can overwrite the other, and the API server authorizes each one on its
own (RBAC on ``create``; the chart's ValidatingAdmissionPolicy checks that ``spec.requestedBy`` is the name it
authenticated and that an approver belongs to a group mapped to the team). The spec cannot change once created; the
operator answers in ``status`` (``Applied`` or ``Refused``, with its message) and with an Event on the
ModelDeployment.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from .common import ApiModel, Name
from .deployment import ObjectMeta

KIND = "ModelRequest"
PLURAL = "modelrequests"


class RequestAction(StrEnum):
    PROMOTE = "promote"
    ABORT = "abort"
    PAUSE = "pause"
    RESUME = "resume"
    APPROVE = "approve"
    RETRY = "retry"


class ModelRequestSpec(ApiModel):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": "self.action != 'approve' || has(self.team)", "message": "approve needs a team"},
                {"rule": "self == oldSelf", "message": "a request cannot be changed once made: create another one"},
            ]
        }
    )

    model_deployment: Name = Field(description="the ModelDeployment the request is for, in the same namespace")
    action: RequestAction
    team: Name | None = Field(default=None, description="the team an approval is for (one of spec.approvals)")
    requested_by: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        description="the creator's user name as the API server authenticated it (the chart's admission policy "
        "refuses any other); an approval must carry it",
    )
    reason: str | None = Field(default=None, max_length=1024, description="why, for the record")

    @model_validator(mode="after")
    def _team(self) -> ModelRequestSpec:
        if self.action == RequestAction.APPROVE and self.team is None:
            raise ValueError("approve needs a team")
        return self


class RequestPhase(StrEnum):
    APPLIED = "Applied"
    REFUSED = "Refused"


class ModelRequestStatus(ApiModel):
    phase: RequestPhase | None = Field(default=None, description="unset until the operator has handled the request")
    message: str = ""
    handled_at: datetime | None = None


class ModelRequest(ApiModel):
    api_version: Literal["modelops.io/v1alpha1"] = "modelops.io/v1alpha1"
    kind: Literal["ModelRequest"] = "ModelRequest"
    metadata: ObjectMeta
    spec: ModelRequestSpec
    status: ModelRequestStatus = Field(default_factory=ModelRequestStatus)
