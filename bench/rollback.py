"""Rollback latency: from the moment a Prometheus query first shows a breach to the moment the route sends the
canary nothing, as a ratio to the analysis interval.

``k`` ModelDeployments are held at weight 10 (failureLimit 0: the first failed check rolls back), each with its
own series; their analyses run at different phases of the interval. The error ratio of every candidate is then
raised at once, and this harness polls, for each object, the very query the operator runs (rendered the same way)
until it shows the breach, and watches the HTTPRoutes for the moment the candidate's backend weight is 0 (one watch
stream, not a GET per object per poll: the API server is on the same two cores as the operator).
"""

from __future__ import annotations

import contextlib
import json
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from modelops.adapters.kube import HTTPROUTES, MODELDEPLOYMENTS
from modelops.core import workload_name
from modelops.core.promql import render

from .env import BenchCluster, Exporter, Operator, wait_for
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
            # no data plane in the benchmark: no Gateway controller to accept the routes
            "traffic": {
                "router": "gatewayAPI",
                "gatewayAPI": {"httpRoute": name, "ruleName": "model", "waitForAcceptance": False},
            },
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


def canary_weight(route: dict[str, Any], name: str) -> int:
    """The weight the route's ``model`` rule gives the candidate (v2) of ModelDeployment ``name``."""
    rule = next(r for r in route["spec"]["rules"] if r.get("name") == "model")
    service = workload_name(name, "v2")
    return sum(int(b.get("weight", 1)) for b in rule.get("backendRefs") or [] if b.get("name") == service)


class RouteWatch:
    """Watches the namespace's HTTPRoutes; once :meth:`arm` ed, records when each route first gives its candidate
    nothing (the time the event arrived here)."""

    def __init__(self, cluster: BenchCluster, namespace: str) -> None:
        self.client = cluster.cluster.api_client()
        self.client.user_agent = "bench-route-watch"
        self.namespace = namespace
        self.zero: dict[str, float] = {}
        self._armed = threading.Event()
        self._stop = threading.Event()
        self._response: Any = None
        self._thread = threading.Thread(target=self._run, name="route-watch", daemon=True)
        self._thread.start()

    def arm(self) -> None:
        self._armed.set()

    def stop(self) -> None:
        self._stop.set()
        response = self._response
        if response is not None:
            with contextlib.suppress(Exception):
                response.shutdown()
        self._thread.join(10)
        self.client.close()

    def _run(self) -> None:
        from kubernetes.watch.watch import iter_resp_lines

        path = HTTPROUTES.path(self.namespace)
        while not self._stop.is_set():
            try:
                request = self.client.param_serialize(
                    method="GET",
                    resource_path=path,
                    query_params=[("watch", "true"), ("timeoutSeconds", "300")],
                    header_params={"Accept": "application/json"},
                    auth_settings=["BearerToken"],
                )
                answer = self.client.call_api(*request, _request_timeout=(5, 330))
                self._response = answer.response
                for line in iter_resp_lines(self._response):
                    if self._stop.is_set():
                        return
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    route = event.get("object") or {}
                    name = (route.get("metadata") or {}).get("name")
                    seen = event.get("type") in ("ADDED", "MODIFIED") and name not in self.zero
                    if seen and self._armed.is_set() and canary_weight(route, name) == 0:
                        self.zero[name] = time.monotonic()
            except Exception:  # a new watch replays every route as ADDED: nothing is lost
                if self._stop.wait(0.2):
                    return


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

    def run(self) -> dict[str, Any]:
        interval = f"{int(self.interval)}s"
        with BenchCluster(self.workdir / "cluster-rollback", NAMESPACE) as cluster:
            cluster.seed(
                self.exporter,
                self.names,
                lambda name: (http_route(name, NAMESPACE), model_deployment(name, "v1", interval)),
            )
            log = self.workdir / "operator-rb.log"
            operator = Operator(cluster.operator_kubeconfig, NAMESPACE, self.prometheus_url, log)
            prom = httpx.Client(base_url=self.prometheus_url, timeout=10)
            routes = RouteWatch(cluster, NAMESPACE)
            try:
                return self._run(cluster, operator, prom, routes)
            finally:
                routes.stop()
                prom.close()
                operator.stop()

    def _run(self, cluster: BenchCluster, operator: Operator, prom: httpx.Client, routes: RouteWatch) -> dict[str, Any]:
        operator.wait_serving()
        api = cluster.api
        statuses = cluster.statuses
        wait_for(lambda: all(s.get("phase") == "Promoted" for s in statuses()), 180, 0.5, "Promoted")
        for name in self.names:
            # Staggered, so that the objects' analyses fall at different phases of the interval and the breach
            # below lands at every distance from the next check (the worst case is just after one).
            api.patch(MODELDEPLOYMENTS, NAMESPACE, name, {"spec": {"model": {"version": "v2"}}})
            time.sleep(self.interval / self.k)
        wait_for(
            lambda: all((s.get("analysis") or {}).get("lastCheckAt") for s in statuses()),
            180 + self.interval,
            0.5,
            "analysed once at weight 10",
        )
        weights = {n: canary_weight(api.get(HTTPROUTES, NAMESPACE, n) or {}, n) for n in self.names}
        assert all(w == 10 for w in weights.values()), weights
        routes.arm()
        set_at = time.monotonic()
        for name in self.names:
            self.exporter.set(NAMESPACE, name, "v2", errors=0.5)
        breach: dict[str, float] = {}
        deadline = set_at + 3 * self.interval + 30
        while len(routes.zero) < self.k and time.monotonic() < deadline:
            for name in self.names:
                if name not in breach and self._breached(prom, name):
                    breach[name] = time.monotonic()
            time.sleep(0.02)
        zero = dict(routes.zero)
        latencies = [zero[n] - breach[n] for n in self.names if n in zero and n in breach]
        ratios = [x / self.interval for x in latencies]
        with contextlib.suppress(TimeoutError):  # the status write follows the route write
            wait_for(lambda: all(s.get("phase") == "RolledBack" for s in statuses()), 30, 0.2, "RolledBack")
        phases = [s.get("phase") for s in statuses()]
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
