"""Two replicas of the operator, as the chart's ``replicaCount: 2`` runs them: one acts, the other stands by, and the
standby takes over when the acting one is killed (within about the peering lifetime) or stopped (at once).

The chart is installed as a release of its own (peering on, watching one namespace, so a KopfPeering there) with
``replicaCount: 0``: there is no container runtime, so the replicas are ``modelops run`` processes started with the
arguments the chart renders for ``replicaCount: 2``, authenticated as that release's ServiceAccount. Which replica
acts is read from each one's own metrics (its reconcile count), and from the peering object's records.

kopf 1.45 pauses every peer when two share the highest priority, and every replica has priority 0 unless told
otherwise: without ``modelops run`` deriving a distinct priority per process, neither replica would ever act.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelops.adapters.kube import MODELDEPLOYMENTS, Resource, RestKubeApi
from modelops.handlers.config import PEERING_LIFETIME
from modelops.sandbox.install import CHART, Installation, helm, install_operator
from modelops.sandbox.prometheus import PrometheusServer
from plugins.cluster import KubeCluster

from .conftest import Operator, OperatorFactory, eventually, model_deployment

pytestmark = pytest.mark.integration

RELEASE = "modelops-ha"
RELEASE_NAMESPACE = "modelops-ha"
PEERING = "modelops"
KOPFPEERINGS = Resource("kopf.dev", "v1", "kopfpeerings", "KopfPeering")


class Release:
    """The HA release: the namespace it watches, its ServiceAccount, and the replica arguments the chart renders."""

    def __init__(self, namespace: str, installation: Installation, args: list[str]) -> None:
        self.namespace = namespace
        self.installation = installation
        self.args = args


def chart_values(namespace: str, prometheus: PrometheusServer, replicas: int) -> dict[str, Any]:
    return {
        "replicaCount": replicas,
        "peering": {"enabled": True, "name": PEERING},
        "watchNamespaces": [namespace],
        "prometheus": {"url": prometheus.url},
    }


def rendered_replicas(kube: KubeCluster, values: dict[str, Any], directory: Path) -> tuple[int, list[str]]:
    """``helm template`` of the chart: the Deployment's replica count and its container's arguments."""
    path = directory / "ha-values.json"
    path.write_text(json.dumps(values))
    out = helm(kube.kubeconfig, "template", RELEASE, str(CHART), f"--namespace={RELEASE_NAMESPACE}",
               f"--values={path}").stdout  # fmt: skip
    (deployment,) = [d for d in yaml.safe_load_all(out) if d and d["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return int(deployment["spec"]["replicas"]), [str(a) for a in container["args"]]


@pytest.fixture(scope="module")
def release(
    kube: KubeCluster, prometheus: PrometheusServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Release]:
    namespace = kube.namespace("ha")
    replicas, args = rendered_replicas(kube, chart_values(namespace, prometheus, 2), tmp_path_factory.mktemp("ha"))
    assert replicas == 2
    assert f"--peering={PEERING}" in args
    assert f"--namespace={namespace}" in args
    installation = install_operator(
        kube.cluster,
        release=RELEASE,
        namespace=RELEASE_NAMESPACE,
        values=chart_values(namespace, prometheus, 0),
    )
    try:
        yield Release(namespace, installation, args)
    finally:
        helm(kube.kubeconfig, "uninstall", RELEASE, f"--namespace={RELEASE_NAMESPACE}", check=False)


def peers(admin: RestKubeApi, namespace: str) -> dict[str, dict[str, Any]]:
    """The records of the live replicas in the peering object (identity -> priority, lifetime, lastseen)."""
    peering = admin.get(KOPFPEERINGS, namespace, PEERING)
    assert peering is not None, "the chart creates the KopfPeering"
    return dict(peering.get("status") or {})


def priority_of(operator: Operator) -> int:
    found = re.search(rf"peering '{PEERING}': priority (-?\d+)", operator.log())
    assert found, operator.tail()
    return int(found.group(1))


def has_record(admin: RestKubeApi, namespace: str, operator: Operator) -> bool:
    return priority_of(operator) in {p.get("priority") for p in peers(admin, namespace).values()}


def acted_on(admin: RestKubeApi, namespace: str, name: str, generation: int, version: str) -> bool:
    obj = admin.get(MODELDEPLOYMENTS, namespace, name)
    assert obj is not None
    status = obj.get("status") or {}
    return (
        obj["metadata"]["generation"] == generation
        and status.get("observedGeneration") == generation
        and status.get("observedSpecVersion") == version
    )


def new_version(admin: RestKubeApi, namespace: str, name: str, version: str) -> int:
    changed = admin.patch(
        MODELDEPLOYMENTS, namespace, name, {"spec": {"model": {"version": version, "uri": f"s3://m/{version}"}}}
    )
    return int(changed["metadata"]["generation"])


def two_replicas(
    release: Release, admin: RestKubeApi, start_operator: OperatorFactory, *extra: str
) -> tuple[Operator, Operator]:
    """Start replica A, then (once A's record is in the peering object) replica B: A is the older, so A acts."""
    kubeconfig = release.installation.kubeconfig
    a = start_operator(*release.args, *extra, name="replica-a", kubeconfig=kubeconfig).wait_healthy()
    eventually(lambda: has_record(admin, release.namespace, a), what="replica A in the peering object")
    b = start_operator(*release.args, *extra, name="replica-b", kubeconfig=kubeconfig).wait_healthy()
    eventually(lambda: has_record(admin, release.namespace, b), what="replica B in the peering object")
    assert priority_of(a) > priority_of(b), "the older replica ranks higher"
    return a, b


def test_replicas_of_equal_priority_all_pause(
    release: Release, admin: RestKubeApi, start_operator: OperatorFactory
) -> None:
    """What kopf 1.45 does on its own (every replica at its default priority 0): the first replica acts until the
    second appears, then both pause. This is why ``modelops run`` derives a priority per process."""
    ns = release.namespace
    kubeconfig = release.installation.kubeconfig
    a = start_operator(*release.args, "--priority=0", name="equal-a", kubeconfig=kubeconfig).wait_healthy()
    eventually(lambda: has_record(admin, ns, a), what="replica A in the peering object")
    b = start_operator(*release.args, "--priority=0", name="equal-b", kubeconfig=kubeconfig).wait_healthy()
    eventually(lambda: "Pausing all operators, including self" in a.log(), what=lambda: f"A pausing:\n{a.tail()}")
    eventually(lambda: "Possibly conflicting operators with the same priority" in b.log(), what=lambda: b.tail())
    assert [p["priority"] for p in peers(admin, ns).values()] == [0, 0]


def test_one_replica_acts_and_the_standby_takes_over_when_it_is_killed(
    release: Release, admin: RestKubeApi, start_operator: OperatorFactory
) -> None:
    ns = release.namespace
    a, b = two_replicas(release, admin, start_operator)
    admin.create(MODELDEPLOYMENTS, ns, model_deployment("fraud"))
    eventually(lambda: acted_on(admin, ns, "fraud", 1, "v1"), timeout=60, what=lambda: f"replica A acting:\n{a.tail()}")
    generation = new_version(admin, ns, "fraud", "v2")
    eventually(lambda: acted_on(admin, ns, "fraud", generation, "v2"), timeout=60, what="replica A acting again")
    # Both watched the same two changes; only A reconciled. B holds no loop for the object at all.
    assert a.reconciles() > 0
    assert b.reconciles() == 0, b.tail()
    assert len(peers(admin, ns)) == 2

    a.kill()
    killed = time.monotonic()
    generation = new_version(admin, ns, "fraud", "v3")
    eventually(lambda: acted_on(admin, ns, "fraud", generation, "v3"), timeout=PEERING_LIFETIME * 4,
               what=lambda: f"replica B taking over:\n{b.tail()}")  # fmt: skip
    took = time.monotonic() - killed
    print(f"takeover after SIGKILL: {took:.1f} s (peering lifetime {PEERING_LIFETIME} s)")
    assert b.reconciles() > 0
    assert "Resuming operations" in b.log()
    # the dead replica's record is cleaned up by the survivor
    eventually(lambda: [p["priority"] for p in peers(admin, ns).values()] == [priority_of(b)], what="A's record gone")


def test_a_stopped_replica_hands_over_at_once(
    release: Release, admin: RestKubeApi, start_operator: OperatorFactory
) -> None:
    """SIGTERM (a rolling update, a drained node): the leader removes its record on the way out, so the standby
    resumes at once, not when the record would have expired (a lifetime longer than the deadline below)."""
    ns = release.namespace
    lifetime = 300
    a, b = two_replicas(release, admin, start_operator, f"--peering-lifetime={lifetime}")
    admin.create(MODELDEPLOYMENTS, ns, model_deployment("churn"))
    eventually(lambda: acted_on(admin, ns, "churn", 1, "v1"), timeout=60, what=lambda: f"replica A acting:\n{a.tail()}")
    assert b.reconciles() == 0

    stopping = time.monotonic()
    a.stop()
    assert not a.alive
    assert not has_record(admin, ns, a), "a stopped replica says goodbye"
    generation = new_version(admin, ns, "churn", "v2")
    eventually(lambda: acted_on(admin, ns, "churn", generation, "v2"), timeout=60,
               what=lambda: f"replica B taking over:\n{b.tail()}")  # fmt: skip
    print(f"handover after SIGTERM: {time.monotonic() - stopping:.1f} s (peering lifetime {lifetime} s)")
    assert b.reconciles() > 0
