"""What ``modelops backtest`` prints: a decision table (one policy, or two side by side), a summary, JSON.

Pure formatting of :class:`~modelops.core.backtest.BacktestResult`, unit-tested on its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from modelops.api import format_duration
from modelops.core.backtest import BacktestResult, TimelineEntry

#: Decisions shown by default; ``check-passed`` rows (nothing changed) only with ``--verbose``.
QUIET = frozenset({"check-passed"})


def offset(at: datetime, start: datetime) -> str:
    """``+1h5m`` from the start of the window (``+0s`` at it)."""
    return "+" + format_duration(at - start) if at >= start else "-" + format_duration(start - at)


def _cell(entry: TimelineEntry | None, width: int) -> list[str]:
    if entry is None:
        return ["", "", ""]
    why = entry.reason if len(entry.reason) <= width else entry.reason[: width - 1] + "…"
    return [f"{entry.weight}%", entry.kind, why]


def render_table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> str:
    """Columns padded to their widest cell, two spaces apart (the last column is not padded)."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = []
    for r in [header, *rows]:
        cells = [str(c).ljust(w) for c, w in zip(r, widths, strict=True)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def decision_table(
    results: Sequence[BacktestResult], start: datetime, *, verbose: bool = False, width: int = 70
) -> str:
    """One row per moment at which some policy decided something, each policy's weight, decision and why."""
    by_policy = [{e.at: e for e in r.entries if verbose or e.kind not in QUIET} for r in results]
    times = sorted({t for entries in by_policy for t in entries})
    header = ["TIME"]
    for n, _ in enumerate(results):
        prefix = f"{label(n)}: " if len(results) > 1 else ""
        header += [f"{prefix}WEIGHT", "DECISION", "WHY"]
    rows = []
    for t in times:
        row = [offset(t, start)]
        for entries in by_policy:
            row += _cell(entries.get(t), width)
        rows.append(row)
    return render_table(rows, header)


def label(n: int) -> str:
    """Policies are columns A, B, ... in the side-by-side table (their names can be long)."""
    return chr(ord("A") + n)


def summary_table(results: Sequence[BacktestResult], start: datetime) -> str:
    header = ["POLICY", "OUTCOME", "AT", "STEPS", "CHECKS PASSED", "FAILED", "UNAVAILABLE"]
    rows = []
    for n, r in enumerate(results):
        name = f"{label(n)}: {r.name}" if len(results) > 1 else r.name
        at = offset(r.outcome_at, start) if r.outcome_at is not None else "-"
        steps = " -> ".join(f"{w}%" for w in r.step_weights()) or "-"
        rows.append([name, r.outcome, at, steps, str(r.passed_checks), str(r.failed_checks), str(r.unavailable_checks)])
    return render_table(rows, header)


def report(results: Sequence[BacktestResult], start: datetime, end: datetime, *, verbose: bool = False) -> str:
    window = format_duration(timedelta(seconds=(end - start).total_seconds()))
    parts = [
        f"Backtest from {start.isoformat()} for {window}",
        "",
        decision_table(results, start, verbose=verbose, width=70 if len(results) == 1 else 48),
        "",
        summary_table(results, start),
    ]
    return "\n".join(parts)


def to_json(results: Sequence[BacktestResult], start: datetime, end: datetime) -> dict[str, Any]:
    return {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "policies": [
            {
                "name": r.name,
                "outcome": r.outcome,
                "outcomeAt": r.outcome_at.isoformat() if r.outcome_at else None,
                "finalWeight": r.final_weight,
                "stepWeights": r.step_weights(),
                "passedChecks": r.passed_checks,
                "failedChecks": r.failed_checks,
                "unavailableChecks": r.unavailable_checks,
                "decisions": [
                    {
                        "at": e.at.isoformat(),
                        "phase": e.phase,
                        "weight": e.weight,
                        "step": e.step,
                        "decision": e.kind,
                        "reason": e.reason,
                        "metrics": [
                            {"name": m.metric, "value": m.value, "verdict": m.verdict, "message": m.message}
                            for m in e.metrics
                        ],
                    }
                    for e in r.entries
                ],
            }
            for r in results
        ],
    }


__all__ = ["decision_table", "label", "offset", "render_table", "report", "summary_table", "to_json"]
