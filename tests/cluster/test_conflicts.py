"""Optimistic concurrency as the real API server does it: a write carrying a stale resourceVersion is 409 Conflict,
and RestKubeApi raises it as ``Conflict``, the error the operator's status writes and route writes retry on."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import kubernetes
import pytest
from kubernetes.client.exceptions import ApiException

from modelops.adapters.kube import MODELDEPLOYMENTS, Conflict, KubeApiError, RestKubeApi
from plugins.cluster import KubeCluster

from .conftest import model_deployment

pytestmark = pytest.mark.integration


@pytest.fixture
def operator_api(kube: KubeCluster) -> Iterator[RestKubeApi]:
    """As the operator writes: the chart's ServiceAccount (it may patch ModelDeployments and their status)."""
    client = kube.client(kube.operator_kubeconfig)
    yield RestKubeApi(client, timeout=10)
    client.close()


@pytest.fixture
def stale(kube: KubeCluster, admin: RestKubeApi) -> tuple[str, dict[str, Any], str]:
    """A ModelDeployment changed by someone else after it was read: (namespace, the object as read, current rv)."""
    namespace = kube.namespace("conflict")
    created = admin.create(MODELDEPLOYMENTS, namespace, model_deployment("fraud"))
    changed = admin.patch(MODELDEPLOYMENTS, namespace, "fraud", {"spec": {"server": {"replicas": 2}}})
    assert changed["metadata"]["resourceVersion"] != created["metadata"]["resourceVersion"]
    return namespace, created, changed["metadata"]["resourceVersion"]


def test_a_status_write_with_a_stale_resource_version_is_a_conflict(
    stale: tuple[str, dict[str, Any], str], operator_api: RestKubeApi, admin: RestKubeApi
) -> None:
    namespace, read, current = stale
    write = {"status": {"phase": "Promoted", "observedGeneration": 1}}

    with pytest.raises(Conflict) as caught:
        operator_api.patch(
            MODELDEPLOYMENTS,
            namespace,
            "fraud",
            {**write, "metadata": {"resourceVersion": read["metadata"]["resourceVersion"]}},
            subresource="status",
        )
    assert isinstance(caught.value, KubeApiError)
    assert caught.value.status == 409
    assert "the object has been modified" in caught.value.message
    fresh = admin.get(MODELDEPLOYMENTS, namespace, "fraud")
    assert fresh is not None
    assert "phase" not in (fresh.get("status") or {}), "a refused write changed nothing"

    # The same write with the resourceVersion of now goes through: it was the staleness that was refused.
    written = operator_api.patch(
        MODELDEPLOYMENTS, namespace, "fraud", {**write, "metadata": {"resourceVersion": current}}, subresource="status"
    )
    assert written["status"]["phase"] == "Promoted"


def test_a_spec_patch_with_a_stale_resource_version_is_a_conflict(
    stale: tuple[str, dict[str, Any], str], operator_api: RestKubeApi
) -> None:
    namespace, read, _ = stale
    patch = {"metadata": {"resourceVersion": read["metadata"]["resourceVersion"]}, "spec": {"server": {"replicas": 3}}}
    with pytest.raises(Conflict) as caught:
        operator_api.patch(MODELDEPLOYMENTS, namespace, "fraud", patch)
    assert caught.value.status == 409


def test_an_update_with_a_stale_resource_version_is_a_conflict(
    kube: KubeCluster, stale: tuple[str, dict[str, Any], str]
) -> None:
    """A whole-object update (PUT) through the plain client: the server's answer is the same 409."""
    namespace, read, _ = stale
    client = kube.client()
    try:
        api = kubernetes.client.CustomObjectsApi(client)
        body = {**read, "spec": {**read["spec"], "server": {**read["spec"]["server"], "replicas": 5}}}
        with pytest.raises(ApiException) as caught:
            api.replace_namespaced_custom_object(
                MODELDEPLOYMENTS.group, MODELDEPLOYMENTS.version, namespace, MODELDEPLOYMENTS.plural, "fraud", body
            )
        assert caught.value.status == 409
        assert '"reason":"Conflict"' in str(caught.value.body).replace(" ", "")
    finally:
        client.close()
