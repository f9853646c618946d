"""The pure half of ``kubectl modelops``: phase checks, request bodies, retirement bodies and what is printed."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from modelops.api import ModelDeploymentSpec, ModelDeploymentStatus, ModelRequest
from modelops.cli.plugin_view import (
    check_request,
    history_rows,
    list_rows,
    request_answer,
    request_body,
    retirement_body,
    status_text,
    step_text,
    watch_line,
    watch_state,
    weights,
)

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def spec(approvals: tuple[str, ...] = ()) -> ModelDeploymentSpec:
    return ModelDeploymentSpec.model_validate(
        {
            "model": {"name": "shop", "version": "v2", "uri": "s3://m/v2"},
            "server": {"image": "img"},
            "traffic": {"router": "replicas", "replicas": {"service": "shop"}},
            "rollout": {
                "steps": [{"weight": 10, "pause": "10m"}, {"weight": 50, "pause": "1h"}, {"weight": 100}],
                "analysis": {
                    "interval": "1m",
                    "failureLimit": 2,
                    "metrics": [{"name": "error-rate", "owner": "sre", "query": "q", "max": 0.05}],
                },
            },
            "approvals": [{"team": t} for t in approvals],
        }
    )


def status(phase: str, **fields: Any) -> ModelDeploymentStatus:
    base: dict[str, Any] = {"phase": phase, "stableVersion": "v1"}
    if phase in ("Validating", "Progressing", "Paused", "RolledBack", "Failed"):
        base["candidateVersion"] = "v2"
    return ModelDeploymentStatus.model_validate({**base, **fields})


def progressing() -> dict[str, Any]:
    return {
        "metadata": {"name": "shop", "namespace": "ml", "creationTimestamp": "2026-04-30T12:00:00Z"},
        "spec": spec(("risk", "legal")).to_k8s(),
        "status": status(
            "Progressing",
            canaryWeight=10,
            currentStep=0,
            stepStartedAt=(NOW - timedelta(minutes=3, seconds=30)).isoformat(),
            analysis={
                "passedChecks": 3,
                "failedChecks": 1,
                "lastCheckAt": (NOW - timedelta(seconds=20)).isoformat(),
                "metrics": [
                    {
                        "name": "error-rate",
                        "owner": "sre",
                        "value": 0.012,
                        "max": 0.05,
                        "verdict": "Pass",
                        "message": "ok",
                    }
                ],
            },
            gates=[
                {
                    "name": "holdout",
                    "version": "v2",
                    "phase": "Passed",
                    "results": {"metrics": {"accuracy": 0.91}},
                    "message": "accuracy 0.91 >= 0.85",
                }
            ],
            approvals=[{"team": "risk", "approvedAt": (NOW - timedelta(minutes=1)).isoformat(), "by": "rita"}],
            conditions=[
                {
                    "type": "Progressing",
                    "status": "True",
                    "reason": "RolloutInProgress",
                    "message": "v2: step 1/3 at weight 10",
                    "lastTransitionTime": (NOW - timedelta(minutes=4)).isoformat(),
                }
            ],
        ).to_k8s(),
    }


@pytest.mark.parametrize(
    ("action", "phase", "fields", "problem"),
    [
        ("promote", "RolledBack", {}, "cannot promote: the rollout was rolled back (phase RolledBack)"),
        ("promote", "Promoted", {}, "cannot promote: no candidate is serving traffic (phase Promoted)"),
        ("promote", "Validating", {}, "cannot promote: no candidate is serving traffic (phase Validating)"),
        ("promote", "Progressing", {}, None),
        ("abort", "Promoted", {}, "cannot abort: nothing is rolling out (phase Promoted)"),
        ("abort", "Validating", {}, None),
        ("abort", "Paused", {}, None),
        ("pause", "Progressing", {"paused": True}, "cannot pause: the rollout of v2 is already paused"),
        ("pause", "Validating", {}, "cannot pause: no rollout is moving traffic (phase Validating)"),
        ("pause", "Progressing", {}, None),
        ("resume", "Progressing", {}, "cannot resume: nothing is paused (phase Progressing)"),
        ("resume", "Paused", {"paused": True}, None),
        ("retry", "Progressing", {}, "cannot retry: nothing rolled back or failed (phase Progressing)"),
        ("retry", "RolledBack", {}, None),
        ("retry", "Failed", {}, None),
    ],
)
def test_actions_that_do_not_fit_the_phase_are_refused(
    action: str, phase: str, fields: dict[str, Any], problem: str | None
) -> None:
    found = check_request(action, status(phase, **fields), spec())
    if problem is None:
        assert found is None
    else:
        assert found is not None
        assert found.startswith(problem)


def test_approvals_gate_approve_and_promote() -> None:
    s = spec(("risk", "legal"))
    st = status("Paused", approvals=[{"team": "risk", "approvedAt": NOW.isoformat()}])
    assert (
        check_request("approve", st, s, "ops") == "cannot approve: team 'ops' is not among the approvers (risk, legal)"
    )
    assert check_request("approve", st, s, "risk") == "cannot approve: risk already approved v2"
    assert check_request("approve", st, s, "legal") is None
    assert check_request("approve", status("Promoted"), s, "legal") == (
        "cannot approve: nothing is rolling out (phase Promoted)"
    )
    assert check_request("promote", st, s) == "cannot promote: awaiting approval from legal"
    assert (
        check_request("approve", st, spec(), "risk") == "cannot approve: team 'risk' is not among the approvers (none)"
    )


def test_a_request_is_a_model_request_owned_by_its_deployment_and_its_answer_is_read_from_its_status() -> None:
    md = {"metadata": {"name": "shop", "uid": "u-7", "namespace": "ns"}}
    body = request_body(md, "approve", "ana", "risk", "reviewed the fairness report")
    request = ModelRequest.model_validate({**body, "metadata": {**body["metadata"], "name": "shop-approve-x1"}})
    assert (request.spec.model_deployment, request.spec.action, request.spec.team) == ("shop", "approve", "risk")
    assert (request.spec.requested_by, request.spec.reason) == ("ana", "reviewed the fairness report")
    assert body["metadata"]["ownerReferences"] == [
        {"apiVersion": "modelops.io/v1alpha1", "kind": "ModelDeployment", "name": "shop", "uid": "u-7"}
    ]
    assert "requestedBy" not in request_body(md, "promote", None)["spec"]
    assert request_answer({"status": {"phase": "Applied", "message": "v2 promoted"}}) == (True, "v2 promoted")
    assert request_answer({"status": {"phase": "Refused", "message": "no"}}) == (False, "no")
    assert request_answer({"metadata": {"name": "x"}}) is None


def test_a_retirement_is_validated_before_it_is_sent() -> None:
    body = retirement_body("shop-retirement", "shop", "shop-next", "90d", None)
    assert body["kind"] == "ModelRetirement"
    assert body["spec"]["afterReplacementPromoted"] == "90d"
    assert body["spec"]["replacement"] == "shop-next"
    dated = retirement_body("r", "shop", None, None, datetime(2026, 9, 1, tzinfo=UTC), [50, 100], "2h")
    assert dated["spec"]["notBefore"] == "2026-09-01T00:00:00Z"
    assert dated["spec"]["drain"] == {"steps": [50, 100], "interval": "2h"}
    with pytest.raises(ValueError, match="afterReplacementPromoted needs a replacement"):
        retirement_body("r", "shop", None, "90d", None)
    with pytest.raises(ValueError, match="invalid duration"):
        retirement_body("r", "shop", "next", "ninety days", None)
    with pytest.raises(ValueError, match="the last drain step must be 100"):
        retirement_body("r", "shop", "next", "1d", None, [25, 50])


def test_status_shows_every_part_a_user_needs() -> None:
    text = status_text(progressing(), NOW)
    lines = text.splitlines()
    assert "Phase:       Progressing" in lines
    assert "Weights:     v1 90%  v2 10%" in lines
    assert "Step:        1/3 at weight 10, 6m30s left" in lines
    assert (
        "Analysis:    every 1m; 3 passed, 1 failed (limit 2), 0 unavailable (0 in a row, limit 10, policy Hold);"
        " last check 20s ago" in lines
    )
    row = next(line.split() for line in lines if line.strip().startswith("error-rate"))
    assert row == ["error-rate", "sre", "0.012", "-", "0.05", "-", "Pass", "ok"]
    gate = next(line.split() for line in lines if line.strip().startswith("holdout"))
    assert gate[:4] == ["holdout", "v2", "Passed", "metrics.accuracy=0.91"]
    assert next(line.split() for line in lines if line.strip().startswith("risk")) == ["risk", "approved", "rita", "1m"]
    assert next(line.split() for line in lines if line.strip().startswith("legal")) == ["legal", "waiting", "-", "-"]
    condition = next(line.split() for line in lines if line.strip().startswith("Progressing "))
    assert condition[:4] == ["Progressing", "True", "RolloutInProgress", "4m"]


def test_step_time_left_and_weights() -> None:
    st = status("Progressing", canaryWeight=50, currentStep=1, stepStartedAt=(NOW - timedelta(hours=2)).isoformat())
    assert step_text(spec(), st, NOW) == "2/3 at weight 50, pause over (waiting for analysis)"
    assert step_text(spec(), status("Promoted"), NOW) == "-"
    assert weights(st) == {"v1": 50, "v2": 50}
    assert weights(status("RolledBack", canaryWeight=0)) == {"v1": 100}


def test_list_history_and_watch_lines() -> None:
    obj = progressing()
    table = list_rows([obj], NOW).splitlines()
    assert table[1].split() == ["shop", "Progressing", "v1", "v2", "10%", "1/3", "1d"]
    assert list_rows([obj], NOW, all_namespaces=True).splitlines()[1].split()[:2] == ["ml", "shop"]
    assert list_rows([], NOW) == "No ModelDeployments found."

    obj["status"]["history"] = [
        {
            "version": "v1",
            "outcome": "Initial",
            "startedAt": "2026-04-30T12:00:00Z",
            "finishedAt": "2026-04-30T12:00:05Z",
        }
    ]
    obj["status"]["requests"] = [
        {"id": "r1", "action": "pause", "by": "ana", "at": "2026-05-01T11:00:00Z", "result": "Accepted: paused"}
    ]
    history = [line.split() for line in history_rows(obj, NOW).splitlines()]
    assert history[1][:6] == ["23h59m", "ago", "rollout", "v1", "Initial", "5s"]
    assert history[2][:6] == ["1h", "ago", "request", "pause", "ana", "r1"]
    assert history_rows({"metadata": {"name": "x"}}, NOW) == "No history yet."

    later = watch_line(obj, NOW + timedelta(seconds=1))
    assert "6m29s left" in later, "the printed countdown moves..."
    assert watch_state(obj) == watch_state(json.loads(json.dumps(obj))), "...but it is no change to print"
    moved = {**obj, "status": {**obj["status"], "canaryWeight": 50, "currentStep": 1}}
    assert watch_state(moved) != watch_state(obj)
    line = watch_line(obj, NOW)
    assert line.startswith("12:00:00  Progressing  v1 90%  v2 10%  step 1/3 at weight 10, 6m30s left")
    assert "error-rate=0.012(Pass)" in line
