"""The chart's RBAC as the real authorizer applies it to the operator's ServiceAccount token: what the chart grants
is allowed, anything else is 403 Forbidden, through RestKubeApi (as ``KubeApiError``, never mistaken for a 404) and
through the plain ``kubernetes`` client."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import kubernetes
import pytest
from kubernetes.client.exceptions import ApiException

from modelops.adapters.kube import DEPLOYMENTS, MODELDEPLOYMENTS, KubeApiError, NotFound, Resource, RestKubeApi
from plugins.cluster import KubeCluster

from .conftest import model_deployment

pytestmark = pytest.mark.integration

SECRETS = Resource("", "v1", "secrets", "Secret")
CONFIGMAPS = Resource("", "v1", "configmaps", "ConfigMap")

Triple = tuple[str, str, str]  # (API group, resource[/subresource], verb)

#: Never granted by the chart (in either install mode): each must be refused.
NOT_GRANTED: list[Triple] = [
    ("", "secrets", "get"),
    ("", "secrets", "list"),
    ("", "configmaps", "get"),
    ("", "namespaces", "delete"),
    ("", "namespaces", "create"),
    ("", "pods", "delete"),
    ("", "pods/exec", "create"),
    ("", "serviceaccounts/token", "create"),
    ("modelops.io", "modeldeployments", "create"),
    ("modelops.io", "modeldeployments", "update"),
    ("modelops.io", "modelretirements", "delete"),
    ("modelops.io", "modelrequests", "create"),
    ("modelops.io", "modelrequests", "delete"),
    ("apps", "deployments", "deletecollection"),
    ("apps", "replicasets", "delete"),
    ("batch", "jobs", "patch"),
    ("rbac.authorization.k8s.io", "clusterroles", "create"),
    ("rbac.authorization.k8s.io", "clusterrolebindings", "create"),
    ("apiextensions.k8s.io", "customresourcedefinitions", "delete"),
]


@pytest.fixture
def namespace(kube: KubeCluster) -> str:
    return kube.namespace("rbac")


@pytest.fixture
def operator_client(kube: KubeCluster) -> Iterator[Any]:
    client = kube.client(kube.operator_kubeconfig)
    yield client
    client.close()


@pytest.fixture
def operator_api(operator_client: Any) -> RestKubeApi:
    return RestKubeApi(operator_client, timeout=10)


def granted(kube: KubeCluster) -> set[Triple]:
    """What the chart's ClusterRole(s) bound to the operator's ServiceAccount grant, read from the cluster."""
    client = kube.client()
    try:
        rbac = kubernetes.client.RbacAuthorizationV1Api(client)
        account = (kube.installation.namespace, kube.installation.service_account)
        roles = {
            b.role_ref.name
            for b in rbac.list_cluster_role_binding().items
            if any((s.kind, s.namespace, s.name) == ("ServiceAccount", *account) for s in b.subjects or [])
        }
        triples: set[Triple] = set()
        for name in roles:
            for rule in rbac.read_cluster_role(name).rules or []:
                triples |= {
                    (g, r, v) for g in rule.api_groups or [] for r in rule.resources or [] for v in rule.verbs or []
                }
        return triples
    finally:
        client.close()


def can_i(operator_client: Any, namespace: str, triple: Triple) -> bool:
    """A SelfSubjectAccessReview made with the operator's own token: the authorizer's verdict for it."""
    group, full, verb = triple
    resource, _, subresource = full.partition("/")
    review = kubernetes.client.V1SelfSubjectAccessReview(
        spec=kubernetes.client.V1SelfSubjectAccessReviewSpec(
            resource_attributes=kubernetes.client.V1ResourceAttributes(
                group=group, resource=resource, subresource=subresource or None, verb=verb, namespace=namespace
            )
        )
    )
    answer = kubernetes.client.AuthorizationV1Api(operator_client).create_self_subject_access_review(review)
    return bool(answer.status.allowed)


def test_the_authorizer_allows_exactly_what_the_chart_grants(
    kube: KubeCluster, operator_client: Any, namespace: str
) -> None:
    grants = granted(kube)
    assert ("modelops.io", "modeldeployments/status", "patch") in grants, grants
    assert not set(NOT_GRANTED) & grants, "a triple of NOT_GRANTED is granted after all: fix the list or the chart"
    refused = sorted(t for t in grants if not can_i(operator_client, namespace, t))
    assert refused == [], f"granted by the chart, refused by the API server: {refused}"
    allowed = sorted(t for t in NOT_GRANTED if can_i(operator_client, namespace, t))
    assert allowed == [], f"not in the chart, allowed by the API server: {allowed}"


def test_kubectl_auth_can_i_agrees(kube: KubeCluster, namespace: str) -> None:
    def can_i(*args: str) -> str:
        return kube.cluster.kubectl(
            "auth", "can-i", *args, f"--namespace={namespace}", kubeconfig=kube.operator_kubeconfig, check=False
        ).strip()

    assert can_i("patch", "modeldeployments.modelops.io", "--subresource=status") == "yes"
    assert can_i("create", "deployments.apps") == "yes"
    assert can_i("get", "secrets") == "no"
    assert can_i("delete", "namespaces") == "no"


def test_a_refused_request_is_403_through_rest_kube_api(
    kube: KubeCluster, admin: RestKubeApi, operator_api: RestKubeApi, namespace: str
) -> None:
    log = kube.requests()
    admin.create(SECRETS, namespace, {"metadata": {"name": "credentials"}, "stringData": {"token": "x"}})
    with pytest.raises(KubeApiError) as read:
        operator_api.get(SECRETS, namespace, "credentials")  # get answers None for a 404: a 403 must raise
    assert read.value.status == 403
    assert not isinstance(read.value, NotFound)
    assert "forbidden" in read.value.message
    assert kube.operator_user in read.value.message
    for call in (
        lambda: operator_api.list(SECRETS, namespace),
        lambda: operator_api.get(CONFIGMAPS, namespace, "anything"),
        lambda: operator_api.create(MODELDEPLOYMENTS, namespace, model_deployment("fraud")),
    ):
        with pytest.raises(KubeApiError) as caught:
            call()
        assert caught.value.status == 403, caught.value

    refused = log.matching(user=kube.operator_user, status=403, namespace=namespace)
    assert {(r.verb, r.resource) for r in refused} == {
        ("get", "secrets"),
        ("list", "secrets"),
        ("get", "configmaps"),
        ("create", "modeldeployments"),
    }
    assert admin.get(MODELDEPLOYMENTS, namespace, "fraud") is None


def test_a_refused_request_is_403_through_the_plain_client(
    kube: KubeCluster, operator_client: Any, namespace: str
) -> None:
    core = kubernetes.client.CoreV1Api(operator_client)
    with pytest.raises(ApiException) as deleting:
        core.delete_namespace(namespace)
    assert deleting.value.status == 403
    with pytest.raises(ApiException) as reading:
        core.list_namespaced_secret(namespace)
    assert reading.value.status == 403
    phase = kube.cluster.kubectl("get", "namespace", namespace, "-o", "jsonpath={.status.phase}")
    assert phase == "Active", "the namespace is still there"


def test_what_the_chart_grants_goes_through(admin: RestKubeApi, operator_api: RestKubeApi, namespace: str) -> None:
    admin.create(MODELDEPLOYMENTS, namespace, model_deployment("fraud"))
    assert operator_api.list(DEPLOYMENTS, namespace) == []
    assert operator_api.get(MODELDEPLOYMENTS, namespace, "missing") is None, "a 404 is no refusal"
    written = operator_api.patch(
        MODELDEPLOYMENTS, namespace, "fraud", {"status": {"phase": "Promoted"}}, subresource="status"
    )
    assert written["status"]["phase"] == "Promoted"
