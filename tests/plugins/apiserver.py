"""pytest fixtures for the Kubernetes API emulator (see modelops.sandbox.apiserver).

- ``apiserver``: one emulator for the whole session, listening on 127.0.0.1 (a free port), with the CRDs in
  ``crds/`` registered. It is shared, so tests use their own namespace (``apiserver_namespace``) or unique names.
- ``apiserver_url``, ``apiserver_kubeconfig`` (a kubeconfig file for kubectl, kopf and clients),
  ``apiserver_client`` (a ``kubernetes.client.ApiClient`` configured for it).
- ``apiserver_log``: the requests served during the current test (method, path, verb, group/resource, status).
- ``apiserver_namespace``: a fresh namespace for the test, created through the API.
- ``apiserver_factory``: private emulators (own state and settings), stopped at the end of the test.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from modelops.sandbox.apiserver import ApiServerEmulator, ApiServerThread, RequestRecord, write_kubeconfig

CRDS = Path(__file__).resolve().parents[2] / "crds"
_namespaces = itertools.count()


@dataclass
class RunningApiServer:
    """A served emulator: ``emulator`` is the in-memory state; call its methods through ``call()``."""

    thread: ApiServerThread
    kubeconfig: Path

    @property
    def emulator(self) -> ApiServerEmulator:
        return self.thread.emulator

    @property
    def url(self) -> str:
        return self.thread.url

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run one of the emulator's synchronous methods in its event loop's thread."""
        return self.thread.call(fn, *args, **kwargs)

    def client(self) -> kubernetes.client.ApiClient:
        configuration = kubernetes.client.Configuration()
        configuration.host = self.url
        return kubernetes.client.ApiClient(configuration)


class RequestLog:
    """The emulator's request records from a starting point on (the log itself is shared by the session)."""

    def __init__(self, emulator: ApiServerEmulator) -> None:
        self._emulator = emulator
        self._start = len(emulator.log)

    @property
    def records(self) -> list[RequestRecord]:
        return self._emulator.log[self._start :]

    def matching(self, **fields: Any) -> list[RequestRecord]:
        """Records whose attributes equal all of ``fields``, e.g. ``matching(verb="patch", subresource="status")``."""
        return [r for r in self.records if all(getattr(r, k) == v for k, v in fields.items())]

    def count(self, **fields: Any) -> int:
        return len(self.matching(**fields))


def start_apiserver(tmp_path: Path, **options: Any) -> RunningApiServer:
    emulator = ApiServerEmulator(**options)
    emulator.load_crds(CRDS)
    thread = ApiServerThread(emulator)
    thread.start()
    return RunningApiServer(thread, write_kubeconfig(tmp_path / "kubeconfig", thread.url))


@pytest.fixture(scope="session")
def apiserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApiServer]:
    server = start_apiserver(tmp_path_factory.mktemp("apiserver"))
    try:
        yield server
    finally:
        server.thread.stop()


@pytest.fixture(scope="session")
def apiserver_url(apiserver: RunningApiServer) -> str:
    return apiserver.url


@pytest.fixture(scope="session")
def apiserver_kubeconfig(apiserver: RunningApiServer) -> Path:
    return apiserver.kubeconfig


@pytest.fixture(scope="session")
def apiserver_client(apiserver: RunningApiServer) -> Iterator[kubernetes.client.ApiClient]:
    client = apiserver.client()
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def apiserver_log(apiserver: RunningApiServer) -> RequestLog:
    return RequestLog(apiserver.emulator)


@pytest.fixture
def apiserver_namespace(apiserver: RunningApiServer) -> str:
    name = f"test-{next(_namespaces)}"
    apiserver.call(
        apiserver.emulator.create_object, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    )
    return name


@pytest.fixture
def apiserver_factory(tmp_path: Path) -> Iterator[Callable[..., RunningApiServer]]:
    started: list[RunningApiServer] = []

    def factory(**options: Any) -> RunningApiServer:
        server = start_apiserver(tmp_path / f"apiserver-{len(started)}", **options)
        started.append(server)
        return server

    try:
        yield factory
    finally:
        for server in started:
            server.thread.stop()
