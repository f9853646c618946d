"""Runs Argo CD resource-customization Lua the way Argo CD does, with lupa's Lua 5.1 (Argo CD embeds gopher-lua,
a Lua 5.1). Argo CD's VM (util/lua/lua.go) opens only the base, package and table libraries plus a "safe" os
library (time, date); there is no string or math library, no io and no debug. The script sees the live object
as the global ``obj``: a health script returns ``{status, message}``, a discovery script a table of actions,
an action script either the modified object (to patch) or, since Argo CD 2.8, a list of operations
``{{operation = "create" | "patch", resource = ...}, ...}`` (util/lua/lua.go, ExecuteResourceAction).

What a script returns reaches Argo CD as JSON (gopher-json): an empty table becomes ``[]``, a table with keys 1..n an
array, a table with string keys an object, and any other table is an error. ``to_python`` does the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lupa import lua51

#: Globals Argo CD's VM does not provide; removed so that a script relying on them fails here too.
_NOT_IN_ARGOCD = ("string", "math", "io", "debug", "coroutine", "dofile", "loadfile", "load", "loadstring")


def _runtime(now: int) -> Any:
    lua = lua51.LuaRuntime(register_eval=False, unpack_returned_tuples=True)
    g = lua.globals()
    real_date = g.os.date
    # Strings lose their methods (("x"):format) like in Argo CD, where the string library is not opened.
    lua.execute('getmetatable("").__index = {}')
    for name in _NOT_IN_ARGOCD:
        g[name] = None
    g.os = lua.table_from({"time": lambda *_: now, "date": real_date})
    return lua


def to_python(value: Any) -> Any:
    """A Lua value as Argo CD's JSON encoding sees it: an empty table is ``[]`` (so an object must never hold an
    empty table), keys 1..n make a list, string keys a dict; other tables are refused, as gopher-json refuses them."""
    if lua51.lua_type(value) != "table":
        return value
    items = list(value.items())
    keys = [k for k, _ in items]
    if all(type(k) is int for k in keys) and sorted(keys) == list(range(1, len(keys) + 1)):
        return [to_python(v) for _, v in sorted(items)]
    if all(isinstance(k, str) for k in keys):
        return {k: to_python(v) for k, v in items}
    raise ValueError(f"a table with keys {sorted(map(repr, keys))} is neither an array nor an object in JSON")


def run_lua(script: Path, obj: Mapping[str, Any], *, now: int = 0) -> Any:
    """Run ``script`` with ``obj`` as the global ``obj``; return what it returns, as Python data."""
    lua = _runtime(now)
    lua.globals().obj = lua.table_from(obj, recursive=True)
    return to_python(lua.execute(script.read_text()))


#: The operations an action may return (util/lua/impacted_resource.go); "patch" only of the source object.
OPERATIONS = frozenset({"create", "patch"})


def impacted_resources(result: Any, source: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """What Argo CD does with an action's result (util/lua/lua.go): a list is a list of operations, an object is the
    source object to patch. Raises ValueError where Argo CD refuses the result."""
    if isinstance(result, dict):
        return [("patch", result)]
    if not isinstance(result, list):
        raise ValueError(f"an action returns a table, not {result!r}")
    out = []
    for entry in result:
        if not (isinstance(entry, dict) and set(entry) == {"operation", "resource"}):
            raise ValueError(f"an operation is {{operation = ..., resource = ...}}, not {entry!r}")
        operation, resource = entry["operation"], entry["resource"]
        if operation not in OPERATIONS or not isinstance(resource, dict):
            raise ValueError(f"unsupported operation {operation!r} or resource {resource!r}")
        if operation == "patch" and _identity(resource) != _identity(source):
            raise ValueError(f"patch is only supported for the source object, not {_identity(resource)}")
        out.append((operation, resource))
    return out


def _identity(obj: Mapping[str, Any]) -> tuple[Any, ...]:
    meta = obj.get("metadata") or {}
    return obj.get("apiVersion"), obj.get("kind"), meta.get("namespace"), meta.get("name")
