"""Builders shared by the kube adapter and router tests."""

from __future__ import annotations

from typing import Any

from modelops.api.deployment import ModelDeployment

NAMESPACE = "ml"
UID = "0f1e2d3c-0000-4000-8000-000000000001"

TRAFFIC: dict[str, dict[str, Any]] = {
    "gatewayAPI": {"router": "gatewayAPI", "gatewayAPI": {"httpRoute": "fraud-route", "ruleName": "model"}},
    "istio": {"router": "istio", "istio": {"virtualService": "fraud-vs", "routeName": "model"}},
    "replicas": {"router": "replicas", "replicas": {"service": "fraud"}},
}


def make_md(router: str = "gatewayAPI", *, uid: str | None = UID, **server: Any) -> ModelDeployment:
    """A ModelDeployment as read from the API (it has a uid)."""
    return ModelDeployment.model_validate(
        {
            "metadata": {"name": "fraud", "namespace": NAMESPACE, "uid": uid, "generation": 1},
            "spec": {
                "model": {"name": "fraud-model", "version": "1.1.0", "uri": "s3://models/fraud/1.1.0"},
                "server": {"image": "registry.local/server:1", "port": 8080, "replicas": 4, **server},
                "traffic": TRAFFIC[router],
            },
        }
    )
