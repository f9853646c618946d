"""Least privilege, proven: the chart's RBAC grants exactly the (group, resource, verb) triples that the operator
(our client and kopf's) used against the emulator during the integration tests before this module.

Runs last in tests/integration (file order): it reads the session emulator's request log.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelops.handlers.runtime import USER_AGENT
from modelops.sandbox.rbac import Allowance, ApiRequest, bound_roles, compare

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "modelops-system"

#: grants kept although the integration tests do not exercise them, each with its reason
ALLOWANCES = [
    Allowance("", "services", "patch", "a Service edited by hand is patched back by ensure_workload (rare path)"),
    Allowance("batch", "jobs", "delete", "a gate or retraining Job is deleted when a newer version supersedes it"),
]


def rendered_chart() -> list[dict[str, Any]]:
    helm = subprocess.run(["bash", "scripts/fetch-helm.sh"], cwd=ROOT, check=True, capture_output=True, text=True)
    out = subprocess.run(
        [helm.stdout.strip(), "template", "modelops", "charts/modelops-operator", "--namespace", NAMESPACE],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def operator_requests(apiserver: Any) -> list[ApiRequest]:
    """The operator's requests (its client and kopf's) in this module's namespaces, and cluster-scoped ones (other
    test modules run operators of their own on the shared emulator, in namespaces of their own)."""
    ours = (USER_AGENT, "kopf/")
    return [
        ApiRequest(r.verb, r.group or "", r.resource, r.subresource or "", r.namespace)
        for r in list(apiserver.emulator.log)
        if r.user_agent.startswith(ours)
        and r.verb
        and r.resource
        and (r.namespace is None or r.namespace.startswith(("it-", "proc-")))
    ]


def test_the_chart_grants_exactly_what_the_operator_uses(apiserver: Any) -> None:
    requests = operator_requests(apiserver)
    used = {(r.group, r.full_resource, r.verb) for r in requests}
    assert ("modelops.io", "modeldeployments/status", "patch") in used, (
        "no operator traffic in the log: run this module together with the rest of tests/integration"
    )
    docs = rendered_chart()
    (account,) = [d for d in docs if d["kind"] == "ServiceAccount"]
    roles = bound_roles(docs, account["metadata"]["name"], NAMESPACE)
    report = compare(requests, roles, ALLOWANCES)
    assert report.ok, report.explain()
