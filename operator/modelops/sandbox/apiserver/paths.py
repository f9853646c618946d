"""Parsing of Kubernetes API paths into (group, version, resource, namespace, name, subresource) and a verb.

kmock's own parser mis-reads the core ``namespaces`` resource (``GET /api/v1/namespaces`` raises, and
``/api/v1/namespaces/x`` is read as "namespace x, no resource"), and it has no verb for PUT; kopf scans
namespaces and kubectl/the kubernetes client use PUT, so the emulator parses paths itself.
"""

from __future__ import annotations

from dataclasses import dataclass

#: subresources of a Namespace object (``/api/v1/namespaces/{name}/status``), not resources inside it
_NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})


@dataclass(frozen=True)
class ApiPath:
    """One API request's target; ``group`` is ``""`` for the core group, ``namespace`` None if cluster-wide."""

    group: str
    version: str
    resource: str | None = None
    namespace: str | None = None
    name: str | None = None
    subresource: str | None = None


def parse_api_path(path: str) -> ApiPath | None:
    """Parse ``/api/v1/...`` or ``/apis/{group}[/{version}/...]``; None for anything else (``/api``, ``/apis``).

    Discovery documents parse with ``resource`` None (and ``version`` empty for a group's document).

    >>> parse_api_path("/api/v1/namespaces")
    ApiPath(group='', version='v1', resource='namespaces', namespace=None, name=None, subresource=None)
    >>> parse_api_path("/api/v1/namespaces/ns1/configmaps/cm")
    ApiPath(group='', version='v1', resource='configmaps', namespace='ns1', name='cm', subresource=None)
    >>> parse_api_path("/apis/modelops.io/v1alpha1/namespaces/ns1/modeldeployments/x/status").subresource
    'status'
    """
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 2 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    elif len(parts) == 2 and parts[0] == "apis":
        return ApiPath(parts[1], "")  # the group's discovery document
    else:
        return None
    if not rest:
        return ApiPath(group, version)  # the group-version's discovery document
    namespace: str | None = None
    if rest[0] == "namespaces" and len(rest) >= 3 and not (len(rest) == 3 and rest[2] in _NAMESPACE_SUBRESOURCES):
        namespace, rest = rest[1], rest[2:]
    resource = rest[0]
    name = rest[1] if len(rest) >= 2 else None
    subresource = "/".join(rest[2:]) or None
    return ApiPath(group, version, resource, namespace, name, subresource)


def guess_verb(method: str, api_path: ApiPath | None, query: dict[str, str]) -> str | None:
    """The apiserver's verb for a request (as in audit logs and RBAC), or None for non-resource requests."""
    if api_path is None or api_path.resource is None:
        return None
    method = method.upper()
    if method == "GET":
        if query.get("watch", "").lower() in ("true", "1"):
            return "watch"
        return "get" if api_path.name is not None else "list"
    if method == "POST":
        return "create"
    if method == "PUT":
        return "update"
    if method == "PATCH":
        return "patch"
    if method == "DELETE":
        return "delete" if api_path.name is not None else "deletecollection"
    return None
