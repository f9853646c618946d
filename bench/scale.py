"""Scale: N ModelDeployments (2 analysis metrics each, their Deployments and Services, an HTTPRoute each) managed by
one ``modelops run`` process against the real local control plane and a real Prometheus. The Deployment and
ReplicaSet controllers make the Pods (2 per version), the scheduler binds them to the status-only node, which
reports them Running and Ready: at 1,000 objects that is 2,000 Pods Promoted and 4,000 during the canary.

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

from .env import BenchCluster, Exporter, Operator, machine_busy, prometheus_queries, wait_for, wait_scraped

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
            # no data plane in the benchmark: no Gateway controller to accept the routes
            "traffic": {
                "router": "gatewayAPI",
                "gatewayAPI": {"httpRoute": name, "ruleName": "model", "waitForAcceptance": False},
            },
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


#: The API server's own count of the status writes (every client; only the operator writes ModelDeployments' status).
STATUS_PATCHES = "PATCH modelops.io/modeldeployments/status"


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
    #: of which answered with an error, by ``verb resource code``
    api_failed: dict[str, int]
    kopf_requests: int
    prometheus_queries: int
    #: CPU seconds of etcd, kube-apiserver, kube-controller-manager, kube-scheduler, this process (the status-only
    #: node and the harness) and Prometheus over the window
    cluster_cpu_seconds: dict[str, float]
    #: CPU seconds the whole machine was busy (every process, every core)
    machine_busy_seconds: float
    #: ``apiserver_request_total`` of the status writes over the window: the audit log's count, cross-checked
    apiserver_status_patches: float
    #: the operator's RSS at the window's end (MiB): the steady state, beside the peak of the whole run
    rss_mib: float

    def per_object(self, n: int) -> dict[str, Any]:
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
            "cluster_cores": {k: v / self.seconds for k, v in self.cluster_cpu_seconds.items()},
            "machine_cores_busy": self.machine_busy_seconds / self.seconds,
        }


def measure(
    state: str,
    cluster: BenchCluster,
    operator: Operator,
    prometheus_url: str,
    interval: float,
    intervals: int,
    prometheus_pid: int | None = None,
) -> Window:
    """One window of ``intervals`` analysis intervals: the counters are read in the same order at both ends (the
    operator's /metrics takes a while at 1,000 objects), so each spans the same stretch of time and requests per
    tick are not skewed; CPU is read just around the window itself."""
    seconds = intervals * interval

    def counters() -> tuple[float, int, int, float]:
        return (
            operator.reconciles(),
            cluster.position(),
            prometheus_queries(prometheus_url),
            cluster.apiserver_requests().get(STATUS_PATCHES, 0.0),
        )

    def cpu() -> tuple[tuple[float, float], float, dict[str, float], float]:
        return (
            operator.cpu_seconds(),
            operator.main_thread_seconds(),
            cluster.cpu(prometheus=prometheus_pid),
            machine_busy(),
        )

    r0, pos0, q0, p0 = counters()
    (u0, s0), m0, c0, b0 = cpu()
    t0 = time.monotonic()
    time.sleep(seconds)  # the window itself: measuring, not synchronising
    (u1, s1), m1, c1, b1 = cpu()
    elapsed = time.monotonic() - t0
    r1, pos1, q1, p1 = counters()
    counts = cluster.counts(pos0, pos1)
    return Window(
        state=state,
        seconds=elapsed,
        intervals=elapsed / interval,
        reconciles=r1 - r0,
        operator_cpu_seconds=(u1 + s1) - (u0 + s0),
        operator_system_seconds=s1 - s0,
        operator_main_thread_seconds=m1 - m0,
        api_reads=counts.reads,
        api_writes=counts.writes,
        api_by_verb=counts.by_verb,
        api_failed=counts.failed,
        kopf_requests=counts.kopf,
        prometheus_queries=q1 - q0,
        cluster_cpu_seconds={k: c1[k] - c0.get(k, 0.0) for k in c1},
        machine_busy_seconds=b1 - b0,
        apiserver_status_patches=p1 - p0,
        rss_mib=operator.rss() / MiB,
    )


class ScaleRun:
    def __init__(
        self,
        n: int,
        interval: float,
        workdir: Path,
        exporter: Exporter,
        prometheus_url: str,
        canary_intervals: int = 3,
        prometheus_pid: int | None = None,
    ) -> None:
        self.n = n
        self.canary_intervals = canary_intervals
        self.interval = interval
        self.workdir = workdir
        self.exporter = exporter
        self.prometheus_url = prometheus_url
        self.prometheus_pid = prometheus_pid
        self.names = [f"model-{i:04d}" for i in range(n)]
        #: how often the harness lists the ModelDeployments while it waits (a LIST of 1,000 is megabytes)
        self.poll = max(1.0, n / 500)

    def wait_quiet(self, cluster: BenchCluster, seconds: float = 3.0) -> None:
        """Until no ModelDeployment changed for ``seconds`` (the last status writes of a transition are done)."""

        def versions() -> dict[str, str]:
            return {o["metadata"]["name"]: o["metadata"]["resourceVersion"] for o in cluster.model_deployments()}

        seen, changed_at = [versions()], [time.monotonic()]

        def quiet() -> bool:
            now = versions()
            if now != seen[0]:
                seen[0], changed_at[0] = now, time.monotonic()
            return time.monotonic() - changed_at[0] >= seconds

        wait_for(quiet, 120, self.poll / 2, "no ModelDeployment changing")

    def run(self) -> dict[str, Any]:
        interval = f"{int(self.interval)}s"
        result: dict[str, Any] = {"objects": self.n, "analysis_interval_seconds": self.interval}
        with BenchCluster(self.workdir / f"cluster-{self.n}", NAMESPACE) as cluster:
            result["seconds_to_start_cluster"] = cluster.start_seconds
            seeding = time.monotonic()
            cluster.seed(
                self.exporter, self.names, lambda name: (http_route(name), model_deployment(name, "v1", interval))
            )
            result["seconds_to_seed"] = time.monotonic() - seeding
            wait_scraped(self.prometheus_url, NAMESPACE, len(self.names) * 2)
            log = self.workdir / f"operator-{self.n}.log"
            started = time.monotonic()
            operator = Operator(cluster.operator_kubeconfig, NAMESPACE, self.prometheus_url, log)
            try:
                result.update(self._run(cluster, operator, started))
            finally:
                operator.stop()
        return result

    def _run(self, cluster: BenchCluster, operator: Operator, started: float) -> dict[str, Any]:
        result: dict[str, Any] = {}
        operator.wait_serving()

        def all_promoted() -> bool:
            st = cluster.statuses()
            return len(st) == self.n and all(
                s.get("phase") == "Promoted"
                and any(c.get("type") == "Ready" and c.get("status") == "True" for c in s.get("conditions", []))
                for s in st
            )

        wait_for(all_promoted, 900, self.poll, f"{self.n} ModelDeployments Promoted")
        result["seconds_to_all_promoted"] = time.monotonic() - started
        self.wait_quiet(cluster)
        result["pods_running_promoted"] = cluster.node.running() if cluster.node else None
        # a whole resync period (60 s), so that every object ticks once in it
        idle = measure(
            "idle (Promoted, resync 60 s)",
            cluster,
            operator,
            self.prometheus_url,
            self.interval,
            max(1, round(60 / self.interval)),
            self.prometheus_pid,
        )

        bumped = time.monotonic()
        for name in self.names:
            cluster.api.patch(MODELDEPLOYMENTS, NAMESPACE, name, {"spec": {"model": {"version": "v2"}}})

        def all_at_step() -> bool:
            st = cluster.statuses()
            return all(s.get("canaryWeight") == 10 and s.get("phase") == "Progressing" for s in st)

        wait_for(all_at_step, 900, self.poll, f"{self.n} ModelDeployments at weight 10")
        result["seconds_to_all_at_canary_step"] = time.monotonic() - bumped

        def all_checked() -> bool:
            st = cluster.statuses()
            return all((s.get("analysis") or {}).get("lastCheckAt") for s in st)

        wait_for(all_checked, 900 + self.interval, self.poll, f"{self.n} ModelDeployments analysed once")
        result["seconds_to_all_analysed"] = time.monotonic() - bumped
        result["pods_running_canary"] = cluster.node.running() if cluster.node else None
        canary = measure(
            "canary (weight 10, analysis due each interval)",
            cluster,
            operator,
            self.prometheus_url,
            self.interval,
            self.canary_intervals,
            self.prometheus_pid,
        )
        failed = [s for s in cluster.statuses() if s.get("phase") != "Progressing"]
        result["not_progressing_at_end"] = len(failed)
        result["peak_rss_mib"] = max(operator.high_water_mark(), operator.peak_rss) / MiB
        result["windows"] = {w.state.split(" ")[0]: {**asdict(w), **w.per_object(self.n)} for w in (idle, canary)}
        return result
