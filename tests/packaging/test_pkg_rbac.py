"""The least-privilege checker (modelops.sandbox.rbac) on synthetic request logs, and the chart's roles against
the operator's documented API use. The integration tests feed the same checker the emulator's real request log."""

from __future__ import annotations

from typing import Any

import pytest
from pkg_support import render

from modelops.sandbox.rbac import Allowance, ApiRequest, Grant, bound_roles, compare, grants_from_roles, kube_verb


def _role(
    rules: list[dict[str, Any]], kind: str = "ClusterRole", namespace: str | None = None, name: str = "op"
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    return {"kind": kind, "metadata": meta, "rules": rules}


def _rule(group: str, resources: list[str], verbs: list[str]) -> dict[str, Any]:
    return {"apiGroups": [group], "resources": resources, "verbs": verbs}


def _req(verb: str, group: str, resource: str, subresource: str = "", namespace: str | None = "ns") -> dict[str, Any]:
    return {"verb": verb, "group": group, "resource": resource, "subresource": subresource, "namespace": namespace}


ROLE = _role(
    [
        _rule("apps", ["deployments"], ["get", "create"]),
        _rule("modelops.io", ["modeldeployments/status"], ["patch"]),
    ]
)


def test_exact_match_is_ok() -> None:
    log = [
        _req("get", "apps", "deployments"),
        _req("create", "apps", "deployments", namespace="other"),
        _req("patch", "modelops.io", "modeldeployments", "status"),
    ]
    report = compare(log, [ROLE])
    assert report.ok, report.explain()


def test_request_not_granted() -> None:
    log = [
        _req("get", "apps", "deployments"),
        _req("create", "apps", "deployments"),
        _req("patch", "modelops.io", "modeldeployments", "status"),
        _req("delete", "apps", "deployments"),
        _req("patch", "modelops.io", "modeldeployments"),  # the main resource, not the status subresource
    ]
    report = compare(log, [ROLE])
    assert report.not_granted == [
        ApiRequest("delete", "apps", "deployments", "", "ns"),
        ApiRequest("patch", "modelops.io", "modeldeployments", "", "ns"),
    ]
    assert report.unused == []
    assert not report.ok
    assert "request not granted" in report.explain()


def test_grant_never_used() -> None:
    report = compare([_req("get", "apps", "deployments")], [ROLE])
    assert report.not_granted == []
    assert report.unused == [
        Grant("apps", "deployments", "create"),
        Grant("modelops.io", "modeldeployments/status", "patch"),
    ]


def test_allowance_covers_a_rare_path_and_must_stay_needed() -> None:
    rare = Allowance("apps", "deployments", "create", "only when a candidate's Deployment is missing")
    report = compare(
        [_req("get", "apps", "deployments"), _req("patch", "modelops.io", "modeldeployments", "status")], [ROLE], [rare]
    )
    assert report.ok, report.explain()
    # Once the tests do exercise the path, the allowance is flagged as unneeded.
    log = [
        _req("get", "apps", "deployments"),
        _req("create", "apps", "deployments"),
        _req("patch", "modelops.io", "modeldeployments", "status"),
    ]
    assert compare(log, [ROLE], [rare]).unneeded_allowances == [rare]
    # An allowance for something the role does not grant at all is stale too.
    ghost = Allowance("batch", "jobs", "delete", "gone")
    assert compare(log, [ROLE], [ghost]).unneeded_allowances == [ghost]


def test_allowance_needs_a_reason() -> None:
    with pytest.raises(ValueError, match="reason"):
        Allowance("apps", "deployments", "create", "  ")


def test_role_grants_only_in_its_namespace() -> None:
    role = _role([_rule("", ["services"], ["get"])], kind="Role", namespace="team-a")
    report = compare(
        [_req("get", "", "services", namespace="team-a"), _req("get", "", "services", namespace="team-b")], [role]
    )
    assert report.not_granted == [ApiRequest("get", "", "services", "", "team-b")]
    # A cluster-scoped (or all-namespaces) request is not granted by a Role either.
    assert compare([_req("get", "", "services", namespace=None)], [role]).not_granted == [
        ApiRequest("get", "", "services")
    ]


def test_a_grant_used_in_one_namespace_counts_as_used() -> None:
    roles = [_role([_rule("", ["services"], ["get"])], kind="Role", namespace=ns) for ns in ("a", "b")]
    assert compare([_req("get", "", "services", namespace="a")], roles).ok


def test_wildcards_match_and_are_reported_when_unused() -> None:
    star = _role([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}])
    assert compare([_req("delete", "apps", "deployments")], [star]).ok
    assert compare([], [star]).unused == [Grant("*", "*", "*")]


def test_grants_skip_other_kinds_and_require_role_namespaces() -> None:
    assert grants_from_roles([{"kind": "ConfigMap", "metadata": {"name": "x"}}]) == []
    with pytest.raises(ValueError, match="no namespace"):
        grants_from_roles([_role([_rule("", ["pods"], ["get"])], kind="Role")])


@pytest.mark.parametrize(
    ("method", "collection", "watch", "verb"),
    [
        ("GET", False, False, "get"),
        ("GET", True, False, "list"),
        ("GET", True, True, "watch"),
        ("get", False, True, "watch"),
        ("POST", True, False, "create"),
        ("PUT", False, False, "update"),
        ("PATCH", False, False, "patch"),
        ("DELETE", False, False, "delete"),
        ("DELETE", True, False, "deletecollection"),
    ],
)
def test_kube_verb(method: str, collection: bool, watch: bool, verb: str) -> None:
    assert kube_verb(method, collection=collection, watch=watch) == verb


def test_kube_verb_rejects_unknown() -> None:
    with pytest.raises(ValueError, match="no RBAC verb"):
        kube_verb("PATCH", collection=True)


def test_bound_roles_follows_bindings() -> None:
    sa = {"kind": "ServiceAccount", "name": "op", "namespace": "ops"}
    docs = [
        _role([_rule("", ["pods"], ["get"])], name="cluster"),
        _role([_rule("", ["secrets"], ["get"])], name="unbound"),
        {
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "b1"},
            "roleRef": {"kind": "ClusterRole", "name": "cluster"},
            "subjects": [sa],
        },
        {
            "kind": "RoleBinding",
            "metadata": {"name": "b2", "namespace": "team"},
            "roleRef": {"kind": "ClusterRole", "name": "unbound"},
            "subjects": [{**sa, "name": "someone-else"}],
        },
        {
            "kind": "RoleBinding",
            "metadata": {"name": "b3", "namespace": "team"},
            "roleRef": {"kind": "ClusterRole", "name": "cluster"},
            "subjects": [sa],
        },
    ]
    roles = bound_roles(docs, "op", "ops")
    assert [(r["kind"], r["metadata"].get("namespace")) for r in roles] == [("ClusterRole", None), ("Role", "team")]
    missing = [
        {
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "b"},
            "roleRef": {"kind": "ClusterRole", "name": "nope"},
            "subjects": [sa],
        }
    ]
    with pytest.raises(ValueError, match="missing ClusterRole nope"):
        bound_roles(missing, "op", "ops")


# ------------------------------------------------------------------------ the chart against the operator's needs

#: What the operator does in a namespace it handles, as measured from the emulator's request log by
#: tests/integration/test_rbac_least_privilege.py (that test is the evidence; this list mirrors it so the
#: namespaced and HA renderings can be checked without running the operator).
NAMESPACED_USE = [
    *[(v, "modelops.io", "modeldeployments", "") for v in ("get", "list", "watch", "patch", "delete")],
    *[(v, "modelops.io", "modelretirements", "") for v in ("get", "list", "watch", "patch")],
    *[(v, "modelops.io", "modelrequests", "") for v in ("list", "watch")],
    *[("patch", "modelops.io", r, "status") for r in ("modeldeployments", "modelretirements", "modelrequests")],
    *[(v, "apps", "deployments", "") for v in ("get", "list", "watch", "create", "patch", "delete")],
    *[(v, "", "services", "") for v in ("get", "list", "create", "patch", "delete")],
    *[(v, "batch", "jobs", "") for v in ("get", "list", "create", "delete")],
    ("list", "", "pods", ""),
    *[(v, "", "events", "") for v in ("get", "create", "patch")],
    *[(v, "gateway.networking.k8s.io", "httproutes", "") for v in ("get", "patch")],
    *[(v, "networking.istio.io", "virtualservices", "") for v in ("get", "patch")],
    *[(v, "networking.istio.io", "destinationrules", "") for v in ("get", "create", "patch")],
]
#: kopf's own needs, cluster-scoped.
KOPF_USE = [
    ("list", "apiextensions.k8s.io", "customresourcedefinitions", ""),
    ("watch", "apiextensions.k8s.io", "customresourcedefinitions", ""),
]


def _log(use: list[tuple[str, str, str, str]], namespace: str | None) -> list[ApiRequest]:
    return [ApiRequest(v, g, r, s, namespace) for v, g, r, s in use]


def _roles(value_set: str, *flags: str) -> list[Any]:
    return bound_roles(render(value_set, *flags), "modelops-modelops-operator", "modelops-system")


def test_cluster_wide_role_is_exactly_what_the_operator_uses() -> None:
    log = _log(NAMESPACED_USE, "shop") + _log(KOPF_USE, None)
    log += [ApiRequest("list", "", "namespaces"), ApiRequest("watch", "", "namespaces")]
    report = compare(log, _roles("default"))
    assert report.ok, report.explain()


def test_cluster_wide_role_with_peering() -> None:
    base = (
        _log(NAMESPACED_USE, "shop")
        + _log(KOPF_USE, None)
        + [ApiRequest("list", "", "namespaces"), ApiRequest("watch", "", "namespaces")]
    )
    peering = [ApiRequest(v, "kopf.dev", "clusterkopfpeerings") for v in ("list", "watch", "patch", "get")]
    assert compare(base + peering, _roles("ha-monitoring")).ok
    # Without peering the chart does not grant it, and a standalone operator never asks.
    assert compare(base + peering, _roles("default")).not_granted == sorted(peering)


def test_namespaced_roles_grant_only_the_watched_namespaces() -> None:
    log = _log(NAMESPACED_USE, "team-a") + _log(NAMESPACED_USE, "team-b") + _log(KOPF_USE, None)
    report = compare(log, _roles("namespaced"))
    assert report.ok, report.explain()
    outside = compare(_log(NAMESPACED_USE, "elsewhere"), _roles("namespaced"))
    assert len(outside.not_granted) == len(NAMESPACED_USE)
    # Cluster-wide listing (what -A does) is not granted in the namespaced install.
    assert compare([ApiRequest("list", "apps", "deployments")], _roles("namespaced")).not_granted
