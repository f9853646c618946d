"""The pure rules of the runner: containers to argv/env, process states to Deployment status, termination messages."""

from __future__ import annotations

import doctest
from datetime import UTC, datetime, timedelta

import pytest

from modelops.sandbox.runner import _process, _spec
from modelops.sandbox.runner._spec import ReplicaView, deployment_status, set_condition

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("module", [_spec, _process])
def test_worked_examples_in_docstrings(module: object) -> None:
    failures, tried = doctest.testmod(module, optionflags=doctest.ELLIPSIS)  # type: ignore[arg-type]
    assert tried > 0
    assert failures == 0


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (["python", "-m", "m"], ["/venv/python", "-m", "m"]),
        (["python3", "x.py"], ["/venv/python", "x.py"]),
        (["/usr/bin/python3.11", "x.py"], ["/venv/python", "x.py"]),
        (["/bin/sh", "-c", "true"], ["/bin/sh", "-c", "true"]),
        (["pythonista"], ["pythonista"]),
    ],
)
def test_python_in_a_command_is_this_interpreter(command: list[str], expected: list[str]) -> None:
    assert _spec.local_argv({"command": command}, {}, python="/venv/python") == expected


def test_a_container_without_command_cannot_run() -> None:
    with pytest.raises(_spec.UnrunnableError, match="no command"):
        _spec.local_argv({"name": "c", "image": "server:1", "args": ["--port=1"]}, {})


def test_container_env_resolves_values_and_pod_fields() -> None:
    container = {
        "env": [
            {"name": "A", "value": "1"},
            {"name": "B", "value": "$(A)-2"},
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "VERSION", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['modelops.io/version']"}}},
            {"name": "SECRET", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
        ]
    }
    pod = {"metadata": {"name": "p-1", "namespace": "ml", "labels": {"modelops.io/version": "v2"}}}

    env = _spec.container_env(container, pod)

    assert env == {"A": "1", "B": "1-2", "POD": "p-1", "IP": "127.0.0.1", "VERSION": "v2"}


# desired, (updated, ready) per replica -> readyReplicas, Available, Progressing reason
STATUS_TABLE = [
    (1, [(True, True)], 1, "True", "NewReplicaSetAvailable"),
    (1, [(True, False)], 0, "False", "ReplicaSetUpdated"),
    (4, [(True, True)] * 3 + [(True, False)], 3, "True", "ReplicaSetUpdated"),  # 25% may be unavailable
    (4, [(True, True)] * 2 + [(True, False)] * 2, 2, "False", "ReplicaSetUpdated"),
    (2, [(False, True), (False, True), (True, True), (True, False)], 3, "True", "ReplicaSetUpdated"),  # rolling
    (0, [], 0, "True", "NewReplicaSetAvailable"),
]


@pytest.mark.parametrize(("desired", "replicas", "ready", "available", "progressing"), STATUS_TABLE)
def test_deployment_status(
    desired: int, replicas: list[tuple[bool, bool]], ready: int, available: str, progressing: str
) -> None:
    obj = {"metadata": {"name": "d", "generation": 4}, "spec": {"replicas": desired}}

    status = deployment_status(obj, [ReplicaView(u, r) for u, r in replicas], NOW)

    conditions = {c["type"]: c for c in status["conditions"]}
    assert (status["observedGeneration"], status["replicas"], status["readyReplicas"]) == (4, len(replicas), ready)
    assert (conditions["Available"]["status"], conditions["Progressing"]["reason"]) == (available, progressing)


def test_a_condition_keeps_its_transition_time_until_its_status_flips() -> None:
    first = set_condition([], "Ready", True, "Up", "", NOW)
    same = set_condition(first, "Ready", True, "StillUp", "", NOW + timedelta(minutes=1))
    flipped = set_condition(same, "Ready", False, "Down", "", NOW + timedelta(minutes=2))

    assert same[0]["lastTransitionTime"] == first[0]["lastTransitionTime"] == "2026-11-28T12:00:00Z"
    assert flipped[0]["lastTransitionTime"] == "2026-11-28T12:02:00Z"


def test_only_real_status_changes_are_written() -> None:
    obj = {"metadata": {"name": "d", "generation": 1}, "spec": {"replicas": 1}}
    first = deployment_status(obj, [ReplicaView(True, True)], NOW)
    later = deployment_status({**obj, "status": first}, [ReplicaView(True, True)], NOW + timedelta(seconds=5))
    worse = deployment_status({**obj, "status": first}, [ReplicaView(True, False)], NOW + timedelta(seconds=5))

    assert not _spec.status_changed(first, later)
    assert _spec.status_changed(first, worse)
    assert _spec.status_changed(None, first)


def test_termination_message_falls_back_to_the_log_only_when_asked_and_failed() -> None:
    log = b"".join(f"line {i}\n".encode() for i in range(200))

    assert _spec.termination_message(b"", log, 1, "File") == ""
    assert _spec.termination_message(b"", log, 0, "FallbackToLogsOnError") == ""
    fallback = _spec.termination_message(b"", log, 1, "FallbackToLogsOnError")
    assert fallback.endswith("line 199\n")
    assert fallback.count("\n") == 80
