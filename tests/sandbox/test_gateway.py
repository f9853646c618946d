"""The gateway: weights from routes (pure adapters), weighted choice, refresh, and real traffic splits."""

from __future__ import annotations

import doctest
import socket
from collections.abc import Callable, Iterator

import httpx
import pytest
from scipy.stats import binom

from modelops.sandbox import gateway as gateway_module
from modelops.sandbox.gateway import (
    Gateway,
    Router,
    RoutingTable,
    httproute_weights,
    replica_weights,
    virtualservice_route_weights,
    virtualservice_weights,
)
from modelops.sandbox.models import ModelServer, load_slice
from modelops.sandbox.traffic import TrafficDriver

from .helpers import metric_value, scrape

Serve = Callable[..., ModelServer]


def test_docstring_examples() -> None:
    failed, attempted = doctest.testmod(gateway_module)
    assert failed == 0
    assert attempted > 0


# ----------------------------------------------------------------------------------------------- adapters

ROUTE = {
    "apiVersion": "gateway.networking.k8s.io/v1",
    "kind": "HTTPRoute",
    "spec": {
        "rules": [
            {"name": "other", "backendRefs": [{"name": "other-svc", "port": 80}]},
            {
                "name": "model",
                "backendRefs": [
                    {"name": "demo-v1", "port": 8080, "weight": 95},
                    {"name": "demo-v2", "port": 8080, "weight": 5},
                ],
            },
        ]
    },
}


def test_httproute_rule_by_name_or_first() -> None:
    assert httproute_weights(ROUTE, "model") == {"demo-v1": 95.0, "demo-v2": 5.0}
    assert httproute_weights(ROUTE) == {"other-svc": 1.0}  # no weight: 1, the Gateway API default
    with pytest.raises(ValueError, match="no rule named 'absent'"):
        httproute_weights(ROUTE, "absent")


def test_virtualservice_weights() -> None:
    vs = {
        "spec": {
            "http": [
                {
                    "name": "primary",
                    "route": [
                        {"destination": {"host": "demo-v1.ns.svc.cluster.local"}, "weight": 75},
                        {"destination": {"host": "demo-v2.ns.svc.cluster.local"}, "weight": 25},
                    ],
                }
            ]
        }
    }
    assert virtualservice_weights(vs, "primary") == {
        "demo-v1.ns.svc.cluster.local": 75.0,
        "demo-v2.ns.svc.cluster.local": 25.0,
    }
    # among several destinations a missing weight is 0 (Istio), a lone destination takes everything
    two = {"route": [{"destination": {"host": "a"}, "weight": 100}, {"destination": {"host": "b"}}]}
    assert virtualservice_route_weights(two) == {"a": 100.0, "b": 0.0}
    assert virtualservice_route_weights({"route": [{"destination": {"host": "a"}, "weight": 0}]}) == {"a": 100.0}


def test_replica_weights() -> None:
    assert replica_weights({"demo-v1": 3, "demo-v2": 0}) == {"demo-v1": 3.0, "demo-v2": 0.0}


# -------------------------------------------------------------------------------------------------- choice


def test_table_skips_backends_without_weight_or_replicas() -> None:
    table = RoutingTable.build({"a": 50, "b": 0, "c": 50}, lambda name: [] if name == "c" else [f"http://{name}"])
    assert table.weights() == {"a": 50.0}
    assert table.choose(0.99) == ("a", "http://a")
    assert RoutingTable.build({}, lambda name: []).choose(0.5) is None


def test_table_choice_follows_the_cumulative_weights() -> None:
    table = RoutingTable.build({"a": 25, "b": 75}, lambda name: [f"http://{name}"])
    picks = [table.choose(i / 1000)[0] for i in range(1000)]  # type: ignore[index]
    assert picks.count("a") == 250


def test_replicas_of_a_backend_take_turns() -> None:
    table = RoutingTable.build({"a": 1}, lambda name: ["http://a-0", "http://a-1", "http://a-2"])
    assert [table.choose(0.5)[1] for _ in range(6)] == ["http://a-0", "http://a-1", "http://a-2"] * 2  # type: ignore[index]


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_router_refreshes_at_most_every_interval_and_keeps_the_last_table_on_errors() -> None:
    clock, calls = FakeClock(), []
    weights: dict[str, float] = {"a": 1}

    def source() -> dict[str, float]:
        calls.append(clock.now)
        if weights.get("fail"):
            raise RuntimeError("apiserver down")
        return dict(weights)

    router = Router(source, lambda name: [f"http://{name}"], refresh_interval=0.5, clock=clock)
    assert router.choose() == ("a", "http://a")
    weights.clear()
    weights["b"] = 1
    clock.now += 0.4
    assert router.choose() == ("a", "http://a")  # not stale yet: no call
    assert len(calls) == 1
    clock.now += 0.1
    assert router.choose() == ("b", "http://b")
    assert len(calls) == 2
    weights["fail"] = 1
    clock.now += 1
    assert router.choose() == ("b", "http://b")  # the failing source leaves the last table in place
    assert len(calls) == 3


# ------------------------------------------------------------------------------------------- real traffic


@pytest.fixture
def backends(serve: Serve) -> dict[str, ModelServer]:
    return {"demo-v1": serve("v1"), "demo-v2": serve("v2")}


@pytest.fixture
def weights() -> dict[str, float]:
    return {}


@pytest.fixture
def gateway(backends: dict[str, ModelServer], weights: dict[str, float]) -> Iterator[Gateway]:
    def resolve(name: str) -> list[str]:
        return [backends[name].url] if name in backends else []

    with Gateway(lambda: dict(weights), resolve, refresh_interval=0.2) as gw:
        yield gw


def drive(url: str, n: int) -> dict[str, int]:
    """Send ``n`` labelled requests through the gateway as fast as it takes them; requests per backend."""
    with TrafficDriver(url, rate=5000, max_requests=n, concurrency=8) as driver:
        assert driver.wait(60), "the driver did not finish"
        stats = driver.stats()
    assert stats.finished == stats.ok == n, stats  # every request answered, none failed
    return dict(stats.by_backend)


#: a split outside the central 1 - 1e-6 of Binomial(n, p) fails: a correct gateway fails once in a million runs
ALPHA = 1e-6


@pytest.mark.parametrize(
    ("split", "n", "canary_share"),
    [((100, 0), 200, 0.0), ((0, 100), 200, 1.0), ((75, 25), 800, 0.25)],
    ids=["0-100", "100-0", "25-75"],
)
def test_gateway_splits_traffic_by_weight(
    gateway: Gateway, weights: dict[str, float], split: tuple[int, int], n: int, canary_share: float
) -> None:
    weights.update({"demo-v1": split[0], "demo-v2": split[1]})
    seen = drive(gateway.url, n)
    canary = seen.get("demo-v2", 0)
    if canary_share in (0.0, 1.0):
        assert canary == n * canary_share  # exact: a backend with weight 0 gets nothing
    else:
        # 25% of 800: 200 expected, sd 12.2; the bound is 142..262 (18%..33%), so 5% or 50% would fail
        low, high = binom.interval(1 - ALPHA, n, canary_share)
        assert low <= canary <= high, f"{canary} of {n} to the canary, expected {low:.0f}..{high:.0f}"
    assert seen.get("demo-v1", 0) + canary == n


def test_gateway_follows_a_weight_change(gateway: Gateway, weights: dict[str, float]) -> None:
    weights.update({"demo-v1": 100, "demo-v2": 0})
    with httpx.Client(timeout=5) as client:

        def version() -> str:
            answer = client.post(f"{gateway.url}/predict", json={"instances": load_slice("live").x[:1].tolist()})
            assert answer.status_code == 200
            return str(answer.json()["version"])

        assert {version() for _ in range(20)} == {"v1"}
        weights.update({"demo-v1": 0, "demo-v2": 100})
        for _ in range(2000):  # bounded: the refresh interval is 0.2 s; each request takes about a millisecond
            if version() == "v2":
                break
        else:
            pytest.fail("the gateway never followed the weight change")
        assert {version() for _ in range(50)} == {"v2"}  # once the new table is in, nothing goes to v1


def test_gateway_retries_a_refused_replica_and_round_robins(serve: Serve) -> None:
    live = serve("v2")
    with socket.socket() as s:  # a port nobody listens on once closed: connections are refused
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    with Gateway(lambda: {"demo-v2": 1}, lambda name: [dead, live.url]) as gw:
        seen = drive(gw.url, 40)
    assert seen == {"demo-v2": 40}
    assert metric_value(scrape(live.url), "model_requests_total", model="demo", version="v2") == 40


def test_gateway_answers_503_without_backends_and_exports_metrics(gateway: Gateway, weights: dict[str, float]) -> None:
    with httpx.Client(timeout=5) as client:
        answer = client.post(f"{gateway.url}/predict", json={"instances": [[0.0] * 8]})
        assert answer.status_code == 503
        weights["demo-v1"] = 1
        for _ in range(2000):  # until the refresh picks up the weight
            if client.post(f"{gateway.url}/predict", json={"instances": [[0.0] * 8]}).status_code == 200:
                break
        else:
            pytest.fail("the gateway never routed to demo-v1")
    text = scrape(gateway.url)
    assert metric_value(text, "gateway_requests_total", backend="", code="503")
    assert metric_value(text, "gateway_requests_total", backend="demo-v1", code="200") == 1.0
    assert metric_value(text, "gateway_backend_weight", backend="demo-v1") == 1.0
