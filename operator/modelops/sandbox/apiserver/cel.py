"""The CRD's CEL rules (``x-kubernetes-validations``), evaluated with ``cel-python`` when it is installed.

Kubernetes adds list functions to CEL; the rules of this project's CRDs need ``isSorted()`` from them, so that
one (and ``sum()``, ``min()``, ``max()``) is provided here. Values are converted by their schema type, as the
apiserver does: a ``number`` is a CEL double even when written ``1``. Transition rules (``oldSelf``) are not
evaluated. Without ``cel-python`` the rules are skipped (``AVAILABLE`` is False).
"""

from __future__ import annotations

import functools
import importlib
import itertools
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["AVAILABLE", "RuleFailure", "check_rules"]

try:
    _celpy: Any = importlib.import_module("celpy")
    _ct: Any = importlib.import_module("celpy.celtypes")
    AVAILABLE = True
except ImportError:  # pragma: no cover - depends on the environment
    _celpy = _ct = None
    AVAILABLE = False


RuleFailure = tuple[str, str, str]  # (field path, reason, message)


def _is_sorted(values: Any) -> Any:
    items = list(values)
    return _ct.BoolType(all(a <= b for a, b in itertools.pairwise(items)))


def _sum(values: Any) -> Any:
    items = list(values)
    total = items[0] if items else _ct.IntType(0)
    for item in items[1:]:
        total = total + item
    return total


_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "isSorted": _is_sorted,
    "sum": _sum,
    "min": lambda values: min(list(values)),
    "max": lambda values: max(list(values)),
}


@functools.cache
def _program(rule: str) -> Any:
    environment = _celpy.Environment()
    return environment.program(environment.compile(rule), functions=_FUNCTIONS)


def _to_cel(value: Any, schema: Mapping[str, Any]) -> Any:
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        additional = schema.get("additionalProperties")
        fallback = additional if isinstance(additional, dict) else {}
        return _ct.MapType({_ct.StringType(k): _to_cel(v, properties.get(k) or fallback) for k, v in value.items()})
    if isinstance(value, list):
        items: Mapping[str, Any] = schema["items"] if isinstance(schema.get("items"), dict) else {}
        return _ct.ListType([_to_cel(v, items) for v in value])
    if isinstance(value, bool):
        return _ct.BoolType(value)
    if isinstance(value, int | float) and schema.get("type") == "number":
        return _ct.DoubleType(value)
    return _celpy.json_to_cel(value)


def _type_name(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean"}.get(type(value), "number")


def check_rules(value: Any, schema: Mapping[str, Any], path: str = "") -> list[RuleFailure]:
    """Evaluate every rule that applies to ``value`` and below; return the failures with their field paths."""
    if not AVAILABLE or value is None:
        return []
    failures: list[RuleFailure] = []
    for rule in schema.get("x-kubernetes-validations") or []:
        if "oldSelf" in rule["rule"]:
            continue  # a transition rule: needs the old object
        try:
            passed = bool(_program(rule["rule"]).evaluate({"self": _to_cel(value, schema)}))
            message = rule.get("message") or f"failed rule: {rule['rule']}"
        except Exception as exc:  # an evaluation error fails the rule, as in the apiserver
            passed, message = False, f"{rule.get('message') or rule['rule']}: {exc}"
        if not passed:
            field = path + (rule.get("fieldPath") or "") if path else (rule.get("fieldPath") or "").lstrip(".")
            reason = {
                "FieldValueRequired": "FieldValueRequired",
                "FieldValueForbidden": "FieldValueForbidden",
                "FieldValueDuplicate": "FieldValueDuplicate",
            }.get(rule.get("reason", ""), "FieldValueInvalid")
            failures.append((field, reason, f'Invalid value: "{_type_name(value)}": {message}'))
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        additional = schema.get("additionalProperties")
        for key, item in value.items():
            sub = properties.get(key) or (additional if isinstance(additional, dict) else None)
            if sub:
                failures += check_rules(item, sub, f"{path}.{key}" if path else key)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            failures += check_rules(item, schema["items"], f"{path}[{index}]")
    return failures
