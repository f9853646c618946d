"""Pure translation of Kubernetes objects into local processes, and of process states back into object status.

Kept free of threads, clocks and HTTP so the rules (how a container becomes an argv, when a Deployment counts as
Available, what a finished Job's status looks like) are unit-testable with plain dicts. Time is a parameter.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import PurePath, PurePosixPath
from typing import Any

Obj = dict[str, Any]

#: Kubernetes keeps at most this many bytes of a container's termination message.
MAX_TERMINATION_MESSAGE = 4096
#: What ``FallbackToLogsOnError`` copies from the log: the last lines, at most this many bytes (as the kubelet).
LOG_FALLBACK_LINES = 80
LOG_FALLBACK_BYTES = 2048
DEFAULT_READINESS_PATH = "/healthz"
DEFAULT_METRICS_PATH = "/metrics"
#: Pod-template annotation that names the metrics path (the usual Prometheus scrape convention).
METRICS_PATH_ANNOTATION = "prometheus.io/path"

_PYTHON = re.compile(r"^python(3(\.\d+)?)?$")
_VAR_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")
_FIELD_LABEL = re.compile(r"^metadata\.(labels|annotations)\['([^']+)'\]$")


class UnrunnableError(ValueError):
    """The pod template cannot become a local process (no command: the runner cannot run an image)."""


def first_container(template: Mapping[str, Any]) -> Obj:
    """The first container of a pod template (``spec.template`` of a Deployment or Job)."""
    containers = ((template.get("spec") or {}).get("containers")) or []
    if not containers:
        raise UnrunnableError("the pod template has no containers")
    container: Obj = containers[0]
    return container


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion in command and args: known variables expand, ``$$`` is a literal ``$``,
    unknown references stay as written.

    >>> expand("--port=$(PORT) $(NOPE) $$(PORT)", {"PORT": "8080"})
    '--port=8080 $(NOPE) $(PORT)'
    """

    def sub(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env.get(name, match.group(0))

    return _VAR_REF.sub(sub, text)


def local_argv(container: Mapping[str, Any], env: Mapping[str, str], python: str = sys.executable) -> list[str]:
    """``command`` + ``args`` of a container, with ``$(VAR)`` expanded and ``python`` meaning this interpreter.

    The image is not run (there is no container runtime), so an image's entrypoint is unknown: a container without
    ``command`` cannot run here.

    >>> local_argv({"command": ["python", "-m", "x"], "args": ["--port=$(PORT)"]}, {"PORT": "1"}, python="/py")
    ['/py', '-m', 'x', '--port=1']
    >>> local_argv({"command": ["/usr/local/bin/python3.11", "-c", "pass"]}, {}, python="/py")
    ['/py', '-c', 'pass']
    """
    command = [str(c) for c in container.get("command") or []]
    args = [str(a) for a in container.get("args") or []]
    if not command:
        raise UnrunnableError(
            f"container {container.get('name', '?')!r} has no command: the local runner runs commands, not images"
        )
    argv = [expand(part, env) for part in command + args]
    if _PYTHON.match(PurePosixPath(argv[0]).name):
        argv[0] = python
    return argv


def container_env(container: Mapping[str, Any], pod: Mapping[str, Any], ip: str = "127.0.0.1") -> dict[str, str]:
    """The container's ``env`` as a dict: plain values, and ``fieldRef`` to the pod's name, namespace, IP (``ip``),
    labels and annotations. Other sources (secrets, config maps) are not available locally and are left out.

    Later entries may refer to earlier ones with ``$(VAR)``, as in Kubernetes.
    """
    out: dict[str, str] = {}
    meta = pod.get("metadata") or {}
    for item in container.get("env") or []:
        name = item.get("name")
        if not name:
            continue
        if "value" in item:
            out[name] = expand(str(item["value"] or ""), out)
            continue
        field_path = ((item.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath")
        if field_path == "metadata.name":
            out[name] = str(meta.get("name", ""))
        elif field_path == "metadata.namespace":
            out[name] = str(meta.get("namespace", ""))
        elif field_path in ("status.podIP", "status.podIPs"):
            out[name] = ip
        elif field_path in ("status.hostIP", "status.hostIPs"):
            out[name] = "127.0.0.1"
        elif field_path == "spec.nodeName":
            out[name] = str((pod.get("spec") or {}).get("nodeName", ""))
        elif field_path and (m := _FIELD_LABEL.match(field_path)):
            out[name] = str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
    return out


def termination_env(path: PurePath) -> dict[str, str]:
    """Where a job writes its result: the runner's stand-in for ``/dev/termination-log``, under both names in use
    (``MODELOPS_TERMINATION_LOG`` is what ``python -m modelops.sandbox.models evaluate|retrain`` reads)."""
    return {"TERMINATION_LOG": str(path), "MODELOPS_TERMINATION_LOG": str(path)}


def readiness_path(container: Mapping[str, Any]) -> str:
    """The path of the container's ``readinessProbe.httpGet`` (any port: the runner knows the real one)."""
    probe = container.get("readinessProbe") or {}
    path = (probe.get("httpGet") or {}).get("path")
    return str(path) if path else DEFAULT_READINESS_PATH


def metrics_path(template: Mapping[str, Any]) -> str:
    annotations = (template.get("metadata") or {}).get("annotations") or {}
    return str(annotations.get(METRICS_PATH_ANNOTATION) or DEFAULT_METRICS_PATH)


def template_hash(template: Mapping[str, Any]) -> str:
    """A stable digest of a pod template: a new digest means the pods must be replaced (``pod-template-hash``)."""
    text = json.dumps(template, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def labels_match(selector: Mapping[str, str] | None, labels: Mapping[str, str]) -> bool:
    """A Service selector matches when every pair is in the labels; an empty selector selects nothing (Kubernetes
    creates no endpoints for a Service without selector)."""
    if not selector:
        return False
    return all(labels.get(k) == v for k, v in selector.items())


def max_unavailable(deployment: Mapping[str, Any], desired: int) -> int:
    """``spec.strategy.rollingUpdate.maxUnavailable`` as a count (default 25%, percentages round down).

    >>> max_unavailable({}, 4), max_unavailable({}, 3)
    (1, 0)
    >>> max_unavailable({"spec": {"strategy": {"rollingUpdate": {"maxUnavailable": "50%"}}}}, 3)
    1
    """
    strategy = (deployment.get("spec") or {}).get("strategy") or {}
    value = (strategy.get("rollingUpdate") or {}).get("maxUnavailable", "25%")
    if isinstance(value, str) and value.endswith("%"):
        return math.floor(desired * int(value[:-1]) / 100)
    return int(value)


def rfc3339(now: datetime) -> str:
    return now.strftime("%Y-%m-%dT%H:%M:%SZ")


def set_condition(
    conditions: Sequence[Mapping[str, Any]],
    type_: str,
    status: bool,
    reason: str,
    message: str,
    now: datetime,
    *,
    update_time: bool = False,
) -> list[Obj]:
    """Conditions with ``type_`` set; ``lastTransitionTime`` kept unless the status flips.

    ``update_time`` adds ``lastUpdateTime`` (Deployments carry it; it changes with the reason or message).
    """
    stamp = rfc3339(now)
    old = next((dict(c) for c in conditions if c.get("type") == type_), None)
    value = "True" if status else "False"
    new: Obj = {"type": type_, "status": value, "reason": reason, "message": message}
    new["lastTransitionTime"] = old["lastTransitionTime"] if old and old.get("status") == value else stamp
    if update_time:
        same = old is not None and (old.get("status"), old.get("reason"), old.get("message")) == (
            value,
            reason,
            message,
        )
        new["lastUpdateTime"] = old.get("lastUpdateTime", stamp) if same and old else stamp
    out = [dict(c) for c in conditions if c.get("type") != type_]
    out.append(new)
    return out


@dataclass(frozen=True)
class ReplicaView:
    """What the status of a Deployment needs to know about one local replica."""

    updated: bool
    ready: bool


def deployment_status(deployment: Mapping[str, Any], replicas: Sequence[ReplicaView], now: datetime) -> Obj:
    """The ``status`` of a Deployment whose pods are ``replicas`` (the local processes, old and new template).

    ``Available`` follows ``maxUnavailable`` (as the Deployment controller's ``MinimumReplicasAvailable``);
    ``Progressing`` says whether the newest template is fully rolled out and ready.

    >>> from datetime import UTC
    >>> d = {"metadata": {"generation": 3}, "spec": {"replicas": 2}}
    >>> s = deployment_status(d, [ReplicaView(True, True), ReplicaView(True, False)], datetime(2026, 1, 1, tzinfo=UTC))
    >>> s["observedGeneration"], s["replicas"], s["updatedReplicas"], s["readyReplicas"], s["unavailableReplicas"]
    (3, 2, 2, 1, 1)
    >>> [(c["type"], c["status"], c["reason"]) for c in s["conditions"]]
    [('Available', 'False', 'MinimumReplicasUnavailable'), ('Progressing', 'True', 'ReplicaSetUpdated')]
    """
    spec = deployment.get("spec") or {}
    desired = int(spec.get("replicas", 1))
    old_status = deployment.get("status") or {}
    total = len(replicas)
    updated = sum(1 for r in replicas if r.updated)
    ready = sum(1 for r in replicas if r.ready)
    updated_ready = sum(1 for r in replicas if r.ready and r.updated)
    available_ok = ready >= desired - max_unavailable(deployment, desired)
    conditions: list[Obj] = list(old_status.get("conditions") or [])
    conditions = set_condition(
        conditions,
        "Available",
        available_ok,
        "MinimumReplicasAvailable" if available_ok else "MinimumReplicasUnavailable",
        "Deployment has minimum availability." if available_ok else "Deployment does not have minimum availability.",
        now,
        update_time=True,
    )
    complete = updated == desired and updated_ready == desired and total == desired
    name = (deployment.get("metadata") or {}).get("name", "")
    conditions = set_condition(
        conditions,
        "Progressing",
        True,
        "NewReplicaSetAvailable" if complete else "ReplicaSetUpdated",
        f'Local processes of "{name}" ' + ("have successfully progressed." if complete else "are progressing."),
        now,
        update_time=True,
    )
    order = {"Available": 0, "Progressing": 1}
    conditions.sort(key=lambda c: order.get(str(c.get("type")), 2))
    status: Obj = {
        "observedGeneration": int((deployment.get("metadata") or {}).get("generation", 1)),
        "replicas": total,
        "updatedReplicas": updated,
        "readyReplicas": ready,
        "availableReplicas": ready,
        "unavailableReplicas": max(desired - ready, 0),
        "conditions": conditions,
    }
    return status


def status_changed(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> bool:
    """Whether ``new`` differs from ``old`` in anything but condition timestamps (a no-op write is skipped)."""

    def strip(status: Mapping[str, Any] | None) -> Any:
        if not status:
            return None
        out = dict(status)
        out["conditions"] = [
            {k: v for k, v in c.items() if k not in ("lastTransitionTime", "lastUpdateTime", "lastProbeTime")}
            for c in status.get("conditions") or []
        ]
        return out

    return bool(strip(old) != strip(new))


def job_finished(job: Mapping[str, Any]) -> bool:
    """A Job with a true ``Complete`` or ``Failed`` condition is done: the runner never runs it again."""
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("type") in ("Complete", "Failed") and condition.get("status") == "True":
            return True
    return False


def backoff_limit(job: Mapping[str, Any]) -> int:
    return int((job.get("spec") or {}).get("backoffLimit", 6))


def active_deadline(job: Mapping[str, Any]) -> float | None:
    value = (job.get("spec") or {}).get("activeDeadlineSeconds")
    return float(value) if value is not None else None


def termination_message(message_file: bytes, log_tail: bytes, exit_code: int, policy: str | None = "File") -> str:
    """The container's termination message as the kubelet builds it: the file, capped at 4096 bytes; with
    ``FallbackToLogsOnError`` and an empty file on failure, the log's tail.

    >>> termination_message(b'{"a":1}', b"", 0)
    '{"a":1}'
    >>> len(termination_message(b"x" * 5000, b"", 0))
    4096
    >>> termination_message(b"", b"1\\n2\\nboom\\n", 1, "FallbackToLogsOnError")
    '1\\n2\\nboom\\n'
    """
    data = message_file[:MAX_TERMINATION_MESSAGE]
    if not data and exit_code != 0 and policy == "FallbackToLogsOnError":
        lines = log_tail.splitlines(keepends=True)[-LOG_FALLBACK_LINES:]
        data = b"".join(lines)[-LOG_FALLBACK_BYTES:]
    return data.decode("utf-8", errors="replace")


def terminated_state(exit_code: int, message: str, started: datetime, finished: datetime, reason: str = "") -> Obj:
    return {
        "exitCode": exit_code,
        "reason": reason or ("Completed" if exit_code == 0 else "Error"),
        "message": message,
        "startedAt": rfc3339(started),
        "finishedAt": rfc3339(finished),
    }


def pod_body(
    name: str,
    namespace: str,
    labels: Mapping[str, str],
    owner: Mapping[str, Any],
    container_name: str,
    annotations: Mapping[str, str] | None = None,
) -> Obj:
    """A Pod object that stands for a local process (for ``kubectl get pods`` and for readers of Job pods)."""
    meta = owner.get("metadata") or {}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": dict(labels),
            "annotations": {"modelops.io/local-process": "true", **(annotations or {})},
            "ownerReferences": [
                {
                    "apiVersion": owner.get("apiVersion", ""),
                    "kind": owner.get("kind", ""),
                    "name": meta.get("name", ""),
                    "uid": meta.get("uid", ""),
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {"nodeName": "localhost", "containers": [{"name": container_name, "image": "local"}]},
    }


def pod_status(
    container_name: str,
    *,
    ready: bool,
    started: datetime,
    now: datetime,
    previous: Mapping[str, Any] | None = None,
    terminated: Mapping[str, Any] | None = None,
    restarts: int = 0,
) -> Obj:
    """A Pod status for a local process: running (ready or not) or terminated."""
    conditions = list((previous or {}).get("conditions") or [])
    conditions = set_condition(conditions, "Ready", ready, "" if ready else "ContainersNotReady", "", now)
    if terminated is not None:
        phase = "Succeeded" if terminated.get("exitCode") == 0 else "Failed"
        state: Obj = {"terminated": dict(terminated)}
    else:
        phase = "Running"
        state = {"running": {"startedAt": rfc3339(started)}}
    return {
        "phase": phase,
        "hostIP": "127.0.0.1",
        "podIP": "127.0.0.1",
        "podIPs": [{"ip": "127.0.0.1"}],
        "startTime": rfc3339(started),
        "conditions": conditions,
        "containerStatuses": [
            {
                "name": container_name,
                "image": "local",
                "imageID": "",
                "ready": ready,
                "started": terminated is None,
                "restartCount": restarts,
                "state": state,
            }
        ],
    }


def default_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment every local process starts from: this process's (PATH, the virtualenv, the sandbox marker)."""
    return dict(os.environ if base is None else base)


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 timestamp of the API (``2026-01-01T00:00:00Z``), or ``None``."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def pod_conditions(old_status: Mapping[str, Any], *, ready: bool, now: datetime) -> Obj:
    """The kubelet's Pod conditions (``Initialized``, ``PodReadyToStartContainers``, ``ContainersReady``, ``Ready``),
    each keeping its ``lastTransitionTime`` while its status holds; ``PodScheduled`` is the scheduler's.

    >>> from datetime import UTC
    >>> c = pod_conditions({}, ready=True, now=datetime(2026, 1, 1, tzinfo=UTC))["conditions"]
    >>> [(x["type"], x["status"]) for x in c]
    [('Initialized', 'True'), ('PodReadyToStartContainers', 'True'), ('ContainersReady', 'True'), ('Ready', 'True')]
    """
    conditions: list[Obj] = [dict(c) for c in old_status.get("conditions") or [] if c.get("type") != "PodScheduled"]
    for type_, status in (("Initialized", True), ("PodReadyToStartContainers", True), ("ContainersReady", ready),
                          ("Ready", ready)):  # fmt: skip
        reason = "" if status else "ContainersNotReady"
        conditions = set_condition(conditions, type_, status, reason, "", now)
    for c in conditions:
        for key in ("reason", "message"):
            if not c.get(key):
                c.pop(key, None)
    order = {"Initialized": 0, "PodReadyToStartContainers": 1, "ContainersReady": 2, "Ready": 3}
    conditions.sort(key=lambda c: order.get(str(c.get("type")), 4))
    return {"conditions": conditions}


def container_status(name: str, ready: bool, restarts: int, state: Mapping[str, Any]) -> Obj:
    """One entry of ``containerStatuses`` for a local process (no image: the command runs on the host)."""
    return {
        "name": name,
        "image": "local",
        "imageID": "",
        "ready": ready,
        "started": "running" in state,
        "restartCount": restarts,
        "state": dict(state),
    }
