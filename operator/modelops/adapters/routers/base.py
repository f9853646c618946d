"""The traffic router protocol and the helpers the routers share (the factory is ``routers.factory``).

Modelled on Flagger's ``Interface`` (``SetRoutes``/``GetRoutes``/``Finalize``) and Argo Rollouts'
``TrafficRoutingReconciler`` (``SetWeight``/``VerifyWeight``/``RemoveManagedRoutes``). Weights are percent per
version and always sum to 100. Routers hold no state: every call reads the object it manages.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple, Protocol, runtime_checkable

from modelops.adapters.kube import Conflict, KubeApi, Obj, Resource, workload_name
from modelops.adapters.kube.api import SERVICES
from modelops.core.naming import DEPLOYMENT_LABEL, MANAGED_BY_LABEL, MANAGER, VERSION_LABEL
from modelops.core.observations import RouteAcceptance

#: Attempts of one read-modify-write before a run of 409 Conflicts is reported as an error.
MAX_ATTEMPTS = 5


class RouteObservation(NamedTuple):
    """One read of the route: the split in effect (None when the route object is missing), whether it is the one
    wanted (None when unknown), and what the route's controller reported of it (None when the route's kind carries
    no such status)."""

    weights: dict[str, int] | None
    matches: bool | None
    acceptance: RouteAcceptance | None = None


#: the route object is missing
NO_ROUTE = RouteObservation(None, None)


class RouterError(Exception):
    """The route cannot be set: its object is missing, the managed rule is not there, or conflicts persist."""


@runtime_checkable
class Router(Protocol):
    """Sets, reads back and verifies the split of traffic between a model's versions."""

    def set_weights(self, weights: Mapping[str, int]) -> bool:
        """Send ``weights[version]`` percent of traffic to each version; returns whether it wrote."""
        ...

    def get_weights(self) -> dict[str, int] | None:
        """The split currently in effect, in percent per version; None when the route object is missing."""
        ...

    def verify_weights(self, weights: Mapping[str, int]) -> bool:
        """Whether the split in effect is ``weights`` (versions at 0 may be present or absent)."""
        ...

    def observe(self, weights: Mapping[str, int]) -> RouteObservation:
        """``get_weights()``, ``verify_weights(weights)`` and the controller's word on the route, from one read of
        it: what a reconcile asks every tick, so it must cost one request."""
        ...

    def finalize(self, stable_version: str) -> None:
        """All traffic back to ``stable_version``; every other backend removed from the managed route."""
        ...

    def add_backends(self, services: Mapping[str, str]) -> None:
        """Let weights name backends that are not versions of this ModelDeployment (key -> Service name): what a
        ModelRetirement drains to. A router that cannot route to another ModelDeployment raises RouterError."""
        ...


def check_weights(weights: Mapping[str, int]) -> dict[str, int]:
    """Validate a split: at least one version, each 0..100, summing to 100.

    >>> check_weights({"v1": 75, "v2": 25})
    {'v1': 75, 'v2': 25}
    """
    out = dict(weights)
    if not out:
        raise ValueError("weights: at least one version is required")
    for version, weight in out.items():
        if not isinstance(weight, int) or not 0 <= weight <= 100:
            raise ValueError(f"weight of {version!r} must be an integer in 0..100, got {weight!r}")
    if sum(out.values()) != 100:
        raise ValueError(f"weights must sum to 100, got {out}")
    return out


def nonzero(weights: Mapping[str, int]) -> dict[str, int]:
    """The versions that get traffic: comparing splits ignores backends at weight 0."""
    return {k: v for k, v in weights.items() if v}


def percentages(raw: Mapping[str, int]) -> dict[str, int]:
    """Relative weights (Gateway API weights need not sum to 100) as percent, largest remainder keeping sum 100.

    >>> percentages({"a": 1, "b": 1})
    {'a': 50, 'b': 50}
    >>> percentages({"a": 1, "b": 2})
    {'a': 33, 'b': 67}
    >>> percentages({"a": 0})
    {'a': 0}
    """
    total = sum(raw.values())
    if total <= 0:
        return dict.fromkeys(raw, 0)
    exact = {k: 100 * v / total for k, v in raw.items()}
    out = {k: int(x) for k, x in exact.items()}
    by_remainder = sorted(raw, key=lambda k: exact[k] - out[k], reverse=True)
    for k in by_remainder[: 100 - sum(out.values())]:
        out[k] += 1
    return out


def read_modify_write(
    api: KubeApi,
    resource: Resource,
    namespace: str,
    name: str,
    change: Callable[[Obj], Obj | None],
    *,
    attempts: int = MAX_ATTEMPTS,
) -> bool:
    """Read the object, let ``change`` compute a merge patch (None: nothing to do), write it with the
    resourceVersion read as a precondition; on 409 Conflict read again and retry, at most ``attempts`` times.

    Returns whether it wrote. The patch must carry whole lists (merge patches replace lists), which is why the
    callers pass the complete ``rules``/``http`` list with only the managed entry changed.
    """
    for _ in range(attempts):
        obj = api.get(resource, namespace, name)
        if obj is None:
            raise RouterError(f"{resource.kind} {namespace}/{name} not found")
        patch = change(obj)
        if patch is None:
            return False
        patch = {
            **patch,
            "metadata": {**patch.get("metadata", {}), "resourceVersion": obj["metadata"]["resourceVersion"]},
        }
        try:
            api.patch(resource, namespace, name, patch)
        except Conflict:
            continue
        return True
    raise RouterError(f"{resource.kind} {namespace}/{name}: still conflicting after {attempts} attempts")


class VersionNames:
    """Maps a version to its Service name and back (the reverse through the Services' version label)."""

    def __init__(self, api: KubeApi, namespace: str, md_name: str) -> None:
        self.api = api
        self.namespace = namespace
        self.md_name = md_name
        #: backends that are not versions of this ModelDeployment (a retirement drains to another one's Service)
        self.extra: dict[str, str] = {}

    def service(self, version: str) -> str:
        return self.extra.get(version) or workload_name(self.md_name, version)

    def known(self, versions: Iterable[str]) -> dict[str, str]:
        """Service name -> version for ``versions`` (and the extra backends), without asking the API server: the
        operator names every version's Service ``workload_name(deployment, version)``. Backends of other versions
        are not named here; they keep their Service name."""
        out = {workload_name(self.md_name, v): v for v in versions}
        out.update({service: key for key, service in self.extra.items()})
        return out

    def versions(self) -> dict[str, str]:
        """Service name -> version, for the Services the operator made for this ModelDeployment."""
        selector = {MANAGED_BY_LABEL: MANAGER, DEPLOYMENT_LABEL: self.md_name}
        out: dict[str, str] = {}
        for svc in self.api.list(SERVICES, self.namespace, selector):
            version = ((svc.get("metadata") or {}).get("labels") or {}).get(VERSION_LABEL)
            if version:
                out[svc["metadata"]["name"]] = version
        out.update({service: key for key, service in self.extra.items()})
        return out


class ListRouteRouter(ABC):
    """A router that owns one entry of a list in a shared route object (an HTTPRoute rule, a VirtualService http
    route) and rewrites only that entry's backend list: other entries, and other fields of the managed entry,
    survive untouched. Subclasses say how backends are written and read."""

    resource: Resource
    list_key: str
    backends_key: str

    def __init__(self, api: KubeApi, namespace: str, md_name: str, object_name: str, entry_name: str | None) -> None:
        self.api = api
        self.namespace = namespace
        self.object_name = object_name
        self.entry_name = entry_name
        self.names = VersionNames(api, namespace, md_name)

    @abstractmethod
    def render(self, weights: Mapping[str, int]) -> list[Obj]:
        """The backend list for a split."""

    @abstractmethod
    def backend_key(self, backend: Mapping[str, Any]) -> tuple[Any, ...]:
        """What identifies a backend and its weight, with API defaults filled in (to compare, order aside)."""

    @abstractmethod
    def read(self, backends: list[Obj]) -> dict[str, int]:
        """Backend (Service) name -> raw weight, from the backend list."""

    def _index(self, entries: list[Obj]) -> int:
        if self.entry_name is None:
            if not entries:
                raise RouterError(f"{self.resource.kind} {self.namespace}/{self.object_name} has no {self.list_key}")
            return 0
        for i, entry in enumerate(entries):
            if entry.get("name") == self.entry_name:
                return i
        raise RouterError(
            f"{self.resource.kind} {self.namespace}/{self.object_name} has no {self.list_key} entry named "
            f"{self.entry_name!r}"
        )

    def _same(self, current: list[Obj], desired: list[Obj]) -> bool:
        return sorted(map(self.backend_key, current)) == sorted(map(self.backend_key, desired))

    def set_weights(self, weights: Mapping[str, int]) -> bool:
        desired = self.render(check_weights(weights))

        def change(obj: Obj) -> Obj | None:
            entries = list((obj.get("spec") or {}).get(self.list_key) or [])
            i = self._index(entries)
            current = entries[i].get(self.backends_key) or []
            if self._same(current, desired):
                return None
            entries[i] = {**entries[i], self.backends_key: desired}
            return {"spec": {self.list_key: entries}}

        return read_modify_write(self.api, self.resource, self.namespace, self.object_name, change)

    def acceptance(self, obj: Mapping[str, Any]) -> RouteAcceptance | None:
        """What the route's controller reported of ``obj`` (its status); None for kinds that carry no such report."""
        return None

    def _read_route(self) -> dict[str, int] | None:
        """Backend (Service) name -> percent in the managed entry; None when the route object is missing."""
        obj = self.api.get(self.resource, self.namespace, self.object_name)
        return None if obj is None else self._split(obj)

    def _split(self, obj: Mapping[str, Any]) -> dict[str, int]:
        entries = (obj.get("spec") or {}).get(self.list_key) or []
        raw = self.read(entries[self._index(entries)].get(self.backends_key) or [])
        return percentages(raw) if raw else {}

    def get_weights(self) -> dict[str, int] | None:
        split = self._read_route()
        if not split:
            return split
        versions = self.names.versions()
        return {versions.get(name, name): weight for name, weight in split.items()}

    def verify_weights(self, weights: Mapping[str, int]) -> bool:
        actual = self.get_weights()
        return actual is not None and nonzero(actual) == nonzero(check_weights(weights))

    def observe(self, weights: Mapping[str, int]) -> RouteObservation:
        wanted = check_weights(weights)
        obj = self.api.get(self.resource, self.namespace, self.object_name)
        if obj is None:
            return NO_ROUTE
        names = self.names.known(wanted)
        actual = {names.get(name, name): weight for name, weight in self._split(obj).items()}
        return RouteObservation(actual, nonzero(actual) == nonzero(wanted), self.acceptance(obj))

    def add_backends(self, services: Mapping[str, str]) -> None:
        """Let weights name backends that are not versions of this ModelDeployment: key -> Service name."""
        self.names.extra.update(services)

    def finalize(self, stable_version: str) -> None:
        if self.api.get(self.resource, self.namespace, self.object_name) is None:
            return  # nothing left to restore
        self.set_weights({stable_version: 100})
