"""The end of the demo: a summary table (phases, versions and outcomes, removed objects, expectations, traffic) and
a PNG timeline (canary weights, metric values against their thresholds, phase changes as markers)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from modelops.api import ModelDeploymentStatus, ModelRetirementStatus
from modelops.sandbox.shares import segment_checks
from modelops.sandbox.traffic import Segment, TrafficStats

from .observer import MetricPoint, Observer, PhaseMark
from .scenario import Expectation

__all__ = ["plot_timeline", "summary"]

#: phases drawn as markers on the timeline (others are in the table only)
MARKED = frozenset({"Paused", "Promoted", "RolledBack", "Failed", "Degraded=True", "Degraded=False",
                    "RetrainingRunning", "Draining", "Retired"})  # fmt: skip


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return out


def summary(
    observer: Observer,
    expectations: Sequence[Expectation],
    acts_planned: Sequence[str],
    acts_done: Sequence[str],
    traffic: TrafficStats | None,
    statuses: dict[str, ModelDeploymentStatus],
    retirement: ModelRetirementStatus | None,
    segments: Sequence[Segment] = (),
) -> str:
    """The summary printed at the end of the demo, as plain text."""
    lines = ["", "=" * 100, "SUMMARY", "=" * 100, "", "Phase changes:"]
    lines += _table(
        ["t (s)", "object", "phase", "version", "message"],
        [[f"{m.t:.1f}", m.owner, m.phase, m.version or "", m.message[:90]] for m in observer.marks()],
    )
    for name, st in statuses.items():
        if not st.history:
            continue
        lines += ["", f"Versions of {name} (status.history):"]
        rows = []
        for h in st.history:
            took = (h.finished_at - h.started_at).total_seconds() if h.finished_at and h.started_at else None
            rows.append([h.version, h.outcome, f"{took:.0f}s" if took is not None else "", h.reason])
        lines += _table(["version", "outcome", "took", "reason"], rows)
    if retirement is not None:
        lines += ["", f"Retirement: {retirement.phase} - {retirement.message}", "Removed (status.removed):"]
        lines += _table(
            ["kind", "name", "at"],
            [[r.kind, r.name, r.at.strftime("%H:%M:%S") if r.at else ""] for r in retirement.removed],
        )
    if traffic is not None:
        lines += [
            "",
            f"Traffic: {traffic.sent} requests, {traffic.ok} answered, {traffic.errors} error answers "
            f"{dict(sorted(traffic.by_status.items()))}, {traffic.failures} without answer"
            + (f" {dict(sorted(traffic.failure_kinds.items()))}" if traffic.failures else "")
            + "; "
            f"accuracy seen by clients {traffic.accuracy or 0:.3f}",
            "  by version: " + ", ".join(f"{k} {v}" for k, v in sorted(traffic.by_version.items())),
            "  by backend: " + ", ".join(f"{k or '-'} {v}" for k, v in sorted(traffic.by_backend.items())),
        ]
    if segments:
        lines += ["", "Traffic per split of the route (as Traefik accepted it; first second of each left out):"]
        rows = []
        for g in segments:
            for c in segment_checks(g):
                at = f"{g.started - segments[0].started:.0f}"
                verdict = "ok" if c.ok else "OUT"
                rows.append([at, c.backend, f"{c.weight}%", str(c.count), str(c.total), f"{c.share:.1%}",
                             f"+/- {c.bound:.1%}", verdict])  # fmt: skip
        lines += _table(["t (s)", "backend", "weight", "answers", "of", "share", "bound", ""], rows)
    lines += ["", "Expectations:"]
    lines += [f"  [{'ok' if e.passed else 'FAILED'}] {e.act}: {e.text}" + (f" ({e.detail})" if e.detail and not
              e.passed else "") for e in expectations]  # fmt: skip
    missing = [a for a in acts_planned if a not in acts_done]
    if missing:
        lines.append(f"  [FAILED] not completed: {', '.join(missing)}")
    ok = bool(expectations) and all(e.passed for e in expectations) and not missing
    lines += ["", "The lifecycle went as described." if ok else "The lifecycle did NOT go as described.", ""]
    return "\n".join(lines)


def plot_timeline(observer: Observer, path: Path, title: str = "modelops demo: recommender lifecycle") -> Path:
    """Draw the timeline to ``path`` (PNG) with matplotlib's Agg backend; returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(4, 1, figsize=(14, 12), sharex=True, constrained_layout=True)
    ax_w, ax_acc, ax_err, ax_drift = axes
    fig.suptitle(title)

    # Weights: each candidate's canary weight, and the retirement's drained weight.
    series: dict[tuple[str, str], tuple[list[float], list[int]]] = {}
    for w in observer.weights:
        if w.version is None:
            continue
        ts, ws = series.setdefault((w.owner, w.version), ([], []))
        ts.append(w.t)
        ws.append(w.weight)
    for (owner, version), (ts, ws) in series.items():
        label = f"drained to {version}" if owner.startswith("retire-") else f"{owner} {version} (canary)"
        ax_w.step(ts, ws, where="post", label=label)
    ax_w.set_ylabel("weight %")
    ax_w.set_ylim(-5, 105)

    def metric_panel(ax: object, names: Sequence[str], ylabel: str) -> None:
        points: list[MetricPoint] = [p for p in observer.metrics if p.name in names and p.value is not None]
        groups: dict[tuple[str, str, str, str], tuple[list[float], list[float]]] = {}
        for p in points:
            assert p.value is not None
            xs, ys = groups.setdefault((p.owner, p.source, p.version, p.name), ([], []))
            xs.append(p.t)
            ys.append(p.value)
        for (owner, source, version, name), (xs, ys) in groups.items():
            marker = "o" if source == "analysis" else "^"
            who = "" if owner == "recommender" else f"{owner} "
            ax.plot(xs, ys, marker=marker, markersize=4, linewidth=1,  # type: ignore[attr-defined]
                    label=f"{who}{version} {name} ({source})")  # fmt: skip
        bounds = {(p.name, p.source, b, kind) for p in points for b, kind in ((p.min, "min"), (p.max, "max")) if b}
        for name, source, bound, kind in sorted(bounds):
            ax.axhline(bound, linestyle="--", linewidth=0.8, color="red" if kind == "max" else "darkred")  # type: ignore[attr-defined]
            ax.annotate(f"{name} {kind} {bound:g} ({source})", xy=(0, bound), xycoords=("axes fraction", "data"),  # type: ignore[attr-defined]
                        fontsize=7, color="darkred", va="bottom")  # fmt: skip
        ax.set_ylabel(ylabel)  # type: ignore[attr-defined]

    metric_panel(ax_acc, ["accuracy"], "accuracy")
    metric_panel(ax_err, ["error-rate", "latency-p99"], "error rate / p99 latency (s)")
    metric_panel(ax_drift, ["input-drift"], "input drift (PSI)")
    ax_drift.set_xlabel("seconds since the demo started")

    marks: list[PhaseMark] = [m for m in observer.marks() if m.phase in MARKED]
    colors = {"Promoted": "green", "RolledBack": "red", "Failed": "red", "Degraded=True": "orange",
              "Retired": "purple", "Paused": "goldenrod"}  # fmt: skip
    # Marks closer than 1% of the time axis share one label (a promotion and the Degraded it clears, say).
    span = max((m.t for m in marks), default=1.0) or 1.0
    groups: list[list[PhaseMark]] = []
    for m in marks:
        if groups and m.t - groups[-1][0].t <= span / 100:
            groups[-1].append(m)
        else:
            groups.append([m])
    for group in groups:
        first = group[0]
        color = colors.get(first.phase, "grey")
        for ax in axes:
            ax.axvline(first.t, color=color, linewidth=0.6, alpha=0.6)
        labels = []
        for m in group:
            who = "" if m.owner == "recommender" else f"{m.owner.replace('recommender', '').strip('-')} "
            labels.append(f"{who}{m.version or ''} {m.phase}".strip())
        ax_w.annotate(", ".join(labels), xy=(first.t, 1.0), xycoords=("data", "axes fraction"),
                      rotation=90, fontsize=7, va="bottom", ha="center", color=color)  # fmt: skip
    for ax in axes:
        handles, _ = ax.get_legend_handles_labels()
        if handles:
            ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7)
        ax.grid(alpha=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
