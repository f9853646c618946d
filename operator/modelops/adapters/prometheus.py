"""Prometheus as a metrics provider: a PromQL query in, a :class:`~modelops.core.Reading` out.

Providers only measure; the core judges (Flagger's ``RunQuery(query) -> float`` + ``IsOnline()``). The mapping
from an HTTP answer to a reading is one pure function, :func:`reading_from_response`, shared by the sync and async
clients and tested through ``httpx.MockTransport``:

=====================================================  ======================================================
answer                                                 reading
=====================================================  ======================================================
vector with one sample / scalar                        the value
empty vector, or a sample that is NaN, +Inf or -Inf    no data
vector with several series                             error naming the query and the series count
``status: error``, HTTP error, connection error, time  error with the message
out
=====================================================  ======================================================
"""

from __future__ import annotations

import math
import ssl
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, runtime_checkable

import httpx

from modelops.core import Reading, ReadingKind

__all__ = [
    "BATCH_LABEL",
    "AsyncPrometheusProvider",
    "BearerTokenFile",
    "FakeMetricsProvider",
    "MetricsProvider",
    "PrometheusProvider",
    "PrometheusSettings",
    "RangeReading",
    "batch_query",
    "reading_from_response",
    "readings_from_batch",
]

#: Instant-query answers are a few hundred bytes: compressing them would cost both sides CPU for nothing.
_INSTANT = {"Accept-Encoding": "identity"}

#: The query ``is_online`` runs: answered by any working Prometheus-compatible API, needs no data.
ONLINE_QUERY = "vector(1)"


@runtime_checkable
class MetricsProvider(Protocol):
    """What the operator needs from a metrics backend."""

    def query(self, promql: str) -> Reading: ...

    def query_many(self, queries: Sequence[str]) -> list[Reading]:
        """The readings of several queries, in order, as if each were asked alone (maybe in one request)."""
        ...

    def is_online(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class RangeReading:
    """A range query's result: timestamped values of one series, or no data, or an error.

    Points whose value is NaN or infinite are dropped (they carry no data), so ``points`` may be shorter than the
    number of steps.
    """

    kind: ReadingKind
    points: tuple[tuple[datetime, float], ...] = ()
    message: str = ""

    @property
    def available(self) -> bool:
        return self.kind is ReadingKind.VALUE


@dataclass(frozen=True)
class PrometheusSettings:
    """How to reach Prometheus. ``bearer_token_file`` is re-read on each request (projected tokens rotate)."""

    url: str
    timeout: float = 10.0
    bearer_token: str | None = None
    bearer_token_file: Path | None = None
    username: str | None = None
    password: str | None = None
    ca_file: Path | None = None
    insecure: bool = False
    headers: Mapping[str, str] = field(default_factory=dict)

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``httpx.Client``/``httpx.AsyncClient`` (auth, TLS, timeout, base URL)."""
        if self.bearer_token is not None and self.bearer_token_file is not None:
            raise ValueError("give a bearer token or a bearer token file, not both")
        if (self.bearer_token is not None or self.bearer_token_file is not None) and self.username is not None:
            raise ValueError("give bearer token or basic auth, not both")
        auth: httpx.Auth | None = None
        if self.bearer_token is not None:
            auth = _Bearer(lambda: self.bearer_token or "")
        elif self.bearer_token_file is not None:
            auth = BearerTokenFile(self.bearer_token_file)
        elif self.username is not None:
            auth = httpx.BasicAuth(self.username, self.password or "")
        verify: ssl.SSLContext | bool = True
        if self.insecure:
            verify = False
        elif self.ca_file is not None:
            verify = ssl.create_default_context(cafile=str(self.ca_file))
        return {
            "base_url": self.url.rstrip("/"),
            "timeout": self.timeout,
            "auth": auth,
            "verify": verify,
            "headers": dict(self.headers),
        }


class _Bearer(httpx.Auth):
    def __init__(self, token: Callable[[], str]) -> None:
        self._token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._token()}"
        yield request


class BearerTokenFile(_Bearer):
    """Bearer auth read from a file on every request, so a rotated (projected service account) token is used."""

    def __init__(self, path: Path) -> None:
        super().__init__(lambda: Path(path).read_text().strip())


# --------------------------------------------------------------------------------------------- parsing


def _number(text: Any) -> float:
    return float(text)  # Prometheus sends "NaN", "+Inf", "-Inf" and decimal strings; float() takes them all


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("status") == "error":
        return f"{body.get('errorType', 'error')}: {body.get('error', '')}"
    text = response.text.strip().replace("\n", " ")
    return f"HTTP {response.status_code} {response.reason_phrase}" + (f": {text[:300]}" if text else "")


def _body(response: httpx.Response, promql: str) -> tuple[dict[str, Any] | None, str]:
    """The ``data`` of a successful answer, or None and a message saying what went wrong."""
    if response.status_code != 200:
        return None, f"query {promql!r} failed: {_error_message(response)}"
    try:
        body = response.json()
    except ValueError:
        return None, f"query {promql!r}: answer is not JSON: {response.text[:200]!r}"
    if not isinstance(body, dict) or body.get("status") != "success":
        detail = f"{body.get('errorType', 'error')}: {body.get('error', '')}" if isinstance(body, dict) else body
        return None, f"query {promql!r} failed: {detail}"
    data = body.get("data")
    if not isinstance(data, dict):
        return None, f"query {promql!r}: answer has no data"
    return data, ""


def reading_from_response(response: httpx.Response, promql: str) -> Reading:
    """The reading an instant-query answer stands for (see the module docstring's table)."""
    data, message = _body(response, promql)
    if data is None:
        return Reading.error(message)
    try:
        kind, result = data["resultType"], data["result"]
        if kind == "scalar":
            return _reading(_number(result[1]), promql)
        if kind == "vector":
            return _reading_of_series(result, promql)
        return Reading.error(f"query {promql!r} returned a {kind}, expected a vector or a scalar")
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        return Reading.error(f"query {promql!r}: malformed answer: {exc!r}")


def _reading(value: float, promql: str) -> Reading:
    if math.isnan(value) or math.isinf(value):
        return Reading.no_data(f"query {promql!r} returned {value}")
    return Reading.of(value)


def _reading_of_series(result: Sequence[Mapping[str, Any]], promql: str, hide: str | None = None) -> Reading:
    """One query's reading from the series of its vector; ``hide`` is a label of ours left out of messages.

    Raises KeyError/IndexError/TypeError/ValueError on a malformed sample (the callers turn that into an error)."""
    if not result:
        return Reading.no_data(f"query {promql!r} returned no series")
    if len(result) > 1:
        shown = [{k: v for k, v in s.get("metric", {}).items() if k != hide} for s in result[:3]]
        series = ", ".join(_labels(m) for m in shown)
        more = ", ..." if len(result) > 3 else ""
        return Reading.error(
            f"query {promql!r} returned {len(result)} series, expected one (aggregate it): {series}{more}"
        )
    return _reading(_number(result[0]["value"][1]), promql)


# --------------------------------------------------------------------------------------------- batches

#: The label each part of a batched query tags its series with: ``"0"``, ``"1"``, ... in the order asked.
BATCH_LABEL = "modelops_query"


def batch_query(queries: Sequence[str]) -> str:
    """One PromQL expression that answers every query in ``queries`` at the same instant.

    Each query's series are tagged with :data:`BATCH_LABEL` (its index) by ``label_replace`` and the parts joined
    with ``or``: the tags make the label sets distinct, so ``or`` keeps every series of every part. A query whose
    result is not an instant vector (a scalar, a range vector) makes Prometheus refuse the whole expression
    (``bad_data``); :func:`readings_from_batch` then says so and the caller asks each query alone.
    """
    return " or ".join(f'label_replace({q}, "{BATCH_LABEL}", "{i}", "", "")' for i, q in enumerate(queries))


def readings_from_batch(response: httpx.Response, queries: Sequence[str]) -> list[Reading] | None:
    """Each query's reading from the answer to :func:`batch_query`, the same as its own answer would give.

    None when Prometheus refused the expression itself (HTTP 400 ``bad_data`` or 422 ``execution``: one query is
    invalid, not a vector, or fails on its own) or answered something other than a vector: the caller then asks
    each query alone, so that each gets its own reading or its own error. Any other failure (HTTP 5xx, 401, ...)
    is every query's error, as it would be for each alone; asking again one by one would only multiply it.
    """
    if response.status_code in (400, 422):
        return None
    if response.status_code != 200:
        return [Reading.error(_body(response, q)[1]) for q in queries]
    data, _ = _body(response, "")
    if data is None or data.get("resultType") != "vector" or not isinstance(data.get("result"), list):
        return None
    parts: list[list[Mapping[str, Any]]] = [[] for _ in queries]
    try:
        for series in data["result"]:
            parts[int(series["metric"][BATCH_LABEL])].append(series)
        return [_reading_of_series(part, q, hide=BATCH_LABEL) for part, q in zip(parts, queries, strict=True)]
    except (KeyError, IndexError, TypeError, ValueError):
        return None


def range_reading_from_response(response: httpx.Response, promql: str) -> RangeReading:
    """The points of a range-query answer: one series expected (like an instant query)."""
    data, message = _body(response, promql)
    if data is None:
        return RangeReading(ReadingKind.ERROR, message=message)
    try:
        if data["resultType"] != "matrix":
            return RangeReading(ReadingKind.ERROR, message=f"query {promql!r} returned a {data['resultType']}")
        result = data["result"]
        if not result:
            return RangeReading(ReadingKind.NO_DATA, message=f"query {promql!r} returned no series")
        if len(result) > 1:
            return RangeReading(
                ReadingKind.ERROR, message=f"query {promql!r} returned {len(result)} series, expected one"
            )
        points = tuple(
            (datetime.fromtimestamp(float(t), UTC), v)
            for t, raw in result[0]["values"]
            if not (math.isnan(v := _number(raw)) or math.isinf(v))
        )
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        return RangeReading(ReadingKind.ERROR, message=f"query {promql!r}: malformed answer: {exc!r}")
    if not points:
        return RangeReading(ReadingKind.NO_DATA, message=f"query {promql!r} returned only NaN/Inf")
    return RangeReading(ReadingKind.VALUE, points=points)


def _labels(metric: Mapping[str, str]) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in sorted(metric.items())) + "}"


def _transport_error(promql: str, exc: httpx.HTTPError) -> str:
    kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "failed"
    return f"query {promql!r} {kind}: {type(exc).__name__}: {exc}"


def _timestamp(at: datetime | float) -> str:
    return repr(at.timestamp() if isinstance(at, datetime) else float(at))


def _range_form(promql: str, start: datetime | float, end: datetime | float, step: float) -> dict[str, str]:
    return {"query": promql, "start": _timestamp(start), "end": _timestamp(end), "step": repr(float(step))}


# --------------------------------------------------------------------------------------------- clients


class PrometheusProvider:
    """Synchronous client (one ``httpx.Client``, thread-safe): the operator calls it from worker threads.

    ``transport`` replaces the network (``httpx.MockTransport`` in tests).
    """

    def __init__(self, settings: PrometheusSettings | str, *, transport: httpx.BaseTransport | None = None) -> None:
        self.settings = PrometheusSettings(settings) if isinstance(settings, str) else settings
        self._client = httpx.Client(transport=transport, **self.settings.client_kwargs())

    def query(self, promql: str, at: datetime | float | None = None) -> Reading:
        form = {"query": promql} if at is None else {"query": promql, "time": _timestamp(at)}
        try:
            response = self._client.post("/api/v1/query", data=form, headers=_INSTANT)
        except httpx.HTTPError as exc:
            return Reading.error(_transport_error(promql, exc))
        return reading_from_response(response, promql)

    def query_many(self, queries: Sequence[str]) -> list[Reading]:
        """Several queries in one request (:func:`batch_query`); each alone when Prometheus refuses the batch."""
        if len(queries) < 2:
            return [self.query(q) for q in queries]
        try:
            response = self._client.post("/api/v1/query", data={"query": batch_query(queries)}, headers=_INSTANT)
        except httpx.HTTPError as exc:
            return [Reading.error(_transport_error(q, exc)) for q in queries]
        readings = readings_from_batch(response, queries)
        return [self.query(q) for q in queries] if readings is None else readings

    def query_range(
        self, promql: str, start: datetime | float, end: datetime | float, step: float = 60.0
    ) -> RangeReading:
        try:
            response = self._client.post("/api/v1/query_range", data=_range_form(promql, start, end, step))
        except httpx.HTTPError as exc:
            return RangeReading(ReadingKind.ERROR, message=_transport_error(promql, exc))
        return range_reading_from_response(response, promql)

    def is_online(self) -> bool:
        return self.query(ONLINE_QUERY).available

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> PrometheusProvider:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class AsyncPrometheusProvider:
    """The same as :class:`PrometheusProvider` for ``async`` callers (never blocks the event loop)."""

    def __init__(
        self, settings: PrometheusSettings | str, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.settings = PrometheusSettings(settings) if isinstance(settings, str) else settings
        self._client = httpx.AsyncClient(transport=transport, **self.settings.client_kwargs())

    async def query(self, promql: str, at: datetime | float | None = None) -> Reading:
        form = {"query": promql} if at is None else {"query": promql, "time": _timestamp(at)}
        try:
            response = await self._client.post("/api/v1/query", data=form, headers=_INSTANT)
        except httpx.HTTPError as exc:
            return Reading.error(_transport_error(promql, exc))
        return reading_from_response(response, promql)

    async def query_many(self, queries: Sequence[str]) -> list[Reading]:
        """As :meth:`PrometheusProvider.query_many`."""
        if len(queries) < 2:
            return [await self.query(q) for q in queries]
        try:
            response = await self._client.post("/api/v1/query", data={"query": batch_query(queries)}, headers=_INSTANT)
        except httpx.HTTPError as exc:
            return [Reading.error(_transport_error(q, exc)) for q in queries]
        readings = readings_from_batch(response, queries)
        return [await self.query(q) for q in queries] if readings is None else readings

    async def query_range(
        self, promql: str, start: datetime | float, end: datetime | float, step: float = 60.0
    ) -> RangeReading:
        try:
            response = await self._client.post("/api/v1/query_range", data=_range_form(promql, start, end, step))
        except httpx.HTTPError as exc:
            return RangeReading(ReadingKind.ERROR, message=_transport_error(promql, exc))
        return range_reading_from_response(response, promql)

    async def is_online(self) -> bool:
        return (await self.query(ONLINE_QUERY)).available

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> AsyncPrometheusProvider:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


class FakeMetricsProvider:
    """A provider for tests: readings by exact query (a float, a Reading, or a callable), every query recorded.

    An unknown query reads as no data; ``online = False`` makes every query an error, as a down Prometheus would.
    """

    def __init__(
        self,
        readings: Mapping[str, float | Reading | Callable[[], float | Reading]] | None = None,
        *,
        online: bool = True,
    ) -> None:
        self.readings: dict[str, float | Reading | Callable[[], float | Reading]] = dict(readings or {})
        self.online = online
        self.queries: list[str] = []
        #: the queries of each ``query_many`` call, in order
        self.batches: list[list[str]] = []

    def set(self, promql: str, reading: float | Reading | Callable[[], float | Reading]) -> None:
        self.readings[promql] = reading

    def query(self, promql: str) -> Reading:
        self.queries.append(promql)
        if not self.online:
            return Reading.error(f"query {promql!r} failed: ConnectError: prometheus is offline (fake)")
        found = self.readings.get(promql)
        if found is None:
            return Reading.no_data(f"query {promql!r} returned no series")
        value = found() if callable(found) else found
        if isinstance(value, Reading):
            return value
        return _reading(float(value), promql)

    def query_many(self, queries: Sequence[str]) -> list[Reading]:
        self.batches.append(list(queries))
        return [self.query(q) for q in queries]

    def is_online(self) -> bool:
        return self.online
