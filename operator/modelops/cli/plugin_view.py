"""The pure half of ``kubectl modelops``: phase checks, request and retirement bodies, and what is printed.

Kept free of I/O (objects in, strings and dicts out, ``now`` a parameter) so every rule and every line of output is
unit-tested without a cluster; :mod:`modelops.cli.kubectl` only talks to the API server.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from modelops.api import (
    ModelDeploymentSpec,
    ModelDeploymentStatus,
    ModelRetirementSpec,
    Phase,
    RequestPhase,
    format_duration,
    parse_duration,
)
from modelops.api.common import API_VERSION
from modelops.core.deployment import CANDIDATE_LIVE_PHASES as LIVE_PHASES
from modelops.core.deployment import ROLLOUT_PHASES
from modelops.core.requests import RequestAction

#: Phases ``watch`` stops at: nothing moves any more without a new version or a request.
FINAL_PHASES = frozenset({Phase.PROMOTED, Phase.ROLLED_BACK, Phase.FAILED, Phase.INVALID})


class PluginError(Exception):
    """A one-line error for the user; ``kubectl modelops`` prints it and exits 1."""


# -------------------------------------------------------------------------------------------- parsing


def parse_status(obj: dict[str, Any]) -> ModelDeploymentStatus:
    try:
        return ModelDeploymentStatus.model_validate(obj.get("status") or {})
    except ValueError:
        return ModelDeploymentStatus()


def parse_spec(obj: dict[str, Any]) -> ModelDeploymentSpec | None:
    try:
        return ModelDeploymentSpec.model_validate(obj.get("spec") or {})
    except ValueError:
        return None


# ---------------------------------------------------------------------------------------- phase checks


def check_request(
    action: str, status: ModelDeploymentStatus, spec: ModelDeploymentSpec | None, team: str = ""
) -> str | None:
    """Why ``action`` does not fit the object's state (None when it does), judged from status before sending.

    The same rules the operator applies (``core.deployment``), so the user hears "no" at once instead of after a
    round trip; the operator still has the last word.

    >>> check_request("promote", ModelDeploymentStatus(phase="RolledBack", stable_version="v1"), None)
    'cannot promote: the rollout was rolled back (phase RolledBack); nothing is rolling out'
    """
    phase = Phase(status.phase)
    in_rollout = status.candidate_version is not None and phase in ROLLOUT_PHASES
    candidate = status.candidate_version
    if action == RequestAction.ABORT:
        if not in_rollout:
            return f"cannot abort: nothing is rolling out (phase {phase})"
        return None
    if action == RequestAction.PAUSE:
        if status.paused:
            return f"cannot pause: the rollout of {candidate} is already paused"
        if phase not in LIVE_PHASES:
            return f"cannot pause: no rollout is moving traffic (phase {phase})"
        return None
    if action == RequestAction.RESUME:
        if not status.paused or not in_rollout:
            return f"cannot resume: nothing is paused (phase {phase})"
        return None
    if action == RequestAction.APPROVE:
        teams = [a.team for a in spec.approvals] if spec is not None else []
        if spec is not None and team not in teams:
            listed = ", ".join(teams) if teams else "none"
            return f"cannot approve: team {team!r} is not among the approvers ({listed})"
        if not in_rollout:
            return f"cannot approve: nothing is rolling out (phase {phase})"
        if any(a.team == team for a in status.approvals):
            return f"cannot approve: {team} already approved {candidate}"
        return None
    if action == RequestAction.PROMOTE:
        if phase == Phase.ROLLED_BACK:
            return f"cannot promote: the rollout was rolled back (phase {phase}); nothing is rolling out"
        if phase not in LIVE_PHASES:
            return f"cannot promote: no candidate is serving traffic (phase {phase})"
        if spec is not None:
            approved = {a.team for a in status.approvals}
            missing = [a.team for a in spec.approvals if a.team not in approved]
            if missing:
                return f"cannot promote: awaiting approval from {', '.join(missing)}"
        return None
    if action == RequestAction.RETRY:
        if phase not in (Phase.ROLLED_BACK, Phase.FAILED) or not candidate:
            return f"cannot retry: nothing rolled back or failed (phase {phase})"
        return None
    return f"unknown action {action!r}"


# ------------------------------------------------------------------------------------------- requests


def request_body(
    deployment: Mapping[str, Any], action: str, by: str | None, team: str = "", reason: str = ""
) -> dict[str, Any]:
    """A ModelRequest for ``deployment`` (the ModelDeployment as read), owned by it so that it goes with it.

    >>> md = {"metadata": {"name": "fraud", "uid": "u-1"}}
    >>> body = request_body(md, "approve", "ana", "risk")
    >>> body["metadata"]["generateName"], body["spec"]
    ('fraud-approve-', {'modelDeployment': 'fraud', 'action': 'approve', 'team': 'risk', 'requestedBy': 'ana'})
    >>> body["metadata"]["ownerReferences"][0]["uid"]
    'u-1'
    """
    meta = deployment.get("metadata") or {}
    spec: dict[str, Any] = {"modelDeployment": meta["name"], "action": action}
    if team:
        spec["team"] = team
    if by:
        spec["requestedBy"] = by
    if reason:
        spec["reason"] = reason
    owner = {"apiVersion": API_VERSION, "kind": "ModelDeployment", "name": meta["name"], "uid": meta.get("uid")}
    return {
        "apiVersion": API_VERSION,
        "kind": "ModelRequest",
        "metadata": {"generateName": f"{meta['name']}-{action}-"[:58], "ownerReferences": [owner]},
        "spec": spec,
    }


def request_answer(request: Mapping[str, Any]) -> tuple[bool, str] | None:
    """``(applied, message)`` once the operator answered the ModelRequest, else None.

    >>> request_answer({"status": {"phase": "Refused", "message": "cannot promote in phase Promoted"}})
    (False, 'cannot promote in phase Promoted')
    >>> request_answer({"status": {}}) is None
    True
    """
    status = request.get("status") or {}
    phase = status.get("phase")
    if not phase:
        return None
    return phase == RequestPhase.APPLIED, str(status.get("message") or "")


# ----------------------------------------------------------------------------------------- retirement


def retirement_body(
    name: str,
    target: str,
    replacement: str | None,
    after: str | None,
    not_before: datetime | None,
    drain_steps: Sequence[int] | None = None,
    drain_interval: str | None = None,
) -> dict[str, Any]:
    """A ModelRetirement, validated by the API models before it is sent (a mistake is reported client-side)."""
    spec: dict[str, Any] = {"modelDeployment": target}
    if replacement:
        spec["replacement"] = replacement
    if after:
        parse_duration(after)
        spec["afterReplacementPromoted"] = after
    if not_before is not None:
        spec["notBefore"] = not_before.isoformat()
    drain: dict[str, Any] = {}
    if drain_steps:
        drain["steps"] = list(drain_steps)
    if drain_interval:
        drain["interval"] = drain_interval
    if drain:
        spec["drain"] = drain
    validated = ModelRetirementSpec.model_validate(spec)
    return {
        "apiVersion": API_VERSION,
        "kind": "ModelRetirement",
        "metadata": {"name": name},
        "spec": validated.to_k8s(),
    }


# ------------------------------------------------------------------------------------------- output


def age(at: datetime | None, now: datetime) -> str:
    """Ages as kubectl shows them: at most two units (``5m``, ``23h59m``), ``-`` when unknown.

    >>> from datetime import UTC
    >>> age(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, 23, 59, 55, tzinfo=UTC))
    '23h59m'
    """
    if at is None:
        return "-"
    units = re.findall(r"[0-9]+[dhms]", format_duration(max(timedelta(0), now - at)))
    return "".join(units[:2])


def render_table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join(
        "   ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [header, *rows]
    )


def weights(status: ModelDeploymentStatus) -> dict[str, int]:
    """The split status implies, candidate last."""
    live = status.candidate_version is not None and status.phase in LIVE_PHASES
    out: dict[str, int] = {}
    if status.stable_version is not None:
        out[status.stable_version] = 100 - (status.canary_weight if live else 0)
    if live and status.candidate_version is not None:
        out[status.candidate_version] = status.canary_weight
    return out


def format_weights(status: ModelDeploymentStatus) -> str:
    w = weights(status)
    return "  ".join(f"{v} {p}%" for v, p in w.items()) if w else "-"


def step_text(spec: ModelDeploymentSpec | None, status: ModelDeploymentStatus, now: datetime) -> str:
    """``2/3 at weight 50, 3m left`` (or ``, pause over``); ``-`` outside a rollout step."""
    if status.current_step is None or spec is None:
        return "-"
    steps = spec.rollout.steps
    index = status.current_step
    text = f"{index + 1}/{len(steps)} at weight {status.canary_weight}"
    if status.step_started_at is not None and index < len(steps):
        left = status.step_started_at + parse_duration(steps[index].pause) - now
        text += f", {format_duration(left)} left" if left > timedelta(0) else ", pause over (waiting for analysis)"
    return text


def list_rows(objects: Sequence[dict[str, Any]], now: datetime, all_namespaces: bool = False) -> str:
    header = ["NAME", "PHASE", "STABLE", "CANDIDATE", "WEIGHT", "STEP", "AGE"]
    if all_namespaces:
        header = ["NAMESPACE", *header]
    rows = []
    for obj in objects:
        meta = obj.get("metadata") or {}
        st, spec = parse_status(obj), parse_spec(obj)
        step = "-"
        if st.current_step is not None:
            total = len(spec.rollout.steps) if spec is not None else "?"
            step = f"{st.current_step + 1}/{total}"
        created = meta.get("creationTimestamp")
        created_at = datetime.fromisoformat(created.replace("Z", "+00:00")) if created else None
        row = [
            meta.get("name", ""),
            str(st.phase),
            st.stable_version or "-",
            st.candidate_version or "-",
            f"{st.canary_weight}%" if st.candidate_version and st.phase in LIVE_PHASES else "-",
            step,
            age(created_at, now),
        ]
        rows.append([meta.get("namespace", ""), *row] if all_namespaces else row)
    if not rows:
        return "No ModelDeployments found."
    return render_table(rows, header)


def _bound(v: float | None) -> str:
    return "-" if v is None else f"{v:g}"


def status_text(obj: dict[str, Any], now: datetime) -> str:
    """``kubectl modelops status``: phase, weights, step and time left, metrics vs thresholds with owners, gates
    with evidence, approvals, conditions and the last request."""
    meta = obj.get("metadata") or {}
    st, spec = parse_status(obj), parse_spec(obj)
    lines = [
        f"Name:        {meta.get('name', '')}",
        f"Namespace:   {meta.get('namespace', '')}",
        f"Phase:       {st.phase}" + (f" - {st.message}" if st.message else ""),
        f"Stable:      {st.stable_version or '-'}",
        f"Candidate:   {st.candidate_version or '-'}" + (" (paused)" if st.paused else ""),
        f"Weights:     {format_weights(st)}",
        f"Step:        {step_text(spec, st, now)}",
    ]
    a = st.analysis
    if spec is not None:
        policy = spec.rollout.analysis
        lines.append(
            f"Analysis:    every {policy.interval}; {a.passed_checks} passed, {a.failed_checks} failed "
            f"(limit {policy.failure_limit}), {a.unavailable_checks} unavailable "
            f"({a.consecutive_unavailable} in a row, limit {policy.max_unavailable_checks}, "
            f"policy {policy.on_metrics_unavailable}); last check {age(a.last_check_at, now)} ago"
        )
    metrics = a.metrics if a.metrics else st.monitoring.metrics
    if metrics:
        title = "Metrics (last analysis):" if a.metrics else "Metrics (monitoring):"
        rows = [
            [
                m.name,
                m.owner or "-",
                "-" if m.value is None else f"{m.value:g}",
                _bound(m.min),
                _bound(m.max),
                "-" if m.stable_value is None else f"{m.stable_value:g}",
                str(m.verdict),
                m.message,
            ]
            for m in metrics
        ]
        table = render_table(rows, ["METRIC", "OWNER", "VALUE", "MIN", "MAX", "STABLE", "VERDICT", "MESSAGE"])
        lines += ["", title, *("  " + line for line in table.splitlines())]
    if st.gates:
        rows = []
        for g in st.gates:
            evidence = ", ".join(f"{k}={v}" for k, v in _flat(g.results or {}).items()) or "-"
            rows.append([g.name, g.version or "-", str(g.phase), evidence, g.message or "-"])
        table = render_table(rows, ["GATE", "VERSION", "PHASE", "EVIDENCE", "MESSAGE"])
        lines += ["", "Gates:", *("  " + line for line in table.splitlines())]
    wanted = [a.team for a in spec.approvals] if spec is not None else []
    if wanted or st.approvals:
        by_team = {ap.team: ap for ap in st.approvals}
        rows = []
        for team in dict.fromkeys([*wanted, *by_team]):
            ap = by_team.get(team)
            rows.append(
                [
                    team,
                    "approved" if ap else "waiting",
                    (ap.by or "-") if ap else "-",
                    age(ap.approved_at, now) if ap else "-",
                ]
            )
        table = render_table(rows, ["TEAM", "APPROVAL", "BY", "AGE"])
        lines += ["", "Approvals:", *("  " + line for line in table.splitlines())]
    if st.conditions:
        rows = [[c.type, c.status, c.reason or "-", age(c.last_transition_time, now), c.message] for c in st.conditions]
        table = render_table(rows, ["TYPE", "STATUS", "REASON", "AGE", "MESSAGE"])
        lines += ["", "Conditions:", *("  " + line for line in table.splitlines())]
    if st.last_request is not None:
        r = st.last_request
        lines += ["", f"Last request: {r.action} by {r.by or '-'} ({r.name or r.id}), {age(r.at, now)} ago: {r.result}"]
    return "\n".join(lines)


def _flat(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in data.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flat(v, key + "."))
        else:
            out[key] = v
    return out


def history_rows(obj: dict[str, Any], now: datetime) -> str:
    """Past rollouts and the requests consumed, oldest first."""
    st = parse_status(obj)
    events: list[tuple[datetime | None, list[str]]] = []
    for h in st.history:
        took = format_duration(h.finished_at - h.started_at) if h.finished_at and h.started_at else "-"
        events.append((h.finished_at, ["rollout", h.version, h.outcome, took, h.reason]))
    for r in st.requests:
        events.append((r.at, ["request", r.action, r.by or "-", r.name or r.id, r.result]))
    if not events:
        return "No history yet."
    events.sort(key=lambda e: e[0].timestamp() if e[0] else 0.0)
    rows = [[age(at, now) + " ago" if at else "-", *cols] for at, cols in events]
    return render_table(rows, ["WHEN", "KIND", "WHAT", "OUTCOME/BY", "TOOK/ID", "DETAILS"])


def watch_state(obj: dict[str, Any]) -> tuple[Any, ...]:
    """What ``watch`` prints a new line for: a change of phase, weights, step, readings or message (not the
    countdown of the step's time left, which would print a line a second)."""
    st = parse_status(obj)
    readings = tuple((m.name, m.value, str(m.verdict)) for m in st.analysis.metrics)
    return (str(st.phase), tuple(weights(st).items()), st.current_step, st.paused, readings, st.message)


def watch_line(obj: dict[str, Any], now: datetime) -> str:
    """One line per change in ``watch``."""
    st, spec = parse_status(obj), parse_spec(obj)
    parts = [now.strftime("%H:%M:%S"), str(st.phase), format_weights(st)]
    if st.current_step is not None:
        parts.append(f"step {step_text(spec, st, now)}")
    a = st.analysis
    if a.metrics:
        parts.append(" ".join(f"{m.name}={'-' if m.value is None else f'{m.value:g}'}({m.verdict})" for m in a.metrics))
    if st.message:
        parts.append(st.message)
    return "  ".join(parts)


__all__ = [
    "FINAL_PHASES",
    "PluginError",
    "age",
    "check_request",
    "format_weights",
    "history_rows",
    "list_rows",
    "parse_spec",
    "parse_status",
    "render_table",
    "request_answer",
    "request_body",
    "retirement_body",
    "status_text",
    "step_text",
    "watch_line",
    "watch_state",
    "weights",
]
