"""``modelops sandbox apiserver`` as a process, driven by the real kubectl: discovery, get, client-side apply
(create, then a merge patch for custom resources and a strategic merge patch for built-ins), delete, and a 422
naming the field for an invalid resource."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from emulator.objects import model_deployment

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed"),
]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The emulator as its own process; yields the kubeconfig path and the port it printed."""
    workdir = tmp_path_factory.mktemp("kubectl")
    kubeconfig = workdir / "kubeconfig"
    command = [
        sys.executable,
        "-c",
        "from modelops.cli import main; raise SystemExit(main())",
        "sandbox",
        "apiserver",
        "--port",
        "0",
        "--kubeconfig",
        str(kubeconfig),
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        first = process.stdout.readline()  # blocks until the server listens (or the process dies)
        assert "listening on http://127.0.0.1:" in first, first + (process.stderr.read() if process.stderr else "")
        port = int(first.rsplit("port ", 1)[1].rstrip(")\n"))
        deadline = time.monotonic() + 10
        while not kubeconfig.exists():
            assert time.monotonic() < deadline, "no kubeconfig written"
            time.sleep(0.02)
        yield {"kubeconfig": kubeconfig, "port": port, "workdir": workdir}
    finally:
        process.send_signal(signal.SIGTERM)
        _, errors = process.communicate(timeout=15)  # also closes the pipes
        assert process.returncode == 0, errors


def kubectl(served: dict[str, Any], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": str(served["kubeconfig"]), "HOME": str(served["workdir"])}
    result = subprocess.run(["kubectl", *args], env=env, capture_output=True, text=True, timeout=60)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def write(served: dict[str, Any], name: str, *docs: dict[str, Any]) -> Path:
    path: Path = served["workdir"] / name
    path.write_text(yaml.safe_dump_all(docs), encoding="utf-8")
    return path


def test_the_process_listens_on_loopback_and_writes_a_kubeconfig(served):
    config = yaml.safe_load(served["kubeconfig"].read_text())
    assert config["clusters"][0]["cluster"]["server"] == f"http://127.0.0.1:{served['port']}"


def test_kubectl_get_lists_namespaces_and_knows_the_short_names(served):
    namespaces = json.loads(kubectl(served, "get", "namespaces", "-o", "json").stdout)
    assert {"default", "kube-system"} <= {ns["metadata"]["name"] for ns in namespaces["items"]}
    result = kubectl(served, "get", "mdep,mret")
    assert "No resources found" in result.stdout + result.stderr


def test_kubectl_apply_creates_then_updates_and_delete_removes(served):
    mdep = model_deployment("applied")
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "applied-server"},
        "spec": {
            "selector": {"matchLabels": {"app": "a"}},
            "template": {
                "metadata": {"labels": {"app": "a"}},
                "spec": {"containers": [{"name": "server", "image": "s:1"}, {"name": "sidecar", "image": "c:1"}]},
            },
        },
    }
    path = write(served, "applied.yaml", mdep, deployment)
    created = kubectl(served, "apply", "-f", str(path)).stdout
    assert "modeldeployment.modelops.io/applied created" in created
    assert "deployment.apps/applied-server created" in created

    mdep["spec"]["model"]["version"] = "v2"
    deployment["spec"]["template"]["spec"]["containers"][1]["image"] = "c:2"
    write(served, "applied.yaml", mdep, deployment)
    updated = kubectl(served, "apply", "-f", str(path)).stdout
    assert "modeldeployment.modelops.io/applied configured" in updated
    live = json.loads(kubectl(served, "get", "mdep", "applied", "-o", "json").stdout)
    assert (live["spec"]["model"]["version"], live["metadata"]["generation"]) == ("v2", 2)
    assert "kubectl.kubernetes.io/last-applied-configuration" in live["metadata"]["annotations"]
    server = json.loads(kubectl(served, "get", "deployment", "applied-server", "-o", "json").stdout)
    assert [c["image"] for c in server["spec"]["template"]["spec"]["containers"]] == ["s:1", "c:2"]

    assert "unchanged" in kubectl(served, "apply", "-f", str(path)).stdout
    kubectl(served, "delete", "-f", str(path))
    missing = kubectl(served, "get", "mdep", "applied", check=False)
    assert missing.returncode != 0
    assert 'modeldeployments.modelops.io "applied" not found' in missing.stderr


def test_kubectl_apply_of_an_invalid_resource_is_rejected_naming_the_field(served):
    invalid = model_deployment("invalid", rollout={"steps": [{"weight": 5}, {"weight": 150}, {"weight": 100}]})
    result = kubectl(served, "apply", "-f", str(write(served, "invalid.yaml", invalid)), check=False)
    assert result.returncode != 0
    assert 'The ModelDeployment "invalid" is invalid: spec.rollout.steps[1].weight: Invalid value: 150' in result.stderr


def test_kubectl_apply_of_an_unknown_field_is_rejected_by_strict_validation(served):
    unknown = model_deployment("unknown")
    unknown["spec"]["server"]["imagee"] = "typo"
    result = kubectl(served, "apply", "-f", str(write(served, "unknown.yaml", unknown)), check=False)
    assert result.returncode != 0
    assert 'unknown field "spec.server.imagee"' in result.stderr


@pytest.mark.skipif(not list(EXAMPLES.glob("*.yaml")), reason="examples/ holds no YAML yet")
def test_kubectl_apply_creates_the_examples(served):
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "examples"}}
    kubectl(served, "apply", "-f", str(write(served, "namespace.yaml", namespace)))
    applied = kubectl(served, "apply", "-n", "examples", "-f", str(EXAMPLES)).stdout
    expected = [
        doc
        for path in sorted(EXAMPLES.glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if isinstance(doc, dict)
    ]
    for doc in expected:
        assert f"/{doc['metadata']['name']} created" in applied
    kubectl(served, "delete", "-n", "examples", "-f", str(EXAMPLES))


def test_kubectl_get_prints_the_crds_printer_columns(served):
    kubectl(served, "apply", "-f", str(write(served, "columns.yaml", model_deployment("columns"))))
    status = json.dumps({"status": {"phase": "Progressing", "canaryWeight": 25}})
    kubectl(served, "patch", "mdep", "columns", "--subresource=status", "--type=merge", "-p", status)
    header, row = kubectl(served, "get", "mdep", "columns").stdout.splitlines()
    assert header.split() == ["NAME", "PHASE", "STABLE", "CANDIDATE", "WEIGHT", "AGE"]
    assert row.split()[:3] == ["columns", "Progressing", "25"]
    kubectl(served, "delete", "mdep", "columns")
