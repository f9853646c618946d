"""The replicas router: weights become replica counts of the version Deployments (table in its docstring)."""

from __future__ import annotations

import pytest

from adapters.builders import NAMESPACE, make_md
from modelops.adapters.kube import DEPLOYMENTS, InMemoryKube, KubeAdapter, build_deployment
from modelops.adapters.routers import ReplicaRouter, RouterError, replica_split, router_for


@pytest.mark.parametrize(
    ("total", "weights", "replicas"),
    [
        (4, {"v1": 95, "v2": 5}, {"v1": 3, "v2": 1}),
        (10, {"v1": 75, "v2": 25}, {"v1": 7, "v2": 3}),
        (10, {"v1": 25, "v2": 75}, {"v1": 3, "v2": 7}),
        (4, {"v1": 50, "v2": 50}, {"v1": 2, "v2": 2}),
        (1, {"v1": 50, "v2": 50}, {"v1": 1, "v2": 1}),
        (4, {"v1": 0, "v2": 100}, {"v1": 0, "v2": 4}),
        (4, {"v1": 100}, {"v1": 4}),
    ],
)
def test_replica_split_table(total: int, weights: dict[str, int], replicas: dict[str, int]) -> None:
    assert replica_split(total, weights) == replicas


def test_three_versions_with_traffic_cannot_be_split() -> None:
    with pytest.raises(RouterError, match="two versions"):
        replica_split(4, {"a": 50, "b": 25, "c": 25})


def deployed(kube: InMemoryKube, *versions: str) -> ReplicaRouter:
    md = make_md("replicas")
    adapter = KubeAdapter(kube, NAMESPACE)
    for version in versions:
        adapter.ensure_workload(md, version, f"s3://m/{version}", replicas=md.spec.server.replicas)
    router = router_for(md.spec, NAMESPACE, md.metadata.name, kube)
    assert isinstance(router, ReplicaRouter)
    return router


def replicas(kube: InMemoryKube) -> dict[str, int]:
    return {n: o["spec"]["replicas"] for (r, _, n), o in kube.objects.items() if r == DEPLOYMENTS}


def test_weights_become_replica_counts_and_read_back(kube: InMemoryKube) -> None:
    router = deployed(kube, "1.0.0", "1.1.0")
    assert router.get_weights() == {"1.0.0": 0, "1.1.0": 0}

    assert router.set_weights({"1.0.0": 95, "1.1.0": 5}) is True
    assert replicas(kube) == {"fraud-1-0-0": 3, "fraud-1-1-0": 1}
    # The readback is the split the pods really get (coarse with 4 replicas).
    assert router.get_weights() == {"1.0.0": 75, "1.1.0": 25}
    assert router.verify_weights({"1.0.0": 95, "1.1.0": 5}) is True
    assert router.verify_weights({"1.0.0": 50, "1.1.0": 50}) is False

    writes = len(kube.writes())
    assert router.set_weights({"1.0.0": 95, "1.1.0": 5}) is False
    assert len(kube.writes()) == writes

    router.set_weights({"1.0.0": 50, "1.1.0": 50})
    assert replicas(kube) == {"fraud-1-0-0": 2, "fraud-1-1-0": 2}
    assert router.get_weights() == {"1.0.0": 50, "1.1.0": 50}


def test_other_versions_are_scaled_to_zero_and_finalize_restores_stable(kube: InMemoryKube) -> None:
    router = deployed(kube, "1.0.0", "1.1.0", "1.2.0")
    kube.edit(DEPLOYMENTS, NAMESPACE, "fraud-1-2-0", {"spec": {"replicas": 2}})
    router.set_weights({"1.0.0": 75, "1.1.0": 25})
    assert replicas(kube) == {"fraud-1-0-0": 3, "fraud-1-1-0": 1, "fraud-1-2-0": 0}

    router.finalize("1.0.0")
    assert replicas(kube) == {"fraud-1-0-0": 4, "fraud-1-1-0": 0, "fraud-1-2-0": 0}
    assert router.get_weights() == {"1.0.0": 100, "1.1.0": 0, "1.2.0": 0}


def test_a_users_deployment_is_not_scaled(kube: InMemoryKube) -> None:
    router = deployed(kube, "1.0.0")
    user = build_deployment(make_md("replicas"), "1.1.0", "s3://x", replicas=5)
    user["metadata"]["name"] = "fraud-1-1-0-mine"
    user["metadata"]["labels"]["app.kubernetes.io/managed-by"] = "helm"
    kube.put(DEPLOYMENTS, NAMESPACE, user)
    router.set_weights({"1.0.0": 100})
    assert replicas(kube) == {"fraud-1-0-0": 4, "fraud-1-1-0-mine": 5}


def test_missing_workloads(kube: InMemoryKube) -> None:
    router = deployed(kube)
    assert router.get_weights() is None
    assert router.verify_weights({"1.0.0": 100}) is False
    with pytest.raises(RouterError, match="create the workload first"):
        router.set_weights({"1.0.0": 100})
    router.finalize("1.0.0")
    assert kube.writes() == []


def test_observe_lists_the_deployments_once(kube: InMemoryKube) -> None:
    router = deployed(kube, "1.0.0", "1.1.0")
    router.set_weights({"1.0.0": 95, "1.1.0": 5})
    before = len(kube.calls)
    assert router.observe({"1.0.0": 95, "1.1.0": 5}) == ({"1.0.0": 75, "1.1.0": 25}, True, None)
    assert router.observe({"1.0.0": 50, "1.1.0": 50}) == ({"1.0.0": 75, "1.1.0": 25}, False, None)
    assert [c.verb for c in kube.calls[before:]] == ["list", "list"]


def test_observe_without_deployments(kube: InMemoryKube) -> None:
    router = router_for(make_md("replicas").spec, NAMESPACE, "fraud", kube)
    assert router.observe({"1.0.0": 100}) == (None, None, None)
