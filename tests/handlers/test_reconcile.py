"""The handler glue against in-memory fakes: parse -> observe -> decide -> execute -> patch status.

The API is ``InMemoryKube`` (apiserver semantics for resourceVersion, generation, status subresource, 409), the
route a ``FakeRouter``, Prometheus a ``FakeMetricsProvider``, the clock a variable.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from modelops.adapters.kube import (
    DEPLOYMENTS,
    DESTINATIONRULES,
    EVENTS,
    JOBS,
    MODELDEPLOYMENTS,
    MODELREQUESTS,
    VIRTUALSERVICES,
    InMemoryKube,
    deployment_ready,
)
from modelops.adapters.prometheus import FakeMetricsProvider
from modelops.adapters.routers import FakeRouter
from modelops.core.deployment import INVALID_SPEC_REFUSAL, MAX_REQUESTS_PER_TICK
from modelops.handlers.operator import _reconcile_fresh, retiring
from modelops.handlers.reconcile import Runtime, finalize_deployment, reconcile_deployment
from modelops.telemetry import Telemetry

NS = "ml"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def spec(version: str = "v1") -> dict[str, Any]:
    return {
        "model": {"name": "fraud", "version": version, "uri": f"file:///models/{version}.pkl"},
        "server": {"image": "example/fraud:1", "replicas": 1},
        "traffic": {"router": "gatewayAPI", "gatewayAPI": {"httpRoute": "fraud", "waitForAcceptance": False}},
        "rollout": {
            "steps": [{"weight": 10, "pause": "1m"}, {"weight": 100}],
            "analysis": {
                "interval": "30s",
                "failureLimit": 0,
                "metrics": [
                    {
                        "name": "error-rate",
                        "owner": "engineering",
                        "max": 0.05,
                        "query": 'errors{namespace="{{ namespace }}",version="{{ version }}"}',
                    }
                ],
            },
        },
    }


class World:
    def __init__(self) -> None:
        self.kube = InMemoryKube()
        self.router = FakeRouter()
        self.metrics = FakeMetricsProvider()
        self.now = T0
        self.rt = Runtime(
            api=self.kube,
            metrics=self.metrics,
            telemetry=Telemetry(),
            clock=lambda: self.now,
            router_factory=lambda *_: self.router,
        )
        self.kube.put(MODELDEPLOYMENTS, NS, {"metadata": {"name": "fraud", "namespace": NS}, "spec": spec()})

    def body(self) -> dict[str, Any]:
        obj = self.kube.get(MODELDEPLOYMENTS, NS, "fraud")
        assert obj is not None
        return obj

    def tick(self, seconds: float = 0) -> Any:
        self.now += timedelta(seconds=seconds)
        return _reconcile_fresh(self.kube, lambda b: reconcile_deployment(self.rt, b), MODELDEPLOYMENTS, self.body())

    def make_ready(self) -> None:
        """Play the controller-manager: every Deployment reports its replicas ready."""
        for dep in self.kube.list(DEPLOYMENTS, NS):
            n = dep["spec"].get("replicas", 1)
            status = {
                "observedGeneration": dep["metadata"]["generation"],
                "replicas": n,
                "readyReplicas": n,
                "updatedReplicas": n,
                "availableReplicas": n,
            }
            self.kube.edit(DEPLOYMENTS, NS, dep["metadata"]["name"], {"status": status})

    def status(self) -> dict[str, Any]:
        return self.body().get("status") or {}

    def settle(self, limit: int = 10) -> None:
        for _ in range(limit):
            self.make_ready()
            outcome = self.tick()
            if not outcome.wrote_status and not outcome.actions:
                return
        raise AssertionError(f"did not settle: {self.status()}")


@pytest.fixture
def world() -> World:
    return World()


def test_first_version_goes_live_and_children_are_created(world: World) -> None:
    world.settle()
    assert world.status()["phase"] == "Promoted"
    assert world.status()["stableVersion"] == "v1"
    assert world.kube.get(DEPLOYMENTS, NS, "fraud-v1") is not None
    assert world.router.weights == {"v1": 100}
    assert world.status()["observedGeneration"] == world.body()["metadata"]["generation"]


def test_a_tick_that_changes_nothing_writes_nothing(world: World) -> None:
    world.settle()
    before = len(world.kube.calls)
    outcome = world.tick(seconds=5)
    assert not outcome.wrote_status
    assert [c for c in world.kube.calls[before:] if c.verb in {"create", "patch", "delete"}] == []
    assert world.router.writes == 1


def test_new_version_canaries_and_rolls_back_on_a_failing_metric(world: World) -> None:
    world.settle()
    world.kube.edit(MODELDEPLOYMENTS, NS, "fraud", {"spec": spec("v2")})
    world.settle()
    assert world.status()["phase"] == "Progressing"
    assert world.router.weights == {"v1": 90, "v2": 10}
    world.metrics.set('errors{namespace="ml",version="v2"}', 0.5)
    world.tick(seconds=31)
    world.settle()
    assert world.status()["phase"] == "RolledBack"
    assert world.router.weights == {"v1": 100}
    assert world.kube.get(DEPLOYMENTS, NS, "fraud-v2") is None
    reasons = {e["reason"] for e in world.kube.list(EVENTS, NS)}
    assert "AnalysisFailed" in reasons, reasons
    assert world.status()["history"][-1]["outcome"] == "RolledBack"


def test_semantic_error_is_invalid_spec_and_nothing_else_changes(world: World) -> None:
    world.settle()
    broken = spec("v2")
    broken["rollout"]["analysis"]["metrics"][0]["query"] = 'errors{version="{{ tenant }}"}'
    world.kube.edit(MODELDEPLOYMENTS, NS, "fraud", {"spec": broken})
    world.tick()
    status = world.status()
    assert status["phase"] == "InvalidSpec"
    assert "spec.rollout.analysis.metrics[0].query" in status["message"]
    assert status["stableVersion"] == "v1"
    assert world.router.weights == {"v1": 100}
    assert world.kube.get(DEPLOYMENTS, NS, "fraud-v2") is None
    assert any(c["type"] == "InvalidSpec" and c["status"] == "True" for c in status["conditions"])


def test_status_write_with_stale_resource_version_is_retried_from_a_fresh_read(world: World) -> None:
    world.settle()
    world.kube.edit(MODELDEPLOYMENTS, NS, "fraud", {"spec": spec("v2")})
    stale = world.body()  # a new version: this reconcile will write status
    world.kube.edit(MODELDEPLOYMENTS, NS, "fraud", {"metadata": {"labels": {"team": "risk"}}})
    seen: list[str] = []

    def reconcile(body: dict[str, Any]) -> Any:
        seen.append(body["metadata"]["resourceVersion"])
        return reconcile_deployment(world.rt, body)

    outcome = _reconcile_fresh(world.kube, reconcile, MODELDEPLOYMENTS, copy.deepcopy(stale))
    assert len(seen) == 2, "a 409 on the stale read, then one reconcile from the fresh object"
    assert seen[0] == stale["metadata"]["resourceVersion"]
    assert outcome.wrote_status
    assert world.status()["candidateVersion"] == "v2"


def test_retiring_follows_the_retirement_schedule_and_phase() -> None:
    now = T0
    assert not retiring([], now)
    assert retiring([{"spec": {"afterReplacementPromoted": "1d"}, "status": {"phase": "Draining"}}], now)
    future = {"spec": {"notBefore": "2027-01-01T00:00:00Z"}, "status": {"phase": "Scheduled"}}
    assert not retiring([future], now)
    past = {"spec": {"notBefore": "2025-01-01T00:00:00Z"}, "status": {}}
    assert retiring([past], now)


def _cache(world: World) -> dict[str, bool]:
    """What the operator's watch of Deployments would hold: version -> ready."""
    return {
        d["metadata"]["labels"]["modelops.io/version"]: deployment_ready(d) for d in world.kube.list(DEPLOYMENTS, NS)
    }


def test_a_steady_tick_with_the_watch_cache_reads_no_deployment(world: World) -> None:
    world.settle()
    cache, body = _cache(world), world.body()
    before = len(world.kube.calls)
    outcome = reconcile_deployment(world.rt, body, workloads=cache)
    assert not outcome.wrote_status
    assert [c for c in world.kube.calls[before:] if c.resource == DEPLOYMENTS] == []
    assert [c[0] for c in world.router.calls[-1:]] == ["observe"], "the route is read once, for both questions"


def test_a_version_the_cache_has_not_seen_yet_is_read_not_reported_missing(world: World) -> None:
    world.settle()
    before = len(world.kube.calls)
    outcome = reconcile_deployment(world.rt, world.body(), workloads={})
    assert not outcome.actions, "a stale cache must not recreate the workload"
    assert [(c.verb, c.name) for c in world.kube.calls[before:] if c.resource == DEPLOYMENTS] == [("get", "fraud-v1")]


def test_a_workload_really_gone_is_recreated_with_the_cache(world: World) -> None:
    world.settle()
    world.kube.delete(DEPLOYMENTS, NS, "fraud-v1")
    outcome = reconcile_deployment(world.rt, world.body(), workloads={})
    assert any(type(a).__name__ == "EnsureWorkload" for a in outcome.actions)
    assert world.kube.get(DEPLOYMENTS, NS, "fraud-v1") is not None


def test_held_in_a_step_the_object_sleeps_until_the_analysis_is_due(world: World) -> None:
    world.settle()
    world.kube.edit(MODELDEPLOYMENTS, NS, "fraud", {"spec": spec("v2")})
    world.settle()
    assert world.status()["currentStep"] == 0
    outcome = world.tick(seconds=1)
    assert outcome.next_in == pytest.approx(29.0), "the next analysis, not the gate poll"
    outcome = world.tick(seconds=60)
    assert outcome.next_in <= world.rt.poll_seconds, "past the pause: polled again"


def test_a_status_write_reports_the_resource_version_it_produced(world: World) -> None:
    outcome = world.tick()
    assert outcome.wrote_status
    assert outcome.resource_version == world.body()["metadata"]["resourceVersion"]


def test_a_check_asks_for_all_its_readings_in_one_batch(world: World) -> None:
    def with_latency(version: str) -> dict[str, Any]:
        s = spec(version)
        s["rollout"]["analysis"]["metrics"].append(
            {
                "name": "latency",
                "owner": "engineering",
                "max": 1.0,
                "baseline": {"maxDegradation": 0.1},
                "query": 'latency{version="{{ version }}"}',
            }
        )
        return s

    world.kube.edit(MODELDEPLOYMENTS, NS, "fraud", {"spec": with_latency("v1")})
    world.settle()
    world.kube.edit(MODELDEPLOYMENTS, NS, "fraud", {"spec": with_latency("v2")})
    world.settle()
    world.metrics.batches.clear()
    world.tick(seconds=31)
    # the candidate's two metrics and the stable version's baseline reading: one call, so one Prometheus request
    assert world.metrics.batches == [
        ['errors{namespace="ml",version="v2"}', 'latency{version="v2"}', 'latency{version="v1"}']
    ]
    world.tick(seconds=1)
    assert len(world.metrics.batches) == 1, "no check before the next interval"


def test_without_verify_route_the_route_is_not_read_but_still_set_when_the_weights_change(world: World) -> None:
    world.settle()
    world.router.weights = {"v1": 50, "somebody-else": 50}  # someone edits the route
    world.router.calls.clear()

    def tick(verify: bool) -> Any:
        world.now += timedelta(seconds=5)
        return _reconcile_fresh(
            world.kube,
            lambda b: reconcile_deployment(world.rt, b, verify_route=verify),
            MODELDEPLOYMENTS,
            world.body(),
        )

    tick(verify=False)
    assert world.router.calls == [], "not read, so not noticed"
    tick(verify=True)
    assert world.router.weights == {"v1": 100}, "read, noticed and set back"
    assert [c for c, _ in world.router.calls] == ["observe", "set_weights"]

    world.kube.edit(MODELDEPLOYMENTS, NS, "fraud", {"spec": spec("v2")})
    world.make_ready()
    world.router.calls.clear()
    for _ in range(3):
        world.make_ready()
        tick(verify=False)
    assert world.router.weights == {"v1": 90, "v2": 10}, "a decided change of weights is written without a read"
    assert "observe" not in [c for c, _ in world.router.calls]


def test_a_conflicting_status_write_leaves_no_gate_job_behind(world: World) -> None:
    """The first reconcile of a rollout starts its gate Jobs (named after the rollout's start), then its status
    write gets 409: the next reconcile, from a fresh read and a later clock, names its Jobs anew. The Jobs of the
    unrecorded decision are deleted, so exactly the Job that status names runs (seen on the real API server)."""
    world.settle()
    gate = {
        "name": "held-out",
        "owner": "data-science",
        "template": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "e", "image": "x"}]}}},
        "checks": [{"result": "accuracy", "min": 0.8}],
    }
    world.kube.edit(MODELDEPLOYMENTS, NS, "fraud", {"spec": {**spec("v2"), "gates": [gate]}})
    stale = world.body()
    world.kube.edit(MODELDEPLOYMENTS, NS, "fraud", {"metadata": {"labels": {"team": "risk"}}})
    clock = iter(T0 + timedelta(hours=1, seconds=s) for s in range(100))
    world.rt.clock = lambda: next(clock)  # every reconcile reads a later second

    _reconcile_fresh(world.kube, lambda b: reconcile_deployment(world.rt, b), MODELDEPLOYMENTS, copy.deepcopy(stale))

    (named,) = [g["jobName"] for g in world.status()["gates"]]
    jobs = [j["metadata"]["name"] for j in world.kube.list(JOBS, NS)]
    assert jobs == [named], f"the Job of the decision that was not recorded is left: {jobs}"


def model_request(name: str, action: str, created: str = "2026-01-01T00:00:00Z") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": NS, "uid": f"uid-{name}", "creationTimestamp": created},
            "spec": {"modelDeployment": "fraud", "action": action}}  # fmt: skip


def tick_with(world: World, requests: list[dict[str, Any]]) -> Any:
    for r in requests:
        if world.kube.get(MODELREQUESTS, NS, r["metadata"]["name"]) is None:
            world.kube.put(MODELREQUESTS, NS, copy.deepcopy(r))
    pending = [r for r in world.kube.list(MODELREQUESTS, NS) if not (r.get("status") or {}).get("phase")]
    return _reconcile_fresh(
        world.kube, lambda b: reconcile_deployment(world.rt, b, requests=pending), MODELDEPLOYMENTS, world.body()
    )


def test_a_request_is_answered_in_its_status_after_the_deployment_records_it(world: World) -> None:
    world.settle()
    tick_with(world, [model_request("p-1", "pause")])
    answer = world.kube.get(MODELREQUESTS, NS, "p-1")
    assert answer is not None
    assert answer["status"]["phase"] == "Refused"
    assert answer["status"]["message"].startswith("cannot pause in phase Promoted")
    assert world.status()["lastRequest"]["name"] == "p-1"
    verbs = [(c.verb, c.resource.plural) for c in world.kube.calls if c.verb == "patch"]
    md_write = verbs.index(("patch", "modeldeployments"))
    assert verbs.index(("patch", "modelrequests")) > md_write, verbs


def test_requests_to_an_invalid_spec_are_refused_not_kept_for_later(world: World) -> None:
    world.settle()
    broken = spec("v2")
    broken["rollout"]["analysis"]["metrics"][0]["query"] = 'errors{version="{{ tenant }}"}'
    world.kube.edit(MODELDEPLOYMENTS, NS, "fraud", {"spec": broken})
    tick_with(world, [model_request("a-1", "abort")])
    answer = world.kube.get(MODELREQUESTS, NS, "a-1")
    assert answer is not None
    assert answer["status"] == {"phase": "Refused", "message": INVALID_SPEC_REFUSAL, "handledAt": T0.isoformat()}
    assert world.status()["phase"] == "InvalidSpec"


def test_a_burst_of_requests_is_taken_a_batch_a_reconcile_and_none_twice(world: World) -> None:
    world.settle()
    burst = [model_request(f"r-{i:02d}", "pause") for i in range(MAX_REQUESTS_PER_TICK + 5)]
    outcome = tick_with(world, burst)
    answered = [r for r in world.kube.list(MODELREQUESTS, NS) if (r.get("status") or {}).get("phase")]
    assert len(answered) == MAX_REQUESTS_PER_TICK
    assert outcome.next_in <= world.rt.poll_seconds  # the rest soon
    tick_with(world, burst)
    assert all((r.get("status") or {}).get("phase") for r in world.kube.list(MODELREQUESTS, NS))
    recorded = [r["name"] for r in world.status()["requests"]]
    assert sorted(recorded) == sorted(r["metadata"]["name"] for r in burst)  # each once


# ------------------------------------------------------------------------------- an object that is not ours


def istio_host(world: World) -> None:
    """The world's ModelDeployment routed by the real istio router in host mode, on its VirtualService."""
    world.rt.router_factory = None
    body = spec()
    body["traffic"] = {"router": "istio", "istio": {"virtualService": "fraud", "routeName": "model", "host": "fraud"}}
    world.kube.put(MODELDEPLOYMENTS, NS, {"metadata": {"name": "fraud", "namespace": NS}, "spec": body})
    vs = {"metadata": {"name": "fraud"}, "spec": {"hosts": ["fraud"], "http": [{"name": "model", "route": []}]}}
    world.kube.put(VIRTUALSERVICES, NS, vs)


def subsets_routed(world: World) -> dict[str, int]:
    vs = world.kube.get(VIRTUALSERVICES, NS, "fraud")
    assert vs is not None
    return {d["destination"]["subset"]: d["weight"] for d in vs["spec"]["http"][0]["route"]}


def test_a_foreign_destination_rule_blocks_the_rollout_and_the_stable_version_keeps_serving(world: World) -> None:
    """v1 runs in host mode; someone replaces the operator's DestinationRule with one of their own, of the same name.
    Then v2 does not start: the rule and the route are left as they are, condition Blocked and one event say why.
    Once the rule is gone, the operator makes its own again and the rollout goes on."""
    istio_host(world)
    world.settle()
    assert world.status()["phase"] == "Promoted"
    rule = world.kube.get(DESTINATIONRULES, NS, "fraud")
    assert rule is not None
    assert [s["name"] for s in rule["spec"]["subsets"]] == ["fraud-v1"]
    assert subsets_routed(world) == {"fraud-v1": 100}

    world.kube.delete(DESTINATIONRULES, NS, "fraud")
    theirs = {"metadata": {"name": "fraud"}, "spec": {"host": "fraud", "subsets": [{"name": "fraud-v1"}]}}
    world.kube.put(DESTINATIONRULES, NS, theirs)
    foreign = world.kube.get(DESTINATIONRULES, NS, "fraud")
    world.kube.edit(MODELDEPLOYMENTS, NS, "fraud", {"spec": {"model": {"version": "v2", "uri": "file:///v2.pkl"}}})
    generation = world.body()["metadata"]["generation"]
    world.settle()
    world.tick(seconds=5)

    status = world.status()
    assert (status["phase"], status["stableVersion"]) == ("Promoted", "v1")
    assert "candidateVersion" not in status
    assert status["observedGeneration"] < generation, "the new spec is not taken as handled"
    (blocked,) = [c for c in status["conditions"] if c["type"] == "Blocked"]
    assert (blocked["status"], blocked["reason"]) == ("True", "ObjectNotOwned")
    assert blocked["message"].startswith("DestinationRule ml/fraud exists and does not belong to ModelDeployment")
    assert world.kube.get(DESTINATIONRULES, NS, "fraud") == foreign, "their rule is untouched"
    assert subsets_routed(world) == {"fraud-v1": 100}, "the route too: v1 keeps serving"
    (ready,) = [c for c in status["conditions"] if c["type"] == "Ready"]
    assert ready["status"] == "True"
    (event,) = [e for e in world.kube.list(EVENTS, NS) if e["reason"] == "ObjectNotOwned"]
    assert (event["type"], event["count"], event["message"]) == ("Warning", 1, blocked["message"])

    world.kube.delete(DESTINATIONRULES, NS, "fraud")
    world.settle()
    status = world.status()
    assert (status["phase"], status["candidateVersion"], status["canaryWeight"]) == ("Progressing", "v2", 10)
    (blocked,) = [c for c in status["conditions"] if c["type"] == "Blocked"]
    assert (blocked["status"], blocked["reason"]) == ("False", "NotBlocked")
    rule = world.kube.get(DESTINATIONRULES, NS, "fraud")
    assert rule is not None
    assert rule["metadata"]["ownerReferences"][0]["uid"] == world.body()["metadata"]["uid"]
    assert [s["name"] for s in rule["spec"]["subsets"]] == ["fraud-v1", "fraud-v2"]
    assert subsets_routed(world) == {"fraud-v1": 90, "fraud-v2": 10}


def test_a_foreign_destination_rule_does_not_hold_up_a_deletion(world: World) -> None:
    istio_host(world)
    world.settle()
    world.kube.delete(DESTINATIONRULES, NS, "fraud")
    theirs = {"metadata": {"name": "fraud"}, "spec": {"host": "fraud"}}
    world.kube.put(DESTINATIONRULES, NS, theirs)
    foreign = world.kube.get(DESTINATIONRULES, NS, "fraud")
    finalize_deployment(world.rt, world.body())  # logs that the route was not restored, and goes on
    assert world.kube.get(DESTINATIONRULES, NS, "fraud") == foreign
    assert world.kube.get(DEPLOYMENTS, NS, "fraud-v1") is None
