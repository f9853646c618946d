"""Builders for the core's tests: specs, statuses at each stage, observations, and a small simulated world."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from modelops.api import ModelDeploymentSpec, ModelDeploymentStatus, ObjectMeta
from modelops.api.deployment import GateBaseline, GatePhase, GateStatus, Phase
from modelops.core import (
    Action,
    DeleteJob,
    DeleteWorkload,
    DeploymentObservations,
    EmitEvent,
    EnsureWorkload,
    JobResult,
    JobState,
    ManualRequest,
    Reading,
    SetWeights,
    StartGateJob,
    StartRetrainingJob,
    decide,
    desired_weights,
)
from modelops.core.deployment import Decision

T0 = datetime(2026, 1, 1, tzinfo=UTC)
MIN = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)

STEPS = [10, 50, 100]
GOOD_GATE = {
    "metrics": {"accuracy": 0.75},
    "groups": {"a": {"positiveRate": 0.50}, "b": {"positiveRate": 0.45}},
}


def spec(**overrides: Any) -> ModelDeploymentSpec:
    """A ModelDeployment spec: three steps of 1m, analysis every 1m on accuracy (with a baseline) and latency."""
    data: dict[str, Any] = {
        "model": {"name": "churn", "version": "v2", "uri": "s3://models/churn/v2"},
        "server": {"image": "ghcr.io/acme/server:1", "replicas": 4},
        # The worked examples time steps from the tick that sets their weights: no Gateway acceptance to wait for
        # (the cases on acceptance turn it on).
        "traffic": {"router": "gatewayAPI", "gatewayAPI": {"httpRoute": "churn", "waitForAcceptance": False}},
        "rollout": {
            "steps": [{"weight": w, "pause": "1m"} for w in STEPS],
            "analysis": {
                "interval": "1m",
                "failureLimit": 1,
                "maxUnavailableChecks": 3,
                "metrics": [
                    {
                        "name": "accuracy",
                        "owner": "ml",
                        "query": "acc{version='{{ version }}'}",
                        "min": 0.6,
                        "baseline": {"maxDegradation": 0.02},
                    },
                    {"name": "latency", "owner": "sre", "query": "lat{version='{{ version }}'}", "max": 0.5},
                ],
            },
            "progressDeadline": "10m",
            "scaleDownDelay": "30m",
        },
        "gates": [
            {
                "name": "holdout",
                "template": {"spec": {"template": {"spec": {"containers": []}}}},
                "timeout": "30m",
                "checks": [{"result": "accuracy", "min": 0.65, "baseline": {"maxDegradation": 0.02}}],
                "fairness": {"result": "positiveRate", "minRatio": 0.8},
            }
        ],
    }
    for key, value in overrides.items():
        if value is None:
            data.pop(key, None)
        elif key == "rollout":  # merged, so a case can change one policy field
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return ModelDeploymentSpec.model_validate(data)


def meta(generation: int = 2, name: str = "churn") -> ObjectMeta:
    return ObjectMeta(name=name, namespace="ml", uid="uid-churn", generation=generation)


def promoted(version: str = "v1", **kw: Any) -> ModelDeploymentStatus:
    """v1 stable and serving alone, nothing in progress (the spec at generation 1 said v1)."""
    base: dict[str, Any] = {
        "phase": Phase.PROMOTED,
        "stable_version": version,
        "stable_uri": f"s3://models/churn/{version}",
        "promoted_at": T0 - DAY,
        "observed_generation": 1,
        "observed_spec_version": version,
        "stable_gates": [GateBaseline(name="holdout", version=version, metrics={"accuracy": 0.70})],
    }
    base.update(kw)
    return ModelDeploymentStatus(**base)


def validating(**kw: Any) -> ModelDeploymentStatus:
    """v2 in Validating: its holdout gate Job running since T0."""
    base: dict[str, Any] = {
        "phase": Phase.VALIDATING,
        "candidate_version": "v2",
        "candidate_uri": "s3://models/churn/v2",
        "candidate_source": "Spec",
        "rollout_started_at": T0,
        "last_progress_at": T0,
        "observed_generation": 2,
        "observed_spec_version": "v2",
        "gates": [
            GateStatus(name="holdout", version="v2", phase=GatePhase.RUNNING, job_name="gate-job", started_at=T0)
        ],
    }
    base.update(kw)
    return promoted(**base)


def progressing(step: int | None = 0, **kw: Any) -> ModelDeploymentStatus:
    """v2 past its gates, at ``step`` (None: warming up) since T0."""
    base: dict[str, Any] = {
        "phase": Phase.PROGRESSING,
        "current_step": step,
        "canary_weight": STEPS[step] if step is not None else 0,
        "step_started_at": T0 if step is not None else None,
        "gates": [GateStatus(name="holdout", version="v2", phase=GatePhase.PASSED, results=GOOD_GATE)],
    }
    base.update(kw)
    return validating(**base)


def readings(accuracy: float = 0.75, latency: float = 0.2, stable_accuracy: float = 0.70) -> dict[str, Any]:
    """Observation fields for a healthy candidate (by default) and the stable version's readings."""
    return {
        "candidate": {"accuracy": Reading.of(accuracy), "latency": Reading.of(latency)},
        "stable": {"accuracy": Reading.of(stable_accuracy), "latency": Reading.of(0.2)},
    }


def obs(**kw: Any) -> DeploymentObservations:
    """Observations of a healthy world: both versions ready, metrics good, route as status says."""
    base: dict[str, Any] = {"candidate_ready": True, "stable_ready": True, "route_matches": True, **readings()}
    base.update(kw)
    return DeploymentObservations(**base)


def request(action: str, id_: str = "r1", team: str = "", by: str = "ana") -> ManualRequest:
    return ManualRequest(id=id_, action=action, team=team, by=by)


def events(decision: Decision) -> list[str]:
    return [a.reason for a in decision.actions if isinstance(a, EmitEvent)]


def non_events(decision: Decision) -> list[Action]:
    return [a for a in decision.actions if not isinstance(a, EmitEvent)]


# ---------------------------------------------------------------------------------------- simulated world

ReadingFn = Callable[[str, str, datetime], Reading]
GateFn = Callable[[str, str], Mapping[str, Any] | None]
RetrainFn = Callable[[str, datetime], JobResult]


@dataclass
class World:
    """Plays the handlers and the cluster for one ModelDeployment: runs actions, reports what it sees.

    Workloads become ready ``ready_after`` after they are ensured; gate Jobs finish ``gate_duration`` after they
    start with ``gate_results(gate, version)``; retraining Jobs ``retrain_duration`` after with
    ``retrain(base_version, started)``. ``metric(version, metric, now)`` answers every PromQL query.
    """

    spec: ModelDeploymentSpec
    metric: ReadingFn
    name: str = "churn"
    uid: str = "uid-churn"
    gate_results: GateFn = lambda gate, version: GOOD_GATE
    retrain: RetrainFn = lambda base, at: JobResult(JobState.FAILED, message="no retraining configured")
    ready_after: timedelta = MIN
    gate_duration: timedelta = 5 * MIN
    retrain_duration: timedelta = 2 * HOUR
    generation: int = 1
    status: ModelDeploymentStatus = field(default_factory=ModelDeploymentStatus)
    workloads: dict[str, tuple[str, int, datetime]] = field(default_factory=dict)
    weights: dict[str, int] = field(default_factory=dict)
    jobs: dict[str, tuple[datetime, Callable[[], JobResult]]] = field(default_factory=dict)
    retiring: bool = False
    log: list[tuple[datetime, str]] = field(default_factory=list)  # (when, phase) at each phase change
    emitted: list[tuple[datetime, EmitEvent]] = field(default_factory=list)
    all_actions: list[tuple[datetime, Action]] = field(default_factory=list)

    def observe(self, now: datetime, requests: Iterable[ManualRequest] = ()) -> DeploymentObservations:
        st = self.status
        ready = {v for v, (_, n, since) in self.workloads.items() if n > 0 and now >= since + self.ready_after}

        def job(name: str | None) -> JobResult | None:
            if name is None or name not in self.jobs:
                return None
            started, result = self.jobs[name]
            if now < started + (self.retrain_duration if "retrain" in name else self.gate_duration):
                return JobResult(JobState.RUNNING, job_name=name)
            return replace(result(), job_name=name)

        def read(version: str | None, metrics: Iterable[str]) -> dict[str, Reading]:
            if version is None:
                return {}
            return {m: self.metric(version, m, now) for m in metrics}

        analysis = [m.name for m in self.spec.rollout.analysis.metrics]
        monitoring = [m.name for m in self.spec.monitoring.metrics] if self.spec.monitoring else []
        expected = desired_weights(st)
        return DeploymentObservations(
            candidate=read(st.candidate_version, analysis),
            stable=read(st.stable_version, analysis),
            candidate_ready=st.candidate_version in ready,
            stable_ready=st.stable_version in ready,
            gates={g.name: r for g in st.gates if (r := job(g.job_name)) is not None},
            retraining=job(st.retraining.job_name),
            router_weights=dict(self.weights),
            route_matches=_nonzero(self.weights) == _nonzero(expected) if expected else None,
            requests=tuple(requests),
            monitoring=read(st.stable_version, monitoring),
            workloads=frozenset(self.workloads),
            retiring=self.retiring,
        )

    def tick(self, now: datetime, requests: Iterable[ManualRequest] = ()) -> Decision:
        meta = ObjectMeta(name=self.name, namespace="ml", uid=self.uid, generation=self.generation)
        decision = decide(self.spec, meta, self.status, self.observe(now, requests), now)
        for action in decision.actions:
            self.all_actions.append((now, action))
            self.execute(action, now)
        if decision.status.phase != self.status.phase or not self.log:
            self.log.append((now, decision.status.phase))
        self.status = decision.status
        return decision

    def execute(self, action: Action, now: datetime) -> None:
        match action:
            case EnsureWorkload(version, uri, replicas):
                since = self.workloads[version][2] if version in self.workloads else now
                self.workloads[version] = (uri, replicas, since)
            case DeleteWorkload(version):
                self.workloads.pop(version, None)
            case SetWeights(weights):
                assert sum(weights.values()) == 100, weights
                self.weights = dict(weights)
            case StartGateJob(gate, version, _, job_name):
                results = self.gate_results(gate, version)
                outcome = (
                    JobResult(JobState.SUCCEEDED, results)
                    if results is not None
                    else JobResult(JobState.FAILED, message="gate crashed")
                )
                self.jobs[job_name] = (now, lambda: outcome)
            case StartRetrainingJob(job_name, base, _, _):
                result = self.retrain(base, now)
                self.jobs[job_name] = (now, lambda: result)
            case DeleteJob(job_name):
                self.jobs.pop(job_name, None)
            case EmitEvent():
                self.emitted.append((now, action))
            case _:
                raise AssertionError(f"unexpected action {action}")

    def set_version(self, version: str, uri: str) -> None:
        """A spec change (git commit): the version changes, the generation goes up."""
        self.spec = self.spec.model_copy(
            update={"model": self.spec.model.model_copy(update={"version": version, "uri": uri})}
        )
        self.generation += 1


def _nonzero(weights: Mapping[str, int]) -> dict[str, int]:
    return {k: v for k, v in weights.items() if v}
