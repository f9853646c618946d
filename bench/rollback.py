"""Rollback latency: from the moment a Prometheus query first shows a breach to the moment the route sends the
canary nothing, as a ratio to the analysis interval.

``k`` ModelDeployments are held at weight 10 (failureLimit 0: the first failed check rolls back), each with its
own series; their analyses run at different phases of the interval. The error ratio of every candidate is then
raised at once, and this harness polls, for each object, the very query the operator runs (rendered the same way)
until it shows the breach, and the HTTPRoute until the candidate's backend weight is 0.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from pathlib import Path
from typing import Any

import httpx

from modelops.adapters.kube import MODELDEPLOYMENTS
from modelops.core import workload_name
from modelops.core.promql import render

from .env import Emulator, Exporter, Operator, seed, wait_for
from .scale import http_route

NAMESPACE = "rollback"
LIMIT = 0.05
QUERY = 'max(bench_error_ratio{namespace="{{ namespace }}",model="{{ model }}",version="{{ version }}"})'


def model_deployment(name: str, version: str, interval: str) -> dict[str, Any]:
    return {
        "apiVersion": "modelops.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "model": {"name": name, "version": version, "uri": f"file:///models/{name}/{version}.pkl"},
            "server": {"image": "example/server:1", "port": 8080, "replicas": 1},
            "traffic": {"router": "gatewayAPI", "gatewayAPI": {"httpRoute": name, "ruleName": "model"}},
            "rollout": {
                "steps": [{"weight": 10, "pause": "1h"}, {"weight": 100}],
                "progressDeadline": "4h",
                "analysis": {
                    "interval": interval,
                    "failureLimit": 0,
                    "metrics": [{"name": "error-rate", "owner": "engineering", "max": LIMIT, "query": QUERY}],
                },
            },
        },
    }


class RollbackRun:
    def __init__(self, k: int, interval: float, workdir: Path, exporter: Exporter, prometheus_url: str) -> None:
        self.k = k
        self.interval = interval
        self.workdir = workdir
        self.exporter = exporter
        self.prometheus_url = prometheus_url
        self.names = [f"rb-{i:02d}" for i in range(k)]

    def _breached(self, client: httpx.Client, name: str) -> bool:
        values = {"namespace": NAMESPACE, "model": name, "version": "v2", "interval": f"{int(self.interval)}s"}
        answer = client.get("/api/v1/query", params={"query": render(QUERY, values)}).json()
        result = answer.get("data", {}).get("result", [])
        return bool(result) and float(result[0]["value"][1]) > LIMIT

    def _canary_weight(self, emulator: Emulator, name: str) -> int:
        route = emulator.call(emulator.emulator.get_object, "gateway.networking.k8s.io/v1/httproutes", NAMESPACE, name)
        rule = next(r for r in route["spec"]["rules"] if r.get("name") == "model")
        service = workload_name(name, "v2")
        return sum(int(b.get("weight", 1)) for b in rule.get("backendRefs") or [] if b.get("name") == service)

    def run(self) -> dict[str, Any]:
        interval = f"{int(self.interval)}s"
        emulator = Emulator(self.workdir)
        seeded = seed(
            emulator,
            self.exporter,
            NAMESPACE,
            self.names,
            lambda name: (http_route(name, NAMESPACE), model_deployment(name, "v1", interval)),
        )
        api = seeded.api
        operator = Operator(emulator.kubeconfig, NAMESPACE, self.prometheus_url, self.workdir / "operator-rb.log")
        prom = httpx.Client(base_url=self.prometheus_url, timeout=10)
        try:
            operator.wait_serving()

            def statuses() -> list[dict[str, Any]]:
                objects = emulator.call(
                    emulator.emulator.list_objects, "modelops.io/v1alpha1/modeldeployments", NAMESPACE
                )
                return [o.get("status") or {} for o in objects]

            wait_for(lambda: all(s.get("phase") == "Promoted" for s in statuses()), 120, 0.5, "Promoted")
            for name in self.names:
                # Staggered, so that the objects' analyses fall at different phases of the interval and the breach
                # below lands at every distance from the next check (the worst case is just after one).
                api.patch(MODELDEPLOYMENTS, NAMESPACE, name, {"spec": {"model": {"version": "v2"}}})
                time.sleep(self.interval / self.k)
            wait_for(
                lambda: all((s.get("analysis") or {}).get("lastCheckAt") for s in statuses()),
                120 + self.interval,
                0.5,
                "analysed once at weight 10",
            )
            assert all(self._canary_weight(emulator, n) == 10 for n in self.names)
            set_at = time.monotonic()
            for name in self.names:
                self.exporter.set(NAMESPACE, name, "v2", errors=0.5)
            breach: dict[str, float] = {}
            zero: dict[str, float] = {}
            deadline = set_at + 3 * self.interval + 30
            while len(zero) < self.k and time.monotonic() < deadline:
                for name in self.names:
                    if name not in breach and self._breached(prom, name):
                        breach[name] = time.monotonic()
                    if name in breach and name not in zero and self._canary_weight(emulator, name) == 0:
                        zero[name] = time.monotonic()
                time.sleep(0.02)
            latencies = [zero[n] - breach[n] for n in self.names if n in zero]
            ratios = [x / self.interval for x in latencies]
            with contextlib.suppress(TimeoutError):  # the status write follows the route write
                wait_for(lambda: all(s.get("phase") == "RolledBack" for s in statuses()), 30, 0.2, "RolledBack")
            phases = [s.get("phase") for s in statuses()]
        finally:
            prom.close()
            operator.stop()
            seeded.close()
            emulator.stop()
        return {
            "objects": self.k,
            "analysis_interval_seconds": self.interval,
            "rolled_back": sum(1 for p in phases if p == "RolledBack"),
            "phases": phases,
            "measured": len(latencies),
            "latency_seconds": latencies,
            "max_ratio": max(ratios) if ratios else None,
            "mean_ratio": statistics.fmean(ratios) if ratios else None,
            "median_ratio": statistics.median(ratios) if ratios else None,
        }
