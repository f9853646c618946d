"""Unit tests (no cluster) of how ``modelops run`` sets up kopf's peering: a distinct priority per process by
default, the oldest highest; the lifetime; namespace scanning off when the namespaces are fixed names."""

from __future__ import annotations

import argparse
import doctest

import pytest

import modelops.handlers.runtime
from modelops.cli.run import config_from, register
from modelops.handlers.config import MIN_PEERING_LIFETIME, PEERING_LIFETIME, OperatorConfig
from modelops.handlers.runtime import exact_namespaces, kopf_settings, peering_priority


def parse(*args: str) -> OperatorConfig:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    return config_from(parser.parse_args(["run", *args]))


@pytest.fixture(autouse=True)
def no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MODELOPS_PRIORITY", "MODELOPS_PEERING_LIFETIME", "MODELOPS_NAMESPACES", "MODELOPS_PEERING"):
        monkeypatch.delenv(name, raising=False)


def test_the_docstring_examples() -> None:
    result = doctest.testmod(modelops.handlers.runtime)
    assert result.attempted >= 3
    assert result.failed == 0


def test_a_later_start_ranks_lower_and_no_two_processes_share_a_priority() -> None:
    config = OperatorConfig(peering="modelops", standalone=False)
    starts = [1_764_000_000_000_000_000 + n * 1_000 for n in range(100)]  # a microsecond apart
    priorities = [peering_priority(config, started_ns=t) for t in starts]
    assert priorities == sorted(priorities, reverse=True)
    assert len(set(priorities)) == len(priorities)
    assert all(p < 0 for p in priorities), "kopf's usual priorities (0 and up) outrank every derived one"
    assert all(abs(p) < 2**53 for p in priorities), "exact as a JSON number"


def test_without_a_start_time_it_is_derived_from_now() -> None:
    config = OperatorConfig()
    first = peering_priority(config)
    second = peering_priority(config)
    assert first >= second
    assert first < 0


def test_a_given_priority_wins_over_the_derived_one(monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse("--peering=modelops", "--priority=100").priority == 100
    assert peering_priority(parse("--peering=modelops", "--priority=-3"), started_ns=5) == -3
    monkeypatch.setenv("MODELOPS_PRIORITY", "42")
    assert parse("--peering=modelops").priority == 42
    assert parse("--peering=modelops", "--priority=7").priority == 7, "the flag wins over the environment"


def test_by_default_the_priority_is_left_to_derive() -> None:
    config = parse("--peering=modelops")
    assert config.priority is None
    assert config.peering_lifetime == PEERING_LIFETIME


def test_the_peering_lifetime(monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse("--peering-lifetime=30").peering_lifetime == 30
    monkeypatch.setenv("MODELOPS_PEERING_LIFETIME", "20")
    assert parse().peering_lifetime == 20
    assert kopf_settings(parse("--peering-lifetime=25")).peering.lifetime == 25
    assert kopf_settings(OperatorConfig()).peering.lifetime == PEERING_LIFETIME


@pytest.mark.parametrize("value", [str(MIN_PEERING_LIFETIME - 1), "0", "-5", "soon"])
def test_a_lifetime_too_short_is_refused(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse(f"--peering-lifetime={value}")
    assert "--peering-lifetime" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "fixed"),
    [
        (["--namespace=ml"], True),
        (["-n", "ml", "-n", "fraud"], True),
        (["--namespace=it-*"], False),
        (["--namespace=ml-?"], False),
        (["--namespace=!kube-system"], False),
        (["--all-namespaces"], False),
        ([], False),
    ],
)
def test_namespace_scanning_is_off_only_for_fixed_names(args: list[str], fixed: bool) -> None:
    config = parse(*args)
    assert exact_namespaces(config) is fixed
    assert kopf_settings(config).scanning.disabled is fixed
