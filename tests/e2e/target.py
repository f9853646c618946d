"""The cluster the end-to-end scenarios run against.

``MODELOPS_E2E_KUBECONFIG`` unset (the default): the local cluster (``modelops.sandbox``: the real control plane,
the node agent that runs Pods as processes from the source tree). Set to a kubeconfig (``make e2e KUBECONFIG=...``):
that cluster, "foreign" here, where the chart is installed with ``helm`` and the operator runs on this machine with
the chart's ServiceAccount token. A foreign cluster's kubelets run images, and the model server's image is not
published, so what needs the model servers (or the sandbox itself) runs on the local cluster only, and skips on a
foreign one saying why (:func:`local_cluster_only`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

KUBECONFIG_ENV = "MODELOPS_E2E_KUBECONFIG"

#: Why a test needs the local cluster, the usual reason.
MODEL_SERVER_REASON = (
    "the model server and the gate Job (python -m modelops.sandbox.models) run only under the local node agent, "
    "from the source tree: their image ghcr.io/modelops/sklearn-server is not published for real kubelets"
)


def foreign_kubeconfig() -> Path | None:
    """The kubeconfig of the cluster to run against, or ``None`` for the local cluster."""
    value = os.environ.get(KUBECONFIG_ENV, "").strip()
    if not value:
        return None
    path = Path(value).expanduser().resolve()
    if not path.is_file():
        raise pytest.UsageError(f"${KUBECONFIG_ENV}={value}: no such file")
    return path


def local_cluster_only(why: str = MODEL_SERVER_REASON) -> pytest.MarkDecorator:
    """Marks a test (or a module, in ``pytestmark``) that only the local cluster can run: it skips, saying ``why``,
    when ``$MODELOPS_E2E_KUBECONFIG`` names another cluster."""
    return pytest.mark.skipif(
        foreign_kubeconfig() is not None, reason=f"needs the local cluster (${KUBECONFIG_ENV} names another): {why}"
    )


class KubeconfigCluster:
    """A cluster known by its kubeconfig only, with what :func:`modelops.sandbox.install.install_operator` uses of
    a :class:`~modelops.sandbox.cluster.LocalCluster`: ``kubeconfig`` (its admin), ``directory`` (where the
    operator's kubeconfig goes), ``server`` and ``ca`` (of the current context: the ServiceAccount's kubeconfig
    points at them), ``api_client()``."""

    def __init__(self, kubeconfig: Path, directory: Path) -> None:
        import yaml

        self.kubeconfig = kubeconfig
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        config = yaml.safe_load(kubeconfig.read_text())
        current = config.get("current-context")
        context = next((c["context"] for c in config.get("contexts") or [] if c.get("name") == current), None)
        if context is None:
            raise pytest.UsageError(f"{kubeconfig}: no current context")
        cluster = next(c["cluster"] for c in config.get("clusters") or [] if c.get("name") == context["cluster"])
        self.server: str = cluster["server"]
        if cluster.get("certificate-authority-data"):
            import base64

            self.ca = self.directory / "ca.crt"
            self.ca.write_bytes(base64.b64decode(cluster["certificate-authority-data"]))
        elif cluster.get("certificate-authority"):
            self.ca = (kubeconfig.parent / cluster["certificate-authority"]).resolve()
        else:
            raise pytest.UsageError(
                f"{kubeconfig}: the cluster of context {current!r} has no certificate authority (the operator's "
                "kubeconfig must verify the API server)"
            )

    def api_client(self, kubeconfig: Path | None = None) -> Any:
        import kubernetes

        return kubernetes.config.new_client_from_config(config_file=str(kubeconfig or self.kubeconfig))
