"""Replicas router: one Service selects every version's pods, so replica counts are the traffic split.

Weights become ``spec.replicas`` of each version's Deployment through
:func:`modelops.core.steps.split_replicas` (``total`` is ``spec.server.replicas``). The version with the smaller
weight is the canary of the split (on a 50/50 tie, the one listed last), every other Deployment of the
ModelDeployment is scaled to 0 (its pods would take traffic behind the shared Service). Readback is
:func:`modelops.core.steps.effective_weight` of the replica counts, so it reports the split the pods really get:

====== ============= ============= ==================
total  weights       replicas      get_weights
====== ============= ============= ==================
4      v1 95, v2 5   v1 3, v2 1    v1 75, v2 25
10     v1 75, v2 25  v1 7, v2 3    v1 70, v2 30
4      v2 100        v1 0, v2 4    v1 0, v2 100
====== ============= ============= ==================

The kube adapter leaves ``spec.replicas`` alone for this router (``ensure_workload(..., replicas=None)``).
"""

from __future__ import annotations

from collections.abc import Mapping

from modelops.adapters.kube import DEPLOYMENTS, KubeApi, Obj
from modelops.core.naming import DEPLOYMENT_LABEL, MANAGED_BY_LABEL, MANAGER, VERSION_LABEL
from modelops.core.steps import effective_weight, split_replicas

from .base import NO_ROUTE, RouteObservation, RouterError, VersionNames, check_weights, nonzero, read_modify_write


def replica_split(total: int, weights: Mapping[str, int]) -> dict[str, int]:
    """Replica count per version for a split of at most two versions with traffic.

    >>> replica_split(10, {"v1": 75, "v2": 25})
    {'v1': 7, 'v2': 3}
    >>> replica_split(4, {"v1": 0, "v2": 100})
    {'v1': 0, 'v2': 4}
    """
    live = nonzero(check_weights(weights))
    out = dict.fromkeys(weights, 0)
    if len(live) == 1:
        (only,) = live
        out[only] = total
        return out
    if len(live) != 2:
        raise RouterError(f"the replicas router splits between two versions at most, got {dict(weights)}")
    first, second = live
    canary, stable = (first, second) if live[first] < live[second] else (second, first)
    out[stable], out[canary] = split_replicas(total, live[canary])
    return out


class ReplicaRouter:
    """Traffic split by replica counts of the version Deployments behind one Service."""

    def __init__(self, api: KubeApi, namespace: str, md_name: str, *, total: int) -> None:
        self.api = api
        self.namespace = namespace
        self.names = VersionNames(api, namespace, md_name)
        self.md_name = md_name
        self.total = total

    def _deployments(self) -> dict[str, Obj]:
        """version -> Deployment, for the Deployments the operator made for this ModelDeployment."""
        selector = {MANAGED_BY_LABEL: MANAGER, DEPLOYMENT_LABEL: self.md_name}
        out: dict[str, Obj] = {}
        for obj in self.api.list(DEPLOYMENTS, self.namespace, selector):
            version = ((obj.get("metadata") or {}).get("labels") or {}).get(VERSION_LABEL)
            if version:
                out[version] = obj
        return out

    def _counts(
        self, weights: Mapping[str, int], deployments: Mapping[str, Obj] | None = None
    ) -> tuple[dict[str, int], dict[str, Obj]]:
        wanted = replica_split(self.total, weights)
        deployments = dict(self._deployments() if deployments is None else deployments)
        missing = [v for v, n in wanted.items() if n and v not in deployments]
        if missing:
            raise RouterError(f"no Deployment for version(s) {missing} of {self.md_name!r}: create the workload first")
        for version in deployments:
            wanted.setdefault(version, 0)
        return wanted, deployments

    def set_weights(self, weights: Mapping[str, int]) -> bool:
        wanted, deployments = self._counts(weights)
        wrote = False

        def growing_first(item: tuple[str, int]) -> int:
            current = int((deployments.get(item[0], {}).get("spec") or {}).get("replicas") or 0)
            return 0 if item[1] >= current else 1

        # Scale up before scaling down, so capacity never dips below the total while traffic moves.
        for version, count in sorted(wanted.items(), key=growing_first):
            obj = deployments.get(version)
            if obj is None or (obj.get("spec") or {}).get("replicas") == count:
                continue

            def change(current: Obj, count: int = count) -> Obj | None:
                return None if (current.get("spec") or {}).get("replicas") == count else {"spec": {"replicas": count}}

            wrote = read_modify_write(self.api, DEPLOYMENTS, self.namespace, obj["metadata"]["name"], change) or wrote
        return wrote

    def get_weights(self) -> dict[str, int] | None:
        return self._weights_of(self._deployments())

    @staticmethod
    def _weights_of(deployments: Mapping[str, Obj]) -> dict[str, int] | None:
        if not deployments:
            return None
        counts = {v: int((d.get("spec") or {}).get("replicas") or 0) for v, d in deployments.items()}
        total = sum(counts.values())
        live = nonzero(counts)
        out = dict.fromkeys(counts, 0)
        if len(live) == 2:
            first, second = live
            out[second] = effective_weight(live[first], live[second])
            out[first] = 100 - out[second]
        elif total:
            out.update({v: round(100 * n / total) for v, n in live.items()})
        return out

    def verify_weights(self, weights: Mapping[str, int]) -> bool:
        return self._verify_with(weights, self._deployments())

    def _verify_with(self, weights: Mapping[str, int], deployments: Mapping[str, Obj]) -> bool:
        try:
            wanted, deployments = self._counts(weights, deployments)
        except RouterError:
            return False
        return all(
            int((deployments[v].get("spec") or {}).get("replicas") or 0) == n
            for v, n in wanted.items()
            if v in deployments
        )

    def observe(self, weights: Mapping[str, int]) -> RouteObservation:
        """One LIST of the version Deployments serves both the readback and the verdict."""
        check_weights(weights)
        deployments = self._deployments()
        actual = self._weights_of(deployments)
        if actual is None:
            return NO_ROUTE
        return RouteObservation(actual, self._verify_with(weights, deployments))

    def add_backends(self, services: Mapping[str, str]) -> None:
        """Replica counts split one ModelDeployment's traffic only: there is no route to drain to another one."""
        raise RouterError("router replicas cannot drain to another ModelDeployment (use gatewayAPI or istio)")

    def finalize(self, stable_version: str) -> None:
        deployments = self._deployments()
        if stable_version not in deployments:
            return  # nothing to send traffic back to; the workloads are being removed
        self.set_weights({stable_version: 100})
