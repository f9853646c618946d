"""Pure translation of a Pod's container into a local process, and of the process's state back into Pod status.

Kept free of threads, clocks and HTTP so the node agent's rules (how a container becomes an argv and an environment,
what a finished container's termination message and state look like, which Pod conditions hold) are unit-testable
with plain dicts. Time is a parameter.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import PurePath, PurePosixPath
from typing import Any

Obj = dict[str, Any]

#: Kubernetes keeps at most this many bytes of a container's termination message.
MAX_TERMINATION_MESSAGE = 4096
#: What ``FallbackToLogsOnError`` copies from the log: the last lines, at most this many bytes (as the kubelet).
LOG_FALLBACK_LINES = 80
LOG_FALLBACK_BYTES = 2048

_PYTHON = re.compile(r"^python(3(\.\d+)?)?$")
_VAR_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")
_FIELD_LABEL = re.compile(r"^metadata\.(labels|annotations)\['([^']+)'\]$")


class UnrunnableError(ValueError):
    """The pod template cannot become a local process (no command: the node agent runs commands, not images)."""


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
            f"container {container.get('name', '?')!r} has no command: the node agent runs commands, not images"
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
    """Where a job writes its result: the node agent's stand-in for ``/dev/termination-log``, under both names in use
    (``MODELOPS_TERMINATION_LOG`` is what ``python -m modelops.sandbox.models evaluate|retrain`` reads)."""
    return {"TERMINATION_LOG": str(path), "MODELOPS_TERMINATION_LOG": str(path)}


def rfc3339(now: datetime) -> str:
    return now.strftime("%Y-%m-%dT%H:%M:%SZ")


def set_condition(
    conditions: Sequence[Mapping[str, Any]], type_: str, status: bool, reason: str, message: str, now: datetime
) -> list[Obj]:
    """Conditions with ``type_`` set; ``lastTransitionTime`` kept unless the status flips."""
    old = next((dict(c) for c in conditions if c.get("type") == type_), None)
    value = "True" if status else "False"
    new: Obj = {"type": type_, "status": value, "reason": reason, "message": message}
    new["lastTransitionTime"] = old["lastTransitionTime"] if old and old.get("status") == value else rfc3339(now)
    out = [dict(c) for c in conditions if c.get("type") != type_]
    out.append(new)
    return out


def status_changed(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> bool:
    """Whether ``new`` differs from ``old`` in anything but condition timestamps (a no-op write is skipped)."""

    def strip(status: Mapping[str, Any] | None) -> Any:
        if not status:
            return None
        out = dict(status)
        out["conditions"] = [
            {k: v for k, v in c.items() if k not in ("lastTransitionTime", "lastProbeTime")}
            for c in status.get("conditions") or []
        ]
        return out

    return bool(strip(old) != strip(new))


def termination_message(message_file: bytes, log_tail: bytes, exit_code: int, policy: str | None = "File") -> str:
    """The container's termination message as the kubelet builds it: the last 4096 bytes of the file (the kubelet
    reads it with ``tail.ReadAtMost``); with ``FallbackToLogsOnError`` and an empty file on failure, the log's tail.

    >>> termination_message(b'{"a":1}', b"", 0)
    '{"a":1}'
    >>> message = termination_message(b"head" + b"x" * 5000 + b"end", b"", 0)
    >>> len(message), message[-3:]
    (4096, 'end')
    >>> termination_message(b"", b"1\\n2\\nboom\\n", 1, "FallbackToLogsOnError")
    '1\\n2\\nboom\\n'
    """
    data = message_file[-MAX_TERMINATION_MESSAGE:]
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
