"""Istio router: the weights of one http route's ``route`` list in a VirtualService (``networking.istio.io/v1``).

The managed route is the one named ``routeName`` (the first when unset); the other http routes, and the match,
retries, headers and other fields of the managed one, are left as they are.

Destinations: each version's Service as ``host``. When ``spec.traffic.istio.host`` is set, every destination uses
that host and tells versions apart by ``subset`` (named like the version's Service, so a DestinationRule must define
those subsets): Istio's usual pattern for one host with several versions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelops.adapters.kube import VIRTUALSERVICES, KubeApi, Obj
from modelops.api.deployment import IstioRouter

from .base import ListRouteRouter


class VirtualServiceRouter(ListRouteRouter):
    resource = VIRTUALSERVICES
    list_key = "http"
    backends_key = "route"

    def __init__(self, api: KubeApi, namespace: str, md_name: str, settings: IstioRouter, *, port: int) -> None:
        super().__init__(api, namespace, md_name, settings.virtual_service, settings.route_name)
        self.port = port
        self.host = settings.host

    def _destination(self, version: str) -> Obj:
        service = self.names.service(version)
        if self.host is None:
            return {"host": service, "port": {"number": self.port}}
        return {"host": self.host, "subset": service, "port": {"number": self.port}}

    def render(self, weights: Mapping[str, int]) -> list[Obj]:
        return [{"destination": self._destination(v), "weight": w} for v, w in weights.items()]

    def backend_key(self, backend: Mapping[str, Any]) -> tuple[Any, ...]:
        destination = backend.get("destination") or {}
        return (
            destination.get("host"),
            destination.get("subset"),
            (destination.get("port") or {}).get("number"),
            backend.get("weight", 0),
        )

    def read(self, backends: list[Obj]) -> dict[str, int]:
        out: dict[str, int] = {}
        for route in backends:
            destination = route.get("destination") or {}
            # A subset names the version's Service; else the host does (short name, or the first label of an FQDN).
            name = str(destination.get("subset") or str(destination.get("host", "")).split(".")[0])
            # Istio: a lone destination without weight takes all traffic.
            weight = int(route.get("weight", 100 if len(backends) == 1 else 0))
            out[name] = out.get(name, 0) + weight
        return out
