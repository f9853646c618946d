"""Weight arithmetic shared by the routers, and the fake router."""

from __future__ import annotations

import pytest

from modelops.adapters.routers import FakeRouter, Router, check_weights, nonzero, percentages


@pytest.mark.parametrize(
    ("raw", "percent"),
    [
        ({"a": 100}, {"a": 100}),
        ({"a": 1, "b": 1}, {"a": 50, "b": 50}),
        ({"a": 1, "b": 2}, {"a": 33, "b": 67}),
        ({"a": 1, "b": 1, "c": 1}, {"a": 34, "b": 33, "c": 33}),
        ({"a": 0, "b": 0}, {"a": 0, "b": 0}),
        ({"a": 90, "b": 10}, {"a": 90, "b": 10}),
    ],
)
def test_percentages_sum_to_100(raw: dict[str, int], percent: dict[str, int]) -> None:
    assert percentages(raw) == percent


def test_check_weights_and_nonzero() -> None:
    assert check_weights({"a": 0, "b": 100}) == {"a": 0, "b": 100}
    assert nonzero({"a": 0, "b": 100}) == {"b": 100}
    with pytest.raises(ValueError, match="sum to 100"):
        check_weights({"a": 50})


def test_fake_router_records_and_reads_back() -> None:
    fake = FakeRouter(weights={"1.0.0": 100})
    assert isinstance(fake, Router)
    assert fake.set_weights({"1.0.0": 75, "1.1.0": 25}) is True
    assert fake.set_weights({"1.0.0": 75, "1.1.0": 25}) is False
    assert fake.get_weights() == {"1.0.0": 75, "1.1.0": 25}
    assert fake.verify_weights({"1.0.0": 75, "1.1.0": 25}) is True
    fake.finalize("1.0.0")
    assert fake.get_weights() == {"1.0.0": 100}
    assert fake.writes == 2
    assert [c[0] for c in fake.calls] == [
        "set_weights",
        "set_weights",
        "get_weights",
        "verify_weights",
        "finalize",
        "get_weights",
    ]


def test_fake_router_plays_a_missing_route() -> None:
    fake = FakeRouter(weights=None)
    assert fake.get_weights() is None
    assert fake.verify_weights({"1.0.0": 100}) is False
    fake.finalize("1.0.0")
    assert fake.writes == 0
