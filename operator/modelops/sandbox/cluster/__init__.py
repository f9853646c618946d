"""The local cluster: the real Kubernetes control plane, built from its Go modules, on 127.0.0.1."""

from .cluster import NODE_NAME, AuditRecord, ClusterError, LocalCluster, kube_binaries, write_kubeconfig
from .pki import CertPair, Pki

__all__ = [
    "NODE_NAME",
    "AuditRecord",
    "CertPair",
    "ClusterError",
    "LocalCluster",
    "Pki",
    "kube_binaries",
    "write_kubeconfig",
]
