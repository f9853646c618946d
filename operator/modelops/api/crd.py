"""Generate the CustomResourceDefinitions in ``crds/`` from the pydantic models.

Pydantic writes JSON Schema (draft 2020-12, with ``$ref``, ``anyOf`` for optionals, titles); a CRD needs a
*structural* OpenAPI v3 schema: every node typed, no ``$ref``/``anyOf``/``title``, ``exclusiveMinimum`` as a
boolean, ``x-kubernetes-preserve-unknown-fields`` only where an embedded template is kept as given.

Run ``python -m modelops.api.crd crds/`` (``make crds``).
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from .common import GROUP, VERSION
from .deployment import ModelDeploymentSpec, ModelDeploymentStatus
from .request import ModelRequestSpec, ModelRequestStatus
from .retirement import ModelRetirementSpec, ModelRetirementStatus

JSONDict = dict[str, Any]

_DROP = {"title", "additionalProperties_false"}


def _resolve(node: Any, defs: JSONDict) -> Any:
    """Inline every ``$ref`` and turn pydantic's JSON Schema into a structural OpenAPI schema."""
    if isinstance(node, list):
        return [_resolve(n, defs) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = copy.deepcopy(defs[node["$ref"].rsplit("/", 1)[-1]])
        extra = {k: v for k, v in node.items() if k != "$ref"}
        target.update(extra)
        return _resolve(target, defs)
    if "anyOf" in node:
        options = [o for o in node["anyOf"] if o.get("type") != "null"]
        if len(options) != 1:
            raise ValueError(f"cannot express anyOf with {len(options)} non-null options structurally: {node}")
        merged = {k: v for k, v in node.items() if k != "anyOf"}
        base = _resolve(options[0], defs)
        base.update({k: _resolve(v, defs) for k, v in merged.items()})
        if base.get("default", ...) is None:
            del base["default"]
        return _resolve(base, defs)
    out: JSONDict = {}
    for key, value in node.items():
        if key in ("title", "$defs"):
            continue
        if key == "const":
            out["enum"] = [value]
            continue
        out[key] = _resolve(value, defs)
    if out.get("additionalProperties") is False:
        del out["additionalProperties"]
    if "exclusiveMinimum" in out and not isinstance(out["exclusiveMinimum"], bool):
        out["minimum"], out["exclusiveMinimum"] = out["exclusiveMinimum"], True
    if "exclusiveMaximum" in out and not isinstance(out["exclusiveMaximum"], bool):
        out["maximum"], out["exclusiveMaximum"] = out["exclusiveMaximum"], True
    if out.get("x-kubernetes-preserve-unknown-fields"):
        out.pop("additionalProperties", None)
        out["type"] = "object"
    if "enum" in out and "type" not in out:
        out["type"] = "string" if all(isinstance(v, str) for v in out["enum"]) else "integer"
    if "properties" in out and "type" not in out:
        out["type"] = "object"
    if out.get("default") is None and "default" in out:
        del out["default"]
    return out


def schema_of(model: type[BaseModel]) -> JSONDict:
    """The structural OpenAPI v3 schema of one model."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.pop("$defs", {})
    resolved: JSONDict = _resolve(raw, defs)
    return resolved


def _status_schema(model: type[BaseModel]) -> JSONDict:
    """The status schema: output mode (every field the operator writes), without validation rules."""
    raw = model.model_json_schema(by_alias=True, mode="serialization")
    defs = raw.pop("$defs", {})
    schema: JSONDict = _strip_keys(_resolve(raw, defs), {"x-kubernetes-validations"})
    schema.pop("required", None)
    return schema


def _strip_keys(node: Any, keys: set[str]) -> Any:
    if isinstance(node, dict):
        return {k: _strip_keys(v, keys) for k, v in node.items() if k not in keys}
    if isinstance(node, list):
        return [_strip_keys(v, keys) for v in node]
    return node


def _crd(
    *,
    kind: str,
    plural: str,
    short_names: list[str],
    spec: type[BaseModel],
    status: type[BaseModel],
    columns: list[JSONDict],
    description: str,
) -> JSONDict:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}", "labels": {"app.kubernetes.io/part-of": "modelops"}},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": short_names,
                "categories": ["modelops"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": description,
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": schema_of(spec),
                                "status": _status_schema(status),
                            },
                        }
                    },
                }
            ],
        },
    }


def crds() -> dict[str, JSONDict]:
    """File name -> CRD, for each kind."""
    age = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
    return {
        "modelops.io_modeldeployments.yaml": _crd(
            kind="ModelDeployment",
            plural="modeldeployments",
            short_names=["mdep"],
            spec=ModelDeploymentSpec,
            status=ModelDeploymentStatus,
            description="One logical model served in one namespace: its versions, rollout policy and lifecycle.",
            columns=[
                {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
                {"name": "Stable", "type": "string", "jsonPath": ".status.stableVersion"},
                {"name": "Candidate", "type": "string", "jsonPath": ".status.candidateVersion"},
                {"name": "Weight", "type": "integer", "jsonPath": ".status.canaryWeight"},
                age,
            ],
        ),
        "modelops.io_modelretirements.yaml": _crd(
            kind="ModelRetirement",
            plural="modelretirements",
            short_names=["mret"],
            spec=ModelRetirementSpec,
            status=ModelRetirementStatus,
            description="The retirement plan of one ModelDeployment (or one version of it).",
            columns=[
                {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
                {"name": "Target", "type": "string", "jsonPath": ".spec.modelDeployment"},
                {"name": "Replacement", "type": "string", "jsonPath": ".spec.replacement"},
                age,
            ],
        ),
        "modelops.io_modelrequests.yaml": _crd(
            kind="ModelRequest",
            plural="modelrequests",
            short_names=["mreq"],
            spec=ModelRequestSpec,
            status=ModelRequestStatus,
            description="One manual request to a ModelDeployment (promote, abort, pause, resume, approve, retry).",
            columns=[
                {"name": "Deployment", "type": "string", "jsonPath": ".spec.modelDeployment"},
                {"name": "Action", "type": "string", "jsonPath": ".spec.action"},
                {"name": "Team", "type": "string", "jsonPath": ".spec.team"},
                {"name": "By", "type": "string", "jsonPath": ".spec.requestedBy"},
                {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
                {"name": "Message", "type": "string", "jsonPath": ".status.message", "priority": 1},
                age,
            ],
        ),
    }


HEADER = "# Generated by `make crds` from operator/modelops/api: do not edit by hand.\n"


def render() -> dict[str, str]:
    """File name -> YAML text, exactly as ``make crds`` writes it."""
    return {
        name: HEADER + yaml.safe_dump(crd, sort_keys=False, width=120, default_flow_style=False)
        for name, crd in crds().items()
    }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0] if args else "crds")
    out.mkdir(parents=True, exist_ok=True)
    for name, text in render().items():
        (out / name).write_text(text)
        print(f"wrote {out / name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
