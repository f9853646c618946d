"""Readings files, Prometheus range answers and policy overrides: what ``modelops backtest`` reads."""

from __future__ import annotations

from datetime import timedelta

import pytest

from modelops.adapters.prometheus import RangeReading
from modelops.cli.backtest_data import (
    DataError,
    apply_overrides,
    dump_samples_csv,
    load_policy,
    load_samples,
    parse_samples,
    samples_from_range,
)
from modelops.core import ReadingKind
from modelops.core.backtest import Sample

from .helpers import OUTAGE_CSV, POLICY, T0, healthy

CSV = """time,metric,target,value
2026-03-01T10:00:00Z,error-rate,candidate,0.01
1772359260,error-rate,candidate,
2026-03-01T10:02:00,error-rate,candidate,error: connection refused
2026-03-01T10:03:00Z,accuracy,stable,NaN
"""


def test_csv_rows_become_values_no_data_and_errors() -> None:
    samples = parse_samples(CSV, "csv")
    assert [s.at - T0 for s in samples] == [timedelta(minutes=m) for m in range(4)]
    assert [s.reading.kind for s in samples] == [
        ReadingKind.VALUE,
        ReadingKind.NO_DATA,
        ReadingKind.ERROR,
        ReadingKind.NO_DATA,
    ]
    assert samples[0].reading.value == 0.01
    assert samples[2].reading.message == "connection refused"
    assert samples[3].target == "stable"


def test_json_lists_and_objects_are_read_alike() -> None:
    rows = (
        '[{"time": "2026-03-01T10:00:00Z", "metric": "m", "target": "candidate", "value": 0.5},'
        ' {"time": 1772359260, "metric": "m", "target": "candidate", "value": null}]'
    )
    listed = parse_samples(rows, "json")
    wrapped = parse_samples('{"samples": ' + rows + "}", "json")
    assert listed == wrapped
    assert [s.reading.kind for s in listed] == [ReadingKind.VALUE, ReadingKind.NO_DATA]


@pytest.mark.parametrize(
    ("text", "fmt", "message"),
    [
        ("time,metric,value\n", "csv", "CSV header must have the columns time, metric, target, value"),
        ("time,metric,target,value\nyesterday,m,candidate,1\n", "csv", "row 1: invalid time 'yesterday'"),
        ("time,metric,target,value\n1,m,canary,1\n", "csv", "row 1: invalid target 'canary'"),
        ("time,metric,target,value\n1,m,candidate,fast\n", "csv", "row 1: invalid value 'fast'"),
        ("time,metric,target,value\n1,,candidate,1\n", "csv", "row 1: missing metric"),
        ('{"rows": []}', "json", "expected a JSON list of objects"),
        ("[1, 2", "json", "not JSON"),
    ],
)
def test_bad_readings_name_the_row_and_the_problem(text: str, fmt: str, message: str) -> None:
    with pytest.raises(DataError, match=r"^data: ") as failed:
        parse_samples(text, fmt)
    assert message in str(failed.value)


def test_recorded_samples_survive_the_file_format() -> None:
    def key(s: Sample) -> tuple[object, ...]:
        return (s.at, s.metric, s.target, s.reading.kind, s.reading.value)

    samples = load_samples(OUTAGE_CSV)
    assert len(samples) == 63
    assert sorted(map(key, parse_samples(dump_samples_csv(samples), "csv"))) == sorted(map(key, samples))
    with_errors = healthy(3, error_rate=lambda m: "error" if m == 1 else None if m == 2 else 0.5)
    again = parse_samples(dump_samples_csv(with_errors), "csv")
    assert sorted(map(key, again)) == sorted(map(key, with_errors))
    assert [s.reading.message for s in again if s.reading.kind is ReadingKind.ERROR] == ["timeout"]


def test_a_range_answer_lands_on_the_grid_with_gaps_as_no_data() -> None:
    step = timedelta(seconds=60)
    # Prometheus answers in milliseconds: points a little off the grid still land on it
    points = ((T0 + timedelta(milliseconds=1), 0.1), (T0 + 2 * step, 0.3))
    samples = samples_from_range("m", "candidate", RangeReading(ReadingKind.VALUE, points), T0, T0 + 3 * step, step)
    assert [(s.at - T0, s.reading.kind, s.reading.value) for s in samples] == [
        (timedelta(0), ReadingKind.VALUE, 0.1),
        (step, ReadingKind.NO_DATA, None),
        (2 * step, ReadingKind.VALUE, 0.3),
        (3 * step, ReadingKind.NO_DATA, None),
    ]
    failed = samples_from_range("m", "stable", RangeReading(ReadingKind.ERROR, message="down"), T0, T0 + step, step)
    assert [(s.reading.kind, s.reading.message) for s in failed] == [(ReadingKind.ERROR, "down")] * 2


def test_overrides_set_fields_and_list_items() -> None:
    _, spec = load_policy(POLICY.read_text(), str(POLICY))
    out = apply_overrides(
        spec,
        [
            "rollout.analysis.failureLimit=3",
            "rollout.analysis.onMetricsUnavailable=Rollback",
            "rollout.steps.0.pause=10m",
            "rollout.analysis.metrics.1.baseline.maxDegradation=0.05",
        ],
    )
    assert out["rollout"]["analysis"]["failureLimit"] == 3
    assert out["rollout"]["analysis"]["onMetricsUnavailable"] == "Rollback"
    assert out["rollout"]["steps"][0] == {"weight": 10, "pause": "10m"}
    assert out["rollout"]["analysis"]["metrics"][1]["baseline"]["maxDegradation"] == 0.05
    assert spec["rollout"]["analysis"]["failureLimit"] == 1, "the original is left alone"
    for bad, message in (
        ("failureLimit", "expected path=value"),
        ("rollout.steps.7.pause=1m", "7 is not an index below 3"),
        ("rollout.analysis.interval.x=1", "interval is not a mapping or a list"),
    ):
        with pytest.raises(DataError, match=message):
            apply_overrides(spec, [bad])


def test_a_policy_is_a_manifest_or_a_bare_spec() -> None:
    name, spec = load_policy(POLICY.read_text(), "x.yaml")
    assert name == "recommender"
    assert load_policy("model: {name: m}\n", "dir/bare.yaml") == ("bare", {"model": {"name": "m"}})
    with pytest.raises(DataError, match="expected a ModelDeployment or its spec"):
        load_policy("- 1\n", "list.yaml")
    assert spec["rollout"]["analysis"]["failureLimit"] == 1
