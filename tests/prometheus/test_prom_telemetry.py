"""The operator's own metrics: names, values, series removed when they no longer apply, served over HTTP."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from modelops import __version__
from modelops.api import (
    Condition,
    MetricStatus,
    ModelDeploymentSpec,
    ModelDeploymentStatus,
    ModelRetirementStatus,
    MonitoringStatus,
)
from modelops.api.deployment import AnalysisStatus
from modelops.telemetry import METRIC_NAMES, Telemetry

NS, NAME = "ml", "iris"


def spec(**rollout: Any) -> ModelDeploymentSpec:
    return ModelDeploymentSpec.model_validate(
        {
            "model": {"name": "iris", "version": "v2", "uri": "file:///m/v2.pkl"},
            "server": {"image": "model-server:1"},
            "traffic": {"router": "replicas", "replicas": {"service": "iris"}},
            "rollout": {
                "progressDeadline": "30m",
                "analysis": {
                    "metrics": [
                        {"name": "accuracy", "owner": "ds", "query": "a", "min": 0.9},
                        {"name": "latency", "owner": "sre", "query": "l", "min": 0.001, "max": 0.25},
                    ]
                },
                **rollout,
            },
            "monitoring": {
                "metrics": [
                    {"name": "accuracy", "query": "a", "min": 0.5},  # the analysis bound wins
                    {"name": "drift", "owner": "ds", "query": "d", "max": 0.2},
                ]
            },
        }
    )


def status(**fields: Any) -> ModelDeploymentStatus:
    base: dict[str, Any] = {
        "phase": "Progressing",
        "canary_weight": 25,
        "last_progress_at": datetime(2026, 11, 28, 12, 0, tzinfo=UTC),
        "analysis": AnalysisStatus(
            metrics=[
                MetricStatus(name="accuracy", owner="ds", value=0.93, stable_value=0.95, verdict="Pass"),
                MetricStatus(name="latency", owner="sre", value=None, verdict="NoData"),
            ]
        ),
        "monitoring": MonitoringStatus(metrics=[MetricStatus(name="drift", owner="ds", value=0.05, verdict="Pass")]),
    }
    return ModelDeploymentStatus(**{**base, **fields})


def samples(telemetry: Telemetry) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of the exposition, keyed by sample name and labels (parsed by prometheus-client's parser)."""
    out = {}
    for family in text_string_to_metric_families(telemetry.exposition().decode()):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def value(telemetry: Telemetry, sample: str, /, **labels: str) -> float | None:
    return samples(telemetry).get((sample, frozenset(labels.items())))


def names_for(telemetry: Telemetry, namespace: str, name: str) -> set[str]:
    """Sample names with series of one object (without prometheus-client's ``_created`` series)."""
    return {
        n
        for n, labels in samples(telemetry)
        if ("namespace", namespace) in labels and ("name", name) in labels and not n.endswith("_created")
    }


# ------------------------------------------------------------------------------------------------ names


def test_exactly_the_documented_families_are_exported() -> None:
    t = Telemetry()
    t.observe_deployment(NS, NAME, status(), spec())
    t.observe_retirement(NS, "old", ModelRetirementStatus())
    t.record_check(NS, NAME, "accuracy", "Pass")
    t.record_rollout(NS, NAME, "Promoted")
    t.observe_reconcile("ModelDeployment", 0.1)
    t.observe_reconcile("ModelDeployment", 0.1, error=True)
    families = {f.name for f in text_string_to_metric_families(t.exposition().decode())}
    # prometheus-client adds a <name>_created gauge to counters and histograms (their start time)
    created = {n for n in families if n.endswith("_created")}
    assert {n.removesuffix("_created") for n in created} == {
        "modelops_analysis_checks",
        "modelops_rollouts",
        "modelops_reconcile_errors",
        "modelops_reconcile_duration_seconds",
    }
    families -= created
    # the parser names counters without their _total suffix
    assert {f"{n}_total" if f"{n}_total" in METRIC_NAMES else n for n in families} == set(METRIC_NAMES)
    sample_names = {name for name, _ in samples(t)}
    for name in METRIC_NAMES:
        assert name in sample_names or f"{name}_bucket" in sample_names, name


def test_build_info() -> None:
    assert value(Telemetry(), "modelops_build_info", version=__version__) == 1.0
    assert value(Telemetry(version="9.9.9"), "modelops_build_info", version="9.9.9") == 1.0


def test_each_telemetry_has_its_own_registry() -> None:
    a, b = Telemetry(), Telemetry()
    a.observe_deployment(NS, NAME, status())
    assert value(a, "modelops_canary_weight", namespace=NS, name=NAME) == 25
    assert value(b, "modelops_canary_weight", namespace=NS, name=NAME) is None


# ------------------------------------------------------------------------------------------------ deployments


def test_deployment_gauges() -> None:
    t = Telemetry()
    t.observe_deployment(NS, NAME, status(), spec())
    ids = {"namespace": NS, "name": NAME}
    assert value(t, "modelops_rollout_phase", phase="Progressing", **ids) == 1
    assert value(t, "modelops_rollout_phase", phase="Promoted", **ids) == 0
    assert value(t, "modelops_canary_weight", **ids) == 25
    assert value(t, "modelops_metric_value", metric="accuracy", owner="ds", target="candidate", **ids) == 0.93
    assert value(t, "modelops_metric_value", metric="accuracy", owner="ds", target="stable", **ids) == 0.95
    assert value(t, "modelops_metric_value", metric="drift", owner="ds", target="monitoring", **ids) == 0.05
    assert value(t, "modelops_metric_value", metric="latency", owner="sre", target="candidate", **ids) is None
    assert value(t, "modelops_metric_threshold", metric="accuracy", bound="min", **ids) == 0.9
    assert value(t, "modelops_metric_threshold", metric="latency", bound="min", **ids) == 0.001
    assert value(t, "modelops_metric_threshold", metric="latency", bound="max", **ids) == 0.25
    assert value(t, "modelops_metric_threshold", metric="drift", bound="max", **ids) == 0.2
    assert value(t, "modelops_metric_threshold", metric="drift", bound="min", **ids) is None
    assert value(t, "modelops_degraded", **ids) == 0
    assert (
        value(t, "modelops_rollout_last_progress_timestamp_seconds", **ids)
        == datetime(2026, 11, 28, 12, 0, tzinfo=UTC).timestamp()
    )
    assert value(t, "modelops_rollout_progress_deadline_seconds", **ids) == 1800


def test_phase_moves_and_degraded_follows_the_condition() -> None:
    t = Telemetry()
    t.observe_deployment(NS, NAME, status())
    degraded = Condition(type="Degraded", status="True", reason="MetricsFailing")
    t.observe_deployment(NS, NAME, status(phase="Promoted", canary_weight=0, conditions=[degraded]))
    ids = {"namespace": NS, "name": NAME}
    assert value(t, "modelops_rollout_phase", phase="Progressing", **ids) == 0
    assert value(t, "modelops_rollout_phase", phase="Promoted", **ids) == 1
    phases = [v for (n, labels), v in samples(t).items() if n == "modelops_rollout_phase"]
    assert sorted(phases) == [0.0] * (len(phases) - 1) + [1.0]
    assert value(t, "modelops_degraded", **ids) == 1
    assert value(t, "modelops_monitoring_no_data", **ids) == 0


@pytest.mark.parametrize(
    ("condition", "degraded", "no_data"),
    [
        (Condition(type="Degraded", status="Unknown", reason="NoData"), 0, 1),
        (Condition(type="Degraded", status="True", reason="MetricsDegraded"), 1, 0),
        (Condition(type="Degraded", status="False", reason="MetricsHealthy"), 0, 0),
        (None, 0, 0),
    ],
)
def test_no_data_follows_the_degraded_condition_unknown_for_want_of_data(
    condition: Condition | None, degraded: int, no_data: int
) -> None:
    t = Telemetry()
    t.observe_deployment(NS, NAME, status(phase="Promoted", conditions=[condition] if condition else []))
    ids = {"namespace": NS, "name": NAME}
    assert (value(t, "modelops_degraded", **ids), value(t, "modelops_monitoring_no_data", **ids)) == (
        degraded,
        no_data,
    ), condition


def test_series_no_longer_in_status_or_spec_are_removed() -> None:
    t = Telemetry()
    t.observe_deployment(NS, NAME, status(), spec())
    ids = {"namespace": NS, "name": NAME}
    fewer_metrics = spec(analysis={"metrics": [{"name": "latency", "owner": "sre", "query": "l", "max": 0.3}]})
    t.observe_deployment(NS, NAME, status(analysis=AnalysisStatus(), monitoring=MonitoringStatus()), fewer_metrics)
    assert not [n for n, labels in samples(t) if n == "modelops_metric_value"]
    assert value(t, "modelops_metric_threshold", metric="accuracy", bound="min", **ids) == 0.5  # monitoring's now
    assert value(t, "modelops_metric_threshold", metric="latency", bound="min", **ids) is None
    assert value(t, "modelops_metric_threshold", metric="latency", bound="max", **ids) == 0.3


def test_counters_count() -> None:
    t = Telemetry()
    for result in ["Pass", "Pass", "Fail", "NoData", "Error"]:
        t.record_check(NS, NAME, "accuracy", result)
    t.record_rollout(NS, NAME, "RolledBack")
    t.record_rollout(NS, NAME, "RolledBack")
    ids = {"namespace": NS, "name": NAME, "metric": "accuracy"}
    assert value(t, "modelops_analysis_checks_total", result="Pass", **ids) == 2
    assert value(t, "modelops_analysis_checks_total", result="Fail", **ids) == 1
    assert value(t, "modelops_analysis_checks_total", result="NoData", **ids) == 1
    assert value(t, "modelops_rollouts_total", namespace=NS, name=NAME, outcome="RolledBack") == 2
    with pytest.raises(ValueError, match="Pending"):
        t.record_check(NS, NAME, "accuracy", "Pending")
    with pytest.raises(ValueError, match="unknown rollout outcome"):
        t.record_rollout(NS, NAME, "Exploded")


def test_retirement_phase() -> None:
    t = Telemetry()
    t.observe_retirement(NS, "old", ModelRetirementStatus(phase="Draining"))
    assert value(t, "modelops_retirement_phase", namespace=NS, name="old", phase="Draining") == 1
    assert value(t, "modelops_retirement_phase", namespace=NS, name="old", phase="Scheduled") == 0


def test_forget_removes_every_series_of_the_object_and_only_those() -> None:
    t = Telemetry()
    for name in (NAME, "other"):
        t.observe_deployment(NS, name, status(), spec())
        t.record_check(NS, name, "accuracy", "Pass")
        t.record_rollout(NS, name, "Promoted")
        t.observe_retirement(NS, name, ModelRetirementStatus())  # a retirement with the same name
    assert "modelops_analysis_checks_total" in names_for(t, NS, NAME)

    t.forget(NS, NAME, kind="ModelDeployment")
    assert names_for(t, NS, NAME) == {"modelops_retirement_phase"}
    t.forget(NS, NAME)
    assert names_for(t, NS, NAME) == set()
    assert len(names_for(t, NS, "other")) == len(METRIC_NAMES) - 3  # all but build info and reconcile metrics

    t.observe_deployment(NS, NAME, status())  # coming back works
    assert value(t, "modelops_canary_weight", namespace=NS, name=NAME) == 25


def test_reconcile_timing_and_errors() -> None:
    t = Telemetry()
    with t.reconcile("ModelDeployment"):
        pass
    with pytest.raises(RuntimeError), t.reconcile("ModelDeployment"):
        raise RuntimeError("boom")
    assert value(t, "modelops_reconcile_duration_seconds_count", kind="ModelDeployment") == 2
    assert value(t, "modelops_reconcile_errors_total", kind="ModelDeployment") == 1
    assert value(t, "modelops_reconcile_errors_total", kind="ModelRetirement") is None


# ------------------------------------------------------------------------------------------------ HTTP


def test_served_over_http() -> None:
    t = Telemetry()
    t.observe_deployment(NS, NAME, status())
    server = t.serve(0, addr="127.0.0.1")
    try:
        assert server.port > 0
        response = httpx.get(f"http://127.0.0.1:{server.port}/metrics")
        assert response.status_code == 200
        assert f'modelops_canary_weight{{name="{NAME}",namespace="{NS}"}} 25.0' in response.text
        assert "python_gc_objects_collected_total" not in response.text  # not the global registry
    finally:
        server.shutdown()
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{server.port}/metrics", timeout=1)


def test_raw_dicts_as_kopf_hands_them_over() -> None:
    t = Telemetry()
    raw_status = status(phase="Paused", canary_weight=50).to_k8s()
    assert "canaryWeight" in raw_status
    t.observe_deployment(NS, NAME, raw_status, spec().to_k8s())
    t.observe_retirement(NS, "old", {"phase": "Blocked"})
    assert value(t, "modelops_rollout_phase", namespace=NS, name=NAME, phase="Paused") == 1
    assert value(t, "modelops_canary_weight", namespace=NS, name=NAME) == 50
    assert value(t, "modelops_rollout_progress_deadline_seconds", namespace=NS, name=NAME) == 1800
    assert value(t, "modelops_retirement_phase", namespace=NS, name="old", phase="Blocked") == 1
