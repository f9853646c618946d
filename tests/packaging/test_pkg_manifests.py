"""manifests/ (kustomize base + install.yaml) and the other generated copies: current, buildable, valid."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml
from pkg_support import KUBE_VERSION, MANIFESTS, REPO, helm, kubectl, python, render, run, venv_tool

GENERATOR = REPO / "scripts" / "render-manifests.py"


def _objects(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def _key(obj: dict[str, Any]) -> tuple[str, str, str]:
    return (obj["kind"], obj["metadata"].get("namespace", ""), obj["metadata"]["name"])


def test_generated_files_are_current() -> None:
    """install.yaml, the kustomize base, and the chart's copies equal what the generator writes now."""
    proc = run(python(), str(GENERATOR), "--check", "--helm", helm(), check=False)
    assert proc.returncode == 0, proc.stderr


def _scratch_copy(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    for folder in ("crds", "charts", "manifests", "monitoring", "argocd", "scripts"):
        shutil.copytree(REPO / folder, root / folder)
    return root


def test_check_reports_drift_in_every_generated_copy(tmp_path: Path) -> None:
    root = _scratch_copy(tmp_path)
    edits = {
        "charts/modelops-operator/crds/modelops.io_modeldeployments.yaml": "# edited\n",
        "charts/modelops-operator/files/modelops-dashboard.json": " ",
        "manifests/install.yaml": "# edited\n",
        "argocd/argocd-cm-patch.yaml": "# edited\n",
    }
    for rel, suffix in edits.items():
        with (root / rel).open("a") as f:
            f.write(suffix)
    (root / "manifests/crds/leftover.yaml").write_text("kind: Nothing\n")
    proc = run(python(), str(GENERATOR), "--check", "--root", str(root), "--helm", helm(), check=False)
    assert proc.returncode == 1
    for rel in [*edits, "manifests/crds/leftover.yaml"]:
        assert f"stale: {rel}" in proc.stderr
    # Writing repairs every one of them.
    run(python(), str(GENERATOR), "--root", str(root), "--helm", helm())
    run(python(), str(GENERATOR), "--check", "--root", str(root), "--helm", helm())
    assert not (root / "manifests/crds/leftover.yaml").exists()


def test_a_changed_source_makes_the_copies_stale(tmp_path: Path) -> None:
    root = _scratch_copy(tmp_path)
    values = root / "charts/modelops-operator/values.yaml"
    values.write_text(values.read_text().replace("memory: 512Mi", "memory: 768Mi"))
    lua = root / "argocd/resource_customizations/modelops.io/ModelRetirement/health.lua"
    lua.write_text(lua.read_text() + "-- changed\n")
    proc = run(python(), str(GENERATOR), "--check", "--root", str(root), "--helm", helm(), check=False)
    assert proc.returncode == 1
    assert "stale: manifests/deployment.yaml" in proc.stderr
    assert "stale: manifests/install.yaml" in proc.stderr
    assert "stale: argocd/argocd-cm-patch.yaml" in proc.stderr


def test_kustomize_builds_the_same_objects_as_install_yaml() -> None:
    built = _objects(run(kubectl(), "kustomize", str(MANIFESTS)).stdout)
    install = _objects((MANIFESTS / "install.yaml").read_text())
    assert sorted(built, key=_key) == sorted(install, key=_key)
    kinds = {o["kind"] for o in built}
    assert kinds == {
        "Namespace",
        "CustomResourceDefinition",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "ConfigMap",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
        "Service",
        "Deployment",
    }


def test_install_yaml_applies_namespace_and_crds_first() -> None:
    kinds = [o["kind"] for o in _objects((MANIFESTS / "install.yaml").read_text())]
    assert kinds[0] == "Namespace"
    assert kinds[1:4] == ["CustomResourceDefinition"] * 3


def _without_helm_labels(obj: dict[str, Any]) -> dict[str, Any]:
    for meta in (obj["metadata"], obj.get("spec", {}).get("template", {}).get("metadata", {})):
        for label in ("helm.sh/chart", "app.kubernetes.io/managed-by"):
            meta.get("labels", {}).pop(label, None)
    return obj


def test_manifests_are_the_chart_defaults_without_helm_labels() -> None:
    """The plain manifests and a default `helm install` deploy the same operator, only Helm's labels differ."""
    chart = [_without_helm_labels(o) for o in render(namespace="modelops-system", release="modelops-operator")]
    install = [
        o
        for o in _objects((MANIFESTS / "install.yaml").read_text())
        if o["kind"] not in ("Namespace", "CustomResourceDefinition")
    ]
    assert sorted(install, key=_key) == sorted(chart, key=_key)
    for obj in install:
        assert "helm.sh/chart" not in obj["metadata"].get("labels", {})


def test_manifests_validate_against_kubernetes() -> None:
    files = sorted(str(p) for p in [*MANIFESTS.glob("*.yaml"), *MANIFESTS.glob("crds/*.yaml")])
    proc = run(venv_tool("kubernetes-validate"), "-k", KUBE_VERSION, "--strict", *files)
    lines = proc.stdout.splitlines()
    # Only the Kustomization itself has no Kubernetes schema.
    assert [line for line in lines if line.startswith("WARN")] == [
        line for line in lines if line.startswith("WARN") and "kustomization.yaml" in line and "Kustomization" in line
    ]
    # 14 objects, each in its own file and again in install.yaml
    assert sum("passed for resource" in line for line in lines) == 28
