"""The PNG timeline of ``modelops backtest`` (matplotlib, Agg: no display needed).

Top panel: the candidate's weight under each policy, with its promotion or rollback marked. One panel per metric:
the recorded candidate (and stable) values, the metric's thresholds, and shaded spans where there was no data or an
error (a Prometheus outage shows up there).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from modelops.api import Metric, ModelDeploymentSpec
from modelops.core.backtest import BacktestResult, Sample


def write_timeline(
    path: Path,
    results: Sequence[BacktestResult],
    specs: Sequence[ModelDeploymentSpec],
    samples: Sequence[Sample],
) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics: list[Metric] = []
    for spec in specs:
        for m in spec.rollout.analysis.metrics:
            if m.name not in [x.name for x in metrics]:
                metrics.append(m)
    fig, axes = plt.subplots(1 + len(metrics), 1, figsize=(11, 3 + 2.2 * len(metrics)), sharex=True, squeeze=False)
    ax = axes[0][0]
    styles = ["-", "--", ":", "-."]
    for i, r in enumerate(results):
        if not r.weights:
            continue
        xs = [t for t, _ in r.weights]
        ys = [w for _, w in r.weights]
        ax.step(xs, ys, where="post", linestyle=styles[i % len(styles)], linewidth=2, label=f"{r.name}: {r.outcome}")
        for e in r.entries:
            if e.kind in ("rollback", "promote"):
                color = "tab:red" if e.kind == "rollback" else "tab:green"
                ax.axvline(e.at, color=color, linestyle=styles[i % len(styles)], alpha=0.6)
    ax.set_ylabel("candidate weight %")
    ax.set_ylim(-5, 105)
    ax.set_title("Backtest: candidate weight per policy")
    ax.legend(loc="upper left", fontsize="small")
    for row, metric in enumerate(metrics, start=1):
        ax = axes[row][0]
        for target, color in (("candidate", "tab:blue"), ("stable", "tab:gray")):
            points = sorted((s.at, s.reading) for s in samples if s.metric == metric.name and s.target == target)
            if any(r.value is not None for _, r in points):
                # NaN where there was no reading, so the line breaks over an outage instead of bridging it
                series: list[float] = [r.value if r.value is not None else float("nan") for _, r in points]
                ax.plot([t for t, _ in points], series, ".-", color=color, label=target, markersize=3)
            for t, reading in points:
                if reading.value is None:
                    shade = "tab:red" if reading.kind == "Error" else "tab:orange"
                    ax.axvline(t, color=shade, alpha=0.25, linewidth=4)
        if metric.min is not None:
            ax.axhline(metric.min, color="tab:red", linestyle="--", linewidth=1, label=f"min {metric.min:g}")
        if metric.max is not None:
            ax.axhline(metric.max, color="tab:red", linestyle="--", linewidth=1, label=f"max {metric.max:g}")
        owner = f" ({metric.owner})" if metric.owner else ""
        ax.set_ylabel(f"{metric.name}{owner}", fontsize="small")
        ax.legend(loc="upper left", fontsize="x-small")
    axes[-1][0].set_xlabel("time (orange: no data, red: query error)")
    fig.autofmt_xdate()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


__all__ = ["write_timeline"]
