"""Argo CD health checks and resource actions, run as Argo CD runs them, against its test file format
(health_test.yaml and actions/action_test.yaml next to the scripts, sample objects in testdata/)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from argocd_lua import run_lua
from lupa import lua51
from pkg_support import ARGOCD

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


@pytest.mark.parametrize("case", _load(ACTIONS / "action_test.yaml")["actionTests"], ids=lambda c: c["action"])
def test_action(case: dict[str, Any]) -> None:
    before = _load(ACTIONS / case["inputPath"])
    after = run_lua(ACTIONS / case["action"] / "action.lua", before, now=NOW)
    assert after == _load(ACTIONS / case["expectedOutputPath"])


@pytest.mark.parametrize("action", sorted(p.parent.name for p in ACTIONS.glob("*/action.lua")))
def test_action_writes_only_the_request_annotation(action: str) -> None:
    """GitOps owns the spec: an action changes nothing but metadata.annotations["modelops.io/request"],
    whose JSON the operator parses (id, action, team, by)."""
    before = _load(ACTIONS / "testdata" / "progressing.yaml")
    before["metadata"]["annotations"] = {"team": "search"}
    after = run_lua(ACTIONS / action / "action.lua", before, now=NOW)
    request = json.loads(after["metadata"]["annotations"].pop("modelops.io/request"))
    assert after == before
    assert request == {"id": f"argocd-{action}-{NOW}-4711", "action": action, "team": "", "by": "argocd"}


def test_request_ids_differ_over_time_and_writes() -> None:
    obj = _load(ACTIONS / "testdata" / "progressing.yaml")
    ids = set()
    for now, rv in ((NOW, "1"), (NOW + 1, "1"), (NOW, "2")):
        obj["metadata"]["resourceVersion"] = rv
        out = run_lua(ACTIONS / "promote" / "action.lua", obj, now=now)
        ids.add(out["metadata"]["annotations"]["modelops.io/request"])
    assert len(ids) == 3


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


@pytest.mark.parametrize("action", sorted(p.parent.name for p in ACTIONS.glob("*/action.lua")))
def test_the_operator_accepts_what_the_action_writes(action: str) -> None:
    """Contract with the operator's request parser (modelops.core.requests)."""
    from modelops.core.requests import REQUEST_ANNOTATION, parse_request

    after = run_lua(ACTIONS / action / "action.lua", _load(ACTIONS / "testdata" / "progressing.yaml"), now=NOW)
    request = parse_request(after["metadata"]["annotations"][REQUEST_ANNOTATION])
    assert request is not None
    assert request.error == ""
    assert request.action == action
