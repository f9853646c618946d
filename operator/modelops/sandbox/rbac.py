"""Least-privilege check of the operator's RBAC: API requests made versus rules granted.

The Helm chart's ClusterRole (or Roles, for a namespaced install) must grant exactly the
(group, resource, verb) triples that the operator uses. The proof is empirical: the integration tests run the
operator as the chart's ServiceAccount on a real API server, whose audit log records every request it made (verb,
resource, subresource, namespace: :meth:`ApiRequest.from_record`); :func:`compare` then returns

* the requests that no rule grants (the API server answered them 403), and
* the rules that no request used (privilege the operator does not need),

minus an explicit allow-list of rarely used grants, each with the reason it is kept
(:class:`Allowance`). Allow-list entries that turn out to be unnecessary are reported too, so the list
cannot silently rot.

Matching follows Kubernetes RBAC: ``*`` matches any group, resource or verb; a Role grants only in its
own namespace; a ClusterRole bound with a ClusterRoleBinding grants in every namespace and for
cluster-scoped resources; a subresource is named ``resource/subresource``. Rules with ``resourceNames``
are treated as granting all names (requests are compared by kind, not by object), and ``nonResourceURLs`` are
ignored. :func:`kube_verb` derives a verb from an HTTP request, for logs that record methods rather than verbs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = [
    "Allowance",
    "ApiRequest",
    "Grant",
    "RbacReport",
    "RequestRecord",
    "bound_roles",
    "compare",
    "grants_from_roles",
    "kube_verb",
]

#: HTTP method -> RBAC verb for a request on a single named object.
_OBJECT_VERBS = {"GET": "get", "PUT": "update", "PATCH": "patch", "DELETE": "delete", "POST": "create"}
#: HTTP method -> RBAC verb for a request on a collection.
_COLLECTION_VERBS = {"GET": "list", "POST": "create", "DELETE": "deletecollection"}


def kube_verb(method: str, *, collection: bool, watch: bool = False) -> str:
    """The RBAC verb of an HTTP request, as the API server's request-info resolver derives it.

    >>> kube_verb("GET", collection=True, watch=True)
    'watch'
    >>> kube_verb("GET", collection=True)
    'list'
    >>> kube_verb("PATCH", collection=False)
    'patch'
    """
    method = method.upper()
    if method == "GET" and watch:
        return "watch"
    table = _COLLECTION_VERBS if collection else _OBJECT_VERBS
    try:
        return table[method]
    except KeyError:
        raise ValueError(f"no RBAC verb for {method} on a {'collection' if collection else 'object'}") from None


class RequestRecord(Protocol):
    """What a request log's record says of a request (e.g. :class:`modelops.sandbox.cluster.AuditRecord`); empty
    strings for no group, no subresource, no namespace."""

    @property
    def verb(self) -> str: ...
    @property
    def group(self) -> str: ...
    @property
    def resource(self) -> str: ...
    @property
    def subresource(self) -> str: ...
    @property
    def namespace(self) -> str: ...


@dataclass(frozen=True, order=True)
class ApiRequest:
    """One request from the log: ``namespace`` is None for cluster-scoped and all-namespaces requests."""

    verb: str
    group: str
    resource: str
    subresource: str = ""
    namespace: str | None = None

    @classmethod
    def from_mapping(cls, entry: Mapping[str, Any]) -> ApiRequest:
        """From a log entry with keys verb, group, resource and optionally subresource and namespace."""
        return cls(
            verb=str(entry["verb"]),
            group=str(entry.get("group") or ""),
            resource=str(entry["resource"]),
            subresource=str(entry.get("subresource") or ""),
            namespace=entry.get("namespace") or None,
        )

    @classmethod
    def from_record(cls, record: RequestRecord) -> ApiRequest:
        """From an audit record (the API server names the verb itself: ``watch``, ``list``, ``get``, ``patch``...).

        >>> from types import SimpleNamespace as Record
        >>> status = ApiRequest.from_record(Record(verb="patch", group="modelops.io", resource="modeldeployments",
        ...                                        subresource="status", namespace="shop"))
        >>> status.full_resource, status.verb, status.namespace
        ('modeldeployments/status', 'patch', 'shop')
        >>> ApiRequest.from_record(Record(verb="watch", group="", resource="namespaces", subresource="", namespace=""))
        ApiRequest(verb='watch', group='', resource='namespaces', subresource='', namespace=None)
        """
        return cls(
            verb=record.verb,
            group=record.group,
            resource=record.resource,
            subresource=record.subresource,
            namespace=record.namespace or None,
        )

    @property
    def full_resource(self) -> str:
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource


@dataclass(frozen=True, order=True)
class Grant:
    """One (group, resource, verb) triple a role grants; ``namespace`` None means cluster-wide."""

    group: str
    resource: str
    verb: str
    namespace: str | None = None

    def allows(self, request: ApiRequest) -> bool:
        if self.namespace is not None and self.namespace != request.namespace:
            return False
        return (
            self.group in ("*", request.group)
            and self.resource in ("*", request.full_resource)
            and self.verb in ("*", request.verb)
        )


@dataclass(frozen=True)
class Allowance:
    """A grant kept although the tests never exercise it: it must say why (a rare path, a kopf need...)."""

    group: str
    resource: str
    verb: str
    reason: str

    def __post_init__(self) -> None:
        if not self.reason.strip():
            raise ValueError(f"allowance {self.group}/{self.resource} {self.verb} needs a reason")

    def covers(self, grant: Grant) -> bool:
        return (grant.group, grant.resource, grant.verb) == (self.group, self.resource, self.verb)


@dataclass(frozen=True)
class RbacReport:
    """The outcome of :func:`compare`; empty lists mean the role is exactly what the operator uses."""

    not_granted: list[ApiRequest] = field(default_factory=list)
    unused: list[Grant] = field(default_factory=list)
    unneeded_allowances: list[Allowance] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.not_granted or self.unused or self.unneeded_allowances)

    def explain(self) -> str:
        """A readable account for an assertion message."""
        lines = [f"request not granted: {r}" for r in self.not_granted]
        lines += [f"granted but never used: {g}" for g in self.unused]
        lines += [f"allowance not needed (the grant is used, or absent): {a}" for a in self.unneeded_allowances]
        return "\n".join(lines) or "RBAC matches the requests"


def _rule_grants(rule: Mapping[str, Any], namespace: str | None) -> Iterable[Grant]:
    for group in rule.get("apiGroups") or ():
        for resource in rule.get("resources") or ():
            for verb in rule.get("verbs") or ():
                yield Grant(group=group, resource=resource, verb=verb, namespace=namespace)


def grants_from_roles(objects: Iterable[Mapping[str, Any]]) -> list[Grant]:
    """Every triple the given ClusterRoles and Roles grant (other kinds are skipped), sorted and unique."""
    grants: set[Grant] = set()
    for obj in objects:
        kind = obj.get("kind")
        if kind not in ("ClusterRole", "Role"):
            continue
        namespace = obj.get("metadata", {}).get("namespace") if kind == "Role" else None
        if kind == "Role" and not namespace:
            raise ValueError(f"Role {obj.get('metadata', {}).get('name')} has no namespace")
        for rule in obj.get("rules") or ():
            grants.update(_rule_grants(rule, namespace))
    return sorted(grants, key=lambda g: (g.group, g.resource, g.verb, g.namespace or ""))


def bound_roles(objects: Iterable[Mapping[str, Any]], service_account: str, namespace: str) -> list[Mapping[str, Any]]:
    """The roles among ``objects`` that are bound to the ServiceAccount ``namespace/service_account``.

    A ClusterRole reached through a RoleBinding is returned as a Role of that binding's namespace,
    which is how Kubernetes scopes it.
    """
    docs = list(objects)
    roles = {
        (d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]): d
        for d in docs
        if d.get("kind") in ("Role", "ClusterRole")
    }
    found: list[Mapping[str, Any]] = []
    for binding in docs:
        if binding.get("kind") not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        subjects = binding.get("subjects") or ()
        if not any(
            s.get("kind") == "ServiceAccount" and s.get("name") == service_account and s.get("namespace") == namespace
            for s in subjects
        ):
            continue
        ref = binding["roleRef"]
        binding_ns = binding["metadata"].get("namespace") if binding["kind"] == "RoleBinding" else None
        role = roles.get((ref["kind"], binding_ns if ref["kind"] == "Role" else None, ref["name"]))
        if role is None:
            raise ValueError(
                f"{binding['kind']} {binding['metadata']['name']} refers to missing {ref['kind']} {ref['name']}"
            )
        if ref["kind"] == "ClusterRole" and binding_ns is not None:
            role = {**role, "kind": "Role", "metadata": {**role["metadata"], "namespace": binding_ns}}
        found.append(role)
    return found


def compare(
    requests: Iterable[ApiRequest | Mapping[str, Any]],
    roles: Iterable[Mapping[str, Any]],
    allowances: Iterable[Allowance] = (),
) -> RbacReport:
    """Requests not granted by ``roles``, grants never used by ``requests``, and allowances not needed.

    A grant counts as used when any request it allows was made, whatever the namespace: in a namespaced
    install every watched namespace gets the same Role, and the tests need not touch each of them.
    """
    reqs = sorted({r if isinstance(r, ApiRequest) else ApiRequest.from_mapping(r) for r in requests})
    grants = grants_from_roles(roles)
    allow = list(allowances)
    not_granted = [r for r in reqs if not any(g.allows(r) for g in grants)]
    used = {g for g in grants if any(g.allows(r) for r in reqs)}
    used_triples = {(g.group, g.resource, g.verb) for g in used}
    unused_triples: dict[tuple[str, str, str], Grant] = {}
    for g in grants:
        triple = (g.group, g.resource, g.verb)
        if triple not in used_triples and not any(a.covers(g) for a in allow):
            unused_triples.setdefault(triple, Grant(*triple))
    granted_triples = {(g.group, g.resource, g.verb) for g in grants}
    unneeded = [
        a
        for a in allow
        if (a.group, a.resource, a.verb) in used_triples or (a.group, a.resource, a.verb) not in granted_triples
    ]
    return RbacReport(not_granted=not_granted, unused=sorted(unused_triples.values()), unneeded_allowances=unneeded)
