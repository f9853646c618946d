"""Who may ask what, decided by the real API server: the chart's ValidatingAdmissionPolicy on ModelRequests (the
approver is the name the server authenticated, approving for a team needs that team's group) and RBAC on creating
them (Kubernetes' ``edit`` role, which the chart's aggregated role extends).

The session's chart maps the teams of ``modelops.sandbox.install.SANDBOX_APPROVERS``: risk -> risk-approvers.
Users are client certificates of the local cluster (name and groups in the certificate, as an OIDC token carries
them on a real cluster).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from modelops.adapters.kube import MODELREQUESTS, KubeApiError, RestKubeApi
from modelops.sandbox.install import SANDBOX_APPROVERS
from plugins.cluster import KubeCluster

pytestmark = pytest.mark.integration


def request(action: str, by: str | None = None, team: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"modelDeployment": "shop", "action": action}
    if by is not None:
        spec["requestedBy"] = by
    if team is not None:
        spec["team"] = team
    return {"apiVersion": "modelops.io/v1alpha1", "kind": "ModelRequest",
            "metadata": {"generateName": f"shop-{action}-"}, "spec": spec}  # fmt: skip


class User:
    """A user of the local cluster, an editor of ``namespace`` unless ``editor=False``."""

    def __init__(self, kube: KubeCluster, namespace: str, name: str, groups: list[str], editor: bool = True) -> None:
        self.name, self.namespace = name, namespace
        if editor:
            kubeconfig = kube.cluster.editor_kubeconfig(name, groups, namespace)
        else:
            kubeconfig = kube.cluster.user_kubeconfig(f"{name}-no-rights", name, groups)
        self.client = kube.client(kubeconfig)
        self.api = RestKubeApi(self.client)

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        return self.api.create(MODELREQUESTS, self.namespace, body)

    def refused(self, body: dict[str, Any]) -> KubeApiError:
        with pytest.raises(KubeApiError) as caught:
            self.create(body)
        return caught.value


@pytest.fixture
def users(kube: KubeCluster) -> Iterator[dict[str, User]]:
    ns = kube.namespace("adm")
    made = {
        "rita": User(kube, ns, "rita", SANDBOX_APPROVERS["risk"]),
        "otto": User(kube, ns, "otto", ["developers"]),
        "vic": User(kube, ns, "vic", SANDBOX_APPROVERS["risk"], editor=False),
    }
    yield made
    for user in made.values():
        user.client.close()


def test_a_member_of_the_teams_group_approves_under_the_name_the_server_authenticated(users: dict[str, User]) -> None:
    created = users["rita"].create(request("approve", by="rita", team="risk"))
    assert created["spec"]["requestedBy"] == "rita"
    assert created["metadata"]["name"].startswith("shop-approve-")


def test_an_approval_from_outside_the_teams_group_is_refused_naming_the_groups(users: dict[str, User]) -> None:
    error = users["otto"].refused(request("approve", by="otto", team="risk"))
    assert error.status == 403
    assert "otto may not approve for team risk: approvers are members of risk-approvers" in error.message


def test_a_name_other_than_the_authenticated_one_is_refused(users: dict[str, User]) -> None:
    error = users["otto"].refused(request("approve", by="rita", team="risk"))
    assert "spec.requestedBy is rita but the API server authenticated you as otto" in error.message
    error = users["otto"].refused(request("promote", by="someone-else"))
    assert "authenticated you as otto" in error.message


def test_an_approval_must_carry_its_approver_and_a_team_no_group_maps_cannot_approve(users: dict[str, User]) -> None:
    error = users["rita"].refused(request("approve", team="risk"))
    assert error.status == 422
    assert "an approval names its approver: set spec.requestedBy to your user name (rita)" in error.message
    error = users["rita"].refused(request("approve", by="rita", team="legal"))
    assert "no group may approve for team legal" in error.message
    assert "(chart value approvals.teams)" in error.message


def test_other_requests_need_no_name_and_the_schema_still_applies(users: dict[str, User]) -> None:
    created = users["otto"].create(request("promote"))  # what an Argo CD action makes with its own credentials
    assert "requestedBy" not in created["spec"]
    error = users["otto"].refused(request("approve", by="otto"))  # no team
    assert error.status == 422
    assert "approve needs a team" in error.message


def test_a_request_cannot_be_changed_once_made(users: dict[str, User], kube: KubeCluster) -> None:
    rita = users["rita"]
    created = rita.create(request("approve", by="rita", team="risk"))
    name = created["metadata"]["name"]
    with pytest.raises(KubeApiError) as caught:  # editors may not even try: the role grants no update
        rita.api.patch(MODELREQUESTS, rita.namespace, name, {"spec": {"team": "product"}})
    assert caught.value.status == 403
    admin = kube.client()
    try:
        with pytest.raises(KubeApiError) as caught:  # and whoever may update is refused by the schema
            RestKubeApi(admin).patch(MODELREQUESTS, rita.namespace, name, {"spec": {"action": "promote"}})
    finally:
        admin.close()
    assert caught.value.status == 422
    assert "a request cannot be changed once made: create another one" in caught.value.message


def test_without_rbac_to_create_requests_even_a_team_member_is_forbidden(users: dict[str, User]) -> None:
    error = users["vic"].refused(request("approve", by="vic", team="risk"))
    assert error.status == 403
    assert 'cannot create resource "modelrequests"' in error.message
