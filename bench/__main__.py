"""``python -m bench``: run every benchmark, write ``bench/results.json``, print the table (``make bench``)."""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import psutil

from .audit_cost import audit_cost
from .decide import bench_decide
from .env import Exporter, prometheus, workdir
from .report import table
from .rollback import RollbackRun
from .scale import ScaleRun

RESULTS = Path(__file__).resolve().with_name("results.json")


def environment() -> dict[str, Any]:
    """What the scale and rollback runs run against (results.json says so beside the figures)."""
    from modelops.sandbox.cluster import kube_binaries

    version = kube_binaries(quiet=True).name
    return {
        "api": f"local control plane {version} (etcd, kube-apiserver, kube-controller-manager, kube-scheduler)",
        "node": "status-only (modelops.sandbox.node.standin.StatusOnlyNode)",
        "requests_counted_from": "the API server's audit log, the operator's ServiceAccount only",
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--sizes", type=int, nargs="*", default=[100, 1000], help="numbers of ModelDeployments")
    p.add_argument("--interval", type=float, default=30.0, help="analysis interval of the scale runs, seconds")
    p.add_argument(
        "--canary-intervals", type=int, default=3, help="analysis intervals the canary state is measured over"
    )
    p.add_argument("--rollback-interval", type=float, default=10.0, help="analysis interval of the rollback run")
    p.add_argument("--rollback-objects", type=int, default=10, help="ModelDeployments breached at once")
    p.add_argument("--decide-seconds", type=float, default=3.0)
    p.add_argument("--audit-requests", type=int, default=1000, help="requests per batch of the audit-cost stage")
    p.add_argument("--skip", choices=["scale", "rollback", "decide", "audit"], action="append", default=[])
    p.add_argument("--output", type=Path, default=RESULTS)
    args = p.parse_args(argv)

    started = time.monotonic()
    results: dict[str, Any] = {
        "machine": {
            "cpus": psutil.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
    }
    if "scale" not in args.skip or "rollback" not in args.skip:
        results["environment"] = environment()

    def save() -> None:  # after every stage, so that a long run interrupted keeps what it measured
        results["wall_seconds"] = time.monotonic() - started
        args.output.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")

    if "decide" not in args.skip:
        print("decision core ...", file=sys.stderr)
        results["decide"] = bench_decide(args.decide_seconds)
        save()
    if "audit" not in args.skip:
        print("audit log cost ...", file=sys.stderr)
        with workdir() as tmp:
            results["audit"] = audit_cost(tmp / "cluster", args.audit_requests)
        save()
    if "scale" not in args.skip or "rollback" not in args.skip:
        with workdir() as tmp:
            exporter = Exporter()
            with prometheus(exporter) as prom:
                if "rollback" not in args.skip:
                    print("rollback latency ...", file=sys.stderr)
                    run = RollbackRun(args.rollback_objects, args.rollback_interval, tmp, exporter, prom.url)
                    results["rollback"] = run.run()
                    save()
                if "scale" not in args.skip:
                    results["scale"] = []
                    for n in args.sizes:
                        print(f"scale: {n} ModelDeployments ...", file=sys.stderr)
                        scale = ScaleRun(
                            n, args.interval, tmp, exporter, prom.url, args.canary_intervals, prometheus_pid=prom.pid
                        )
                        results["scale"].append(scale.run())
                        save()
            exporter.stop()
    save()
    print(table(results))
    print(f"\nwritten to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
