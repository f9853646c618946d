"""Fixtures of the kubectl plugin's tests: an operator of their own (namespaces ``pl-*``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from plugins.prometheus import Exporter

from .live import PrefixedCluster, running_operator


@pytest.fixture(scope="module")
def plugin_cluster(apiserver: Any, prometheus: Any, prometheus_exporter: Exporter) -> Iterator[PrefixedCluster]:
    with running_operator(apiserver, prometheus, prometheus_exporter, "pl") as cluster:
        yield cluster
