"""``plan_retirement``, one transition per case, and the rule that only what belongs to the model is deleted."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelops.api import ModelRetirementSpec, ModelRetirementStatus, ObjectMeta
from modelops.api.retirement import RemovedObject, RetirementPhase
from modelops.core import (
    Action,
    DeleteObject,
    DeploymentView,
    DrainTraffic,
    EmitEvent,
    ObservedObject,
    OwnerRef,
    Reading,
    RetirementObservations,
    belongs,
    plan_retirement,
)
from modelops.core.naming import DEPLOYMENT_LABEL, MANAGED_BY_LABEL, MANAGER, MODEL_LABEL, VERSION_LABEL
from modelops.core.retirement import RetirementDecision

from .builders import DAY, HOUR, T0

LABELS = {MANAGED_BY_LABEL: MANAGER, MODEL_LABEL: "churn", DEPLOYMENT_LABEL: "churn"}
OWNER = (OwnerRef("ModelDeployment", "churn", "uid-churn"),)
TARGET = DeploymentView(
    name="churn", uid="uid-churn", owner_labels=LABELS, stable_version="v1", promoted_at=T0 - 400 * DAY, ready=True
)
REPLACEMENT = DeploymentView(
    name="churn-v2",
    uid="uid-v2",
    owner_labels={**LABELS, DEPLOYMENT_LABEL: "churn-v2"},
    stable_version="v2",
    promoted_at=T0 - 10 * DAY,
    ready=True,
)


def obj(
    kind: str, name: str, version: str = "v1", owners: tuple[OwnerRef, ...] = OWNER, **labels: str
) -> ObservedObject:
    return ObservedObject(kind, name, f"uid-{name}", {**LABELS, VERSION_LABEL: version, **labels}, owners)


OWNED = (obj("Deployment", "churn-v1"), obj("Service", "churn-v1"), obj("Job", "churn-v1-gate", version="v1"))
FOREIGN = (
    ObservedObject("Service", "churn-dashboard", "uid-d", LABELS, ()),  # labels copied, no ownerReference
    ObservedObject("Deployment", "batch", "uid-b", {"app": "batch"}, OWNER),  # ownerReference added by hand
    ObservedObject("Deployment", "churn-x", "uid-x", LABELS, (OwnerRef("ModelDeployment", "churn", "uid-OLD"),)),
)


def rspec(**kw: Any) -> ModelRetirementSpec:
    data: dict[str, Any] = {
        "modelDeployment": "churn",
        "replacement": "churn-v2",
        "drain": {"steps": [50, 100], "interval": "1h"},
        **kw,
    }
    return ModelRetirementSpec.model_validate({k: v for k, v in data.items() if v is not None})


def robs(**kw: Any) -> RetirementObservations:
    base: dict[str, Any] = {
        "target": TARGET,
        "replacement": REPLACEMENT,
        "route_matches": True,
        "zero_traffic": Reading.of(0.0),
        "objects": OWNED + FOREIGN,
    }
    base.update(kw)
    return RetirementObservations(**base)


def draining(step: int = 0, **kw: Any) -> ModelRetirementStatus:
    weights = [50, 100]
    base: dict[str, Any] = {
        "phase": RetirementPhase.DRAINING,
        "version": "v1",
        "started_at": T0 - HOUR,
        "drain_step": step,
        "drained_weight": weights[step],
        "step_started_at": T0 - HOUR,
    }
    base.update(kw)
    return ModelRetirementStatus(**base)


@dataclass
class Case:
    status: ModelRetirementStatus
    obs: RetirementObservations = field(default_factory=robs)
    spec: ModelRetirementSpec = field(default_factory=rspec)
    at: timedelta = timedelta(0)
    phase: RetirementPhase | None = None
    actions: list[Action] | None = None
    events: tuple[str, ...] = ()
    check: Callable[[RetirementDecision], Any] | None = None


CASES = {
    "scheduled_until_not_before": Case(
        ModelRetirementStatus(),
        spec=rspec(notBefore=(T0 + DAY).isoformat()),
        phase=RetirementPhase.SCHEDULED,
        actions=[],
        check=lambda d: d.status.scheduled_for == T0 + DAY,
    ),
    "not_before_passed_starts_draining": Case(
        ModelRetirementStatus(),
        spec=rspec(notBefore=(T0 - DAY).isoformat()),
        phase=RetirementPhase.DRAINING,
        actions=[DrainTraffic("churn", "churn-v2", 50)],
        events=("Scheduled", "DrainStep"),
        check=lambda d: (d.status.version, d.status.started_at) == ("v1", T0),
    ),
    "waits_until_the_replacement_was_promoted_long_enough": Case(
        ModelRetirementStatus(),
        spec=rspec(afterReplacementPromoted="30d"),
        phase=RetirementPhase.SCHEDULED,
        actions=[],
        check=lambda d: d.status.scheduled_for == T0 + 20 * DAY,
    ),
    "waits_for_a_replacement_never_promoted": Case(
        ModelRetirementStatus(),
        spec=rspec(afterReplacementPromoted="30d"),
        obs=robs(replacement=replace(REPLACEMENT, stable_version=None, promoted_at=None)),
        phase=RetirementPhase.SCHEDULED,
        check=lambda d: d.status.scheduled_for is None and "waiting for churn-v2" in d.status.message,
    ),
    "replacement_promoted_long_enough_starts_draining": Case(
        ModelRetirementStatus(),
        spec=rspec(afterReplacementPromoted="10d"),
        phase=RetirementPhase.DRAINING,
        actions=[DrainTraffic("churn", "churn-v2", 50)],
    ),
    "replacement_not_ready_blocks_and_holds_the_traffic": Case(
        draining(0),
        obs=robs(replacement=replace(REPLACEMENT, ready=False)),
        phase=RetirementPhase.BLOCKED,
        actions=[],
        events=("ReplacementNotReady",),
        check=lambda d: d.status.drained_weight == 50 and d.status.blocked_reason == "ReplacementNotReady",
    ),
    "missing_replacement_blocks": Case(
        draining(0), obs=robs(replacement=None), phase=RetirementPhase.BLOCKED, actions=[]
    ),
    "ready_replacement_unblocks_where_it_stopped": Case(
        draining(0, phase=RetirementPhase.BLOCKED, blocked_reason="ReplacementNotReady", step_started_at=T0),
        phase=RetirementPhase.DRAINING,
        actions=[],
        check=lambda d: d.status.blocked_reason is None and d.status.drain_step == 0,
    ),
    "drain_step_is_held_for_its_interval": Case(
        draining(0, step_started_at=T0 - 30 * timedelta(minutes=1)), phase=RetirementPhase.DRAINING, actions=[]
    ),
    "drain_moves_to_the_next_step_after_its_interval": Case(
        draining(0), phase=RetirementPhase.DRAINING, actions=[DrainTraffic("churn", "churn-v2", 100)]
    ),
    "route_edited_during_the_drain_is_set_back": Case(
        draining(1, step_started_at=T0),
        obs=robs(route_matches=False, router_weights={"churn-1": 100}),
        actions=[DrainTraffic("churn", "churn-v2", 100)],
        events=("RouteDrift",),
    ),
    "remaining_traffic_blocks_any_deletion": Case(
        draining(1),
        obs=robs(zero_traffic=Reading.of(0.4)),
        phase=RetirementPhase.BLOCKED,
        actions=[],
        events=("TrafficRemains",),
        check=lambda d: "0.4 > 0" in d.status.message,
    ),
    "zero_traffic_check_without_data_blocks": Case(
        draining(1),
        obs=robs(zero_traffic=Reading.no_data()),
        phase=RetirementPhase.BLOCKED,
        actions=[],
        check=lambda d: d.status.blocked_reason == "ZeroTrafficUnknown",
    ),
    "zero_traffic_check_error_blocks": Case(
        draining(1), obs=robs(zero_traffic=Reading.error("timeout")), phase=RetirementPhase.BLOCKED, actions=[]
    ),
    "zero_traffic_not_read_yet_waits": Case(
        draining(1), obs=robs(zero_traffic=None), phase=RetirementPhase.DRAINING, actions=[]
    ),
    "zero_traffic_confirmed_deletes_only_what_belongs_to_the_model": Case(
        draining(1),
        phase=RetirementPhase.CLEANING_UP,
        actions=[
            DeleteObject("Deployment", "churn-v1", "uid-churn-v1"),
            DeleteObject("Service", "churn-v1", "uid-churn-v1"),
            DeleteObject("Job", "churn-v1-gate", "uid-churn-v1-gate"),
        ],
        events=("ZeroTrafficConfirmed", "ObjectDeleted"),
        check=lambda d: (
            [(r.kind, r.at) for r in d.status.removed] == [("Deployment", T0), ("Service", T0), ("Job", T0)]
        ),
    ),
    "traffic_gone_after_being_blocked_resumes_the_clean_up": Case(
        draining(1, phase=RetirementPhase.BLOCKED, blocked_reason="TrafficRemains"),
        phase=RetirementPhase.CLEANING_UP,
        check=lambda d: len(d.status.removed) == 3,
    ),
    "kept_kinds_are_not_deleted": Case(
        draining(1),
        spec=rspec(cleanup={"keep": ["Job", "ModelDeployment"]}),
        actions=[
            DeleteObject("Deployment", "churn-v1", "uid-churn-v1"),
            DeleteObject("Service", "churn-v1", "uid-churn-v1"),
        ],
    ),
    "model_deployment_is_deleted_after_its_children": Case(
        draining(1, phase=RetirementPhase.CLEANING_UP, removed=[RemovedObject(kind="Service", name="churn-v1")]),
        obs=robs(objects=FOREIGN),
        phase=RetirementPhase.CLEANING_UP,
        actions=[DeleteObject("ModelDeployment", "churn", "uid-churn")],
    ),
    "children_still_terminating_are_not_deleted_twice": Case(
        draining(
            1,
            phase=RetirementPhase.CLEANING_UP,
            removed=[RemovedObject(kind=o.kind, name=o.name, at=T0) for o in OWNED],
        ),
        phase=RetirementPhase.CLEANING_UP,
        actions=[],
    ),
    "model_deployment_gone_means_retired": Case(
        draining(1, phase=RetirementPhase.CLEANING_UP, removed=[RemovedObject(kind="ModelDeployment", name="churn")]),
        obs=robs(target=None, objects=()),
        phase=RetirementPhase.RETIRED,
        events=("Retired",),
        check=lambda d: d.status.retired_at == T0,
    ),
    "retired_is_final": Case(
        draining(1, phase=RetirementPhase.RETIRED, retired_at=T0 - DAY),
        obs=robs(target=None),
        phase=RetirementPhase.RETIRED,
        actions=[],
    ),
    "missing_target_blocks": Case(
        ModelRetirementStatus(), obs=robs(target=None), phase=RetirementPhase.BLOCKED, events=("TargetNotFound",)
    ),
    "one_version_serving_as_stable_without_replacement_is_blocked": Case(
        ModelRetirementStatus(),
        spec=rspec(version="v1", replacement=None),
        phase=RetirementPhase.BLOCKED,
        check=lambda d: d.status.blocked_reason == "VersionServing",
    ),
    "one_idle_version_is_deleted_after_the_zero_traffic_check_without_drain": Case(
        ModelRetirementStatus(),
        spec=rspec(version="v0", replacement=None),
        obs=robs(objects=(obj("Deployment", "churn-v0", version="v0"), *OWNED)),
        phase=RetirementPhase.CLEANING_UP,
        actions=[DeleteObject("Deployment", "churn-v0", "uid-churn-v0")],
    ),
}


@pytest.mark.parametrize("case", [pytest.param(c, id=name) for name, c in CASES.items()])
def test_retirement_transition(case: Case) -> None:
    meta = ObjectMeta(name="retire-churn", namespace="ml", generation=1)
    before = case.status.model_copy(deep=True)
    d = plan_retirement(case.spec, meta, case.status, case.obs, T0 + case.at)
    assert case.status == before
    if case.phase is not None:
        assert d.status.phase == case.phase, d.status.message
    if case.actions is not None:
        assert [a for a in d.actions if not isinstance(a, EmitEvent)] == case.actions
    reasons = [a.reason for a in d.actions if isinstance(a, EmitEvent)]
    assert all(r in reasons for r in case.events), reasons
    if case.check is not None:
        assert case.check(d), d.status
    assert ModelRetirementStatus.model_validate(d.status.to_k8s()) == d.status
    again = plan_retirement(case.spec, meta, d.status, case.obs, T0 + case.at)
    if case.obs.route_matches is not False:
        assert again.actions == ()
        assert again.status == d.status


def test_blocked_condition_keeps_its_transition_time_while_blocked() -> None:
    meta = ObjectMeta(name="r", generation=1)
    first = plan_retirement(rspec(), meta, draining(1), robs(zero_traffic=Reading.of(3.0)), T0)
    later = plan_retirement(rspec(), meta, first.status, robs(zero_traffic=Reading.of(2.0)), T0 + HOUR)
    cond = next(c for c in later.status.conditions if c.type == "Blocked")
    assert (cond.status, cond.last_transition_time) == ("True", T0)
    assert later.actions == ()  # same reason: no second Warning event


labels_st = st.dictionaries(
    st.sampled_from([MANAGED_BY_LABEL, MODEL_LABEL, DEPLOYMENT_LABEL, VERSION_LABEL, "app"]),
    st.sampled_from(["churn", "modelops", "v1", "other"]),
)
owners_st = st.lists(
    st.builds(
        OwnerRef,
        kind=st.sampled_from(["ModelDeployment", "ReplicaSet"]),
        name=st.sampled_from(["churn", "other"]),
        uid=st.sampled_from(["uid-churn", "uid-other"]),
    ),
    max_size=2,
).map(tuple)


@given(
    objects=st.lists(
        st.builds(
            ObservedObject,
            kind=st.sampled_from(["Deployment", "Service", "Job"]),
            name=st.sampled_from(["a", "b", "c", "d"]),
            uid=st.just("u"),
            labels=labels_st,
            owners=owners_st,
        ),
        max_size=6,
        unique_by=lambda o: (o.kind, o.name),  # one object of a kind and name in a namespace, as in a cluster
    ),
    version=st.sampled_from([None, "v1"]),
)
def test_only_objects_with_matching_labels_and_owner_are_ever_deleted(
    objects: list[ObservedObject], version: str | None
) -> None:
    status = draining(1)
    s = rspec(version=version, replacement=None) if version else rspec()
    target = replace(TARGET, stable_version="v0") if version else TARGET
    d = plan_retirement(s, ObjectMeta(name="r"), status, robs(target=target, objects=tuple(objects)), T0)
    deletes = [a for a in d.actions if isinstance(a, DeleteObject) and a.kind != "ModelDeployment"]
    by_key = {(o.kind, o.name): o for o in objects}
    for action in deletes:
        o = by_key[(action.kind, action.name)]
        assert all(o.labels.get(k) == v for k, v in LABELS.items())
        assert any(r == OwnerRef("ModelDeployment", "churn", "uid-churn") for r in o.owners)
        if version:
            assert o.labels.get(VERSION_LABEL) == version
    assert all(belongs(o, target, version) for o in objects if (o.kind, o.name) in {(a.kind, a.name) for a in deletes})
