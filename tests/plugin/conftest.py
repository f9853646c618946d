"""Fixtures of the kubectl plugin's tests: an operator of their own on the session's cluster (namespaces ``pl-*``),
as the chart's ServiceAccount (see ``integration/live.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from integration.live import Cluster, running_operator
from plugins.cluster import KubeCluster
from plugins.prometheus import Exporter


@pytest.fixture(scope="module")
def plugin_cluster(kube: KubeCluster, prometheus: Any, prometheus_exporter: Exporter) -> Iterator[Cluster]:
    with running_operator(kube, prometheus, prometheus_exporter, "pl") as cluster:
        yield cluster
