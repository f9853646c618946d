"""A running operator survives its watch's resourceVersion expiring: the API server restarts, etcd has compacted
away the revision the operator's watch was at, the resumed watch is answered 410 Gone, kopf lists again, and a
change made after the restart is acted upon.

This restarts the session's kube-apiserver (every client reconnects; those that resume from an old revision get the
same 410 and relist, as in any cluster after a compaction); the test ends by checking the cluster works as before.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import kubernetes
import pytest
from kubernetes.client.exceptions import ApiException

from modelops.adapters.kube import MODELDEPLOYMENTS, Resource, RestKubeApi
from modelops.sandbox.cluster import NODE_NAME, LocalCluster
from plugins.cluster import KubeCluster

from .conftest import OperatorFactory, eventually, model_deployment

pytestmark = pytest.mark.integration

CONFIGMAPS = Resource("", "v1", "configmaps", "ConfigMap")
RESTARTED = "Restarting the watch-stream for modeldeployments.v1alpha1.modelops.io"


def compact_etcd(cluster: LocalCluster) -> int:
    """Compact etcd up to its current revision (through its gRPC gateway): every older revision is gone, as after
    the API server's own periodic compaction (every 5 min by default). Returns that revision."""
    with httpx.Client(base_url=cluster.etcd_url, timeout=10) as etcd:
        answer = etcd.post("/v3/kv/range", json={"key": "Lw==", "limit": 1, "keys_only": True})  # key "/"
        revision = int(answer.raise_for_status().json()["header"]["revision"])
        etcd.post("/v3/kv/compaction", json={"revision": str(revision), "physical": True}).raise_for_status()
    return revision


def watch_from(kube: KubeCluster, namespace: str, resource_version: str) -> int | None:
    """Watch ModelDeployments from ``resource_version`` for a moment: the code of an error it is answered with
    (410 when that revision is gone), or None when the watch runs."""
    client = kube.client()
    try:
        api = kubernetes.client.CustomObjectsApi(client)
        response = api.list_namespaced_custom_object(
            MODELDEPLOYMENTS.group, MODELDEPLOYMENTS.version, namespace, MODELDEPLOYMENTS.plural,
            watch=True, resource_version=resource_version, timeout_seconds=2, _preload_content=False,
        )  # fmt: skip
        for line in response.read().decode().splitlines():
            event: dict[str, Any] = json.loads(line)
            if event.get("type") == "ERROR":
                return int(event["object"]["code"])
        return None
    except ApiException as e:
        return int(e.status)
    finally:
        client.close()


def status_of(admin: RestKubeApi, namespace: str, name: str) -> dict[str, Any]:
    obj = admin.get(MODELDEPLOYMENTS, namespace, name)
    assert obj is not None
    return {"generation": obj["metadata"]["generation"], **(obj.get("status") or {})}


def acted_on(admin: RestKubeApi, namespace: str, name: str, generation: int, version: str) -> bool:
    status = status_of(admin, namespace, name)
    return status.get("observedGeneration") == generation and status.get("observedSpecVersion") == version


def assert_cluster_works(kube: KubeCluster) -> None:
    """The API server answers, the controllers and the node agent are back on their watches."""
    namespace = kube.namespace("after-restart")
    client = kube.client()
    try:
        core = kubernetes.client.CoreV1Api(client)
        eventually(lambda: core.read_namespaced_service_account("default", namespace), timeout=60,
                   what="the ServiceAccount controller after the restart")  # fmt: skip
        node = core.read_node(NODE_NAME)
        ready = [c for c in node.status.conditions or [] if c.type == "Ready"]
        assert [c.status for c in ready] == ["True"], node.status.conditions
    finally:
        client.close()


def test_the_operator_relists_after_410_gone_and_acts_on_a_later_change(
    kube: KubeCluster, admin: RestKubeApi, start_operator: OperatorFactory
) -> None:
    namespace = kube.namespace("relist")
    # -v: kopf says when a watch restarts; a long resync: only the watch can bring the change in time
    operator = start_operator("--standalone", f"--namespace={namespace}", "--resync=3600", "-v").wait_healthy()
    admin.create(MODELDEPLOYMENTS, namespace, model_deployment("fraud"))
    eventually(lambda: acted_on(admin, namespace, "fraud", 1, "v1"), timeout=60, what="the first reconcile")
    seen = admin.get(MODELDEPLOYMENTS, namespace, "fraud")
    assert seen is not None
    old = seen["metadata"]["resourceVersion"]
    assert watch_from(kube, namespace, old) is None, "before the compaction a watch from there runs"

    try:
        # The operator's watch sees this last; then two writes it does not watch move etcd on past it, and the
        # compaction removes every revision up to now: resuming from the operator's revision is impossible.
        touched = admin.patch(MODELDEPLOYMENTS, namespace, "fraud", {"metadata": {"labels": {"touched": "yes"}}})
        for n in range(2):
            admin.create(CONFIGMAPS, namespace, {"metadata": {"name": f"bump-{n}"}})
        compacted = compact_etcd(kube.cluster)
        assert compacted > int(touched["metadata"]["resourceVersion"]) + 1
        log_before = len(operator.log())
        kube.cluster.restart("kube-apiserver")
        restarted_at = time.monotonic()

        assert watch_from(kube, namespace, old) == 410, "the old resourceVersion is gone"
        admin.patch(
            MODELDEPLOYMENTS, namespace, "fraud", {"spec": {"model": {"version": "v2", "uri": "s3://models/fraud/v2"}}}
        )
        eventually(lambda: acted_on(admin, namespace, "fraud", 2, "v2"), timeout=90,
                   what=lambda: f"the operator acting on the change after the restart:\n{operator.tail()}")  # fmt: skip
        print(f"acted on the change {time.monotonic() - restarted_at:.1f} s after the API server was back")
        after = operator.log()[log_before:]
        assert f"{RESTARTED} in {namespace!r}" in after, operator.tail(60)
        assert operator.alive
    finally:
        assert_cluster_works(kube)
