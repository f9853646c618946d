"""Fixtures shared by the kube adapter and router tests."""

from __future__ import annotations

import pytest

from modelops.adapters.kube import InMemoryKube


@pytest.fixture
def kube() -> InMemoryKube:
    """A fresh in-memory API per test."""
    return InMemoryKube()
