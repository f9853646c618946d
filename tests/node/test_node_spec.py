"""The pure rules of the node agent: a container to argv and environment, Pod conditions and container states, the
termination message."""

from __future__ import annotations

import doctest
from datetime import UTC, datetime, timedelta

import pytest

from modelops.sandbox.node import _network, _process, _spec
from modelops.sandbox.node._spec import set_condition

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("module", [_spec, _process, _network])
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

    env = _spec.container_env(container, pod, ip="127.0.1.7")

    assert env == {"A": "1", "B": "1-2", "POD": "p-1", "IP": "127.0.1.7", "VERSION": "v2"}


def test_a_condition_keeps_its_transition_time_until_its_status_flips() -> None:
    first = set_condition([], "Ready", True, "Up", "", NOW)
    same = set_condition(first, "Ready", True, "StillUp", "", NOW + timedelta(minutes=1))
    flipped = set_condition(same, "Ready", False, "Down", "", NOW + timedelta(minutes=2))

    assert same[0]["lastTransitionTime"] == first[0]["lastTransitionTime"] == "2026-11-28T12:00:00Z"
    assert flipped[0]["lastTransitionTime"] == "2026-11-28T12:02:00Z"


def test_pod_conditions_keep_their_transition_times_and_follow_readiness() -> None:
    ready = _spec.pod_conditions({}, ready=True, now=NOW)
    later = _spec.pod_conditions(ready, ready=True, now=NOW + timedelta(seconds=30))
    down = _spec.pod_conditions(later, ready=False, now=NOW + timedelta(seconds=60))

    by_type = {c["type"]: c for c in down["conditions"]}
    assert later == ready
    assert (by_type["Ready"]["status"], by_type["Ready"]["reason"]) == ("False", "ContainersNotReady")
    assert by_type["Ready"]["lastTransitionTime"] == "2026-11-28T12:01:00Z"
    assert by_type["Initialized"]["lastTransitionTime"] == "2026-11-28T12:00:00Z"


def test_only_real_status_changes_are_written() -> None:
    running = {"phase": "Running", **_spec.pod_conditions({}, ready=True, now=NOW)}
    later = {"phase": "Running", **_spec.pod_conditions({}, ready=True, now=NOW + timedelta(seconds=5))}
    worse = {"phase": "Running", **_spec.pod_conditions(running, ready=False, now=NOW + timedelta(seconds=5))}

    assert not _spec.status_changed(running, later)
    assert _spec.status_changed(running, worse)
    assert _spec.status_changed(None, running)


def test_termination_message_falls_back_to_the_log_only_when_asked_and_failed() -> None:
    log = b"".join(f"line {i}\n".encode() for i in range(200))

    assert _spec.termination_message(b"", log, 1, "File") == ""
    assert _spec.termination_message(b"", log, 0, "FallbackToLogsOnError") == ""
    fallback = _spec.termination_message(b"", log, 1, "FallbackToLogsOnError")
    assert fallback.endswith("line 199\n")
    assert fallback.count("\n") == 80
    long_lines = b"".join(b"y" * 100 + b"\n" for _ in range(80))
    assert len(_spec.termination_message(b"", long_lines, 1, "FallbackToLogsOnError")) == 2048
    assert _spec.termination_message(b"from the file", log, 1, "FallbackToLogsOnError") == "from the file"


def test_a_terminated_state_says_completed_or_error_unless_told() -> None:
    assert _spec.terminated_state(0, "", NOW, NOW)["reason"] == "Completed"
    assert _spec.terminated_state(2, "", NOW, NOW)["reason"] == "Error"
    assert _spec.terminated_state(143, "", NOW, NOW, "DeadlineExceeded")["reason"] == "DeadlineExceeded"
