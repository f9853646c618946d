"""The istio router in host mode against the in-memory API: the DestinationRule it owns, written around the route.

``spec.traffic.istio.host`` set: destinations are ``{host, subset: <version's Service>, port}``, and the subsets are
defined by a DestinationRule named like the ModelDeployment, created and owned by the operator, with each subset
added before the VirtualService names it and removed only once no route weight does.
"""

from __future__ import annotations

import copy
import doctest
from typing import Any

import pytest

from adapters.builders import NAMESPACE, make_md
from modelops.adapters.kube import (
    DESTINATIONRULES,
    MODELDEPLOYMENTS,
    VIRTUALSERVICES,
    InMemoryKube,
    KubeAdapter,
    NotOwnedError,
    Obj,
    Resource,
    build_deployment,
    build_job,
    build_service,
    owned_by,
    owner_labels,
    owner_reference,
)
from modelops.adapters.routers import RouterError, VirtualServiceRouter, istio, router_for
from modelops.adapters.routers.istio import build_destination_rule, subset
from modelops.api.deployment import ModelDeployment

from .test_route_routers import VIRTUAL_SERVICE

HOST = "fraud.ml.svc.cluster.local"


def host_md() -> ModelDeployment:
    md = make_md("istio")
    assert md.spec.traffic.istio is not None
    md.spec.traffic.istio.host = HOST
    return md


def stored_md(kube: InMemoryKube, md: ModelDeployment) -> ModelDeployment:
    """``md`` as the API holds it (the fake gives it a uid of its own)."""
    body = md.model_dump(by_alias=True, mode="json", exclude_none=True)
    body["metadata"].pop("uid", None)
    kept = kube.put(MODELDEPLOYMENTS, NAMESPACE, {"metadata": body["metadata"], "spec": body["spec"]})
    return ModelDeployment.model_validate({"metadata": kept["metadata"], "spec": kept["spec"]})


@pytest.fixture
def md(kube: InMemoryKube) -> ModelDeployment:
    """The ModelDeployment as the API holds it, its VirtualService, and both versions' workloads."""
    kube.put(VIRTUALSERVICES, NAMESPACE, VIRTUAL_SERVICE)
    md = stored_md(kube, host_md())
    for version in ("1.0.0", "1.1.0"):
        KubeAdapter(kube, NAMESPACE).ensure_workload(md, version, f"s3://m/{version}", replicas=1)
    kube.calls.clear()
    return md


@pytest.fixture
def router(kube: InMemoryKube, md: ModelDeployment) -> VirtualServiceRouter:
    made = router_for(md.spec, NAMESPACE, md.metadata.name, kube)
    assert isinstance(made, VirtualServiceRouter)
    return made


def rule(kube: InMemoryKube) -> Obj:
    return kube.objects[(DESTINATIONRULES, NAMESPACE, "fraud")]


def route(kube: InMemoryKube) -> list[Obj]:
    return list(kube.objects[(VIRTUALSERVICES, NAMESPACE, "fraud-vs")]["spec"]["http"][1]["route"])


def subsets_of(kube: InMemoryKube) -> list[str]:
    return [s["name"] for s in rule(kube)["spec"]["subsets"]]


def test_a_subset_selects_the_pods_of_one_version_by_the_labels_they_carry(md: ModelDeployment) -> None:
    pod_labels = build_deployment(md, "1.1.0", "s3://m", replicas=1)["spec"]["template"]["metadata"]["labels"]
    one = subset("fraud", "1.1.0")
    assert one["name"] == build_service(md, "1.1.0")["metadata"]["name"] == "fraud-1-1-0"
    assert one["labels"].items() <= pod_labels.items()
    other = build_deployment(md, "1.0.0", "s3://m", replicas=1)["spec"]["template"]["metadata"]["labels"]
    assert not one["labels"].items() <= other.items(), "and not the pods of another version"
    gate = build_job(md, "fraud-1-1-0-holdout", {}, job_labels={"modelops.io/version": "1.1.0"}, env={})
    gate_pod = gate["spec"]["template"]["metadata"]["labels"]
    assert not one["labels"].items() <= gate_pod.items(), "nor a gate Job's pod of the same version"
    selector = build_service(md, "1.1.0")["spec"]["selector"]
    assert one["labels"].items() <= selector.items(), "no pod the version's Service does not select"


def test_the_rule_is_the_model_deployments_child(md: ModelDeployment) -> None:
    body = build_destination_rule(md, HOST, [subset("fraud", "1.0.0")])
    assert body == {
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": {
            "name": "fraud",
            "namespace": NAMESPACE,
            "labels": owner_labels(md),
            "ownerReferences": [owner_reference(md)],
        },
        "spec": {"host": HOST, "subsets": [subset("fraud", "1.0.0")]},
    }
    assert owned_by(body, md)


def test_set_weights_creates_the_rule_and_routes_by_subset(
    kube: InMemoryKube, md: ModelDeployment, router: VirtualServiceRouter
) -> None:
    assert router.set_weights({"1.0.0": 80, "1.1.0": 20}) is True
    assert route(kube) == [
        {"destination": {"host": HOST, "subset": "fraud-1-0-0", "port": {"number": 8080}}, "weight": 80},
        {"destination": {"host": HOST, "subset": "fraud-1-1-0", "port": {"number": 8080}}, "weight": 20},
    ]
    stored = rule(kube)
    assert owned_by(stored, md)
    assert stored["spec"] == {"host": HOST, "subsets": [subset("fraud", "1.0.0"), subset("fraud", "1.1.0")]}
    assert router.observe({"1.0.0": 80, "1.1.0": 20})[:2] == ({"1.0.0": 80, "1.1.0": 20}, True)
    assert router.verify_weights({"1.0.0": 80, "1.1.0": 20}) is True

    writes = len(kube.writes())
    assert router.set_weights({"1.1.0": 20, "1.0.0": 80}) is False, "nothing to change: nothing written"
    assert len(kube.writes()) == writes


def test_the_first_split_costs_one_create_of_the_rule_and_one_patch_of_the_route(
    kube: InMemoryKube, router: VirtualServiceRouter
) -> None:
    router.set_weights({"1.1.0": 10, "1.0.0": 90})
    assert [(c.verb, c.resource) for c in kube.writes()] == [("create", DESTINATIONRULES), ("patch", VIRTUALSERVICES)]
    assert subsets_of(kube) == ["fraud-1-0-0", "fraud-1-1-0"], "by name, whatever the order of the split"


class Watching(InMemoryKube):
    """Checks, after every write, that each subset the managed route names is defined in the rule; keeps the
    subsets of each version of the rule and the route."""

    def __init__(self) -> None:
        super().__init__()
        self.history: list[tuple[str, list[str]]] = []

    def _store(self, resource: Resource, namespace: str, obj: Obj, previous: Obj | None) -> Obj:
        stored = super()._store(resource, namespace, obj, previous)
        named = route_subsets(self)
        defined = rule_subsets(self)
        if resource == VIRTUALSERVICES:
            self.history.append(("route", named))
        if resource == DESTINATIONRULES:
            self.history.append(("rule", defined))
        assert set(named) <= set(defined), f"the route names {named}, the rule defines only {defined}"
        return stored


def route_subsets(kube: InMemoryKube) -> list[str]:
    vs = kube.objects.get((VIRTUALSERVICES, NAMESPACE, "fraud-vs"))
    entries = ((vs or {}).get("spec") or {}).get("http") or []
    return [d["destination"]["subset"] for d in entries[1]["route"] if "subset" in d["destination"]] if entries else []


def rule_subsets(kube: InMemoryKube) -> list[str]:
    dr = kube.objects.get((DESTINATIONRULES, NAMESPACE, "fraud"))
    return [s["name"] for s in ((dr or {}).get("spec") or {}).get("subsets") or []]


def test_subsets_come_before_the_route_names_them_and_go_after_it_stops() -> None:
    kube = Watching()
    kube.put(VIRTUALSERVICES, NAMESPACE, VIRTUAL_SERVICE)
    md = stored_md(kube, host_md())
    router = router_for(md.spec, NAMESPACE, "fraud", kube)
    kube.history.clear()
    for weights in ({"1.0.0": 100}, {"1.0.0": 90, "1.1.0": 10}, {"1.0.0": 0, "1.1.0": 100}, {"1.1.0": 100}):
        router.set_weights(weights)
    v1, v2 = "fraud-1-0-0", "fraud-1-1-0"
    assert kube.history == [
        ("rule", [v1]),  # created for the first split
        ("route", [v1]),
        ("rule", [v1, v2]),  # the candidate's subset, before the route names it
        ("route", [v1, v2]),
        ("route", [v1, v2]),  # v1 at 0 is still named
        ("route", [v2]),
        ("rule", [v2]),  # v1's subset, once the route no longer names it
    ]


def test_what_the_operator_does_not_manage_in_its_rule_is_kept(
    kube: InMemoryKube, router: VirtualServiceRouter
) -> None:
    router.set_weights({"1.0.0": 100})
    policy = {"tls": {"mode": "ISTIO_MUTUAL"}}
    edited = copy.deepcopy(rule(kube)["spec"])
    edited["trafficPolicy"] = policy
    edited["subsets"][0]["trafficPolicy"] = {"loadBalancer": {"simple": "LEAST_REQUEST"}}
    kube.edit(DESTINATIONRULES, NAMESPACE, "fraud", {"metadata": {"labels": {"team": "mesh"}}, "spec": edited})
    router.set_weights({"1.0.0": 50, "1.1.0": 50})
    stored = rule(kube)
    assert stored["spec"]["trafficPolicy"] == policy
    assert stored["spec"]["subsets"][0]["trafficPolicy"] == {"loadBalancer": {"simple": "LEAST_REQUEST"}}
    assert stored["metadata"]["labels"]["team"] == "mesh"
    assert subsets_of(kube) == ["fraud-1-0-0", "fraud-1-1-0"]


FOREIGN: dict[str, dict[str, Any]] = {
    "a user's": {},
    "with the owner labels copied": {"labels": True},
    "with an ownerReference only": {"owner": True},
    "owned by an earlier ModelDeployment of the name": {"labels": True, "owner": True, "uid": "old-uid"},
}


@pytest.mark.parametrize("how", FOREIGN.values(), ids=FOREIGN.keys())
def test_a_rule_of_that_name_that_is_not_the_operators_is_never_touched(
    kube: InMemoryKube, md: ModelDeployment, router: VirtualServiceRouter, how: dict[str, Any]
) -> None:
    metadata: Obj = {"name": "fraud"}
    if how.get("labels"):
        metadata["labels"] = owner_labels(md)
    if how.get("owner"):
        metadata["ownerReferences"] = [{**owner_reference(md), "uid": how.get("uid", md.metadata.uid)}]
    foreign = {"metadata": metadata, "spec": {"host": HOST, "subsets": [{"name": "fraud-1-0-0", "labels": {}}]}}
    kube.put(DESTINATIONRULES, NAMESPACE, foreign)
    before = copy.deepcopy(rule(kube))
    vs_before = route(kube)
    kube.calls.clear()

    with pytest.raises(NotOwnedError, match=r"^DestinationRule ml/fraud exists and does not belong to ModelDeployment"):
        router.set_weights({"1.0.0": 90, "1.1.0": 10})
    assert kube.writes() == [], "neither the rule nor the route was written"
    assert rule(kube) == before
    assert route(kube) == vs_before
    with pytest.raises(NotOwnedError):
        router.finalize("1.0.0")
    assert kube.writes() == []


def test_a_missing_or_edited_subset_is_reported_and_written_back(
    kube: InMemoryKube, router: VirtualServiceRouter
) -> None:
    wanted = {"1.0.0": 90, "1.1.0": 10}
    router.set_weights(wanted)
    before = len(kube.calls)
    assert router.observe(wanted)[:2] == ({"1.0.0": 90, "1.1.0": 10}, True)
    assert [(c.verb, c.resource) for c in kube.calls[before:]] == [("get", VIRTUALSERVICES), ("get", DESTINATIONRULES)]

    edited = copy.deepcopy(rule(kube)["spec"]["subsets"])
    edited[1]["labels"]["modelops.io/version"] = "9.9.9"
    kube.edit(DESTINATIONRULES, NAMESPACE, "fraud", {"spec": {"subsets": edited}})
    note = "(subset fraud-1-1-0 missing or changed in DestinationRule fraud)"
    assert router.observe(wanted)[:2] == ({"1.0.0": 90, f"1.1.0 {note}": 10}, False)
    assert router.verify_weights(wanted) is False
    assert router.set_weights(wanted) is True, "the rule is written back, though the route is as wanted"
    assert router.observe(wanted)[:2] == (wanted, True)

    del kube.objects[(DESTINATIONRULES, NAMESPACE, "fraud")]
    weights, matches = router.observe(wanted)[:2]
    assert matches is False
    assert set(weights or {}) == {f"1.0.0 {note.replace('1-1-0', '1-0-0')}", f"1.1.0 {note}"}
    router.set_weights(wanted)
    assert subsets_of(kube) == ["fraud-1-0-0", "fraud-1-1-0"]

    kube.edit(DESTINATIONRULES, NAMESPACE, "fraud", {"spec": {"host": "other.ml.svc.cluster.local"}})
    assert router.observe(wanted)[1] is False, "subsets of another host define nothing for this one"
    router.set_weights(wanted)
    assert rule(kube)["spec"]["host"] == HOST


def test_finalize_leaves_only_the_stable_subset(kube: InMemoryKube, router: VirtualServiceRouter) -> None:
    router.set_weights({"1.0.0": 50, "1.1.0": 50})
    router.finalize("1.0.0")
    assert [d["destination"]["subset"] for d in route(kube)] == ["fraud-1-0-0"]
    assert subsets_of(kube) == ["fraud-1-0-0"]


def test_a_replacement_is_reached_through_its_own_service(kube: InMemoryKube, router: VirtualServiceRouter) -> None:
    """A retirement drains to another ModelDeployment's Service: this rule selects none of its Pods."""
    router.add_backends({"next/2.0.0": "next-2-0-0"})
    router.set_weights({"1.0.0": 50, "next/2.0.0": 50})
    assert route(kube) == [
        {"destination": {"host": HOST, "subset": "fraud-1-0-0", "port": {"number": 8080}}, "weight": 50},
        {"destination": {"host": "next-2-0-0", "port": {"number": 8080}}, "weight": 50},
    ]
    assert subsets_of(kube) == ["fraud-1-0-0"]
    assert router.observe({"1.0.0": 50, "next/2.0.0": 50})[:2] == ({"1.0.0": 50, "next/2.0.0": 50}, True)


def test_without_a_host_no_rule_is_read_or_written(kube: InMemoryKube) -> None:
    kube.put(VIRTUALSERVICES, NAMESPACE, VIRTUAL_SERVICE)
    router = router_for(make_md("istio").spec, NAMESPACE, "fraud", kube)
    router.set_weights({"1.0.0": 90, "1.1.0": 10})
    router.observe({"1.0.0": 90, "1.1.0": 10})
    router.finalize("1.0.0")
    assert {c.resource for c in kube.calls} == {VIRTUALSERVICES}


def test_without_its_model_deployment_the_rule_has_no_owner(kube: InMemoryKube) -> None:
    kube.put(VIRTUALSERVICES, NAMESPACE, VIRTUAL_SERVICE)
    router = router_for(host_md().spec, NAMESPACE, "fraud", kube)
    with pytest.raises(RouterError, match="ModelDeployment ml/fraud not found"):
        router.set_weights({"1.0.0": 100})
    assert kube.writes() == []


def test_the_docstring_examples() -> None:
    result = doctest.testmod(istio, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
