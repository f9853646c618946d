"""The operator's own workloads under the node agent: the Deployment and the gate Job the operator builds from
``examples/recommender.yaml`` (``python -m modelops.sandbox.models serve|evaluate``) run as they are; the model
server binds its Pod's address, becomes Ready, and a real Prometheus finds it from the API's Pods (the sandbox's
Pod discovery) and scrapes it with the labels the analysis queries select on."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from modelops.adapters.kube.objects import build_deployment, build_job
from modelops.api import ModelDeployment
from modelops.sandbox.discovery import PodDiscovery, scrape_config
from modelops.sandbox.node import Client, Kind
from modelops.sandbox.node._kube import DEPLOYMENTS, JOBS
from modelops.sandbox.prometheus import PrometheusServer
from plugins.cluster import KubeCluster

from .helpers import condition, container_status, pods, processes, wait_for

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "recommender.yaml"
MODELDEPLOYMENTS = Kind("modelops.io", "v1alpha1", "modeldeployments")


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


def _model_deployment(api: Client, ns: str) -> ModelDeployment:
    """The example ModelDeployment, created in the API (its children need its uid as their owner; no operator runs
    here, so nothing acts on it)."""
    body = yaml.safe_load(EXAMPLE.read_text())
    body["spec"]["server"]["replicas"] = 1
    created = api.create(MODELDEPLOYMENTS, ns, body)
    return ModelDeployment.model_validate(created)


def test_the_model_server_runs_ready_on_its_pod_address_and_is_scraped_with_its_labels(
    kube: KubeCluster,
    api: Client,
    ns: str,
    model_uri: str,
    tmp_path: Path,
    prometheus_factory: Callable[..., PrometheusServer],
) -> None:
    md = _model_deployment(api, ns)
    targets = tmp_path / "pods.json"
    discovery = PodDiscovery(api, targets)
    discovery.start()
    try:
        prometheus = prometheus_factory(extra_scrape_configs=[scrape_config(targets, "1s")])
        api.create(DEPLOYMENTS, ns, build_deployment(md, "v1", model_uri, replicas=1))

        status = wait_for(
            lambda: (s := (api.get(DEPLOYMENTS, ns, "recommender-v1") or {}).get("status") or {}).get(
                "readyReplicas") == 1 and s, 90, "the model server ready")  # fmt: skip
        (item,) = pods(api, ns, **{"modelops.io/version": "v1"})
        ip = item["status"]["podIP"]
        answer = httpx.post(f"http://{ip}:8080/predict", json={"instances": [[0.0] * 8], "labels": [1]}, timeout=10)
        series = wait_for(
            lambda: prometheus.query(f'model_requests_total{{namespace="{ns}"}}'), 40, "a scrape of the model server"
        )
    finally:
        discovery.stop()

    assert status["availableReplicas"] == 1
    assert condition(item, "Ready")["status"] == "True"  # type: ignore[index]
    assert answer.json()["version"] == "v1"
    (process,) = processes(kube.node, ns, "recommender-v1-")
    assert process.ip == ip
    (metric,) = [s["metric"] for s in series]
    assert (metric["model"], metric["version"], metric["pod"]) == ("recommender", "v1", item["metadata"]["name"])
    assert metric["instance"] == f"{ip}:8080"


def test_the_gate_job_result_reaches_the_pods_termination_message(
    api: Client, ns: str, model_uri: str, tmp_path: Path
) -> None:
    md = _model_deployment(api, ns)
    gate = md.spec.gates[0]
    body = build_job(md, "recommender-v1-gate", gate.template, job_labels={"modelops.io/gate": gate.name},
                     env={"MODEL_URI": model_uri, "MODEL_VERSION": "v1"})  # fmt: skip
    api.create(JOBS, ns, body)

    def complete() -> dict[str, Any] | None:
        job = api.get(JOBS, ns, "recommender-v1-gate")
        done = condition(job, "Complete")
        return job if done and done["status"] == "True" else None

    job = wait_for(complete, 90, "the gate Job complete")

    (item,) = pods(api, ns, job_name="recommender-v1-gate")
    result = json.loads(container_status(item)["state"]["terminated"]["message"])
    assert 0.5 < result["metrics"]["accuracy"] <= 1.0
    assert job["status"]["succeeded"] == 1
