"""The CRDs in crds/ are what `make crds` writes, and they are structural schemas."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from modelops.api import crd

ROOT = Path(__file__).resolve().parents[2]
CRD_DIR = ROOT / "crds"
FORBIDDEN_KEYS = {"$ref", "anyOf", "oneOf", "allOf", "title", "$defs", "const"}


def load_crds() -> dict[str, dict[str, Any]]:
    return {p.name: yaml.safe_load(p.read_text()) for p in sorted(CRD_DIR.glob("*.yaml"))}


def walk(node: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every schema node below ``node`` with its path; nothing below a preserve-unknown-fields node."""
    out = [(path, node)]
    if node.get("x-kubernetes-preserve-unknown-fields"):
        return out
    for name, child in node.get("properties", {}).items():
        out += walk(child, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        out += walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        out += walk(node["additionalProperties"], f"{path}{{}}")
    return out


def test_crds_are_what_make_crds_writes() -> None:
    rendered = crd.render()
    on_disk = {p.name: p.read_text() for p in CRD_DIR.glob("*.yaml")}
    assert set(on_disk) == set(rendered), "run `make crds`"
    for name, text in rendered.items():
        assert on_disk[name] == text, f"crds/{name} is stale: run `make crds`"


@pytest.mark.parametrize("name", sorted(crd.crds()))
def test_every_schema_node_is_typed_and_structural(name: str) -> None:
    schema = load_crds()[name]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in walk(schema):
        assert "type" in node, f"{name}{path}: untyped schema node"
        assert not FORBIDDEN_KEYS & node.keys(), f"{name}{path}: {FORBIDDEN_KEYS & node.keys()} left over"
        assert not ("properties" in node and "additionalProperties" in node), f"{name}{path}: both kinds of fields"
        if "exclusiveMinimum" in node:
            assert isinstance(node["exclusiveMinimum"], bool), f"{name}{path}: exclusiveMinimum must be a boolean"


@pytest.mark.parametrize("name", sorted(crd.crds()))
def test_preserve_unknown_fields_only_under_embedded_templates(name: str) -> None:
    schema = load_crds()[name]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    preserved = [path for path, node in walk(schema) if node.get("x-kubernetes-preserve-unknown-fields")]
    allowed = {".spec.gates[].template", ".spec.retraining.template", ".status.gates[].results"}
    assert set(preserved) <= allowed, set(preserved) - allowed


@pytest.mark.parametrize(
    ("name", "kind", "short", "columns"),
    [
        (
            "modelops.io_modeldeployments.yaml",
            "ModelDeployment",
            "mdep",
            ["Phase", "Stable", "Candidate", "Weight", "Age"],
        ),
        ("modelops.io_modelretirements.yaml", "ModelRetirement", "mret", ["Phase", "Target", "Replacement", "Age"]),
    ],
)
def test_names_subresources_and_printer_columns(name: str, kind: str, short: str, columns: list[str]) -> None:
    doc = load_crds()[name]
    assert doc["apiVersion"] == "apiextensions.k8s.io/v1"
    assert doc["spec"]["group"] == "modelops.io"
    assert doc["spec"]["names"]["kind"] == kind
    assert doc["spec"]["names"]["shortNames"] == [short]
    assert doc["spec"]["names"]["categories"] == ["modelops"]
    (version,) = doc["spec"]["versions"]
    assert version["name"] == "v1alpha1"
    assert version["subresources"] == {"status": {}}
    assert [c["name"] for c in version["additionalPrinterColumns"]] == columns


def test_cross_field_rules_are_cel_validations() -> None:
    doc = load_crds()["modelops.io_modeldeployments.yaml"]
    schema = doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    rules = {
        path: [r["rule"] for r in node.get("x-kubernetes-validations", [])]
        for path, node in walk(schema)
        if node.get("x-kubernetes-validations")
    }
    assert any("isSorted()" in r for r in rules[".spec.rollout.steps"])
    assert any("self.min < self.max" in r for r in rules[".spec.rollout.analysis.metrics[]"])
    assert len(rules[".spec.traffic"]) == 3
    assert ".status" not in " ".join(rules), "status carries no validation rules"
    retirement = load_crds()["modelops.io_modelretirements.yaml"]["spec"]["versions"][0]["schema"]
    spec_rules = retirement["openAPIV3Schema"]["properties"]["spec"]["x-kubernetes-validations"]
    assert any("notBefore" in r["rule"] and "afterReplacementPromoted" in r["rule"] for r in spec_rules)
