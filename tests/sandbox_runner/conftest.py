"""The runner against the session's API emulator, one runner per test, limited to the test's own namespace."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modelops.sandbox.runner import Client, LocalRunner

from .helpers import gone


@pytest.fixture
def kube(apiserver: Any) -> Iterator[Client]:
    """A dict client on the emulator for the test's own calls."""
    api = apiserver.client()
    try:
        yield Client(api)
    finally:
        api.close()


@pytest.fixture
def runner(apiserver: Any, apiserver_namespace: str, tmp_path: Path) -> Iterator[LocalRunner]:
    """A started runner watching the test's namespace; on teardown it is stopped and no process may be left."""
    api = apiserver.client()
    local = LocalRunner(api, tmp_path / "runner", namespaces=[apiserver_namespace], grace=3.0, resync=1.0)
    local.start()
    assert local.synced.wait(10), "the runner never listed the emulator"
    try:
        yield local
    finally:
        pids = local.pids()
        local.stop()
        api.close()
        assert gone(pids, 10), f"processes left after stop(): {pids}"
