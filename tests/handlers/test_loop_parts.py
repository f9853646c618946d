"""Parts of the per-object loop that need no API server: the wake-up flag, the operator's flags, kopf's settings."""

from __future__ import annotations

import argparse
import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import kopf
import pytest
from kopf._cogs.aiokits.aioenums import FlagSetter

from modelops.adapters.kube import InMemoryKube
from modelops.adapters.prometheus import FakeMetricsProvider
from modelops.cli import build_parser
from modelops.cli.run import config_from
from modelops.handlers import operator as glue
from modelops.handlers.operator import FINALIZER, Guard, LeanDiffBase, Wake, register
from modelops.handlers.reconcile import Outcome, Runtime


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


def _handlers(**runtime: Any) -> dict[str, Any]:
    """The handlers ``register`` declares, by function name, over a runtime of fakes with ``runtime``'s fields."""
    registry = kopf.OperatorRegistry()
    rt = Runtime(api=InMemoryKube(), metrics=FakeMetricsProvider(), **runtime)
    register(registry, lambda: rt)
    parts = (registry._activities, registry._spawning, registry._changing)
    return {h.id.rsplit(".", 1)[-1]: h for part in parts for h in part.get_all_handlers()}


def _startup_settings(resync: float) -> kopf.OperatorSettings:
    settings = kopf.OperatorSettings()
    _handlers(idle_seconds=resync)["configure"].fn(settings=settings)
    return settings


def test_kopf_keeps_an_objects_worker_for_a_resync_period() -> None:
    """Each status write's watch event reuses the object's kopf worker instead of starting one (performance)."""
    settings = _startup_settings(resync=60.0)
    assert settings.queueing.idle_timeout == 60.0
    assert isinstance(settings.persistence.diffbase_storage, LeanDiffBase)
    assert settings.persistence.finalizer == FINALIZER
    assert _startup_settings(resync=1.0).queueing.idle_timeout == kopf.OperatorSettings().queueing.idle_timeout


# ------------------------------------------------------------------ a deletion while a reconcile is in flight


class WatchedLock:
    """A lock that counts its holders and tells when a thread has had to wait for it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.contended = threading.Event()
        self.acquired = 0

    def __enter__(self) -> None:
        if not self._lock.acquire(blocking=False):
            self.contended.set()
            self._lock.acquire()
        self.acquired += 1

    def __exit__(self, *_: object) -> None:
        self._lock.release()


async def _until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


class Deletion:
    """The daemon and the delete handler of one object, as kopf calls them, with a reconcile that can be held."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[str] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        self.lock = WatchedLock()
        self.memo = kopf.Memo()
        guard = Guard()
        guard.lock = self.lock  # type: ignore[assignment]
        self.memo["guard"] = guard
        monkeypatch.setattr(glue, "reconcile_deployment", self._reconcile)
        monkeypatch.setattr(glue, "finalize_deployment", lambda rt, body, retiring=False: self.calls.append("finalize"))
        handlers = _handlers(poll_seconds=0.01)
        self.daemon, self.deleted = handlers["deployment_loop"], handlers["deployment_deleted"]
        self.stopper: FlagSetter[Any] = FlagSetter()
        self.body = kopf.Body({"metadata": {"name": "shop", "namespace": "ml"}, "spec": {}, "status": {}})

    def _reconcile(self, rt: Runtime, body: Any, **_: Any) -> Outcome:
        self.calls.append("reconcile")
        self.entered.set()
        assert self.release.wait(10)
        self.calls.append("reconcile done")
        return Outcome(True, 0.01)

    def run_daemon(self) -> asyncio.Task[Any]:
        return asyncio.create_task(
            self.daemon.fn(
                stopped=self.stopper.async_waiter,
                body=self.body,
                memo=self.memo,
                namespace="ml",
                name="shop",
                retirements_by_target={},
                workloads_by_owner={},
                requests_by_target={},
            )
        )

    async def delete(self) -> None:
        kwargs = {"body": self.body, "memo": self.memo, "namespace": "ml", "name": "shop", "retirements_by_target": {}}
        await asyncio.to_thread(lambda: self.deleted.fn(**kwargs))

    async def stop(self, daemon: asyncio.Task[Any]) -> None:
        self.stopper.set()
        await asyncio.wait_for(daemon, 10)


async def test_the_finalizer_waits_for_a_reconcile_in_flight(monkeypatch: pytest.MonkeyPatch) -> None:
    """kopf cancels the daemon's task on deletion, not its thread: a reconcile still running must finish before the
    finalizer restores the route, or its route write (the canary's weights) lands after the restore."""
    world = Deletion(monkeypatch)
    daemon = world.run_daemon()
    assert await asyncio.to_thread(world.entered.wait, 10)
    deleting = asyncio.create_task(world.delete())
    assert await asyncio.to_thread(world.lock.contended.wait, 10), "the delete handler waits for the reconcile"
    assert world.calls == ["reconcile"]
    world.release.set()
    await asyncio.wait_for(deleting, 10)
    assert world.calls == ["reconcile", "reconcile done", "finalize"]
    await world.stop(daemon)


async def test_no_reconcile_runs_once_the_finalizer_has_started(monkeypatch: pytest.MonkeyPatch) -> None:
    """A reconcile queued with a body from before the deletion does not undo what the finalizer did."""
    world = Deletion(monkeypatch)
    world.release.set()
    await world.delete()
    daemon = world.run_daemon()
    await _until(lambda: world.lock.acquired >= 4)  # the finalizer, then three turns of the loop
    await world.stop(daemon)
    assert world.calls == ["finalize"]
