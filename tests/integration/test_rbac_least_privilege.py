"""Least privilege, proven on the real API server: the chart's RBAC, as installed, grants exactly the
(group, resource, verb) triples that the operator (our client and kopf's, both as the chart's ServiceAccount) used
during the integration tests before this module, and the API server refused none of its requests.

The evidence is the API server's audit log: every request of the operator's user since the first operator of the
integration tests started (the in-process ones on ``it-*`` and the ``modelops run`` process on ``proc-*``), with the
verb and resource as the API server authorized them. Runs last in tests/integration (file order: ``test_operator``
comes first), once their operators have stopped: a watch is recorded when it ends, and kopf's watches of namespaces
and CRDs last as long as the operator.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from modelops.sandbox.cluster import AuditRecord
from modelops.sandbox.install import helm
from modelops.sandbox.rbac import Allowance, ApiRequest, bound_roles, compare
from plugins.cluster import KubeCluster, RequestLog

from .live import eventually

pytestmark = pytest.mark.integration

#: grants kept although the integration tests do not exercise them, each with its reason
ALLOWANCES = [
    Allowance("", "services", "patch", "a Service edited by hand is patched back by ensure_workload (rare path)"),
]


def installed_chart(kube: KubeCluster) -> list[dict[str, Any]]:
    """The objects of the chart's release as Helm installed them on the cluster (what the API server enforces)."""
    release = kube.installation
    manifest = helm(kube.kubeconfig, "get", "manifest", release.release, f"--namespace={release.namespace}").stdout
    return [d for d in yaml.safe_load_all(manifest) if d]


def operator_records(log: RequestLog, kube: KubeCluster) -> list[AuditRecord]:
    """The requests of the operator's user on API resources (discovery's non-resource URLs are everyone's)."""
    return [r for r in log.records if r.user == kube.operator_user and r.resource]


def test_the_chart_grants_exactly_what_the_operator_uses(integration_requests: RequestLog, kube: KubeCluster) -> None:
    records = operator_records(integration_requests, kube)
    used = {(r.group, r.resource, r.subresource, r.verb) for r in records}
    assert ("modelops.io", "modeldeployments", "status", "patch") in used, (
        "no operator traffic in the log: run this module together with the rest of tests/integration"
    )
    assert any(r.namespace.startswith("proc-") for r in records), "the `modelops run` process is in the evidence"
    refused = [r for r in records if r.status == 403]
    assert refused == [], f"the API server refused the operator: the chart does not grant {refused}"

    release = kube.installation
    roles = bound_roles(installed_chart(kube), release.service_account, release.namespace)

    def granted_exactly() -> bool:
        requests = [ApiRequest.from_record(r) for r in operator_records(integration_requests, kube)]
        report = compare(requests, roles, ALLOWANCES)
        assert report.ok, report.explain()
        return True

    # the stopped operators' last watches are recorded once the API server has seen their connections close
    eventually(granted_exactly, timeout=15, interval=0.5)
