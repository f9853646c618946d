"""Did the data plane split the traffic as the route says? Per-backend shares of answers against its weights.

With weight ``w`` percent and ``n`` answers, the count of one backend is at most Binomial(n, w/100) spread around
``n * w / 100`` if the data plane picks backends at random by weight (one that picks in weighted round robin, as
Traefik does, is far closer). A share is within tolerance when ``|share - w/100| <= z * sqrt(p (1 - p) / n)``
plus half a request for rounding: with ``z = 4``, at the weights of a canary (5 % and up) and a few hundred answers,
a random split strays beyond it less than once in 1,000 checks (exact binomial tails in tests/sandbox/test_shares.py).

:class:`RouteSegments` polls an HTTPRoute and, each time its controller has accepted a new split, starts a new
segment of a :class:`~modelops.sandbox.traffic.TrafficDriver`; :func:`segment_checks` judges each segment.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from modelops.adapters.routers.gateway_api import route_acceptance
from modelops.core.naming import workload_name
from modelops.core.observations import Acceptance
from modelops.sandbox.node import Client, Kind
from modelops.sandbox.traffic import Segment, TrafficDriver

__all__ = ["RouteSegments", "ShareCheck", "Z", "binomial_bound", "check_shares", "route_split", "segment_checks"]

log = logging.getLogger(__name__)

HTTPROUTES = Kind("gateway.networking.k8s.io", "v1", "httproutes")
#: standard deviations of the binomial a share may stray from its weight
Z = 4.0


def binomial_bound(p: float, n: int, z: float = Z) -> float:
    """How far a share of ``n`` draws may stray from ``p``: ``z`` standard deviations plus half a draw.

    >>> round(binomial_bound(0.25, 400), 4)
    0.0879
    >>> binomial_bound(1.0, 400) == 0.5 / 400
    True
    """
    if n <= 0:
        return 1.0
    return z * math.sqrt(p * (1.0 - p) / n) + 0.5 / n


@dataclass(frozen=True)
class ShareCheck:
    backend: str
    weight: int
    count: int
    total: int

    @property
    def share(self) -> float:
        return self.count / self.total if self.total else 0.0

    @property
    def bound(self) -> float:
        return binomial_bound(self.weight / 100, self.total)

    @property
    def ok(self) -> bool:
        return abs(self.share - self.weight / 100) <= self.bound

    def __str__(self) -> str:
        mark = "ok" if self.ok else "OUT"
        within = f"weight {self.weight}% +/- {self.bound:.1%}"
        return f"{self.backend} {self.count}/{self.total} = {self.share:.1%} ({within}) {mark}"


def check_shares(weights: Mapping[str, int], counts: Mapping[str, int]) -> list[ShareCheck]:
    """One check per backend of ``weights`` or ``counts`` (a backend answering without weight has weight 0).

    >>> [c.ok for c in check_shares({"a": 75, "b": 25}, {"a": 290, "b": 110})]
    [True, True]
    >>> [c.ok for c in check_shares({"a": 100}, {"a": 399, "b": 1})]
    [False, False]
    """
    total = sum(counts.values())
    names = list(weights) + [b for b in counts if b not in weights]
    return [ShareCheck(b, int(weights.get(b, 0)), int(counts.get(b, 0)), total) for b in names]


def route_split(route: Mapping[str, Any], rule: str | None = None) -> dict[str, int]:
    """Backend Service name -> weight (as written) of one HTTPRoute rule (``rule`` by name, else the first)."""
    rules = (route.get("spec") or {}).get("rules") or []
    chosen = next((r for r in rules if r.get("name") == rule), None) if rule else (rules[0] if rules else None)
    out: dict[str, int] = {}
    for ref in (chosen or {}).get("backendRefs") or []:
        out[str(ref["name"])] = out.get(str(ref["name"]), 0) + int(ref.get("weight", 1))
    return out


def segment_checks(segment: Segment) -> list[ShareCheck]:
    """A segment's answers (``model/version``) against its weights (by Service, named ``<model>-<version>``)."""
    counts: dict[str, int] = {}
    for backend, n in segment.by_backend.items():
        model, _, version = backend.partition("/")
        service = workload_name(model, version)
        counts[service] = counts.get(service, 0) + n
    total = sum(segment.weights.values())
    weights = {b: round(100 * w / total) if total else 0 for b, w in segment.weights.items()}
    return check_shares(weights, counts)


class RouteSegments:
    """Polls one HTTPRoute every ``interval`` seconds; when a new split is in its spec and its controller accepted
    that generation, ``driver.mark(split)``. ``start()``/``stop()``."""

    def __init__(
        self,
        client: Client,
        namespace: str,
        name: str,
        driver: TrafficDriver,
        *,
        rule: str | None = None,
        interval: float = 0.2,
        settle: float = 1.0,
    ) -> None:
        self.client, self.namespace, self.name, self.rule = client, namespace, name, rule
        self.driver, self.interval, self.settle = driver, interval, settle
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"route-segments-{name}", daemon=True)
        self._last: dict[str, int] | None = None

    def start(self) -> RouteSegments:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10.0)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                route = self.client.get(HTTPROUTES, self.namespace, self.name)
            except Exception as exc:  # a poll that fails is tried again at the next one
                log.debug("reading route %s/%s: %s", self.namespace, self.name, exc)
                continue
            if route is None:
                continue
            split = route_split(route, self.rule)
            if split != self._last and route_acceptance(route).state == Acceptance.ACCEPTED:
                self._last = split
                self.driver.mark(split, self.settle)
