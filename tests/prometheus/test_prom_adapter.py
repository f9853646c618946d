"""The Prometheus adapter: every answer shape through httpx.MockTransport, then the real server."""

from __future__ import annotations

import base64
import math
import ssl
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from modelops.adapters.prometheus import (
    BATCH_LABEL,
    AsyncPrometheusProvider,
    FakeMetricsProvider,
    MetricsProvider,
    PrometheusProvider,
    PrometheusSettings,
    batch_query,
)
from modelops.core import Reading, ReadingKind
from modelops.core.promql import render
from modelops.sandbox.prometheus import PrometheusServer
from plugins.prometheus import Exporter, wait_for_value

Handler = Callable[[httpx.Request], httpx.Response]


def vector(*samples: tuple[dict[str, str], str]) -> dict[str, Any]:
    result = [{"metric": m, "value": [1700000000.0, v]} for m, v in samples]
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


def provider(handler: Handler, **settings: Any) -> PrometheusProvider:
    return PrometheusProvider(
        PrometheusSettings("http://prom.test:9090", **settings), transport=httpx.MockTransport(handler)
    )


def answering(body: Any, status: int = 200) -> Handler:
    def handle(request: httpx.Request) -> httpx.Response:
        if isinstance(body, (bytes, str)):
            return httpx.Response(status, content=body)
        return httpx.Response(status, json=body)

    return handle


# ------------------------------------------------------------------------------------------------ readings


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (vector(({"a": "1"}, "0.97")), Reading.of(0.97)),
        (vector(({}, "-3e-2")), Reading.of(-0.03)),
        ({"status": "success", "data": {"resultType": "scalar", "result": [1.0, "12"]}}, Reading.of(12.0)),
    ],
)
def test_one_sample_or_a_scalar_is_a_value(body: dict[str, Any], expected: Reading) -> None:
    assert provider(answering(body)).query("q") == expected


@pytest.mark.parametrize(
    "body",
    [
        vector(),
        vector(({}, "NaN")),
        vector(({}, "+Inf")),
        vector(({}, "-Inf")),
        {"status": "success", "data": {"resultType": "scalar", "result": [1.0, "NaN"]}},
    ],
)
def test_empty_or_nan_or_infinite_is_no_data(body: dict[str, Any]) -> None:
    reading = provider(answering(body)).query("my_query")
    assert reading.kind is ReadingKind.NO_DATA
    assert "my_query" in reading.message


def test_several_series_is_an_error_naming_the_query() -> None:
    body = vector(({"version": "v1"}, "1"), ({"version": "v2"}, "2"))
    reading = provider(answering(body)).query("sum by (version) (x)")
    assert reading.kind is ReadingKind.ERROR
    assert "sum by (version) (x)" in reading.message
    assert "2 series" in reading.message
    assert 'version="v2"' in reading.message


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({"status": "error", "errorType": "bad_data", "error": "parse error at char 3"}, 400, "parse error at char 3"),
        ({"status": "error", "errorType": "execution", "error": "query timed out"}, 503, "execution: query timed out"),
        ({"status": "error", "errorType": "internal", "error": "boom"}, 200, "internal: boom"),
        ("upstream connect error", 502, "HTTP 502 Bad Gateway: upstream connect error"),
        ("", 401, "HTTP 401 Unauthorized"),
        ("<html>not json</html>", 200, "not JSON"),
        ({"status": "success", "data": {"resultType": "matrix", "result": []}}, 200, "returned a matrix"),
        ({"status": "success", "data": {"resultType": "vector", "result": [{"value": []}]}}, 200, "malformed"),
        ({"status": "success"}, 200, "no data"),
    ],
)
def test_error_answers_are_errors_with_the_message(body: Any, status: int, fragment: str) -> None:
    reading = provider(answering(body, status)).query("up")
    assert reading.kind is ReadingKind.ERROR
    assert fragment in reading.message
    assert "'up'" in reading.message


@pytest.mark.parametrize(
    ("exc", "fragment"),
    [
        (httpx.ConnectError("connection refused"), "failed: ConnectError: connection refused"),
        (httpx.ReadTimeout("read timed out"), "timed out: ReadTimeout"),
        (httpx.ConnectTimeout("connect timed out"), "timed out: ConnectTimeout"),
        (httpx.RemoteProtocolError("peer closed"), "RemoteProtocolError: peer closed"),
    ],
)
def test_transport_failures_are_errors_and_not_online(exc: Exception, fragment: str) -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise exc

    prom = provider(fail)
    reading = prom.query("up")
    assert reading.kind is ReadingKind.ERROR
    assert fragment in reading.message
    assert prom.is_online() is False


def test_is_online_runs_a_query_that_needs_no_data() -> None:
    seen: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(dict(httpx.QueryParams(request.content.decode()))["query"])
        return httpx.Response(200, json={"status": "success", "data": {"resultType": "scalar", "result": [0, "1"]}})

    assert provider(handle).is_online() is True
    assert seen == ["vector(1)"]


# ------------------------------------------------------------------------------------------------ request


def test_query_is_a_form_post_to_the_api_under_a_path_prefix() -> None:
    requests: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(200, json=vector(({}, "1")))

    prom = PrometheusProvider(
        PrometheusSettings("https://thanos.test/prometheus/"), transport=httpx.MockTransport(handle)
    )
    prom.query('sum(x{a="b & c"})', at=datetime(2026, 1, 1, tzinfo=UTC))
    (request,) = requests
    assert request.method == "POST"
    assert str(request.url) == "https://thanos.test/prometheus/api/v1/query"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    form = dict(httpx.QueryParams(request.content.decode()))
    assert form == {"query": 'sum(x{a="b & c"})', "time": "1767225600.0"}


def _captured_headers(**settings: Any) -> httpx.Headers:
    captured: list[httpx.Headers] = []

    def handle(request: httpx.Request) -> httpx.Response:
        captured.append(request.headers)
        return httpx.Response(200, json=vector(({}, "1")))

    assert provider(handle, **settings).query("up").available
    return captured[0]


def test_bearer_token() -> None:
    assert _captured_headers(bearer_token="s3cret")["authorization"] == "Bearer s3cret"


def test_bearer_token_file_is_reread_on_each_request(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("first\n")
    seen: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["authorization"])
        return httpx.Response(200, json=vector(({}, "1")))

    prom = provider(handle, bearer_token_file=token)
    prom.query("up")
    token.write_text("rotated\n")
    prom.query("up")
    assert seen == ["Bearer first", "Bearer rotated"]


def test_basic_auth() -> None:
    header = _captured_headers(username="grafana", password="pa:ss")["authorization"]
    assert header == "Basic " + base64.b64encode(b"grafana:pa:ss").decode()


def test_extra_headers_and_no_auth_by_default() -> None:
    headers = _captured_headers(headers={"X-Scope-OrgID": "team-a"})
    assert headers["x-scope-orgid"] == "team-a"
    assert "authorization" not in headers


def test_conflicting_auth_is_rejected() -> None:
    with pytest.raises(ValueError, match="not both"):
        PrometheusSettings("http://p", bearer_token="t", username="u").client_kwargs()


def test_tls_options() -> None:
    assert PrometheusSettings("https://p", insecure=True).client_kwargs()["verify"] is False
    assert PrometheusSettings("https://p").client_kwargs()["verify"] is True
    ca = ssl.get_default_verify_paths().cafile or ssl.get_default_verify_paths().openssl_cafile
    context = PrometheusSettings("https://p", ca_file=Path(ca)).client_kwargs()["verify"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.cert_store_stats()["x509_ca"] > 0


def test_timeout_is_applied() -> None:
    captured: list[dict[str, Any]] = []

    def handle(request: httpx.Request) -> httpx.Response:
        captured.append(request.extensions["timeout"])
        return httpx.Response(200, json=vector(({}, "1")))

    provider(handle, timeout=2.5).query("up")
    assert captured[0]["read"] == 2.5


# ------------------------------------------------------------------------------------------------ range


def test_query_range_returns_timestamped_values_without_nan() -> None:
    body = {
        "status": "success",
        "data": {
            "resultType": "matrix",
            "result": [{"metric": {}, "values": [[1700000000, "1.5"], [1700000060, "NaN"], [1700000120, "2"]]}],
        },
    }
    requests: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(200, json=body)

    reading = provider(handle).query_range("x", 1700000000, 1700000120, step=60)
    assert reading.kind is ReadingKind.VALUE
    assert reading.points == (
        (datetime.fromtimestamp(1700000000, UTC), 1.5),
        (datetime.fromtimestamp(1700000120, UTC), 2.0),
    )
    assert requests[0].url.path == "/api/v1/query_range"
    form = dict(httpx.QueryParams(requests[0].content.decode()))
    assert form == {"query": "x", "start": "1700000000.0", "end": "1700000120.0", "step": "60.0"}


@pytest.mark.parametrize(
    ("result", "kind"),
    [
        ([], ReadingKind.NO_DATA),
        ([{"metric": {}, "values": [[1, "NaN"]]}], ReadingKind.NO_DATA),
        ([{"metric": {"a": "1"}, "values": []}, {"metric": {"a": "2"}, "values": []}], ReadingKind.ERROR),
    ],
)
def test_query_range_no_data_and_several_series(result: list[Any], kind: ReadingKind) -> None:
    body = {"status": "success", "data": {"resultType": "matrix", "result": result}}
    assert provider(answering(body)).query_range("x", 0, 60).kind is kind


def test_query_range_errors() -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    assert "refused" in provider(fail).query_range("x", 0, 60).message
    bad = {"status": "error", "errorType": "bad_data", "error": "exceeded maximum resolution"}
    assert "exceeded maximum resolution" in provider(answering(bad, 400)).query_range("x", 0, 60).message


# ------------------------------------------------------------------------------------------------ batches


def tagged(*samples: tuple[str, dict[str, str], str]) -> dict[str, Any]:
    """A vector answer to a batch: (part index, labels, value) per series."""
    return vector(*(({**labels, BATCH_LABEL: i}, v) for i, labels, v in samples))


def recording(*answers: tuple[Any, int]) -> tuple[Handler, list[str]]:
    """A handler answering in turn, and the queries it was asked."""
    asked: list[str] = []
    queue = iter(answers)

    def handle(request: httpx.Request) -> httpx.Response:
        asked.append(dict(httpx.QueryParams(request.content.decode()))["query"])
        body, status = next(queue)
        return httpx.Response(status, json=body)

    return handle, asked


def test_several_queries_are_one_request_and_each_gets_its_own_reading() -> None:
    queries = ["a", "sum(b)", "c", "d", "e"]
    answer = tagged(
        ("0", {}, "0.5"),
        ("1", {"x": "1"}, "2"),
        ("3", {}, "NaN"),
        ("4", {"version": "v1"}, "1"),
        ("4", {"version": "v2"}, "2"),
    )
    handle, asked = recording((answer, 200))
    readings = provider(handle).query_many(queries)
    assert asked == [batch_query(queries)]
    assert asked[0].count("label_replace(") == 5
    assert readings[0] == Reading.of(0.5)
    assert readings[1] == Reading.of(2.0)
    assert readings[2] == Reading.no_data("query 'c' returned no series")
    assert readings[3] == Reading.no_data("query 'd' returned nan")
    assert readings[4].kind is ReadingKind.ERROR
    assert readings[4].message.startswith("query 'e' returned 2 series")
    assert BATCH_LABEL not in readings[4].message, "our tag is not the user's label"


def test_one_query_is_asked_as_it_is() -> None:
    handle, asked = recording((vector(({}, "1")), 200))
    assert provider(handle).query_many(["up"]) == [Reading.of(1.0)]
    assert asked == ["up"]
    assert provider(answering(vector())).query_many([]) == []


def test_a_batch_prometheus_refuses_is_asked_again_query_by_query() -> None:
    # One of the queries is a scalar: label_replace cannot take it, so the batch is bad_data; alone, each answers.
    refused = {"status": "error", "errorType": "bad_data", "error": 'expected type instant vector in "label_replace"'}
    scalar = {"status": "success", "data": {"resultType": "scalar", "result": [1.0, "3"]}}
    handle, asked = recording((refused, 400), (vector(({}, "1")), 200), (scalar, 200))
    assert provider(handle).query_many(["up", "scalar(up)"]) == [Reading.of(1.0), Reading.of(3.0)]
    assert asked == [batch_query(["up", "scalar(up)"]), "up", "scalar(up)"]


def test_an_execution_error_of_the_batch_is_asked_again_query_by_query() -> None:
    failed = {"status": "error", "errorType": "execution", "error": "many-to-many matching not allowed"}
    handle, asked = recording((failed, 422), (failed, 422), (vector(({}, "2")), 200))
    readings = provider(handle).query_many(["a * on() b", "c"])
    assert readings[0].kind is ReadingKind.ERROR
    assert "many-to-many" in readings[0].message
    assert "'a * on() b'" in readings[0].message
    assert readings[1] == Reading.of(2.0)
    assert len(asked) == 3


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({"status": "error", "errorType": "timeout", "error": "query timed out"}, 503, "timeout: query timed out"),
        ("", 401, "HTTP 401 Unauthorized"),
    ],
)
def test_a_failure_that_is_not_the_query_is_every_query_error_without_asking_again(
    body: Any, status: int, fragment: str
) -> None:
    asked: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        asked.append(request)
        return httpx.Response(status, json=body) if body else httpx.Response(status)

    readings = provider(handle).query_many(["a", "b"])
    assert len(asked) == 1
    assert [r.kind for r in readings] == [ReadingKind.ERROR, ReadingKind.ERROR]
    assert fragment in readings[0].message
    assert "'a'" in readings[0].message
    assert "'b'" in readings[1].message


def test_a_transport_failure_of_a_batch_is_every_query_error() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    readings = provider(handle).query_many(["a", "b"])
    assert [r.message for r in readings] == [
        "query 'a' failed: ConnectError: connection refused",
        "query 'b' failed: ConnectError: connection refused",
    ]


async def test_async_provider_batches_the_same_way() -> None:
    answers = iter([tagged(("1", {}, "4")), vector(({}, "5"))])
    asked: list[str] = []

    async def handle(request: httpx.Request) -> httpx.Response:
        asked.append(dict(httpx.QueryParams(request.content.decode()))["query"])
        return httpx.Response(200, json=next(answers))

    async with AsyncPrometheusProvider("http://p", transport=httpx.MockTransport(handle)) as prom:
        first = await prom.query_many(["x", "y"])
        assert first == [Reading.no_data("query 'x' returned no series"), Reading.of(4.0)]
        assert await prom.query_many(["z"]) == [Reading.of(5.0)]
    assert asked == [batch_query(["x", "y"]), "z"]


# ------------------------------------------------------------------------------------------------ async, fake


async def test_async_provider_maps_answers_the_same_way() -> None:
    answers = iter([vector(({}, "3")), vector(), vector(({}, "1"), ({"a": "b"}, "2"))])

    async def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=next(answers))

    async with AsyncPrometheusProvider("http://p", transport=httpx.MockTransport(handle)) as prom:
        assert await prom.query("x") == Reading.of(3.0)
        assert (await prom.query("x")).kind is ReadingKind.NO_DATA
        assert (await prom.query("x")).kind is ReadingKind.ERROR


def test_fake_provider() -> None:
    fake = FakeMetricsProvider({"a": 1.0, "b": math.nan, "c": Reading.error("boom")})
    fake.set("d", lambda: 4)
    assert isinstance(fake, MetricsProvider)
    assert fake.query("a") == Reading.of(1.0)
    assert fake.query("b").kind is ReadingKind.NO_DATA
    assert fake.query("c") == Reading.error("boom")
    assert fake.query("d") == Reading.of(4.0)
    assert fake.query("unknown").kind is ReadingKind.NO_DATA
    assert fake.query_many(["a", "d"]) == [Reading.of(1.0), Reading.of(4.0)]
    assert fake.batches[-1] == ["a", "d"]
    fake.online = False
    assert fake.query("a").kind is ReadingKind.ERROR
    assert not fake.is_online()
    assert fake.queries == ["a", "b", "c", "d", "unknown", "a", "d", "a"]


def test_the_real_provider_satisfies_the_protocol() -> None:
    with PrometheusProvider("http://127.0.0.1:9") as prom:
        assert isinstance(prom, MetricsProvider)


# ------------------------------------------------------------------------------------------------ real server


@pytest.mark.integration
def test_real_prometheus_readings_follow_the_exporter(prometheus: PrometheusServer, exporter: Exporter) -> None:
    # Given an exporter scraped by Prometheus with a per-version accuracy gauge
    name = exporter.unique("model_accuracy")
    gauge = exporter.gauge(name, labelnames=["model", "version"])
    gauge.labels("iris", "v1").set(0.91)
    gauge.labels("iris", "v2").set(0.42)
    template = f'{name}{{namespace="{{{{ namespace }}}}",model="{{{{ model }}}}",version="{{{{ version }}}}"}}'
    values = {"namespace": "tests", "model": "iris", "interval": "1m"}
    wait_for_value(prometheus, f"count({name})", 2)

    with PrometheusProvider(PrometheusSettings(prometheus.url, timeout=5)) as prom:
        # Then each version reads its own value, an unknown version has no data, both at once is an error
        assert prom.is_online()
        assert prom.query(render(template, {**values, "version": "v1"})) == Reading.of(0.91)
        assert prom.query(render(template, {**values, "version": "v2"})) == Reading.of(0.42)
        assert prom.query(render(template, {**values, "version": "v3"})).kind is ReadingKind.NO_DATA
        assert prom.query(name).kind is ReadingKind.ERROR
        assert prom.query(f'{name}{{version="v1"}} / 0').kind is ReadingKind.NO_DATA  # +Inf
        bad = prom.query(f"{name}{{")
        assert bad.kind is ReadingKind.ERROR
        assert "bad_data" in bad.message

        # When the test changes a value, the next readings follow
        gauge.labels("iris", "v2").set(0.88)
        wait_for_value(prometheus, f'{name}{{version="v2"}}', 0.88)
        assert prom.query(render(template, {**values, "version": "v2"})) == Reading.of(0.88)

        # And a range query gives timestamped values
        now = time.time()
        series = prom.query_range(render(template, {**values, "version": "v1"}), now - 30, now, step=1)
        assert series.available
        assert {v for _, v in series.points} == {0.91}
        assert all(now - 31 <= t.timestamp() <= now + 1 for t, _ in series.points)


@pytest.mark.integration
def test_real_prometheus_answers_a_batch_as_it_answers_each_query(
    prometheus: PrometheusServer, exporter: Exporter
) -> None:
    # Given per-version gauges scraped by a real Prometheus
    name = exporter.unique("model_latency")
    gauge = exporter.gauge(name, labelnames=["model", "version"])
    gauge.labels("iris", "v1").set(0.25)
    gauge.labels("iris", "v2").set(0.75)
    wait_for_value(prometheus, f"count({name})", 2)
    queries = [
        f'max(max_over_time({name}{{version="v1"}}[1m]))',  # a value
        f'{name}{{version="v2"}}',  # a value, the metric name kept
        f'{name}{{version="v3"}}',  # no series
        name,  # two series: an error naming them
        f'{name}{{version="v1"}} / 0',  # +Inf: no data
        f'sum({name}{{model="iris"}})',  # the sum of both
    ]
    with PrometheusProvider(PrometheusSettings(prometheus.url, timeout=5)) as prom:
        # When they are asked together, then each reads what it reads alone, message for message
        alone = [prom.query(q) for q in queries]
        assert [r.kind for r in alone] == [
            ReadingKind.VALUE,
            ReadingKind.VALUE,
            ReadingKind.NO_DATA,
            ReadingKind.ERROR,
            ReadingKind.NO_DATA,
            ReadingKind.VALUE,
        ]
        before = _query_requests(prometheus)
        assert prom.query_many(queries) == alone
        assert _query_requests(prometheus) - before == 1, "one request for the whole batch"

        # And a batch Prometheus refuses (a scalar, a syntax error) falls back to each query alone
        mixed = [queries[0], f"scalar({name}{{version='v2'}})", f"{name}{{", queries[2]]
        readings = prom.query_many(mixed)
        assert readings == [prom.query(q) for q in mixed]
        assert readings[1] == Reading.of(0.75)
        assert readings[2].kind is ReadingKind.ERROR
        assert "bad_data" in readings[2].message


def _query_requests(prometheus: PrometheusServer) -> int:
    """Instant queries Prometheus has answered, from its own /metrics (which is not a query)."""
    text = httpx.get(f"{prometheus.url}/metrics", timeout=5).text
    return sum(
        int(float(line.rsplit(" ", 1)[1]))
        for line in text.splitlines()
        if line.startswith("prometheus_http_requests_total{") and 'handler="/api/v1/query"' in line
    )


@pytest.mark.integration
def test_a_stopped_prometheus_is_an_error_and_offline() -> None:
    server = PrometheusServer()
    server.start()
    url = server.url
    server.close()
    with PrometheusProvider(PrometheusSettings(url, timeout=1)) as prom:
        assert not prom.is_online()
        reading = prom.query("up")
        assert reading.kind is ReadingKind.ERROR
        assert "ConnectError" in reading.message
