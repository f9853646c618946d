"""The operator as a user installs and runs it, on the local cluster or on any cluster given by a kubeconfig.

``make e2e`` runs this against the local cluster (the session's: the real control plane and the node agent).
``make e2e KUBECONFIG=path`` (``$MODELOPS_E2E_KUBECONFIG``) runs it against that cluster instead: the chart is
installed there with ``helm`` (release and namespace ``modelops-e2e``, ``replicaCount: 0``: its CRDs,
ServiceAccount and RBAC; uninstalled at the end, the CRDs stay as Helm leaves them), and ``modelops run`` runs on
this machine with a TokenRequest token of the chart's ServiceAccount, so the cluster's API server authorizes every
request by the chart's RBAC. What runs where:

* any cluster where the chart installs (the API server must be reachable from here, and serve TokenRequest):
  :func:`test_the_operator_starts_a_rollout_with_the_charts_service_account` - the operator, as the chart's
  ServiceAccount, takes a ModelDeployment (the example's, with the ``replicas`` router, so no Gateway API CRDs are
  needed), creates its gate Job owned by it, reports ``Validating`` with ``observedGeneration`` and Events;
  deleting the ModelDeployment lets the cluster's garbage collector remove what it owned.
* the local cluster only (it skips elsewhere, saying so):
  :func:`test_the_first_version_runs_and_becomes_stable` - the gate Job and the model server run and v1 becomes
  stable and Ready. That needs kubelets that run the model server, ``python -m modelops.sandbox.models`` from the
  source tree: the local node agent does; on a real cluster its image (``ghcr.io/modelops/sklearn-server``) is not
  published, so the gate Pod would never start. The demo (tests/e2e/test_demo.py) and the sandbox's own tests are
  local-only for the same reason.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from modelops.sandbox.install import Installation, helm, install_operator
from modelops.sandbox.node import ApiError, Client, Kind, kill_tree
from modelops.sandbox.node._kube import DEPLOYMENTS, JOBS, PODS
from modelops.sandbox.prometheus import PrometheusServer, free_port
from plugins.waiting import wait_for

from .target import KubeconfigCluster, foreign_kubeconfig, local_cluster_only

pytestmark = pytest.mark.e2e

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "recommender.yaml"
MODELDEPLOYMENTS = Kind("modelops.io", "v1alpha1", "modeldeployments")
NAMESPACES = Kind("", "v1", "namespaces")
SERVICEACCOUNTS = Kind("", "v1", "serviceaccounts")
EVENTS = Kind("", "v1", "events")
#: the Helm release (and its namespace) on a foreign cluster
RELEASE = "modelops-e2e"
MAIN = "import sys; from modelops.cli import main; sys.exit(main())"


def eventually(check: Any, timeout: float, what: str) -> Any:
    return wait_for(check, timeout, what, interval=0.2)


@dataclass
class Target:
    """The cluster under test: admin access, the chart's installation, and whether it is the local one."""

    cluster: Any
    installation: Installation
    local: bool

    def client(self) -> Client:
        return Client(self.cluster.api_client())


@pytest.fixture(scope="module")
def target(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    kubeconfig = foreign_kubeconfig()
    if kubeconfig is None:
        kube = request.getfixturevalue("kube")  # the session's local cluster, the chart already installed
        yield Target(kube.cluster, kube.installation, local=True)
        return
    directory = tmp_path_factory.mktemp("foreign-cluster")
    cluster = KubeconfigCluster(kubeconfig, directory)
    installation = install_operator(
        cluster,  # type: ignore[arg-type]
        release=RELEASE,
        namespace=RELEASE,
        kubeconfig_path=directory / "operator.kubeconfig",
    )
    try:
        yield Target(cluster, installation, local=False)
    finally:
        helm(kubeconfig, "uninstall", RELEASE, f"--namespace={RELEASE}", "--wait", check=False)
        api = cluster.api_client()
        try:
            Client(api).request("DELETE", NAMESPACES.path(None, RELEASE))
        except ApiError as e:
            if e.status != 404:
                raise
        finally:
            api.close()


@pytest.fixture
def namespace(target: Target) -> Iterator[str]:
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    api = target.client()
    api.request("POST", NAMESPACES.path(None), body={"apiVersion": "v1", "kind": "Namespace",
                                                     "metadata": {"name": name}})  # fmt: skip
    eventually(lambda: api.get(SERVICEACCOUNTS, name, "default"), 30, "the namespace's default ServiceAccount")
    try:
        yield name
    finally:
        api.request("DELETE", NAMESPACES.path(None, name))
        api.api.close()


@pytest.fixture
def operator(target: Target, namespace: str, prometheus: PrometheusServer, tmp_path: Path) -> Iterator[Path]:
    """``modelops run`` on this machine, authenticated with the chart's ServiceAccount token; its log's path."""
    health = free_port()
    argv = [sys.executable, "-c", MAIN, "run", "-n", namespace, "--kubeconfig", str(target.installation.kubeconfig),
            "--prometheus-url", prometheus.url, "--metrics-port", "0", "--health-port", str(health), "--standalone",
            "--gate-poll", "1", "--resync", "5"]  # fmt: skip
    log = tmp_path / "operator.log"
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    with log.open("ab") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:

        def healthy() -> bool:
            assert process.poll() is None, f"the operator exited:\n{log.read_text()[-3000:]}"
            try:
                return httpx.get(f"http://127.0.0.1:{health}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        eventually(healthy, 60, "the operator healthy")
        yield log
    finally:
        kill_tree(process, grace=10)


def model_deployment(uri: str) -> dict[str, Any]:
    """The example, with the ``replicas`` router (no router CRDs needed), one replica, a short gate timeout."""
    body: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    spec = body["spec"]
    spec["model"]["uri"] = uri
    spec["server"]["replicas"] = 1
    spec["traffic"] = {"router": "replicas", "replicas": {"service": "recommender"}}
    spec["gates"][0]["timeout"] = "120s"
    return body


@pytest.fixture(scope="module")
def model_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
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


def owned_by(obj: dict[str, Any], md: dict[str, Any]) -> bool:
    return any(r.get("uid") == md["metadata"]["uid"] and r.get("controller") for r in
               obj["metadata"].get("ownerReferences") or [])  # fmt: skip


def test_the_operator_starts_a_rollout_with_the_charts_service_account(
    target: Target, namespace: str, operator: Path, model_uri: str
) -> None:
    api = target.client()
    md = api.create(MODELDEPLOYMENTS, namespace, model_deployment(model_uri))

    def validating() -> dict[str, Any] | None:
        obj = api.get(MODELDEPLOYMENTS, namespace, "recommender") or {}
        status = obj.get("status") or {}
        return obj if status.get("phase") == "Validating" and status.get("observedGeneration") == 1 else None

    seen = eventually(validating, 60, "the ModelDeployment Validating")
    jobs = eventually(lambda: api.list(JOBS, namespace), 30, "the gate Job")

    assert "held-out-eval" in seen["status"]["message"], seen["status"]
    (job,) = jobs
    assert job["metadata"]["name"].startswith("recommender-v1-held-out-eval-")
    assert owned_by(job, md)
    assert job["spec"]["template"]["metadata"]["labels"]["modelops.io/deployment"] == "recommender"
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == ["python", "-m", "modelops.sandbox.models",
                                                                           "evaluate"]  # fmt: skip
    # everything the operator wrote, it wrote as the chart's ServiceAccount (its token is all it has)
    kubeconfig = yaml.safe_load(target.installation.kubeconfig.read_text())
    assert [u["user"].keys() for u in kubeconfig["users"]] == [{"token": ""}.keys()]
    events = api.list(EVENTS, namespace)
    assert any(e.get("involvedObject", {}).get("name") == "recommender" for e in events), events

    api.request("DELETE", MODELDEPLOYMENTS.path(namespace, "recommender"))

    # the cluster's garbage collector removes what the ModelDeployment owned
    eventually(lambda: api.get(MODELDEPLOYMENTS, namespace, "recommender") is None and not api.list(JOBS, namespace),
               90, "the ModelDeployment gone, and the gate Job with it")  # fmt: skip
    api.api.close()


@local_cluster_only()
def test_the_first_version_runs_and_becomes_stable(
    target: Target, namespace: str, operator: Path, model_uri: str
) -> None:
    api = target.client()
    api.create(MODELDEPLOYMENTS, namespace, model_deployment(model_uri))

    def stable() -> dict[str, Any] | None:
        obj = api.get(MODELDEPLOYMENTS, namespace, "recommender") or {}
        status = obj.get("status") or {}
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions") or [])
        return obj if status.get("stableVersion") == "v1" and ready else None

    md = eventually(stable, 180, f"v1 stable and Ready (operator log: {operator})")

    assert md["status"]["phase"] == "Promoted"
    gates = md["status"]["gates"]
    assert [(g["version"], g["phase"]) for g in gates] == [("v1", "Passed")]
    deployment = api.get(DEPLOYMENTS, namespace, "recommender-v1") or {}
    assert owned_by(deployment, md)
    assert (deployment.get("status") or {}).get("readyReplicas") == 1  # the Deployment controller's count
    servers = [p for p in api.list(PODS, namespace) if p["metadata"]["labels"].get("modelops.io/version") == "v1"
               and p["status"]["phase"] == "Running"]  # fmt: skip
    assert len(servers) == 1
    assert servers[0]["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet"
    api.api.close()
