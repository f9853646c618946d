"""The Prometheus process manager and its fixtures, against the real binary (Debian package ``prometheus``)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
import yaml

from modelops.sandbox import prometheus as promsandbox
from modelops.sandbox.prometheus import (
    PrometheusError,
    PrometheusServer,
    ScrapeTarget,
    ensure_prometheus_binary,
    render_config,
)
from plugins.prometheus import Exporter, wait_for_value

# ------------------------------------------------------------------------------------------------ config


def test_config_groups_targets_by_job_with_labels_and_intervals() -> None:
    targets = [
        ScrapeTarget("model", "127.0.0.1:1001", labels={"namespace": "ml"}),
        ScrapeTarget("model", "127.0.0.1:1002"),
        ScrapeTarget("gateway", "127.0.0.1:1003", metrics_path="/stats"),
    ]
    config = render_config(targets, scrape_interval="2s", evaluation_interval="3s", rule_files=[Path("/r.yml")])
    assert config["global"] == {"scrape_interval": "2s", "evaluation_interval": "3s"}
    assert config["rule_files"] == ["/r.yml"]
    jobs = {c["job_name"]: c for c in config["scrape_configs"]}
    assert set(jobs) == {"model", "gateway"}
    assert jobs["model"]["static_configs"] == [
        {"targets": ["127.0.0.1:1001"], "labels": {"namespace": "ml"}},
        {"targets": ["127.0.0.1:1002"]},
    ]
    assert jobs["gateway"]["metrics_path"] == "/stats"


def test_same_job_with_two_paths_gets_two_distinct_job_names() -> None:
    targets = [ScrapeTarget("x", "127.0.0.1:1", metrics_path="/a"), ScrapeTarget("x", "127.0.0.1:2", "/b")]
    names = [c["job_name"] for c in render_config(targets)["scrape_configs"]]
    assert len(set(names)) == 2


def test_generated_config_passes_promtool(tmp_path: Path) -> None:
    server = PrometheusServer([ScrapeTarget("a", "127.0.0.1:9", labels={"namespace": "n"})], workdir=tmp_path)
    server._write_config()
    parsed = yaml.safe_load(server.config_path.read_text())
    assert parsed["scrape_configs"][0]["static_configs"][0]["labels"] == {"namespace": "n"}
    result = subprocess.run(
        ["promtool", "check", "config", str(server.config_path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr


# ------------------------------------------------------------------------------------------------ install


class _Apt:
    def __init__(self, binary: Path, results: Sequence[int], policy: Path) -> None:
        self.binary, self.results, self.policy = binary, list(results), policy
        self.calls: list[tuple[list[str], str | None, bool]] = []

    def __call__(self, argv: Sequence[str], env: Mapping[str, str]) -> int:
        self.calls.append((list(argv), env.get("DEBIAN_FRONTEND"), self.policy.exists()))
        code = self.results.pop(0)
        if code == 0 and "install" in argv:
            self.binary.write_text("#!/bin/sh\n")
        return code


@pytest.fixture
def no_prometheus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    missing = tmp_path / "usr-bin-prometheus"
    monkeypatch.setattr("shutil.which", lambda name: None)
    monkeypatch.setattr(promsandbox, "DEBIAN_BINARY", missing)
    return missing


def test_install_runs_apt_noninteractive_with_services_forbidden(
    no_prometheus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 0)
    policy = tmp_path / "policy-rc.d"
    apt = _Apt(no_prometheus, [100, 0, 0], policy)  # install fails (no lists), update, install again
    assert ensure_prometheus_binary(runner=apt, policy_rc_d=policy) == no_prometheus
    assert [c[0][:2] for c in apt.calls] == [["apt-get", "install"], ["apt-get", "update"], ["apt-get", "install"]]
    assert "--no-install-recommends" in apt.calls[0][0]
    assert all(frontend == "noninteractive" for _, frontend, _ in apt.calls)
    assert all(policy_present for _, _, policy_present in apt.calls), "service start must be forbidden during apt"
    assert not policy.exists(), "the temporary policy-rc.d must be removed"


def test_install_failure_and_non_root_are_clear_errors(
    no_prometheus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 0)
    apt = _Apt(no_prometheus, [1, 1], tmp_path / "p")
    with pytest.raises(PrometheusError, match="apt-get install prometheus failed"):
        ensure_prometheus_binary(runner=apt, policy_rc_d=tmp_path / "p")
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    with pytest.raises(PrometheusError, match="needs root"):
        ensure_prometheus_binary(runner=apt, policy_rc_d=tmp_path / "p")
    with pytest.raises(PrometheusError, match="not found"):
        ensure_prometheus_binary(install=False)


# ------------------------------------------------------------------------------------------------ real server


@pytest.mark.integration
def test_a_gauge_the_test_changes_is_read_back_through_the_query_api(
    prometheus: PrometheusServer, exporter: Exporter
) -> None:
    name = exporter.unique("fixture_gauge")
    gauge = exporter.gauge(name, labelnames=["model"])
    gauge.labels("iris").set(1.5)
    result = wait_for_value(prometheus, f'{name}{{model="iris"}}', 1.5)
    assert result[0]["metric"]["namespace"] == "tests"  # the target's static label
    gauge.labels("iris").set(-7.25)
    wait_for_value(prometheus, f'{name}{{model="iris"}}', -7.25)


@pytest.mark.integration
def test_the_session_server_reports_ready_and_its_target_up(prometheus: PrometheusServer) -> None:
    assert httpx.get(f"{prometheus.url}/-/ready").status_code == 200
    targets = httpx.get(f"{prometheus.url}/api/v1/targets").json()["data"]["activeTargets"]
    assert [t["health"] for t in targets] == ["up"]
    assert prometheus.url == f"http://127.0.0.1:{prometheus.port}"


@pytest.mark.integration
def test_stop_and_start_on_same_port_and_data_then_replace_targets(
    prometheus_factory: Callable[..., PrometheusServer], exporter_factory: Callable[[], Exporter]
) -> None:
    # Given a server scraping exporter a
    a, b = exporter_factory(), exporter_factory()
    gauge_a, gauge_b = a.gauge("restart_gauge"), b.gauge("restart_gauge")
    gauge_a.set(42)
    gauge_b.set(7)
    server = prometheus_factory([a.target(job="a", namespace="ml")])
    wait_for_value(server, 'restart_gauge{job="a",namespace="ml"}', 42)
    seen_at = time.time()
    port, pid = server.port, server.pid
    assert pid is not None

    # When it is stopped
    server.stop()
    # Then no process is left and nothing answers
    assert not server.running
    assert not psutil.pid_exists(pid)
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{server.url}/-/ready", timeout=1)

    # When it is started again
    server.start(wait_for_targets=False)
    # Then it is on the same port and still has the samples taken before the stop
    assert server.port == port
    old = server.query(f"restart_gauge @ {seen_at:.3f}")
    assert [float(s["value"][1]) for s in old] == [42.0]

    # When its targets are replaced (config rewritten, /-/reload)
    server.set_targets([b.target(job="b")])
    # Then only b is scraped
    assert {t["labels"]["job"] for t in _active_targets(server)} == {"b"}
    wait_for_value(server, 'restart_gauge{job="b"}', 7)


@pytest.mark.integration
def test_a_process_that_cannot_start_is_an_error_with_its_log(tmp_path: Path) -> None:
    server = PrometheusServer(extra_args=["--no-such-flag"], workdir=tmp_path, start_timeout=10)
    with pytest.raises(PrometheusError, match="exited before it was ready"):
        server.start()
    assert not server.running


@pytest.mark.integration
def test_waiting_for_an_unreachable_target_times_out_naming_it(
    prometheus_factory: Callable[..., PrometheusServer],
) -> None:
    server = prometheus_factory()
    dead = ScrapeTarget("dead", f"127.0.0.1:{promsandbox.free_port()}")
    with pytest.raises(PrometheusError, match=dead.address):
        server.set_targets([dead], timeout=1.5)


def _active_targets(server: PrometheusServer) -> list[dict[str, Any]]:
    targets: list[dict[str, Any]] = httpx.get(f"{server.url}/api/v1/targets").json()["data"]["activeTargets"]
    return targets
