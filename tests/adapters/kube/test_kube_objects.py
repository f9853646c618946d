"""Pure builders and predicates of the kube adapter."""

from __future__ import annotations

import copy
from datetime import timedelta

import pytest

from adapters.builders import NAMESPACE, UID, make_md
from modelops.adapters.kube import (
    build_deployment,
    build_job,
    build_service,
    build_shared_service,
    deployment_ready,
    is_subset,
    job_state,
    owned_by,
    termination_message,
    workload_name,
)
from modelops.core.observations import JobState

OWNER_LABELS = {
    "app.kubernetes.io/managed-by": "modelops",
    "modelops.io/model": "fraud-model",
    "modelops.io/deployment": "fraud",
}


def env_of(deployment: dict) -> dict[str, str]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e["value"] for e in container["env"]}


def test_workload_name_is_a_dns_label() -> None:
    assert workload_name("fraud", "1.2.0") == "fraud-1-2-0"
    long = workload_name("m" * 60, "1.0.0")
    assert len(long) == 63
    assert long != workload_name("m" * 60, "1.0.1")


def test_deployment_carries_labels_owner_and_server_settings() -> None:
    md = make_md(
        env=[{"name": "THREADS", "value": "2"}, {"name": "MODEL_URI", "value": "user-value"}],
        command=["serve"],
        args=["--fast"],
        resources={"requests": {"cpu": "500m"}, "limits": {"memory": "1Gi"}},
        readinessPath="/ready",
        metricsPath="/m",
    )
    d = build_deployment(md, "1.1.0", "s3://models/fraud/1.1.0", replicas=3)

    assert d["metadata"]["name"] == "fraud-1-1-0"
    assert d["metadata"]["namespace"] == NAMESPACE
    assert d["metadata"]["labels"] == {**OWNER_LABELS, "modelops.io/version": "1.1.0"}
    assert d["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "modelops.io/v1alpha1",
            "kind": "ModelDeployment",
            "name": "fraud",
            "uid": UID,
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert d["spec"]["replicas"] == 3
    # the Pods carry the selector's labels, and say they serve (a gate Job's Pods carry the version's labels too)
    assert d["spec"]["template"]["metadata"]["labels"] == {**d["spec"]["selector"]["matchLabels"],
                                                           "modelops.io/component": "server"}  # fmt: skip
    pod = d["spec"]["template"]
    assert pod["metadata"]["annotations"] == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": "8080",
        "prometheus.io/path": "/m",
    }
    container = pod["spec"]["containers"][0]
    assert container["image"] == "registry.local/server:1"
    assert container["command"] == ["serve"]
    assert container["args"] == ["--fast"]
    assert container["resources"] == {"requests": {"cpu": "500m"}, "limits": {"memory": "1Gi"}}
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": 8080}
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    # The operator's variables win over a user's variable of the same name.
    assert env_of(d) == {
        "THREADS": "2",
        "MODEL_NAME": "fraud-model",
        "MODEL_VERSION": "1.1.0",
        "MODEL_URI": "s3://models/fraud/1.1.0",
    }


def test_deployment_without_replicas_leaves_the_field_to_the_router() -> None:
    d = build_deployment(make_md("replicas"), "1.1.0", "s3://x", replicas=None)
    assert "replicas" not in d["spec"]
    container = d["spec"]["template"]["spec"]["containers"][0]
    assert "command" not in container
    assert "resources" not in container


def test_service_selects_one_version_and_shared_service_all() -> None:
    md = make_md("replicas")
    svc = build_service(md, "2.0.0")
    assert svc["metadata"]["name"] == "fraud-2-0-0"
    assert svc["spec"]["selector"] == {
        **OWNER_LABELS,
        "modelops.io/version": "2.0.0",
        "modelops.io/component": "server",
    }
    assert svc["spec"]["ports"] == [{"name": "http", "port": 8080, "targetPort": 8080, "protocol": "TCP"}]
    shared = build_shared_service(md, "fraud")
    assert shared["spec"]["selector"] == {**OWNER_LABELS, "modelops.io/component": "server"}
    assert owned_by(shared, md)


def test_owned_by_requires_labels_and_owner_reference() -> None:
    md = make_md()
    ours = build_deployment(md, "1.1.0", "s3://x", replicas=1)
    assert owned_by(ours, md)

    # A user's Deployment with the same name prefix and a foreign label: never ours.
    user = copy.deepcopy(ours)
    user["metadata"]["name"] = "fraud-1-1-0-shadow"
    user["metadata"]["labels"]["app.kubernetes.io/managed-by"] = "helm"
    assert not owned_by(user, md)

    no_owner = copy.deepcopy(ours)
    no_owner["metadata"]["ownerReferences"] = []
    assert not owned_by(no_owner, md)

    other_uid = copy.deepcopy(ours)
    other_uid["metadata"]["ownerReferences"][0]["uid"] = "someone-else"
    assert not owned_by(other_uid, md)

    other_model = copy.deepcopy(ours)
    other_model["metadata"]["labels"]["modelops.io/model"] = "churn"
    assert not owned_by(other_model, md)

    assert not owned_by(ours, make_md(uid=None))
    assert not owned_by({}, md)


def test_owner_reference_needs_a_uid() -> None:
    with pytest.raises(ValueError, match="no uid"):
        build_service(make_md(uid=None), "1.0.0")


def test_job_from_template_gets_defaults_labels_and_env() -> None:
    template = {
        "template": {
            "metadata": {"labels": {"team": "risk"}},
            "spec": {
                "containers": [
                    {"name": "gate", "image": "eval:1", "env": [{"name": "MODEL_URI", "value": "old"}]},
                    {"name": "side", "image": "side:1"},
                ]
            },
        }
    }
    before = copy.deepcopy(template)
    md = make_md()
    env = {"MODEL_VERSION": "1.1.0", "MODEL_URI": "s3://new", "STABLE_URI": "s3://old"}
    job = build_job(
        md,
        "fraud-gate-acc",
        template,
        job_labels={"modelops.io/gate": "acc", "modelops.io/version": "1.1.0"},
        env=env,
        timeout=timedelta(minutes=30),
    )

    assert template == before, "the template in the spec must not be mutated"
    assert job["metadata"]["name"] == "fraud-gate-acc"
    assert job["metadata"]["labels"] == {**OWNER_LABELS, "modelops.io/gate": "acc", "modelops.io/version": "1.1.0"}
    assert owned_by(job, md)
    spec = job["spec"]
    assert spec["backoffLimit"] == 0
    assert spec["activeDeadlineSeconds"] == 1800
    pod = spec["template"]
    # the Pod does not carry the version label: nothing that selects a version's serving Pods by it selects a Job's
    assert pod["metadata"]["labels"] == {"team": "risk", **OWNER_LABELS, "modelops.io/gate": "acc"}
    assert pod["spec"]["restartPolicy"] == "Never"
    for container in pod["spec"]["containers"]:
        assert {e["name"]: e["value"] for e in container["env"]} == env


def test_job_keeps_what_the_template_sets() -> None:
    template = {
        "backoffLimit": 2,
        "activeDeadlineSeconds": 60,
        "template": {"spec": {"restartPolicy": "OnFailure", "containers": [{"name": "c", "image": "i"}]}},
    }
    job = build_job(make_md(), "j", template, job_labels={}, env={}, timeout=timedelta(hours=1))
    assert job["spec"]["backoffLimit"] == 2
    assert job["spec"]["activeDeadlineSeconds"] == 60
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "OnFailure"


@pytest.mark.parametrize(
    ("desired", "actual", "expected"),
    [
        ({"a": 1}, {"a": 1, "server-default": True}, True),
        ({"a": {"b": 1}}, {"a": {"b": 2}}, False),
        ({"a": 1}, {}, False),
        ({"l": [{"x": 1}]}, {"l": [{"x": 1, "y": 2}]}, True),
        ({"l": [1, 2]}, {"l": [1]}, False),
        ({"l": [1]}, {"l": [1, 2]}, False),
        (
            {"resources": {"limits": {"cpu": "0.5", "memory": "1Gi"}}},
            {"resources": {"limits": {"cpu": "500m", "memory": "1024Mi"}}},
            True,
        ),
        ({"resources": {"limits": {"cpu": "1"}}}, {"resources": {"limits": {"cpu": "500m"}}}, False),
        ({"image": "1"}, {"image": "1.0"}, False),
    ],
)
def test_is_subset(desired: dict, actual: dict, expected: bool) -> None:
    assert is_subset(desired, actual) is expected


@pytest.mark.parametrize(
    ("generation", "replicas", "status", "ready"),
    [
        (2, 2, {"observedGeneration": 2, "readyReplicas": 2, "updatedReplicas": 2}, True),
        (2, 2, {"observedGeneration": 1, "readyReplicas": 2, "updatedReplicas": 2}, False),
        (2, 2, {"observedGeneration": 2, "readyReplicas": 1, "updatedReplicas": 2}, False),
        (2, 2, {"observedGeneration": 2, "readyReplicas": 2, "updatedReplicas": 1}, False),
        (1, 3, {}, False),
        (1, 0, {"observedGeneration": 1}, True),
    ],
)
def test_deployment_ready(generation: int, replicas: int, status: dict, ready: bool) -> None:
    obj = {"metadata": {"generation": generation}, "spec": {"replicas": replicas}, "status": status}
    assert deployment_ready(obj) is ready


@pytest.mark.parametrize(
    ("status", "state"),
    [
        ({}, JobState.RUNNING),
        ({"active": 1}, JobState.RUNNING),
        ({"conditions": [{"type": "Complete", "status": "True"}], "succeeded": 1}, JobState.SUCCEEDED),
        ({"conditions": [{"type": "Failed", "status": "True", "reason": "DeadlineExceeded"}]}, JobState.FAILED),
        ({"conditions": [{"type": "Failed", "status": "False"}], "active": 1}, JobState.RUNNING),
        ({"failed": 1}, JobState.FAILED),
    ],
)
def test_job_state(status: dict, state: JobState) -> None:
    assert job_state({"status": status})[0] is state


def test_termination_message_comes_from_the_newest_pod() -> None:
    def pod(created: str, message: str | None) -> dict:
        state = {"terminated": {"exitCode": 0, **({"message": message} if message else {})}}
        return {"metadata": {"creationTimestamp": created}, "status": {"containerStatuses": [{"state": state}]}}

    pods = [pod("2026-01-01T00:00:00Z", '{"old": 1}'), pod("2026-01-02T00:00:00Z", ' {"new": 1}\n')]
    assert termination_message(pods) == ' {"new": 1}\n', "as the pod status holds it: its length counts"
    assert termination_message([pod("2026-01-01T00:00:00Z", None)]) == ""
    assert termination_message([]) == ""
