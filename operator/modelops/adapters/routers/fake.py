"""A router that keeps the split in memory and records every call: for the core's and the handlers' tests."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from modelops.core.observations import RouteAcceptance

from .base import NO_ROUTE, RouteObservation, check_weights, nonzero


@dataclass
class FakeRouter:
    """``weights`` None plays a missing route object; ``calls`` lists (method, argument) in order; ``acceptance``
    is what its controller reports (None: a kind without such a report)."""

    weights: dict[str, int] | None = field(default_factory=dict)
    acceptance: RouteAcceptance | None = None
    calls: list[tuple[str, object]] = field(default_factory=list)
    writes: int = 0

    def set_weights(self, weights: Mapping[str, int]) -> bool:
        wanted = check_weights(weights)
        self.calls.append(("set_weights", dict(wanted)))
        if self.weights == wanted:
            return False
        self.weights = wanted
        self.writes += 1
        return True

    def get_weights(self) -> dict[str, int] | None:
        self.calls.append(("get_weights", None))
        return None if self.weights is None else dict(self.weights)

    def verify_weights(self, weights: Mapping[str, int]) -> bool:
        self.calls.append(("verify_weights", dict(weights)))
        return self.weights is not None and nonzero(self.weights) == nonzero(check_weights(weights))

    def observe(self, weights: Mapping[str, int]) -> RouteObservation:
        self.calls.append(("observe", dict(weights)))
        if self.weights is None:
            return NO_ROUTE
        matches = nonzero(self.weights) == nonzero(check_weights(weights))
        return RouteObservation(dict(self.weights), matches, self.acceptance)

    def add_backends(self, services: Mapping[str, str]) -> None:
        self.calls.append(("add_backends", dict(services)))

    def finalize(self, stable_version: str) -> None:
        self.calls.append(("finalize", stable_version))
        if self.weights is not None and self.weights != {stable_version: 100}:
            self.weights = {stable_version: 100}
            self.writes += 1
