"""The Helm chart: lint, render with three value sets, validate against Kubernetes 1.30, and check what it renders."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from pkg_support import (
    CHART,
    KUBE_VERSION,
    REPO,
    VALUE_SETS,
    container,
    find,
    helm,
    one,
    render,
    render_text,
    run,
    venv_tool,
)


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_helm_lint_strict(value_set: str) -> None:
    run(helm(), "lint", "--strict", str(CHART), *VALUE_SETS[value_set])


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_rendered_objects_validate_against_kubernetes(value_set: str, tmp_path: Path) -> None:
    rendered = tmp_path / f"{value_set}.yaml"
    rendered.write_text(render_text(value_set))
    proc = run(venv_tool("kubernetes-validate"), "-k", KUBE_VERSION, "--strict", str(rendered))
    # Kinds without a schema (CRD-backed: ServiceMonitor, PrometheusRule, ClusterKopfPeering) only warn;
    # make sure nothing else was skipped that way.
    skipped = {
        line.split("kind ")[1].split(" ")[0] for line in proc.stdout.splitlines() if "Couldn't find schema" in line
    }
    assert skipped <= {"ServiceMonitor", "PrometheusRule", "ClusterKopfPeering", "KopfPeering"}, proc.stdout
    passed = sum("passed for resource" in line for line in proc.stdout.splitlines())
    assert passed == len([o for o in render(value_set, crds=True) if o["kind"] not in skipped])


@pytest.mark.parametrize(
    ("flags", "error"),
    [
        (["--set", "replicaCount=-1"], "replicaCount"),
        (["--set", "image.pullPolicy=Sometimes"], "pullPolicy"),
        (["--set", "logFormat=xml"], "logFormat"),
        (["--set", "watchNamespaces[0]=Not_A_Namespace"], "watchNamespaces"),
        (["--set", "securityContext.readOnlyRootFilesystem=false"], "readOnlyRootFilesystem"),
        (["--set", "prometheus.url=prometheus:9090"], "prometheus.url"),
        (["--set", "replicaCuont=2"], "replicaCuont"),
        (["--set", "prometheus.auth.existingSecret=s", "--set", "prometheus.auth.type=basic"], "username"),
    ],
)
def test_schema_rejects_bad_values(flags: list[str], error: str) -> None:
    lint = run(helm(), "lint", "--strict", str(CHART), *flags, check=False)
    assert lint.returncode != 0
    assert error in lint.stdout + lint.stderr
    template = run(helm(), "template", "t", str(CHART), *flags, check=False)
    assert template.returncode != 0
    assert error in template.stderr


def test_chart_crds_are_the_generated_crds() -> None:
    chart_crds = {p.name: p.read_bytes() for p in (CHART / "crds").glob("*.yaml")}
    source = {p.name: p.read_bytes() for p in (REPO / "crds").glob("*.yaml")}
    assert source, "crds/ is empty"
    for name, content in source.items():
        assert chart_crds.get(name) == content, f"charts/modelops-operator/crds/{name} differs from crds/{name}"
    # The only extra file is kopf's peering CRDs, which the operator needs with --peering.
    assert set(chart_crds) - set(source) == {"kopf.dev_peerings.yaml"}


def test_helm_installs_exactly_the_crd_files() -> None:
    """What helm sends as CRDs (crds/ directory) is the content of crds/ plus kopf's peering CRDs."""
    crds = [o for o in render(crds=True) if o["kind"] == "CustomResourceDefinition"]
    expected = [
        doc for p in sorted((CHART / "crds").glob("*.yaml")) for doc in yaml.safe_load_all(p.read_text()) if doc
    ]
    assert sorted(crds, key=lambda o: o["metadata"]["name"]) == sorted(expected, key=lambda o: o["metadata"]["name"])
    names = {o["metadata"]["name"] for o in crds}
    assert {"modeldeployments.modelops.io", "modelretirements.modelops.io"} <= names


def test_default_install_is_cluster_wide_standalone_and_hardened() -> None:
    objects = render()
    deployment = one(objects, "Deployment")
    c = container(objects)
    assert c["image"] == "ghcr.io/modelops/modelops-operator:0.1.0"
    assert "--all-namespaces" in c["args"]
    assert "--standalone" in c["args"]
    assert not [a for a in c["args"] if a.startswith(("--namespace", "--peering", "--prometheus-"))]
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate", "two standalone operators must never overlap"
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert sc["seccompProfile"]["type"] == "RuntimeDefault"
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    assert mounts == {"/tmp": "tmp"}
    assert {v["name"]: v for v in pod["volumes"]}["tmp"]["emptyDir"]
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http-health"}
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"http-metrics": 8080, "http-health": 8081}
    assert "--metrics-port=8080" in c["args"]
    assert "--health-port=8081" in c["args"]
    assert [o["kind"] for o in find(objects, "Role")] == []
    assert not find(objects, "PodDisruptionBudget")
    assert not find(objects, "ClusterKopfPeering")
    service = one(objects, "Service")
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]


def operator_cluster_role(objects: list[dict[str, Any]]) -> dict[str, Any]:
    """The one ClusterRole bound to the operator; the others are the users' ones, aggregated into Kubernetes'
    edit/admin/view roles and bound to nobody by the chart."""
    bound = {b["roleRef"]["name"] for b in find(objects, "ClusterRoleBinding")}
    roles = [r for r in find(objects, "ClusterRole") if r["metadata"]["name"] in bound]
    assert len(roles) == 1, roles
    users = [r for r in find(objects, "ClusterRole") if r["metadata"]["name"] not in bound]
    assert all(any(k.startswith("rbac.authorization.k8s.io/aggregate-to-") for k in r["metadata"]["labels"])
               for r in users), users  # fmt: skip
    return roles[0]


def test_namespaced_install_gets_roles_in_the_watched_namespaces_only() -> None:
    objects = render("namespaced")
    c = container(objects)
    assert [a for a in c["args"] if a.startswith("--namespace")] == ["--namespace=team-a", "--namespace=team-b"]
    assert "--all-namespaces" not in c["args"]
    roles = find(objects, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    bindings = find(objects, "RoleBinding")
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["team-a", "team-b"]
    # The only cluster-wide permission of the operator left: kopf reading CRDs. (The other ClusterRoles are the
    # users' ones, aggregated into edit/admin/view, bound to nobody by the chart.)
    cluster_role = operator_cluster_role(objects)
    assert cluster_role["rules"] == [
        {"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"], "verbs": ["list", "watch"]}
    ]
    # Prometheus: bearer token from the secret, CA from a ConfigMap the chart makes.
    assert "--prometheus-url=https://prometheus.monitoring.svc:9091" in c["args"]
    assert "--prometheus-token-file=/etc/modelops/prometheus-auth/token" in c["args"]
    assert "--prometheus-ca-file=/etc/modelops/prometheus-ca/ca.crt" in c["args"]
    ca = next(m for m in find(objects, "ConfigMap") if "ca.crt" in (m.get("data") or {}))
    assert "BEGIN CERTIFICATE" in ca["data"]["ca.crt"]
    volumes = {v["name"]: v for v in one(objects, "Deployment")["spec"]["template"]["spec"]["volumes"]}
    assert volumes["prometheus-auth"]["secret"]["secretName"] == "modelops-prometheus"
    assert volumes["prometheus-ca"]["configMap"]["name"] == ca["metadata"]["name"]


def test_ha_with_monitoring() -> None:
    objects = render("ha-monitoring")
    deployment = one(objects, "Deployment")
    c = container(objects)
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    assert "--peering=modelops-ha" in c["args"]
    assert "--standalone" not in c["args"]
    assert "--prometheus-username=modelops" in c["args"]
    assert "--prometheus-password-file=/etc/modelops/prometheus-auth/password" in c["args"]
    assert one(objects, "ClusterKopfPeering")["metadata"]["name"] == "modelops-ha"
    peering_rules = [r for r in operator_cluster_role(objects)["rules"] if r["apiGroups"] == ["kopf.dev"]]
    assert peering_rules == [
        {"apiGroups": ["kopf.dev"], "resources": ["clusterkopfpeerings"], "verbs": ["list", "watch", "patch", "get"]}
    ]
    pdb = one(objects, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    monitor = one(objects, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["jobLabel"] == "app.kubernetes.io/name"
    service = one(objects, "Service")
    # The alerts select job="modelops-operator": the ServiceMonitor's job label must produce that value.
    assert service["metadata"]["labels"][monitor["spec"]["jobLabel"]] == "modelops-operator"
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]
    rule = one(objects, "PrometheusRule")
    source = yaml.safe_load((REPO / "monitoring" / "modelops.rules.yaml").read_text())
    assert rule["spec"]["groups"] == source["groups"]
    dashboard = next(m for m in find(objects, "ConfigMap") if m["metadata"]["name"].endswith("-dashboard"))
    assert dashboard["metadata"]["namespace"] == "monitoring"
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["modelops-dashboard.json"]) == json.loads(
        (REPO / "monitoring" / "modelops-dashboard.json").read_text()
    )


def test_more_than_one_replica_forces_peering() -> None:
    objects = render("default", "--set", "replicaCount=3")
    assert "--peering=modelops" in container(objects)["args"]
    assert one(objects, "ClusterKopfPeering")["metadata"]["name"] == "modelops"


def test_namespaced_ha_uses_a_kopf_peering_per_namespace() -> None:
    objects = render("namespaced", "--set", "replicaCount=2")
    peerings = find(objects, "KopfPeering")
    assert sorted(p["metadata"]["namespace"] for p in peerings) == ["team-a", "team-b"]
    for role in find(objects, "Role"):
        assert {
            "apiGroups": ["kopf.dev"],
            "resources": ["kopfpeerings"],
            "verbs": ["list", "watch", "patch", "get"],
        } in role["rules"]


def test_rbac_and_service_account_can_be_left_to_the_platform() -> None:
    objects = render(
        "default",
        "--set",
        "rbac.create=false",
        "--set",
        "serviceAccount.create=false",
        "--set",
        "serviceAccount.name=ops",
    )
    kinds = {o["kind"] for o in objects}
    assert not kinds & {"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "ServiceAccount"}
    assert one(objects, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "ops"


def _notes(tmp_path: Path, *flags: str) -> str:
    """NOTES.txt as helm renders it: `helm install` needs a cluster, so a scratch copy of the chart wraps the
    same text in a ConfigMap that `helm template` can print."""
    chart = tmp_path / "chart"
    shutil.copytree(CHART, chart)
    notes = (CHART / "templates" / "NOTES.txt").read_text()
    (chart / "templates" / "zz-notes.yaml").write_text(
        '{{- define "zz.notes" }}' + notes + "{{ end }}\n"
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\n"
        'data:\n  notes: {{ include "zz.notes" . | toYaml | indent 4 }}\n'
    )
    out = run(helm(), "template", "modelops", str(chart), "-n", "ops", "--show-only", "templates/zz-notes.yaml", *flags)
    text: str = yaml.safe_load(out.stdout)["data"]["notes"]
    return text


def test_notes_say_what_was_installed(tmp_path: Path) -> None:
    default = _notes(tmp_path / "a")
    assert "all namespaces" in default
    assert "standalone" in default
    assert "prometheus.url is empty" in default
    assert "kubectl -n ops rollout status deployment/modelops-modelops-operator" in default
    namespaced = _notes(tmp_path / "b", *VALUE_SETS["namespaced"])
    assert "namespaces team-a, team-b" in namespaced
    assert "prometheus.url is empty" not in namespaced


def test_chart_version_matches_the_package() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    pyproject = (REPO / "pyproject.toml").read_text()
    assert f'version = "{chart["appVersion"]}"' in pyproject


def test_packaged_chart_carries_crds_and_monitoring_files(tmp_path: Path) -> None:
    """`helm package` (what a chart repository serves) contains the CRDs and the rule/dashboard copies,
    and leaves out the ci/ value files."""
    import tarfile

    run(helm(), "package", str(CHART), "--destination", str(tmp_path))
    (archive,) = tmp_path.glob("modelops-operator-*.tgz")
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
        crd = tar.extractfile("modelops-operator/crds/modelops.io_modeldeployments.yaml")
        assert crd is not None
        assert crd.read() == (REPO / "crds" / "modelops.io_modeldeployments.yaml").read_bytes()
    assert {
        "modelops-operator/crds/modelops.io_modelretirements.yaml",
        "modelops-operator/crds/kopf.dev_peerings.yaml",
        "modelops-operator/files/modelops.rules.yaml",
        "modelops-operator/files/modelops-dashboard.json",
        "modelops-operator/values.schema.json",
    } <= names
    assert not [n for n in names if "/ci/" in n]
