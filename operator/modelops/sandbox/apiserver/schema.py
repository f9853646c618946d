"""A CRD version's ``openAPIV3Schema`` applied as the apiserver applies a structural schema on every write:
prune unknown fields, apply defaults, validate, and report failures as ``Status`` causes naming the field.

Validation is ``jsonschema``'s Draft 4 validator: OpenAPI v3.0's boolean ``exclusiveMinimum`` and
``exclusiveMaximum`` have Draft 4 semantics, and ``x-kubernetes-*`` keys are ignored by it. ``nullable`` and
``x-kubernetes-int-or-string`` are rewritten into Draft 4 before compiling. CEL rules (``x-kubernetes-validations``)
are evaluated by ``cel.py`` once the schema holds, when ``cel-python`` is installed.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import jsonschema

from .cel import check_rules

#: the ObjectMeta fields the apiserver keeps; anything else under metadata is pruned
OBJECT_META_FIELDS = frozenset(
    {
        "name",
        "generateName",
        "namespace",
        "selfLink",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "labels",
        "annotations",
        "ownerReferences",
        "finalizers",
        "managedFields",
    }
)


@dataclass(frozen=True)
class Cause:
    """One ``details.causes[]`` entry of a 422 ``Status``: ``reason`` is a FieldValue* type."""

    reason: str
    field: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"reason": self.reason, "message": self.message, "field": self.field}


def format_path(path: Iterable[str | int]) -> str:
    """``["spec", "steps", 1, "weight"]`` -> ``spec.steps[1].weight`` (the apiserver's field path)."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def format_value(value: Any) -> str:
    """A value as the apiserver prints it in messages: strings quoted, numbers bare."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value)


def _to_draft4(schema: Any) -> Any:
    """Rewrite OpenAPI-only keywords into Draft 4 ones (recursively, on a copy)."""
    if isinstance(schema, list):
        return [_to_draft4(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _to_draft4(v) for k, v in schema.items() if k != "default"}
    if schema.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if schema.get("nullable") and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    # properties/items hold schemas, not keywords: rebuild them so their names are not rewritten
    if isinstance(schema.get("properties"), dict):
        out["properties"] = {k: _to_draft4(v) for k, v in schema["properties"].items()}
    return out


def _cause(error: jsonschema.ValidationError) -> list[Cause]:
    path = list(error.absolute_path)
    field = format_path(path)
    value: Any = error.instance
    kind = error.validator
    limit: Any = error.validator_value
    schema = error.schema if isinstance(error.schema, dict) else {}
    if kind == "required":
        missing = [name for name in limit if isinstance(value, dict) and name not in value]
        return [Cause("FieldValueRequired", format_path([*path, name]), "Required value") for name in missing]
    if kind == "enum":
        supported = ", ".join(format_value(v) for v in limit)
        msg = f"Unsupported value: {format_value(value)}: supported values: {supported}"
        return [Cause("FieldValueNotSupported", field, msg)]
    if kind == "maximum":
        rel = "less than" if schema.get("exclusiveMaximum") else "less than or equal to"
        msg = f"Invalid value: {format_value(value)}: {field} in body should be {rel} {format_value(limit)}"
        return [Cause("FieldValueInvalid", field, msg)]
    if kind == "minimum":
        rel = "greater than" if schema.get("exclusiveMinimum") else "greater than or equal to"
        msg = f"Invalid value: {format_value(value)}: {field} in body should be {rel} {format_value(limit)}"
        return [Cause("FieldValueInvalid", field, msg)]
    if kind == "pattern":
        msg = f"Invalid value: {format_value(value)}: {field} in body should match '{limit}'"
        return [Cause("FieldValueInvalid", field, msg)]
    if kind == "maxLength":
        return [Cause("FieldValueTooLong", field, f"Too long: may not be more than {limit} bytes")]
    if kind == "minLength":
        msg = f"Invalid value: {format_value(value)}: {field} in body should be at least {limit} chars long"
        return [Cause("FieldValueInvalid", field, msg)]
    if kind == "maxItems":
        return [Cause("FieldValueTooMany", field, f"Too many: {len(value)}: must have at most {limit} items")]
    if kind == "minItems":
        msg = f"Invalid value: {len(value)}: {field} in body should have at least {limit} items"
        return [Cause("FieldValueInvalid", field, msg)]
    if kind == "type":
        actual = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
            type(value), "number"
        )
        expected = limit if isinstance(limit, str) else limit[0]
        shown = format_value(actual)
        msg = f"Invalid value: {shown}: {field} in body must be of type {expected}: {shown}"
        return [Cause("FieldValueTypeInvalid", field, msg)]
    return [Cause("FieldValueInvalid", field, f"Invalid value: {format_value(value)}: {error.message}")]


class StructuralSchema:
    """One served version's schema: ``process(obj)`` prunes and defaults in place, then returns the causes."""

    def __init__(self, schema: Mapping[str, Any]) -> None:
        self.schema: dict[str, Any] = copy.deepcopy(dict(schema))
        draft4 = _to_draft4(self.schema)
        jsonschema.Draft4Validator.check_schema(draft4)
        self._validator = jsonschema.Draft4Validator(draft4)

    def process(
        self, obj: dict[str, Any], unknown: list[str] | None = None, old: Mapping[str, Any] | None = None
    ) -> list[Cause]:
        """Prune, default and validate ``obj`` (modified in place) as a create or update would.

        The paths of pruned unknown fields are appended to ``unknown`` (for ``fieldValidation=Strict``). On an
        update, CEL rules of top-level sections equal to ``old``'s are not re-evaluated (the apiserver's
        validation ratcheting), so status writes do not pay for the spec's rules.
        """
        dropped: list[str] = unknown if unknown is not None else []
        metadata = obj.get("metadata")
        if isinstance(metadata, dict):
            for key in [k for k in metadata if k not in OBJECT_META_FIELDS]:
                dropped.append(f"metadata.{key}")
                del metadata[key]
        properties = self.schema.get("properties") or {}
        for key in [k for k in obj if k not in ("apiVersion", "kind", "metadata")]:
            if key in properties:
                obj[key] = prune(obj[key], properties[key], key, dropped)
                if obj[key] is _PRUNED:
                    del obj[key]
            elif not self.schema.get("x-kubernetes-preserve-unknown-fields"):
                dropped.append(key)
                del obj[key]
        apply_defaults(obj, self.schema)
        causes: list[Cause] = []
        seen: set[Cause] = set()
        for error in sorted(self._validator.iter_errors(obj), key=lambda e: list(map(str, e.absolute_path))):
            for cause in _cause(error):
                if cause not in seen:
                    seen.add(cause)
                    causes.append(cause)
        if not causes:  # CEL rules assume the schema holds (types, required fields, sizes)
            for key, sub in properties.items():
                unchanged = old is not None and old.get(key) == obj.get(key)
                if key in obj and key not in ("apiVersion", "kind", "metadata") and not unchanged:
                    causes += [
                        Cause(reason, path, message) for path, reason, message in check_rules(obj[key], sub, key)
                    ]
        return causes


class _Pruned:
    """Marker for a value dropped by pruning (a ``null`` where the schema is not nullable)."""


_PRUNED: Any = _Pruned()


def prune(value: Any, schema: Mapping[str, Any], path: str = "", dropped: list[str] | None = None) -> Any:
    """Drop fields the schema does not declare, except under ``x-kubernetes-preserve-unknown-fields``;
    the dropped fields' paths are appended to ``dropped``.

    A ``null`` in a non-nullable field is dropped too (so that its default applies), as the apiserver does.

    >>> prune({"a": 1, "b": {"c": 2, "x": 3}}, {"properties": {"b": {"properties": {"c": {}}}}})
    {'b': {'c': 2}}
    """
    if value is None:
        return None if schema.get("nullable") else _PRUNED
    preserve = bool(schema.get("x-kubernetes-preserve-unknown-fields"))
    if isinstance(value, dict):
        properties = schema.get("properties")
        additional = schema.get("additionalProperties")
        out: dict[str, Any] = {}
        for key, item in value.items():
            sub = f"{path}.{key}" if path else key
            if isinstance(properties, dict) and key in properties:
                item = prune(item, properties[key], sub, dropped)
            elif isinstance(additional, dict):
                item = prune(item, additional, sub, dropped)
            elif not preserve and additional is not True:
                if dropped is not None:
                    dropped.append(sub)
                continue
            if item is not _PRUNED:
                out[key] = item
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        items = [prune(item, schema["items"], f"{path}[{i}]", dropped) for i, item in enumerate(value)]
        return [item for item in items if item is not _PRUNED]
    return value


def apply_defaults(value: Any, schema: Mapping[str, Any]) -> None:
    """Fill absent fields that declare a ``default`` (in place, recursively), as structural defaulting does."""
    if isinstance(value, dict):
        properties = schema.get("properties")
        if isinstance(properties, dict):
            for key, sub in properties.items():
                if key not in value and isinstance(sub, dict) and "default" in sub:
                    value[key] = copy.deepcopy(sub["default"])
                if key in value:
                    apply_defaults(value[key], sub)
        additional = schema.get("additionalProperties")
        if isinstance(additional, dict):
            for key in value:
                if not (isinstance(properties, dict) and key in properties):
                    apply_defaults(value[key], additional)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            apply_defaults(item, schema["items"])
