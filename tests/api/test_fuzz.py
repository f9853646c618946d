"""Generated resources either parse or fail with a ValidationError that names a field: nothing else escapes."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from modelops.api import ModelDeployment, ModelRetirement, describe

ROOT = Path(__file__).resolve().parents[2]
BASES = {
    "ModelDeployment": yaml.safe_load((ROOT / "examples" / "recommender.yaml").read_text()),
    "ModelRetirement": yaml.safe_load((ROOT / "examples" / "recommender-retirement.yaml").read_text()),
}
MODELS: dict[str, type[ModelDeployment] | type[ModelRetirement]] = {
    "ModelDeployment": ModelDeployment,
    "ModelRetirement": ModelRetirement,
}

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(
        [
            "30s",
            "1h30m",
            "7d",
            "0s",
            "5",
            "m1",
            "61 * * * *",
            "0 3 1 * *",
            "@daily",
            "* * *",
            "istio",
            "gatewayAPI",
            "replicas",
            "Hold",
            "Rollback",
            "v2",
            "V 2",
            "",
            "2027-01-01T00:00:00Z",
        ]
    ),
)
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=8,
)


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += paths(v, (*prefix, i))
    return out


def mutate(doc: dict[str, Any], path: tuple[Any, ...], value: Any, delete: bool) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    if not path:
        return doc
    parent = doc
    for part in path[:-1]:
        parent = parent[part]
    if delete and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return doc


@st.composite
def resources(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(sorted(BASES)))
    doc = BASES[kind]
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        spec_paths = [p for p in paths(doc) if p[:1] == ("spec",) and len(p) > 1]
        path = draw(st.sampled_from(spec_paths))
        doc = mutate(doc, path, draw(values), draw(st.booleans()))
    return doc


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(resources())
def test_generated_resources_parse_or_name_a_field(doc: dict[str, Any]) -> None:
    try:
        MODELS[doc["kind"]].model_validate(doc)
    except ValidationError as exc:
        lines = describe(exc)
        assert lines
        for line in lines:
            path, _, message = line.partition(": ")
            assert path.startswith("spec"), line
            assert message, line
