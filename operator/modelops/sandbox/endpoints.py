"""Service endpoints read from the real API: the ready Pods a Service selects, at their own addresses.

The node agent gives each Pod a loopback address, and the API server refuses loopback addresses in EndpointSlices
(``may not be in the loopback range``), so the EndpointSlice controller cannot publish them. The sandbox's gateway
and traffic driver therefore resolve a Service the way kube-proxy's data comes about: its selector over the Pods'
labels, the Pods that are Ready, ``podIP:targetPort``. Lists are cached for ``max_age`` seconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from modelops.sandbox.node._kube import Client, Kind

__all__ = ["ServiceEndpoints", "pod_ready"]

PODS = Kind("", "v1", "pods")
SERVICES = Kind("", "v1", "services")


def pod_ready(pod: Mapping[str, Any]) -> bool:
    """A Pod counts as an endpoint when it runs, is not being deleted, has an address, and is Ready."""
    status = pod.get("status") or {}
    if (pod.get("metadata") or {}).get("deletionTimestamp") or status.get("phase") != "Running":
        return False
    if not status.get("podIP"):
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])


class ServiceEndpoints:
    """``resolve("name")`` (or ``name.namespace[.svc...]``) -> ``["http://127.0.x.y:port", ...]``."""

    def __init__(self, client: Client, namespace: str = "default", max_age: float = 0.5) -> None:
        self.client = client
        self.namespace = namespace
        self.max_age = max_age
        self._cache: dict[str, tuple[float, list[Any], list[Any]]] = {}
        self._lock = threading.Lock()

    def _read(self, namespace: str) -> tuple[list[Any], list[Any]]:
        with self._lock:
            cached = self._cache.get(namespace)
            if cached is not None and time.monotonic() - cached[0] < self.max_age:
                return cached[1], cached[2]
            services = self.client.list(SERVICES, namespace)
            pods = self.client.list(PODS, namespace)
            self._cache[namespace] = (time.monotonic(), services, pods)
            return services, pods

    def resolve(self, service: str) -> Sequence[str]:
        parts = service.split(".")
        name = parts[0]
        namespace = parts[1] if len(parts) > 1 and parts[1] != "svc" else self.namespace
        services, pods = self._read(namespace)
        found = next((s for s in services if s["metadata"]["name"] == name), None)
        if found is None:
            return []
        spec = found.get("spec") or {}
        selector = spec.get("selector") or {}
        if not selector:
            return []
        ports = spec.get("ports") or [{}]
        target = ports[0].get("targetPort", ports[0].get("port"))
        urls = []
        for pod in pods:
            labels = (pod.get("metadata") or {}).get("labels") or {}
            if not all(labels.get(k) == v for k, v in selector.items()) or not pod_ready(pod):
                continue
            port = _container_port(pod, target)
            if port:
                urls.append(f"http://{pod['status']['podIP']}:{port}")
        return sorted(urls)

    def resolver(self) -> Callable[[str], Sequence[str]]:
        return self.resolve


def _container_port(pod: Mapping[str, Any], target: Any) -> int | None:
    """A Service's ``targetPort`` (a number, or a container port's name) on this Pod."""
    if isinstance(target, int) or (isinstance(target, str) and target.isdigit()):
        return int(target)
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == target:
                return int(port["containerPort"])
    return None
