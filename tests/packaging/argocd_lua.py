"""Runs Argo CD resource-customization Lua the way Argo CD does, with lupa's Lua 5.1 (Argo CD embeds gopher-lua,
a Lua 5.1). Argo CD's VM (util/lua/lua.go) opens only the base, package and table libraries plus a "safe" os
library (time, date); there is no string or math library, no io and no debug. The script sees the live object
as the global ``obj``: a health script returns ``{status, message}``, a discovery script a table of actions,
an action script the modified object.
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
    """A Lua value as plain Python data: tables with keys 1..n become lists, other tables dicts."""
    if lua51.lua_type(value) != "table":
        return value
    items = list(value.items())
    keys = [k for k, _ in items]
    if keys and all(isinstance(k, int) for k in keys) and sorted(keys) == list(range(1, len(keys) + 1)):
        return [to_python(v) for _, v in sorted(items)]
    return {k: to_python(v) for k, v in items}


def run_lua(script: Path, obj: Mapping[str, Any], *, now: int = 0) -> Any:
    """Run ``script`` with ``obj`` as the global ``obj``; return what it returns, as Python data."""
    lua = _runtime(now)
    lua.globals().obj = lua.table_from(obj, recursive=True)
    return to_python(lua.execute(script.read_text()))
