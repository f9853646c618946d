"""Prometheus targets from the real API's Pods, as ``kubernetes_sd_configs`` (role ``pod``) would find them.

Debian's Prometheus is built without Kubernetes service discovery, so the sandbox does that part: it lists the Pods
annotated ``prometheus.io/scrape: "true"`` that are Running with an address, and writes them to a ``file_sd_configs``
file (Prometheus watches it: no reload) at ``podIP:<prometheus.io/port>`` with ``<prometheus.io/path>``, labelled
``namespace``, ``pod``, ``model``, ``version``, ``deployment`` from the Pod's ``modelops.io/*`` labels.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from modelops.sandbox.node._kube import Client, Kind

__all__ = ["PodDiscovery", "pod_targets", "scrape_config"]

log = logging.getLogger(__name__)

PODS = Kind("", "v1", "pods")
JOB = "modelops-models"
_LABELS = {"modelops.io/model": "model", "modelops.io/version": "version", "modelops.io/deployment": "deployment"}


def pod_targets(pods: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``file_sd`` groups for the Pods that ask to be scraped, one group per (path, labels).

    >>> pod = {"metadata": {"name": "m-1", "namespace": "ml", "labels": {"modelops.io/version": "v1"},
    ...        "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "8080"}},
    ...        "status": {"phase": "Running", "podIP": "127.0.1.2"}}
    >>> [(g["targets"], g["labels"]["version"], g["labels"]["__metrics_path__"]) for g in pod_targets([pod])]
    [(['127.0.1.2:8080'], 'v1', '/metrics')]
    """
    groups = []
    for pod in pods:
        meta, status = pod.get("metadata") or {}, pod.get("status") or {}
        annotations = meta.get("annotations") or {}
        if annotations.get("prometheus.io/scrape") != "true" or meta.get("deletionTimestamp"):
            continue
        if status.get("phase") != "Running" or not status.get("podIP") or not annotations.get("prometheus.io/port"):
            continue
        labels = {"namespace": str(meta.get("namespace", "")), "pod": str(meta.get("name", ""))}
        for source, target in _LABELS.items():
            value = (meta.get("labels") or {}).get(source)
            if value:
                labels[target] = str(value)
        labels["__metrics_path__"] = str(annotations.get("prometheus.io/path") or "/metrics")
        groups.append({"targets": [f"{status['podIP']}:{annotations['prometheus.io/port']}"], "labels": labels})
    return sorted(groups, key=lambda g: g["targets"][0])


def scrape_config(path: Path, scrape_interval: str) -> dict[str, Any]:
    return {
        "job_name": JOB,
        "scrape_interval": scrape_interval,
        "scrape_timeout": scrape_interval,
        "honor_labels": True,
        "file_sd_configs": [{"files": [str(path)], "refresh_interval": "5s"}],
    }


class PodDiscovery:
    """Keeps ``path`` up to date with :func:`pod_targets` of every namespace, every ``period`` seconds."""

    def __init__(self, client: Client, path: Path, period: float = 0.5) -> None:
        self.client = client
        self.path = Path(path)
        self.period = period
        self._stop = threading.Event()
        self._written: list[dict[str, Any]] | None = None
        self._thread = threading.Thread(target=self._loop, name="pod-discovery", daemon=True)

    def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.sync()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5.0)

    def sync(self) -> None:
        groups = pod_targets(self.client.list(PODS, None))
        if groups == self._written:
            return
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(groups, indent=1))
        tmp.replace(self.path)
        self._written = groups

    def _loop(self) -> None:
        while not self._stop.wait(self.period):
            try:
                self.sync()
            except Exception as e:
                log.debug("pod discovery: %s", e)
