"""The real garbage collector (kube-controller-manager) removes what the operator builds when its ModelDeployment
goes, through the ownerReference ``objects.py`` puts on every child, and leaves alone what another owner holds.

No operator runs here: the children are built by the operator's own builders and created as it creates them, and the
owners are real ModelDeployment objects (deleted before any finalizer of an operator could be added).
"""

from __future__ import annotations

from typing import Any

import pytest

from modelops.adapters.kube import (
    DEPLOYMENTS,
    MODELDEPLOYMENTS,
    SERVICES,
    Resource,
    RestKubeApi,
    build_deployment,
    build_service,
    owned_by,
)
from modelops.api.deployment import ModelDeployment
from modelops.core.naming import DEPLOYMENT_LABEL
from plugins.cluster import KubeCluster

from .conftest import eventually, model_deployment

pytestmark = pytest.mark.integration

REPLICASETS = Resource("apps", "v1", "replicasets", "ReplicaSet")


def create_md(admin: RestKubeApi, namespace: str, name: str) -> ModelDeployment:
    created = admin.create(MODELDEPLOYMENTS, namespace, model_deployment(name))
    return ModelDeployment.model_validate(created)


def names(admin: RestKubeApi, resource: Resource, namespace: str, labels: dict[str, str]) -> set[str]:
    return {o["metadata"]["name"] for o in admin.list(resource, namespace, labels)}


def test_children_go_with_their_model_deployment_and_others_stay(kube: KubeCluster, admin: RestKubeApi) -> None:
    namespace = kube.namespace("gc")
    doomed = create_md(admin, namespace, "fraud")
    keeper = create_md(admin, namespace, "churn")
    children: list[tuple[Resource, dict[str, Any]]] = [
        (DEPLOYMENTS, build_deployment(doomed, "v1", "s3://models/fraud/v1", replicas=1)),
        (SERVICES, build_service(doomed, "v1")),
        (DEPLOYMENTS, build_deployment(keeper, "v1", "s3://models/churn/v1", replicas=1)),
        (SERVICES, build_service(keeper, "v1")),
    ]
    for resource, body in children:
        created = admin.create(resource, namespace, body)
        assert created["metadata"]["ownerReferences"][0]["uid"] in {doomed.metadata.uid, keeper.metadata.uid}
    doomed_deployment = admin.get(DEPLOYMENTS, namespace, "fraud-v1")
    assert doomed_deployment is not None
    assert owned_by(doomed_deployment, doomed)
    # the Deployment controller works on it: its ReplicaSet is a grandchild the collector must find as well
    eventually(lambda: admin.list(REPLICASETS, namespace, {DEPLOYMENT_LABEL: "fraud"}), what="a ReplicaSet")

    admin.delete(MODELDEPLOYMENTS, namespace, "fraud", uid=doomed.metadata.uid)
    assert admin.get(MODELDEPLOYMENTS, namespace, "fraud") is None

    labels = {DEPLOYMENT_LABEL: "fraud"}

    def gone() -> bool:
        return not any(names(admin, r, namespace, labels) for r in (DEPLOYMENTS, SERVICES, REPLICASETS))

    eventually(gone, timeout=60, what="the garbage collector removing fraud's children")

    kept = {DEPLOYMENT_LABEL: "churn"}
    assert names(admin, DEPLOYMENTS, namespace, kept) == {"churn-v1"}
    assert names(admin, SERVICES, namespace, kept) == {"churn-v1"}
    survivor = admin.get(DEPLOYMENTS, namespace, "churn-v1")
    assert survivor is not None
    assert owned_by(survivor, keeper)
    assert survivor["metadata"].get("deletionTimestamp") is None
