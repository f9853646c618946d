"""Scale: N ModelDeployments (2 analysis metrics each, their Deployments and Services, an HTTPRoute each) managed by
one ``modelops run`` process against the emulator and a real Prometheus.

Two steady states are measured, each over a window of whole analysis intervals:

- **idle**: every object Promoted (v1 at 100 %), nothing due but the periodic resync;
- **canary**: every object rolling out v2, held at step 1 (weight 10, pause 1 h) with both metrics (one with a
  baseline, so three queries per check) due every analysis interval: each interval brings one analysis per
  object, i.e. Prometheus queries and a status write (``analysis.lastCheckAt`` moves).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from modelops.adapters.kube import MODELDEPLOYMENTS

from .env import Emulator, Exporter, Operator, prometheus_queries, seed, wait_for, wait_scraped

NAMESPACE = "bench"
MiB = 1024 * 1024
ERROR_QUERY = (
    'max(max_over_time(bench_error_ratio{namespace="{{ namespace }}",model="{{ model }}",'
    'version="{{ version }}"}[{{ interval }}]))'
)
LATENCY_QUERY = (
    'max(max_over_time(bench_latency_p99_seconds{namespace="{{ namespace }}",model="{{ model }}",'
    'version="{{ version }}"}[{{ interval }}]))'
)


def model_deployment(name: str, version: str, interval: str, namespace: str = NAMESPACE) -> dict[str, Any]:
    """A ModelDeployment like examples/recommender.yaml, minus gates and approvals, held long at weight 10."""
    return {
        "apiVersion": "modelops.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "model": {"name": name, "version": version, "uri": f"file:///models/{name}/{version}.pkl"},
            "server": {"image": "example/server:1", "port": 8080, "replicas": 2},
            "traffic": {"router": "gatewayAPI", "gatewayAPI": {"httpRoute": name, "ruleName": "model"}},
            "rollout": {
                "steps": [{"weight": 10, "pause": "1h"}, {"weight": 100}],
                "progressDeadline": "4h",
                "scaleDownDelay": "1m",
                "analysis": {
                    "interval": interval,
                    "failureLimit": 2,
                    "onMetricsUnavailable": "Hold",
                    "maxUnavailableChecks": 10,
                    "metrics": [
                        {"name": "error-rate", "owner": "engineering", "max": 0.05, "query": ERROR_QUERY},
                        {
                            "name": "latency-p99",
                            "owner": "engineering",
                            "max": 0.5,
                            "baseline": {"maxDegradation": 0.1},
                            "query": LATENCY_QUERY,
                        },
                    ],
                },
            },
        },
    }


def http_route(name: str, namespace: str = NAMESPACE) -> dict[str, Any]:
    """The platform team's route: a health rule the operator must leave alone, and the model rule it manages."""
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "parentRefs": [{"name": "public"}],
            "rules": [
                {
                    "name": "health",
                    "matches": [{"path": {"value": "/healthz"}}],
                    "backendRefs": [{"name": "static", "port": 80}],
                },
                {"name": "model", "backendRefs": []},
            ],
        },
    }


@dataclass
class Window:
    """What one steady state costs over ``seconds`` of wall time (a whole number of analysis intervals)."""

    state: str
    seconds: float
    intervals: float
    reconciles: float
    operator_cpu_seconds: float
    #: of which in the kernel (system time: sockets, thread wake-ups)
    operator_system_seconds: float
    #: of which in the main thread (the event loop: kopf's watch streams and handlers, the daemons)
    operator_main_thread_seconds: float
    api_reads: int
    api_writes: int
    api_by_verb: dict[str, int]
    kopf_requests: int
    prometheus_queries: int

    def per_object(self, n: int) -> dict[str, float]:
        ticks = self.reconciles / n if self.reconciles else 0.0
        per_interval = n * self.intervals
        per_tick = max(self.reconciles, 1.0)
        return {
            "ticks_per_object_per_interval": ticks / self.intervals,
            "api_reads_per_object_per_tick": self.api_reads / per_tick,
            "api_writes_per_object_per_tick": self.api_writes / per_tick,
            "api_requests_per_object_per_interval": (self.api_reads + self.api_writes) / per_interval,
            "prometheus_queries_per_object_per_tick": self.prometheus_queries / per_tick,
            "prometheus_queries_per_object_per_interval": self.prometheus_queries / per_interval,
            "cpu_seconds_per_interval": self.operator_cpu_seconds / self.intervals,
            "cores": self.operator_cpu_seconds / self.seconds,
            "cpu_ms_per_tick": 1000 * self.operator_cpu_seconds / per_tick,
            "system_share": self.operator_system_seconds / max(self.operator_cpu_seconds, 1e-9),
            "main_thread_share": self.operator_main_thread_seconds / max(self.operator_cpu_seconds, 1e-9),
        }


class ScaleRun:
    def __init__(
        self,
        n: int,
        interval: float,
        workdir: Path,
        exporter: Exporter,
        prometheus_url: str,
        canary_intervals: int = 3,
    ) -> None:
        self.n = n
        self.canary_intervals = canary_intervals
        self.interval = interval
        self.workdir = workdir
        self.exporter = exporter
        self.prometheus_url = prometheus_url
        self.names = [f"model-{i:04d}" for i in range(n)]

    def statuses(self, emulator: Emulator) -> list[dict[str, Any]]:
        objects = emulator.call(emulator.emulator.list_objects, "modelops.io/v1alpha1/modeldeployments", NAMESPACE)
        return [o.get("status") or {} for o in objects]

    def wait_quiet(self, emulator: Emulator, seconds: float = 3.0) -> None:
        """Until no ModelDeployment changed for ``seconds`` (the last status writes of a transition are done)."""

        def versions() -> dict[str, str]:
            objects = emulator.call(emulator.emulator.list_objects, "modelops.io/v1alpha1/modeldeployments", NAMESPACE)
            return {o["metadata"]["name"]: o["metadata"]["resourceVersion"] for o in objects}

        seen, changed_at = [versions()], [time.monotonic()]

        def quiet() -> bool:
            now = versions()
            if now != seen[0]:
                seen[0], changed_at[0] = now, time.monotonic()
            return time.monotonic() - changed_at[0] >= seconds

        wait_for(quiet, 120, 0.5, "no ModelDeployment changing")

    def measure(self, state: str, emulator: Emulator, operator: Operator, intervals: int) -> Window:
        seconds = intervals * self.interval
        # The counters are read in the same order at both ends (the operator's /metrics takes a while at 1,000
        # objects): each window then spans the same stretch of time, and requests per tick are not skewed.
        r0, pos0, q0 = operator.reconciles(), emulator.position(), prometheus_queries(self.prometheus_url)
        (u0, s0), m0 = operator.cpu_seconds(), operator.main_thread_seconds()
        t0 = time.monotonic()
        time.sleep(seconds)  # the window itself: measuring, not synchronising
        (u1, s1), m1 = operator.cpu_seconds(), operator.main_thread_seconds()
        elapsed = time.monotonic() - t0
        r1, pos1, q1 = operator.reconciles(), emulator.position(), prometheus_queries(self.prometheus_url)
        counts = emulator.counts(pos0, pos1)
        return Window(
            state=state,
            seconds=elapsed,
            intervals=elapsed / self.interval,
            reconciles=r1 - r0,
            operator_cpu_seconds=(u1 + s1) - (u0 + s0),
            operator_system_seconds=s1 - s0,
            operator_main_thread_seconds=m1 - m0,
            api_reads=counts.reads,
            api_writes=counts.writes,
            api_by_verb=counts.by_verb,
            kopf_requests=counts.kopf,
            prometheus_queries=q1 - q0,
        )

    def run(self) -> dict[str, Any]:
        interval = f"{int(self.interval)}s"
        emulator = Emulator(self.workdir)
        seeded = seed(
            emulator,
            self.exporter,
            NAMESPACE,
            self.names,
            lambda name: (http_route(name), model_deployment(name, "v1", interval)),
        )
        api = seeded.api
        wait_scraped(self.prometheus_url, NAMESPACE, len(self.names) * 2)
        log = self.workdir / f"operator-{self.n}.log"
        started = time.monotonic()
        operator = Operator(emulator.kubeconfig, NAMESPACE, self.prometheus_url, log)
        result: dict[str, Any] = {"objects": self.n, "analysis_interval_seconds": self.interval}
        try:
            operator.wait_serving()

            def all_promoted() -> bool:
                st = self.statuses(emulator)
                return len(st) == self.n and all(
                    s.get("phase") == "Promoted"
                    and any(c.get("type") == "Ready" and c.get("status") == "True" for c in s.get("conditions", []))
                    for s in st
                )

            wait_for(all_promoted, 600, 1.0, f"{self.n} ModelDeployments Promoted")
            result["seconds_to_all_promoted"] = time.monotonic() - started
            self.wait_quiet(emulator)
            # a whole resync period (60 s), so that every object ticks once in it
            idle = self.measure("idle (Promoted, resync 60 s)", emulator, operator, max(1, round(60 / self.interval)))

            bumped = time.monotonic()
            for name in self.names:
                api.patch(MODELDEPLOYMENTS, NAMESPACE, name, {"spec": {"model": {"version": "v2"}}})

            def all_at_step() -> bool:
                st = self.statuses(emulator)
                return all(s.get("canaryWeight") == 10 and s.get("phase") == "Progressing" for s in st)

            wait_for(all_at_step, 600, 1.0, f"{self.n} ModelDeployments at weight 10")
            result["seconds_to_all_at_canary_step"] = time.monotonic() - bumped

            def all_checked() -> bool:
                st = self.statuses(emulator)
                return all((s.get("analysis") or {}).get("lastCheckAt") for s in st)

            wait_for(all_checked, 600 + self.interval, 1.0, f"{self.n} ModelDeployments analysed once")
            result["seconds_to_all_analysed"] = time.monotonic() - bumped
            canary = self.measure(
                "canary (weight 10, analysis due each interval)",
                emulator,
                operator,
                self.canary_intervals,
            )
            failed = [s for s in self.statuses(emulator) if s.get("phase") != "Progressing"]
            result["not_progressing_at_end"] = len(failed)
            result["peak_rss_mib"] = max(operator.high_water_mark(), operator.peak_rss) / MiB
            result["windows"] = {w.state.split(" ")[0]: {**asdict(w), **w.per_object(self.n)} for w in (idle, canary)}
        finally:
            operator.stop()
            seeded.close()
            emulator.stop()
        return result
