"""Alerts (promtool check + unit tests) and the dashboard: every query reads only metrics the operator exports."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml
from pkg_support import CHART, MONITORING, run

from modelops.telemetry import METRIC_NAMES, Telemetry

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
RULES = MONITORING / "modelops.rules.yaml"
RULE_TESTS = MONITORING / "tests" / "modelops.rules.test.yaml"
DASHBOARD = MONITORING / "modelops-dashboard.json"
#: Grafana's built-in variables, replaced by a value of the right type before parsing.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "6h"}


def exported_series() -> set[str]:
    """Series names the operator exports: METRIC_NAMES, plus _bucket/_sum/_count of its histograms
    (the types come from the operator's real registry), plus Prometheus' own `up`."""
    histograms = {f.name for f in Telemetry().registry.collect() if f.type == "histogram"}
    assert histograms, "the operator's registry has no histogram; the reconcile-duration metric is one"
    names = set(METRIC_NAMES) | {"up"}
    for h in histograms:
        assert h in METRIC_NAMES
        names |= {f"{h}_bucket", f"{h}_sum", f"{h}_count"}
    return names


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects, from its syntax tree (promql-parser).

    >>> sorted(metric_names('sum by (le) (rate(a_bucket{x="1"}[5m])) / on(x) group_left b'))
    ['a_bucket', 'b']
    """
    for var, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(var, value)
    names: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            if node.name:
                names.add(node.name)
            for m in node.matchers.matchers:
                if m.name == "__name__":
                    names.add(m.value)
        elif isinstance(node, promql_parser.MatrixSelector):
            walk(node.vector_selector)
        elif isinstance(node, promql_parser.Call):
            for arg in node.args:
                walk(arg)
        elif isinstance(node, promql_parser.BinaryExpr):
            walk(node.lhs)
            walk(node.rhs)
        elif isinstance(node, promql_parser.AggregateExpr):
            walk(node.expr)
            if node.param is not None:
                walk(node.param)
        elif isinstance(node, promql_parser.ParenExpr | promql_parser.UnaryExpr | promql_parser.SubqueryExpr):
            walk(node.expr)

    walk(promql_parser.parse(expr))
    return names


def _dashboard_queries(dashboard: dict[str, Any]) -> list[str]:
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    exprs += [
        t["expr"] for row in dashboard["panels"] for panel in row.get("panels", []) for t in panel.get("targets", [])
    ]
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            match = re.fullmatch(r"label_values\((.+),\s*\w+\)", query)
            assert match, f"variable {var['name']}: unexpected query {query}"
            exprs.append(match.group(1))
    return exprs


def _rule_exprs(path: Path) -> list[str]:
    groups = yaml.safe_load(path.read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def test_metric_names_sees_every_selector() -> None:
    assert metric_names("up") == {"up"}
    assert metric_names('absent(up{job="x"} == 1)') == {"up"}
    assert metric_names("histogram_quantile(0.9, sum by (le) (rate(h_bucket[$__rate_interval])))") == {"h_bucket"}
    assert metric_names("time() - max by (a) (t) > on (a) d and on (a) (p == 1)") == {"t", "d", "p"}
    assert metric_names('{__name__="x"}') == {"x"}
    assert metric_names("-max_over_time(y[5m:1m])") == {"y"}
    assert metric_names("count(z) or vector(0)") == {"z"}


def test_promtool_check_rules() -> None:
    out = run(PROMTOOL, "check", "rules", str(RULES)).stdout
    assert "SUCCESS" in out


def test_promtool_rule_unit_tests() -> None:
    run(PROMTOOL, "test", "rules", str(RULE_TESTS))


@pytest.mark.parametrize("alert", ["ModelDegraded", "ModelMonitoringNoData"])
def test_rule_unit_tests_can_fail(tmp_path: Path, alert: str) -> None:
    """Dropping the `for:` of an alert must break its unit test (the blip would fire)."""
    rules = yaml.safe_load(RULES.read_text())
    dropped = 0
    for group in rules["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == alert:
                del rule["for"]
                dropped += 1
    assert dropped == 1, f"no alert {alert} in {RULES}"
    (tmp_path / "tests").mkdir()
    (tmp_path / "modelops.rules.yaml").write_text(yaml.safe_dump(rules))
    shutil.copy(RULE_TESTS, tmp_path / "tests" / RULE_TESTS.name)
    proc = run(PROMTOOL, "test", "rules", str(tmp_path / "tests" / RULE_TESTS.name), check=False)
    assert proc.returncode != 0
    assert alert in proc.stdout + proc.stderr


def test_every_alert_has_a_unit_test() -> None:
    alerts = {rule["alert"] for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]}
    tested = {
        case["alertname"]
        for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]
        for case in test["alert_rule_test"]
    }
    assert alerts == tested
    assert {
        "ModelRolledBack",
        "ModelRolloutStuck",
        "ModelDegraded",
        "ModelMonitoringNoData",
        "ModelOpsOperatorDown",
        "ModelOpsReconcileErrors",
    } <= alerts


def test_alerts_read_only_exported_metrics() -> None:
    exported = exported_series()
    for expr in _rule_exprs(RULES):
        assert metric_names(expr) <= exported, expr


def test_dashboard_reads_only_exported_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exported = exported_series()
    queries = _dashboard_queries(dashboard)
    assert len(queries) >= 15
    used: set[str] = set()
    for expr in queries:
        names = metric_names(expr)
        assert names, f"no metric in {expr}"
        assert names <= exported, f"{expr} reads {names - exported}, which the operator does not export"
        used |= names
    # The dashboard shows every family the operator exports.
    assert set(METRIC_NAMES) - used - {"modelops_reconcile_duration_seconds"} == set()


def test_dashboard_is_importable() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"]
    assert dashboard["title"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}


@pytest.mark.parametrize("name", ["modelops.rules.yaml", "modelops-dashboard.json"])
def test_chart_copies_are_the_sources(name: str) -> None:
    assert (CHART / "files" / name).read_bytes() == (MONITORING / name).read_bytes()
