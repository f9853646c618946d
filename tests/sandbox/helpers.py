"""Helpers of the sandbox tests: polling with a deadline, running the models' command line, reading metrics."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import httpx
from prometheus_client.parser import text_string_to_metric_families

from plugins import waiting


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    """Poll ``predicate`` until it holds or ``timeout`` passes (then fail, naming ``what``)."""
    waiting.wait_for(predicate, timeout, what, interval=0.02)


def run_module(
    *args: str, timeout: float = 60.0, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m modelops.sandbox.models ARGS`` as its own process."""
    return subprocess.run(
        [sys.executable, "-m", "modelops.sandbox.models", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


def metric_value(text: str, name: str, **labels: str) -> float | None:
    """The value of sample ``name`` with ``labels`` in a Prometheus text exposition (None when absent)."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return None


def scrape(url: str) -> str:
    return httpx.get(url.rstrip("/") + "/metrics", timeout=5).text
