"""Parts of the per-object loop that need no API server: the wake-up flag, the operator's flags, kopf's settings."""

from __future__ import annotations

import argparse
from typing import Any

import kopf
import pytest

from modelops.adapters.kube import InMemoryKube
from modelops.adapters.prometheus import FakeMetricsProvider
from modelops.cli import build_parser
from modelops.cli.run import config_from
from modelops.handlers.operator import FINALIZER, LeanDiffBase, Wake, register
from modelops.handlers.reconcile import Runtime


async def test_a_wake_set_only_by_one_watch_event_says_so() -> None:
    wake = Wake()
    assert not wake.only_seen("7")
    wake.set_by_watch("7")
    assert wake.is_set()
    assert wake.only_seen("7")
    assert not wake.only_seen("8")


async def test_a_second_event_or_any_other_waker_makes_it_more_than_the_echo() -> None:
    wake = Wake()
    wake.set_by_watch("7")
    wake.set_by_watch("8")  # two events: at least one is not our write's echo
    assert wake.is_set()
    assert not wake.only_seen("8")
    assert not wake.only_seen("7")

    wake.clear()
    wake.set_by_watch("9")
    wake.set()  # a child Deployment or a retirement woke it too
    assert not wake.only_seen("9")

    wake.clear()
    wake.set()
    wake.set_by_watch("10")  # the echo after another wake-up: still more than the echo
    assert not wake.only_seen("10")


async def test_clearing_forgets_the_event() -> None:
    wake = Wake()
    wake.set_by_watch("7")
    wake.clear()
    assert not wake.is_set()
    assert not wake.only_seen("7")
    wake.set_by_watch("")  # no resourceVersion: never taken for an echo
    assert not wake.only_seen("")


def _run_args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["run", *argv])


def test_workers_flag_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert config_from(_run_args()).workers == 4
    assert config_from(_run_args("--workers", "2")).workers == 2
    monkeypatch.setenv("MODELOPS_WORKERS", "8")
    assert config_from(_run_args()).workers == 8


@pytest.mark.parametrize("value", ["0", "-1", "many"])
def test_workers_must_be_a_positive_number(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _run_args("--workers", value)
    assert "--workers" in capsys.readouterr().err


# ------------------------------------------------------------------------------ kopf settings of `modelops run`

KOPF_ANNOTATIONS = {
    "kubectl.kubernetes.io/last-applied-configuration": '{"spec": {}}',
    "modelops.io/last-handled-configuration": '{"spec": {"x": 1}}',  # our own diff base: left out of the essence
    "kopf.zalando.org/last-handled-configuration": "{}",  # another kopf operator's storage: left out too
    "team": "search",
}


def _body(**extra: Any) -> dict[str, Any]:
    return {
        "apiVersion": "modelops.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {
            "name": "recommender",
            "namespace": "ml",
            "uid": "u-1",
            "resourceVersion": "42",
            "generation": 3,
            "labels": {"app": "recommender"},
            "annotations": dict(KOPF_ANNOTATIONS),
            "finalizers": ["modelops.io/finalizer"],
            "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}],
            "ownerReferences": [{"kind": "Application", "name": "ml", "uid": "u-0"}],
        },
        "spec": {"model": {"name": "recommender"}, "versions": [{"name": "v1"}]},
        "status": {"phase": "Canary", "analysis": {"history": [{"ok": True}] * 5}},
        **extra,
    }


@pytest.mark.parametrize(
    "body",
    [
        _body(),
        _body(data={"k": "v"}),  # top-level fields other than spec are part of the essence
        {k: v for k, v in _body().items() if k != "status"},
        {"metadata": {"name": "bare"}, "spec": {}},
    ],
)
@pytest.mark.parametrize("extra_fields", [None, [], ["status.phase"], [("metadata", "generation")]])
def test_the_lean_diff_base_is_kopfs_essence_without_copying_the_status(
    body: dict[str, Any], extra_fields: list[Any] | None
) -> None:
    ours = LeanDiffBase(prefix="modelops.io").build(body=kopf.Body(body), extra_fields=extra_fields)
    kopfs = kopf.AnnotationsDiffBaseStorage(prefix="modelops.io").build(body=kopf.Body(body), extra_fields=extra_fields)
    assert ours == kopfs
    assert "status" not in ours or extra_fields == ["status.phase"]


def test_the_lean_diff_base_shares_no_part_of_the_object() -> None:
    body = _body()
    essence = LeanDiffBase(prefix="modelops.io").build(body=kopf.Body(body))
    essence["spec"]["versions"].append({"name": "v2"})
    essence["metadata"]["labels"]["app"] = "changed"
    assert body["spec"]["versions"] == [{"name": "v1"}]
    assert body["metadata"]["labels"] == {"app": "recommender"}


def _startup_settings(resync: float) -> kopf.OperatorSettings:
    registry = kopf.OperatorRegistry()
    runtime = Runtime(api=InMemoryKube(), metrics=FakeMetricsProvider(), idle_seconds=resync)
    register(registry, lambda: runtime)
    settings = kopf.OperatorSettings()
    (configure,) = [h for h in registry._activities.get_all_handlers() if h.id.endswith(".configure")]
    configure.fn(settings=settings)
    return settings


def test_kopf_keeps_an_objects_worker_for_a_resync_period() -> None:
    """Each status write's watch event reuses the object's kopf worker instead of starting one (performance)."""
    settings = _startup_settings(resync=60.0)
    assert settings.queueing.idle_timeout == 60.0
    assert isinstance(settings.persistence.diffbase_storage, LeanDiffBase)
    assert settings.persistence.finalizer == FINALIZER
    assert _startup_settings(resync=1.0).queueing.idle_timeout == kopf.OperatorSettings().queueing.idle_timeout
