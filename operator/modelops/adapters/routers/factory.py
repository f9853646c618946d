"""The router ``spec.traffic.router`` names: the one place that knows every backend (``base`` knows none)."""

from __future__ import annotations

from typing import Any

from modelops.adapters.kube import as_kube_api
from modelops.api.deployment import ModelDeploymentSpec

from .base import Router
from .gateway_api import HTTPRouteRouter
from .istio import VirtualServiceRouter
from .replicas import ReplicaRouter

__all__ = ["router_for"]


def router_for(spec: ModelDeploymentSpec, namespace: str, md_name: str, api_client: Any) -> Router:
    """The router ``spec.traffic.router`` names; ``api_client`` is a ``kubernetes`` ApiClient or a ``KubeApi``."""
    api = as_kube_api(api_client)
    traffic = spec.traffic
    if traffic.router == "gatewayAPI" and traffic.gateway_api is not None:
        return HTTPRouteRouter(api, namespace, md_name, traffic.gateway_api, port=spec.server.port)
    if traffic.router == "istio" and traffic.istio is not None:
        return VirtualServiceRouter(api, namespace, md_name, traffic.istio, port=spec.server.port)
    if traffic.router == "replicas" and traffic.replicas is not None:
        return ReplicaRouter(api, namespace, md_name, total=spec.server.replicas)
    raise ValueError(f"no settings for router {traffic.router!r}")
