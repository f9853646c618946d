"""The sandbox model: data, versions that differ for real, PSI, the gate job and the retraining job."""

from __future__ import annotations

import doctest
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelops.sandbox.models import (
    GROUPS,
    MAX_TERMINATION_MESSAGE,
    Dataset,
    DriftMonitor,
    FeatureReference,
    ResultTooLarge,
    apply_shift,
    artifacts,
    bin_fractions,
    data,
    drift,
    evaluate,
    jobs,
    load_artifact,
    load_data,
    load_slice,
    psi,
    retraining_job,
    server,
    train,
    training,
    uri_to_path,
    write_result,
)
from modelops.sandbox.models.__main__ import _run_job, main
from modelops.sandbox.models.artifacts import InputOutOfRange
from modelops.sandbox.models.data import write_csv
from modelops.sandbox.models.jobs import next_version

from .helpers import run_module


@pytest.mark.parametrize("module", [data, drift, artifacts, server, jobs, training], ids=lambda m: m.__name__)
def test_docstring_examples(module: object) -> None:
    """The worked examples in the docstrings (PSI, bins, shift, URIs) are tests too."""
    failed, attempted = doctest.testmod(module, optionflags=doctest.ELLIPSIS)  # type: ignore[arg-type]
    assert failed == 0
    if module in (data, drift):
        assert attempted > 0


# ------------------------------------------------------------------------------------------------------ data


def test_slices_partition_the_rows() -> None:
    slices = {name: load_slice(name) for name in ("train", "test", "live")}
    assert sum(len(s) for s in slices.values()) == data.N_ROWS
    rows = np.vstack([s.x for s in slices.values()])
    assert len(np.unique(rows, axis=0)) == data.N_ROWS  # no row in two slices
    for s in slices.values():
        assert 0.4 < s.y.mean() < 0.6  # both classes present in every slice


def test_shift_moves_the_drifting_features_only_and_keeps_labels() -> None:
    plain, shifted = load_slice("live"), load_slice("live", shift=1.0)
    np.testing.assert_array_equal(plain.y, shifted.y)
    np.testing.assert_allclose(shifted.x[:, 0] - plain.x[:, 0], 2.0)
    np.testing.assert_allclose(shifted.x[:, 1] - plain.x[:, 1], -2.0)
    np.testing.assert_array_equal(shifted.x[:, 2:], plain.x[:, 2:])
    before = plain.x.copy()
    apply_shift(plain.x, 3.0)
    np.testing.assert_array_equal(plain.x, before)  # the input is not modified


def test_csv_round_trip(tmp_path: Path) -> None:
    rows = load_slice("test", shift=0.5)
    write_csv(rows, tmp_path / "rows.csv")
    back = load_data(str(tmp_path / "rows.csv"))
    np.testing.assert_array_equal(back.x, rows.x)
    np.testing.assert_array_equal(back.y, rows.y)


def test_csv_without_label_column_is_refused(tmp_path: Path) -> None:
    (tmp_path / "bad.csv").write_text("f0,f1\n1,2\n")
    with pytest.raises(ValueError, match="missing columns"):
        load_data(str(tmp_path / "bad.csv"))


# -------------------------------------------------------------------------------------------------- versions


def served_outcomes(uri: str, rows: Dataset) -> tuple[float, float]:
    """(accuracy over the rows the served model answered, share of rows it failed on), one row per request.

    Each row goes through the serving preprocessing alone, as a one-row request would; the rows it accepts are
    then predicted in one batch (the same estimator call as one by one, without a thousand calls).
    """
    artifact = load_artifact(uri)
    accepted, labels, failed = [], [], 0
    for x, y in zip(rows.x, rows.y, strict=True):
        try:
            accepted.append(artifact.serving.apply(x[None, :]))
        except InputOutOfRange:
            failed += 1
            continue
        labels.append(y)
    predicted = artifact.predict_offline(np.vstack(accepted))
    return float(np.mean(predicted == np.array(labels))), failed / len(rows)


def test_versions_differ_as_designed(uris: dict[str, str]) -> None:
    rows = load_slice("test")
    v1_accuracy, v1_failed = served_outcomes(uris["v1"], rows)
    v2_accuracy, v2_failed = served_outcomes(uris["v2"], rows)
    v3_accuracy, v3_failed = served_outcomes(uris["v3"], rows)
    # the retrained version beats the baseline clearly (2400 rows: a standard error is under 0.01)
    assert v2_accuracy > v1_accuracy + 0.05
    assert v1_failed == v2_failed == 0
    # the broken one is much worse than the baseline as served, and fails on some inputs
    assert v3_accuracy < v1_accuracy - 0.1
    assert 0.02 < v3_failed < 0.2
    # ... while offline (what the gate job sees) it is as good as v2: a training/serving skew only a canary sees
    offline = evaluate(load_artifact(uris["v3"]), rows)["metrics"]["accuracy"]
    assert offline == evaluate(load_artifact(uris["v2"]), rows)["metrics"]["accuracy"]
    assert offline > v1_accuracy + 0.05


def test_broken_version_names_the_feature_out_of_range(uris: dict[str, str]) -> None:
    row = np.zeros((1, data.N_FEATURES))
    row[0, 3] = 9.0
    with pytest.raises(InputOutOfRange, match="f3"):
        load_artifact(uris["v3"]).predict(row)
    load_artifact(uris["v2"]).predict(row)  # a correct version takes it


def test_biased_version_fails_the_four_fifths_rule_and_the_improved_one_passes() -> None:
    train_rows, test_rows = load_slice("train"), load_slice("test")

    def parity_ratio(recipe: str) -> float:
        groups = evaluate(train(train_rows, "x", recipe), test_rows)["groups"]
        rates = [groups[g]["positiveRate"] for g in GROUPS]
        return min(rates) / max(rates)

    assert parity_ratio("biased") < 0.8 <= parity_ratio("improved")


def test_drift_lowers_accuracy_and_retraining_on_shifted_data_recovers(uris: dict[str, str]) -> None:
    shifted_test = load_slice("test", shift=1.0)
    before = evaluate(load_artifact(uris["v2"]), load_slice("test"))["metrics"]["accuracy"]
    drifted = evaluate(load_artifact(uris["v2"]), shifted_test)["metrics"]["accuracy"]
    retrained = evaluate(train(load_slice("train", shift=1.0), "v4"), shifted_test)["metrics"]["accuracy"]
    assert drifted < before - 0.1
    assert retrained > drifted + 0.1


# ------------------------------------------------------------------------------------------------------- PSI


fractions = st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=2, max_size=12).filter(lambda v: sum(v) > 0)


@given(fractions, st.data())
def test_psi_is_zero_on_itself_non_negative_and_symmetric(a: list[float], draw: st.DataObject) -> None:
    b = draw.draw(st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=len(a), max_size=len(a)))
    a = [v / sum(a) for v in a]
    assert psi(a, a) == pytest.approx(0.0, abs=1e-12)
    assert psi(a, b) >= 0.0
    assert psi(a, b) == pytest.approx(psi(b, a))


def test_psi_rejects_mismatched_bins() -> None:
    with pytest.raises(ValueError, match="bin counts differ"):
        psi([0.5, 0.5], [1.0])


def test_drift_monitor_reports_nothing_until_the_window_has_enough_rows_then_sees_the_shift() -> None:
    train_rows = load_slice("train")
    references = [FeatureReference.fit(f"f{c}", c, train_rows.x[:, c]) for c in (0, 1, 2, 3)]
    monitor = DriftMonitor(references, window=500, min_samples=100)
    live = load_slice("live")
    monitor.add(live.x[:99].tolist())
    assert monitor.current() == {}
    monitor.add(live.x[99:500].tolist())
    calm = monitor.current()
    assert set(calm) == {"f0", "f1", "f2", "f3"}
    assert max(calm.values()) < 0.1  # same distribution: only sampling noise
    monitor.add(apply_shift(live.x[500:1000], 1.0).tolist())  # the window now holds shifted rows only
    drifted = monitor.current()
    assert min(drifted["f0"], drifted["f1"]) > 0.25  # major shift on the features that moved
    assert max(drifted["f2"], drifted["f3"]) < 0.1  # and none on the others


def test_bin_fractions_sum_to_one() -> None:
    values = np.random.default_rng(1).normal(size=1000)
    assert sum(bin_fractions(values, [-1.0, 0.0, 1.0])) == pytest.approx(1.0)


# ------------------------------------------------------------------------------------------------------ jobs


def test_gate_job_writes_held_out_metrics_and_per_group_rates(uris: dict[str, str], tmp_path: Path) -> None:
    log = tmp_path / "termination-log"
    done = run_module("evaluate", "--model-uri", uris["v2"], "--stable-uri", uris["v1"], "--termination-log", str(log))
    assert done.returncode == 0, done.stderr
    result = json.loads(log.read_text())
    assert json.loads(done.stdout) == result  # printed as well
    assert len(log.read_bytes()) <= 4096  # fits a Kubernetes termination message
    expected = evaluate(load_artifact(uris["v2"]), load_slice("test"))
    assert result["metrics"] == expected["metrics"]
    assert result["metrics"]["rows"] == len(load_slice("test"))
    assert set(result["groups"]) == set(GROUPS)
    for group in result["groups"].values():
        assert 0.0 <= group["positiveRate"] <= 1.0
        assert 0.0 <= group["accuracy"] <= 1.0
    assert sum(g["rows"] for g in result["groups"].values()) == result["metrics"]["rows"]
    assert result["stable"]["accuracy"] < result["metrics"]["accuracy"]  # v1 on the same rows


def test_gate_job_failure_exits_1_and_says_why_in_the_termination_log(tmp_path: Path) -> None:
    log = tmp_path / "termination-log"
    code = main(["evaluate", "--model-uri", (tmp_path / "missing.pkl").as_uri(), "--termination-log", str(log)])
    assert code == 1
    assert "missing.pkl" in json.loads(log.read_text())["error"]


def test_a_result_larger_than_a_termination_message_is_refused_naming_the_limit(tmp_path: Path) -> None:
    log = tmp_path / "termination-log"
    fits = {"metrics": {"note": "x" * (MAX_TERMINATION_MESSAGE - len('{"metrics":{"note":""}}'))}}
    assert len(write_result(fits, log).encode()) == MAX_TERMINATION_MESSAGE, "exactly the limit is written"
    assert json.loads(log.read_text()) == fits
    big = {"metrics": {"note": "x" * MAX_TERMINATION_MESSAGE}}
    with pytest.raises(ResultTooLarge, match="4096-byte termination message limit"):
        write_result(big, log)
    written = log.read_bytes()
    assert len(written) < 512, "a small error, not a cut result"
    error = json.loads(written)["error"]
    assert "the result is 4119 bytes, more than the 4096-byte termination message limit" in error


def test_a_job_with_an_oversized_result_fails_and_keeps_the_result_in_its_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "termination-log"
    big = {"metrics": {"groups": {f"g{i}": 0.5 for i in range(1000)}}}
    assert _run_job(lambda: big, str(log)) == 1
    out, err = capsys.readouterr()
    assert json.loads(out) == big, "the whole result goes to the job's output"
    assert "termination message limit" in err
    assert "termination message limit" in json.loads(log.read_text())["error"]


def test_retraining_job_writes_the_next_version_as_a_loadable_artifact(model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "models"
    for existing in ("v1", "v2", "v3"):
        (out / existing).mkdir(parents=True)
    log = tmp_path / "termination-log"
    done = run_module(
        "retrain",
        "--data", "builtin:train",
        "--data", "builtin:live",
        "--data-shift", "1.0",
        "--out-dir", str(out),
        "--version-prefix", "v",
        "--termination-log", str(log),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(log.read_text())
    assert result["version"] == "v4"
    assert uri_to_path(result["uri"]) == out / "v4" / "model.pkl"
    artifact = load_artifact(result["uri"])
    assert artifact.version == "v4"
    assert artifact.trained_on["rows"] == len(load_slice("train")) + len(load_slice("live"))
    shifted_test = load_slice("test", shift=1.0)
    stable = evaluate(load_artifact((model_dir / "v2" / "model.pkl").as_uri()), shifted_test)
    assert evaluate(artifact, shifted_test)["metrics"]["accuracy"] > stable["metrics"]["accuracy"] + 0.1


def test_retraining_reads_csv_data(tmp_path: Path) -> None:
    write_csv(load_slice("live", shift=1.0), tmp_path / "recent.csv")
    result = retraining_job([str(tmp_path / "recent.csv")], tmp_path / "out", "r")
    assert result["version"] == "r1"
    assert load_artifact(result["uri"]).trained_on["rows"] == len(load_slice("live"))


def test_next_version_never_hands_out_the_same_version_twice(tmp_path: Path) -> None:
    (tmp_path / "v7").mkdir()
    (tmp_path / "other").mkdir()
    first, second = next_version(tmp_path, "v"), next_version(tmp_path, "v")
    assert (first[0], second[0]) == ("v8", "v9")


def test_train_command_writes_the_artifact_and_its_uri(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--version", "v1", "--out", str(tmp_path / "v1")]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["recipe"] == "baseline"
    assert load_artifact(printed["uri"]).recipe == "baseline"
    assert printed["uri"] == (tmp_path / "v1" / "model.pkl").as_uri()
