"""Properties of ``decide`` over random walks: random time steps, readings, readiness, gate outcomes, requests and
spec changes, each fed back the status of the previous call, as the operator does."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from modelops.api import ModelDeploymentSpec, ModelDeploymentStatus
from modelops.api.deployment import Phase
from modelops.core import (
    DeleteWorkload,
    DeploymentObservations,
    EnsureWorkload,
    JobResult,
    JobState,
    Reading,
    SetWeights,
    decide,
    desired_weights,
    desired_workloads,
)
from modelops.core.observations import Acceptance, RouteAcceptance

from .builders import GOOD_GATE, T0, meta, progressing, promoted, request, spec

READINGS = st.sampled_from(
    [Reading.of(0.75), Reading.of(0.69), Reading.of(0.66), Reading.of(0.5), Reading.no_data(), Reading.error("e")]
)
LATENCY = st.sampled_from([Reading.of(0.1), Reading.of(0.9), Reading.no_data()])
GATE = st.sampled_from(
    [
        JobState.RUNNING,
        *[JobState.SUCCEEDED] * 8,
        JobState.FAILED,
        JobState.ABSENT,
        "bad",
    ]
)
REQUEST = st.sampled_from([None] * 6 + ["promote", "abort", "pause", "resume", "approve", "retry"])
#: what the Gateway says of the route at each look: mostly accepted, sometimes not yet, rejected, or not read
ROUTE = st.sampled_from(
    [RouteAcceptance(Acceptance.ACCEPTED, "Accepted", "ok")] * 4
    + [RouteAcceptance(Acceptance.PENDING, "Pending", "not yet"), RouteAcceptance(Acceptance.REJECTED, "X", "no"), None]
)
DT = st.sampled_from(
    [timedelta(0), timedelta(seconds=10), timedelta(minutes=1), timedelta(minutes=5), timedelta(hours=1)]
)


@st.composite
def specs(draw: st.DrawFn) -> ModelDeploymentSpec:
    router = draw(st.sampled_from(["gatewayAPI", "replicas"]))
    traffic: dict[str, Any] = (
        {"router": "gatewayAPI", "gatewayAPI": {"httpRoute": "r", "waitForAcceptance": draw(st.booleans())}}
        if router == "gatewayAPI"
        else {"router": "replicas", "replicas": {"service": "s"}}
    )
    weights = [*sorted(draw(st.sets(st.integers(1, 99), max_size=3))), 100]
    overrides: dict[str, Any] = {
        "traffic": traffic,
        "server": {"image": "i", "replicas": draw(st.integers(0, 5))},
        "rollout": {
            "steps": [{"weight": w, "pause": draw(st.sampled_from(["0s", "1m", "5m"]))} for w in weights],
            "analysis": {
                **spec().rollout.analysis.model_dump(by_alias=True, exclude_none=True),
                "failureLimit": draw(st.integers(0, 2)),
                "onMetricsUnavailable": draw(st.sampled_from(["Hold", "Rollback"])),
                "maxUnavailableChecks": draw(st.integers(1, 3)),
            },
        },
    }
    if draw(st.booleans()):
        overrides["approvals"] = [{"team": "risk"}]
    return spec(**overrides)


@st.composite
def walks(draw: st.DrawFn) -> tuple[ModelDeploymentSpec, ModelDeploymentStatus, list[dict[str, Any]]]:
    s = draw(specs())
    start = draw(st.sampled_from([ModelDeploymentStatus(), promoted(), progressing(None), progressing(0)]))
    steps = draw(
        st.lists(
            st.fixed_dictionaries(
                {
                    "dt": DT,
                    "accuracy": READINGS,
                    "latency": LATENCY,
                    "candidate_ready": st.booleans(),
                    "stable_ready": st.booleans(),
                    "gate": GATE,
                    "request": REQUEST,
                    "route": ROUTE,
                    "new_version": st.sampled_from([None] * 12 + ["v3", "v1"]),
                }
            ),
            min_size=1,
            max_size=25,
        )
    )
    return s, start, steps


def observe(status: ModelDeploymentStatus, step: dict[str, Any], n: int) -> DeploymentObservations:
    gate_state = step["gate"]
    gates = {}
    for g in status.gates:
        if g.job_name is None:
            continue
        if gate_state == "bad":
            gates[g.name] = JobResult(JobState.SUCCEEDED, {"metrics": {"accuracy": 0.1}}, job_name=g.job_name)
        else:
            gates[g.name] = JobResult(gate_state, GOOD_GATE, job_name=g.job_name)
    action = step["request"]
    requests = (request(action, id_=f"q{n}", team="risk"),) if action else ()
    return DeploymentObservations(
        candidate={"accuracy": step["accuracy"], "latency": step["latency"]},
        stable={"accuracy": Reading.of(0.70), "latency": Reading.of(0.1)},
        candidate_ready=step["candidate_ready"],
        stable_ready=step["stable_ready"],
        gates=gates,
        route_matches=True,
        route_acceptance=step["route"],
        requests=requests,
    )


def check_weights(weights: dict[str, int]) -> None:
    assert all(0 <= w <= 100 for w in weights.values()), weights
    assert not weights or sum(weights.values()) == 100, weights


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(walks())
def test_random_walks_keep_the_invariants(
    walk: tuple[ModelDeploymentSpec, ModelDeploymentStatus, list[dict[str, Any]]],
) -> None:
    s, status, steps = walk
    now = T0
    generation = 2
    limit_hit_for = None
    for n, step in enumerate(steps):
        now += step["dt"]
        if step["new_version"]:
            version = step["new_version"]
            s = s.model_copy(
                update={"model": s.model.model_copy(update={"version": version, "uri": f"s3://{version}"})}
            )
            generation += 1
        observations = observe(status, step, n)
        before = status
        d = decide(s, meta(generation), before, observations, now)
        after = d.status

        # Weights stay in 0..100 and sum to 100, in every action and in what status implies.
        for a in d.actions:
            if isinstance(a, SetWeights):
                check_weights(dict(a.weights))
            if isinstance(a, EnsureWorkload):
                assert a.replicas >= 0
        check_weights(desired_weights(after))

        # Nothing ever deletes the stable version (before or after this call).
        deleted = {a.version for a in d.actions if isinstance(a, DeleteWorkload)}
        assert before.stable_version not in deleted
        assert after.stable_version not in deleted
        if after.stable_version is not None:
            assert after.stable_version in desired_workloads(s, after)

        # A rollback leaves the candidate at weight 0, deleted, and the stable version serving everything.
        if after.phase == Phase.ROLLED_BACK and before.phase != Phase.ROLLED_BACK:
            assert after.canary_weight == 0
            assert after.candidate_version not in desired_workloads(s, after)
            if after.stable_version is not None:
                assert desired_weights(after) == {after.stable_version: 100} or set(desired_weights(after)) == {
                    after.stable_version,
                    after.previous_stable_version,
                }
                assert desired_weights(after)[after.stable_version] == 100

        # After the failure limit is hit, the weight of that rollout never moves up again.
        if after.analysis.failed_checks > s.rollout.analysis.failure_limit and after.candidate_version:
            limit_hit_for = after.rollout_started_at
        if limit_hit_for is not None and after.rollout_started_at == limit_hit_for:
            assert after.canary_weight == 0
            assert after.phase == Phase.ROLLED_BACK

        # Status survives the API server: it round-trips through its wire form.
        assert ModelDeploymentStatus.model_validate(after.to_k8s()) == after

        # Idempotence: the same call again, with its own status, changes nothing and does nothing.
        again = decide(s, meta(generation), after, observations, now)
        assert again.actions == (), again.actions
        assert again.status == after
        event(f"reached {after.phase}")
        status = after
