"""The kube adapter's I/O against the in-memory API: writes only on change, deletes only what it owns."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from adapters.builders import NAMESPACE, make_md
from modelops.adapters.kube import (
    DEPLOYMENTS,
    EVENTS,
    JOBS,
    MAX_TERMINATION_MESSAGE,
    PODS,
    SERVICES,
    InMemoryKube,
    JobState,
    KubeAdapter,
    NotOwnedError,
    Obj,
    Resource,
    build_deployment,
    router_owns_replicas,
)

URI = "s3://models/fraud/1.1.0"


@pytest.fixture
def adapter(kube: InMemoryKube) -> KubeAdapter:
    return KubeAdapter(kube, NAMESPACE)


def container(kube: InMemoryKube, name: str = "fraud-1-1-0") -> dict:
    return kube.objects[(DEPLOYMENTS, NAMESPACE, name)]["spec"]["template"]["spec"]["containers"][0]


def test_ensure_workload_creates_then_writes_nothing(kube: InMemoryKube, adapter: KubeAdapter) -> None:
    md = make_md()
    assert adapter.ensure_workload(md, "1.1.0", URI, replicas=4) is True
    assert [(c.verb, c.resource.kind) for c in kube.writes()] == [("create", "Deployment"), ("create", "Service")]
    assert kube.objects[(DEPLOYMENTS, NAMESPACE, "fraud-1-1-0")]["spec"]["replicas"] == 4

    # What the API server and other controllers add (defaults, extra labels) is no reason to write.
    kube.edit(
        DEPLOYMENTS,
        NAMESPACE,
        "fraud-1-1-0",
        {
            "metadata": {"labels": {"team": "risk"}},
            "spec": {
                "progressDeadlineSeconds": 600,
                "template": {
                    "spec": {
                        "containers": [
                            {**container(kube), "imagePullPolicy": "IfNotPresent", "terminationMessagePath": "/dev/x"}
                        ]
                    }
                },
            },
        },
    )
    kube.edit(SERVICES, NAMESPACE, "fraud-1-1-0", {"spec": {"clusterIP": "10.0.0.7", "type": "ClusterIP"}})
    writes = len(kube.writes())
    assert adapter.ensure_workload(md, "1.1.0", URI, replicas=4) is False
    assert len(kube.writes()) == writes


def test_ensure_workload_corrects_drift_and_keeps_foreign_fields(kube: InMemoryKube, adapter: KubeAdapter) -> None:
    md = make_md()
    adapter.ensure_workload(md, "1.1.0", URI, replicas=4)
    kube.edit(
        DEPLOYMENTS,
        NAMESPACE,
        "fraud-1-1-0",
        {"metadata": {"labels": {"team": "risk"}}, "spec": {"replicas": 9, "paused": False}},
    )
    kube.edit(
        DEPLOYMENTS,
        NAMESPACE,
        "fraud-1-1-0",
        {"spec": {"template": {"spec": {"containers": [{**container(kube), "image": "evil:latest"}]}}}},
    )
    writes = len(kube.writes())

    assert adapter.ensure_workload(md, "1.1.0", URI, replicas=4) is True
    assert [(c.verb, c.resource.kind) for c in kube.writes()[writes:]] == [("patch", "Deployment")]
    obj = kube.objects[(DEPLOYMENTS, NAMESPACE, "fraud-1-1-0")]
    assert obj["spec"]["replicas"] == 4
    assert container(kube)["image"] == "registry.local/server:1"
    assert obj["metadata"]["labels"]["team"] == "risk"
    assert obj["spec"]["paused"] is False


def test_replicas_router_owns_spec_replicas(kube: InMemoryKube, adapter: KubeAdapter) -> None:
    md = make_md("replicas")
    assert router_owns_replicas(md.spec)
    assert not router_owns_replicas(make_md("istio").spec)

    adapter.ensure_workload(md, "1.1.0", URI, replicas=4)
    assert kube.objects[(DEPLOYMENTS, NAMESPACE, "fraud-1-1-0")]["spec"]["replicas"] == 0  # no traffic until routed
    kube.edit(DEPLOYMENTS, NAMESPACE, "fraud-1-1-0", {"spec": {"replicas": 3}})  # the router's doing
    writes = len(kube.writes())
    assert adapter.ensure_workload(md, "1.1.0", URI, replicas=4) is False
    assert adapter.ensure_workload(md, "1.1.0", URI) is False
    assert len(kube.writes()) == writes
    assert kube.objects[(DEPLOYMENTS, NAMESPACE, "fraud-1-1-0")]["spec"]["replicas"] == 3


def test_shared_service_for_the_replicas_router(kube: InMemoryKube, adapter: KubeAdapter) -> None:
    assert adapter.ensure_shared_service(make_md("istio")) is False
    md = make_md("replicas")
    assert adapter.ensure_shared_service(md) is True
    assert adapter.ensure_shared_service(md) is False
    assert kube.objects[(SERVICES, NAMESPACE, "fraud")]["spec"]["selector"]["modelops.io/model"] == "fraud-model"


def test_a_foreign_object_with_the_same_name_is_not_overwritten(kube: InMemoryKube, adapter: KubeAdapter) -> None:
    md = make_md()
    foreign = build_deployment(md, "1.1.0", URI, replicas=1)
    foreign["metadata"]["ownerReferences"] = []
    foreign["spec"]["template"]["spec"]["containers"][0]["image"] = "user:1"
    kube.put(DEPLOYMENTS, NAMESPACE, foreign)

    with pytest.raises(NotOwnedError, match="fraud-1-1-0"):
        adapter.ensure_workload(md, "1.1.0", URI, replicas=4)
    assert kube.writes() == []
    assert container(kube)["image"] == "user:1"


class RacingKube(InMemoryKube):
    """Another operator replica creates the object between our read and our create."""

    def create(self, resource: Resource, namespace: str, body: Obj) -> Obj:
        self.put(resource, namespace, body)
        return super().create(resource, namespace, body)


def test_a_create_race_is_resolved_by_reading_again() -> None:
    kube = RacingKube()
    adapter = KubeAdapter(kube, NAMESPACE)
    assert adapter.ensure_workload(make_md(), "1.1.0", URI, replicas=4) is False
    assert [c.verb for c in kube.writes()] == ["create", "create"]  # both answered 409, nothing patched
    assert (DEPLOYMENTS, NAMESPACE, "fraud-1-1-0") in kube.objects


def test_delete_removes_only_owned_objects(kube: InMemoryKube, adapter: KubeAdapter) -> None:
    md = make_md()
    adapter.ensure_workload(md, "1.1.0", URI, replicas=4)
    adapter.ensure_workload(md, "1.2.0", URI, replicas=4)
    # A user's Deployment with the same name prefix and a foreign label, even with a copied ownerReference.
    user = build_deployment(md, "1.1.0", URI, replicas=1)
    user["metadata"]["name"] = "fraud-1-1-0-canary"
    user["metadata"]["labels"]["app.kubernetes.io/managed-by"] = "helm"
    kube.put(DEPLOYMENTS, NAMESPACE, user)
    # And one with our name but not our ownerReference.
    squatter = build_deployment(md, "9.9.9", URI, replicas=1)
    squatter["metadata"]["ownerReferences"][0]["uid"] = "another-uid"
    kube.put(DEPLOYMENTS, NAMESPACE, squatter)

    owned = adapter.list_owned(md)
    assert sorted((o["kind"], o["metadata"]["name"]) for o in owned) == [
        ("Deployment", "fraud-1-1-0"),
        ("Deployment", "fraud-1-2-0"),
        ("Service", "fraud-1-1-0"),
        ("Service", "fraud-1-2-0"),
    ]
    assert adapter.delete_workload(md, "1.1.0") is True
    assert adapter.delete_workload(md, "9.9.9") is False
    assert adapter.delete_workload(md, "1.1.0") is False
    names = {(r.kind, n) for (r, _, n) in kube.objects}
    assert names == {
        ("Deployment", "fraud-1-1-0-canary"),
        ("Deployment", "fraud-9-9-9"),
        ("Deployment", "fraud-1-2-0"),
        ("Service", "fraud-1-2-0"),
    }
    for obj in adapter.list_owned(md):
        assert adapter.delete_owned(md, obj) is True
    assert {n for (_, _, n) in kube.objects} == {"fraud-1-1-0-canary", "fraud-9-9-9"}
    with pytest.raises(ValueError, match="ConfigMap"):
        adapter.delete_owned(md, {"kind": "ConfigMap", "metadata": {"name": "x"}})


def test_observed_objects_for_a_retirement(kube: InMemoryKube, adapter: KubeAdapter) -> None:
    md = make_md()
    adapter.ensure_workload(md, "1.1.0", URI)
    user = build_deployment(md, "1.1.0", URI, replicas=1)
    user["metadata"]["name"] = "fraud-1-1-0-mine"
    user["metadata"]["ownerReferences"] = []
    kube.put(DEPLOYMENTS, NAMESPACE, user)

    seen = adapter.observe_objects({"modelops.io/model": "fraud-model"})
    by_name = {(o.kind, o.name): o for o in seen}
    assert set(by_name) == {
        ("Deployment", "fraud-1-1-0"),
        ("Deployment", "fraud-1-1-0-mine"),
        ("Service", "fraud-1-1-0"),
    }
    ours = by_name[("Deployment", "fraud-1-1-0")]
    assert ours.labels["modelops.io/version"] == "1.1.0"
    assert [(r.kind, r.name, r.uid) for r in ours.owners] == [("ModelDeployment", "fraud", md.metadata.uid)]
    assert by_name[("Deployment", "fraud-1-1-0-mine")].owners == ()

    # Deleting re-checks ownership, and the uid the core judged must still be the object's.
    assert (
        adapter.delete_object(md, "Deployment", "fraud-1-1-0-mine", by_name[("Deployment", "fraud-1-1-0-mine")].uid)
        is False
    )
    assert adapter.delete_object(md, "Deployment", "fraud-1-1-0", "an-older-uid") is False
    assert adapter.delete_object(md, "Deployment", "fraud-1-1-0", ours.uid) is True
    assert (DEPLOYMENTS, NAMESPACE, "fraud-1-1-0") not in kube.objects
    assert (DEPLOYMENTS, NAMESPACE, "fraud-1-1-0-mine") in kube.objects


def test_workload_ready_reads_deployment_status(kube: InMemoryKube, adapter: KubeAdapter) -> None:
    md = make_md()
    assert adapter.workload_ready(md, "1.1.0") is False
    adapter.ensure_workload(md, "1.1.0", URI, replicas=2)
    assert adapter.workload_ready(md, "1.1.0") is False
    kube.edit(
        DEPLOYMENTS,
        NAMESPACE,
        "fraud-1-1-0",
        {"status": {"observedGeneration": 1, "readyReplicas": 2, "updatedReplicas": 2}},
    )
    assert adapter.workload_ready(md, "1.1.0") is True


GATE_TEMPLATE = {"template": {"spec": {"containers": [{"name": "eval", "image": "eval:1"}]}}}


def finish_job(kube: InMemoryKube, name: str, condition: str, message: str | None, reason: str = "") -> None:
    kube.edit(
        JOBS, NAMESPACE, name, {"status": {"conditions": [{"type": condition, "status": "True", "reason": reason}]}}
    )
    terminated: dict = {"exitCode": 0 if condition == "Complete" else 1}
    if message is not None:
        terminated["message"] = message
    kube.put(
        PODS,
        NAMESPACE,
        {
            "metadata": {"name": f"{name}-abcde", "labels": {"job-name": name}},
            "status": {"containerStatuses": [{"name": "eval", "state": {"terminated": terminated}}]},
        },
    )


def start(adapter: KubeAdapter, name: str = "fraud-gate-acc") -> dict:
    env = {"MODEL_VERSION": "1.1.0", "MODEL_URI": URI, "STABLE_URI": "s3://models/fraud/1.0.0"}
    return adapter.start_job(
        make_md(), name, GATE_TEMPLATE, labels={"modelops.io/gate": "acc"}, env=env, timeout=timedelta(minutes=5)
    )


def test_job_lifecycle_with_json_results(kube: InMemoryKube, adapter: KubeAdapter) -> None:
    assert adapter.job_result("fraud-gate-acc").state is JobState.ABSENT
    job = start(adapter)
    assert job["spec"]["activeDeadlineSeconds"] == 300
    assert start(adapter)["metadata"]["uid"] == job["metadata"]["uid"], "starting twice reuses the Job"
    assert adapter.job_result("fraud-gate-acc").state is JobState.RUNNING

    results = {"metrics": {"accuracy": 0.93}, "groups": {"a": {"positiveRate": 0.4}}}
    finish_job(kube, "fraud-gate-acc", "Complete", json.dumps(results))
    outcome = adapter.job_result("fraud-gate-acc")
    assert outcome.state is JobState.SUCCEEDED
    assert outcome.results == results

    assert adapter.delete_job(make_md(), "fraud-gate-acc") is True
    assert adapter.job_result("fraud-gate-acc").state is JobState.ABSENT


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("accuracy=0.9", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        (None, "no termination message"),
    ],
)
def test_job_result_reports_bad_output(
    kube: InMemoryKube, adapter: KubeAdapter, message: str | None, expected: str
) -> None:
    start(adapter)
    finish_job(kube, "fraud-gate-acc", "Complete", message)
    outcome = adapter.job_result("fraud-gate-acc")
    assert outcome.results is None
    assert expected in outcome.message
    assert outcome.state is (JobState.SUCCEEDED if message is None else JobState.FAILED)


#: a gate's result of 4,842 bytes: more than a termination message holds
OVERSIZED = json.dumps({"metrics": {"accuracy": 0.9}, "groups": {f"g{i:04}": {"rate": 0.5} for i in range(200)}})
#: a result of exactly MAX_TERMINATION_MESSAGE bytes: it fits, and is judged as usual
EXACT = json.dumps({"metrics": {"accuracy": 0.9}, "note": ""})
EXACT = EXACT.replace('"note": ""', '"note": "' + "x" * (MAX_TERMINATION_MESSAGE - len(EXACT)) + '"')


@pytest.mark.parametrize(
    ("message", "state", "expected"),
    [
        pytest.param(OVERSIZED.encode()[:MAX_TERMINATION_MESSAGE].decode(), JobState.FAILED, "cut", id="head-kept"),
        # the kubelet keeps the last 4096 bytes of the file (tail.ReadAtMost)
        pytest.param(OVERSIZED.encode()[-MAX_TERMINATION_MESSAGE:].decode(), JobState.FAILED, "cut", id="tail-kept"),
        # a cut through a multi-byte character comes back as U+FFFD: more bytes than the limit
        pytest.param("é" * 2047 + "\ufffd", JobState.FAILED, "cut", id="cut-through-a-character"),
        pytest.param(EXACT, JobState.SUCCEEDED, "", id="exactly-the-limit-and-valid"),
        pytest.param(OVERSIZED[: MAX_TERMINATION_MESSAGE - 1], JobState.FAILED, "not JSON", id="one-byte-short"),
    ],
)
def test_a_result_cut_at_the_termination_message_limit_fails_naming_the_limit(
    kube: InMemoryKube, adapter: KubeAdapter, message: str, state: JobState, expected: str
) -> None:
    assert len(OVERSIZED) > MAX_TERMINATION_MESSAGE
    assert len(EXACT) == MAX_TERMINATION_MESSAGE
    start(adapter)
    finish_job(kube, "fraud-gate-acc", "Complete", message)
    outcome = adapter.job_result("fraud-gate-acc")
    assert outcome.state is state, outcome.message
    if expected == "cut":
        assert outcome.results is None
        assert "cut at the 4096-byte termination message limit" in outcome.message, outcome.message
        assert "write a smaller result" in outcome.message
    elif expected:
        assert expected in outcome.message
        assert "cut at" not in outcome.message, outcome.message
    else:
        assert outcome.results == json.loads(EXACT)


@pytest.mark.parametrize(
    ("reason", "state"), [("BackoffLimitExceeded", JobState.FAILED), ("DeadlineExceeded", JobState.TIMED_OUT)]
)
def test_failed_job_keeps_its_reason(kube: InMemoryKube, adapter: KubeAdapter, reason: str, state: JobState) -> None:
    start(adapter)
    finish_job(kube, "fraud-gate-acc", "Failed", None, reason=reason)
    outcome = adapter.job_result("fraud-gate-acc")
    assert outcome.state is state
    assert reason in outcome.message


def test_failed_job_with_json_output_keeps_it(kube: InMemoryKube, adapter: KubeAdapter) -> None:
    start(adapter)
    finish_job(kube, "fraud-gate-acc", "Failed", '{"error": "accuracy 0.4"}', reason="BackoffLimitExceeded")
    outcome = adapter.job_result("fraud-gate-acc")
    assert outcome.state is JobState.FAILED
    assert outcome.results == {"error": "accuracy 0.4"}


def test_a_foreign_job_is_neither_reused_nor_deleted(kube: InMemoryKube, adapter: KubeAdapter) -> None:
    kube.put(JOBS, NAMESPACE, {"metadata": {"name": "fraud-gate-acc", "labels": {"team": "x"}}, "spec": {}})
    with pytest.raises(NotOwnedError):
        start(adapter)
    assert adapter.delete_job(make_md(), "fraud-gate-acc") is False
    assert (JOBS, NAMESPACE, "fraud-gate-acc") in kube.objects


def test_events_are_created_then_counted(kube: InMemoryKube, adapter: KubeAdapter) -> None:
    md = make_md()
    t0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    adapter.emit_event(md, "Normal", "StepAdvanced", "weight 25", now=t0)
    adapter.emit_event(md, "Normal", "StepAdvanced", "weight 25", now=t0 + timedelta(seconds=5))
    adapter.emit_event(md, "Warning", "RolledBack", "error rate 0.2 > 0.05", now=t0)
    events = sorted((e for (r, _, _), e in kube.objects.items() if r == EVENTS), key=lambda e: e["reason"])
    assert [(e["reason"], e["count"]) for e in events] == [("RolledBack", 1), ("StepAdvanced", 2)]
    step = events[1]
    assert step["involvedObject"]["kind"] == "ModelDeployment"
    assert step["involvedObject"]["uid"] == md.metadata.uid
    assert step["firstTimestamp"] == "2026-11-28T12:00:00Z"
    assert step["lastTimestamp"] == "2026-11-28T12:00:05Z"
    assert step["type"] == "Normal"


def test_in_a_pod_of_several_containers_the_limit_is_the_kubelets_share_of_12_kib(
    kube: InMemoryKube, adapter: KubeAdapter
) -> None:
    """A gate Pod with a mesh sidecar and two init containers: the kubelet keeps 12 KiB / 4 = 3072 bytes of each
    container's message, so a result cut there is named as cut at 3072 bytes, not as mere bad JSON."""
    start(adapter)
    finish_job(kube, "fraud-gate-acc", "Complete", OVERSIZED[:3072])
    pod = kube.get(PODS, NAMESPACE, "fraud-gate-acc-abcde")
    assert pod is not None
    containers = {"initContainers": [{"name": "a"}, {"name": "b"}], "containers": [{"name": "eval"}, {"name": "s"}]}
    kube.edit(PODS, NAMESPACE, "fraud-gate-acc-abcde", {"spec": containers})
    outcome = adapter.job_result("fraud-gate-acc")
    assert outcome.state is JobState.FAILED
    assert "cut at the 3072-byte termination message limit" in outcome.message, outcome.message


def test_an_old_services_selector_gets_the_component_key_only_once_its_pods_carry_it(
    kube: InMemoryKube, adapter: KubeAdapter
) -> None:
    """Upgrade: a Service and Deployment made before serving Pods carried modelops.io/component. Adding the key to
    the selector while the labelled Pods roll out would leave the Service without endpoints: it waits for them."""
    md = make_md()
    adapter.ensure_workload(md, "1.1.0", URI, replicas=2)
    # as an older operator made them: no component label anywhere
    old = {"modelops.io/component": None}
    kube.edit(SERVICES, NAMESPACE, "fraud-1-1-0", {"spec": {"selector": old}})
    kube.edit(DEPLOYMENTS, NAMESPACE, "fraud-1-1-0", {"spec": {"template": {"metadata": {"labels": old}}}})

    def selector() -> dict[str, str]:
        return dict(kube.objects[(SERVICES, NAMESPACE, "fraud-1-1-0")]["spec"]["selector"])

    assert adapter.ensure_workload(md, "1.1.0", URI, replicas=2) is True  # the Pod template gets the label
    deployment = kube.objects[(DEPLOYMENTS, NAMESPACE, "fraud-1-1-0")]
    assert deployment["spec"]["template"]["metadata"]["labels"]["modelops.io/component"] == "server"
    assert "modelops.io/component" not in selector(), "not while the labelled Pods are rolling out"

    generation = deployment["metadata"].get("generation", 1)
    rolled_out = {"observedGeneration": generation, "replicas": 2, "readyReplicas": 2, "updatedReplicas": 2}
    kube.edit(DEPLOYMENTS, NAMESPACE, "fraud-1-1-0", {"status": rolled_out})
    assert adapter.ensure_workload(md, "1.1.0", URI, replicas=2) is True
    assert selector()["modelops.io/component"] == "server"
    assert adapter.ensure_workload(md, "1.1.0", URI, replicas=2) is False
