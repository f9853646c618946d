"""The traffic driver: pacing, bounds, counting, and shifting the input distribution the server sees."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from modelops.sandbox.models import ModelServer, load_slice
from modelops.sandbox.traffic import TrafficDriver

from .helpers import metric_value, scrape, wait_for

Serve = Callable[..., ModelServer]


def test_driver_stops_at_its_request_bound_and_counts_every_answer(serve: Serve) -> None:
    server = serve("v2")
    with TrafficDriver(server.url, rate=1000, max_requests=120, batch=2) as driver:
        assert driver.wait(30)
        stats = driver.stats()
    assert stats.sent == stats.finished == stats.ok == 120
    assert stats.judged == 240  # two labelled rows per request
    assert stats.by_version == {"v2": 120}
    text = scrape(server.url)
    assert metric_value(text, "model_requests_total", model="demo", version="v2") == 120
    # the server judged the same predictions the driver compared: both count the same correct answers
    assert metric_value(text, "model_predictions_correct_total", model="demo", version="v2") == stats.correct
    assert 0.8 < stats.accuracy < 0.97  # type: ignore[operator]


def test_driver_keeps_its_rate_and_stops_at_its_time_bound(serve: Serve) -> None:
    server = serve("v1")
    started = time.monotonic()
    with TrafficDriver(server.url, rate=40, max_seconds=1.0) as driver:
        assert driver.wait(10)
        elapsed = time.monotonic() - started
        stats = driver.stats()
    # requests are due at 0, 1/40, 2/40 ... s: 40 of them fall in the first second. A scheduler running late on a
    # busy machine skips the last ones rather than go past the time bound, hence the lower end.
    assert 36 <= stats.sent <= 40
    assert stats.ok == stats.sent
    assert 0.9 < elapsed < 3.0


def test_stop_ends_an_unbounded_run_and_failures_are_counted() -> None:
    driver = TrafficDriver("http://127.0.0.1:9", rate=200, timeout=1.0).start()  # nothing listens on port 9
    wait_for(lambda: driver.stats().failures >= 5, what="refused requests to be counted")
    stats = driver.stop()
    assert stats.ok == 0
    assert stats.failures == stats.finished == stats.sent
    assert stats.failure_kinds == {"ConnectError": stats.failures}
    assert driver.wait(5)


def test_shifting_the_inputs_raises_the_drift_the_server_reports(serve: Serve) -> None:
    server = serve("v2", drift_window=300, drift_min_samples=300)
    driver = TrafficDriver(server.url, rate=2000, batch=5, max_requests=10_000).start()
    try:

        def psi_max() -> float | None:
            return metric_value(scrape(server.url), "model_input_drift_psi_max", model="demo", version="v2")

        wait_for(lambda: driver.stats().ok >= 70, what="the window to fill with unshifted rows")
        calm = psi_max()
        assert calm is not None
        assert calm < 0.1
        driver.shift(1.0)
        wait_for(lambda: (psi_max() or 0.0) > 0.25, timeout=20, what="the shifted inputs to raise the PSI")
        assert driver.current_shift == 1.0
    finally:
        stats = driver.stop()
    assert stats.errors == stats.failures == 0


def test_driver_rejects_nonsense_settings() -> None:
    with pytest.raises(ValueError, match="positive"):
        TrafficDriver("http://127.0.0.1:1", rate=0)


def test_driver_plays_the_live_slice_by_default() -> None:
    driver = TrafficDriver("http://127.0.0.1:1")
    try:
        assert len(driver.data) == len(load_slice("live"))
    finally:
        driver.stop()
