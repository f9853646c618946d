"""Polling with a deadline, the one way the tests wait for something (never a bare sleep).

``wait_for(check)`` calls ``check`` every ``interval`` seconds until it returns something truthy and returns that;
exceptions of the types in ``tolerate`` count as "not yet". After ``timeout`` seconds it fails with ``what`` and the
last answer (or exception) seen.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def wait_for(
    check: Callable[[], T | None],
    timeout: float = 30.0,
    what: str | Callable[[], str] = "condition",
    *,
    interval: float = 0.05,
    tolerate: tuple[type[BaseException], ...] = (),
) -> T:
    """Poll ``check`` until it returns something truthy; ``what`` (a callable: evaluated at the failure, e.g. to
    show the end of a log) names the condition in the failure."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            result = check()
        except tolerate as exc:
            last = exc
        else:
            if result:
                return result
            last = result
        if time.monotonic() >= deadline:
            described = what() if callable(what) else what
            error = AssertionError(f"{described} not met within {timeout:g} s; last: {last!r}")
            raise error from (last if isinstance(last, BaseException) else None)
        time.sleep(interval)  # a polling interval, not synchronisation: ``check`` decides
