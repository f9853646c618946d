"""RestKubeApi over real HTTP, against kmock's KubernetesEmulator (until tests/plugins/apiserver.py is ready).

The emulator runs in the test's event loop; the synchronous client therefore runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

import kmock
import kubernetes.client
import pytest

from adapters.builders import NAMESPACE, make_md
from modelops.adapters.kube import (
    DEPLOYMENTS,
    HTTPROUTES,
    KubeAdapter,
    KubeApiError,
    RestKubeApi,
    as_kube_api,
)
from modelops.adapters.routers import router_for

T = TypeVar("T")

pytestmark = pytest.mark.integration


@pytest.fixture
def rest(kmock: kmock.KubernetesEmulator) -> RestKubeApi:
    with warnings.catch_warnings():  # kmock 0.8 reads its bundle with a deprecated importlib call
        warnings.simplefilter("ignore", DeprecationWarning)
        kmock.resources.load_bundled()
    kmock.resources["gateway.networking.k8s.io/v1/httproutes"] = kmock.ResourceInfo(kind="HTTPRoute", namespaced=True)
    config = kubernetes.client.Configuration(host=str(kmock.url).rstrip("/"))
    return RestKubeApi(kubernetes.client.ApiClient(config), timeout=5)


async def in_thread(fn: Callable[[], T]) -> T:
    return await asyncio.to_thread(fn)


def test_an_api_client_is_wrapped() -> None:
    api = as_kube_api(kubernetes.client.ApiClient(kubernetes.client.Configuration(host="http://127.0.0.1:1")))
    assert isinstance(api, RestKubeApi)


async def test_crud_through_the_kubernetes_client(rest: RestKubeApi) -> None:
    md = make_md()
    adapter = KubeAdapter(rest, NAMESPACE)

    def scenario() -> dict[str, Any]:
        assert rest.get(DEPLOYMENTS, NAMESPACE, "fraud-1-1-0") is None
        assert adapter.ensure_workload(md, "1.1.0", "s3://x", replicas=2) is True
        got = rest.get(DEPLOYMENTS, NAMESPACE, "fraud-1-1-0")
        assert got is not None
        assert got["spec"]["replicas"] == 2
        listed = rest.list(DEPLOYMENTS, NAMESPACE, {"modelops.io/version": "1.1.0"})
        assert [o["metadata"]["name"] for o in listed] == ["fraud-1-1-0"]
        assert rest.list(DEPLOYMENTS, NAMESPACE, {"modelops.io/version": "nope"}) == []
        rest.patch(DEPLOYMENTS, NAMESPACE, "fraud-1-1-0", {"spec": {"replicas": 3}})
        assert adapter.ensure_workload(md, "1.1.0", "s3://x", replicas=3) is False

        rest.create(
            HTTPROUTES,
            NAMESPACE,
            {
                "apiVersion": "gateway.networking.k8s.io/v1",
                "kind": "HTTPRoute",
                "metadata": {"name": "fraud-route", "namespace": NAMESPACE, "resourceVersion": "1"},
                "spec": {"rules": [{"name": "model", "backendRefs": [{"name": "fraud-1-0-0", "port": 8080}]}]},
            },
        )
        router = router_for(md.spec, NAMESPACE, "fraud", rest)
        assert router.set_weights({"1.0.0": 80, "1.1.0": 20}) is True
        weights = router.get_weights()

        assert adapter.delete_workload(md, "1.1.0") is True
        assert rest.get(DEPLOYMENTS, NAMESPACE, "fraud-1-1-0") is None
        return {"weights": weights}

    result = await in_thread(scenario)
    assert result["weights"] == {"fraud-1-0-0": 80, "1.1.0": 20}


async def test_errors_carry_the_status(rest: RestKubeApi, kmock: kmock.KubernetesEmulator) -> None:
    kmock["post", kmock.resource("apps", "v1", "deployments")] << 422 << {"message": "spec.replicas: Invalid value"}

    def create() -> None:
        rest.create(DEPLOYMENTS, NAMESPACE, {"metadata": {"name": "x"}})

    with pytest.raises(KubeApiError, match="Invalid value") as info:
        await in_thread(create)
    assert info.value.status == 422
