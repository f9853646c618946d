"""Builders of the objects the operator would create, and polling with a deadline."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import psutil

T = TypeVar("T")
TINY_SERVER = str(Path(__file__).with_name("tiny_server.py"))


def wait_for(check: Callable[[], T | None], timeout: float = 15.0, what: str = "condition") -> T:
    """Poll ``check`` until it returns something truthy and return that; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError(f"{what} not reached within {timeout}s (last: {last!r})")


def gone(pids: Iterable[int], timeout: float = 15.0) -> bool:
    """Whether every pid has exited (zombies count as gone: they run nothing) within ``timeout``."""

    def alive() -> list[int]:
        out = []
        for pid in pids:
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    out.append(pid)
            except psutil.NoSuchProcess:
                pass
        return out

    deadline = time.monotonic() + timeout
    while alive():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def deployment(
    name: str,
    *,
    replicas: int = 1,
    version: str = "v1",
    env: dict[str, str] | None = None,
    command: list[str] | None = None,
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A Deployment shaped like the operator's: labels on the object and the template, a readiness probe."""
    pod_labels = {"app": name, "modelops.io/model": "tiny", "modelops.io/version": version, **(labels or {})}
    container: dict[str, Any] = {
        "name": "server",
        "image": "ghcr.io/modelops/tiny:0",
        "env": [{"name": k, "value": v} for k, v in {"VERSION": version, **(env or {})}.items()],
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}},
    }
    container["command"] = command if command is not None else ["python", TINY_SERVER]
    if not container["command"]:
        del container["command"]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "labels": {"app.kubernetes.io/managed-by": "modelops", "modelops.io/model": "tiny",
                       "modelops.io/version": version},
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": pod_labels}, "spec": {"containers": [container]}},
        },
    }  # fmt: skip


def service(name: str, selector: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"selector": selector, "ports": [{"port": 8080}]},
    }


def job(name: str, code: str, *, backoff_limit: int = 0, deadline: int | None = None) -> dict[str, Any]:
    """A Job running ``python -c code`` (the runner's ``python`` is this interpreter)."""
    spec: dict[str, Any] = {
        "backoffLimit": backoff_limit,
        "template": {
            "metadata": {"labels": {"modelops.io/gate": "held-out-eval"}},
            "spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "evaluate", "image": "x", "command": ["python", "-c", code]}],
            },
        },
    }
    if deadline is not None:
        spec["activeDeadlineSeconds"] = deadline
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name}, "spec": spec}


def condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any] | None:
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == type_:
            return dict(c)
    return None


PYTHON = sys.executable
