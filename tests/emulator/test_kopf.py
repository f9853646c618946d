"""The emulator drives a real kopf operator end to end: kopf discovers the CRD, scans namespaces, lists and
watches, adds its finalizer with a resourceVersion-guarded JSON patch, patches status through /status, creates an
owned child, and is released on delete, after which the child is garbage-collected.

One KopfRunner serves every test here: kopf's graceful stop takes about 5 s.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from typing import Any

import kopf
import kopf.testing
import pytest
from kubernetes.client import ApiClient, ApiException, CoreV1Api, CustomObjectsApi

from emulator.objects import GROUP, PLURAL, VERSION, config_map, model_deployment

pytestmark = pytest.mark.integration

FINALIZER = "kopf.zalando.org/KopfFinalizerMarker"
_names = itertools.count()


def eventually(check: Callable[[], Any], timeout: float = 15.0) -> Any:
    """Poll ``check`` until it returns a truthy value (or stops raising), failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
        except (AssertionError, ApiException):
            if time.monotonic() > deadline:
                raise
        else:
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"not true after {timeout} s: {check}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def deleted() -> list[str]:
    """Names the operator's delete handler has seen."""
    return []


@pytest.fixture(scope="module")
def operator(apiserver: Any, apiserver_client: ApiClient, deleted: list[str]) -> Iterator[kopf.testing.KopfRunner]:
    registry = kopf.OperatorRegistry()
    core = CoreV1Api(apiserver_client)

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return kopf.ConnectionInfo(server=apiserver.url, insecure=True)

    @kopf.on.create(GROUP, VERSION, PLURAL, registry=registry)
    def created(body: Any, meta: Any, namespace: str, patch: Any, **_: Any) -> None:
        child = config_map(f"{meta['name']}-child", labels={"modelops.io/model": meta["name"]})
        kopf.adopt(child, owner=body)
        core.create_namespaced_config_map(namespace, child)
        patch.status["phase"] = "Validating"
        patch.status["observedGeneration"] = meta["generation"]

    @kopf.on.delete(GROUP, VERSION, PLURAL, registry=registry)
    def removed(name: str, **_: Any) -> None:
        deleted.append(name)

    settings = kopf.OperatorSettings()
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage()  # the CRD's status is structural
    settings.posting.enabled = False
    args = ["run", "--standalone", "--namespace=kopf-*"]
    with kopf.testing.KopfRunner(args, registry=registry, settings=settings, timeout=60) as runner:
        yield runner
    assert runner.exception is None
    assert runner.exit_code == 0


@pytest.fixture
def kopf_namespace(apiserver_client: ApiClient) -> str:
    name = f"kopf-{next(_names)}"
    CoreV1Api(apiserver_client).create_namespace({"metadata": {"name": name}})
    return name


def test_kopf_adds_its_finalizer_and_patches_status_without_bumping_generation(
    operator, apiserver, apiserver_client, kopf_namespace, apiserver_log
):
    custom = CustomObjectsApi(apiserver_client)
    custom.create_namespaced_custom_object(GROUP, VERSION, kopf_namespace, PLURAL, model_deployment("handled"))

    def handled() -> dict[str, Any] | None:
        obj: dict[str, Any] = custom.get_namespaced_custom_object(GROUP, VERSION, kopf_namespace, PLURAL, "handled")
        done = FINALIZER in obj["metadata"].get("finalizers", []) and obj.get("status", {}).get("phase")
        return obj if done else None

    obj = eventually(handled)
    assert obj["status"]["phase"] == "Validating"
    assert obj["status"]["observedGeneration"] == 1
    assert obj["metadata"]["generation"] == 1
    assert apiserver_log.count(verb="patch", subresource="status", namespace=kopf_namespace, name="handled") >= 1
    scans = [r for r in apiserver.emulator.log if r.resource == "namespaces" and r.verb in ("list", "watch")]
    assert scans
    assert all(r.status in (200, None) for r in scans)


def test_kopf_releases_the_object_on_delete_and_children_are_collected(
    operator, apiserver_client, kopf_namespace, deleted
):
    custom = CustomObjectsApi(apiserver_client)
    core = CoreV1Api(apiserver_client)
    custom.create_namespaced_custom_object(GROUP, VERSION, kopf_namespace, PLURAL, model_deployment("released"))
    eventually(lambda: core.read_namespaced_config_map("released-child", kopf_namespace))
    eventually(
        lambda: (
            FINALIZER
            in custom.get_namespaced_custom_object(GROUP, VERSION, kopf_namespace, PLURAL, "released")["metadata"].get(
                "finalizers", []
            )
        )
    )

    custom.delete_namespaced_custom_object(GROUP, VERSION, kopf_namespace, PLURAL, "released")

    def gone() -> bool:
        try:
            custom.get_namespaced_custom_object(GROUP, VERSION, kopf_namespace, PLURAL, "released")
        except ApiException as exc:
            return exc.status == 404
        return False

    eventually(gone)
    assert "released" in deleted
    assert core.list_namespaced_config_map(kopf_namespace).items == []
