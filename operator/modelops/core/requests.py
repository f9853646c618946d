"""Manual requests: promote, abort, pause, resume, approve, retry, made without editing the spec.

GitOps tools revert spec edits, so a person asks through the annotation ``modelops.io/request`` holding JSON
``{"id": "...", "action": "...", "team": "...", "by": "..."}``. The operator consumes each id once (it records it
in ``status.lastRequest`` and ``status.requests``), so leaving the annotation in place is harmless.
"""

from __future__ import annotations

import hashlib
import json
from enum import StrEnum

from .observations import ManualRequest

#: The annotation a person (or ``kubectl modelops``) writes a request to.
REQUEST_ANNOTATION = "modelops.io/request"


class RequestAction(StrEnum):
    PROMOTE = "promote"
    ABORT = "abort"
    PAUSE = "pause"
    RESUME = "resume"
    APPROVE = "approve"
    RETRY = "retry"


def parse_request(text: str | None) -> ManualRequest | None:
    """The request in an annotation's value; None when there is none. A malformed request is returned with
    ``error`` set (and an id derived from its text), so it is rejected once, visibly, rather than ignored.

    >>> parse_request('{"id": "r1", "action": "approve", "team": "risk", "by": "ana"}')
    ManualRequest(id='r1', action='approve', team='risk', by='ana', error='')
    >>> parse_request('{"id": "r2", "action": "approve"}').error
    'approve needs a team'
    >>> parse_request("promote please").error
    'not JSON: expected {"id": ..., "action": ...}'
    """
    if text is None or not text.strip():
        return None
    fallback_id = "sha256-" + hashlib.sha256(text.encode()).hexdigest()[:16]
    try:
        data = json.loads(text)
    except ValueError:
        return ManualRequest(id=fallback_id, action="", error='not JSON: expected {"id": ..., "action": ...}')
    if not isinstance(data, dict):
        return ManualRequest(id=fallback_id, action="", error="expected a JSON object")
    raw_id, action, team, by = (data.get(k) for k in ("id", "action", "team", "by"))
    fields = (raw_id, action, team, by)
    if not all(v is None or isinstance(v, str) for v in fields):
        return ManualRequest(id=fallback_id, action="", error="id, action, team and by must be strings")
    req = ManualRequest(id=raw_id or fallback_id, action=action or "", team=team or "", by=by or "")
    allowed = [a.value for a in RequestAction]
    if req.action not in allowed:
        return _with_error(req, f"unknown action {req.action!r}: expected one of {', '.join(allowed)}")
    if req.action == RequestAction.APPROVE and not req.team:
        return _with_error(req, "approve needs a team")
    return req


def _with_error(req: ManualRequest, error: str) -> ManualRequest:
    return ManualRequest(id=req.id, action=req.action, team=req.team, by=req.by, error=error)


def describe(req: ManualRequest) -> str:
    """``promote by ana`` / ``approve for risk by ana``: how a request is named in events."""
    who = f" by {req.by}" if req.by else ""
    team = f" for {req.team}" if req.team else ""
    return f"{req.action or 'request'}{team}{who} (id {req.id})"
