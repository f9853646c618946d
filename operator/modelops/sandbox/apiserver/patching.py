"""The three patch formats the apiserver accepts for custom and built-in resources.

- JSON patch (RFC 6902) via the ``jsonpatch`` library (a kopf and kmock dependency); a failed ``test``
  operation is answered 422, which kopf relies on for its optimistic finalizer patches.
- JSON merge patch (RFC 7386).
- Strategic merge patch, reduced to what ``kubectl apply`` sends for built-in kinds: a merge patch in
  which lists of objects that carry a ``$setElementOrder/<field>`` directive (or are well-known keyed lists
  such as ``containers``) are merged item by item on their merge key, plus the ``$patch``,
  ``$retainKeys`` and ``$deleteFromPrimitiveList`` directives.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
import jsonpointer

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"

#: merge keys of the keyed lists in built-in kinds, used when a patch has no ``$setElementOrder`` for them
_KNOWN_MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "imagePullSecrets": "name",
    "conditions": "type",
    "ownerReferences": "uid",
}


class PatchError(ValueError):
    """A patch that cannot be applied (a failed ``test``, a bad path, a malformed document): 422."""


class UnsupportedPatchType(ValueError):
    """A Content-Type the emulator does not serve (server-side apply): 415."""


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, ``null`` deletes, anything else replaces.

    >>> merge_patch({"a": 1, "b": {"c": 2, "d": 3}}, {"b": {"c": None, "e": 4}})
    {'a': 1, 'b': {'d': 3, 'e': 4}}
    """
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _merge_keyed_list(target: list[Any], patch: list[Any], key: str, order: list[Any] | None) -> list[Any]:
    by_key: dict[Any, Any] = {item.get(key): item for item in target if isinstance(item, dict)}
    appended: list[Any] = []
    for item in patch:
        if not isinstance(item, dict):
            continue
        ident = item.get(key)
        if item.get("$patch") == "delete":
            by_key.pop(ident, None)
            continue
        if ident in by_key:
            by_key[ident] = strategic_merge_patch(by_key[ident], item)
        else:
            by_key[ident] = strategic_merge_patch({}, item)
            appended.append(ident)
    if order is not None:
        wanted = [entry.get(key) for entry in order if isinstance(entry, dict)]
        rest = [k for k in by_key if k not in wanted]
        return [by_key[k] for k in wanted if k in by_key] + [by_key[k] for k in rest]
    existing = [item.get(key) for item in target if isinstance(item, dict) and item.get(key) in by_key]
    return [by_key[k] for k in existing] + [by_key[k] for k in appended if k not in existing]


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """A strategic merge patch as far as ``kubectl apply``/``kubectl patch`` on built-in kinds need it.

    >>> strategic_merge_patch(
    ...     {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]},
    ...     {"$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
    ...      "containers": [{"name": "b", "image": "z"}]},
    ... )
    {'containers': [{'name': 'a', 'image': 'x'}, {'name': 'b', 'image': 'z'}]}
    """
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return {}
    result = dict(target) if isinstance(target, dict) else {}
    orders = {k.split("/", 1)[1]: v for k, v in patch.items() if k.startswith("$setElementOrder/")}
    for key, value in patch.items():
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            result[field] = [v for v in result.get(field) or [] if v not in value]
            continue
        if key.startswith("$"):
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            result[key] = strategic_merge_patch(result.get(key), value)
        elif isinstance(value, list) and all(isinstance(v, dict) for v in value):
            order = orders.get(key)
            merge_key = next(iter(order[0]), None) if order and isinstance(order[0], dict) else None
            merge_key = merge_key or _KNOWN_MERGE_KEYS.get(key)
            current = result.get(key)
            if merge_key and isinstance(current, list):
                result[key] = _merge_keyed_list(current, value, merge_key, order)
            else:
                result[key] = [strategic_merge_patch({}, v) for v in value]
        else:
            result[key] = copy.deepcopy(value)
    for key, order in orders.items():
        if key not in patch and isinstance(result.get(key), list) and order and isinstance(order[0], dict):
            result[key] = _merge_keyed_list(result[key], [], next(iter(order[0])), order)
    if isinstance(patch.get("$retainKeys"), list):
        result = {k: v for k, v in result.items() if k in patch["$retainKeys"]}
    return result


def apply_patch(target: dict[str, Any], patch: Any, content_type: str) -> dict[str, Any]:
    """Apply ``patch`` of the given Content-Type to a copy of ``target``; raise PatchError if it fails."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type == JSON_PATCH:
        if not isinstance(patch, list):
            raise PatchError("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
        try:
            result = jsonpatch.apply_patch(target, patch, in_place=False)
        except jsonpatch.JsonPatchTestFailed as exc:
            raise PatchError(f"the server rejected our request due to an error in our request: {exc}") from exc
        except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
            raise PatchError(str(exc)) from exc
    elif media_type == MERGE_PATCH:
        result = merge_patch(target, patch)
    elif media_type == STRATEGIC_MERGE_PATCH:
        result = strategic_merge_patch(target, patch)
    else:
        raise UnsupportedPatchType(
            f"the body of the request was in an unknown format - accepted media types include: "
            f"{JSON_PATCH}, {MERGE_PATCH}, {STRATEGIC_MERGE_PATCH} (got {media_type})"
        )
    if not isinstance(result, dict):
        raise PatchError("the patch did not produce an object")
    return result
