"""The runner with the real model server and gate job (``python -m modelops.sandbox.models``) and a real Prometheus:
the commands the operator puts in its Deployments and Jobs run as they are, and the servers get scraped with the
labels the analysis queries select on."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from modelops.sandbox.prometheus import PrometheusServer
from modelops.sandbox.runner import Client, LocalRunner
from modelops.sandbox.runner._kube import DEPLOYMENTS, JOBS, PODS

from .helpers import condition, wait_for

pytestmark = pytest.mark.integration

MODELS = ["python", "-m", "modelops.sandbox.models"]


@pytest.fixture(scope="module")
def model_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A small baseline model, trained once for the module (a few seconds)."""
    out = tmp_path_factory.mktemp("model") / "v1"
    done = subprocess.run(
        [sys.executable, "-m", "modelops.sandbox.models", "train", "--version", "v1", "--out", str(out)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    uri: str = json.loads(done.stdout.strip().splitlines()[-1])["uri"]
    return uri


@pytest.fixture
def scraped_runner(
    apiserver: Any, apiserver_namespace: str, tmp_path: Path, prometheus_factory: Callable[..., PrometheusServer]
) -> Iterator[tuple[LocalRunner, PrometheusServer]]:
    prometheus = prometheus_factory()
    prometheus.start(wait_for_targets=False)
    api = apiserver.client()
    runner = LocalRunner(
        api,
        tmp_path / "runner",
        namespaces=[apiserver_namespace],
        on_targets=lambda targets: prometheus.set_targets(targets, wait=False),
    )
    runner.start()
    try:
        yield runner, prometheus
    finally:
        runner.stop()
        api.close()


def test_the_model_server_runs_and_is_scraped_with_namespace_model_version_and_pod(
    scraped_runner: tuple[LocalRunner, PrometheusServer], kube: Client, apiserver_namespace: str, model_uri: str
) -> None:
    runner, prometheus = scraped_runner
    ns = apiserver_namespace
    env = {"MODEL_NAME": "recommender", "MODEL_VERSION": "v1", "MODEL_URI": model_uri, "PORT": "8080"}
    labels = {"modelops.io/model": "recommender", "modelops.io/version": "v1"}
    kube.create(
        DEPLOYMENTS,
        ns,
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "recommender-v1", "labels": labels},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "containers": [
                            {
                                "name": "server",
                                "image": "ghcr.io/modelops/sklearn-server:0.1.0",
                                "command": [*MODELS, "serve"],
                                "env": [{"name": k, "value": v} for k, v in env.items()],
                                "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}},
                            }
                        ]
                    },
                },
            },
        },
    )

    wait_for(
        lambda: ((kube.get(DEPLOYMENTS, ns, "recommender-v1") or {}).get("status") or {}).get("readyReplicas") == 1,
        timeout=60,
        what="the model server ready",
    )
    (proc,) = runner.processes()
    answer = httpx.post(f"{proc.url}/predict", json={"instances": [[0.0] * 8], "labels": [1]}).json()
    assert answer["version"] == "v1"
    series = wait_for(
        lambda: prometheus.query(f'model_requests_total{{namespace="{ns}"}}'), timeout=30, what="a scrape"
    )

    (metric,) = [s["metric"] for s in series]
    assert (metric["model"], metric["version"], metric["pod"]) == ("recommender", "v1", proc.pod)


def test_the_gate_job_result_reaches_the_pod_and_the_job(
    runner: LocalRunner, kube: Client, apiserver_namespace: str, model_uri: str
) -> None:
    ns = apiserver_namespace
    kube.create(
        JOBS,
        ns,
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "recommender-v1-gate"},
            "spec": {
                "backoffLimit": 0,
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [
                            {
                                "name": "evaluate",
                                "image": "ghcr.io/modelops/sklearn-server:0.1.0",
                                "command": [*MODELS, "evaluate"],
                                "env": [{"name": "MODEL_URI", "value": model_uri}],
                            }
                        ],
                    }
                },
            },
        },
    )

    job = wait_for(
        lambda: (
            condition(kube.get(JOBS, ns, "recommender-v1-gate"), "Complete")
            and kube.get(JOBS, ns, "recommender-v1-gate")
        ),
        timeout=60,
        what="the gate job complete",
    )

    (pod,) = [p for p in kube.list(PODS, ns) if p["metadata"]["labels"]["job-name"] == "recommender-v1-gate"]
    result = json.loads(pod["status"]["containerStatuses"][0]["state"]["terminated"]["message"])
    assert 0.5 < result["metrics"]["accuracy"] <= 1.0
    assert job["status"]["succeeded"] == 1
