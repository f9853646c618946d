"""A traffic driver: labelled prediction requests at a set rate, in the background, with a drift knob.

Each request carries rows of the held-out ``live`` slice and their true labels, so the model server can judge its
predictions (the accuracy metric) and sees the input distribution (the drift metric). ``shift(s)`` makes the rows
look as re-calibrated sensors report them (see ``modelops.sandbox.models.data``); the labels stay true.

The driver paces request starts at ``rate`` per second from a scheduler thread and sends them from a small pool,
so one slow answer does not slow the rate; at most ``concurrency`` requests are in flight (when all are busy the
rate falls instead of queueing without bound). It stops after ``max_requests`` or ``max_seconds``, whichever comes
first, or on ``stop()``. ``stats()`` counts what happened, by status, by version, and by the server that answered
(``model/version``, from the answer's body). ``headers`` go with every request (``Host`` to pick a model's route
on a shared Gateway). :meth:`TrafficDriver.mark` starts a new :class:`Segment` (the route's weights changed): each
answer is counted in the segment during which its request was sent, apart from those sent in the first ``settle``
seconds of it, while the data plane may still be taking the new weights.
"""

from __future__ import annotations

import collections
import copy
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np

from .models.data import Dataset, apply_shift, load_slice

log = logging.getLogger(__name__)
#: seconds an idle pooled connection is kept: below the idle timeout of the servers the driver talks to (5 s)
KEEPALIVE_EXPIRY = 2.0


@dataclass
class TrafficStats:
    """What the driver saw. ``ok`` + ``errors`` + ``failures`` == ``sent`` once every request has finished."""

    sent: int = 0
    ok: int = 0
    #: answers with a status other than 2xx
    errors: int = 0
    #: no answer at all (connection refused, timeout)
    failures: int = 0
    #: the kind of each failure (``ConnectError``, ``ReadTimeout``, ...), so that a lost request can be told apart
    failure_kinds: collections.Counter[str] = field(default_factory=collections.Counter)
    #: predictions compared with their true label, and how many were right
    judged: int = 0
    correct: int = 0
    by_status: collections.Counter[int] = field(default_factory=collections.Counter)
    #: ``model/version`` of the server that answered (what the answer's body says)
    by_backend: collections.Counter[str] = field(default_factory=collections.Counter)
    #: error answers (not 2xx) by ``model/version`` of the server that gave them; ``""``: no model server did
    #: (the data plane answered itself, a 502 say)
    errors_by_backend: collections.Counter[str] = field(default_factory=collections.Counter)
    by_version: collections.Counter[str] = field(default_factory=collections.Counter)

    @property
    def finished(self) -> int:
        return self.ok + self.errors + self.failures

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.judged if self.judged else None

    def copy(self) -> TrafficStats:
        return copy.deepcopy(self)


@dataclass
class Segment:
    """The answers to requests sent while the route had ``weights`` (backend -> percent), by ``model/version``.

    Answers to requests sent within ``settle`` seconds of either end are set apart (``settling``): the data plane
    takes new weights around the moment they are seen accepted, a little before or after it."""

    weights: dict[str, int]
    started: float
    settle: float
    by_backend: collections.Counter[str] = field(default_factory=collections.Counter)
    #: answers to requests sent in the first or the last ``settle`` seconds (not counted in ``by_backend``)
    settling: int = 0
    #: when the next segment started (None: still the current one)
    ended: float | None = None
    #: (sent, backend) of the answers counted in the last ``settle`` seconds, to set apart when the segment ends
    recent: collections.deque[tuple[float, str]] = field(default_factory=collections.deque)

    def count(self, sent: float, backend: str) -> None:
        near_end = self.ended is not None and sent >= self.ended - self.settle
        if sent < self.started + self.settle or near_end:
            self.settling += 1
            return
        self.by_backend[backend] += 1
        self.recent.append((sent, backend))
        while self.recent and self.recent[0][0] < sent - 2 * self.settle:  # a margin for answers out of order
            self.recent.popleft()

    def end(self, at: float) -> None:
        """The next segment starts ``at``: what was counted in the last ``settle`` seconds before it is set apart."""
        self.ended = at
        for sent, backend in self.recent:  # answers come back out of order: look at each
            if sent >= at - self.settle:
                self.by_backend[backend] -= 1
                self.settling += 1
                if self.by_backend[backend] <= 0:
                    del self.by_backend[backend]
        self.recent.clear()


class TrafficDriver:
    """Sends labelled ``/predict`` requests to ``url`` at ``rate`` per second until a bound or ``stop()``."""

    def __init__(
        self,
        url: str,
        rate: float = 20.0,
        *,
        data: Dataset | None = None,
        batch: int = 1,
        max_requests: int = 100_000,
        max_seconds: float = 3600.0,
        concurrency: int = 8,
        timeout: float = 5.0,
        seed: int = 0,
        headers: dict[str, str] | None = None,
    ) -> None:
        if rate <= 0 or batch < 1 or max_requests < 0 or max_seconds <= 0 or concurrency < 1:
            raise ValueError("rate, batch, max_seconds and concurrency must be positive, max_requests >= 0")
        self.url = url.rstrip("/") + "/predict"
        self.rate, self.batch = rate, batch
        self.max_requests, self.max_seconds = max_requests, max_seconds
        self.data = data if data is not None else load_slice("live")
        self._order = np.random.default_rng(seed).permutation(len(self.data))
        self._next_row = 0
        self._shift = 0.0
        self._stats = TrafficStats()
        self._segments: list[Segment] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.done = threading.Event()
        self._slots = threading.BoundedSemaphore(concurrency)
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="traffic")
        # An idle pooled connection is dropped by the client before the server's idle timeout can close it (the
        # sandbox's Traefik closes idle ones after 5 s, httpx's default expiry too): a request written on a connection
        # the server is closing at that instant gets no answer, a race the client must not run.
        self._client = httpx.Client(
            timeout=timeout, headers=headers, limits=httpx.Limits(keepalive_expiry=KEEPALIVE_EXPIRY)
        )
        self._thread = threading.Thread(target=self._schedule, name="traffic-scheduler", daemon=True)

    # ------------------------------------------------------------------------------------------- control

    def start(self) -> TrafficDriver:
        self._thread.start()
        return self

    def shift(self, amount: float) -> None:
        """Send rows re-calibrated by ``amount`` from now on (0 restores the training distribution)."""
        with self._lock:
            self._shift = float(amount)

    @property
    def current_shift(self) -> float:
        with self._lock:
            return self._shift

    def stats(self) -> TrafficStats:
        with self._lock:
            return self._stats.copy()

    def mark(self, weights: dict[str, int], settle: float = 1.0) -> None:
        """From now on the route sends ``weights`` (backend -> percent): start a new segment."""
        with self._lock:
            now = time.monotonic()
            if self._segments:
                self._segments[-1].end(now)
            self._segments.append(Segment(dict(weights), now, settle))

    def segments(self) -> list[Segment]:
        with self._lock:
            return copy.deepcopy(self._segments)

    def stop(self, timeout: float = 10.0) -> TrafficStats:
        """Stop sending, wait for requests in flight (up to ``timeout``), release the connections; final stats."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._pool.shutdown(wait=True)
        self._client.close()
        return self.stats()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the driver reached a bound (or was stopped) and every request finished."""
        return self.done.wait(timeout)

    def __enter__(self) -> TrafficDriver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ----------------------------------------------------------------------------------------- internals

    def _take(self) -> tuple[list[list[float]], list[int]]:
        with self._lock:
            picks = [int(self._order[(self._next_row + i) % len(self._order)]) for i in range(self.batch)]
            self._next_row += self.batch
            amount = self._shift
            self._stats.sent += 1
        rows = apply_shift(self.data.x[picks], amount)
        return rows.tolist(), [int(v) for v in self.data.y[picks]]

    def _schedule(self) -> None:
        started = time.monotonic()
        deadline = started + self.max_seconds
        count = 0
        try:
            while count < self.max_requests and not self._stop.is_set():
                due = started + count / self.rate
                now = time.monotonic()
                if due >= deadline or now >= deadline:
                    break
                if due > now and self._stop.wait(due - now):  # pacing, woken early by stop()
                    break
                while not self._slots.acquire(timeout=0.1):
                    if self._stop.is_set() or time.monotonic() >= deadline:
                        return
                rows, labels = self._take()
                self._pool.submit(self._send, rows, labels)
                count += 1
        finally:
            self._finish_when_drained(count)

    def _finish_when_drained(self, count: int) -> None:
        def drained() -> None:
            self._pool.shutdown(wait=True)
            self.done.set()

        threading.Thread(target=drained, name="traffic-drain", daemon=True).start()
        log.debug("traffic driver scheduled %d requests", count)

    def _send(self, rows: list[list[float]], labels: list[int]) -> None:
        sent = time.monotonic()
        try:
            answer = self._client.post(self.url, json={"instances": rows, "labels": labels})
        except httpx.HTTPError as exc:
            log.warning("request without answer: %s: %s", type(exc).__name__, exc)
            self._record(None, None, labels, type(exc).__name__)
        else:
            self._record(answer, _json_or_none(answer), labels, sent=sent)
        finally:
            self._slots.release()

    def _record(
        self,
        answer: httpx.Response | None,
        body: dict[str, Any] | None,
        labels: list[int],
        failure: str = "",
        sent: float = 0.0,
    ) -> None:
        with self._lock:
            s = self._stats
            if answer is None:
                s.failures += 1
                s.failure_kinds[failure] += 1
                return
            s.by_status[answer.status_code] += 1
            backend = ""
            if body is not None and "version" in body:
                backend = f"{body.get('model', '')}/{body['version']}"
                s.by_backend[backend] += 1
                segment = next((g for g in reversed(self._segments) if g.started <= sent), None)
                if segment is not None:
                    segment.count(sent, backend)
            if not answer.is_success or body is None:
                s.errors += 1
                s.errors_by_backend[backend] += 1
                return
            s.ok += 1
            s.by_version[str(body.get("version", ""))] += 1
            predictions = body.get("predictions") or []
            s.judged += len(predictions)
            s.correct += sum(int(p == t) for p, t in zip(predictions, labels, strict=False))


def _json_or_none(answer: httpx.Response) -> dict[str, Any] | None:
    try:
        body = answer.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None
