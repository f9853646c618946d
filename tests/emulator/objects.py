"""Test objects: a valid ModelDeployment and plain built-ins, built fresh for each test."""

from __future__ import annotations

import copy
from typing import Any

GROUP, VERSION, PLURAL = "modelops.io", "v1alpha1", "modeldeployments"

_MODEL_DEPLOYMENT: dict[str, Any] = {
    "apiVersion": f"{GROUP}/{VERSION}",
    "kind": "ModelDeployment",
    "metadata": {"name": "placeholder"},
    "spec": {
        "model": {"name": "iris", "version": "v1", "uri": "file:///models/iris-v1.pkl"},
        "server": {"image": "modelops/server:dev"},
        "traffic": {"router": "replicas", "replicas": {"service": "iris"}},
        "rollout": {"steps": [{"weight": 5}, {"weight": 50}, {"weight": 100}]},
    },
}


def model_deployment(name: str, labels: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    """A valid ModelDeployment; keyword arguments replace top-level spec sections."""
    body = copy.deepcopy(_MODEL_DEPLOYMENT)
    body["metadata"]["name"] = name
    if labels:
        body["metadata"]["labels"] = labels
    body["spec"].update(spec)
    return body


def config_map(
    name: str,
    labels: dict[str, str] | None = None,
    owners: list[dict[str, Any]] | None = None,
    finalizers: list[str] | None = None,
    data: dict[str, str] | None = None,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "labels": labels or {}}
    if owners:
        metadata["ownerReferences"] = owners
    if finalizers:
        metadata["finalizers"] = finalizers
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data or {"k": "v"}}


def owner_reference(obj: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "name": obj["metadata"]["name"],
        "uid": obj["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }
