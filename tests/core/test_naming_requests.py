"""Object names and manual requests."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from modelops.api.common import NAME_PATTERN, VERSION_PATTERN
from modelops.core import gate_job_name, parse_request, retraining_job_name, workload_name

names = st.from_regex(NAME_PATTERN, fullmatch=True).filter(lambda s: len(s) <= 63)
versions = st.from_regex(VERSION_PATTERN, fullmatch=True).filter(lambda s: len(s) <= 40)


@given(names, versions)
def test_workload_names_are_dns_labels(name: str, version: str) -> None:
    out = workload_name(name, version)
    assert len(out) <= 63
    assert re.fullmatch(NAME_PATTERN, out), out
    if len(f"{name}-{version}") <= 63:
        assert out == f"{name}-{version}".replace(".", "-")


@given(names, versions, names)
def test_job_names_are_dns_labels(name: str, version: str, gate: str) -> None:
    at = datetime(2026, 5, 1, tzinfo=UTC)
    for out in (gate_job_name(name, version, gate, at), retraining_job_name(name, at)):
        assert len(out) <= 63
        assert re.fullmatch(NAME_PATTERN, out), out


def test_long_names_stay_distinct() -> None:
    a, b = workload_name("m" * 60, "v1"), workload_name("m" * 60, "v2")
    assert a != b
    assert len(a) == len(b) == 63


def test_requests() -> None:
    assert parse_request(None) is None
    assert parse_request("  ") is None
    req = parse_request('{"id": "a1", "action": "pause", "by": "bo"}')
    assert req is not None
    assert (req.id, req.action, req.by, req.error) == ("a1", "pause", "bo", "")
    bad = parse_request('{"action": 3}')
    assert bad is not None
    assert bad.error
    assert bad.id.startswith("sha256-")
    same = parse_request('{"action": 3}')
    assert same is not None
    assert same.id == bad.id
    assert parse_request("[1]").error == "expected a JSON object"  # type: ignore[union-attr]
