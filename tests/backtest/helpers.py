"""Recorded readings for the backtest tests, described minute by minute."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from modelops.api import ModelDeploymentSpec
from modelops.cli.backtest_data import apply_overrides, load_policy
from modelops.core import Reading
from modelops.core.backtest import BacktestResult, Sample, Target

DATA = Path(__file__).parent / "data"
POLICY = DATA / "policy.yaml"
OUTAGE_CSV = DATA / "outage.csv"
T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)


def policy(*overrides: str) -> ModelDeploymentSpec:
    _, spec = load_policy(POLICY.read_text(), str(POLICY))
    return ModelDeploymentSpec.model_validate(apply_overrides(spec, list(overrides)))


def policy_yaml(tmp: Path, *overrides: str) -> Path:
    doc = yaml.safe_load(POLICY.read_text())
    doc["spec"] = apply_overrides(doc["spec"], list(overrides))
    out = tmp / "policy-b.yaml"
    out.write_text(yaml.safe_dump(doc))
    return out


def minutes(
    n: int, metric: str, target: Target, value: Callable[[int], float | str | None], start: datetime = T0
) -> list[Sample]:
    """One sample a minute for minutes 0..n: a number, None (no data) or "error"."""
    out = []
    for m in range(n + 1):
        v = value(m)
        reading = Reading.error("timeout") if v == "error" else Reading.no_data() if v is None else Reading.of(float(v))
        out.append(Sample(start + m * MIN, metric, target, reading))
    return out


def healthy(n: int = 20, **changes: Callable[[int], float | str | None]) -> list[Sample]:
    """error-rate 0.01, accuracy 0.85 vs stable 0.86 every minute, unless ``changes`` says otherwise."""
    err = changes.get("error_rate", lambda m: 0.01)
    acc = changes.get("accuracy", lambda m: 0.85)
    stable = changes.get("stable_accuracy", lambda m: 0.86)
    return [
        *minutes(n, "error-rate", "candidate", err),
        *minutes(n, "accuracy", "candidate", acc),
        *minutes(n, "accuracy", "stable", stable),
    ]


def decisions(result: BacktestResult, quiet: bool = True) -> list[tuple[int, str, int]]:
    """``(minute, decision, weight)`` of every decision (passed checks left out when ``quiet``)."""
    return [
        (int((e.at - T0).total_seconds() // 60), e.kind, e.weight)
        for e in result.entries
        if not quiet or e.kind != "check-passed"
    ]
