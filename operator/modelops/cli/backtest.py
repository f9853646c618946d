"""``modelops backtest``: replay a rollout policy over recorded metrics, with the operator's own ``decide``.

Readings come from a file (``--data``, CSV or JSON: see :mod:`modelops.cli.backtest_data`) or from a Prometheus
range query over a past window (``--prometheus URL --start --end --step``). ``--compare`` replays a second policy
(another spec file, or the same one with ``--set`` overrides) on the same readings, side by side. The replay itself
is :func:`modelops.core.backtest.replay`; this module only loads, prints and plots.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from modelops.api import ModelDeploymentSpec, describe, parse_duration
from modelops.core.backtest import BacktestResult, Sample, replay
from modelops.core.promql import TemplateError, render

from .backtest_data import (
    DataError,
    apply_overrides,
    load_policy,
    load_samples,
    parse_time,
    samples_from_range,
)
from .backtest_report import report, to_json


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "backtest",
        help="replay a rollout policy over recorded metrics",
        description="Replay a ModelDeployment's rollout policy with the operator's own decisions over recorded "
        "metric readings, and report when it would have advanced, held or rolled back, and why.",
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("-f", "--file", type=Path, help="the policy: a ModelDeployment manifest (or its spec)")
    source.add_argument("--name", help="the policy of this ModelDeployment in the cluster")
    p.add_argument("-n", "--namespace", help="namespace of --name (default: the kubeconfig context's)")
    p.add_argument("--kubeconfig", help="kubeconfig file for --name")
    p.add_argument("--context", help="kubeconfig context for --name")
    data = p.add_mutually_exclusive_group(required=True)
    data.add_argument("--data", type=Path, help="recorded readings: CSV or JSON (time, metric, target, value)")
    data.add_argument("--prometheus", metavar="URL", help="read the window from this Prometheus (range queries)")
    p.add_argument("--start", help="window start: ISO 8601, Unix seconds, or now-DURATION (default: first sample)")
    p.add_argument("--end", help="window end (default: last sample; 'now' with --prometheus)")
    p.add_argument("--step", default=None, help="range query resolution, e.g. 30s (default: the analysis interval)")
    p.add_argument("--candidate-version", help="the candidate's version in the queries (default: spec.model.version)")
    p.add_argument("--stable-version", help="the stable version in the queries (default: status.stableVersion)")
    p.add_argument(
        "--max-age", help="a reading older than this is no reading (default: the analysis interval), e.g. 2m"
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="PATH=VALUE",
        help="override a spec field, e.g. rollout.analysis.failureLimit=3 (applies to the compared policy "
        "with --compare)",
    )
    p.add_argument(
        "--compare",
        nargs="?",
        const="",
        default=None,
        metavar="FILE",
        help="replay a second policy side by side: FILE, or (without FILE) the first one with the --set overrides",
    )
    p.add_argument("--png", type=Path, help="write a timeline PNG here")
    p.add_argument("-o", "--output", choices=["table", "json"], default="table")
    p.add_argument("-v", "--verbose", action="store_true", help="also list checks that passed without a change")
    p.set_defaults(func=run)


def _when(text: str, now: datetime) -> datetime:
    text = text.strip()
    if text == "now":
        return now
    if text.startswith("now-"):
        return now - parse_duration(text[4:])
    return parse_time(text)


def _spec(doc: dict[str, Any], source: str) -> ModelDeploymentSpec:
    try:
        return ModelDeploymentSpec.model_validate(doc)
    except ValidationError as exc:
        raise DataError(f"{source}: " + "; ".join(describe(exc, ("spec",)))) from exc


def _cluster_policy(args: argparse.Namespace) -> tuple[str, dict[str, Any], dict[str, Any], str]:
    from .kubectl import connect

    api, namespace = connect(args.kubeconfig, args.context, args.namespace)
    from modelops.adapters.kube import MODELDEPLOYMENTS

    obj = api.get(MODELDEPLOYMENTS, namespace, args.name)
    if obj is None:
        raise DataError(f'modeldeployment "{args.name}" not found in namespace "{namespace}"')
    return args.name, obj.get("spec") or {}, obj.get("status") or {}, namespace


def _prometheus_samples(
    url: str,
    specs: list[ModelDeploymentSpec],
    namespace: str,
    versions: dict[str, str],
    start: datetime,
    end: datetime,
    step_text: str | None,
) -> list[Sample]:
    from modelops.adapters.prometheus import PrometheusProvider

    samples: list[Sample] = []
    seen: set[tuple[str, str]] = set()
    with PrometheusProvider(url) as prom:
        for spec in specs:
            interval = spec.rollout.analysis.interval
            step = parse_duration(step_text or interval)
            for metric in spec.rollout.analysis.metrics:
                targets = ["candidate", "stable"] if metric.baseline is not None else ["candidate"]
                for target in targets:
                    if (metric.name, target) in seen:
                        continue
                    seen.add((metric.name, target))
                    values = {
                        "namespace": namespace,
                        "model": spec.model.name,
                        "version": versions[target],
                        "interval": interval,
                    }
                    try:
                        promql = render(metric.query, values)
                    except TemplateError as exc:
                        raise DataError(f"metric {metric.name}: {exc}") from exc
                    answer = prom.query_range(promql, start, end, step.total_seconds())
                    samples += samples_from_range(metric.name, target, answer, start, end, step)  # type: ignore[arg-type]
    return samples


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except (DataError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    now = datetime.now(UTC)
    status: dict[str, Any] = {}
    namespace = args.namespace or "default"
    if args.file is not None:
        name, base = load_policy(args.file.read_text(encoding="utf-8"), str(args.file))
    else:
        name, base, status, namespace = _cluster_policy(args)
    policies: list[tuple[str, dict[str, Any]]]
    if args.compare is None:
        policies = [(name, apply_overrides(base, args.overrides))]
    elif args.compare:
        other_name, other = load_policy(Path(args.compare).read_text(encoding="utf-8"), args.compare)
        other_name = other_name if other_name != name else f"{other_name} ({Path(args.compare).name})"
        policies = [(name, base), (other_name, apply_overrides(other, args.overrides))]
    else:
        if not args.overrides:
            raise DataError("--compare without FILE compares with the --set overrides: give at least one --set")
        policies = [(name, base), (f"{name} with " + ", ".join(args.overrides), apply_overrides(base, args.overrides))]
    specs = [_spec(doc, label) for label, doc in policies]
    candidate = args.candidate_version or status.get("candidateVersion") or specs[0].model.version
    stable = args.stable_version or status.get("stableVersion") or "stable"

    if args.data is not None:
        samples = load_samples(args.data)
        if not samples:
            raise DataError(f"{args.data}: no readings")
        start = _when(args.start, now) if args.start else min(s.at for s in samples)
        end = _when(args.end, now) if args.end else max(s.at for s in samples)
    else:
        if not args.start:
            raise DataError("--prometheus needs --start (and --end, default now)")
        start = _when(args.start, now)
        end = _when(args.end, now) if args.end else now
        versions = {"candidate": candidate, "stable": stable}
        samples = _prometheus_samples(args.prometheus, specs, namespace, versions, start, end, args.step)
    if end <= start:
        raise DataError(f"the window is empty: end {end.isoformat()} is not after start {start.isoformat()}")
    max_age = parse_duration(args.max_age) if args.max_age else None
    results: list[BacktestResult] = [
        replay(spec, samples, start, end, name=label, candidate=candidate, stable=stable, max_age=max_age)
        for (label, _), spec in zip(policies, specs, strict=True)
    ]
    if args.output == "json":
        print(json.dumps(to_json(results, start, end), indent=2))
    else:
        print(report(results, start, end, verbose=args.verbose))
    if args.png is not None:
        from .backtest_plot import write_timeline

        try:
            write_timeline(args.png, results, specs, samples)
        except ImportError as exc:  # matplotlib is an extra
            raise DataError(f"--png needs matplotlib (pip install 'modelops[sandbox]'): {exc}") from exc
        if args.output != "json":
            print(f"\ntimeline written to {args.png}")
    return 0


__all__ = ["register", "run"]
