"""The node agent's view of the API: plain dicts over a ``kubernetes`` ``ApiClient``.

The agent is level-triggered (it lists, compares, acts): its watch carries no data it relies on, it only cuts the
wait before the next list short.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from kubernetes.client.exceptions import ApiException

log = logging.getLogger(__name__)

Obj = dict[str, Any]


@dataclass(frozen=True)
class Kind:
    group: str
    version: str
    plural: str

    def path(self, namespace: str | None, name: str | None = None, subresource: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if namespace is not None:
            base = f"{base}/namespaces/{quote(namespace, safe='')}"
        path = f"{base}/{self.plural}"
        if name is not None:
            path = f"{path}/{quote(name, safe='')}"
        if subresource is not None:
            path = f"{path}/{subresource}"
        return path


DEPLOYMENTS = Kind("apps", "v1", "deployments")
JOBS = Kind("batch", "v1", "jobs")
SERVICES = Kind("", "v1", "services")
PODS = Kind("", "v1", "pods")


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


class Client:
    """get/list/create/patch/delete on JSON dicts; ``patch_status`` writes through the status subresource."""

    def __init__(self, api_client: Any, timeout: float = 10.0) -> None:
        self.api = api_client
        self.timeout = timeout

    def request(
        self,
        method: str,
        path: str,
        *,
        query: list[tuple[str, str]] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: Any = None,
        stream: bool = False,
    ) -> Any:
        request = self.api.param_serialize(
            method=method,
            resource_path=path,
            query_params=query or [],
            header_params={"Accept": "application/json", "Content-Type": content_type},
            body=body,
            auth_settings=["BearerToken"],
        )
        try:
            response = self.api.call_api(*request, _request_timeout=timeout or self.timeout)
        except ApiException as e:
            raise ApiError(int(e.status or 0), str(e.body or e.reason)) from e
        if stream:
            if not 200 <= response.status <= 299:
                response.read()
                raise ApiError(response.status, (response.data or b"").decode(errors="replace"))
            return response
        response.read()
        text = response.data.decode("utf-8") if response.data else ""
        if not 200 <= response.status <= 299:
            raise ApiError(response.status, text or str(response.reason))
        return json.loads(text) if text else None

    def list(self, kind: Kind, namespace: str | None) -> list[Obj]:
        answer = self.request("GET", kind.path(namespace)) or {}
        items: list[Obj] = answer.get("items") or []
        return items

    def get(self, kind: Kind, namespace: str, name: str) -> Obj | None:
        try:
            obj: Obj = self.request("GET", kind.path(namespace, name))
        except ApiError as e:
            if e.status == 404:
                return None
            raise
        return obj

    def create(self, kind: Kind, namespace: str, body: Obj) -> Obj:
        obj: Obj = self.request("POST", kind.path(namespace), body=body)
        return obj

    def patch(self, kind: Kind, namespace: str, name: str, patch: Obj) -> Obj:
        obj: Obj = self.request(
            "PATCH", kind.path(namespace, name), body=patch, content_type="application/merge-patch+json"
        )
        return obj

    def patch_status(self, kind: Kind, namespace: str, name: str, status: Obj) -> Obj:
        """Merge-patch ``status`` through the ``/status`` subresource."""
        obj: Obj = self.request(
            "PATCH",
            kind.path(namespace, name, "status"),
            body={"status": status},
            content_type="application/merge-patch+json",
        )
        return obj

    def delete(self, kind: Kind, namespace: str, name: str) -> None:
        body = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background"}
        try:
            self.request("DELETE", kind.path(namespace, name), body=body)
        except ApiError as e:
            if e.status != 404:
                raise
