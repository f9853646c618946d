"""A thin, dict-based view of the Kubernetes API: the only place that speaks HTTP to the API server.

Everything above this module (the kube adapter, the routers) works on plain dicts through the small
:class:`KubeApi` protocol, so the logic is testable against :class:`~modelops.adapters.kube.memory.InMemoryKube`
and the same code runs against a real API server through :class:`RestKubeApi` (the synchronous ``kubernetes``
client's ``ApiClient``; call it from plain ``def`` handlers or threads, never from an ``async def``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable
from urllib.parse import quote

from kubernetes.client.exceptions import ApiException

Obj = dict[str, Any]


@dataclass(frozen=True)
class Resource:
    """A namespaced resource type, addressed the way the API server's URL paths address it."""

    group: str
    version: str
    plural: str
    kind: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str, name: str | None = None, subresource: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        # namespace "" names a cluster-scoped resource
        path = f"{base}/namespaces/{quote(namespace, safe='')}/{self.plural}" if namespace else f"{base}/{self.plural}"
        if name is None:
            return path
        path = f"{path}/{quote(name, safe='')}"
        return f"{path}/{subresource}" if subresource else path


DEPLOYMENTS = Resource("apps", "v1", "deployments", "Deployment")
SERVICES = Resource("", "v1", "services", "Service")
JOBS = Resource("batch", "v1", "jobs", "Job")
PODS = Resource("", "v1", "pods", "Pod")
EVENTS = Resource("", "v1", "events", "Event")
HTTPROUTES = Resource("gateway.networking.k8s.io", "v1", "httproutes", "HTTPRoute")
VIRTUALSERVICES = Resource("networking.istio.io", "v1", "virtualservices", "VirtualService")
DESTINATIONRULES = Resource("networking.istio.io", "v1", "destinationrules", "DestinationRule")
MODELDEPLOYMENTS = Resource("modelops.io", "v1alpha1", "modeldeployments", "ModelDeployment")
MODELRETIREMENTS = Resource("modelops.io", "v1alpha1", "modelretirements", "ModelRetirement")
MODELREQUESTS = Resource("modelops.io", "v1alpha1", "modelrequests", "ModelRequest")


class KubeApiError(Exception):
    """An error answer of the API server (or of the fake), with its HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


class NotFound(KubeApiError):
    """404: the object (or its resource type) does not exist."""


class Conflict(KubeApiError):
    """409: a stale resourceVersion on a write, or the object already exists on create."""


def error_for(status: int, message: str) -> KubeApiError:
    """The exception class for an HTTP status, so callers can catch ``NotFound``/``Conflict`` alone."""
    if status == 404:
        return NotFound(status, message)
    if status == 409:
        return Conflict(status, message)
    return KubeApiError(status, message)


@runtime_checkable
class KubeApi(Protocol):
    """The handful of verbs the adapters use; every object in and out is a plain JSON dict.

    ``patch`` is a JSON merge patch (RFC 7386). When the patch carries ``metadata.resourceVersion`` the API
    server treats it as a precondition and answers 409 when the object changed since it was read: that is how
    read-modify-write of shared objects (routes) stays safe.
    """

    def get(self, resource: Resource, namespace: str, name: str) -> Obj | None: ...

    def list(self, resource: Resource, namespace: str, labels: Mapping[str, str] | None = None) -> list[Obj]: ...

    def create(self, resource: Resource, namespace: str, body: Obj) -> Obj: ...

    def patch(
        self, resource: Resource, namespace: str, name: str, patch: Obj, *, subresource: str | None = None
    ) -> Obj: ...

    def delete(self, resource: Resource, namespace: str, name: str, *, uid: str | None = None) -> None: ...


def selector(labels: Mapping[str, str]) -> str:
    """An equality-based label selector string: ``a=1,b=2``."""
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def matches(obj: Mapping[str, Any], labels: Mapping[str, str] | None) -> bool:
    """Whether ``obj`` carries every label in ``labels``.

    Applied client-side as well, so that a result is exactly the selection whatever the server did with it.
    """
    if not labels:
        return True
    have = (obj.get("metadata") or {}).get("labels") or {}
    return all(have.get(k) == v for k, v in labels.items())


class RestKubeApi:
    """:class:`KubeApi` over a ``kubernetes.client.ApiClient`` (synchronous).

    Uses the client's own request serialisation, authentication and TLS settings; only the JSON decoding and the
    error mapping are done here, so any resource (core, apps, CRDs) goes through the same five methods.
    """

    def __init__(self, api_client: Any, *, timeout: float = 30.0) -> None:
        self._api = api_client
        self._timeout = timeout

    def _call(
        self,
        method: str,
        path: str,
        *,
        query: list[tuple[str, str]] | None = None,
        body: Any = None,
        content_type: str | None = None,
    ) -> Any:
        headers = {"Accept": "application/json"}
        if content_type is not None:
            headers["Content-Type"] = content_type
        request = self._api.param_serialize(
            method=method,
            resource_path=path,
            query_params=query or [],
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        try:
            response = self._api.call_api(*request, _request_timeout=self._timeout)
            response.read()
        except ApiException as e:  # some transports raise instead of returning the status
            raise error_for(int(e.status or 0), str(e.body or e.reason)) from e
        text = response.data.decode("utf-8") if response.data else ""
        if not 200 <= response.status <= 299:
            raise error_for(response.status, _message(text) or str(response.reason))
        return json.loads(text) if text else None

    def get(self, resource: Resource, namespace: str, name: str) -> Obj | None:
        try:
            obj: Obj = self._call("GET", resource.path(namespace, name))
        except NotFound:
            return None
        return obj

    def list(self, resource: Resource, namespace: str, labels: Mapping[str, str] | None = None) -> list[Obj]:
        query = [("labelSelector", selector(labels))] if labels else None
        answer = self._call("GET", resource.path(namespace), query=query) or {}
        return [item for item in answer.get("items") or [] if matches(item, labels)]

    def create(self, resource: Resource, namespace: str, body: Obj) -> Obj:
        obj: Obj = self._call("POST", resource.path(namespace), body=body, content_type="application/json")
        return obj

    def patch(
        self, resource: Resource, namespace: str, name: str, patch: Obj, *, subresource: str | None = None
    ) -> Obj:
        obj: Obj = self._call(
            "PATCH",
            resource.path(namespace, name, subresource),
            body=patch,
            content_type="application/merge-patch+json",
        )
        return obj

    def delete(self, resource: Resource, namespace: str, name: str, *, uid: str | None = None) -> None:
        body: Obj = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background"}
        if uid is not None:
            body["preconditions"] = {"uid": uid}
        try:
            self._call("DELETE", resource.path(namespace, name), body=body, content_type="application/json")
        except NotFound:
            return


def as_kube_api(api: Any) -> KubeApi:
    """Accept either a :class:`KubeApi` (a fake, or one already wrapped) or a ``kubernetes`` ``ApiClient``."""
    if isinstance(api, KubeApi):
        return api
    return RestKubeApi(api)


def _message(text: str) -> str:
    try:
        status = json.loads(text)
    except ValueError:
        return text
    return str(status.get("message", text)) if isinstance(status, dict) else text
