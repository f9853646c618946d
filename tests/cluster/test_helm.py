"""The chart's life on the real cluster: ``helm install``, ``helm upgrade`` to the working tree's chart with new
values, ``helm uninstall``, and what the operator's ServiceAccount may do at each point.

Given a release of the chart watching one namespace, when it is upgraded to watch a second one, then its
ServiceAccount gains exactly that namespace (the Roles follow the values) and keeps its token; when it is
uninstalled, then its ServiceAccount and RBAC are gone (the token no longer authenticates) while the CRDs and the
ModelDeployments stay (Helm never deletes CRDs, so running rollouts survive an uninstall; docs/install.md).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from modelops.sandbox.install import CHART, Installation, helm, install_operator
from plugins.cluster import KubeCluster

from .conftest import eventually, model_deployment

pytestmark = pytest.mark.integration

RELEASE = "modelops-helm"
RELEASE_NAMESPACE = "modelops-helm"


def can_i(kube: KubeCluster, kubeconfig: Path, verb: str, resource: str, namespace: str) -> str:
    out = kube.cluster.kubectl("auth", "can-i", verb, resource, "-n", namespace, kubeconfig=kubeconfig, check=False)
    return out.strip()


def installed(kube: KubeCluster, namespaces: list[str], kubeconfig: Path) -> Installation:
    values = {"replicaCount": 0, "watchNamespaces": namespaces}
    return install_operator(
        kube.cluster, release=RELEASE, namespace=RELEASE_NAMESPACE, values=values, kubeconfig_path=kubeconfig
    )


@pytest.fixture
def release(kube: KubeCluster) -> Iterator[None]:
    yield
    helm(kube.kubeconfig, "uninstall", RELEASE, f"--namespace={RELEASE_NAMESPACE}", check=False)


def test_install_upgrade_and_uninstall(kube: KubeCluster, release: None, tmp_path: Path) -> None:
    first, second = kube.namespace("helm-a"), kube.namespace("helm-b")
    token = tmp_path / "operator.kubeconfig"

    # Given: the chart installed, watching the first namespace only
    installation = installed(kube, [first], token)
    assert can_i(kube, token, "create", "deployments.apps", first) == "yes"
    assert can_i(kube, token, "create", "deployments.apps", second) == "no"
    assert can_i(kube, token, "get", "secrets", first) == "no"
    md = model_deployment("kept")
    path = tmp_path / "md.json"
    path.write_text(json.dumps({**md, "metadata": {"name": "kept", "namespace": first}}))
    kube.cluster.kubectl("create", "-f", str(path))

    # When: helm upgrade with the working tree's chart, now watching both
    helm(
        kube.kubeconfig, "upgrade", RELEASE, str(CHART), f"--namespace={RELEASE_NAMESPACE}", "--reuse-values",
        "--set", f"watchNamespaces={{{first},{second}}}",
    )  # fmt: skip
    # Then: the same ServiceAccount (its token still works) may act in the second namespace too
    assert can_i(kube, token, "create", "deployments.apps", second) == "yes"
    assert can_i(kube, token, "patch", "modeldeployments.modelops.io/status", second) == "yes"
    history = yaml.safe_load(helm(kube.kubeconfig, "history", RELEASE, f"--namespace={RELEASE_NAMESPACE}",
                                  "-o", "yaml").stdout)  # fmt: skip
    assert [h["revision"] for h in history] == [1, 2]
    assert history[-1]["status"] == "deployed"

    # When: helm uninstall
    helm(kube.kubeconfig, "uninstall", RELEASE, f"--namespace={RELEASE_NAMESPACE}", "--wait")
    # Then: its identity and rules are gone, the CRDs and the user's objects stay
    sa = kube.cluster.kubectl("get", "serviceaccount", "-n", RELEASE_NAMESPACE, installation.service_account,
                              "--ignore-not-found", "-o", "name")  # fmt: skip
    assert sa.strip() == ""
    eventually(lambda: "Unauthorized" in _whoami(kube, token), timeout=30, what="the token is no longer accepted")
    roles = kube.cluster.kubectl("get", "roles,rolebindings", "-n", first, "-o", "name")
    assert RELEASE not in roles
    crds = kube.cluster.kubectl("get", "crd", "-o", "name")
    assert "modeldeployments.modelops.io" in crds
    assert "modelretirements.modelops.io" in crds
    assert kube.cluster.kubectl("get", "mdep", "kept", "-n", first, "-o", "name").strip() == (
        "modeldeployment.modelops.io/kept"
    )


def _whoami(kube: KubeCluster, kubeconfig: Path) -> str:
    """What ``kubectl auth whoami`` says with ``kubeconfig``, errors included."""
    run = subprocess.run(
        [str(kube.cluster.bin / "kubectl"), f"--kubeconfig={kubeconfig}", "auth", "whoami"],
        capture_output=True,
        text=True,
        check=False,
    )
    return run.stdout + run.stderr
