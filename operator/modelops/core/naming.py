"""Names and labels of the objects the operator creates: pure, shared by the core and the kube adapter."""

from __future__ import annotations

import hashlib
from datetime import datetime

#: Kubernetes object names used here must be DNS-1123 labels: at most 63 characters.
MAX_NAME = 63

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGER = "modelops"
MODEL_LABEL = "modelops.io/model"
VERSION_LABEL = "modelops.io/version"
DEPLOYMENT_LABEL = "modelops.io/deployment"
#: on the Pods of a version's Deployment: ``server``. Gate and retraining Job Pods carry the same owner and version
#: labels, so the Services select this too, or a Job's Pod would be an endpoint of the version it tests.
COMPONENT_LABEL = "modelops.io/component"
SERVER_COMPONENT = "server"


def owner_labels(deployment_name: str, model_name: str | None) -> dict[str, str]:
    """The labels that mark an object as one ModelDeployment's: every child carries them, and nothing is deleted
    unless they (and an ownerReference) match. The one place they are spelled (``model_name`` unknown: left out).

    >>> owner_labels("fraud", "fraud-model")
    {'app.kubernetes.io/managed-by': 'modelops', 'modelops.io/model': 'fraud-model', 'modelops.io/deployment': 'fraud'}
    >>> owner_labels("fraud", None)
    {'app.kubernetes.io/managed-by': 'modelops', 'modelops.io/deployment': 'fraud'}
    """
    labels = {MANAGED_BY_LABEL: MANAGER}
    if model_name:
        labels[MODEL_LABEL] = model_name
    labels[DEPLOYMENT_LABEL] = deployment_name
    return labels


def dns_label(name: str) -> str:
    """``name`` with '.' replaced by '-', cut to 63 characters with a hash of the full name when too long.

    The hash keeps two long names that share a prefix distinct.

    >>> dns_label("fraud-1.2.0")
    'fraud-1-2-0'
    >>> long = dns_label("m" * 70)
    >>> len(long), long[-9:] == "-" + long[-8:]
    (63, True)
    """
    out = name.replace(".", "-")
    if len(out) <= MAX_NAME:
        return out
    digest = hashlib.sha256(out.encode()).hexdigest()[:8]
    return f"{out[: MAX_NAME - 9].rstrip('-')}-{digest}"


def workload_name(deployment_name: str, version: str) -> str:
    """The Deployment and Service name of one version: ``<deployment>-<version>``, a DNS-1123 label.

    >>> workload_name("fraud", "1.2.0")
    'fraud-1-2-0'
    >>> len(workload_name("m" * 63, "v1"))
    63
    """
    return dns_label(f"{deployment_name}-{version}")


def _stamp(at: datetime) -> str:
    """A short, sortable token of a time: seconds since the epoch in hex."""
    return format(int(at.timestamp()), "x")


def gate_job_name(deployment_name: str, version: str, gate: str, rollout_started_at: datetime) -> str:
    """The Job of one gate for one rollout attempt; a retry of the same version gets a new name.

    >>> from datetime import UTC, datetime
    >>> gate_job_name("fraud", "1.1", "holdout", datetime(2026, 1, 1, tzinfo=UTC))
    'fraud-1-1-holdout-6955b900'
    """
    return dns_label(f"{deployment_name}-{version}-{gate}-{_stamp(rollout_started_at)}")


def retraining_job_name(deployment_name: str, started_at: datetime) -> str:
    """The retraining Job started at ``started_at``.

    >>> from datetime import UTC, datetime
    >>> retraining_job_name("fraud", datetime(2026, 1, 1, tzinfo=UTC))
    'fraud-retrain-6955b900'
    """
    return dns_label(f"{deployment_name}-retrain-{_stamp(started_at)}")
