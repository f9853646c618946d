"""Manual requests: promote, abort, pause, resume, approve, retry, made without editing the spec.

GitOps tools revert spec edits, so a person asks with a ``ModelRequest`` object (``kubectl modelops <action>``, an
Argo CD action, or ``kubectl create``): one object per request, authorized by the API server, so that no request
can overwrite another. The operator consumes each once (by uid, recorded in ``status.lastRequest`` and
``status.requests``) and answers in the request's status.

The annotation ``modelops.io/request`` of earlier versions carried one request at a time, a second one replacing
the first unseen, under a name the client chose: it is no longer obeyed. A request found there is refused, once,
with an Event that says what to do instead.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from modelops.api.request import RequestAction

from .observations import ManualRequest

__all__ = [
    "ANNOTATION_RETIRED",
    "REQUEST_ANNOTATION",
    "RequestAction",
    "annotation_request",
    "describe",
    "parse_request",
    "pending_requests",
]

#: The annotation earlier versions read requests from; a request there is refused (see the module's docstring).
REQUEST_ANNOTATION = "modelops.io/request"
ANNOTATION_RETIRED = (
    "the modelops.io/request annotation is no longer obeyed (a second request written there replaced the first "
    "unseen): create a ModelRequest instead, e.g. kubectl modelops <action> <name>"
)


def parse_request(text: str | None) -> ManualRequest | None:
    """The request in an annotation's value; None when there is none. A malformed request is returned with
    ``error`` set (and an id derived from its text), so it is rejected once, visibly, rather than ignored.

    >>> parse_request('{"id": "r1", "action": "approve", "team": "risk", "by": "ana"}')
    ManualRequest(id='r1', action='approve', team='risk', by='ana', error='', name='')
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
    return ManualRequest(id=req.id, action=req.action, team=req.team, by=req.by, error=error, name=req.name)


def annotation_request(text: str | None) -> ManualRequest | None:
    """A request left in the retired annotation: refused (its parse error, or why the annotation is not obeyed). Its
    id is prefixed, so that an id the writer chose can never stand for a ModelRequest's uid (and refuse it unseen).

    >>> req = annotation_request('{"id": "r1", "action": "promote"}')
    >>> req.id, req.error == ANNOTATION_RETIRED
    ('annotation:r1', True)
    """
    req = parse_request(text)
    if req is None:
        return None
    return ManualRequest(id=f"annotation:{req.id}", action=req.action, team=req.team, by=req.by,
                         error=req.error or ANNOTATION_RETIRED)  # fmt: skip


def pending_requests(objects: Iterable[Mapping[str, Any]]) -> tuple[ManualRequest, ...]:
    """The ModelRequest objects not answered yet (no ``status.phase``), oldest first (creation time, then name).

    >>> objs = [{"metadata": {"name": "b", "uid": "u2", "creationTimestamp": "2026-12-03T10:00:00Z"},
    ...          "spec": {"action": "approve", "team": "risk", "requestedBy": "ana"}},
    ...         {"metadata": {"name": "a", "uid": "u1", "creationTimestamp": "2026-12-03T10:00:00Z"},
    ...          "spec": {"action": "nope"}},
    ...         {"metadata": {"name": "c", "uid": "u3"}, "spec": {"action": "abort"}, "status": {"phase": "Applied"}}]
    >>> [(r.name, r.action, r.team, r.by, r.error[:14]) for r in pending_requests(objs)]
    [('a', 'nope', '', '', 'unknown action'), ('b', 'approve', 'risk', 'ana', '')]
    """
    out = []
    for obj in objects:
        meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
        if (obj.get("status") or {}).get("phase"):
            continue
        req = ManualRequest(
            id=str(meta.get("uid") or meta.get("name") or ""),
            name=str(meta.get("name") or ""),
            action=str(spec.get("action") or ""),
            team=str(spec.get("team") or ""),
            by=str(spec.get("requestedBy") or ""),
        )
        allowed = [a.value for a in RequestAction]
        if req.action not in allowed:
            req = _with_error(req, f"unknown action {req.action!r}: expected one of {', '.join(allowed)}")
        elif req.action == RequestAction.APPROVE and not (req.team and req.by):
            req = _with_error(req, "an approval needs spec.team and spec.requestedBy")
        out.append((str(meta.get("creationTimestamp") or ""), req.name, req))
    return tuple(req for _, _, req in sorted(out, key=lambda t: (t[0], t[1])))


def describe(req: ManualRequest) -> str:
    """``promote by ana (ModelRequest p-1)`` / ``approve for risk by ana ...``: how a request is named in events."""
    who = f" by {req.by}" if req.by else ""
    team = f" for {req.team}" if req.team else ""
    where = f"ModelRequest {req.name}" if req.name else f"id {req.id}"
    return f"{req.action or 'request'}{team}{who} ({where})"
