"""Examples are valid, the invalid folder is rejected case by case with the field named, and models round-trip."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from pydantic import ValidationError

from modelops.api import ModelDeployment, ModelRetirement, describe, field_path, format_duration, parse_duration

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
INVALID = sorted((ROOT / "tests" / "data" / "invalid").glob("*.yaml"))
MODELS: dict[str, type[ModelDeployment] | type[ModelRetirement]] = {
    "ModelDeployment": ModelDeployment,
    "ModelRetirement": ModelRetirement,
}


def crd_schema(kind: str) -> dict[str, Any]:
    plural = kind.lower() + "s"
    doc = yaml.safe_load((ROOT / "crds" / f"modelops.io_{plural}.yaml").read_text())
    schema: dict[str, Any] = doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def schema_errors(obj: dict[str, Any]) -> list[str]:
    """The CRD's OpenAPI schema, checked as the apiserver does before CEL rules (OpenAPI v3.0 ~ draft 4)."""
    validator = jsonschema.Draft4Validator(crd_schema(obj["kind"]))
    return [f"{field_path(list(e.absolute_path))}: {e.message}" for e in validator.iter_errors(obj)]


def test_there_are_examples_of_both_kinds() -> None:
    kinds = {yaml.safe_load(p.read_text())["kind"] for p in EXAMPLES}
    assert kinds == {"ModelDeployment", "ModelRetirement"}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_is_valid_against_crd_schema_and_models(path: Path) -> None:
    obj = yaml.safe_load(path.read_text())
    assert schema_errors(obj) == []
    MODELS[obj["kind"]].model_validate(obj)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_model_to_dict_to_model_is_lossless(path: Path) -> None:
    obj = yaml.safe_load(path.read_text())
    model = MODELS[obj["kind"]].model_validate(obj)
    wire = model.to_k8s()
    again = MODELS[obj["kind"]].model_validate(wire)
    assert again == model
    assert again.to_k8s() == wire
    assert schema_errors(wire) == [], "what the operator writes back passes the CRD schema"


def test_the_invalid_folder_has_at_least_fifteen_cases() -> None:
    assert len(INVALID) >= 15


def expectation(path: Path) -> tuple[str, bool]:
    text = path.read_text()
    field = re.search(r"^# field: (\S+)$", text, re.M)
    by_schema = re.search(r"^# rejected-by-schema: (\w+)", text, re.M)
    assert field, f"{path.name} must say which field is wrong"
    assert by_schema, f"{path.name} must say whether the structural schema rejects it"
    return field.group(1), by_schema.group(1) == "yes"


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_resource_is_rejected_naming_the_field(path: Path) -> None:
    field, by_schema = expectation(path)
    obj = yaml.safe_load(path.read_text())
    with pytest.raises(ValidationError) as caught:
        MODELS[obj["kind"]].model_validate(obj)
    lines = describe(caught.value)
    assert any(line.startswith(f"{field}: ") for line in lines), lines
    errors = schema_errors(obj)
    if by_schema:
        parent, _, leaf = field.rpartition(".")
        names_field = [
            e for e in errors if e.startswith(f"{field}: ") or (e.startswith(f"{parent}: ") and repr(leaf) in e)
        ]
        assert names_field, errors
    else:
        assert errors == [], "the structural schema alone accepts it: a CEL rule or the models must reject it"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("5m", 300), ("1h30m", 5400), ("7d", 7 * 86400), ("1d2h3m4s", 93784), ("0s", 0)],
)
def test_durations_parse_to_seconds(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)
    if seconds:
        assert parse_duration(format_duration(timedelta(seconds=seconds))) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "5", "m", "1m1h", "1.5h", "10 minutes", "-5m", "1w"])
def test_bad_durations_are_rejected(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)
