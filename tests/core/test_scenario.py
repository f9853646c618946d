"""The lifecycle of the issue, replayed with simulated time (no sleeping, no clock).

Given ``churn`` goes live with v1 at 70% accuracy,
when accuracy drifts to 64% six months later, then it is Degraded, a retraining Job runs, and its output v1.1
(75%) passes its gates and canary and is promoted;
when accuracy degrades again six months later and retraining cannot recover it, the team ships v2 (a new
architecture) as ``churn-v2``, which passes its gates (with no stable version to canary against, it goes live as
its first version);
and a ModelRetirement retires ``churn`` three months after v2's promotion: it drains the traffic step by step
to ``churn-v2``, checks that no traffic is left, and only then deletes what belongs to ``churn``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from modelops.api import ModelRetirementSpec, ModelRetirementStatus, ObjectMeta
from modelops.api.deployment import Phase
from modelops.api.retirement import RetirementPhase
from modelops.core import (
    DeleteObject,
    DeploymentView,
    DrainTraffic,
    EmitEvent,
    JobResult,
    JobState,
    ObservedObject,
    OwnerRef,
    Reading,
    RetirementObservations,
    get_condition,
    plan_retirement,
)
from modelops.core.naming import (
    DEPLOYMENT_LABEL,
    MANAGED_BY_LABEL,
    MANAGER,
    MODEL_LABEL,
    VERSION_LABEL,
    workload_name,
)

from .builders import DAY, MIN, World, spec

T0 = datetime(2026, 1, 1, tzinfo=UTC)
DRIFT_1 = datetime(2026, 7, 1, tzinfo=UTC)  # six months later, v1 drifts to 64%
DRIFT_2 = datetime(2027, 1, 1, tzinfo=UTC)  # six months after that, v1.1 degrades to 65%
V2_SHIPPED = datetime(2027, 1, 10, 9, 0, tzinfo=UTC)


def at(y: int, m: int, d: int, hh: int = 0, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=UTC)


def accuracy(version: str, now: datetime) -> float:
    if version == "v1":
        return 0.70 if now < DRIFT_1 else 0.64
    if version == "v1.1":
        return 0.75 if now < DRIFT_2 else 0.65
    return 0.78


def metric(version: str, name: str, now: datetime) -> Reading:
    return Reading.of(accuracy(version, now)) if name == "accuracy" else Reading.of(0.12)


def gate(_: str, version: str) -> dict[str, Any]:
    return {
        "metrics": {"accuracy": accuracy(version, T0)},
        "groups": {"a": {"positiveRate": 0.50}, "b": {"positiveRate": 0.46}},
    }


def retrain(base: str, started: datetime) -> JobResult:
    if started < DRIFT_2:
        return JobResult(JobState.SUCCEEDED, {"version": "v1.1", "uri": "s3://models/churn/v1.1"})
    return JobResult(JobState.FAILED, message="accuracy did not recover (0.655 on the holdout set)")


def churn_spec(name: str, version: str) -> Any:
    return spec(
        model={"name": name, "version": version, "uri": f"s3://models/{name}/{version}"},
        rollout={
            "steps": [{"weight": 10, "pause": "30m"}, {"weight": 50, "pause": "30m"}, {"weight": 100, "pause": "30m"}],
            "analysis": {
                "interval": "10m",
                "failureLimit": 1,
                "metrics": [
                    {
                        "name": "accuracy",
                        "owner": "ml",
                        "query": "acc{version='{{ version }}'}",
                        "min": 0.66,
                        "baseline": {"maxDegradation": 0.02},
                    }
                ],
            },
            "progressDeadline": "2h",
            "scaleDownDelay": "1h",
        },
        monitoring={
            "interval": "1d",
            "degradedAfter": 3,
            "metrics": [{"name": "accuracy", "query": "acc{version='{{ version }}'}", "min": 0.66}],
        },
        retraining={"template": {"spec": {}}, "onDegradation": True, "minInterval": "30d", "timeout": "6h"},
    )


def busy(world: World) -> bool:
    st = world.status
    return st.phase in (Phase.VALIDATING, Phase.PROGRESSING, Phase.PAUSED) or (
        st.retraining.phase == "Running" or st.previous_stable_version is not None
    )


def next_tick(now: datetime, fine: bool) -> datetime:
    """Every 5 minutes while something is in flight, else at the next midnight."""
    if fine:
        return now + 5 * MIN
    return datetime(now.year, now.month, now.day, tzinfo=UTC) + DAY


def run(world: World, start: datetime, until: datetime) -> datetime:
    now = start
    while now < until:
        world.tick(now)
        now = next_tick(now, busy(world))
    return now


def degraded_changes(world: World) -> list[tuple[datetime, str]]:
    """(when, reason) of each Degraded event."""
    return [(t, e.reason) for t, e in world.emitted if e.reason in ("MetricsDegraded", "MetricsHealthy")]


@dataclass
class Cluster:
    """The retirement's view of the cluster: both ModelDeployments, the shared route, and what churn owns."""

    churn: World
    v2: World
    route: dict[str, int] = field(default_factory=lambda: {"churn": 100, "churn-v2": 0})
    deleted: list[tuple[datetime, str, str]] = field(default_factory=list)
    md_deleted: bool = False

    @staticmethod
    def view(world: World) -> DeploymentView:
        st = world.status
        return DeploymentView(
            name=world.name,
            uid=world.uid,
            owner_labels={MANAGED_BY_LABEL: MANAGER, MODEL_LABEL: "churn", DEPLOYMENT_LABEL: world.name},
            stable_version=st.stable_version,
            candidate_version=st.candidate_version,
            phase=st.phase,
            promoted_at=st.promoted_at,
            ready=st.stable_version in world.workloads,
        )

    def objects(self) -> tuple[ObservedObject, ...]:
        owner = (OwnerRef("ModelDeployment", "churn", self.churn.uid),)
        labels = {MANAGED_BY_LABEL: MANAGER, MODEL_LABEL: "churn", DEPLOYMENT_LABEL: "churn"}
        found: list[ObservedObject] = []
        for version in self.churn.workloads:
            name = workload_name("churn", version)
            for kind in ("Deployment", "Service"):
                found.append(ObservedObject(kind, name, f"uid-{name}", {**labels, VERSION_LABEL: version}, owner))
        for job in self.churn.jobs:
            found.append(ObservedObject("Job", job, f"uid-{job}", labels, owner))
        # Look-alikes that must survive: labels copied without an ownerReference, and an ownerReference
        # hand-added to an object without the labels. Both are the user's, not the operator's.
        found.append(ObservedObject("Service", "churn-dashboard", "uid-dash", labels, ()))
        found.append(ObservedObject("Deployment", "churn-batch-scorer", "uid-batch", {"app": "batch"}, owner))
        gone = {(k, n) for _, k, n in self.deleted}
        return tuple(o for o in found if (o.kind, o.name) not in gone)

    def observe(self, now: datetime) -> RetirementObservations:
        # The retired model's request rate follows the share of traffic it still gets: 10 rps before draining.
        rate = 10.0 * self.route["churn"] / 100
        return RetirementObservations(
            target=None if self.md_deleted else self.view(self.churn),
            replacement=self.view(self.v2),
            router_weights=dict(self.route),
            route_matches=True,
            zero_traffic=Reading.of(rate),
            objects=() if self.md_deleted else self.objects(),
        )

    def execute(self, action: Any, now: datetime) -> None:
        if isinstance(action, DrainTraffic):
            self.route = {"churn": 100 - action.replacement_weight, "churn-v2": action.replacement_weight}
        elif isinstance(action, DeleteObject):
            self.deleted.append((now, action.kind, action.name))
            if action.kind == "ModelDeployment":
                self.md_deleted = True
            elif action.kind in ("Deployment", "Service"):
                version = next(v for v in self.churn.workloads if workload_name("churn", v) == action.name)
                if action.kind == "Service":
                    self.churn.workloads.pop(version, None)
            elif action.kind == "Job":
                self.churn.jobs.pop(action.name, None)


def test_model_lifecycle_over_fifteen_months() -> None:
    started = time.process_time()

    # Given churn v1 created on 2026-01-01, it runs its gate, then goes live as the first version.
    churn = World(spec=churn_spec("churn", "v1"), metric=metric, gate_results=gate, retrain=retrain)
    run(churn, T0, DRIFT_1)
    assert churn.log == [(T0, Phase.VALIDATING), (at(2026, 1, 1, 0, 5), Phase.PROMOTED)]
    assert churn.status.history[-1].outcome == "Initial"
    assert churn.weights == {"v1": 100}
    assert degraded_changes(churn) == []

    # When accuracy drifts to 64%: three failed daily checks (Jul 1, 2, 3) make it Degraded, which starts
    # retraining; its output v1.1 (at 02:00) passes the gate (02:05), warms up (ready 02:10: step 10%), holds
    # each 30-minute step with an analysis every 10 minutes (50% at 02:40, 100% at 03:10) and is promoted at 03:40.
    run(churn, DRIFT_1, DRIFT_2)
    assert churn.log[2:] == [
        (at(2026, 7, 3, 2, 0), Phase.VALIDATING),
        (at(2026, 7, 3, 2, 5), Phase.PROGRESSING),
        (at(2026, 7, 3, 3, 40), Phase.PROMOTED),
    ]
    assert degraded_changes(churn) == [(at(2026, 7, 3), "MetricsDegraded"), (at(2026, 7, 3, 3, 40), "MetricsHealthy")]
    retraining_started = [t for t, e in churn.emitted if e.reason == "RetrainingStarted"]
    assert retraining_started == [at(2026, 7, 3)]
    steps = [(t, e.message) for t, e in churn.emitted if e.reason == "StepAdvanced"]
    assert [t for t, _ in steps] == [at(2026, 7, 3, 2, 10), at(2026, 7, 3, 2, 40), at(2026, 7, 3, 3, 10)]
    assert churn.status.history[-1].model_dump(include={"version", "outcome"}) == {
        "version": "v1.1",
        "outcome": "Promoted",
    }
    assert churn.status.candidate_source is None
    assert churn.status.stable_version == "v1.1"
    # The old stable was kept for scaleDownDelay (1h), then deleted.
    assert [(t, e.message.split()[0]) for t, e in churn.emitted if e.reason == "OldStableDeleted"] == [
        (at(2026, 7, 3, 4, 40), "v1")
    ]
    assert set(churn.workloads) == {"v1.1"}
    assert churn.weights == {"v1.1": 100}
    # The spec still says v1 (GitOps never saw v1.1): that is not a new version.
    assert churn.spec.model.version == "v1"

    # When accuracy degrades again, retraining runs (min interval 30d has passed) but cannot recover it.
    run(churn, DRIFT_2, V2_SHIPPED)
    assert churn.log[-1] == (at(2026, 7, 3, 3, 40), Phase.PROMOTED)
    assert degraded_changes(churn)[-1] == (at(2027, 1, 3), "MetricsDegraded")
    assert churn.status.retraining.phase == "Failed"
    assert churn.status.retraining.last_finished_at == at(2027, 1, 3, 2, 0)

    # The team ships v2, a new architecture, as churn-v2: gates, then live as its first version.
    v2 = World(spec=churn_spec("churn-v2", "v2"), metric=metric, gate_results=gate, name="churn-v2", uid="uid-v2")
    retirement = ModelRetirementSpec.model_validate(
        {
            "modelDeployment": "churn",
            "replacement": "churn-v2",
            "afterReplacementPromoted": "90d",
            "drain": {"steps": [25, 50, 100], "interval": "1d"},
        }
    )
    cluster = Cluster(churn=churn, v2=v2)
    r_status = ModelRetirementStatus()
    r_meta = ObjectMeta(name="retire-churn", namespace="ml", generation=1)
    r_log: list[tuple[datetime, str]] = []
    r_actions: list[tuple[datetime, Any]] = []
    drains: list[tuple[datetime, int]] = []

    now = V2_SHIPPED
    while r_status.phase != RetirementPhase.RETIRED and now < at(2027, 6, 1):
        v2.tick(now)
        if not cluster.md_deleted:
            churn.retiring = r_status.phase in (RetirementPhase.DRAINING, RetirementPhase.CLEANING_UP)
            churn.tick(now)
        if now >= V2_SHIPPED + 10 * MIN:  # the ModelRetirement is applied ten minutes after v2 ships
            d = plan_retirement(retirement, r_meta, r_status, cluster.observe(now), now)
            for action in d.actions:
                if not isinstance(action, EmitEvent):
                    r_actions.append((now, action))
                    if isinstance(action, DrainTraffic):
                        drains.append((now, action.replacement_weight))
                cluster.execute(action, now)
            if not r_log or d.status.phase != r_log[-1][1]:
                r_log.append((now, d.status.phase))
            r_status = d.status
        now = next_tick(now, busy(v2) or now < V2_SHIPPED + 10 * MIN)

    assert v2.log == [(V2_SHIPPED, Phase.VALIDATING), (V2_SHIPPED + 5 * MIN, Phase.PROMOTED)]
    assert v2.status.history[-1].outcome == "Initial"
    assert r_status.scheduled_for == V2_SHIPPED + 5 * MIN + 90 * DAY  # 2027-04-10 09:05

    # Then: Scheduled until 90 days after v2's promotion; drained 25/50/100 one day apart, starting at the first
    # tick after the schedule (midnight, 2027-04-11); zero traffic confirmed a day after the last step; churn's
    # children deleted at once, the ModelDeployment itself once they are gone, Retired when it is gone too.
    assert r_log == [
        (V2_SHIPPED + 10 * MIN, RetirementPhase.SCHEDULED),
        (at(2027, 4, 11), RetirementPhase.DRAINING),
        (at(2027, 4, 14), RetirementPhase.CLEANING_UP),
        (at(2027, 4, 16), RetirementPhase.RETIRED),
    ]
    assert drains == [(at(2027, 4, 11), 25), (at(2027, 4, 12), 50), (at(2027, 4, 13), 100)]
    first_delete = min(t for t, a in r_actions if isinstance(a, DeleteObject))
    assert first_delete == at(2027, 4, 14)
    assert first_delete > drains[-1][0]
    removed = [(r.kind, r.name, r.at) for r in r_status.removed]
    # While it stayed Degraded, retraining was retried every minInterval (30d) until the drain began.
    retrainings = [t for t, e in churn.emitted if e.reason == "RetrainingStarted"]
    assert retrainings == [at(2026, 7, 3), at(2027, 1, 3), at(2027, 2, 2), at(2027, 3, 4), at(2027, 4, 3)]
    jobs = {n for _, k, n in cluster.deleted if k == "Job"}
    assert len(jobs) == 7
    assert {"churn-v1-holdout-6955b900", "churn-v1-1-holdout-6a4717a0"} <= jobs
    assert removed[:2] == [("Deployment", "churn-v1-1", at(2027, 4, 14)), ("Service", "churn-v1-1", at(2027, 4, 14))]
    assert removed[-1] == ("ModelDeployment", "churn", at(2027, 4, 15))
    assert r_status.retired_at == at(2027, 4, 16)
    deleted_names = {n for _, _, n in cluster.deleted}
    assert "churn-dashboard" not in deleted_names
    assert "churn-batch-scorer" not in deleted_names
    assert not any(n.startswith("churn-v2") for n in deleted_names)
    retired = get_condition(r_status.conditions, "Retired")
    assert retired is not None
    assert (retired.status, retired.last_transition_time) == ("True", at(2027, 4, 16))
    # While the retirement owned the route, churn never set its weights back (no fight over the route).
    assert not [e for t, e in churn.emitted if e.reason == "RouteDrift"]

    assert time.process_time() - started < 1.0
