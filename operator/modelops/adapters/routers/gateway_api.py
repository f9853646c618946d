"""Gateway API router: the weights of one rule's ``backendRefs`` in an HTTPRoute (``gateway.networking.k8s.io/v1``).

The managed rule is the one named ``ruleName`` (the first rule when unset); every other rule, and the matches,
filters and other fields of the managed rule, are left as they are. Gateway API weights are relative; the operator
writes percents, and reads any weights back as percents.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelops.adapters.kube import HTTPROUTES, KubeApi, Obj
from modelops.api.deployment import GatewayAPIRouter

from .base import ListRouteRouter


class HTTPRouteRouter(ListRouteRouter):
    resource = HTTPROUTES
    list_key = "rules"
    backends_key = "backendRefs"

    def __init__(self, api: KubeApi, namespace: str, md_name: str, settings: GatewayAPIRouter, *, port: int) -> None:
        super().__init__(api, namespace, md_name, settings.http_route, settings.rule_name)
        self.port = port

    def render(self, weights: Mapping[str, int]) -> list[Obj]:
        return [
            {"group": "", "kind": "Service", "name": self.names.service(v), "port": self.port, "weight": w}
            for v, w in weights.items()
        ]

    def backend_key(self, backend: Mapping[str, Any]) -> tuple[Any, ...]:
        return (
            backend.get("group") or "",
            backend.get("kind") or "Service",
            backend.get("name"),
            backend.get("port"),
            backend.get("weight", 1),
        )

    def read(self, backends: list[Obj]) -> dict[str, int]:
        out: dict[str, int] = {}
        for ref in backends:
            out[str(ref.get("name"))] = out.get(str(ref.get("name")), 0) + int(ref.get("weight", 1))
        return out
