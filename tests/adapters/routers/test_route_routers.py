"""The gatewayAPI and istio routers against the in-memory API: only the managed entry changes."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import pytest

from adapters.builders import NAMESPACE, make_md
from modelops.adapters.kube import (
    HTTPROUTES,
    MODELDEPLOYMENTS,
    VIRTUALSERVICES,
    Conflict,
    InMemoryKube,
    KubeAdapter,
    Obj,
    Resource,
)
from modelops.adapters.routers import (
    MAX_ATTEMPTS,
    HTTPRouteRouter,
    ListRouteRouter,
    RouterError,
    VirtualServiceRouter,
    router_for,
)
from modelops.core.observations import Acceptance, RouteAcceptance

HTTP_ROUTE: Obj = {
    "apiVersion": "gateway.networking.k8s.io/v1",
    "kind": "HTTPRoute",
    "metadata": {"name": "fraud-route", "labels": {"team": "web"}},
    "spec": {
        "parentRefs": [{"name": "public-gw"}],
        "hostnames": ["fraud.example.com"],
        "rules": [
            {
                "name": "health",
                "matches": [{"path": {"type": "PathPrefix", "value": "/healthz"}}],
                "backendRefs": [{"name": "probe", "port": 80}],
            },
            {
                "name": "model",
                "matches": [{"path": {"type": "PathPrefix", "value": "/predict"}}],
                "timeouts": {"request": "10s"},
                "backendRefs": [{"group": "", "kind": "Service", "name": "fraud-1-0-0", "port": 8080, "weight": 100}],
            },
        ],
    },
}

VIRTUAL_SERVICE: Obj = {
    "apiVersion": "networking.istio.io/v1",
    "kind": "VirtualService",
    "metadata": {"name": "fraud-vs"},
    "spec": {
        "hosts": ["fraud.example.com"],
        "gateways": ["public-gw"],
        "http": [
            {
                "name": "health",
                "match": [{"uri": {"prefix": "/healthz"}}],
                "route": [{"destination": {"host": "probe"}}],
            },
            {
                "name": "model",
                "match": [{"uri": {"prefix": "/predict"}}],
                "retries": {"attempts": 3},
                "route": [{"destination": {"host": "fraud-1-0-0", "port": {"number": 8080}}, "weight": 100}],
            },
        ],
    },
}


@dataclass(frozen=True)
class Case:
    router: str
    resource: Resource
    body: Obj
    list_key: str
    backends_key: str

    @property
    def name(self) -> str:
        return str(self.body["metadata"]["name"])

    def stored(self, kube: InMemoryKube) -> Obj:
        return kube.objects[(self.resource, NAMESPACE, self.name)]

    def managed(self, kube: InMemoryKube) -> list[Obj]:
        return list(self.stored(kube)["spec"][self.list_key][1][self.backends_key])


CASES = [
    Case("gatewayAPI", HTTPROUTES, HTTP_ROUTE, "rules", "backendRefs"),
    Case("istio", VIRTUALSERVICES, VIRTUAL_SERVICE, "http", "route"),
]


@pytest.fixture(params=CASES, ids=lambda c: c.router)
def case(request: pytest.FixtureRequest) -> Case:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def router(case: Case, kube: InMemoryKube) -> ListRouteRouter:
    """The router for ``case``, with the route object and both versions' Services in place."""
    md = make_md(case.router)
    kube.put(case.resource, NAMESPACE, case.body)
    adapter = KubeAdapter(kube, NAMESPACE)
    for version in ("1.0.0", "1.1.0"):
        adapter.ensure_workload(md, version, f"s3://m/{version}", replicas=2)
    made = router_for(md.spec, NAMESPACE, md.metadata.name, kube)
    assert isinstance(made, ListRouteRouter)
    kube.calls.clear()
    return made


def expected_backends(case: Case, weights: dict[str, int]) -> list[Obj]:
    if case.router == "gatewayAPI":
        return [
            {"group": "", "kind": "Service", "name": f"fraud-{v.replace('.', '-')}", "port": 8080, "weight": w}
            for v, w in weights.items()
        ]
    return [
        {"destination": {"host": f"fraud-{v.replace('.', '-')}", "port": {"number": 8080}}, "weight": w}
        for v, w in weights.items()
    ]


def test_factory_picks_the_router_named_in_the_spec(kube: InMemoryKube) -> None:
    assert isinstance(router_for(make_md("gatewayAPI").spec, NAMESPACE, "fraud", kube), HTTPRouteRouter)
    assert isinstance(router_for(make_md("istio").spec, NAMESPACE, "fraud", kube), VirtualServiceRouter)


def test_set_weights_rewrites_only_the_managed_entry(case: Case, kube: InMemoryKube, router: ListRouteRouter) -> None:
    before = copy.deepcopy(case.stored(kube))
    assert router.set_weights({"1.0.0": 75, "1.1.0": 25}) is True

    after = case.stored(kube)
    assert case.managed(kube) == expected_backends(case, {"1.0.0": 75, "1.1.0": 25})
    # Everything but the managed backend list is as the user left it.
    expected = copy.deepcopy(before)
    expected["spec"][case.list_key][1][case.backends_key] = case.managed(kube)
    for doc in (expected, after):
        doc["metadata"].pop("resourceVersion")
        doc["metadata"].pop("generation")
    assert after == expected


def test_weights_read_back_by_version_and_no_write_when_unchanged(
    case: Case, kube: InMemoryKube, router: ListRouteRouter
) -> None:
    assert router.get_weights() == {"1.0.0": 100}
    router.set_weights({"1.0.0": 50, "1.1.0": 50})
    assert router.get_weights() == {"1.0.0": 50, "1.1.0": 50}
    assert router.verify_weights({"1.0.0": 50, "1.1.0": 50}) is True
    assert router.verify_weights({"1.0.0": 75, "1.1.0": 25}) is False

    writes = len(kube.writes())
    assert router.set_weights({"1.1.0": 50, "1.0.0": 50}) is False, "order does not matter"
    assert len(kube.writes()) == writes


def test_an_edited_route_is_set_back(case: Case, kube: InMemoryKube, router: ListRouteRouter) -> None:
    router.set_weights({"1.0.0": 75, "1.1.0": 25})
    entries = copy.deepcopy(case.stored(kube)["spec"][case.list_key])
    entries[1][case.backends_key] = expected_backends(case, {"1.0.0": 100})
    kube.edit(case.resource, NAMESPACE, case.name, {"spec": {case.list_key: entries}})
    assert router.verify_weights({"1.0.0": 75, "1.1.0": 25}) is False
    assert router.set_weights({"1.0.0": 75, "1.1.0": 25}) is True
    assert router.get_weights() == {"1.0.0": 75, "1.1.0": 25}


def test_finalize_sends_everything_to_stable(case: Case, kube: InMemoryKube, router: ListRouteRouter) -> None:
    router.set_weights({"1.0.0": 50, "1.1.0": 50})
    router.finalize("1.0.0")
    assert case.managed(kube) == expected_backends(case, {"1.0.0": 100})
    assert router.get_weights() == {"1.0.0": 100}
    writes = len(kube.writes())
    router.finalize("1.0.0")
    assert len(kube.writes()) == writes


def test_a_missing_route_object(case: Case, kube: InMemoryKube, router: ListRouteRouter) -> None:
    del kube.objects[(case.resource, NAMESPACE, case.name)]
    assert router.get_weights() is None
    assert router.verify_weights({"1.0.0": 100}) is False
    with pytest.raises(RouterError, match="not found"):
        router.set_weights({"1.0.0": 100})
    router.finalize("1.0.0")  # nothing to restore: no error, no write
    assert kube.writes() == []


def test_a_missing_managed_entry_is_an_error_not_a_guess(case: Case, kube: InMemoryKube) -> None:
    body = copy.deepcopy(case.body)
    body["spec"][case.list_key] = body["spec"][case.list_key][:1]
    kube.put(case.resource, NAMESPACE, body)
    router = router_for(make_md(case.router).spec, NAMESPACE, "fraud", kube)
    with pytest.raises(RouterError, match="'model'"):
        router.set_weights({"1.0.0": 100})
    assert kube.writes() == []


class EditingKube(InMemoryKube):
    """A user edits another rule of the route right after each of the operator's first ``edits`` reads."""

    def __init__(self, case: Case, edits: int) -> None:
        super().__init__()
        self.case = case
        self.edits = edits

    def get(self, resource: Resource, namespace: str, name: str) -> Obj | None:
        obj = super().get(resource, namespace, name)
        if resource == self.case.resource and self.edits > 0:
            self.edits -= 1
            entries = copy.deepcopy(self.objects[(resource, namespace, name)]["spec"][self.case.list_key])
            entries[0]["name"] = f"health-{self.edits}"
            self.edit(resource, namespace, name, {"spec": {self.case.list_key: entries}})
        return obj


def test_a_concurrent_edit_is_retried_from_a_fresh_read(case: Case) -> None:
    kube = EditingKube(case, edits=2)
    kube.put(case.resource, NAMESPACE, case.body)
    router = router_for(make_md(case.router).spec, NAMESPACE, "fraud", kube)

    assert router.set_weights({"1.0.0": 90, "1.1.0": 10}) is True
    patches = [c for c in kube.calls if c.verb == "patch"]
    assert len(patches) == 3, "two 409 Conflicts, then a write from a fresh read"
    stored = case.stored(kube)
    assert stored["spec"][case.list_key][0]["name"] == "health-0", "the user's concurrent edit survives"
    assert case.managed(kube) == expected_backends(case, {"1.0.0": 90, "1.1.0": 10})


def test_conflicts_that_persist_become_an_error(case: Case, kube: InMemoryKube, router: ListRouteRouter) -> None:
    kube.fail("patch", Conflict(409, "modified"), times=MAX_ATTEMPTS)
    with pytest.raises(RouterError, match="conflicting"):
        router.set_weights({"1.0.0": 90, "1.1.0": 10})
    assert len([c for c in kube.calls if c.verb == "patch"]) == MAX_ATTEMPTS


def test_relative_gateway_weights_read_as_percent(kube: InMemoryKube) -> None:
    body = copy.deepcopy(HTTP_ROUTE)
    body["spec"]["rules"][1]["backendRefs"] = [
        {"name": "fraud-1-0-0", "port": 8080},
        {"name": "fraud-1-1-0", "weight": 3},
    ]
    kube.put(HTTPROUTES, NAMESPACE, body)
    router = router_for(make_md().spec, NAMESPACE, "fraud", kube)
    # No Services to map names back: the backend names stand in for versions.
    assert router.get_weights() == {"fraud-1-0-0": 25, "fraud-1-1-0": 75}


def test_first_rule_when_no_rule_name(kube: InMemoryKube) -> None:
    md = make_md()
    assert md.spec.traffic.gateway_api is not None
    md.spec.traffic.gateway_api.rule_name = None
    kube.put(HTTPROUTES, NAMESPACE, HTTP_ROUTE)
    router_for(md.spec, NAMESPACE, "fraud", kube).set_weights({"1.1.0": 100})
    rules = kube.objects[(HTTPROUTES, NAMESPACE, "fraud-route")]["spec"]["rules"]
    assert [r["name"] for r in rules] == ["health", "model"]
    assert rules[0]["backendRefs"][0]["name"] == "fraud-1-1-0"
    assert rules[1] == HTTP_ROUTE["spec"]["rules"][1]


def test_istio_host_uses_subsets(kube: InMemoryKube) -> None:
    md = make_md("istio")
    assert md.spec.traffic.istio is not None
    md.spec.traffic.istio.host = "fraud.ml.svc.cluster.local"
    kube.put(VIRTUALSERVICES, NAMESPACE, VIRTUAL_SERVICE)
    body = md.model_dump(by_alias=True, mode="json", exclude_none=True)
    kube.put(MODELDEPLOYMENTS, NAMESPACE, {"metadata": body["metadata"], "spec": body["spec"]})  # owns the rule
    KubeAdapter(kube, NAMESPACE).ensure_workload(md, "1.1.0", "s3://x", replicas=1)
    router = router_for(md.spec, NAMESPACE, "fraud", kube)
    router.set_weights({"1.0.0": 80, "1.1.0": 20})
    route: list[dict[str, Any]] = kube.objects[(VIRTUALSERVICES, NAMESPACE, "fraud-vs")]["spec"]["http"][1]["route"]
    assert route == [
        {
            "destination": {"host": "fraud.ml.svc.cluster.local", "subset": "fraud-1-0-0", "port": {"number": 8080}},
            "weight": 80,
        },
        {
            "destination": {"host": "fraud.ml.svc.cluster.local", "subset": "fraud-1-1-0", "port": {"number": 8080}},
            "weight": 20,
        },
    ]
    assert router.get_weights() == {"fraud-1-0-0": 80, "1.1.0": 20}


@pytest.mark.parametrize("weights", [{}, {"a": 50, "b": 40}, {"a": 101, "b": -1}, {"a": 50.0, "b": 50}])
def test_invalid_splits_are_rejected_before_any_io(weights: dict[str, Any], kube: InMemoryKube) -> None:
    router = router_for(make_md().spec, NAMESPACE, "fraud", kube)
    with pytest.raises(ValueError, match="weight"):
        router.set_weights(weights)
    assert kube.calls == []


def test_observe_answers_readback_and_verdict_from_one_read(
    case: Case, kube: InMemoryKube, router: ListRouteRouter
) -> None:
    router.set_weights({"1.0.0": 90, "1.1.0": 10})
    before = len(kube.calls)
    assert router.observe({"1.0.0": 90, "1.1.0": 10})[:2] == ({"1.0.0": 90, "1.1.0": 10}, True)
    assert router.observe({"1.0.0": 100})[:2] == ({"1.0.0": 90, "fraud-1-1-0": 10}, False)
    calls = kube.calls[before:]
    assert [(c.verb, c.resource) for c in calls] == [("get", case.resource)] * 2, "no Service LIST, one GET each"


def test_observe_keeps_the_name_of_a_backend_it_was_not_asked_about(
    case: Case, kube: InMemoryKube, router: ListRouteRouter
) -> None:
    router.set_weights({"1.0.0": 50, "0.9.0": 50})
    weights, matches, _ = router.observe({"1.0.0": 100})
    assert weights == {"1.0.0": 50, "fraud-0-9-0": 50}
    assert matches is False


def test_observe_a_missing_route_object(case: Case, kube: InMemoryKube, router: ListRouteRouter) -> None:
    del kube.objects[(case.resource, NAMESPACE, case.name)]
    assert router.observe({"1.0.0": 100}) == (None, None, None)


def _parent_status(generation: int, **resolved: str) -> dict[str, Any]:
    conditions = [
        {"type": "Accepted", "status": "True", "reason": "Accepted", "observedGeneration": generation},
        {"type": "ResolvedRefs", "status": "True", "reason": "ResolvedRefs", "observedGeneration": generation,
         **resolved},
    ]  # fmt: skip
    return {
        "parents": [{"parentRef": {"name": "public-gw"}, "controllerName": "example.com/gw", "conditions": conditions}]
    }


def test_observe_reads_what_the_gateway_said_of_the_route_from_the_same_read(kube: InMemoryKube) -> None:
    case = CASES[0]
    md = make_md("gatewayAPI")
    kube.put(HTTPROUTES, NAMESPACE, copy.deepcopy(HTTP_ROUTE))
    router = router_for(md.spec, NAMESPACE, md.metadata.name, kube)
    wanted = {"1.0.0": 100}
    generation = int(case.stored(kube)["metadata"]["generation"])

    assert router.observe(wanted).acceptance == RouteAcceptance(
        Acceptance.PENDING, "Pending", "no status from the controller of Gateway ml/public-gw"
    )
    case.stored(kube)["status"] = _parent_status(generation - 1)  # the controller has not seen the last write
    assert f"has not reported Accepted for generation {generation}" in str(router.observe(wanted).acceptance)
    case.stored(kube)["status"] = _parent_status(generation)
    kube.calls.clear()
    seen = router.observe(wanted)
    assert seen.matches is True
    assert seen.acceptance is not None
    assert seen.acceptance.state == Acceptance.ACCEPTED
    assert [(c.verb, c.resource) for c in kube.calls] == [("get", HTTPROUTES)], "one GET for weights and status"
    bad = {"status": "False", "reason": "BackendNotFound", "message": "no fraud-1-0-0"}
    case.stored(kube)["status"] = _parent_status(generation, **bad)
    rejected = router.observe(wanted).acceptance
    assert rejected is not None
    assert (rejected.state, rejected.reason) == (Acceptance.REJECTED, "BackendNotFound")
    assert rejected.message.endswith("ResolvedRefs=False (BackendNotFound): no fraud-1-0-0")


def test_a_virtual_service_carries_no_acceptance(kube: InMemoryKube) -> None:
    md = make_md("istio")
    kube.put(VIRTUALSERVICES, NAMESPACE, copy.deepcopy(VIRTUAL_SERVICE))
    assert router_for(md.spec, NAMESPACE, md.metadata.name, kube).observe({"1.0.0": 100}).acceptance is None
