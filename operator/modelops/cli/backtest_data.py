"""Inputs of ``modelops backtest``: recorded readings (CSV, JSON, a Prometheus range query), policies and overrides.

Pure parsing, kept apart from the command so it is unit-tested on its own.

Readings file format (CSV with a header, or JSON: a list of objects, or ``{"samples": [...]}``), one reading a row:

=========  =====================================================================================================
column     meaning
=========  =====================================================================================================
time       ISO 8601 (``2026-03-01T10:00:00Z``; no zone means UTC) or Unix seconds
metric     the metric's ``name`` in ``spec.rollout.analysis.metrics``
target     ``candidate`` or ``stable`` (``stable`` readings are used by metrics with a ``baseline``)
value      a number; empty (JSON ``null``) for "no data"; ``error`` or ``error: message`` for a failed query
=========  =====================================================================================================
"""

from __future__ import annotations

import bisect
import csv
import io
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import yaml

from modelops.adapters.prometheus import RangeReading
from modelops.core import Reading, ReadingKind
from modelops.core.backtest import Sample, Target

FIELDS = ("time", "metric", "target", "value")


class DataError(ValueError):
    """A readings file, a policy or an override that cannot be used; the message names where."""


def parse_time(text: str | float | int) -> datetime:
    """ISO 8601 (naive means UTC) or Unix seconds.

    >>> parse_time("2026-03-01T10:00:00Z").isoformat()
    '2026-03-01T10:00:00+00:00'
    >>> parse_time("1772359200").isoformat()
    '2026-03-01T10:00:00+00:00'
    """
    if isinstance(text, int | float):
        return datetime.fromtimestamp(float(text), UTC)
    raw = text.strip()
    try:
        return datetime.fromtimestamp(float(raw), UTC)
    except ValueError:
        pass
    try:
        at = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError as exc:
        raise DataError(f"invalid time {text!r}: expected ISO 8601 or Unix seconds") from exc
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def parse_reading(value: Any) -> Reading:
    """A cell of the ``value`` column: a number, empty/None (no data), or ``error[: message]``.

    >>> parse_reading("0.5")
    Reading(kind=<ReadingKind.VALUE: 'Value'>, value=0.5, message='')
    >>> parse_reading("").kind.value, parse_reading(None).kind.value
    ('NoData', 'NoData')
    >>> parse_reading("error: timeout").message
    'timeout'
    """
    if value is None:
        return Reading.no_data("no data (recorded)")
    if isinstance(value, bool):
        raise DataError(f"invalid value {value!r}")
    if isinstance(value, int | float):
        number = float(value)
    else:
        text = str(value).strip()
        if not text:
            return Reading.no_data("no data (recorded)")
        if text.lower().startswith("error"):
            message = text[5:].lstrip(" :") or "query error (recorded)"
            return Reading.error(message)
        try:
            number = float(text)
        except ValueError as exc:
            raise DataError(f"invalid value {value!r}: expected a number, empty, or 'error'") from exc
    if math.isnan(number) or math.isinf(number):
        return Reading.no_data(f"recorded {number}")
    return Reading.of(number)


def _target(value: Any) -> Target:
    if value not in ("candidate", "stable"):
        raise DataError(f"invalid target {value!r}: expected candidate or stable")
    return cast(Target, value)


def samples_from_rows(rows: Iterable[Mapping[str, Any]], source: str = "data") -> list[Sample]:
    out = []
    for n, row in enumerate(rows, start=1):
        missing = [f for f in ("time", "metric", "target") if row.get(f) in (None, "")]
        if missing:
            raise DataError(f"{source}: row {n}: missing {', '.join(missing)}")
        try:
            out.append(
                Sample(
                    parse_time(row["time"]), str(row["metric"]), _target(row["target"]), parse_reading(row.get("value"))
                )
            )
        except DataError as exc:
            raise DataError(f"{source}: row {n}: {exc}") from exc
    return out


def parse_samples(text: str, fmt: str, source: str = "data") -> list[Sample]:
    """Samples from a CSV or JSON document (see the module's docstring for the columns)."""
    if fmt == "csv":
        reader = csv.DictReader(io.StringIO(text))
        if reader.fieldnames is None or not set(FIELDS) <= set(reader.fieldnames):
            raise DataError(f"{source}: CSV header must have the columns {', '.join(FIELDS)}")
        return samples_from_rows(reader, source)
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise DataError(f"{source}: not JSON: {exc}") from exc
    if isinstance(data, dict):
        data = data.get("samples")
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise DataError(f'{source}: expected a JSON list of objects or {{"samples": [...]}}')
    return samples_from_rows(data, source)


def load_samples(path: Path) -> list[Sample]:
    fmt = "json" if path.suffix.lower() == ".json" else "csv"
    return parse_samples(path.read_text(encoding="utf-8"), fmt, str(path))


def dump_samples_csv(samples: Sequence[Sample]) -> str:
    """The CSV form of samples (how a run's readings are recorded for a later backtest)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(FIELDS)
    for s in sorted(samples, key=lambda s: (s.at, s.metric, s.target)):
        r = s.reading
        cell = (
            "" if r.kind is ReadingKind.NO_DATA else f"error: {r.message}" if r.kind is ReadingKind.ERROR else r.value
        )
        writer.writerow([s.at.isoformat(), s.metric, s.target, cell])
    return out.getvalue()


def samples_from_range(
    metric: str, target: Target, reading: RangeReading, start: datetime, end: datetime, step: timedelta
) -> list[Sample]:
    """A range query's answer on the grid ``start, start+step, ..., end``: a point where Prometheus had one, "no
    data" at grid times without a point (a gap: nothing scraped), and an error at every time if the query failed."""
    points = sorted(reading.points)
    times = [t for t, _ in points]
    out = []
    at = start
    while at <= end:
        # Prometheus answers at start + k*step, in milliseconds: the point nearest the grid time, within half a step
        i = bisect.bisect_left(times, at)
        near = [j for j in (i - 1, i) if 0 <= j < len(times) and abs(times[j] - at) < step / 2]
        if reading.kind is ReadingKind.ERROR:
            out.append(Sample(at, metric, target, Reading.error(reading.message)))
        elif near:
            out.append(Sample(at, metric, target, Reading.of(points[near[0]][1])))
        else:
            out.append(Sample(at, metric, target, Reading.no_data("no sample in Prometheus")))
        at += step
    return out


def load_policy(text: str, source: str = "policy") -> tuple[str, dict[str, Any]]:
    """``(name, spec)`` from YAML/JSON holding a ModelDeployment manifest or a bare spec."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DataError(f"{source}: not YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise DataError(f"{source}: expected a ModelDeployment or its spec")
    if "spec" in doc:
        name = str((doc.get("metadata") or {}).get("name") or Path(source).stem)
        spec = doc["spec"]
    else:
        name, spec = Path(source).stem, doc
    if not isinstance(spec, dict):
        raise DataError(f"{source}: spec must be a mapping")
    return name, spec


def apply_overrides(spec: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """``rollout.analysis.failureLimit=3``: set a value (YAML-parsed) at a dotted path of the spec (camelCase,
    as in the manifest; ``rollout.steps.0.pause=10m`` indexes lists). Returns a new dict.

    >>> apply_overrides({"rollout": {"analysis": {"failureLimit": 1}}}, ["rollout.analysis.failureLimit=3"])
    {'rollout': {'analysis': {'failureLimit': 3}}}
    """
    out: dict[str, Any] = json.loads(json.dumps(spec))
    for item in overrides:
        path, sep, raw = item.partition("=")
        if not sep or not path.strip():
            raise DataError(f"invalid override {item!r}: expected path=value, e.g. rollout.analysis.failureLimit=3")
        keys = path.strip().split(".")
        node: Any = out
        for key in keys[:-1]:
            node = node[_index(key, item, len(node))] if isinstance(node, list) else node.setdefault(key, {})
            if not isinstance(node, dict | list):
                raise DataError(f"invalid override {item!r}: {key} is not a mapping or a list")
        value = yaml.safe_load(raw) if raw.strip() else ""
        if isinstance(node, list):
            node[_index(keys[-1], item, len(node))] = value
        else:
            node[keys[-1]] = value
    return out


def _index(key: str, item: str, size: int) -> int:
    if not key.isdigit() or int(key) >= size:
        raise DataError(f"invalid override {item!r}: {key} is not an index below {size}")
    return int(key)


__all__ = [
    "DataError",
    "apply_overrides",
    "dump_samples_csv",
    "load_policy",
    "load_samples",
    "parse_reading",
    "parse_samples",
    "parse_time",
    "samples_from_range",
    "samples_from_rows",
]
