"""The emulator behaves as a kube-apiserver where the operator relies on it: driven through the real
``kubernetes`` client. Each test is named after the apiserver behaviour it mirrors."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import kubernetes
import pytest
from kubernetes.client import ApiClient, ApiException, CoreV1Api, CustomObjectsApi

from emulator.objects import GROUP, PLURAL, VERSION, config_map, model_deployment, owner_reference
from modelops.sandbox.apiserver import ApiServerEmulator, serve

pytestmark = pytest.mark.integration


@pytest.fixture
def core(apiserver_client: ApiClient) -> CoreV1Api:
    return CoreV1Api(apiserver_client)


@pytest.fixture
def custom(apiserver_client: ApiClient) -> CustomObjectsApi:
    return CustomObjectsApi(apiserver_client)


def create_mdep(custom: CustomObjectsApi, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
    return result


def get_mdep(custom: CustomObjectsApi, namespace: str, name: str) -> dict[str, Any]:
    result: dict[str, Any] = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    return result


def api_error(call: Callable[[], Any]) -> tuple[int, dict[str, Any]]:
    """Run a call expected to fail; return the HTTP status and the decoded Status body."""
    with pytest.raises(ApiException) as info:
        call()
    return info.value.status, json.loads(info.value.body)


@pytest.fixture
def http(apiserver_url: str) -> Iterator[httpx.Client]:
    """Plain HTTP to the emulator, for what the typed client hides (Content-Types, watch streams, discovery)."""
    with httpx.Client(base_url=apiserver_url, timeout=10) as client:
        yield client


def raw(
    http: httpx.Client,
    method: str,
    path: str,
    body: Any = None,
    content_type: str = "application/json",
    query: list[tuple[str, str]] | None = None,
) -> tuple[int, Any]:
    """A request with an explicit Content-Type (merge/JSON/strategic patches), answered as (status, JSON)."""
    content = json.dumps(body).encode() if body is not None else None
    response = http.request(
        method,
        path,
        params=query or [],
        content=content,
        headers={"Content-Type": content_type, "Accept": "application/json"},
    )
    return response.status_code, response.json()


def watch_lines(
    http: httpx.Client, path: str, query: list[tuple[str, str]], until: Callable[[list[dict[str, Any]]], bool]
) -> list[dict[str, Any]]:
    """Read a watch stream's events until ``until(events)`` holds or the server ends the stream."""
    events: list[dict[str, Any]] = []
    with http.stream("GET", path, params=[("watch", "true"), *query]) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.strip():
                events.append(json.loads(line))
                if until(events):
                    break
    return events


# ----------------------------------------------------------------------------- object metadata


def test_create_stamps_uid_resource_version_creation_timestamp_and_generation(custom, apiserver_namespace):
    created = create_mdep(custom, apiserver_namespace, model_deployment("stamped"))
    meta = created["metadata"]
    assert len(meta["uid"]) == 36
    assert int(meta["resourceVersion"]) > 0
    assert meta["creationTimestamp"].endswith("Z")
    assert meta["generation"] == 1
    assert meta["namespace"] == apiserver_namespace
    assert get_mdep(custom, apiserver_namespace, "stamped")["metadata"] == meta


def test_server_owned_metadata_cannot_be_set_by_clients(custom, apiserver_namespace):
    body = model_deployment("owned")
    body["metadata"].update(
        uid="mine", generation=7, resourceVersion="999999", creationTimestamp="2000-01-01T00:00:00Z"
    )
    meta = create_mdep(custom, apiserver_namespace, body)["metadata"]
    assert meta["uid"] != "mine"
    assert meta["generation"] == 1
    assert meta["creationTimestamp"] != "2000-01-01T00:00:00Z"


def test_resource_version_is_monotonic_across_writes_and_lists(custom, apiserver_namespace):
    versions = [int(create_mdep(custom, apiserver_namespace, model_deployment("rv"))["metadata"]["resourceVersion"])]
    for weight in (10, 20, 30):
        patched = custom.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            apiserver_namespace,
            PLURAL,
            "rv",
            {"spec": {"rollout": {"steps": [{"weight": weight}, {"weight": 100}]}}},
        )
        versions.append(int(patched["metadata"]["resourceVersion"]))
    listed = custom.list_namespaced_custom_object(GROUP, VERSION, apiserver_namespace, PLURAL)
    assert versions == sorted(set(versions))
    assert int(listed["metadata"]["resourceVersion"]) >= versions[-1]
    assert listed["items"][0]["metadata"]["resourceVersion"] == str(versions[-1])


def test_no_op_write_keeps_the_resource_version(custom, apiserver_namespace):
    created = create_mdep(custom, apiserver_namespace, model_deployment("noop"))
    patched = custom.patch_namespaced_custom_object(
        GROUP, VERSION, apiserver_namespace, PLURAL, "noop", {"spec": {"model": {"version": "v1"}}}
    )
    assert patched["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


def test_generation_is_bumped_by_spec_changes(custom, apiserver_namespace):
    create_mdep(custom, apiserver_namespace, model_deployment("gen"))
    patched = custom.patch_namespaced_custom_object(
        GROUP, VERSION, apiserver_namespace, PLURAL, "gen", {"spec": {"model": {"version": "v2"}}}
    )
    assert patched["metadata"]["generation"] == 2


def test_generation_is_not_bumped_by_status_only_changes(custom, apiserver_namespace):
    create_mdep(custom, apiserver_namespace, model_deployment("gen-status"))
    patched = custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, apiserver_namespace, PLURAL, "gen-status", {"status": {"phase": "Progressing"}}
    )
    assert patched["status"]["phase"] == "Progressing"
    assert patched["metadata"]["generation"] == 1


def test_generation_is_not_bumped_by_metadata_changes(custom, apiserver_namespace):
    create_mdep(custom, apiserver_namespace, model_deployment("gen-meta"))
    patched = custom.patch_namespaced_custom_object(
        GROUP, VERSION, apiserver_namespace, PLURAL, "gen-meta", {"metadata": {"labels": {"a": "b"}}}
    )
    assert patched["metadata"]["labels"] == {"a": "b"}
    assert patched["metadata"]["generation"] == 1


# ----------------------------------------------------------------------------- status subresource


def test_create_drops_status_when_the_status_subresource_is_enabled(custom, apiserver_namespace):
    body = model_deployment("create-status")
    body["status"] = {"phase": "Promoted"}
    assert "status" not in create_mdep(custom, apiserver_namespace, body)


def test_writes_to_the_main_resource_ignore_status(custom, apiserver_namespace):
    create_mdep(custom, apiserver_namespace, model_deployment("main-write"))
    custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, apiserver_namespace, PLURAL, "main-write", {"status": {"phase": "Progressing"}}
    )
    patched = custom.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        apiserver_namespace,
        PLURAL,
        "main-write",
        {"metadata": {"labels": {"x": "y"}}, "status": {"phase": "Failed"}},
    )
    assert patched["status"]["phase"] == "Progressing"
    assert patched["metadata"]["labels"] == {"x": "y"}


def test_writes_to_the_status_subresource_change_only_status(custom, apiserver_namespace):
    create_mdep(custom, apiserver_namespace, model_deployment("status-write"))
    patched = custom.patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        apiserver_namespace,
        PLURAL,
        "status-write",
        {"metadata": {"labels": {"x": "y"}}, "spec": {"model": {"version": "v9"}}, "status": {"phase": "Paused"}},
    )
    assert patched["status"]["phase"] == "Paused"
    assert patched["spec"]["model"]["version"] == "v1"
    assert "labels" not in patched["metadata"]


def test_status_put_replaces_only_status(custom, apiserver_namespace):
    created = create_mdep(custom, apiserver_namespace, model_deployment("status-put"))
    created["status"] = {"phase": "Validating"}
    created["spec"]["model"]["version"] = "v5"
    replaced = custom.replace_namespaced_custom_object_status(
        GROUP, VERSION, apiserver_namespace, PLURAL, "status-put", created
    )
    assert replaced["status"]["phase"] == "Validating"
    assert replaced["spec"]["model"]["version"] == "v1"


# ----------------------------------------------------------------------------- selectors


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("tier=web", {"a", "b"}),
        ("tier==web", {"a", "b"}),
        ("tier!=web", {"c", "d"}),
        ("tier in (db, cache)", {"c"}),
        ("tier notin (web)", {"c", "d"}),
        ("tier", {"a", "b", "c"}),
        ("!tier", {"d"}),
        ("tier=web,track=canary", {"b"}),
        ("tier=web,!track", {"a"}),
    ],
)
def test_list_filters_by_label_selector(core, apiserver_namespace, selector, expected):
    ns = apiserver_namespace
    core.create_namespaced_config_map(ns, config_map("a", {"tier": "web"}))
    core.create_namespaced_config_map(ns, config_map("b", {"tier": "web", "track": "canary"}))
    core.create_namespaced_config_map(ns, config_map("c", {"tier": "db"}))
    core.create_namespaced_config_map(ns, config_map("d", {"other": "x"}))
    listed = core.list_namespaced_config_map(ns, label_selector=selector)
    assert {item.metadata.name for item in listed.items} == expected


def test_list_filters_by_field_selector_metadata_name(core, apiserver_namespace):
    for name in ("one", "two"):
        core.create_namespaced_config_map(apiserver_namespace, config_map(name))
    listed = core.list_namespaced_config_map(apiserver_namespace, field_selector="metadata.name=two")
    assert [item.metadata.name for item in listed.items] == ["two"]
    listed = core.list_namespaced_config_map(apiserver_namespace, field_selector="metadata.name!=two")
    assert [item.metadata.name for item in listed.items] == ["one"]


def test_unsupported_field_selector_is_400_bad_request(core, apiserver_namespace):
    status, body = api_error(lambda: core.list_namespaced_config_map(apiserver_namespace, field_selector="spec.x=1"))
    assert (status, body["reason"]) == (400, "BadRequest")


def test_list_is_namespace_scoped_and_cluster_wide_lists_all_namespaces(core, apiserver, apiserver_namespace):
    other = f"{apiserver_namespace}-other"
    core.create_namespace({"metadata": {"name": other}})
    core.create_namespaced_config_map(apiserver_namespace, config_map("here", {"scope": apiserver_namespace}))
    core.create_namespaced_config_map(other, config_map("there", {"scope": apiserver_namespace}))
    namespaced = core.list_namespaced_config_map(apiserver_namespace, label_selector=f"scope={apiserver_namespace}")
    everywhere = core.list_config_map_for_all_namespaces(label_selector=f"scope={apiserver_namespace}")
    assert [i.metadata.name for i in namespaced.items] == ["here"]
    assert sorted(i.metadata.name for i in everywhere.items) == ["here", "there"]


def test_list_pages_with_limit_and_continue(core, apiserver_namespace):
    for i in range(5):
        core.create_namespaced_config_map(apiserver_namespace, config_map(f"page-{i}"))
    first = core.list_namespaced_config_map(apiserver_namespace, limit=2)
    second = core.list_namespaced_config_map(apiserver_namespace, limit=2, _continue=first.metadata._continue)
    third = core.list_namespaced_config_map(apiserver_namespace, limit=2, _continue=second.metadata._continue)
    names = [i.metadata.name for page in (first, second, third) for i in page.items]
    assert names == [f"page-{i}" for i in range(5)]
    assert third.metadata._continue is None


# ----------------------------------------------------------------------------- conflicts and errors


def test_update_with_a_stale_resource_version_is_409_conflict(custom, apiserver_namespace):
    stale = create_mdep(custom, apiserver_namespace, model_deployment("stale"))
    custom.patch_namespaced_custom_object(
        GROUP, VERSION, apiserver_namespace, PLURAL, "stale", {"metadata": {"labels": {"v": "2"}}}
    )
    stale["spec"]["model"]["version"] = "v3"
    status, body = api_error(
        lambda: custom.replace_namespaced_custom_object(GROUP, VERSION, apiserver_namespace, PLURAL, "stale", stale)
    )
    assert (status, body["kind"], body["reason"]) == (409, "Status", "Conflict")
    assert body["message"] == (
        'Operation cannot be fulfilled on modeldeployments.modelops.io "stale": the object has been modified; '
        "please apply your changes to the latest version and try again"
    )


def test_patch_with_a_stale_resource_version_is_409_conflict(custom, apiserver_namespace):
    stale_rv = create_mdep(custom, apiserver_namespace, model_deployment("stale-patch"))["metadata"]["resourceVersion"]
    custom.patch_namespaced_custom_object(
        GROUP, VERSION, apiserver_namespace, PLURAL, "stale-patch", {"metadata": {"labels": {"v": "2"}}}
    )
    status, body = api_error(
        lambda: custom.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            apiserver_namespace,
            PLURAL,
            "stale-patch",
            {"metadata": {"resourceVersion": stale_rv, "labels": {"v": "3"}}},
        )
    )
    assert (status, body["reason"]) == (409, "Conflict")


def test_update_with_the_current_resource_version_succeeds(custom, apiserver_namespace):
    current = create_mdep(custom, apiserver_namespace, model_deployment("current"))
    current["spec"]["model"]["version"] = "v3"
    replaced = custom.replace_namespaced_custom_object(GROUP, VERSION, apiserver_namespace, PLURAL, "current", current)
    assert replaced["spec"]["model"]["version"] == "v3"
    assert replaced["metadata"]["generation"] == 2


def test_custom_resource_update_without_resource_version_is_422(custom, apiserver_namespace):
    body = create_mdep(custom, apiserver_namespace, model_deployment("no-rv"))
    del body["metadata"]["resourceVersion"]
    status, body = api_error(
        lambda: custom.replace_namespaced_custom_object(GROUP, VERSION, apiserver_namespace, PLURAL, "no-rv", body)
    )
    assert (status, body["reason"]) == (422, "Invalid")
    assert body["details"]["causes"][0]["field"] == "metadata.resourceVersion"


def test_json_patch_whose_test_operation_fails_is_422(http, custom, apiserver_namespace):
    create_mdep(custom, apiserver_namespace, model_deployment("json-test"))
    path = f"/apis/{GROUP}/{VERSION}/namespaces/{apiserver_namespace}/{PLURAL}/json-test"
    ops = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": "1"},
        {"op": "add", "path": "/metadata/finalizers", "value": ["x.io/f"]},
    ]
    status, body = raw(http, "PATCH", path, ops, "application/json-patch+json")
    assert (status, body["reason"]) == (422, "Invalid")
    assert "finalizers" not in get_mdep(custom, apiserver_namespace, "json-test")["metadata"]


def test_get_of_a_missing_object_is_404_not_found_status(custom, apiserver_namespace):
    status, body = api_error(lambda: get_mdep(custom, apiserver_namespace, "missing"))
    assert status == 404
    assert body == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'modeldeployments.modelops.io "missing" not found',
        "reason": "NotFound",
        "details": {"name": "missing", "group": "modelops.io", "kind": "modeldeployments"},
        "code": 404,
    }


def test_create_of_an_existing_object_is_409_already_exists_status(core, apiserver_namespace):
    core.create_namespaced_config_map(apiserver_namespace, config_map("twice"))
    status, body = api_error(lambda: core.create_namespaced_config_map(apiserver_namespace, config_map("twice")))
    assert (status, body["reason"], body["message"]) == (409, "AlreadyExists", 'configmaps "twice" already exists')
    assert body["details"] == {"name": "twice", "group": "", "kind": "configmaps"}


def test_unknown_resource_is_404(http):
    status, body = raw(http, "GET", "/apis/nothing.io/v1/things")
    assert (status, body["reason"]) == (404, "NotFound")


# ----------------------------------------------------------------------------- patches


def test_merge_patch_deletes_keys_with_null_and_replaces_lists(http, custom, apiserver_namespace):
    create_mdep(custom, apiserver_namespace, model_deployment("merge", labels={"a": "1", "b": "2"}))
    path = f"/apis/{GROUP}/{VERSION}/namespaces/{apiserver_namespace}/{PLURAL}/merge"
    patch = {"metadata": {"labels": {"a": None}}, "spec": {"rollout": {"steps": [{"weight": 100}]}}}
    status, body = raw(http, "PATCH", path, patch, "application/merge-patch+json")
    assert status == 200
    assert body["metadata"]["labels"] == {"b": "2"}
    assert [s["weight"] for s in body["spec"]["rollout"]["steps"]] == [100]


def test_strategic_merge_patch_merges_containers_by_name(apiserver_client, http, apiserver_namespace):
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "smp"},
        "spec": {
            "selector": {"matchLabels": {"app": "x"}},
            "template": {
                "metadata": {"labels": {"app": "x"}},
                "spec": {"containers": [{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}]},
            },
        },
    }
    kubernetes.client.AppsV1Api(apiserver_client).create_namespaced_deployment(apiserver_namespace, deployment)
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "b", "image": "b:2"}]}}}}
    path = f"/apis/apps/v1/namespaces/{apiserver_namespace}/deployments/smp"
    status, body = raw(http, "PATCH", path, patch, "application/strategic-merge-patch+json")
    assert status == 200
    assert body["spec"]["template"]["spec"]["containers"] == [
        {"name": "a", "image": "a:1"},
        {"name": "b", "image": "b:2"},
    ]
    assert body["metadata"]["generation"] == 2


def test_server_side_apply_is_415_unsupported(http, core, apiserver_namespace):
    core.create_namespaced_config_map(apiserver_namespace, config_map("ssa"))
    path = f"/api/v1/namespaces/{apiserver_namespace}/configmaps/ssa"
    status, body = raw(http, "PATCH", path, {"data": {}}, "application/apply-patch+yaml")
    assert (status, body["reason"]) == (415, "UnsupportedMediaType")


# ----------------------------------------------------------------------------- deletion


def test_delete_with_finalizers_sets_deletion_timestamp_and_keeps_the_object(core, apiserver_namespace):
    core.create_namespaced_config_map(apiserver_namespace, config_map("fin", finalizers=["x.io/a", "x.io/b"]))
    core.delete_namespaced_config_map("fin", apiserver_namespace)
    marked = core.read_namespaced_config_map("fin", apiserver_namespace)
    assert marked.metadata.deletion_timestamp is not None
    core.patch_namespaced_config_map("fin", apiserver_namespace, {"metadata": {"finalizers": ["x.io/b"]}})
    assert core.read_namespaced_config_map("fin", apiserver_namespace).metadata.finalizers == ["x.io/b"]
    core.patch_namespaced_config_map("fin", apiserver_namespace, {"metadata": {"finalizers": None}})
    status, _ = api_error(lambda: core.read_namespaced_config_map("fin", apiserver_namespace))
    assert status == 404


def test_no_new_finalizers_on_an_object_being_deleted(core, apiserver_namespace):
    core.create_namespaced_config_map(apiserver_namespace, config_map("fin-new", finalizers=["x.io/a"]))
    core.delete_namespaced_config_map("fin-new", apiserver_namespace)
    status, body = api_error(
        lambda: core.patch_namespaced_config_map(
            "fin-new", apiserver_namespace, {"metadata": {"finalizers": ["x.io/a", "x.io/b"]}}
        )
    )
    assert (status, body["reason"]) == (422, "Invalid")


def test_delete_without_finalizers_removes_the_object(core, apiserver_namespace):
    core.create_namespaced_config_map(apiserver_namespace, config_map("gone"))
    core.delete_namespaced_config_map("gone", apiserver_namespace)
    status, body = api_error(lambda: core.delete_namespaced_config_map("gone", apiserver_namespace))
    assert (status, body["reason"]) == (404, "NotFound")


def test_delete_precondition_on_resource_version_is_409(core, apiserver_namespace):
    core.create_namespaced_config_map(apiserver_namespace, config_map("pre"))
    options = kubernetes.client.V1DeleteOptions(preconditions=kubernetes.client.V1Preconditions(resource_version="1"))
    status, body = api_error(lambda: core.delete_namespaced_config_map("pre", apiserver_namespace, body=options))
    assert (status, body["reason"]) == (409, "Conflict")


def test_owner_deletion_cascades_to_dependents_in_the_background(core, custom, apiserver_namespace):
    owner = create_mdep(custom, apiserver_namespace, model_deployment("owner"))
    core.create_namespaced_config_map(apiserver_namespace, config_map("child", owners=[owner_reference(owner)]))
    child = core.read_namespaced_config_map("child", apiserver_namespace).to_dict()
    child_ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "child", "uid": child["metadata"]["uid"]}
    core.create_namespaced_config_map(apiserver_namespace, config_map("grandchild", owners=[child_ref]))
    custom.delete_namespaced_custom_object(GROUP, VERSION, apiserver_namespace, PLURAL, "owner")
    remaining = {i.metadata.name for i in core.list_namespaced_config_map(apiserver_namespace).items}
    assert remaining == set()


def test_dependent_with_a_remaining_owner_is_not_collected(core, custom, apiserver_namespace):
    first = create_mdep(custom, apiserver_namespace, model_deployment("first"))
    second = create_mdep(custom, apiserver_namespace, model_deployment("second"))
    owners = [owner_reference(first), {**owner_reference(second), "controller": False}]
    core.create_namespaced_config_map(apiserver_namespace, config_map("shared", owners=owners))
    custom.delete_namespaced_custom_object(GROUP, VERSION, apiserver_namespace, PLURAL, "first")
    assert core.read_namespaced_config_map("shared", apiserver_namespace).metadata.name == "shared"
    custom.delete_namespaced_custom_object(GROUP, VERSION, apiserver_namespace, PLURAL, "second")
    assert core.list_namespaced_config_map(apiserver_namespace).items == []


def test_orphan_propagation_keeps_dependents(core, custom, apiserver_namespace):
    owner = create_mdep(custom, apiserver_namespace, model_deployment("orphaner"))
    core.create_namespaced_config_map(apiserver_namespace, config_map("orphan", owners=[owner_reference(owner)]))
    custom.delete_namespaced_custom_object(
        GROUP, VERSION, apiserver_namespace, PLURAL, "orphaner", propagation_policy="Orphan"
    )
    assert core.read_namespaced_config_map("orphan", apiserver_namespace).metadata.name == "orphan"


def test_owner_with_finalizers_keeps_dependents_until_released(core, custom, apiserver_namespace):
    body = model_deployment("held")
    body["metadata"]["finalizers"] = ["x.io/hold"]
    owner = create_mdep(custom, apiserver_namespace, body)
    core.create_namespaced_config_map(apiserver_namespace, config_map("held-child", owners=[owner_reference(owner)]))
    custom.delete_namespaced_custom_object(GROUP, VERSION, apiserver_namespace, PLURAL, "held")
    assert core.read_namespaced_config_map("held-child", apiserver_namespace).metadata.name == "held-child"
    custom.patch_namespaced_custom_object(
        GROUP, VERSION, apiserver_namespace, PLURAL, "held", {"metadata": {"finalizers": None}}
    )
    assert core.list_namespaced_config_map(apiserver_namespace).items == []


# ----------------------------------------------------------------------------- schema


def test_invalid_object_is_422_naming_the_field(custom, apiserver_namespace):
    body = model_deployment("invalid", rollout={"steps": [{"weight": 5}, {"weight": 150}, {"weight": 100}]})
    status, result = api_error(lambda: create_mdep(custom, apiserver_namespace, body))
    assert (status, result["reason"], result["code"]) == (422, "Invalid", 422)
    assert result["message"] == (
        'ModelDeployment.modelops.io "invalid" is invalid: spec.rollout.steps[1].weight: Invalid value: 150: '
        "spec.rollout.steps[1].weight in body should be less than or equal to 100"
    )
    assert result["details"]["causes"] == [
        {
            "reason": "FieldValueInvalid",
            "field": "spec.rollout.steps[1].weight",
            "message": "Invalid value: 150: spec.rollout.steps[1].weight in body should be less than or equal to 100",
        }
    ]
    assert (result["details"]["kind"], result["details"]["name"]) == ("ModelDeployment", "invalid")


def test_several_invalid_fields_are_all_reported(custom, apiserver_namespace):
    body = model_deployment("invalid-many", traffic={"router": "nginx"})
    del body["spec"]["model"]["uri"]
    status, result = api_error(lambda: create_mdep(custom, apiserver_namespace, body))
    assert status == 422
    causes = {c["field"]: c for c in result["details"]["causes"]}
    assert causes["spec.model.uri"]["reason"] == "FieldValueRequired"
    assert causes["spec.traffic.router"]["message"] == (
        'Unsupported value: "nginx": supported values: "gatewayAPI", "istio", "replicas"'
    )
    assert result["message"].startswith('ModelDeployment.modelops.io "invalid-many" is invalid: [')


def test_invalid_update_is_422_and_leaves_the_object_unchanged(custom, apiserver_namespace):
    create_mdep(custom, apiserver_namespace, model_deployment("invalid-update"))
    status, _ = api_error(
        lambda: custom.patch_namespaced_custom_object(
            GROUP, VERSION, apiserver_namespace, PLURAL, "invalid-update", {"spec": {"server": {"port": 0}}}
        )
    )
    assert status == 422
    assert get_mdep(custom, apiserver_namespace, "invalid-update")["spec"]["server"]["port"] == 8080


def test_invalid_status_write_is_422(custom, apiserver_namespace):
    create_mdep(custom, apiserver_namespace, model_deployment("invalid-status"))
    status, result = api_error(
        lambda: custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, apiserver_namespace, PLURAL, "invalid-status", {"status": {"phase": "Dancing"}}
        )
    )
    assert status == 422
    assert result["details"]["causes"][0]["field"] == "status.phase"


def test_unknown_fields_are_pruned_except_under_preserve_unknown_fields(custom, apiserver_namespace):
    body = model_deployment("pruned", gates=[{"name": "g", "template": {"spec": {"anything": {"goes": 1}}}}])
    body["spec"]["server"]["madeUp"] = True
    body["spec"]["notInSchema"] = {"x": 1}
    body["metadata"]["madeUp"] = "x"
    created = create_mdep(custom, apiserver_namespace, body)
    assert "madeUp" not in created["spec"]["server"]
    assert "notInSchema" not in created["spec"]
    assert "madeUp" not in created["metadata"]
    assert created["spec"]["gates"][0]["template"] == {"spec": {"anything": {"goes": 1}}}


def test_strict_field_validation_rejects_unknown_fields(http, apiserver_namespace):
    body = model_deployment("strict")
    body["spec"]["server"]["madeUp"] = True
    path = f"/apis/{GROUP}/{VERSION}/namespaces/{apiserver_namespace}/{PLURAL}"
    status, result = raw(http, "POST", path, body, query=[("fieldValidation", "Strict")])
    assert (status, result["reason"]) == (400, "BadRequest")
    assert 'unknown field "spec.server.madeUp"' in result["message"]


def test_schema_defaults_are_applied(custom, apiserver_namespace):
    created = create_mdep(custom, apiserver_namespace, model_deployment("defaults"))
    assert created["spec"]["server"]["port"] == 8080
    assert created["spec"]["server"]["replicas"] == 1
    assert [s["pause"] for s in created["spec"]["rollout"]["steps"]] == ["0s", "0s", "0s"]


def test_invalid_object_name_is_422(core, apiserver_namespace):
    status, result = api_error(lambda: core.create_namespaced_config_map(apiserver_namespace, config_map("Not_Ok")))
    assert status == 422
    assert result["details"]["causes"][0]["field"] == "metadata.name"


def test_generate_name_gives_a_unique_name(core, apiserver_namespace):
    body = config_map("x")
    body["metadata"] = {"generateName": "gen-"}
    names = {core.create_namespaced_config_map(apiserver_namespace, body).metadata.name for _ in range(3)}
    assert len(names) == 3
    assert all(name.startswith("gen-") and len(name) == 9 for name in names)


# ----------------------------------------------------------------------------- discovery and the TESTBED fixes


def test_discovery_lists_the_crds_with_short_names_and_categories(http):
    status, doc = raw(http, "GET", f"/apis/{GROUP}/{VERSION}")
    assert (status, doc["kind"], doc["groupVersion"]) == (200, "APIResourceList", f"{GROUP}/{VERSION}")
    by_name = {r["name"]: r for r in doc["resources"]}
    assert by_name["modeldeployments"]["shortNames"] == ["mdep"]
    assert by_name["modeldeployments"]["categories"] == ["modelops"]
    assert by_name["modeldeployments"]["kind"] == "ModelDeployment"
    assert by_name["modeldeployments"]["namespaced"] is True
    assert "modeldeployments/status" in by_name
    assert by_name["modelretirements"]["shortNames"] == ["mret"]
    status, groups = raw(http, "GET", "/apis")
    assert GROUP in {g["name"] for g in groups["groups"]}


def test_crd_created_through_the_api_is_served(apiserver_client, apiserver_namespace):
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.io"},
        "spec": {
            "group": "example.io",
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {"type": "object", "properties": {"size": {"type": "integer", "maximum": 3}}}
                            },
                        }
                    },
                }
            ],
        },
    }
    kubernetes.client.ApiextensionsV1Api(apiserver_client).create_custom_resource_definition(crd)
    custom = CustomObjectsApi(apiserver_client)
    widget = {"apiVersion": "example.io/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 2}}
    assert custom.create_namespaced_custom_object("example.io", "v1", apiserver_namespace, "widgets", widget)
    widget["metadata"]["name"], widget["spec"]["size"] = "big", 4
    status, _ = api_error(
        lambda: custom.create_namespaced_custom_object("example.io", "v1", apiserver_namespace, "widgets", widget)
    )
    assert status == 422


def test_list_has_kind_and_api_version(custom, apiserver_namespace):
    listed = custom.list_namespaced_custom_object(GROUP, VERSION, apiserver_namespace, PLURAL)
    assert (listed["kind"], listed["apiVersion"]) == ("ModelDeploymentList", f"{GROUP}/{VERSION}")


def test_core_group_version_is_v1(http):
    status, doc = raw(http, "GET", "/api/v1")
    assert (status, doc["groupVersion"]) == (200, "v1")
    assert {"namespaces", "configmaps", "pods"} <= {r["name"] for r in doc["resources"]}


def test_version_endpoint_answers_a_complete_version(apiserver_client):
    version = kubernetes.client.VersionApi(apiserver_client).get_code()
    assert (version.major, version.minor) == ("1", "32")


def test_namespaces_can_be_listed_and_read(core, apiserver_namespace):
    names = {ns.metadata.name for ns in core.list_namespace().items}
    assert {"default", "kube-system", apiserver_namespace} <= names
    assert core.read_namespace(apiserver_namespace).metadata.name == apiserver_namespace


def test_bundled_built_in_resources_are_served(apiserver_client, apiserver_namespace):
    batch = kubernetes.client.BatchV1Api(apiserver_client)
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "j"},
        "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "x"}], "restartPolicy": "Never"}}},
    }
    batch.create_namespaced_job(apiserver_namespace, job)
    assert batch.read_namespaced_job("j", apiserver_namespace).metadata.name == "j"


# ----------------------------------------------------------------------------- watch


def test_watch_from_a_resource_version_sends_only_later_events_with_their_versions(http, core, apiserver_namespace):
    core.create_namespaced_config_map(apiserver_namespace, config_map("before"))
    since = core.list_namespaced_config_map(apiserver_namespace).metadata.resource_version
    core.create_namespaced_config_map(apiserver_namespace, config_map("after"))
    core.patch_namespaced_config_map("after", apiserver_namespace, {"data": {"k": "changed"}})
    core.delete_namespaced_config_map("after", apiserver_namespace)
    events = watch_lines(
        http,
        f"/api/v1/namespaces/{apiserver_namespace}/configmaps",
        [("resourceVersion", since), ("timeoutSeconds", "5")],
        until=lambda e: len(e) == 3,
    )
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "after"),
        ("MODIFIED", "after"),
        ("DELETED", "after"),
    ]
    versions = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert versions == sorted(set(versions))
    assert versions[0] > int(since)


def test_watch_without_a_resource_version_starts_with_the_current_objects(http, core, apiserver_namespace):
    core.create_namespaced_config_map(apiserver_namespace, config_map("existing"))
    events = watch_lines(
        http,
        f"/api/v1/namespaces/{apiserver_namespace}/configmaps",
        [("timeoutSeconds", "5")],
        until=lambda e: len(e) == 1,
    )
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "existing")]


def test_watch_with_a_label_selector_reports_objects_entering_and_leaving_the_selection(
    http, core, apiserver_namespace
):
    since = core.list_namespaced_config_map(apiserver_namespace).metadata.resource_version
    core.create_namespaced_config_map(apiserver_namespace, config_map("w", {"tier": "db"}))
    core.patch_namespaced_config_map("w", apiserver_namespace, {"metadata": {"labels": {"tier": "web"}}})
    core.patch_namespaced_config_map("w", apiserver_namespace, {"data": {"k": "2"}})
    core.patch_namespaced_config_map("w", apiserver_namespace, {"metadata": {"labels": {"tier": "db"}}})
    events = watch_lines(
        http,
        f"/api/v1/namespaces/{apiserver_namespace}/configmaps",
        [("resourceVersion", since), ("labelSelector", "tier in (web)"), ("timeoutSeconds", "5")],
        until=lambda e: len(e) == 3,
    )
    assert [e["type"] for e in events] == ["ADDED", "MODIFIED", "DELETED"]


def test_watch_with_a_field_selector_on_the_name(http, core, apiserver_namespace):
    since = core.list_namespaced_config_map(apiserver_namespace).metadata.resource_version
    for name in ("skip", "keep"):
        core.create_namespaced_config_map(apiserver_namespace, config_map(name))
    events = watch_lines(
        http,
        f"/api/v1/namespaces/{apiserver_namespace}/configmaps",
        [("resourceVersion", since), ("fieldSelector", "metadata.name=keep"), ("timeoutSeconds", "5")],
        until=lambda e: len(e) == 1,
    )
    assert [e["object"]["metadata"]["name"] for e in events] == ["keep"]


def test_watch_ends_after_timeout_seconds(http, core, apiserver_namespace):
    since = core.list_namespaced_config_map(apiserver_namespace).metadata.resource_version
    events = watch_lines(
        http,
        f"/api/v1/namespaces/{apiserver_namespace}/configmaps",
        [("resourceVersion", since), ("timeoutSeconds", "1")],
        until=lambda e: False,
    )
    assert events == []


def test_watch_older_than_the_event_window_is_410_gone(apiserver_factory):
    server = apiserver_factory(watch_cache_size=2)
    with server.client() as client, httpx.Client(base_url=server.url) as http:
        core = CoreV1Api(client)
        since = core.list_namespaced_config_map("default").metadata.resource_version
        for i in range(4):
            core.create_namespaced_config_map("default", config_map(f"c{i}"))
        events = watch_lines(
            http,
            "/api/v1/namespaces/default/configmaps",
            [("resourceVersion", since), ("timeoutSeconds", "5")],
            until=lambda e: len(e) == 1,
        )
    assert events[0]["type"] == "ERROR"
    assert (events[0]["object"]["code"], events[0]["object"]["reason"]) == (410, "Expired")


def test_idle_watch_gets_bookmarks_when_it_allows_them(apiserver_factory):
    server = apiserver_factory(bookmark_interval=0.2)
    with server.client() as client, httpx.Client(base_url=server.url) as http:
        rv = CoreV1Api(client).list_namespaced_config_map("default").metadata.resource_version
        events = watch_lines(
            http,
            "/api/v1/namespaces/default/configmaps",
            [("resourceVersion", rv), ("allowWatchBookmarks", "true"), ("timeoutSeconds", "5")],
            until=lambda e: len(e) == 1,
        )
    assert events[0]["type"] == "BOOKMARK"
    assert events[0]["object"]["metadata"]["resourceVersion"] == rv


def test_initial_events_end_with_a_bookmark_when_asked(http, core, apiserver_namespace):
    core.create_namespaced_config_map(apiserver_namespace, config_map("initial"))
    events = watch_lines(
        http,
        f"/api/v1/namespaces/{apiserver_namespace}/configmaps",
        [
            ("sendInitialEvents", "true"),
            ("resourceVersionMatch", "NotOlderThan"),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", "5"),
        ],
        until=lambda e: len(e) == 2,
    )
    assert [e["type"] for e in events] == ["ADDED", "BOOKMARK"]
    assert events[1]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


def test_kubernetes_client_watch_streams_typed_events(apiserver_client, core, apiserver_namespace):
    since = core.list_namespaced_config_map(apiserver_namespace).metadata.resource_version
    core.create_namespaced_config_map(apiserver_namespace, config_map("typed"))
    watch = kubernetes.watch.Watch()
    seen = []
    for event in watch.stream(
        core.list_namespaced_config_map, apiserver_namespace, resource_version=since, timeout_seconds=5
    ):
        seen.append((event["type"], event["object"].metadata.name))
        watch.stop()
    assert seen == [("ADDED", "typed")]


# ----------------------------------------------------------------------------- request log


def test_request_log_records_verb_resource_and_status(apiserver_log, core, custom, apiserver_namespace):
    create_mdep(custom, apiserver_namespace, model_deployment("logged"))
    custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, apiserver_namespace, PLURAL, "logged", {"status": {"phase": "Validating"}}
    )
    api_error(lambda: get_mdep(custom, apiserver_namespace, "absent"))
    core.list_namespaced_config_map(apiserver_namespace)
    records = [(r.method, r.verb, r.group, r.resource, r.subresource, r.name, r.status) for r in apiserver_log.records]
    assert records == [
        ("POST", "create", GROUP, PLURAL, None, None, 201),
        ("PATCH", "patch", GROUP, PLURAL, "status", "logged", 200),
        ("GET", "get", GROUP, PLURAL, None, "absent", 404),
        ("GET", "list", "", "configmaps", None, None, 200),
    ]
    assert apiserver_log.count(verb="patch", subresource="status") == 1
    assert all(r.namespace == apiserver_namespace for r in apiserver_log.records)


# ----------------------------------------------------------------------------- kmock's reaction DSL


def test_injected_reactions_answer_first_and_write_nothing(apiserver_factory):
    server = apiserver_factory()
    path = "/api/v1/namespaces/default/configmaps"
    server.emulator[f"post {path}"][:1] << 503  # only the first create fails (a history-dependent reaction)
    with server.client() as client:
        core = CoreV1Api(client)
        with pytest.raises(ApiException) as failed:
            core.create_namespaced_config_map("default", config_map("flaky"))
        assert failed.value.status == 503
        assert core.list_namespaced_config_map("default").items == []
        assert core.create_namespaced_config_map("default", config_map("flaky")).metadata.name == "flaky"
    assert [r.status for r in server.emulator.log if r.verb == "create"] == [503, 201]


@pytest.mark.parametrize(
    ("spec", "field", "message"),
    [
        (
            {"rollout": {"steps": [{"weight": 50}, {"weight": 5}, {"weight": 100}]}},
            "spec.rollout.steps",
            'Invalid value: "array": step weights must be strictly increasing',
        ),
        (
            {"rollout": {"steps": [{"weight": 5}, {"weight": 50}]}},
            "spec.rollout.steps",
            'Invalid value: "array": the last step must have weight 100',
        ),
        (
            {"traffic": {"router": "istio", "replicas": {"service": "x"}, "istio": {"virtualService": "vs"}}},
            "spec.traffic",
            'Invalid value: "object": replicas settings are required for router replicas and forbidden otherwise',
        ),
    ],
)
def test_crd_cel_validation_rules_are_enforced(custom, apiserver_namespace, spec, field, message):
    pytest.importorskip("celpy", reason="cel-python evaluates the CRD's x-kubernetes-validations")
    status, result = api_error(lambda: create_mdep(custom, apiserver_namespace, model_deployment("cel", **spec)))
    assert status == 422
    assert [(c["field"], c["message"]) for c in result["details"]["causes"]] == [(field, message)]


async def test_serves_in_process_in_the_test_event_loop():
    emulator = ApiServerEmulator(history_limit=2)
    async with serve(emulator) as url, httpx.AsyncClient(base_url=url) as client:
        path = "/api/v1/namespaces/default/configmaps"
        created = await client.post(path, json=config_map("async"))
        for value in ("1", "2", "3"):
            merge = {"Content-Type": "application/merge-patch+json"}
            await client.patch(f"{path}/async", json={"data": {"k": value}}, headers=merge)
        listed = (await client.get(path)).json()
    assert created.status_code == 201
    assert [item["data"] for item in listed["items"]] == [{"k": "3"}]
    history = emulator.objects["v1/configmaps", "default", "async"].history  # kmock's view, bounded to 2
    assert [version["data"]["k"] for version in history] == ["2", "3"]
