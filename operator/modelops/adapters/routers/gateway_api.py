"""Gateway API router: the weights of one rule's ``backendRefs`` in an HTTPRoute (``gateway.networking.k8s.io/v1``).

The managed rule is the one named ``ruleName`` (the first rule when unset); every other rule, and the matches,
filters and other fields of the managed rule, are left as they are. Gateway API weights are relative; the operator
writes percents, and reads any weights back as percents.

What the Gateway's controller says of the route (``status.parents[].conditions``) is read with the weights, in the
same GET: :func:`route_acceptance`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelops.adapters.kube import HTTPROUTES, KubeApi, Obj
from modelops.api.deployment import GatewayAPIRouter
from modelops.core.observations import Acceptance, RouteAcceptance

from .base import ListRouteRouter

#: the conditions every parent must report True, for the route's current generation
REQUIRED_CONDITIONS = ("Accepted", "ResolvedRefs")


def _parent_key(ref: Mapping[str, Any], namespace: str) -> tuple[str, str, str]:
    return (str(ref.get("namespace") or namespace), str(ref.get("name", "")), str(ref.get("sectionName") or ""))


def _verdict(parent: Mapping[str, Any], generation: int) -> tuple[Acceptance, str, str]:
    """One controller's word on one parent: accepted, pending (not this generation yet) or rejected."""
    controller = str(parent.get("controllerName") or "the controller")
    conditions = {str(c.get("type")): c for c in parent.get("conditions") or []}
    for type_ in REQUIRED_CONDITIONS:
        condition = conditions.get(type_)
        # a condition without observedGeneration is taken as current (the field is optional in Gateway API)
        observed = (condition or {}).get("observedGeneration")
        seen = generation if observed is None else int(observed)
        if condition is None or seen < generation:
            return Acceptance.PENDING, "Pending", f"{controller} has not reported {type_} for generation {generation}"
        if condition.get("status") != "True":
            reason = str(condition.get("reason") or type_)
            said = str(condition.get("message") or "").strip()
            message = f"{controller}: {type_}={condition.get('status')} ({reason})" + (f": {said}" if said else "")
            return Acceptance.REJECTED, reason, message
    return Acceptance.ACCEPTED, "Accepted", f"{controller} accepted it"


def route_acceptance(route: Mapping[str, Any]) -> RouteAcceptance:
    """What the route's parents' controllers reported of its current generation (``metadata.generation``).

    Accepted: for every parentRef, some controller reports ``Accepted`` and ``ResolvedRefs`` True for this
    generation. Rejected: for a parent no controller accepts, one refuses this generation (its reason and message
    are kept); a controller's ``NoMatchingParent`` (a Gateway that is not its own) refuses nothing. Pending: no word
    yet on this generation for a parent (or only on an older one).

    >>> route = {"metadata": {"namespace": "ml", "name": "shop", "generation": 3},
    ...          "spec": {"parentRefs": [{"name": "public"}]}}
    >>> route_acceptance(route).state
    <Acceptance.PENDING: 'Pending'>
    >>> ok = {"type": "Accepted", "status": "True", "reason": "Accepted", "observedGeneration": 3}
    >>> bad = {"type": "ResolvedRefs", "status": "False", "reason": "BackendNotFound", "observedGeneration": 3,
    ...        "message": "no service ml/s2"}
    >>> parent = {"parentRef": {"name": "public"}, "controllerName": "traefik.io/gateway-controller"}
    >>> rejected = route_acceptance({**route, "status": {"parents": [{**parent, "conditions": [ok, bad]}]}})
    >>> rejected.state, rejected.reason
    (<Acceptance.REJECTED: 'Rejected'>, 'BackendNotFound')
    >>> print(rejected.message)
    traefik.io/gateway-controller on Gateway ml/public: ResolvedRefs=False (BackendNotFound): no service ml/s2
    >>> old = {**bad, "observedGeneration": 2}
    >>> route_acceptance({**route, "status": {"parents": [{**parent, "conditions": [ok, old]}]}}).state
    <Acceptance.PENDING: 'Pending'>

    Two controllers report on the same parent, one of them for a Gateway that is not its own: the other decides.

    >>> resolved = {**bad, "status": "True", "reason": "ResolvedRefs"}
    >>> not_mine = {"parentRef": {"name": "public"}, "controllerName": "other.example/gw", "conditions": [
    ...     {"type": "Accepted", "status": "False", "reason": "NoMatchingParent", "observedGeneration": 3}]}
    >>> mine = {**parent, "conditions": [ok, resolved]}
    >>> orders = ([not_mine, mine], [mine, not_mine])
    >>> [route_acceptance({**route, "status": {"parents": p}}).state.value for p in orders]
    ['Accepted', 'Accepted']
    >>> route_acceptance({**route, "status": {"parents": [not_mine]}}).state
    <Acceptance.PENDING: 'Pending'>
    """
    meta = route.get("metadata") or {}
    namespace, generation = str(meta.get("namespace", "")), int(meta.get("generation") or 0)
    wanted = [_parent_key(ref, namespace) for ref in (route.get("spec") or {}).get("parentRefs") or []]
    if not wanted:
        return RouteAcceptance(Acceptance.PENDING, "NoParents", "the route names no parent Gateway")
    reported: dict[tuple[str, str, str], list[Mapping[str, Any]]] = {}
    for parent in (route.get("status") or {}).get("parents") or []:
        reported.setdefault(_parent_key(parent.get("parentRef") or {}, namespace), []).append(parent)
    pending: list[str] = []
    for key in wanted:
        where = f"Gateway {key[0]}/{key[1]}" + (f" ({key[2]})" if key[2] else "")
        verdicts = [_verdict(parent, generation) for parent in reported.get(key, [])]
        if any(state == Acceptance.ACCEPTED for state, _, _ in verdicts):
            continue
        refusals = [(r, m) for state, r, m in verdicts if state == Acceptance.REJECTED and r != "NoMatchingParent"]
        if refusals:
            reason, message = refusals[0]
            controller, _, rest = message.partition(": ")
            return RouteAcceptance(Acceptance.REJECTED, reason, f"{controller} on {where}: {rest}")
        waiting = [m for state, _, m in verdicts if state == Acceptance.PENDING]
        pending.append(f"{waiting[0]} on {where}" if waiting else f"no status from the controller of {where}")
    if pending:
        return RouteAcceptance(Acceptance.PENDING, "Pending", "; ".join(pending))
    names = ", ".join(f"{ns}/{name}" for ns, name, _ in wanted)
    return RouteAcceptance(Acceptance.ACCEPTED, "Accepted", f"accepted by Gateway {names} at generation {generation}")


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

    def acceptance(self, obj: Mapping[str, Any]) -> RouteAcceptance | None:
        return route_acceptance(obj)

    def read(self, backends: list[Obj]) -> dict[str, int]:
        out: dict[str, int] = {}
        for ref in backends:
            out[str(ref.get("name"))] = out.get(str(ref.get("name")), 0) + int(ref.get("weight", 1))
        return out
