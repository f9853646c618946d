"""RestKubeApi over real HTTP, against the session's real kube-apiserver (the ``kube_cluster`` fixture).

tests/adapters/conftest.py defines a ``kube`` of its own (the in-memory fake), hence the other name for the cluster.
The ModelDeployment is created for real first: the children's ownerReference then points at a live owner, so the
garbage collector leaves them alone while the test looks at them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import kubernetes.client
import pytest

from adapters.builders import TRAFFIC
from modelops.adapters.kube import (
    DEPLOYMENTS,
    HTTPROUTES,
    MODELDEPLOYMENTS,
    SERVICES,
    KubeAdapter,
    KubeApiError,
    NotFound,
    RestKubeApi,
    as_kube_api,
)
from modelops.adapters.routers import router_for
from modelops.api.deployment import ModelDeployment
from plugins.cluster import KubeCluster

pytestmark = pytest.mark.integration


@pytest.fixture
def rest(kube_cluster: KubeCluster) -> Iterator[RestKubeApi]:
    client = kube_cluster.client()
    yield RestKubeApi(client, timeout=10)
    client.close()


@pytest.fixture
def namespace(kube_cluster: KubeCluster) -> str:
    return kube_cluster.namespace("rest")


def real_md(rest: RestKubeApi, namespace: str) -> ModelDeployment:
    """A ModelDeployment created through the API and read back (it has the server's uid and generation)."""
    body: dict[str, Any] = {
        "apiVersion": "modelops.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "fraud"},
        "spec": {
            "model": {"name": "fraud-model", "version": "1.1.0", "uri": "s3://models/fraud/1.1.0"},
            "server": {"image": "registry.local/server:1", "port": 8080, "replicas": 4},
            "traffic": TRAFFIC["gatewayAPI"],
        },
    }
    created = rest.create(MODELDEPLOYMENTS, namespace, body)
    return ModelDeployment.model_validate(created)


def test_an_api_client_is_wrapped() -> None:
    api = as_kube_api(kubernetes.client.ApiClient(kubernetes.client.Configuration(host="http://127.0.0.1:1")))
    assert isinstance(api, RestKubeApi)


def test_crud_through_the_kubernetes_client(rest: RestKubeApi, namespace: str) -> None:
    md = real_md(rest, namespace)
    assert md.metadata.uid
    adapter = KubeAdapter(rest, namespace)

    assert rest.get(DEPLOYMENTS, namespace, "fraud-1-1-0") is None
    assert adapter.ensure_workload(md, "1.1.0", "s3://x", replicas=2) is True
    got = rest.get(DEPLOYMENTS, namespace, "fraud-1-1-0")
    assert got is not None
    assert got["spec"]["replicas"] == 2
    assert got["metadata"]["ownerReferences"][0]["uid"] == md.metadata.uid
    assert rest.get(SERVICES, namespace, "fraud-1-1-0") is not None
    listed = rest.list(DEPLOYMENTS, namespace, {"modelops.io/version": "1.1.0"})
    assert [o["metadata"]["name"] for o in listed] == ["fraud-1-1-0"]
    assert rest.list(DEPLOYMENTS, namespace, {"modelops.io/version": "nope"}) == []
    rest.patch(DEPLOYMENTS, namespace, "fraud-1-1-0", {"spec": {"replicas": 3}})
    assert adapter.ensure_workload(md, "1.1.0", "s3://x", replicas=3) is False, "the server's defaults are no change"

    rest.create(
        HTTPROUTES,
        namespace,
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": "fraud-route"},
            "spec": {"rules": [{"name": "model", "backendRefs": [{"name": "fraud-1-0-0", "port": 8080}]}]},
        },
    )
    router = router_for(md.spec, namespace, "fraud", rest)
    assert router.set_weights({"1.0.0": 80, "1.1.0": 20}) is True
    route = rest.get(HTTPROUTES, namespace, "fraud-route")
    assert route is not None
    refs = route["spec"]["rules"][0]["backendRefs"]
    assert {(r["name"], r["weight"]) for r in refs} == {("fraud-1-0-0", 80), ("fraud-1-1-0", 20)}
    # 1.0.0 has no Service of this ModelDeployment: its backend is known by name only
    assert router.get_weights() == {"fraud-1-0-0": 80, "1.1.0": 20}

    assert adapter.delete_workload(md, "1.1.0") is True
    assert rest.get(DEPLOYMENTS, namespace, "fraud-1-1-0") is None
    assert rest.get(SERVICES, namespace, "fraud-1-1-0") is None
    rest.delete(DEPLOYMENTS, namespace, "fraud-1-1-0")  # already gone: a 404 on delete is no error


def test_errors_carry_the_status(rest: RestKubeApi, namespace: str) -> None:
    """The API server's own 422 for an invalid Deployment, and its 404 for an object in a missing namespace."""
    invalid = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"}, "spec": {"replicas": -1}}
    with pytest.raises(KubeApiError, match=r"spec\.replicas") as info:
        rest.create(DEPLOYMENTS, namespace, invalid)
    assert info.value.status == 422
    assert not isinstance(info.value, NotFound)

    with pytest.raises(NotFound) as missing:
        rest.patch(DEPLOYMENTS, namespace, "nothing-here", {"spec": {"replicas": 1}})
    assert missing.value.status == 404
