"""Server-side printing for ``kubectl get``: a ``meta.k8s.io/v1`` Table with the CRD's additionalPrinterColumns
(Name and Age for everything else), answered when the client's Accept header asks for ``as=Table``."""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["human_age", "table", "wants_table"]


def wants_table(accept: str) -> bool:
    """``application/json;as=Table;v=v1;g=meta.k8s.io,...`` (what kubectl get sends) -> True."""
    return any("as=Table" in part and "g=meta.k8s.io" in part for part in accept.split(","))


def human_age(timestamp: str | None, now: datetime.datetime | None = None) -> str:
    """Age as kubectl prints it.

    >>> start = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    >>> [human_age("2026-01-01T00:00:00Z", start + datetime.timedelta(seconds=s)) for s in (5, 125, 4000, 90000)]
    ['5s', '2m5s', '66m', '25h']
    """
    if not timestamp:
        return "<unknown>"
    now = now or datetime.datetime.now(tz=datetime.UTC)
    then = datetime.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    seconds = max(0, int((now - then).total_seconds()))
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if seconds < 120:
        return f"{seconds}s"
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if days < 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    return f"{days}d" if days < 730 else f"{days // 365}y"


def _lookup(obj: Mapping[str, Any], json_path: str) -> Any:
    """The simple ``.a.b`` JSONPaths printer columns use (no filters or wildcards)."""
    value: Any = obj
    for part in json_path.strip().lstrip(".").split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def table(
    objects: Iterable[Mapping[str, Any]],
    columns: list[dict[str, Any]],
    resource_version: str,
    include_object: str = "Metadata",
) -> dict[str, Any]:
    """A Table of ``objects``; ``columns`` are CRD additionalPrinterColumns (an Age column is always there)."""
    printer = [c for c in columns if c.get("jsonPath") != ".metadata.creationTimestamp"]
    definitions = [
        {"name": "Name", "type": "string", "format": "name", "description": "the object's name", "priority": 0}
    ]
    definitions += [
        {
            "name": c["name"],
            "type": c.get("type", "string"),
            "format": c.get("format", ""),
            "description": c.get("description", ""),
            "priority": c.get("priority", 0),
        }
        for c in printer
    ]
    definitions.append(
        {"name": "Age", "type": "string", "format": "", "description": "time since creation", "priority": 0}
    )
    rows = []
    for obj in objects:
        meta = obj.get("metadata") or {}
        cells: list[Any] = [meta.get("name")]
        for column in printer:
            value = _lookup(obj, column["jsonPath"])
            cells.append(human_age(value) if column.get("type") == "date" and value else value)
        cells.append(human_age(meta.get("creationTimestamp")))
        if include_object == "Object":
            row_object: Any = obj
        elif include_object == "None":
            row_object = None
        else:
            row_object = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": meta}
        rows.append({"cells": cells, "object": row_object})
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": definitions,
        "rows": rows,
    }
