"""The key check: replayed over the readings the operator took during a real run, the backtest decides what the
operator decided.

Two rollouts run for real at the same time (the operator on the local cluster, as the chart's ServiceAccount, and a
real Prometheus): one healthy (promoted), one whose error rate jumps during its second step (rolled back). Every
reading the operator took is recorded where it enters the operator — its metrics provider — together with the
``now`` of the reconcile that took it (that is the analysis's time). The operator's decisions are read back from
what it published: its Events and the final status. The backtest replays the recorded readings with the same policy,
and must give the same step advances, the same outcome at the same check, and the same check counts. A second replay
reads the same window back from Prometheus itself (``modelops backtest --prometheus``) and must reach the same
outcome.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest

from integration.live import Cluster, eventually, forbidden, running_operator
from integration.test_operator import Given, model_deployment, route
from modelops.adapters.kube import EVENTS, MODELDEPLOYMENTS
from modelops.adapters.prometheus import MetricsProvider
from modelops.api import ModelDeploymentSpec
from modelops.cli import main as modelops_main
from modelops.cli.backtest_data import dump_samples_csv, load_samples
from modelops.core import Reading
from modelops.core.backtest import BacktestResult, Sample, replay
from modelops.core.promql import render
from plugins.cluster import KubeCluster
from plugins.prometheus import Exporter

pytestmark = pytest.mark.integration


@dataclass
class Recorder(MetricsProvider):
    """Wraps the operator's metrics provider and clock: each reading is kept with the reconcile's ``now``."""

    inner: MetricsProvider
    clock: Callable[[], datetime]
    local: threading.local = field(default_factory=threading.local)
    readings: list[tuple[datetime, str, Reading]] = field(default_factory=list)
    reconciles: list[tuple[datetime, str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reconciled(self, namespace: str, name: str) -> None:
        """Called when a reconcile wrote its decision (telemetry's hook): its ``now`` was a tick of the run."""
        with self.lock:
            self.reconciles.append((self.local.now, namespace, name))

    def ticks(self, namespace: str, name: str) -> list[datetime]:
        with self.lock:
            return [at for at, ns, n in self.reconciles if (ns, n) == (namespace, name)]

    def now(self) -> datetime:
        self.local.now = self.clock()
        return self.local.now  # type: ignore[no-any-return]

    def query(self, promql: str) -> Reading:
        reading = self.inner.query(promql)
        with self.lock:
            self.readings.append((self.local.now, promql, reading))
        return reading

    def query_many(self, queries: Sequence[str]) -> list[Reading]:
        readings = self.inner.query_many(queries)
        with self.lock:
            self.readings.extend((self.local.now, promql, r) for promql, r in zip(queries, readings, strict=True))
        return readings

    def is_online(self) -> bool:
        return self.inner.is_online()

    def samples(self, spec: ModelDeploymentSpec, namespace: str, candidate: str, stable: str) -> list[Sample]:
        """The readings of one deployment's analysis queries, as backtest samples."""
        values = {"namespace": namespace, "model": spec.model.name, "interval": spec.rollout.analysis.interval}
        queries = {}
        for metric in spec.rollout.analysis.metrics:
            queries[render(metric.query, {**values, "version": candidate})] = (metric.name, "candidate")
            queries[render(metric.query, {**values, "version": stable})] = (metric.name, "stable")
        with self.lock:
            recorded = list(self.readings)
        return [Sample(at, *queries[q], reading) for at, q, reading in recorded if q in queries]  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def recorded(kube: KubeCluster, prometheus: Any, prometheus_exporter: Exporter) -> Iterator[tuple[Cluster, Recorder]]:
    with running_operator(kube, prometheus, prometheus_exporter, "bt") as cluster:
        runtime = cluster.runtime
        recorder = Recorder(runtime.metrics, runtime.clock)
        runtime.metrics, runtime.clock = recorder, recorder.now
        observe = runtime.telemetry.observe_deployment

        def observe_and_record(namespace: str, name: str, *args: Any, **kwargs: Any) -> None:
            recorder.reconciled(namespace, name)
            observe(namespace, name, *args, **kwargs)

        runtime.telemetry.observe_deployment = observe_and_record  # type: ignore[method-assign]
        yield cluster, recorder


def deploy(given: Given, name: str, steps: list[dict[str, Any]]) -> ModelDeploymentSpec:
    r = route("gatewayAPI", name)
    assert r is not None
    given.api.create(r[0], given.ns, r[1])
    given.errors("v1", 0.0)
    given.errors("v2", 0.0)
    body = model_deployment(name, "v1", "gatewayAPI", given.metric)
    body["spec"]["rollout"]["steps"] = steps
    given.api.create(MODELDEPLOYMENTS, given.ns, body)
    eventually(lambda: given.status(name).get("phase") == "Promoted", timeout=90)
    return ModelDeploymentSpec.model_validate(body["spec"])


@dataclass
class Live:
    """What the operator decided, as it published it."""

    step_weights: list[int]
    outcome: str
    outcome_check: datetime
    first_step_at: datetime
    passed: int
    failed: int
    unavailable: int


class StepZero:
    """Polls the deployments' status and keeps when the first step started (the replay starts there too)."""

    def __init__(self, givens: list[Given], name: str) -> None:
        self.givens, self.name = givens, name
        self.started: dict[str, set[str]] = {g.ns: set() for g in givens}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(0.03):
            for given in self.givens:
                status = given.status(self.name)
                if status.get("candidateVersion") == "v2" and status.get("currentStep") == 0:
                    self.started[given.ns].add(status["stepStartedAt"])

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def at(self, given: Given) -> datetime:
        seen = self.started[given.ns]
        assert len(seen) == 1, f"step 1 started once, seen {seen}"
        return datetime.fromisoformat(next(iter(seen)))


def live_decisions(given: Given, name: str, first_step_at: datetime) -> Live:
    status = given.status(name)
    advanced = []
    for event in given.api.list(EVENTS, given.ns):
        if event["involvedObject"]["name"] == name and event["reason"] == "StepAdvanced":
            match = re.search(r"v2: step (\d+)/\d+ at weight (\d+)", event["message"])
            assert match is not None, event["message"]
            advanced.append((int(match[1]), int(match[2])))
    outcome = status["history"][-1]
    assert outcome["version"] == "v2"
    a = status["analysis"]
    return Live(
        step_weights=[w for _, w in sorted(advanced)],
        outcome=outcome["outcome"],
        outcome_check=datetime.fromisoformat(a["lastCheckAt"]),
        first_step_at=first_step_at,
        passed=a["passedChecks"],
        failed=a["failedChecks"],
        unavailable=a["unavailableChecks"],
    )


def assert_same(live: Live, replayed: BacktestResult, samples: list[Sample]) -> None:
    trace = (
        f"live {live}; replayed {[(e.at.isoformat(), e.kind, e.weight) for e in replayed.entries]}; "
        f"readings at {sorted({s.at.isoformat() for s in samples})}"
    )
    assert replayed.step_weights() == live.step_weights, trace
    assert replayed.outcome == live.outcome
    assert replayed.outcome_at == live.outcome_check, "the decisive check is the same reading"
    assert (replayed.passed_checks, replayed.failed_checks, replayed.unavailable_checks) == (
        live.passed,
        live.failed,
        live.unavailable,
    ), trace


@pytest.fixture
def givens(recorded: tuple[Cluster, Recorder], kube: KubeCluster) -> Iterator[tuple[Given, Given]]:
    """Two namespaces, closed after the test; the operator's user got no 403 meanwhile."""
    cluster, _ = recorded
    log = kube.requests()
    made = Given(cluster), Given(cluster)
    yield made
    for given in made:
        given.close()
    refused = forbidden(log, kube.operator_user)
    assert refused == [], f"the API server refused the operator (the chart does not grant it): {refused}"


def test_backtest_decides_as_the_operator_did_on_the_same_readings(
    recorded: tuple[Cluster, Recorder],
    givens: tuple[Given, Given],
    prometheus: Any,
    kube: KubeCluster,
    tmp_path: Any,
) -> None:
    _, recorder = recorded
    healthy, failing = givens
    fast = [{"weight": 10, "pause": "2s"}, {"weight": 50, "pause": "2s"}, {"weight": 100}]
    slow = [{"weight": 10, "pause": "2s"}, {"weight": 50, "pause": "60s"}, {"weight": 100}]
    specs = {"healthy": deploy(healthy, "shop", fast), "failing": deploy(failing, "shop", slow)}
    watcher = StepZero([healthy, failing], "shop")
    healthy.new_version("shop", "v2")
    failing.new_version("shop", "v2")
    eventually(lambda: failing.status("shop").get("canaryWeight") == 50, timeout=90)
    passed_at_50 = failing.status("shop")["analysis"]["passedChecks"] + 2
    eventually(lambda: failing.status("shop")["analysis"]["passedChecks"] >= passed_at_50, timeout=30)
    failing.errors("v2", 0.5)  # the candidate goes bad in the middle of its second step
    eventually(lambda: failing.status("shop").get("phase") == "RolledBack", timeout=90)
    eventually(lambda: healthy.status("shop").get("stableVersion") == "v2", timeout=90)
    watcher.stop()

    for given, kind in ((healthy, "healthy"), (failing, "failing")):
        live = live_decisions(given, "shop", watcher.at(given))
        spec = specs[kind]
        samples = recorder.samples(spec, given.ns, "v2", "v1")
        assert samples, "the operator's readings were recorded"
        # the readings go through the documented file format, as a user would keep them
        data = tmp_path / f"{kind}.csv"
        data.write_text(dump_samples_csv(samples))
        start, end = live.first_step_at, live.outcome_check + timedelta(seconds=1)
        # decided at the moments the operator decided at (its reconciles)
        ticks = recorder.ticks(given.ns, "shop")
        replayed = replay(spec, load_samples(data), start, end, candidate="v2", stable="v1", ticks=ticks)
        assert_same(live, replayed, samples)
        if kind == "healthy":
            assert live.outcome == "Promoted"
            assert live.step_weights == [10, 50, 100]
        else:
            assert live.outcome == "RolledBack"
            assert live.step_weights == [10, 50], "rolled back during the second step"
            assert live.failed == 2

        # the same window read back from Prometheus: the same outcome and steps
        out = tmp_path / f"{kind}.json"
        argv = [
            "backtest",
            "--name",
            "shop",
            "-n",
            given.ns,
            "--kubeconfig",
            str(kube.kubeconfig),
            "--prometheus",
            prometheus.url,
            "--start",
            start.isoformat(),
            "--end",
            (end + timedelta(seconds=2)).isoformat(),
            "--step",
            "1s",
            "--candidate-version",
            "v2",
            "--stable-version",
            "v1",
            "-o",
            "json",
        ]
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            assert modelops_main(argv) == 0
        out.write_text(buffer.getvalue())
        from_prometheus = json.loads(buffer.getvalue())["policies"][0]
        assert from_prometheus["outcome"] == live.outcome, json.dumps(from_prometheus)[:3000]
        assert from_prometheus["stepWeights"] == live.step_weights
