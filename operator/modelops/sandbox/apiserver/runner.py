"""Serving an :class:`ApiServerEmulator` on 127.0.0.1: in an event loop (``serve``), or in a background thread
for synchronous callers such as pytest fixtures, the kubernetes client and kopf's ``KopfRunner``
(``ApiServerThread``); plus the kubeconfig that points kubectl and clients at it.

aiohttp's low-level server is used directly rather than ``kmock.Server``: the latter is built for tests
(a client session, and a process-wide patch of aiohttp's DNS resolution) and is not needed to listen on a port.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import aiohttp.web
import yaml

from .emulator import ApiServerEmulator

__all__ = ["ApiServerThread", "serve", "write_kubeconfig"]

T = TypeVar("T")
CONTEXT_NAME = "modelops-sandbox"


@contextlib.asynccontextmanager
async def serve(emulator: ApiServerEmulator, port: int = 0, host: str = "127.0.0.1") -> AsyncIterator[str]:
    """Listen on ``host:port`` (0: a free port) and yield the base URL until the block exits."""
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError("the emulator listens on loopback only")
    async with emulator:
        server = aiohttp.web.Server(emulator, handler_cancellation=True, access_log=None)
        runner = aiohttp.web.ServerRunner(server, shutdown_timeout=1.0)
        await runner.setup()
        site = aiohttp.web.TCPSite(runner, host, port)
        await site.start()
        sockets = server_sockets(runner)
        try:
            yield f"http://{host}:{sockets[0]}"
        finally:
            emulator.close_watches()
            await runner.cleanup()


def server_sockets(runner: aiohttp.web.BaseRunner) -> list[int]:
    """The ports the runner actually listens on (when asked for port 0)."""
    ports: list[int] = []
    for address in runner.addresses:
        if isinstance(address, tuple):
            ports.append(int(address[1]))
    return ports


def write_kubeconfig(path: str | Path, url: str, namespace: str = "default") -> Path:
    """Write a kubeconfig with one context, ``modelops-sandbox``, pointing at ``url`` (plain HTTP, no auth)."""
    path = Path(path)
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT_NAME, "cluster": {"server": url}}],
        "users": [{"name": CONTEXT_NAME, "user": {}}],
        "contexts": [
            {"name": CONTEXT_NAME, "context": {"cluster": CONTEXT_NAME, "user": CONTEXT_NAME, "namespace": namespace}}
        ],
        "current-context": CONTEXT_NAME,
        "preferences": {},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


class ApiServerThread:
    """Run the emulator's event loop in a daemon thread; use as a context manager.

    ``call(fn, ...)`` runs a function in the loop's thread and returns its result, for the emulator's
    synchronous API (``create_object``, ``get_object``...) from other threads.
    """

    def __init__(self, emulator: ApiServerEmulator | None = None, port: int = 0) -> None:
        self.emulator = emulator if emulator is not None else ApiServerEmulator()
        self._port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._url: str | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="apiserver-emulator", daemon=True)

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("the emulator is not running")
        return self._url

    def start(self, timeout: float = 10.0) -> str:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("the emulator did not start in time")
        if self._error is not None:
            raise RuntimeError("the emulator failed to start") from self._error
        return self.url

    def stop(self, timeout: float = 10.0) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn(*args, **kwargs)`` in the emulator's loop thread (the emulator is not thread-safe)."""
        if self._loop is None:
            return fn(*args, **kwargs)
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def _call() -> None:
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as exc:
                future.set_exception(exc)

        self._loop.call_soon_threadsafe(_call)
        return future.result(timeout=10)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            async with serve(self.emulator, self._port) as url:
                self._url = url
                self._ready.set()
                await self._stop.wait()
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            raise
