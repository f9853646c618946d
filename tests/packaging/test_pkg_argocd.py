"""Argo CD health checks and resource actions, run as Argo CD runs them, against its test file format
(health_test.yaml and actions/action_test.yaml next to the scripts, sample objects in testdata/)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from argocd_lua import impacted_resources, run_lua
from lupa import lua51
from pkg_support import ARGOCD, REPO

KINDS = sorted(p for p in ARGOCD.glob("*/*") if p.is_dir())
#: action_test.yaml's expected outputs were written with os.time() fixed at this value.
NOW = 1795000000
HEALTH_STATUSES = {"Healthy", "Progressing", "Degraded", "Suspended", "Missing"}


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def _health_cases() -> list[Any]:
    cases = []
    for kind in KINDS:
        for case in _load(kind / "health_test.yaml")["tests"]:
            cases.append(pytest.param(kind, case, id=f"{kind.name}-{Path(case['inputPath']).stem}"))
    return cases


def test_every_kind_has_a_health_check() -> None:
    assert [k.name for k in KINDS] == ["ModelDeployment", "ModelRetirement"]
    for kind in KINDS:
        assert (kind / "health.lua").is_file()


@pytest.mark.parametrize(("kind", "case"), _health_cases())
def test_health(kind: Path, case: dict[str, Any]) -> None:
    obj = _load(kind / case["inputPath"])
    hs = run_lua(kind / "health.lua", obj)
    assert hs["status"] in HEALTH_STATUSES
    assert hs == case["healthStatus"]


def test_health_cases_cover_the_phases() -> None:
    """Each phase of each kind (from the API models) has a sample object."""
    from modelops.api import Phase, RetirementPhase

    for kind, phases in (("ModelDeployment", Phase), ("ModelRetirement", RetirementPhase)):
        tests = _load(ARGOCD / "modelops.io" / kind / "health_test.yaml")["tests"]
        covered = {_load(ARGOCD / "modelops.io" / kind / t["inputPath"]).get("status", {}).get("phase") for t in tests}
        assert {p.value for p in phases} <= covered, kind


ACTIONS = ARGOCD / "modelops.io" / "ModelDeployment" / "actions"


@pytest.mark.parametrize("case", _load(ACTIONS / "action_test.yaml")["discoveryTests"], ids=lambda c: c["inputPath"])
def test_action_discovery(case: dict[str, Any]) -> None:
    actions = run_lua(ACTIONS / "discovery.lua", _load(ACTIONS / case["inputPath"]))
    got = sorted(
        ({"name": name, "disabled": spec["disabled"]} for name, spec in actions.items()), key=lambda a: a["name"]
    )
    assert got == sorted(case["result"], key=lambda a: a["name"])


def test_every_discovered_action_has_a_script() -> None:
    actions = run_lua(ACTIONS / "discovery.lua", {"metadata": {"name": "x"}})
    assert sorted(actions) == sorted(p.parent.name for p in ACTIONS.glob("*/action.lua"))
    assert {"promote", "abort", "pause", "resume"} <= set(actions)
    # An approval must carry the approver's own authenticated name (spec.requestedBy); Argo CD creates with its own.
    assert "approve" not in actions


SCRIPTS = sorted(p.parent.name for p in ACTIONS.glob("*/action.lua"))
MODELREQUEST_CRD = REPO / "crds" / "modelops.io_modelrequests.yaml"
#: A Kubernetes object name (DNS-1123 subdomain), as the API server checks metadata.name.
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def _created(action: str, obj: dict[str, Any], now: int = NOW) -> dict[str, Any]:
    """The one object the action creates (failing unless it returns exactly one create operation)."""
    ops = impacted_resources(run_lua(ACTIONS / action / "action.lua", obj, now=now), obj)
    assert [op for op, _ in ops] == ["create"], ops
    return ops[0][1]


@pytest.mark.parametrize("case", _load(ACTIONS / "action_test.yaml")["actionTests"], ids=lambda c: c["action"])
def test_action(case: dict[str, Any]) -> None:
    before = _load(ACTIONS / case["inputPath"])
    ops = impacted_resources(run_lua(ACTIONS / case["action"] / "action.lua", before, now=NOW), before)
    expected_path = ACTIONS / case["expectedOutputPath"]
    # Argo CD's test (util/lua/custom_actions_test.go) reads an expected output as a list only if it starts with "-".
    assert expected_path.read_text().startswith("-")
    expected = [(e["k8sOperation"], e["unstructuredObj"]) for e in _load(expected_path)]
    assert ops == expected


@pytest.mark.parametrize("action", SCRIPTS)
def test_action_creates_one_request_and_leaves_the_deployment_alone(action: str) -> None:
    """GitOps owns the ModelDeployment: an action returns one create operation, of a ModelRequest, and no patch.
    The request names no requester (Argo CD creates it with its own credentials) and copies none of the
    ModelDeployment's labels or annotations (Argo CD's tracking label would make it prune the request)."""
    before = _load(ACTIONS / "testdata" / "progressing.yaml")
    created = _created(action, before)
    assert (created["apiVersion"], created["kind"]) == ("modelops.io/v1alpha1", "ModelRequest")
    assert created["spec"] == {"modelDeployment": "ranker", "action": action, "reason": f"Argo CD action {action}"}
    assert set(created["metadata"]) == {"name", "namespace", "ownerReferences"}
    assert "status" not in created


@pytest.mark.parametrize("action", SCRIPTS)
def test_created_request_is_valid_for_the_models_and_the_crd(action: str) -> None:
    from modelops.api import ModelRequest

    created = _created(action, _load(ACTIONS / "testdata" / "progressing.yaml"))
    request = ModelRequest.model_validate(created)
    assert (request.spec.action, request.spec.requested_by, request.spec.team) == (action, None, None)
    crd = yaml.safe_load(MODELREQUEST_CRD.read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in jsonschema.Draft4Validator(schema).iter_errors(created)]
    assert errors == []
    name = created["metadata"]["name"]
    assert len(name) <= 253
    assert DNS_SUBDOMAIN.match(name), name


def test_request_names_differ_over_time_writes_and_actions() -> None:
    """A name is made once: another second, another resourceVersion (the operator's answer to the last request
    changes it) or another action gives another name; a repeat of the same click in the same second does not, so
    Argo CD refuses it as AlreadyExists instead of making a second request."""
    obj = _load(ACTIONS / "testdata" / "progressing.yaml")
    names = []
    clicks = (("promote", NOW, "1"), ("promote", NOW + 1, "1"), ("promote", NOW, "2"), ("abort", NOW, "1"))
    for action, now, rv in clicks:
        obj["metadata"]["resourceVersion"] = rv
        names.append(_created(action, obj, now)["metadata"]["name"])
    assert len(set(names)) == 4, names
    obj["metadata"]["resourceVersion"] = "1"
    assert _created("promote", obj)["metadata"]["name"] == names[0] == f"ranker-promote-{NOW}-1"


@pytest.mark.parametrize(
    ("name", "rv", "expected"),
    [
        ("a" * 229, "4711", f"{'a' * 229}-promote-{NOW}-4711"),
        ("a" * 230, "4711", f"promote-{NOW}-4711"),
        ("ranker", None, f"ranker-promote-{NOW}-0"),
        ("ranker", "not a number", f"ranker-promote-{NOW}-0"),
    ],
    ids=["long", "too-long", "no-resource-version", "odd-resource-version"],
)
def test_request_name_is_a_valid_object_name(name: str, rv: str | None, expected: str) -> None:
    """Without a string library nothing can be cut: a name over 253 characters drops the ModelDeployment's name
    (a ModelDeployment that long cannot be a request's target anyway); a resourceVersion that is not a number
    counts as 0."""
    obj = _load(ACTIONS / "testdata" / "progressing.yaml")
    obj["metadata"]["name"] = name
    obj["metadata"].pop("resourceVersion")
    if rv is not None:
        obj["metadata"]["resourceVersion"] = rv
    got = _created("promote", obj)["metadata"]["name"]
    assert got == expected
    assert len(got) <= 253
    assert DNS_SUBDOMAIN.match(got), got


@pytest.mark.parametrize("action", SCRIPTS)
def test_request_is_owned_by_the_deployment_in_its_namespace(action: str) -> None:
    """The garbage collector deletes the request with its ModelDeployment; Argo CD shows it as the ModelDeployment's
    child. Not a controller reference, and no blockOwnerDeletion (which needs the finalizers permission)."""
    obj = _load(ACTIONS / "testdata" / "progressing.yaml")
    obj["metadata"].update(name="scorer", namespace="payments", uid="5f0c9e8a-1111-4222-8333-944455556666")
    created = _created(action, obj)
    assert created["metadata"]["namespace"] == "payments"
    assert created["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "modelops.io/v1alpha1",
            "kind": "ModelDeployment",
            "name": "scorer",
            "uid": "5f0c9e8a-1111-4222-8333-944455556666",
        }
    ]
    assert created["spec"]["modelDeployment"] == "scorer"


@pytest.mark.parametrize("action", SCRIPTS)
def test_the_operator_accepts_what_the_action_creates(action: str) -> None:
    """Contract with the operator's request reader (modelops.core.requests): one pending request, this action, no
    error, no requester (the operator records it as unnamed), named by the object's name in events."""
    from modelops.core.requests import pending_requests

    created = _created(action, _load(ACTIONS / "testdata" / "progressing.yaml"))
    (request,) = pending_requests([created])
    assert (request.action, request.error, request.by, request.team) == (action, "", "", "")
    assert request.name == created["metadata"]["name"]


def test_operations_are_read_as_argocd_reads_them() -> None:
    """The harness refuses what Argo CD refuses: an unknown operation, a patch of another object."""
    source = _load(ACTIONS / "testdata" / "progressing.yaml")
    assert impacted_resources(source, source) == [("patch", source)]
    other = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "shop"}}
    cases = (
        ([{"operation": "delete", "resource": source}], "unsupported operation 'delete'"),
        ([{"operation": "patch", "resource": other}], "patch is only supported for the source object"),
        ([{"resource": source}], "an operation is"),
        ("x", "an action returns a table"),
    )
    for bad, error in cases:
        with pytest.raises(ValueError, match=error):
            impacted_resources(bad, source)


def test_harness_has_argocds_restrictions(tmp_path: Path) -> None:
    """A script that uses a library Argo CD does not open fails here as it would in Argo CD."""
    script = tmp_path / "bad.lua"
    for body in (
        'return string.format("%d", 1)',
        'return ("x"):upper()',
        "return math.floor(1.5)",
        'return io.open("/etc/passwd")',
    ):
        script.write_text(body)
        with pytest.raises(lua51.LuaError):
            run_lua(script, {})
    script.write_text("return os.time()")
    assert run_lua(script, {}, now=42) == 42
    # Argo CD's JSON encoding of the result: an empty table is an array, a table of mixed keys an error.
    script.write_text("return {a = {}, b = {1, 2}}")
    assert run_lua(script, {}) == {"a": [], "b": [1, 2]}
    script.write_text('return {1, x = "y"}')
    with pytest.raises(ValueError, match="neither an array nor an object"):
        run_lua(script, {})
