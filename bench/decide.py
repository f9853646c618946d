"""The decision core alone: ``decide`` calls per second on examples/recommender.yaml (3 analysis metrics, one with a
baseline, a gate with a fairness audit, approvals, monitoring, retraining on a schedule).

The status is reached by driving ``decide`` itself through a rollout (v1 promoted, then v2 gated and moved to its
second step), so it is one the operator would really hold. Two ticks are timed: one where the analysis is due
(readings judged, status changes) and one where nothing is due (the common case).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from modelops.api import ModelDeploymentSpec, ModelDeploymentStatus, ObjectMeta, Phase, parse_duration
from modelops.core import (
    DeploymentObservations,
    JobResult,
    JobState,
    Reading,
    analysis_due,
    decide,
    desired_weights,
    desired_workloads,
)

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "recommender.yaml"
GATE_RESULTS = {
    "metrics": {"accuracy": 0.91},
    "groups": {"group-a": {"positiveRate": 0.42}, "group-b": {"positiveRate": 0.40}},
}
READINGS = {"error-rate": 0.004, "latency-p99": 0.08, "accuracy": 0.9}


def observe(spec: ModelDeploymentSpec, status: ModelDeploymentStatus, now: datetime) -> DeploymentObservations:
    """What the handlers would see in a healthy cluster: everything ready, the route as status wants it, gates
    passing, metrics within bounds."""
    gates = {
        g.name: JobResult(JobState.SUCCEEDED, GATE_RESULTS, job_name=g.job_name) for g in status.gates if g.job_name
    }
    due = analysis_due(spec, status, now)
    readings = {m.name: Reading.of(READINGS[m.name]) for m in spec.rollout.analysis.metrics} if due else {}
    weights = desired_weights(status)
    return DeploymentObservations(
        candidate=readings,
        stable=readings,
        candidate_ready=True,
        stable_ready=True,
        gates=gates,
        router_weights=weights,
        route_matches=True if weights else None,
        workloads=frozenset(desired_workloads(spec, status)),
    )


def rollout_state() -> tuple[ModelDeploymentSpec, ObjectMeta, ModelDeploymentStatus, datetime]:
    """Drive ``decide`` from nothing to v2 at the second step of its rollout; returns the state and the time."""
    doc: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    spec = ModelDeploymentSpec.model_validate(doc["spec"])
    meta = ObjectMeta(name="recommender", namespace="ml", uid="u-1", generation=1)
    status = ModelDeploymentStatus()
    now = datetime(2026, 1, 1, tzinfo=UTC)
    for _ in range(200):
        status = decide(spec, meta, status, observe(spec, status, now), now).status
        now += timedelta(seconds=30)
        if status.phase == Phase.PROMOTED and status.candidate_version is None:
            break
    spec = spec.model_copy(update={"model": spec.model.model_copy(update={"version": "v2"})})
    meta = meta.model_copy(update={"generation": 2})
    for _ in range(2000):
        status = decide(spec, meta, status, observe(spec, status, now), now).status
        if status.phase == Phase.PROGRESSING and status.current_step == 1:
            return spec, meta, status, now
        now += timedelta(seconds=30)
    raise RuntimeError(f"the rollout did not reach step 2: {status.phase} {status.message}")


def _rate(call: Any, seconds: float) -> float:
    n, start = 0, time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(50):
            call()
        n += 50
        if time.perf_counter() >= deadline:
            return n / (time.perf_counter() - start)


def bench_decide(seconds: float = 3.0) -> dict[str, Any]:
    spec, meta, status, now = rollout_state()
    interval = parse_duration(spec.rollout.analysis.interval)
    due_at = (status.analysis.last_check_at or status.step_started_at or now) + interval
    due_obs = observe(spec, status, due_at)
    assert due_obs.candidate, "the analysis must be due in the timed tick"
    analysed = decide(spec, meta, status, due_obs, due_at).status
    quiet_at = due_at + timedelta(seconds=1)
    quiet_obs = observe(spec, analysed, quiet_at)
    quiet = decide(spec, meta, analysed, quiet_obs, quiet_at)
    assert not quiet.actions, "a tick with nothing due must do nothing"
    assert quiet.status == analysed, "a tick with nothing due must change nothing"
    return {
        "spec": str(EXAMPLE.relative_to(EXAMPLE.parents[1])),
        "state": f"{status.phase} v2 at step {(status.current_step or 0) + 1} (weight {status.canary_weight})",
        "analysis_tick_per_second": _rate(lambda: decide(spec, meta, status, due_obs, due_at), seconds / 2),
        "quiet_tick_per_second": _rate(lambda: decide(spec, meta, analysed, quiet_obs, quiet_at), seconds / 2),
    }
