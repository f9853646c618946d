"""Traffic routers: one protocol (set, read back, verify, finalize), one module per backend, a fake.

``router_for(spec, namespace, md_name, api_client)`` picks the backend from ``spec.traffic.router``.
"""

from .base import (
    MAX_ATTEMPTS,
    NO_ROUTE,
    ListRouteRouter,
    RouteObservation,
    Router,
    RouterError,
    check_weights,
    nonzero,
    percentages,
    read_modify_write,
)
from .factory import router_for
from .fake import FakeRouter
from .gateway_api import HTTPRouteRouter
from .istio import VirtualServiceRouter
from .replicas import ReplicaRouter, replica_split

__all__ = [
    "MAX_ATTEMPTS",
    "NO_ROUTE",
    "FakeRouter",
    "HTTPRouteRouter",
    "ListRouteRouter",
    "ReplicaRouter",
    "RouteObservation",
    "Router",
    "RouterError",
    "VirtualServiceRouter",
    "check_weights",
    "nonzero",
    "percentages",
    "read_modify_write",
    "replica_split",
    "router_for",
]
