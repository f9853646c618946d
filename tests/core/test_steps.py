"""The step arithmetic's tables (the docstrings' worked examples are the test, as Argo's canary_test.go)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelops.core import canary_weights, effective_weight, split_replicas
from modelops.core.steps import step_weights

SPLIT_TABLE = [
    # total, weight, stable, canary, effective weight
    (4, 0, 4, 0, 0),
    (4, 5, 3, 1, 25),
    (4, 25, 3, 1, 25),
    (4, 50, 2, 2, 50),
    (4, 100, 0, 4, 100),
    (10, 5, 9, 1, 10),
    (10, 25, 7, 3, 30),  # 2.5 rounds half up
    (10, 50, 5, 5, 50),
    (1, 50, 1, 1, 50),  # a surge of one: both versions keep a replica
    (0, 50, 0, 0, 0),  # nothing to run
    (3, 99, 1, 3, 75),  # the stable version keeps one replica until weight 100
    (20, 10, 18, 2, 10),
]


@pytest.mark.parametrize(
    ("total", "weight", "stable", "canary", "effective"),
    SPLIT_TABLE,
    ids=[f"{t}-replicas-at-{w}" for t, w, *_ in SPLIT_TABLE],
)
def test_split_replicas_table(total: int, weight: int, stable: int, canary: int, effective: int) -> None:
    assert split_replicas(total, weight) == (stable, canary)
    assert effective_weight(stable, canary) == effective


@pytest.mark.parametrize(("total", "weight"), [(-1, 10), (4, -1), (4, 101)])
def test_split_replicas_rejects_impossible_input(total: int, weight: int) -> None:
    with pytest.raises(ValueError, match="must be"):
        split_replicas(total, weight)


@given(st.integers(0, 200), st.integers(0, 100))
def test_split_replicas_properties(total: int, weight: int) -> None:
    stable, canary = split_replicas(total, weight)
    assert stable >= 0
    assert canary >= 0
    assert stable + canary <= total + 1  # at most a surge of one
    if total and 0 < weight < 100:
        assert stable >= 1
        assert canary >= 1
    if weight in (0, 100):
        assert (stable, canary) == ((total, 0) if weight == 0 else (0, total))


CANARY_TABLE = [
    ("v1", "v2", 25, {"v1": 75, "v2": 25}),
    ("v1", "v2", 0, {"v1": 100, "v2": 0}),
    ("v1", "v2", 100, {"v1": 0, "v2": 100}),
    ("v1", None, 25, {"v1": 100}),
    (None, "v2", 25, {"v2": 100}),
    (None, None, 0, {}),
]


@pytest.mark.parametrize(("stable", "candidate", "weight", "expected"), CANARY_TABLE)
def test_canary_weights_table(stable: str | None, candidate: str | None, weight: int, expected: dict[str, int]) -> None:
    assert canary_weights(stable, candidate, weight) == expected


def test_step_weights() -> None:
    assert step_weights([5, 25, 50, 100]) == [(95, 5), (75, 25), (50, 50), (0, 100)]
