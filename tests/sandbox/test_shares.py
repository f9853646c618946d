"""Shares of answers against the route's weights: the binomial bound, the checks, and the driver's segments."""

from __future__ import annotations

import doctest
import time
from collections.abc import Callable

import pytest
from scipy import stats as scipy_stats

from modelops.adapters.routers import gateway_api
from modelops.sandbox import shares, traefik
from modelops.sandbox.models import ModelServer
from modelops.sandbox.shares import binomial_bound, check_shares, route_split, segment_checks
from modelops.sandbox.traffic import Segment, TrafficDriver

from .helpers import wait_for

Serve = Callable[..., ModelServer]


@pytest.mark.parametrize("module", [shares, traefik, gateway_api])
def test_docstring_examples(module: object) -> None:
    failed, attempted = doctest.testmod(module, optionflags=doctest.ELLIPSIS)  # type: ignore[arg-type]
    assert (failed, attempted > 0) == (0, True)


@pytest.mark.parametrize(("p", "n"), [(0.05, 200), (0.05, 560), (0.25, 400), (0.5, 580), (0.5, 1000)])
def test_the_bound_leaves_out_what_a_random_split_almost_never_does(p: float, n: int) -> None:
    """Computed apart from the formula: the exact chance that Binomial(n, p) gives a count the check calls out."""
    outside = sum(
        scipy_stats.binom.pmf(k, n, p)
        for k in range(n + 1)
        if not check_shares({"a": round(100 * p)}, {"a": k, "b": n - k})[0].ok
    )
    assert outside < 1e-3
    assert binomial_bound(p, n) < 0.2  # and it is not so wide that it would pass anything


def test_a_backend_that_answers_without_weight_or_a_wrong_split_is_out() -> None:
    assert [c.ok for c in check_shares({"a": 50, "b": 50}, {"a": 250, "b": 250})] == [True, True]
    assert [c.ok for c in check_shares({"a": 50, "b": 50}, {"a": 300, "b": 200})] == [False, False]
    assert [(c.backend, c.ok) for c in check_shares({"a": 100}, {"a": 90, "c": 10})] == [("a", False), ("c", False)]


def test_route_split_reads_the_named_rule() -> None:
    route = {"spec": {"rules": [{"name": "docs", "backendRefs": [{"name": "d"}]},
                                {"name": "model", "backendRefs": [{"name": "m-v1", "weight": 3},
                                                                  {"name": "m-v2", "weight": 1}]}]}}  # fmt: skip
    assert route_split(route, "model") == {"m-v1": 3, "m-v2": 1}
    assert route_split(route) == {"d": 1}
    segment = Segment({"m-v1": 3, "m-v2": 1}, 0.0, 1.0)
    segment.by_backend.update({"m/v1": 75, "m/v2": 25})
    assert [(c.backend, c.weight, c.ok) for c in segment_checks(segment)] == [("m-v1", 75, True), ("m-v2", 25, True)]


def settled(segment: Segment) -> int:
    """Answers counted in ``segment`` that its end window (the last ``settle`` seconds) can no longer set apart."""
    near_end = sum(1 for sent, _ in segment.recent if sent >= time.monotonic() - segment.settle)
    return sum(segment.by_backend.values()) - near_end


def test_the_driver_counts_each_answer_in_the_segment_it_was_sent_in(serve: Serve) -> None:
    server = serve("v2")
    driver = TrafficDriver(server.url, rate=200, max_requests=100_000)
    driver.mark({"demo-v2": 100}, settle=0.2)  # before the first request
    driver.start()
    try:
        wait_for(lambda: settled(driver.segments()[0]) >= 30, what="answers in the first segment, past its end window")
        driver.mark({"demo-v2": 50, "demo-v1": 50}, settle=0.0)
        wait_for(lambda: sum(driver.segments()[1].by_backend.values()) >= 30, what="answers in the second segment")
    finally:
        stats = driver.stop()
    first, second = driver.segments()
    assert set(first.by_backend) == set(second.by_backend) == {"demo/v2"}
    assert first.settling > 0, "answers sent in the first 0.2 s of a segment are set apart"
    assert sum(first.by_backend.values()) + first.settling + sum(second.by_backend.values()) == stats.ok
    assert [c.ok for c in segment_checks(first)] == [True]
    # the second segment says 50/50, yet only v2 answered: the check sees it
    assert [(c.backend, c.ok) for c in segment_checks(second)] == [("demo-v2", False), ("demo-v1", False)]


def test_answers_sent_just_before_a_segment_ends_are_set_apart() -> None:
    """The data plane may take the next split a moment before it is seen accepted: the last ``settle`` seconds of
    a segment are not judged against its weights (answers come back out of order, too)."""
    segment = Segment({"m-v1": 100}, started=0.0, settle=1.0)
    for sent in (1.5, 2.0, 5.0, 9.5, 9.2, 3.0):
        segment.count(sent, "m/v1")
    segment.count(9.8, "m/v2")  # the next split already served it
    segment.end(10.0)
    # 1.5, 2.0, 3.0 and 5.0 count; 9.2, 9.5 and v2's 9.8 fall in the last second
    assert (dict(segment.by_backend), segment.settling) == ({"m/v1": 4}, 3)
    segment.count(9.9, "m/v2")  # an answer that comes back after the end
    assert (dict(segment.by_backend), segment.settling) == ({"m/v1": 4}, 4)
    assert [c.ok for c in segment_checks(segment)] == [True]
