"""Fixtures of the sandbox workloads: trained versions (once per session) and model servers on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from modelops.sandbox.models import ModelServer, load_slice, save_artifact, train

#: the demo's versions: baseline, improved, broken
VERSIONS = ("v1", "v2", "v3")


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """v1, v2 and v3 trained with their default recipes, each at ``<dir>/<version>/model.pkl``."""
    root = tmp_path_factory.mktemp("models")
    data = load_slice("train")
    for version in VERSIONS:
        save_artifact(train(data, version), root / version / "model.pkl")
    return root


@pytest.fixture(scope="session")
def uris(model_dir: Path) -> dict[str, str]:
    return {v: (model_dir / v / "model.pkl").as_uri() for v in VERSIONS}


@pytest.fixture
def serve(uris: dict[str, str]) -> Iterator[Callable[..., ModelServer]]:
    """Start a model server of a version in this process (threads); it is stopped after the test."""
    started: list[ModelServer] = []

    def start(version: str, name: str = "demo", **kwargs: int) -> ModelServer:
        server = ModelServer(uris[version], name, version, **kwargs).start()
        started.append(server)
        assert server.ready.wait(10), f"model {version} not loaded: {server.load_error}"
        return server

    yield start
    for server in started:
        server.stop()
