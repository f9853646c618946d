"""Parts of the per-object loop that need no API server: the wake-up flag and the operator's flags."""

from __future__ import annotations

import argparse

import pytest

from modelops.cli import build_parser
from modelops.cli.run import config_from
from modelops.handlers.operator import Wake


async def test_a_wake_set_only_by_one_watch_event_says_so() -> None:
    wake = Wake()
    assert not wake.only_seen("7")
    wake.set_by_watch("7")
    assert wake.is_set()
    assert wake.only_seen("7")
    assert not wake.only_seen("8")


async def test_a_second_event_or_any_other_waker_makes_it_more_than_the_echo() -> None:
    wake = Wake()
    wake.set_by_watch("7")
    wake.set_by_watch("8")  # two events: at least one is not our write's echo
    assert wake.is_set()
    assert not wake.only_seen("8")
    assert not wake.only_seen("7")

    wake.clear()
    wake.set_by_watch("9")
    wake.set()  # a child Deployment or a retirement woke it too
    assert not wake.only_seen("9")

    wake.clear()
    wake.set()
    wake.set_by_watch("10")  # the echo after another wake-up: still more than the echo
    assert not wake.only_seen("10")


async def test_clearing_forgets_the_event() -> None:
    wake = Wake()
    wake.set_by_watch("7")
    wake.clear()
    assert not wake.is_set()
    assert not wake.only_seen("7")
    wake.set_by_watch("")  # no resourceVersion: never taken for an echo
    assert not wake.only_seen("")


def _run_args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["run", *argv])


def test_workers_flag_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert config_from(_run_args()).workers == 4
    assert config_from(_run_args("--workers", "2")).workers == 2
    monkeypatch.setenv("MODELOPS_WORKERS", "8")
    assert config_from(_run_args()).workers == 8


@pytest.mark.parametrize("value", ["0", "-1", "many"])
def test_workers_must_be_a_positive_number(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _run_args("--workers", value)
    assert "--workers" in capsys.readouterr().err
