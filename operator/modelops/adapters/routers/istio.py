"""Istio router: the weights of one http route's ``route`` list in a VirtualService (``networking.istio.io/v1``).

The managed route is the one named ``routeName`` (the first when unset); the other http routes, and the match,
retries, headers and other fields of the managed one, are left as they are.

Destinations: each version's Service as ``host``. When ``spec.traffic.istio.host`` is set (*host mode*), every
version's destination is that host with a ``subset`` named like the version's Service (Istio's usual pattern for one
host with several versions), and the operator creates and owns the DestinationRule that defines those subsets
(:func:`build_destination_rule`): named like the ModelDeployment, ``spec.host`` the configured host, one subset per
version the route names (at weight 0 too) selecting that version's serving Pods (:func:`subset`), the owner labels and a
controller ownerReference (it goes with the ModelDeployment). It manages the rule's ``spec.host``, the names and
labels of its subsets and its owner labels; other fields (a ``trafficPolicy``, a subset's own one) are kept.

A split is written in three steps, so that the route never names a subset that is not defined (Istio fails the
requests sent to one) and a subset goes only once no route weight names it:

===================== ========================== ===================== =====================
split: from -> to      1. rule (added, none gone)  2. VirtualService     3. rule (pruned)
===================== ========================== ===================== =====================
v1 100 -> v1 90 v2 10  v1, v2                      v1 90, v2 10          v1, v2
v1 0 v2 100 -> v2 100  v1, v2                      v2 100                v2
(none) -> v1 100       v1 (created)                v1 100                v1
===================== ========================== ===================== =====================

A DestinationRule of that name that is not the ModelDeployment's (labels and ownerReference both) is never changed:
``set_weights`` raises :class:`~modelops.adapters.kube.NotOwnedError` before it writes anything, so the route stays
as it was (the handler says so in the ModelDeployment's ``Blocked`` condition). ``observe`` reads the rule too (two
GETs in host mode, one otherwise): a subset missing or edited counts as a route that does not match, and the
reconcile writes it back.

Backends that are not versions of this ModelDeployment (a retirement's replacement, ``add_backends``) are addressed
by their own Service as host, without a subset: this rule does not select their Pods.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from modelops.adapters.kube import (
    DESTINATIONRULES,
    MODELDEPLOYMENTS,
    VIRTUALSERVICES,
    Conflict,
    KubeApi,
    NotOwnedError,
    Obj,
    owned_by,
    owner_labels,
    owner_reference,
    workload_name,
)
from modelops.api.deployment import IstioRouter, ModelDeployment
from modelops.core.naming import (
    DEPLOYMENT_LABEL,
    MANAGED_BY_LABEL,
    MANAGER,
    VERSION_LABEL,
)

from .base import ListRouteRouter, RouteObservation, RouterError, check_weights, read_modify_write


def subset(md_name: str, version: str) -> Obj:
    """One version's subset: named like the version's Service, selecting its serving Pods by the labels that name the
    ModelDeployment and the version. Not by ``modelops.io/component``: Pods made by an older operator lack it, and a
    subset that left them out would have no endpoints while they roll over; a gate or retraining Job's Pod does not
    carry the version label, so it is never in a subset.

    >>> subset("fraud", "1.1.0")["name"]
    'fraud-1-1-0'
    >>> sorted(subset("fraud", "1.1.0")["labels"].items())  # doctest: +NORMALIZE_WHITESPACE
    [('app.kubernetes.io/managed-by', 'modelops'), ('modelops.io/deployment', 'fraud'),
     ('modelops.io/version', '1.1.0')]
    """
    labels = {MANAGED_BY_LABEL: MANAGER, DEPLOYMENT_LABEL: md_name, VERSION_LABEL: version}
    return {"name": workload_name(md_name, version), "labels": labels}


def rule_subsets(current: Iterable[Mapping[str, Any]], wanted: Iterable[Obj], *, keep: bool) -> list[Obj]:
    """The subsets to write, by name: each ``wanted`` one (its name and labels over the other fields of the current
    subset of that name, a ``trafficPolicy`` say) and, with ``keep``, the current ones not wanted (the route may
    still name them: step 1 of a split), else only the wanted ones (step 3).

    >>> current = [{"name": "a", "labels": {"v": "1"}, "trafficPolicy": {"tls": {}}}, {"name": "z", "labels": {}}]
    >>> wanted = [{"name": "b", "labels": {"v": "2"}}, {"name": "a", "labels": {"v": "2"}}]
    >>> [s["name"] for s in rule_subsets(current, wanted, keep=True)]
    ['a', 'b', 'z']
    >>> rule_subsets(current, wanted[1:], keep=False)
    [{'name': 'a', 'labels': {'v': '2'}, 'trafficPolicy': {'tls': {}}}]
    """
    present = {str(s.get("name")): dict(s) for s in current}
    out = {str(s["name"]): {**present.get(str(s["name"]), {}), **s} for s in wanted}
    if keep:
        for name, s in present.items():
            out.setdefault(name, s)
    return [out[name] for name in sorted(out)]


def build_destination_rule(md: ModelDeployment, host: str, subsets: list[Obj]) -> Obj:
    """The DestinationRule of host mode: named like ``md``, for ``host``, owned by ``md`` like its other children."""
    return {
        "apiVersion": DESTINATIONRULES.api_version,
        "kind": DESTINATIONRULES.kind,
        "metadata": {
            "name": md.metadata.name,
            "namespace": md.metadata.namespace,
            "labels": owner_labels(md),
            "ownerReferences": [owner_reference(md)],
        },
        "spec": {"host": host, "subsets": subsets},
    }


class VirtualServiceRouter(ListRouteRouter):
    resource = VIRTUALSERVICES
    list_key = "http"
    backends_key = "route"

    def __init__(self, api: KubeApi, namespace: str, md_name: str, settings: IstioRouter, *, port: int) -> None:
        super().__init__(api, namespace, md_name, settings.virtual_service, settings.route_name)
        self.md_name = md_name
        self.port = port
        self.host = settings.host

    @property
    def rule_name(self) -> str:
        """The name of the DestinationRule of host mode: the ModelDeployment's."""
        return self.md_name

    def _destination(self, version: str) -> Obj:
        service = self.names.service(version)
        if self.host is None or version in self.names.extra:
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

    # ------------------------------------------------------------------------------ host mode: the rule

    def set_weights(self, weights: Mapping[str, int]) -> bool:
        if self.host is None:
            return super().set_weights(weights)
        wanted = self._subsets(check_weights(weights))
        owner = self._owner()
        wrote = self._write_rule(owner, wanted, keep=True)
        wrote = super().set_weights(weights) or wrote
        return self._write_rule(owner, wanted, keep=False) or wrote

    def verify_weights(self, weights: Mapping[str, int]) -> bool:
        if not super().verify_weights(weights):
            return False
        return self.host is None or not self._undefined(self._subsets(check_weights(weights)))

    def observe(self, weights: Mapping[str, int]) -> RouteObservation:
        """One GET of the VirtualService; in host mode one of the DestinationRule too. A version whose subset is
        missing from the rule (or selects other labels) is reported under a name that says so, as not matching."""
        seen = super().observe(weights)
        if self.host is None or seen.weights is None:
            return seen
        wanted = check_weights(weights)
        broken = self._undefined(self._subsets(wanted))
        if not broken:
            return seen
        note = f"missing or changed in DestinationRule {self.rule_name}"
        subsets = {v: workload_name(self.md_name, v) for v in wanted}
        marked = {
            (f"{k} (subset {subsets[k]} {note})" if subsets.get(k) in broken else k): w for k, w in seen.weights.items()
        }
        return seen._replace(weights=marked, matches=False)

    def _subsets(self, weights: Mapping[str, int]) -> list[Obj]:
        """The subsets a split names: one per version of this ModelDeployment in it."""
        return [subset(self.md_name, v) for v in weights if v not in self.names.extra]

    def _undefined(self, wanted: list[Obj]) -> set[str]:
        """The ``wanted`` subsets the DestinationRule does not define as wanted (all of them without the rule, or
        when it is for another host)."""
        rule = self.api.get(DESTINATIONRULES, self.namespace, self.rule_name) or {}
        spec = rule.get("spec") or {}
        defined = (
            {s.get("name"): s.get("labels") for s in spec.get("subsets") or []} if spec.get("host") == self.host else {}
        )
        return {str(s["name"]) for s in wanted if defined.get(s["name"]) != s["labels"]}

    def _owner(self) -> ModelDeployment:
        """The ModelDeployment, read for its uid: the rule's ownerReference and ownership check need it."""
        body = self.api.get(MODELDEPLOYMENTS, self.namespace, self.md_name)
        if body is None:
            raise RouterError(
                f"ModelDeployment {self.namespace}/{self.md_name} not found: its DestinationRule has no owner"
            )
        return ModelDeployment.model_validate({"metadata": body["metadata"], "spec": body.get("spec") or {}})

    def _write_rule(self, owner: ModelDeployment, wanted: list[Obj], *, keep: bool) -> bool:
        """Create the rule with ``wanted``, or correct it (see :func:`rule_subsets`); whether it wrote. A rule of that
        name that is not ``owner``'s raises :class:`NotOwnedError` and is left as it is."""
        assert self.host is not None
        host = self.host
        if self.api.get(DESTINATIONRULES, self.namespace, self.rule_name) is None:
            try:
                body = build_destination_rule(owner, host, rule_subsets([], wanted, keep=False))
                self.api.create(DESTINATIONRULES, self.namespace, body)
                return True
            except Conflict:
                pass  # created since we looked: correct it below

        def change(actual: Obj) -> Obj | None:
            if not owned_by(actual, owner):
                raise NotOwnedError(self._not_owned(wanted))
            spec = actual.get("spec") or {}
            subsets = rule_subsets(spec.get("subsets") or [], wanted, keep=keep)
            labels = (actual.get("metadata") or {}).get("labels") or {}
            mine = owner_labels(owner)
            if (
                spec.get("host") == host
                and spec.get("subsets") == subsets
                and all(labels.get(k) == v for k, v in mine.items())
            ):
                return None
            return {"metadata": {"labels": mine}, "spec": {"host": host, "subsets": subsets}}

        return read_modify_write(self.api, DESTINATIONRULES, self.namespace, self.rule_name, change)

    def _not_owned(self, wanted: list[Obj]) -> str:
        names = ", ".join(str(s["name"]) for s in wanted)
        return (
            f"DestinationRule {self.namespace}/{self.rule_name} exists and does not belong to ModelDeployment"
            f" {self.md_name!r} (its labels and ownerReference do not both say so): the operator leaves it as it is"
            f" and moves no traffic; delete or rename it, and the operator creates its own for host {self.host}"
            f" (subsets {names})"
        )
