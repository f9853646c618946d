"""Pure builders and predicates for what the operator creates: no I/O here, so all of it is unit-tested.

Every object carries the four labels of :func:`labels` and a controller ownerReference to its ModelDeployment;
:func:`owned_by` requires both before anything may be deleted or overwritten, so a user's object that merely shares a
name prefix (or a label) is never touched.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from kubernetes.utils import parse_quantity

from modelops.api.common import API_VERSION
from modelops.api.deployment import KIND, ModelDeployment
from modelops.core import naming
from modelops.core.naming import (
    COMPONENT_LABEL,
    SERVER_COMPONENT,
    VERSION_LABEL,
    workload_name,
)
from modelops.core.observations import ObservedObject, OwnerRef

from .api import DEPLOYMENTS, JOBS, SERVICES, Obj

#: The container name of the model server in each version's Deployment.
CONTAINER = "model-server"
PORT_NAME = "http"


def owner_labels(md: ModelDeployment) -> dict[str, str]:
    """The labels that mark an object as this ModelDeployment's (every child has at least these)."""
    return naming.owner_labels(md.metadata.name, md.spec.model.name)


def labels(md: ModelDeployment, version: str) -> dict[str, str]:
    """The labels of one version's objects (and of its pods)."""
    return {**owner_labels(md), VERSION_LABEL: version}


def owner_reference(md: ModelDeployment) -> Obj:
    """A controller ownerReference to ``md``: the garbage collector removes children with their owner."""
    if not md.metadata.uid:
        raise ValueError(f"ModelDeployment {md.metadata.name!r} has no uid: it must be read from the API first")
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": md.metadata.name,
        "uid": md.metadata.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def owned_by(obj: Mapping[str, Any], md: ModelDeployment) -> bool:
    """Whether ``obj`` was created by the operator for ``md``: the owner labels AND an ownerReference both match.

    Labels alone can be copied by anyone; an ownerReference alone can be added by a user. Only both together
    license a delete or an overwrite.
    """
    meta = obj.get("metadata") or {}
    have = meta.get("labels") or {}
    if any(have.get(k) != v for k, v in owner_labels(md).items()):
        return False
    if not md.metadata.uid:
        return False
    return any(
        ref.get("uid") == md.metadata.uid and ref.get("kind") == KIND and ref.get("name") == md.metadata.name
        for ref in meta.get("ownerReferences") or []
    )


def observed(obj: Mapping[str, Any]) -> ObservedObject:
    """An object as the core sees it when it judges what a retirement may delete."""
    meta = obj.get("metadata") or {}
    return ObservedObject(
        kind=str(obj.get("kind") or ""),
        name=str(meta.get("name")),
        uid=meta.get("uid"),
        labels=dict(meta.get("labels") or {}),
        owners=tuple(
            OwnerRef(kind=str(ref.get("kind")), name=str(ref.get("name")), uid=str(ref.get("uid")))
            for ref in meta.get("ownerReferences") or []
        ),
    )


def _metadata(name: str, md: ModelDeployment, object_labels: Mapping[str, str]) -> Obj:
    return {
        "name": name,
        "namespace": md.metadata.namespace,
        "labels": dict(object_labels),
        "ownerReferences": [owner_reference(md)],
    }


def build_deployment(md: ModelDeployment, version: str, uri: str, *, replicas: int | None) -> Obj:
    """The Deployment that serves ``version`` of ``md``, from ``spec.server``.

    ``replicas`` None leaves ``spec.replicas`` out of the object: the ``replicas`` router owns that field (it sets
    the split with :func:`modelops.core.steps.split_replicas`), so the kube adapter must not write it back.
    """
    server = md.spec.server
    # The selector stays the version's labels (a Deployment's selector is immutable); the Pods also say they serve.
    pod_labels = labels(md, version)
    template_labels = {**pod_labels, COMPONENT_LABEL: SERVER_COMPONENT}
    env = [e.model_dump() for e in server.env if e.name not in {"MODEL_NAME", "MODEL_VERSION", "MODEL_URI"}]
    env += [
        {"name": "MODEL_NAME", "value": md.spec.model.name},
        {"name": "MODEL_VERSION", "value": version},
        {"name": "MODEL_URI", "value": uri},
    ]
    container: Obj = {
        "name": CONTAINER,
        "image": server.image,
        "ports": [{"name": PORT_NAME, "containerPort": server.port, "protocol": "TCP"}],
        "env": env,
        "readinessProbe": {"httpGet": {"path": server.readiness_path, "port": server.port}, "periodSeconds": 5},
    }
    if server.command:
        container["command"] = list(server.command)
    if server.args:
        container["args"] = list(server.args)
    if server.resources is not None and (server.resources.requests or server.resources.limits):
        container["resources"] = {k: v for k, v in server.resources.model_dump().items() if v}
    spec: Obj = {
        "selector": {"matchLabels": pod_labels},
        "template": {
            "metadata": {
                "labels": template_labels,
                "annotations": {
                    "prometheus.io/scrape": "true",
                    "prometheus.io/port": str(server.port),
                    "prometheus.io/path": server.metrics_path,
                },
            },
            "spec": {"containers": [container]},
        },
    }
    if replicas is not None:
        spec["replicas"] = replicas
    name = workload_name(md.metadata.name, version)
    return {
        "apiVersion": "apps/v1",
        "kind": DEPLOYMENTS.kind,
        "metadata": _metadata(name, md, pod_labels),
        "spec": spec,
    }


def build_service(md: ModelDeployment, version: str) -> Obj:
    """The Service in front of one version's pods: the backend a router sends that version's share to."""
    port = md.spec.server.port
    return {
        "apiVersion": "v1",
        "kind": SERVICES.kind,
        "metadata": _metadata(workload_name(md.metadata.name, version), md, labels(md, version)),
        "spec": {
            "selector": {**labels(md, version), COMPONENT_LABEL: SERVER_COMPONENT},
            "ports": [{"name": PORT_NAME, "port": port, "targetPort": port, "protocol": "TCP"}],
        },
    }


def build_shared_service(md: ModelDeployment, name: str) -> Obj:
    """The one Service of the ``replicas`` router: it selects every version's pods, so replica counts split traffic."""
    port = md.spec.server.port
    return {
        "apiVersion": "v1",
        "kind": SERVICES.kind,
        "metadata": _metadata(name, md, owner_labels(md)),
        "spec": {
            "selector": {**owner_labels(md), COMPONENT_LABEL: SERVER_COMPONENT},
            "ports": [{"name": PORT_NAME, "port": port, "targetPort": port, "protocol": "TCP"}],
        },
    }


def build_job(
    md: ModelDeployment,
    name: str,
    template: Mapping[str, Any],
    *,
    job_labels: Mapping[str, str],
    env: Mapping[str, str],
    timeout: timedelta | None = None,
) -> Obj:
    """A Job from a gate or retraining template (a Job spec with the pod template under ``template``).

    Added, without overriding what the template sets: ``backoffLimit: 0`` (a gate runs once: a retry would hide a
    flaky model test), ``activeDeadlineSeconds`` from ``timeout`` (the API server then fails the Job by itself),
    ``restartPolicy: Never``. The owner labels and ``job_labels`` go on the Job; its Pods get them too except the
    version label, so that a Job's Pod is never one of the version's serving Pods to anything that selects them by
    version (a version's Service, an Istio subset). ``env`` is set on every container (replacing variables of the
    same name).
    """
    spec: Obj = copy.deepcopy(dict(template))
    spec.setdefault("backoffLimit", 0)
    if timeout is not None and "activeDeadlineSeconds" not in spec:
        spec["activeDeadlineSeconds"] = max(1, int(timeout.total_seconds()))
    all_labels = {**job_labels, **owner_labels(md)}
    pod = spec.setdefault("template", {})
    pod_meta = pod.setdefault("metadata", {})
    pod_labels = {k: v for k, v in all_labels.items() if k != VERSION_LABEL}
    pod_meta["labels"] = {**(pod_meta.get("labels") or {}), **pod_labels}
    pod_spec = pod.setdefault("spec", {})
    pod_spec.setdefault("restartPolicy", "Never")
    for container in pod_spec.get("containers") or []:
        kept = [e for e in container.get("env") or [] if e.get("name") not in env]
        container["env"] = kept + [{"name": k, "value": v} for k, v in env.items()]
    return {
        "apiVersion": "batch/v1",
        "kind": JOBS.kind,
        "metadata": _metadata(name, md, all_labels),
        "spec": spec,
    }


_QUANTITY_KEYS = frozenset({"requests", "limits"})


def is_subset(desired: Any, actual: Any, *, _quantities: bool = False) -> bool:
    """Whether every field of ``desired`` has the same value in ``actual`` (fields only in ``actual`` are ignored).

    The API server adds defaults (``clusterIP``, probe timeouts, ``imagePullPolicy`` ...) and other controllers
    add labels: comparing only the fields the operator manages is what makes a tick that changes nothing write
    nothing. Lists must have the same length (a removed env var is a change). Resource quantities compare by value
    (``"0.5"`` equals the server's ``"500m"``). A key removed from ``desired`` inside a dict is not detected on its
    own; it is dropped the next time the object is written for another reason.

    >>> is_subset({"a": 1, "b": [{"c": 2}]}, {"a": 1, "b": [{"c": 2, "d": 3}], "e": 4})
    True
    >>> is_subset({"limits": {"cpu": "0.5"}}, {"limits": {"cpu": "500m"}})
    True
    >>> is_subset({"b": [1]}, {"b": [1, 2]})
    False
    """
    if isinstance(desired, dict):
        if not isinstance(actual, dict):
            return False
        return all(
            key in actual and is_subset(value, actual[key], _quantities=_quantities or key in _QUANTITY_KEYS)
            for key, value in desired.items()
        )
    if isinstance(desired, list):
        if not isinstance(actual, list) or len(desired) != len(actual):
            return False
        return all(is_subset(d, a, _quantities=_quantities) for d, a in zip(desired, actual, strict=True))
    if _quantities and isinstance(desired, str | int | float) and isinstance(actual, str | int | float):
        try:
            return bool(parse_quantity(desired) == parse_quantity(actual))  # type: ignore[no-untyped-call]
        except ValueError:
            return desired == actual
    return bool(desired == actual)
