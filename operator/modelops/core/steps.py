"""Step arithmetic: replica counts for a canary weight, when traffic is split by replicas behind one Service."""

from __future__ import annotations


def _round_half_up(numerator: int, denominator: int) -> int:
    return (2 * numerator + denominator) // (2 * denominator)


def split_replicas(total: int, canary_weight: int) -> tuple[int, int]:
    """Replica counts ``(stable, canary)`` that carry ``canary_weight`` percent of traffic.

    Rules: the canary gets ``total * weight / 100`` replicas rounded half up; a canary with any weight gets at least
    one replica and, unless its weight is 100, the stable version keeps at least one, so with few replicas the
    split is coarse and may surge one above ``total`` (``total`` 1 at weight 50 runs 1 + 1). Weight 0 and 100 are
    exact.

    ===== ====== ====== ======= ==================
    total weight stable canary  effective weight
    ===== ====== ====== ======= ==================
    4     0      4      0       0
    4     5      3      1       25
    4     25     3      1       25
    4     50     2      2       50
    4     100    0      4       100
    10    5      9      1       10
    10    25     7      3       30 (2.5 rounds up)
    10    50     5      5       50
    1     50     1      1       50 (surge of one)
    0     50     0      0       0 (nothing to run)
    ===== ====== ====== ======= ==================

    >>> split_replicas(10, 25)
    (7, 3)
    >>> split_replicas(4, 5)
    (3, 1)
    >>> split_replicas(1, 50)
    (1, 1)
    """
    if total < 0:
        raise ValueError(f"total replicas must be >= 0, got {total}")
    if not 0 <= canary_weight <= 100:
        raise ValueError(f"weight must be in 0..100, got {canary_weight}")
    if total == 0:
        return 0, 0
    if canary_weight == 0:
        return total, 0
    if canary_weight == 100:
        return 0, total
    canary = max(1, _round_half_up(total * canary_weight, 100))
    stable = max(1, total - canary)
    return stable, canary


def effective_weight(stable_replicas: int, canary_replicas: int) -> int:
    """The percent of traffic the canary gets from replica counts, rounded half up.

    >>> effective_weight(7, 3)
    30
    >>> effective_weight(0, 0)
    0
    """
    total = stable_replicas + canary_replicas
    if total == 0:
        return 0
    return _round_half_up(100 * canary_replicas, total)


def canary_weights(stable: str | None, candidate: str | None, canary_weight: int) -> dict[str, int]:
    """The split of traffic between the stable version and the candidate: percent per version, summing to 100.

    ======== ========= ====== =====================
    stable   candidate weight result
    ======== ========= ====== =====================
    v1       v2        25     {v1: 75, v2: 25}
    v1       v2        0      {v1: 100, v2: 0}
    v1       None      any    {v1: 100}
    None     v2        any    {v2: 100} (nothing else to serve)
    None     None      any    {} (nothing serves yet)
    ======== ========= ====== =====================

    >>> canary_weights("v1", "v2", 25)
    {'v1': 75, 'v2': 25}
    >>> canary_weights("v1", None, 25)
    {'v1': 100}
    """
    if not 0 <= canary_weight <= 100:
        raise ValueError(f"weight must be in 0..100, got {canary_weight}")
    if stable is None:
        return {candidate: 100} if candidate else {}
    if candidate is None or candidate == stable:
        return {stable: 100}
    return {stable: 100 - canary_weight, candidate: canary_weight}


def step_weights(weights: list[int]) -> list[tuple[int, int]]:
    """Each step as ``(stable, candidate)`` percent: the table a rollout walks through.

    >>> step_weights([5, 25, 50, 100])
    [(95, 5), (75, 25), (50, 50), (0, 100)]
    """
    return [(100 - w, w) for w in weights]
