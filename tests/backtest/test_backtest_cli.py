"""``modelops backtest`` from files: the table, JSON, ``--compare``, the PNG timeline and its errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelops.cli import main

from .helpers import OUTAGE_CSV, POLICY, policy_yaml


def backtest(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["backtest", "-f", str(POLICY), "--data", str(OUTAGE_CSV), *args])
    out, err = capsys.readouterr()
    return code, out, err


def rows(table: str) -> list[list[str]]:
    return [line.split() for line in table.splitlines()]


def test_the_table_says_when_it_advanced_held_or_rolled_back_and_why(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = backtest(capsys, "--stable-version", "v1")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "Backtest from 2026-03-01T10:00:00+00:00 for 20m"
    decisions = [(r[0], r[1], r[2]) for r in rows(out)[3:12]]
    assert decisions == [
        ("+0s", "10%", "start"),
        ("+3m", "10%", "check-failed"),
        ("+5m", "50%", "advance"),
        ("+7m", "50%", "hold"),
        ("+8m", "50%", "hold"),
        ("+9m", "50%", "hold"),
        ("+10m", "50%", "hold"),
        ("+11m", "100%", "advance"),
        ("+12m", "100%", "promote"),
    ]
    assert "error-rate: 0.09 > max 0.05" in lines[4]
    assert "metrics unavailable (1/10)" in lines[6]
    summary = rows(out)[-1]
    assert summary[:3] == ["recommender", "Promoted", "+12m"]
    assert summary[-3:] == ["7", "1", "4"]
    code, verbose, _ = backtest(capsys, "--verbose")
    # 7 checks passed; those at 5m, 11m and 12m came with an advance or the promotion: 4 more rows
    assert [r[0] for r in rows(verbose) if r[2:3] == ["check-passed"]] == ["+1m", "+2m", "+4m", "+6m"]


def test_compare_runs_both_policies_on_the_same_readings(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = backtest(
        capsys, "--compare", "--set", "rollout.analysis.onMetricsUnavailable=Rollback", "-o", "json"
    )
    assert code == 0
    a, b = json.loads(out)["policies"]
    assert (a["name"], a["outcome"], a["stepWeights"]) == ("recommender", "Promoted", [10, 50, 100])
    assert b["name"] == "recommender with rollout.analysis.onMetricsUnavailable=Rollback"
    assert (b["outcome"], b["outcomeAt"], b["finalWeight"]) == ("RolledBack", "2026-03-01T10:07:00+00:00", 0)

    strict = policy_yaml(tmp_path, "rollout.analysis.failureLimit=0")
    code, out, _ = backtest(capsys, "--compare", str(strict))
    assert code == 0
    summary = rows(out)[-2:]
    assert summary[0][:4] == ["A:", "recommender", "Promoted", "+12m"]
    assert summary[1][:5] == ["B:", "recommender", "(policy-b.yaml)", "RolledBack", "+3m"], "the spike at 3m is fatal"
    header = rows(out)[2]
    assert header[:4] == ["TIME", "A:", "WEIGHT", "DECISION"]


def test_the_png_timeline_is_written(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    png = tmp_path / "out" / "timeline.png"
    code, out, _ = backtest(capsys, "--compare", "--set", "rollout.analysis.failureLimit=0", "--png", str(png))
    assert code == 0
    assert out.rstrip().endswith(f"timeline written to {png}")
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 20_000, "three panels with lines, not an empty canvas"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "rollout.analysis.failureLimit=-1"], "rollout.analysis.failureLimit"),
        (["--compare"], "--compare without FILE compares with the --set overrides"),
        (["--start", "2026-03-01T11:00:00Z"], "the window is empty"),
        (["--set", "nonsense"], "invalid override 'nonsense'"),
    ],
)
def test_bad_input_is_one_error_line(capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    code, out, err = backtest(capsys, *args)
    assert code == 1
    assert out == ""
    assert err.startswith("error: ")
    assert message in err
    assert len(err.strip().splitlines()) == 1, err
