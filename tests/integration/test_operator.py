"""The operator against the local cluster and a real Prometheus, read as Given / When / Then.

The operator runs as the chart's ServiceAccount; its model servers (``model_server.py``) and gate Jobs run as
processes of the node agent, started by the real Deployment, ReplicaSet and Job controllers.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from modelops.adapters.kube import (
    DEPLOYMENTS,
    DESTINATIONRULES,
    HTTPROUTES,
    JOBS,
    MODELDEPLOYMENTS,
    MODELREQUESTS,
    MODELRETIREMENTS,
    PODS,
    SERVICES,
    VIRTUALSERVICES,
    Obj,
    Resource,
    RestKubeApi,
    owner_labels,
    owner_reference,
)
from modelops.adapters.kube import EVENTS as KUBE_EVENTS
from modelops.adapters.routers import VirtualServiceRouter, router_for
from modelops.adapters.routers.istio import build_destination_rule, subset
from modelops.api.deployment import ModelDeployment
from modelops.cli.plugin_view import request_body
from modelops.sandbox.install import SANDBOX_APPROVERS
from plugins.cluster import KubeCluster, RequestLog

from .live import MODEL_SERVER, Cluster, eventually

pytestmark = pytest.mark.integration
_metrics = itertools.count()


# ---------------------------------------------------------------------------------------------- builders


#: a gate's Job: writes, as its termination message, the results ``$GATE_RESULTS`` holds for ``$MODEL_VERSION``
GATE_SCRIPT = (
    "import json, os, pathlib; results = json.loads(os.environ['GATE_RESULTS']); "
    "result = results.get(os.environ['MODEL_VERSION'], {'metrics': {}}); "
    "pathlib.Path(os.environ['TERMINATION_LOG']).write_text(json.dumps(result))"
)


def server(replicas: int, not_ready: Sequence[str] = ()) -> Obj:
    """``spec.server``: the tests' model server, whose readiness fails for ever for the versions in ``not_ready``."""
    return {
        "image": "example/server:1",
        "command": ["python", str(MODEL_SERVER)],
        "port": 8080,
        "readinessPath": "/healthz",
        "replicas": replicas,
        "env": [{"name": "NOT_READY_VERSIONS", "value": ",".join(not_ready)}],
    }


def model_deployment(
    name: str,
    version: str,
    router: str,
    metric: str,
    *,
    not_ready: Sequence[str] = (),
    progress_deadline: str = "2m",
    host: str | None = None,
    **rollout: Any,
) -> Obj:
    """``host``: the istio router's ``host`` (host mode: versions are subsets of it)."""
    traffic: dict[str, Any] = {"router": router}
    if router == "gatewayAPI":
        # No Gateway controller serves these routes (their parent "public" does not exist): nothing will accept
        # them. The Gateway's acceptance is shown with Traefik in tests/e2e.
        traffic["gatewayAPI"] = {"httpRoute": name, "ruleName": "model", "waitForAcceptance": False}
    elif router == "istio":
        traffic["istio"] = {"virtualService": name, "routeName": "model"} | ({"host": host} if host else {})
    else:
        traffic["replicas"] = {"service": name}
    return {
        "apiVersion": "modelops.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {
            "model": {"name": name, "version": version, "uri": f"file:///models/{name}/{version}.pkl"},
            "server": server(4 if router == "replicas" else 1, not_ready),
            "traffic": traffic,
            "rollout": {
                "steps": [{"weight": 10, "pause": "2s"}, {"weight": 50, "pause": "2s"}, {"weight": 100}],
                "progressDeadline": progress_deadline,
                "scaleDownDelay": "1s",
                "analysis": {
                    "interval": "1s",
                    "failureLimit": 1,
                    "onMetricsUnavailable": "Hold",
                    "maxUnavailableChecks": 1000,
                    "metrics": [
                        {
                            "name": "error-rate",
                            "owner": "engineering",
                            "max": 0.05,
                            "query": f'max({metric}{{namespace="{{{{ namespace }}}}",version="{{{{ version }}}}"}})',
                        }
                    ],
                    **rollout,
                },
            },
        },
    }


def route(router: str, name: str) -> tuple[Any, Obj] | None:
    """A route the platform team owns: the operator manages the rule named ``model`` and nothing else."""
    if router == "gatewayAPI":
        return HTTPROUTES, {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": name},
            "spec": {
                "parentRefs": [{"name": "public"}],
                "rules": [
                    {
                        "name": "health",
                        "matches": [{"path": {"value": "/healthz"}}],
                        "backendRefs": [{"name": "static", "port": 80}],
                    },
                    {"name": "model", "backendRefs": []},
                ],
            },
        }
    if router == "istio":
        return VIRTUALSERVICES, {
            "apiVersion": "networking.istio.io/v1",
            "kind": "VirtualService",
            "metadata": {"name": name},
            "spec": {
                "hosts": [name],
                "http": [
                    {
                        "name": "health",
                        "match": [{"uri": {"prefix": "/healthz"}}],
                        "route": [{"destination": {"host": "static"}}],
                    },
                    {"name": "model", "route": []},
                ],
            },
        }
    return None


class Given:
    def __init__(self, cluster: Cluster, router: str = "gatewayAPI", prefix: str | None = None) -> None:
        self.cluster = cluster
        self.api = cluster.api
        self.ns = cluster.namespace(prefix)
        self.router = router
        self.metric = f"it_error_rate_{next(_metrics)}"
        self.gauge = cluster.exporter.gauge(self.metric, labelnames=("namespace", "version"))

    def errors(self, version: str, value: float) -> None:
        self.gauge.labels(namespace=self.ns, version=version).set(value)

    def deployed(self, name: str, version: str, **options: Any) -> Obj:
        """``name`` at ``version``, promoted (``options``: those of :func:`model_deployment`)."""
        r = route(self.router, name)
        if r is not None:
            self.api.create(r[0], self.ns, r[1])
        self.errors(version, 0.0)
        self.api.create(MODELDEPLOYMENTS, self.ns, model_deployment(name, version, self.router, self.metric, **options))
        eventually(
            lambda: self.status(name).get("phase") == "Promoted" and self.status(name)["stableVersion"] == version,
            timeout=90,
        )
        return self.md(name)

    def close(self) -> None:
        """Delete what the test made: its ModelRetirements and ModelDeployments through the operator's finalizer
        (their Deployments, and so their model servers, go with them), then the namespace. Where no operator
        watches the namespace any more, the finalizers are removed instead (the garbage collector takes the rest)."""
        operated = self.cluster.watched(self.ns)
        for resource in (MODELRETIREMENTS, MODELDEPLOYMENTS):
            for obj in self.api.list(resource, self.ns):
                name = obj["metadata"]["name"]
                if not operated and obj["metadata"].get("finalizers"):
                    self.api.patch(resource, self.ns, name, {"metadata": {"finalizers": None}})
                self.api.delete(resource, self.ns, name)
        eventually(
            lambda: not self.api.list(MODELDEPLOYMENTS, self.ns) and not self.api.list(MODELRETIREMENTS, self.ns),
            timeout=60,
        )
        kubernetes.client.CoreV1Api(self.cluster.client).delete_namespace(self.ns)

    def md(self, name: str) -> Obj:
        obj = self.api.get(MODELDEPLOYMENTS, self.ns, name)
        assert obj is not None
        return obj

    def status(self, name: str) -> dict[str, Any]:
        return self.md(name).get("status") or {}

    def new_version(self, name: str, version: str) -> None:
        self.api.patch(
            MODELDEPLOYMENTS,
            self.ns,
            name,
            {"spec": {"model": {"version": version, "uri": f"file:///models/{version}.pkl"}}},
        )

    def weights(self, name: str) -> dict[str, int]:
        """The split in effect, read from the route object itself (or the replica counts)."""
        if self.router == "replicas":
            out = {}
            for dep in self.api.list(DEPLOYMENTS, self.ns, {"modelops.io/deployment": name}):
                out[dep["metadata"]["labels"]["modelops.io/version"]] = dep["spec"].get("replicas", 0)
            total = sum(out.values()) or 1
            return {v: round(100 * n / total) for v, n in out.items() if n}
        resource = HTTPROUTES if self.router == "gatewayAPI" else VIRTUALSERVICES
        obj = self.api.get(resource, self.ns, name)
        assert obj is not None
        if self.router == "gatewayAPI":
            refs = obj["spec"]["rules"][1]["backendRefs"]
            return {r["name"].removeprefix(f"{name}-"): r.get("weight", 1) for r in refs if r.get("weight", 1)}
        dests = obj["spec"]["http"][1]["route"]
        return {
            (d["destination"].get("subset") or d["destination"]["host"]).removeprefix(f"{name}-"): d.get("weight", 100)
            for d in dests
            if d.get("weight", 100)
        }


@pytest.fixture
def givens(cluster: Cluster) -> Iterator[Callable[..., Given]]:
    """``givens(router="gatewayAPI", prefix=None)``: a new :class:`Given` in a namespace of its own, closed after
    the test."""
    made: list[Given] = []

    def make(router: str = "gatewayAPI", prefix: str | None = None) -> Given:
        made.append(Given(cluster, router, prefix))
        return made[-1]

    yield make
    for given in made:
        given.close()


@pytest.fixture
def given(givens: Callable[..., Given]) -> Given:
    return givens()


# ------------------------------------------------------------------------------------------------- tests


@pytest.mark.parametrize("router", ["gatewayAPI", "istio", "replicas"])
def test_rollout_moves_weights_step_by_step_and_promotion_swaps_stable(
    givens: Callable[..., Given], router: str
) -> None:
    given = givens(router)
    given.deployed("shop", "v1")
    assert given.api.get(DEPLOYMENTS, given.ns, "shop-v1") is not None
    if router != "replicas":
        assert given.api.get(SERVICES, given.ns, "shop-v1") is not None
    assert given.weights("shop") == {"v1": 100}
    http_route = given.api.get(HTTPROUTES, given.ns, "shop") if router == "gatewayAPI" else None
    other_rule = http_route["spec"]["rules"][0] if http_route is not None else None  # as the API server stored it

    given.errors("v2", 0.0)
    given.new_version("shop", "v2")
    seen: list[int] = []

    def promoted() -> bool:
        w = given.weights("shop").get("v2", 0)
        if not seen or seen[-1] != w:
            seen.append(w)
        return given.status("shop").get("stableVersion") == "v2"

    eventually(promoted, timeout=150, interval=0.05)
    expected = [0, 10, 50, 100] if router != "replicas" else [0, 25, 50, 100]  # 10% of 4 replicas is 1 of 4
    assert [w for w in seen if w in expected] == expected, seen
    assert seen == sorted(seen), f"weights never move down during a healthy rollout: {seen}"
    assert given.status("shop")["phase"] == "Promoted"
    eventually(lambda: given.api.get(DEPLOYMENTS, given.ns, "shop-v1") is None, timeout=30)
    if router == "gatewayAPI":
        rules = given.api.get(HTTPROUTES, given.ns, "shop")["spec"]["rules"]  # type: ignore[index]
        assert rules[0] == other_rule, "the other rule is left alone"
        assert rules[0]["backendRefs"][0]["name"] == "static"


def test_failing_error_rate_rolls_back(given: Given) -> None:
    given.deployed("shop", "v1")
    given.errors("v2", 0.5)
    given.new_version("shop", "v2")
    eventually(lambda: given.status("shop").get("phase") == "RolledBack", timeout=120)
    status = given.status("shop")
    assert status["stableVersion"] == "v1"
    assert status["canaryWeight"] == 0
    assert given.weights("shop") == {"v1": 100}
    assert status["history"][-1]["outcome"] == "RolledBack"
    eventually(lambda: given.api.get(DEPLOYMENTS, given.ns, "shop-v2") is None, timeout=20)
    assert given.api.get(DEPLOYMENTS, given.ns, "shop-v1") is not None, "the stable version keeps serving"


def test_prometheus_outage_holds_the_weight_and_the_rollout_resumes(given: Given, prometheus: Any) -> None:
    given.deployed("shop", "v1")
    given.errors("v2", 0.0)
    given.new_version("shop", "v2")
    eventually(lambda: given.status("shop").get("canaryWeight") == 10, timeout=60, interval=0.05)
    prometheus.stop()
    try:
        eventually(lambda: given.status("shop")["analysis"]["unavailableChecks"] >= 3, timeout=30)
        assert given.status("shop")["canaryWeight"] == 10, "Hold: the weight stays"
        assert given.status("shop")["phase"] == "Progressing"
        assert given.weights("shop") == {"v1": 90, "v2": 10}
    finally:
        prometheus.start()
    eventually(lambda: given.status("shop").get("stableVersion") == "v2", timeout=120)


def test_an_edited_route_is_set_back(given: Given) -> None:
    given.deployed("shop", "v1")
    obj = given.api.get(HTTPROUTES, given.ns, "shop")
    assert obj is not None
    rules = obj["spec"]["rules"]
    rules[1]["backendRefs"] = [{"name": "somebody-else", "port": 80, "weight": 100}]
    given.api.patch(HTTPROUTES, given.ns, "shop", {"spec": {"rules": rules}})
    eventually(lambda: given.weights("shop") == {"v1": 100}, timeout=20)


def test_a_tick_that_changes_nothing_writes_nothing(given: Given, kube: KubeCluster, api_requests: RequestLog) -> None:
    given.deployed("shop", "v1")

    def ready() -> bool:
        conditions = {c["type"]: c["status"] for c in given.status("shop").get("conditions", [])}
        return conditions.get("Ready") == "True"

    eventually(ready)

    def operator_requests(since: int) -> list[Any]:
        """The operator's requests in the test's namespace, from the ``since``-th record of the test on."""
        return [r for r in api_requests.records[since:] if r.user == kube.operator_user and r.namespace == given.ns]

    # let the last status write's own watch event be handled, then count over several resync periods
    mark = len(api_requests.records)
    eventually(lambda: len(operator_requests(mark)) > 20, timeout=60)  # a few reconciles happened
    start = len(api_requests.records)
    eventually(lambda: len(operator_requests(start)) >= 12, timeout=60)
    window = operator_requests(start)
    writes = [r for r in window if r.verb in {"create", "update", "patch", "delete", "deletecollection"}]
    assert writes == [], writes
    assert {r.verb for r in window} <= {"get", "list", "watch"}


def test_delete_removes_children_and_restores_the_route(given: Given) -> None:
    given.deployed("shop", "v1")
    given.errors("v2", 0.0)
    given.new_version("shop", "v2")
    eventually(lambda: given.weights("shop") == {"v1": 90, "v2": 10}, timeout=60, interval=0.05)
    given.api.delete(MODELDEPLOYMENTS, given.ns, "shop")
    eventually(lambda: given.api.get(MODELDEPLOYMENTS, given.ns, "shop") is None, timeout=30)
    assert given.weights("shop") == {"v1": 100}, "the shared route is restored to the stable version"
    eventually(lambda: given.api.list(DEPLOYMENTS, given.ns, {"modelops.io/deployment": "shop"}) == [], timeout=20)
    eventually(lambda: given.api.list(SERVICES, given.ns, {"modelops.io/deployment": "shop"}) == [], timeout=20)


def test_retirement_drains_and_deletes_only_what_belongs_to_the_retired_model(given: Given) -> None:
    given.deployed("shop", "v1")
    given.deployed("shop-next", "v1")
    requests = f"it_requests_{next(_metrics)}"
    traffic = given.cluster.exporter.gauge(requests, labelnames=("namespace", "version"))
    traffic.labels(namespace=given.ns, version="v1").set(0)
    user_owned = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "shop-v1-backup", "labels": {"modelops.io/model": "shop", "team": "data"}},
        "spec": {
            "selector": {"matchLabels": {"app": "backup"}},
            "template": {
                "metadata": {"labels": {"app": "backup"}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            },
        },
    }
    given.api.create(DEPLOYMENTS, given.ns, user_owned)
    retirement = {
        "apiVersion": "modelops.io/v1alpha1",
        "kind": "ModelRetirement",
        "metadata": {"name": "retire-shop"},
        "spec": {
            "modelDeployment": "shop",
            "replacement": "shop-next",
            "drain": {"steps": [50, 100], "interval": "1s"},
            "zeroTrafficCheck": {"query": f'max({requests}{{namespace="{{{{ namespace }}}}"}})', "window": "1m"},
        },
    }
    given.api.create(MODELRETIREMENTS, given.ns, retirement)
    seen: list[dict[str, int]] = []

    def retired() -> bool:
        obj = given.api.get(HTTPROUTES, given.ns, "shop")
        if obj is not None:
            w = {r["name"]: r.get("weight", 1) for r in obj["spec"]["rules"][1]["backendRefs"]}
            if not seen or seen[-1] != w:
                seen.append(w)
        st = (given.api.get(MODELRETIREMENTS, given.ns, "retire-shop") or {}).get("status") or {}
        return st.get("phase") == "Retired"

    eventually(retired, timeout=120, interval=0.05)
    assert {"shop-v1": 50, "shop-next-v1": 50} in seen, seen
    assert seen[-1] == {"shop-next-v1": 100} or seen[-1] == {"shop-v1": 0, "shop-next-v1": 100}, seen
    status = given.api.get(MODELRETIREMENTS, given.ns, "retire-shop")["status"]  # type: ignore[index]
    removed = {(r["kind"], r["name"]) for r in status["removed"]}
    assert ("Deployment", "shop-v1") in removed
    assert ("ModelDeployment", "shop") in removed
    assert given.api.get(DEPLOYMENTS, given.ns, "shop-v1-backup") is not None, "a user's Deployment survives"
    assert given.api.get(DEPLOYMENTS, given.ns, "shop-next-v1") is not None, "the replacement keeps serving"
    eventually(lambda: given.api.get(MODELDEPLOYMENTS, given.ns, "shop") is None, timeout=20)


def test_a_conflicting_write_is_retried_from_a_fresh_read(
    given: Given, kube: KubeCluster, api_requests: RequestLog
) -> None:
    """Someone keeps editing the object's labels during a rollout, in bursts: some status writes carry a
    resourceVersion that is no longer current, the apiserver answers 409, and the operator reconciles again from a
    fresh read. (Between bursts it can write: against edits every 20 ms without end, a reconcile that takes longer
    than that could never land, whatever it retried.)"""
    given.deployed("shop", "v1")
    given.errors("v2", 0.0)
    stop = threading.Event()
    pauses = itertools.cycle([0.02] * 10 + [0.5])

    def meddle() -> None:
        n = 0
        while not stop.wait(next(pauses)):
            n += 1
            given.api.patch(MODELDEPLOYMENTS, given.ns, "shop", {"metadata": {"labels": {"touched": str(n)}}})

    meddler = threading.Thread(target=meddle, daemon=True)
    meddler.start()
    try:
        given.new_version("shop", "v2")
        eventually(lambda: given.status("shop").get("stableVersion") == "v2", timeout=120)
    finally:
        stop.set()
        meddler.join(5)
    conflicts = api_requests.matching(
        user=kube.operator_user, namespace=given.ns, verb="patch", subresource="status", status=409
    )
    assert conflicts, "the meddling produced no conflict: the test proves nothing"
    assert given.status("shop")["phase"] == "Promoted"
    assert [h["outcome"] for h in given.status("shop")["history"]][-1] == "Promoted"


def test_operator_killed_mid_step_resumes_at_the_same_step(
    givens: Callable[..., Given], kube: KubeCluster, prometheus: Any, tmp_path: Path
) -> None:
    """A real ``modelops run`` process (as the chart's ServiceAccount), killed with SIGKILL in the middle of a step
    and started again."""
    given = givens(prefix="proc")  # not watched by the in-process operator
    given.errors("v1", 0.0)
    given.errors("v2", 0.0)

    log = (tmp_path / "operator.log").open("ab")

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "modelops",
                "run",
                "--kubeconfig",
                str(kube.operator_kubeconfig),
                "--namespace",
                given.ns,
                "--prometheus-url",
                prometheus.url,
                "--metrics-port",
                "0",
                "--health-port",
                "0",
                "--resync",
                "1",
                "--gate-poll",
                "0.5",
                "--standalone",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    proc = start()
    try:
        r = route("gatewayAPI", "shop")
        assert r is not None
        given.api.create(r[0], given.ns, r[1])
        md = model_deployment("shop", "v1", "gatewayAPI", given.metric)
        md["spec"]["rollout"]["steps"] = [{"weight": 10, "pause": "8s"}, {"weight": 50, "pause": "1s"}, {"weight": 100}]
        given.api.create(MODELDEPLOYMENTS, given.ns, md)
        eventually(lambda: given.status("shop").get("phase") == "Promoted", timeout=120)
        given.new_version("shop", "v2")
        eventually(lambda: given.status("shop").get("canaryWeight") == 10, timeout=60, interval=0.05)
        before = given.status("shop")
        proc.kill()
        proc.wait(10)
        proc = start()
        weights: list[dict[str, int]] = []
        step_starts: set[str] = set()

        def resumed() -> bool:
            weights.append(given.weights("shop"))
            st = given.status("shop")
            if st.get("currentStep") == 0:
                step_starts.add(st["stepStartedAt"])
            return st.get("currentStep") == 1 or st.get("stableVersion") == "v2"

        eventually(resumed, timeout=90, interval=0.05)
        during = [w for w in weights if w.get("v2", 0) != 50 and w.get("v2", 0) != 100]
        assert all(w == {"v1": 90, "v2": 10} for w in during), f"no jump while the operator restarted: {weights}"
        after = given.status("shop")
        assert after["history"][-1]["version"] != "v2" or after["history"][-1]["outcome"] == "Promoted"
        assert step_starts == {before["stepStartedAt"]}, "the step's clock kept running across the restart"
        assert before["rolloutStartedAt"] == after["rolloutStartedAt"], "the rollout was resumed, not restarted"
    finally:
        proc.kill()
        proc.wait(10)
        log.close()


def test_gates_run_as_jobs_and_a_failed_fairness_audit_stops_the_rollout(given: Given) -> None:
    """Gate Jobs are started for the candidate and run (their container writes its JSON result as the termination
    message), their results judged: v2 passes, v3 fails its fairness audit (Failed, no traffic moved, stable
    untouched)."""
    results = {
        version: {"metrics": {"accuracy": acc}, "groups": {"a": {"positiveRate": a}, "b": {"positiveRate": b}}}
        for version, acc, a, b in (("v1", 0.81, 0.30, 0.31), ("v2", 0.86, 0.30, 0.29), ("v3", 0.90, 0.10, 0.40))
    }
    evaluator = {
        "name": "eval",
        "image": "example/eval:1",
        "command": ["python", "-c", GATE_SCRIPT],
        "env": [{"name": "GATE_RESULTS", "value": json.dumps(results)}],
    }
    gate = {
        "name": "held-out",
        "owner": "data-science",
        "template": {"template": {"spec": {"restartPolicy": "Never", "containers": [evaluator]}}},
        "checks": [{"result": "accuracy", "min": 0.8}],
        "fairness": {"result": "positiveRate", "minRatio": 0.8},
    }
    r = route("gatewayAPI", "shop")
    assert r is not None
    given.api.create(r[0], given.ns, r[1])
    md = model_deployment("shop", "v1", "gatewayAPI", given.metric)
    md["spec"]["gates"] = [gate]
    given.errors("v1", 0.0)
    given.errors("v2", 0.0)
    given.api.create(MODELDEPLOYMENTS, given.ns, md)
    eventually(lambda: given.status("shop").get("stableVersion") == "v1", timeout=120)
    given.new_version("shop", "v2")
    eventually(lambda: given.status("shop").get("stableVersion") == "v2", timeout=120)
    gates = given.status("shop")["history"]
    assert gates[-1]["outcome"] == "Promoted"
    given.new_version("shop", "v3")
    eventually(lambda: given.status("shop").get("phase") == "Failed", timeout=120)
    status = given.status("shop")
    assert status["stableVersion"] == "v2"
    assert given.weights("shop") == {"v2": 100}, "a failed gate moves no traffic"
    (held_out,) = [g for g in status["gates"] if g["name"] == "held-out"]
    assert held_out["phase"] == "Failed"
    assert "fairness" in held_out["message"].lower() or "ratio" in held_out["message"].lower(), held_out
    # the verdict came from the gate's Job, which ran: its Pod ran the evaluator and ended with v3's results
    job = given.api.get(JOBS, given.ns, held_out["jobName"])
    assert job is not None, held_out
    assert job["metadata"]["labels"]["modelops.io/version"] == "v3"
    assert any(c["type"] == "Complete" and c["status"] == "True" for c in job["status"]["conditions"]), job["status"]
    (pod,) = given.api.list(PODS, given.ns, {"job-name": held_out["jobName"]})
    assert pod["status"]["phase"] == "Succeeded"
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert json.loads(terminated["message"]) == results["v3"]


def evaluator(results: dict[str, Any], name: str = "eval") -> Obj:
    """A gate's container running :data:`GATE_SCRIPT` on ``results`` (by version)."""
    return {
        "name": name,
        "image": "example/eval:1",
        "command": ["python", "-c", GATE_SCRIPT],
        "env": [{"name": "GATE_RESULTS", "value": json.dumps(results)}],
    }


def job_template(container: Obj) -> Obj:
    return {"template": {"spec": {"restartPolicy": "Never", "containers": [container]}}}


def events_of(given: Given, name: str, reason: str) -> list[Obj]:
    """The Events about ModelDeployment ``name`` with ``reason``, as the API server holds them."""
    return [
        e
        for e in given.api.list(KUBE_EVENTS, given.ns)
        if e["involvedObject"].get("kind") == "ModelDeployment" and e["involvedObject"]["name"] == name
        and e["reason"] == reason
    ]  # fmt: skip


def condition(given: Given, name: str, type_: str) -> dict[str, Any]:
    (found,) = [c for c in given.status(name).get("conditions", []) if c["type"] == type_]
    return found


def test_monitoring_without_data_is_degraded_unknown_with_an_event_until_data_comes(given: Given) -> None:
    """Given v1 promoted, with a monitoring metric whose series does not exist yet (the query selects nothing, in
    the real Prometheus), when degradedAfter (2) checks in a row have no data, then Degraded is Unknown with reason
    NoData naming the metric, one Warning NoData event says so, and the gauge the alert reads is 1; when the series
    appears, the next check judges it: Degraded is False, within bounds."""
    quality = f"it_quality_{next(_metrics)}"
    gauge = given.cluster.exporter.gauge(quality, labelnames=("namespace", "version"))
    r = route("gatewayAPI", "shop")
    assert r is not None
    given.api.create(r[0], given.ns, r[1])
    md = model_deployment("shop", "v1", "gatewayAPI", given.metric)
    md["spec"]["monitoring"] = {
        "interval": "1s",
        "degradedAfter": 2,
        "metrics": [
            {
                "name": "quality",
                "owner": "ml",
                "min": 0.5,
                "query": f'max({quality}{{namespace="{{{{ namespace }}}}",version="{{{{ version }}}}"}})',
            }
        ],
    }
    given.errors("v1", 0.0)
    given.api.create(MODELDEPLOYMENTS, given.ns, md)
    eventually(lambda: given.status("shop").get("stableVersion") == "v1", timeout=90)

    def no_data() -> bool:
        degraded = condition(given, "shop", "Degraded")
        assert (degraded["status"], degraded["reason"]) == ("Unknown", "NoData"), degraded
        return True

    eventually(no_data, timeout=60)
    degraded = condition(given, "shop", "Degraded")
    assert degraded["message"].startswith("v1: cannot be judged, no data in "), degraded
    assert f"quality: query 'max({quality}" in degraded["message"], degraded
    assert "returned no series" in degraded["message"], degraded
    assert given.status("shop")["monitoring"]["consecutiveNoData"] >= 2
    (event,) = eventually(lambda: events_of(given, "shop", "NoData"), timeout=10)
    assert event["type"] == "Warning"
    assert event["message"].startswith("v1: cannot be judged, no data in 2 checks in a row (degradedAfter 2)"), event
    telemetry = given.cluster.runtime.telemetry.registry
    ids = {"namespace": given.ns, "name": "shop"}
    eventually(lambda: telemetry.get_sample_value("modelops_monitoring_no_data", ids) == 1, timeout=10)
    assert telemetry.get_sample_value("modelops_degraded", ids) == 0

    gauge.labels(namespace=given.ns, version="v1").set(0.9)

    def judged() -> bool:
        degraded = condition(given, "shop", "Degraded")
        assert degraded["status"] == "False", degraded
        return True

    eventually(judged, timeout=60)
    degraded = condition(given, "shop", "Degraded")
    assert (degraded["reason"], degraded["message"]) == ("MetricsHealthy", "v1: monitoring metrics within bounds")
    assert given.status("shop")["monitoring"]["consecutiveNoData"] == 0
    assert events_of(given, "shop", "MetricsHealthy"), "leaving NoData is an event too"
    assert len(events_of(given, "shop", "NoData")) == 1, "NoData was said once"
    eventually(lambda: telemetry.get_sample_value("modelops_monitoring_no_data", ids) == 0, timeout=10)


def test_a_gate_comparison_without_a_baseline_is_reported_as_not_done(given: Given) -> None:
    """Given v1, the first version, whose gate compares accuracy with the stable version: there is no baseline, so
    the gate passes on its threshold alone and its status and event say that the comparison was not made. When v2's
    gate also requires a baseline for auc, which v1 never reported, then that gate fails saying so (the accuracy
    comparison, now possible, is made) and no traffic moves."""
    results = {"v1": {"metrics": {"accuracy": 0.81}}, "v2": {"metrics": {"accuracy": 0.82, "auc": 0.9}}}
    accuracy = {"result": "accuracy", "min": 0.8, "baseline": {"maxDegradation": 0.05}}
    gate = {"name": "held-out", "template": job_template(evaluator(results)), "checks": [accuracy]}
    r = route("gatewayAPI", "shop")
    assert r is not None
    given.api.create(r[0], given.ns, r[1])
    md = model_deployment("shop", "v1", "gatewayAPI", given.metric)
    md["spec"]["gates"] = [gate]
    given.errors("v1", 0.0)
    given.api.create(MODELDEPLOYMENTS, given.ns, md)
    eventually(lambda: given.status("shop").get("stableVersion") == "v1", timeout=120)

    (held_out,) = given.status("shop")["gates"]
    not_compared = (
        "accuracy: 0.81 within its bounds, but not compared with the stable version"
        " (no baseline: no stable version yet)"
    )
    assert held_out["phase"] == "Passed", held_out
    assert held_out["notJudged"] == [not_compared], held_out
    assert held_out["message"] == f"0 of 1 checks passed in full; {not_compared}", held_out
    (passed,) = events_of(given, "shop", "GatePassed")
    assert not_compared in passed["message"], passed

    required = {"result": "auc", "baseline": {"maxDegradation": 0.05, "required": True}}
    given.errors("v2", 0.0)
    spec = {
        "model": {"version": "v2", "uri": "file:///models/v2.pkl"},
        "gates": [{**gate, "checks": [accuracy, required]}],
    }
    given.api.patch(MODELDEPLOYMENTS, given.ns, "shop", {"spec": spec})
    eventually(lambda: given.status("shop").get("phase") == "Failed", timeout=120)
    status = given.status("shop")
    (held_out,) = status["gates"]
    assert held_out["version"] == "v2", held_out
    assert held_out["phase"] == "Failed", held_out
    assert held_out["message"] == (
        "auc: no baseline to compare with (the results of v1 from this gate have no auc) and baseline.required is set"
    ), held_out
    assert held_out.get("notJudged", []) == [], "the accuracy comparison was made against v1's 0.81"
    assert status["stableVersion"] == "v1"
    assert given.weights("shop") == {"v1": 100}, "a failed gate moves no traffic"


#: a gate's container that writes its result through the sandbox's job writer (``write_result``), which refuses one
#: larger than a termination message holds
WRITER_SCRIPT = (
    "import json, os; from modelops.sandbox.models.jobs import write_result; "
    "write_result(json.loads(os.environ['GATE_RESULTS'])[os.environ['MODEL_VERSION']], "
    "os.environ['MODELOPS_TERMINATION_LOG'])"
)


def test_a_gate_result_larger_than_a_termination_message_fails_naming_the_limit(given: Given) -> None:
    """Given v1's two gates, each with a result of about 4,800 bytes, more than the 4096 a termination message
    holds: one writes it anyway (the node agent, as a kubelet, keeps 4096 bytes of it), the other through the
    sandbox's job writer (which refuses, writes an error naming the limit instead and exits 1). Then both gates fail
    with a message naming the limit, never judging a cut result, and nothing is deployed."""
    big = {"metrics": {"accuracy": 0.9}, "groups": {f"g{i:04}": {"positiveRate": 0.5} for i in range(200)}}
    results = {"v1": big}
    assert len(json.dumps(big)) > 4096
    writer = {**evaluator(results, "writer"), "command": ["python", "-c", WRITER_SCRIPT]}
    gates = [
        {"name": "raw", "template": job_template(evaluator(results)), "checks": [{"result": "accuracy", "min": 0.5}]},
        {"name": "writer", "template": job_template(writer), "checks": [{"result": "accuracy", "min": 0.5}]},
    ]
    md = model_deployment("shop", "v1", "gatewayAPI", given.metric)
    md["spec"]["gates"] = gates
    given.api.create(MODELDEPLOYMENTS, given.ns, md)
    eventually(lambda: given.status("shop").get("phase") == "Failed", timeout=120)

    status = given.status("shop")
    by_name = {g["name"]: g for g in status["gates"]}
    assert by_name["raw"]["phase"] == "Failed", by_name
    assert "its result was cut at the 4096-byte termination message limit" in by_name["raw"]["message"], by_name
    assert by_name["writer"]["phase"] == "Failed", by_name
    assert "more than the 4096-byte termination message limit: not written" in by_name["writer"]["message"], by_name
    assert "stableVersion" not in status
    assert given.api.list(DEPLOYMENTS, given.ns, {"modelops.io/deployment": "shop"}) == []
    # what the Pods reported: the cut message of the first gate, the writer's small error of the second
    (raw_pod,) = given.api.list(PODS, given.ns, {"job-name": by_name["raw"]["jobName"]})
    assert len(raw_pod["status"]["containerStatuses"][0]["state"]["terminated"]["message"].encode()) == 4096
    (writer_pod,) = given.api.list(PODS, given.ns, {"job-name": by_name["writer"]["jobName"]})
    terminated = writer_pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == 1
    assert "termination message limit" in json.loads(terminated["message"])["error"]


def test_a_candidate_that_never_becomes_ready_gets_no_traffic_and_is_rolled_back(given: Given) -> None:
    """v2's readiness probe fails for ever: its Pod runs but is never Ready, so its Deployment never reports a ready
    replica. The operator moves no traffic to it and rolls it back at the progress deadline; v1 keeps serving."""
    given.deployed("shop", "v1", not_ready=["v2"], progress_deadline="20s")
    given.errors("v2", 0.0)
    given.new_version("shop", "v2")
    weights: list[dict[str, int]] = []

    def progressing_reason() -> str:
        weights.append(given.weights("shop"))
        conditions = {c["type"]: c for c in given.status("shop").get("conditions", [])}
        return str(conditions["Progressing"]["reason"])

    eventually(lambda: progressing_reason() == "CandidateStarting", timeout=60)

    def running_but_not_ready() -> bool:
        (pod,) = given.api.list(PODS, given.ns, {"modelops.io/deployment": "shop", "modelops.io/version": "v2"})
        ready = {c["type"]: c["status"] for c in pod["status"].get("conditions", [])}.get("Ready")
        return pod["status"].get("phase") == "Running" and ready == "False"

    eventually(running_but_not_ready, timeout=60)
    eventually(lambda: progressing_reason() == "CandidateNotReady", timeout=60)
    status = given.status("shop")
    assert status["phase"] == "RolledBack"
    assert status["stableVersion"] == "v1"
    assert status["history"][-1]["version"] == "v2"
    assert status["history"][-1]["outcome"] == "RolledBack"
    assert all(w == {"v1": 100} for w in weights), f"no traffic ever moved to v2: {weights}"
    eventually(lambda: given.api.get(DEPLOYMENTS, given.ns, "shop-v2") is None, timeout=30)
    assert given.api.get(DEPLOYMENTS, given.ns, "shop-v1") is not None, "the stable version keeps serving"


EVENTS = Resource("", "v1", "events", "Event")


def test_requests_fired_together_are_each_applied_or_refused_with_an_event(given: Given) -> None:
    """Two teams approve within the same instant while someone pauses and someone else promotes: four ModelRequests,
    each answered in its status (Applied or Refused, with the operator's message) and named in an Event, none lost;
    the approvals record the names the API server authenticated (each approver a member of the team's group)."""
    kube = given.cluster.kube
    r = route(given.router, "duo")
    assert r is not None
    given.api.create(r[0], given.ns, r[1])
    given.errors("v1", 0.0)
    body = model_deployment("duo", "v1", given.router, given.metric)
    body["spec"]["approvals"] = [{"team": "risk"}, {"team": "product"}]
    body["spec"]["rollout"]["steps"] = [{"weight": 10, "pause": "1s"}, {"weight": 100}]
    given.api.create(MODELDEPLOYMENTS, given.ns, body)
    eventually(lambda: given.status("duo").get("phase") == "Promoted", timeout=90)
    given.errors("v2", 0.0)
    given.new_version("duo", "v2")
    eventually(lambda: given.status("duo").get("phase") == "Paused", timeout=90)

    md = given.md("duo")
    clients = []
    asks: list[tuple[Any, dict[str, Any]]] = []
    for user, team in (("rita", "risk"), ("pat", "product")):
        kubeconfig = kube.cluster.editor_kubeconfig(user, SANDBOX_APPROVERS[team], given.ns)
        client = kube.client(kubeconfig)
        clients.append(client)
        asks.append((RestKubeApi(client), request_body(md, "approve", user, team)))
    asks += [(given.api, request_body(md, "pause", None)), (given.api, request_body(md, "promote", None))]
    start = threading.Barrier(len(asks))
    made: list[str] = []

    def ask(api: Any, request: dict[str, Any]) -> None:
        start.wait(10)
        made.append(api.create(MODELREQUESTS, given.ns, request)["metadata"]["name"])

    threads = [threading.Thread(target=ask, args=a) for a in asks]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    finally:
        for client in clients:
            client.close()
    assert len(made) == 4, made

    def answered() -> dict[str, dict[str, Any]]:
        out = {n: (given.api.get(MODELREQUESTS, given.ns, n) or {}).get("status") or {} for n in made}
        assert all(s.get("phase") in ("Applied", "Refused") for s in out.values()), out
        return out

    answers = eventually(answered, timeout=60)
    verdicts = ("RequestAccepted", "RequestRejected")
    events = [e["message"] for e in given.api.list(EVENTS, given.ns)
              if e["involvedObject"]["name"] == "duo" and e["reason"] in verdicts]  # fmt: skip
    for name, status in answers.items():
        assert any(f"(ModelRequest {name})" in m for m in events), (name, events)
        assert status["message"], status
    approvals = {a["team"]: a["by"] for a in given.status("duo")["approvals"]}
    assert approvals == {"risk": "rita", "product": "pat"}
    recorded = {r["name"] for r in given.status("duo")["requests"]}
    assert set(made) <= recorded


# ------------------------------------------------------------------------------------ Istio: the real CRDs


ISTIO = ("networking.istio.io", "v1")


class RouteHistory:
    """Every version of a namespace's VirtualServices and DestinationRules, in the order the API server wrote them.

    A watch of each kind gets every version (a poll would miss some); versions of both kinds are then ordered by
    resourceVersion, which on this cluster (one etcd) is etcd's revision, one counter for every kind. (The API calls
    resourceVersions opaque, and a client of another cluster must not compare them; a test of this one may.)"""

    def __init__(self, given: Given) -> None:
        self.given = given
        self.versions: dict[tuple[str, int], tuple[str, Obj]] = {}
        self.errors: list[BaseException] = []
        self.started: set[str] = set()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._watch, args=(p,), daemon=True) for p in KINDS]

    def __enter__(self) -> RouteHistory:
        for thread in self.threads:
            thread.start()
        # each watch starts from a list of its own: no version after this moment is missed
        eventually(lambda: self.errors or set(KINDS) <= self.started, timeout=30)
        assert self.errors == [], self.errors
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(15)

    def _watch(self, plural: str) -> None:
        client = self.given.cluster.kube.client()
        api = kubernetes.client.CustomObjectsApi(client)
        try:
            listed = api.list_namespaced_custom_object(*ISTIO, self.given.ns, plural)
            for obj in listed["items"]:
                self.versions[(plural, int(obj["metadata"]["resourceVersion"]))] = ("ADDED", obj)
            rv = listed["metadata"]["resourceVersion"]
            self.started.add(plural)
            while not self.stop.is_set():
                stream = kubernetes.watch.Watch().stream(
                    api.list_namespaced_custom_object, *ISTIO, self.given.ns, plural, resource_version=rv,
                    timeout_seconds=1,
                )  # fmt: skip
                for event in stream:
                    obj = event["object"]
                    if event["type"] == "ERROR":  # 410 Gone: versions were missed, the history would be wrong
                        raise AssertionError(f"the watch of {plural} ended: {obj}")
                    rv = obj["metadata"]["resourceVersion"]
                    self.versions[(plural, int(rv))] = (event["type"], obj)
        except Exception as exc:  # reported by timeline()
            self.errors.append(exc)
        finally:
            client.close()

    def timeline(self, name: str) -> list[tuple[int, list[str], list[str]]]:
        """(revision, subsets the VirtualService ``name`` names, subsets the DestinationRule ``name`` defines) at
        each version of either, in order."""
        assert self.errors == [], self.errors
        named: list[str] = []
        defined: list[str] = []
        out = []
        for (plural, revision), (kind, obj) in sorted(self.versions.items(), key=lambda kv: kv[0][1]):
            if obj["metadata"]["name"] != name:
                continue
            if plural == "destinationrules":
                defined = [] if kind == "DELETED" else [s["name"] for s in obj["spec"].get("subsets") or []]
            else:
                routed = obj["spec"]["http"][1].get("route") or []
                named = [r["destination"]["subset"] for r in routed if "subset" in r["destination"]]
            out.append((revision, named, defined))
        return out


KINDS = ("virtualservices", "destinationrules")


def test_istio_host_mode_defines_each_subset_before_the_route_names_it_and_owns_the_rule(
    givens: Callable[..., Given],
) -> None:
    """Given Istio's own CRDs on the API server and a VirtualService in host mode (destinations ``host: shop`` with a
    subset per version), a canary from v1 to v2 runs: the operator creates the DestinationRule ``shop``, owned by the
    ModelDeployment, with one subset per version in the route. At every revision of the two objects, each subset
    the route names is defined (added first, removed last). Deleting the ModelDeployment takes the rule with it."""
    given = givens("istio")
    with RouteHistory(given) as history:
        given.deployed("shop", "v1", host="shop")
        md = given.md("shop")
        rule = given.api.get(DESTINATIONRULES, given.ns, "shop")
        assert rule is not None
        owner = ModelDeployment.model_validate({"metadata": md["metadata"], "spec": md["spec"]})
        assert rule["metadata"]["ownerReferences"] == [owner_reference(owner)]
        assert owner_labels(owner).items() <= rule["metadata"]["labels"].items()
        # as stored by the API server after Istio's schema: nothing pruned, nothing defaulted in
        assert rule["spec"] == {"host": "shop", "subsets": [subset("shop", "v1")]}
        assert given.weights("shop") == {"v1": 100}

        given.errors("v2", 0.0)
        given.new_version("shop", "v2")
        eventually(lambda: given.status("shop").get("stableVersion") == "v2", timeout=150)
        eventually(lambda: given.api.get(DEPLOYMENTS, given.ns, "shop-v1") is None, timeout=30)

        def pruned() -> bool:
            rule = given.api.get(DESTINATIONRULES, given.ns, "shop") or {}
            return [s["name"] for s in rule["spec"]["subsets"]] == ["shop-v2"]

        eventually(pruned, timeout=30)
        route = given.api.get(VIRTUALSERVICES, given.ns, "shop")["spec"]["http"][1]["route"]  # type: ignore[index]
        assert route == [
            {"destination": {"host": "shop", "subset": "shop-v2", "port": {"number": 8080}}, "weight": 100}
        ]

    timeline = history.timeline("shop")
    stray = [(revision, named, defined) for revision, named, defined in timeline if not set(named) <= set(defined)]
    assert stray == [], f"the route named a subset its rule did not define: {stray}"
    assert ["shop-v1", "shop-v2"] in [named for _, named, _ in timeline], "the canary named both subsets"
    rules = [defined for _, _, defined in timeline]
    assert [r for i, r in enumerate(rules) if i == 0 or r != rules[i - 1]] == [
        [],
        ["shop-v1"],
        ["shop-v1", "shop-v2"],
        ["shop-v2"],
    ], "the rule's subsets: v1, then v2 added before the canary, v1 removed after the promotion"

    given.api.delete(MODELDEPLOYMENTS, given.ns, "shop")
    eventually(lambda: given.api.get(DESTINATIONRULES, given.ns, "shop") is None, timeout=60)


def test_what_the_istio_router_writes_passes_istios_schema_strictly_and_the_schema_can_refuse(
    givens: Callable[..., Given],
) -> None:
    """The rule and the route the operator builds pass the API server's strictest check (field validation Strict:
    an unknown field is an error, not pruned), against Istio's CRDs; and those CRDs do refuse what is not Istio's
    shape (a weight that is not an integer, a subset without a name, a field Istio does not have), so this proves
    the schema in effect is Istio's, not one that accepts anything."""
    given = givens("istio", prefix="schema")  # no operator watches it: only the API server judges
    ns = given.ns
    api = kubernetes.client.CustomObjectsApi(given.cluster.client)
    body = model_deployment("shop", "v2", "istio", "unused", host="shop.ml.svc.cluster.local")
    body["metadata"].update(namespace=ns, uid="0f1e2d3c-0000-4000-8000-000000000001")
    md = ModelDeployment.model_validate({"metadata": body["metadata"], "spec": body["spec"]})
    rule = build_destination_rule(md, "shop.ml.svc.cluster.local", [subset("shop", "v1"), subset("shop", "v2")])
    router = router_for(md.spec, ns, "shop", given.api)
    assert isinstance(router, VirtualServiceRouter)
    vs = route("istio", "shop")
    assert vs is not None
    vs[1]["spec"]["http"][1]["route"] = router.render({"v1": 90, "v2": 10})

    def create(plural: str, obj: Obj) -> Any:
        return api.create_namespaced_custom_object(*ISTIO, ns, plural, obj, dry_run="All", field_validation="Strict")

    create("destinationrules", rule)
    create("virtualservices", vs[1])

    wrong_type = json.loads(json.dumps(vs[1]))
    wrong_type["spec"]["http"][1]["route"][0]["weight"] = "ninety"
    nameless = json.loads(json.dumps(rule))
    del nameless["spec"]["subsets"][0]["name"]
    unknown = json.loads(json.dumps(rule))
    unknown["spec"]["subsets"][0]["selector"] = {"version": "v1"}
    for plural, obj, status, says in (
        ("virtualservices", wrong_type, 422, "spec.http[1].route[0].weight"),
        ("destinationrules", nameless, 422, "spec.subsets[0].name"),
        ("destinationrules", unknown, 400, 'unknown field "spec.subsets[0].selector"'),  # strict decoding: 400
    ):
        with pytest.raises(kubernetes.client.ApiException) as refused:
            create(plural, obj)
        answer = json.loads(refused.value.body)
        assert (refused.value.status, says in answer["message"]) == (status, True), answer


def test_a_destination_rule_that_is_not_the_operators_is_left_alone_and_the_deployment_says_so(
    givens: Callable[..., Given], kube: KubeCluster
) -> None:
    """Given v1 serving through the VirtualService (destination: its Service) and a DestinationRule ``shop`` that
    the mesh team made, when the ModelDeployment turns to host mode with v2, then the operator changes neither the
    rule nor the route (v1 keeps serving), and says why in condition Blocked and one Warning event, reconcile after
    reconcile. Once the team's rule is gone, the operator makes its own and the rollout goes on."""
    given = givens("istio")
    given.deployed("shop", "v1")
    theirs = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": {"name": "shop", "labels": {"team": "mesh"}},
        "spec": {"host": "shop", "subsets": [{"name": "stable", "labels": {"track": "stable"}}]},
    }
    given.api.create(DESTINATIONRULES, given.ns, theirs)
    before = given.api.get(DESTINATIONRULES, given.ns, "shop")
    assert before is not None
    route_before = given.api.get(VIRTUALSERVICES, given.ns, "shop")["spec"]  # type: ignore[index]

    given.errors("v2", 0.0)
    spec = {"model": {"version": "v2", "uri": "file:///models/v2.pkl"}, "traffic": {"istio": {"host": "shop"}}}
    given.api.patch(MODELDEPLOYMENTS, given.ns, "shop", {"spec": spec})

    def blocked() -> dict[str, Any]:
        found = {c["type"]: c for c in given.status("shop").get("conditions", [])}.get("Blocked")
        assert (found or {}).get("status") == "True", found
        assert found is not None
        return found

    found = eventually(blocked, timeout=60)
    assert found["reason"] == "ObjectNotOwned"
    assert found["message"].startswith(
        f"DestinationRule {given.ns}/shop exists and does not belong to ModelDeployment 'shop'"
    ), found
    assert "delete or rename it" in found["message"], found
    # the operator keeps trying (it reads the rule again and again) and says it once
    log = given.cluster.requests
    tries = len(log.matching(user=kube.operator_user, verb="get", resource="destinationrules", namespace=given.ns))
    eventually(
        lambda: (
            len(log.matching(user=kube.operator_user, verb="get", resource="destinationrules", namespace=given.ns))
            >= tries + 3
        ),
        timeout=30,
    )
    (event,) = events_of(given, "shop", "ObjectNotOwned")
    assert (event["type"], event.get("count", 1), event["message"]) == ("Warning", 1, found["message"])
    assert given.api.get(DESTINATIONRULES, given.ns, "shop") == before, "their rule: not a field changed"
    assert given.api.get(VIRTUALSERVICES, given.ns, "shop")["spec"] == route_before, "nor the route"  # type: ignore[index]
    status = given.status("shop")
    assert (status["phase"], status["stableVersion"], given.weights("shop")) == ("Promoted", "v1", {"v1": 100})
    assert condition(given, "shop", "Ready")["status"] == "True", "v1 keeps serving"

    given.api.delete(DESTINATIONRULES, given.ns, "shop")
    eventually(lambda: given.status("shop").get("stableVersion") == "v2", timeout=150)
    assert condition(given, "shop", "Blocked")["status"] == "False"
    rule = given.api.get(DESTINATIONRULES, given.ns, "shop")
    assert rule is not None
    assert rule["metadata"]["ownerReferences"][0]["uid"] == given.md("shop")["metadata"]["uid"]
