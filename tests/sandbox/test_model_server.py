"""The model server over real HTTP on 127.0.0.1: predictions, readiness, and the metrics it exports."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from modelops.sandbox.models import ModelServer, apply_shift, load_artifact, load_slice
from modelops.sandbox.models.artifacts import InputOutOfRange

from .helpers import metric_value, scrape, wait_for

Serve = Callable[..., ModelServer]


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5) as c:
        yield c


def counters(server: ModelServer) -> dict[str, float | None]:
    text = scrape(server.url)
    labels = {"model": server.model_name, "version": server.model_version}
    return {
        name: metric_value(text, f"model_{name}_total", **labels)
        for name in ("requests", "request_errors", "predictions_judged", "predictions_correct")
    } | {"latency_count": metric_value(text, "model_request_duration_seconds_count", **labels)}


def test_server_counts_requests_judged_and_correct_predictions(serve: Serve, client: httpx.Client) -> None:
    server = serve("v2")
    rows = load_slice("live")
    expected = load_artifact(server.model_uri).predict(rows.x[:60])
    correct = 0
    for start in range(0, 60, 3):  # 20 requests of 3 rows with labels
        answer = client.post(
            f"{server.url}/predict",
            json={"instances": rows.x[start : start + 3].tolist(), "labels": rows.y[start : start + 3].tolist()},
        )
        assert answer.status_code == 200
        body = answer.json()
        assert body["version"] == "v2"
        assert body["predictions"] == expected[start : start + 3].tolist()
        correct += sum(int(p == t) for p, t in zip(body["predictions"], rows.y[start : start + 3], strict=True))
    # 5 requests without labels: counted as requests, not judged
    for start in range(5):
        assert client.post(f"{server.url}/predict", json={"instances": rows.x[start : start + 1].tolist()}).is_success
    # 2 bad requests: counted as errors
    assert client.post(f"{server.url}/predict", content=b"not json").status_code == 400
    assert client.post(f"{server.url}/predict", json={"instances": [[1, 2]]}).status_code == 400

    assert counters(server) == {
        "requests": 27,
        "request_errors": 2,
        "predictions_judged": 60,
        "predictions_correct": correct,
        "latency_count": 27,
    }
    assert 0 < correct < 60  # the judging compares for real: the model is good, not perfect


def test_broken_version_answers_500_on_out_of_range_inputs_and_counts_them(serve: Serve, client: httpx.Client) -> None:
    server = serve("v3")
    rows = load_slice("live")
    bad = np.abs(rows.x[:, 3]) > 2.5
    good_row, bad_row = rows.x[~bad][0], rows.x[bad][0]
    ok = client.post(f"{server.url}/predict", json={"instances": [good_row.tolist()], "labels": [0]})
    failed = client.post(f"{server.url}/predict", json={"instances": [bad_row.tolist()], "labels": [0]})
    assert ok.status_code == 200
    assert failed.status_code == 500
    assert "f3" in failed.json()["error"]
    # an error answer names the server that gave it, as a success does
    assert (failed.json()["model"], failed.json()["version"]) == (ok.json()["model"], "v3")
    with pytest.raises(InputOutOfRange):  # the server's answer is the artifact's own failure
        load_artifact(server.model_uri).predict(bad_row[None, :])
    got = counters(server)
    assert (got["requests"], got["request_errors"], got["predictions_judged"]) == (2, 1, 1)


def test_latency_histogram_has_millisecond_buckets(serve: Serve, client: httpx.Client) -> None:
    server = serve("v1")
    client.post(f"{server.url}/predict", json={"instances": load_slice("live").x[:1].tolist()})
    text = scrape(server.url)
    labels = {"model": "demo", "version": "v1"}
    assert metric_value(text, "model_request_duration_seconds_bucket", le="0.001", **labels) is not None
    assert metric_value(text, "model_request_duration_seconds_bucket", le="0.01", **labels) is not None
    assert metric_value(text, "model_request_duration_seconds_bucket", le="+Inf", **labels) == 1.0


def test_drift_gauges_appear_once_the_window_is_full_and_rise_with_a_shift(serve: Serve, client: httpx.Client) -> None:
    server = serve("v2", drift_window=200, drift_min_samples=200)
    rows = load_slice("live")

    def send(x: np.ndarray) -> None:
        for start in range(0, len(x), 50):
            assert client.post(f"{server.url}/predict", json={"instances": x[start : start + 50].tolist()}).is_success

    def psi(feature: str | None = None) -> float | None:
        text = scrape(server.url)
        if feature is None:
            return metric_value(text, "model_input_drift_psi_max", model="demo", version="v2")
        return metric_value(text, "model_input_drift_psi", model="demo", version="v2", feature=feature)

    send(rows.x[:150])
    assert psi() is None  # fewer rows than the window needs: no data, not "no drift"
    send(rows.x[150:200])
    calm = psi()
    assert calm is not None
    assert calm < 0.1
    send(apply_shift(rows.x[200:400], 1.0))
    assert (psi("f0") or 0.0) > 0.25
    assert (psi("f2") or 1.0) < 0.1
    assert (psi() or 0.0) > 0.25


def test_healthz_is_503_until_the_model_loads(tmp_path: Path, client: httpx.Client) -> None:
    server = ModelServer((tmp_path / "absent.pkl").as_uri(), "demo", "v9").start()
    try:
        wait_for(lambda: server.load_error is not None, what="the load to fail")
        assert client.get(f"{server.url}/healthz").status_code == 503
        assert client.post(f"{server.url}/predict", json={"instances": [[0] * 8]}).status_code == 503
    finally:
        server.stop()


def test_serve_command_runs_a_server_process(uris: dict[str, str], client: httpx.Client) -> None:
    command = [sys.executable, "-m", "modelops.sandbox.models", "serve", "--port", "0", "--model-uri", uris["v1"]]
    env = {"MODEL_NAME": "fraud", "MODEL_VERSION": "v1", "PATH": "/usr/bin:/bin"}  # name and version from env
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env) as proc:
        try:
            assert proc.stdout is not None
            match = re.search(r"listening on (http://127\.0\.0\.1:\d+)", proc.stdout.readline())
            assert match, "the server did not print its address"
            url = match.group(1)

            def ready() -> bool:
                return client.get(f"{url}/healthz").status_code == 200

            wait_for(ready, timeout=30, what="the server process to load its model")
            row = load_slice("live").x[:1].tolist()
            assert client.post(f"{url}/predict", json={"instances": row, "labels": [1]}).is_success
            text = scrape(url)
            assert metric_value(text, "model_requests_total", model="fraud", version="v1") == 1.0
            assert metric_value(text, "model_predictions_judged_total", model="fraud", version="v1") == 1.0
        finally:
            proc.terminate()
            proc.wait(timeout=10)
