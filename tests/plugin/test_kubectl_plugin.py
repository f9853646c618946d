"""``kubectl modelops`` for real: the cluster's kubectl finds the console script on PATH, which talks to the local
cluster (as its admin, a human with every right, or as a user the test gives fewer) while the operator runs on it as
the chart's ServiceAccount, with a real Prometheus."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from integration.live import Cluster, eventually, forbidden
from integration.test_operator import Given, model_deployment, route
from modelops.adapters.kube import MODELDEPLOYMENTS, MODELREQUESTS, MODELRETIREMENTS
from plugins.cluster import KubeCluster

pytestmark = pytest.mark.integration

VENV_BIN = Path(sys.executable).parent
LONG_STEPS = [{"weight": 10, "pause": "10m"}, {"weight": 50, "pause": "10m"}, {"weight": 100}]


class Kubectl:
    """Runs ``kubectl modelops ...`` as a user would: kubectl on PATH finds ``kubectl-modelops`` in the venv."""

    def __init__(self, kubectl: Path, kubeconfig: Path, namespace: str) -> None:
        self.kubectl = str(kubectl)
        self.kubeconfig = kubeconfig
        self.namespace = namespace
        self.env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
        self.env.pop("KUBECONFIG", None)

    def argv(self, *args: str) -> list[str]:
        return [self.kubectl, "modelops", *args, "--kubeconfig", str(self.kubeconfig), "-n", self.namespace]

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(self.argv(*args), env=self.env, capture_output=True, text=True, timeout=60)
        if check:
            assert done.returncode == 0, (args, done.stdout, done.stderr)
        return done

    def as_user(self, kube: KubeCluster, user: str, groups: list[str]) -> Kubectl:
        """The same command as ``user`` in ``groups`` (a client certificate of the local cluster), an editor of the
        namespace through Kubernetes' ``edit`` role (which the chart's roles extend to modelops objects)."""
        kubeconfig = kube.cluster.editor_kubeconfig(user, groups, self.namespace)
        return Kubectl(Path(self.kubectl), kubeconfig, self.namespace)

    def fails(self, *args: str) -> str:
        """The one-line error of a command that must fail with exit code 1."""
        done = self(*args, check=False)
        assert done.returncode == 1, (args, done.stdout, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert lines[0].startswith("error: "), lines
        return lines[0]


def deploy(given: Given, name: str, steps: list[dict[str, Any]], approvals: list[str] = ()) -> None:  # type: ignore[assignment]
    """``name`` at v1, promoted, with ``steps`` for the next rollout (and teams that must approve)."""
    r = route("gatewayAPI", name)
    assert r is not None
    given.api.create(r[0], given.ns, r[1])
    given.errors("v1", 0.0)
    body = model_deployment(name, "v1", "gatewayAPI", given.metric)
    body["spec"]["rollout"]["steps"] = steps
    if approvals:
        body["spec"]["approvals"] = [{"team": t} for t in approvals]
    given.api.create(MODELDEPLOYMENTS, given.ns, body)
    eventually(lambda: given.status(name).get("phase") == "Promoted", timeout=90)


@pytest.fixture
def given(plugin_cluster: Cluster, kube: KubeCluster) -> Iterator[Given]:
    """A namespace of the test's own; closed after it, and the operator's user got no 403 meanwhile."""
    log = kube.requests()
    given = Given(plugin_cluster)
    yield given
    given.close()
    refused = forbidden(log, kube.operator_user)
    assert refused == [], f"the API server refused the operator (the chart does not grant it): {refused}"


@pytest.fixture
def kubectl(given: Given, kube: KubeCluster) -> Kubectl:
    """``kubectl modelops`` as the cluster's admin."""
    return Kubectl(kube.cluster.bin / "kubectl", kube.kubeconfig, given.ns)


def rolling_out(given: Given, name: str = "shop") -> None:
    given.errors("v2", 0.0)
    given.new_version(name, "v2")
    eventually(lambda: given.status(name).get("canaryWeight") == 10, timeout=60)
    eventually(lambda: given.status(name)["analysis"]["passedChecks"] >= 1, timeout=30)


def test_the_plugin_is_found_by_kubectl(kubectl: Kubectl) -> None:
    done = subprocess.run(
        [kubectl.kubectl, "plugin", "list"], env=kubectl.env, capture_output=True, text=True, timeout=60
    )
    assert str(VENV_BIN / "kubectl-modelops") in done.stdout


def test_list_status_history_and_promote(given: Given, kubectl: Kubectl) -> None:
    deploy(given, "shop", LONG_STEPS)
    rolling_out(given)

    listed = kubectl("list").stdout.splitlines()
    assert listed[0].split() == ["NAME", "PHASE", "STABLE", "CANDIDATE", "WEIGHT", "STEP", "AGE"]
    assert listed[1].split()[:6] == ["shop", "Progressing", "v1", "v2", "10%", "1/3"]
    everywhere = [line.split()[:3] for line in kubectl("list", "-A").stdout.splitlines()]
    assert everywhere[0] == ["NAMESPACE", "NAME", "PHASE"]
    assert [given.ns, "shop", "Progressing"] in everywhere

    status = kubectl("status", "shop").stdout
    assert "Phase:       Progressing" in status
    assert "Weights:     v1 90%  v2 10%" in status
    step_line = next(line for line in status.splitlines() if line.startswith("Step:"))
    assert step_line.startswith("Step:        1/3 at weight 10, 9m"), step_line
    assert step_line.endswith("s left"), step_line
    metric_row = next(line for line in status.splitlines() if line.strip().startswith("error-rate"))
    assert metric_row.split()[:7] == ["error-rate", "engineering", "0", "-", "0.05", "-", "Pass"], metric_row
    assert any(line.split()[:2] == ["Progressing", "True"] for line in status.splitlines()), status

    as_json = json.loads(kubectl("status", "shop", "-o", "json").stdout)
    assert as_json["status"]["canaryWeight"] == 10
    as_yaml = yaml.safe_load(kubectl("-o", "yaml", "status", "shop").stdout)
    assert as_yaml["status"]["candidateVersion"] == "v2"

    promoted = kubectl("promote", "shop")
    assert "promote applied: v2 promoted (shop-promote-" in promoted.stdout
    assert given.status("shop")["stableVersion"] == "v2"
    assert given.status("shop")["lastRequest"]["by"] == "admin"  # the name the API server authenticated

    history = kubectl("history", "shop").stdout
    assert any(line.split()[2:5] == ["rollout", "v2", "Promoted"] for line in history.splitlines()), history
    assert any(line.split()[2:5] == ["request", "promote", "admin"] for line in history.splitlines()), history
    as_json = json.loads(kubectl("history", "shop", "-o", "json").stdout)
    assert [h["outcome"] for h in as_json["history"]] == ["Initial", "Promoted"]

    assert kubectl.fails("promote", "shop") == (
        "error: shop: cannot promote: no candidate is serving traffic (phase Promoted)"
    )


def test_pause_resume_abort_and_what_does_not_fit_the_phase(given: Given, kubectl: Kubectl) -> None:
    deploy(given, "shop", LONG_STEPS)
    rolling_out(given)
    assert "pause applied" in kubectl("pause", "shop").stdout
    assert given.status("shop")["paused"] is True
    assert kubectl.fails("pause", "shop") == "error: shop: cannot pause: the rollout of v2 is already paused"
    resumed = json.loads(kubectl("resume", "shop", "-o", "json").stdout)
    assert resumed["applied"] is True
    assert resumed["message"] == "rollout of v2 resumed"
    assert resumed["request"].startswith("shop-resume-")
    assert resumed["by"] == "admin"
    assert given.status("shop")["paused"] is False
    assert "abort applied: rollout of v2 aborted" in kubectl("abort", "shop").stdout
    assert given.status("shop")["phase"] == "RolledBack"

    assert kubectl.fails("promote", "shop") == (
        "error: shop: cannot promote: the rollout was rolled back (phase RolledBack); nothing is rolling out"
    )
    assert kubectl.fails("abort", "shop") == "error: shop: cannot abort: nothing is rolling out (phase RolledBack)"
    # sent anyway: the operator's own verdict is reported
    refused = kubectl.fails("promote", "shop", "--force")
    assert refused.startswith("error: shop: the operator refused promote (shop-promote-"), refused
    assert refused.endswith("): cannot promote in phase RolledBack"), refused
    assert given.status("shop")["lastRequest"]["result"].startswith("Rejected")
    name = refused.split("(", 1)[1].split(")", 1)[0]
    answer = given.api.get(MODELREQUESTS, given.ns, name)
    assert answer is not None
    assert answer["status"]["phase"] == "Refused"
    assert answer["status"]["message"] == "cannot promote in phase RolledBack"

    written = kubectl("retry", "shop", "--no-wait").stdout
    assert written.startswith("modelrequest.modelops.io/shop-retry-"), written
    assert written.rstrip().endswith(" created: retry of shop"), written
    eventually(lambda: given.status("shop")["lastRequest"]["result"].startswith("Accepted"), timeout=30)


def test_approve_while_watching(given: Given, kubectl: Kubectl, kube: KubeCluster) -> None:
    deploy(given, "shop", [{"weight": 10, "pause": "1s"}, {"weight": 100}], approvals=["risk"])
    given.errors("v2", 0.0)
    given.new_version("shop", "v2")
    eventually(lambda: given.status("shop").get("phase") == "Paused", timeout=60)
    watch = subprocess.Popen(
        kubectl.argv("watch", "shop", "--interval", "0.2", "--max-duration", "50"),
        env=kubectl.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert kubectl.fails("approve", "shop", "--team", "legal") == (
            "error: shop: cannot approve: team 'legal' is not among the approvers (risk)"
        )
        assert kubectl.fails("promote", "shop") == "error: shop: cannot promote: awaiting approval from risk"
        status = kubectl("status", "shop").stdout
        assert any(line.split()[:2] == ["risk", "waiting"] for line in status.splitlines()), status
        # The admin may do anything RBAC covers, but it is not in the risk team's group: the API server's
        # admission policy refuses its approval, in its own words.
        refused = kubectl.fails("approve", "shop", "--team", "risk")
        assert refused.startswith("error: shop: the API server refused the approve: "), refused
        assert "admin may not approve for team risk: approvers are members of risk-approvers" in refused, refused
        assert given.status("shop").get("approvals", []) == []
        rita = kubectl.as_user(kube, "rita", ["risk-approvers"])
        assert "risk approved v2" in rita("approve", "shop", "--team", "risk").stdout
        out, err = watch.communicate(timeout=55)
    finally:
        watch.kill()
    assert watch.returncode == 0, err
    phases = [line.split()[1] for line in out.splitlines()]
    assert phases[0] == "Paused", out
    assert phases[-1] == "Promoted", out
    assert given.status("shop")["approvals"][0]["by"] == "rita"


def test_retire_writes_a_model_retirement(given: Given, kubectl: Kubectl) -> None:
    deploy(given, "shop", LONG_STEPS)
    deploy(given, "shop-next", LONG_STEPS)
    assert kubectl("retire", "shop", "--replacement", "shop-next", "--after", "90d").stdout.strip() == (
        "modelretirement.modelops.io/shop-retirement created"
    )
    obj = given.api.get(MODELRETIREMENTS, given.ns, "shop-retirement")
    assert obj is not None
    assert obj["spec"]["modelDeployment"] == "shop"
    assert obj["spec"]["replacement"] == "shop-next"
    assert obj["spec"]["afterReplacementPromoted"] == "90d"
    assert kubectl.fails("retire", "shop", "--replacement", "shop-next", "--after", "90d") == (
        f'error: modelretirement "shop-retirement" already exists in namespace "{given.ns}"'
    )
    out = kubectl("retire", "shop", "--not-before", "2099-06-30", "--retirement-name", "later", "-o", "json").stdout
    assert json.loads(out)["spec"]["notBefore"].startswith("2099-06-30T00:00:00")
    assert kubectl.fails("retire", "shop", "--replacement", "nope", "--after", "1d") == (
        f'error: modelretirement "nope" not found in namespace "{given.ns}"'.replace(
            "modelretirement", "modeldeployment"
        )
    )


def test_not_found_forbidden_and_context(given: Given, kubectl: Kubectl, kube: KubeCluster, tmp_path: Path) -> None:
    assert kubectl.fails("status", "nope") == f'error: modeldeployment "nope" not found in namespace "{given.ns}"'
    # a user whose Role lets them read the ModelDeployment "shop" only, as the API server's RBAC enforces it
    ns = f"--namespace={given.ns}"
    kube.cluster.kubectl("create", "role", "shop-reader", "--verb=get", "--resource=modeldeployments.modelops.io",
                         "--resource-name=shop", ns)  # fmt: skip
    kube.cluster.kubectl("create", "rolebinding", "shop-reader", "--role=shop-reader", "--user=viewer", ns)
    viewer = Kubectl(Path(kubectl.kubectl), kube.cluster.user_kubeconfig("viewer", "viewer"), given.ns)
    refused = viewer.fails("status", "secret")
    assert refused.startswith(
        f"error: forbidden: you may not access modeldeployment \"secret\" in namespace '{given.ns}'"
    ), refused
    assert 'User "viewer" cannot get resource "modeldeployments"' in refused, refused
    # what the Role grants, the same user gets
    deploy(given, "shop", LONG_STEPS)
    eventually(lambda: viewer("status", "shop", "-o", "json", check=False).returncode == 0, timeout=30)
    assert json.loads(viewer("status", "shop", "-o", "json").stdout)["metadata"]["name"] == "shop"
    # the namespace of the chosen context is used when -n is not given
    config = yaml.safe_load(Path(kube.kubeconfig).read_text())
    config["contexts"].append({"name": "team", "context": {**config["contexts"][0]["context"], "namespace": given.ns}})
    (tmp_path / "config").write_text(yaml.safe_dump(config))
    argv = [kubectl.kubectl, "modelops", "list", "--kubeconfig", str(tmp_path / "config"), "--context", "team"]
    done = subprocess.run(argv, env=kubectl.env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[1].split()[:2] == ["shop", "Promoted"]
    argv[-1] = "missing"
    done = subprocess.run(argv, env=kubectl.env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.startswith("error: cannot load the kubeconfig"), done.stderr
