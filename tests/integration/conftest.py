"""The operator running for real (kopf, our handlers) against the session's local cluster and a real Prometheus.

One operator serves a whole test module (kopf's graceful stop takes seconds); it watches namespaces ``it-*``, and each
test gets its own namespace. It runs with the chart's ServiceAccount token (see ``live.py``): the real RBAC applies,
and a request the chart does not grant fails the test that made it (:func:`operator_is_never_forbidden`). The real
controllers and the node agent run what it creates: model servers (``model_server.py``) and gate Jobs are processes.

``integration_requests`` holds what the API server answered from the first operator's start on, for the session:
``test_rbac_least_privilege`` (the last module) reads it once the operators of the modules before it have stopped,
so that even their long-running watches, which the audit log records when they end, are in it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from plugins.cluster import KubeCluster, RequestLog
from plugins.prometheus import Exporter

from .live import Cluster, forbidden, running_operator


@pytest.fixture(scope="session")
def integration_requests(kube: KubeCluster) -> RequestLog:
    return kube.requests()


@pytest.fixture(scope="module")
def cluster(
    kube: KubeCluster, prometheus: Any, prometheus_exporter: Exporter, integration_requests: RequestLog
) -> Iterator[Cluster]:
    with running_operator(kube, prometheus, prometheus_exporter, "it", integration_requests) as running:
        yield running


@pytest.fixture(autouse=True)
def operator_is_never_forbidden(kube: KubeCluster) -> Iterator[None]:
    """Whatever the test checks, the operator's user got no 403 while it ran: the chart grants all it needs."""
    log = kube.requests()
    yield
    refused = forbidden(log, kube.operator_user)
    assert refused == [], f"the API server refused the operator (the chart does not grant it): {refused}"
