"""``plan_retirement``: one reconcile of a ModelRetirement, as a pure function.

::

    Scheduled --(notBefore passed, or replacement promoted for afterReplacementPromoted)--> Draining
    Draining: drain.steps percent of the traffic moved to the replacement, each held for drain.interval
    zero-traffic check (the query must read <= maxValue) --> CleaningUp: delete what belongs to the retired model
    --> Retired, with status.removed listing each object and when.
    Blocked (with blockedReason) whenever it cannot go on safely: replacement missing or not ready, traffic left,
    the zero-traffic check unavailable, the version still serving; it resumes where it stopped once that clears.

Only objects whose labels AND ownerReference both say they belong to the retired ModelDeployment are ever in a
delete action: a copied label or a hand-added ownerReference is not enough.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from modelops.api.common import parse_duration
from modelops.api.deployment import ObjectMeta
from modelops.api.retirement import (
    ModelRetirementSpec,
    ModelRetirementStatus,
    RemovedObject,
    RetirementPhase,
)

from .actions import Action, DeleteObject, DrainTraffic, EmitEvent, EventType
from .conditions import ConditionType, Reason, get_condition, set_condition
from .naming import VERSION_LABEL
from .observations import DeploymentView, ObservedObject, RetirementObservations
from .readings import ReadingKind

#: The kind of the retired object itself (deleted last, when the whole ModelDeployment is retired).
MODEL_DEPLOYMENT = "ModelDeployment"


@dataclass(frozen=True, slots=True)
class RetirementDecision:
    actions: tuple[Action, ...]
    status: ModelRetirementStatus


def belongs(obj: ObservedObject, target: DeploymentView, version: str | None) -> bool:
    """Whether ``obj`` is the retired model's: every owner label matches, the version label too when one version
    is retired, AND an ownerReference names the target ModelDeployment by kind, name and uid."""
    if target.uid is None or not target.owner_labels:
        return False
    if any(obj.labels.get(k) != v for k, v in target.owner_labels.items()):
        return False
    if version is not None and obj.labels.get(VERSION_LABEL) != version:
        return False
    return any(o.kind == MODEL_DEPLOYMENT and o.name == target.name and o.uid == target.uid for o in obj.owners)


def scheduled_for(spec: ModelRetirementSpec, replacement: DeploymentView | None) -> datetime | None:
    """When the retirement may start: ``notBefore``, or the replacement's promotion + ``afterReplacementPromoted``
    (None while the replacement has not been promoted); None also when there is no condition (start now)."""
    if spec.not_before is not None:
        return spec.not_before
    if spec.after_replacement_promoted is not None:
        if replacement is None or replacement.stable_version is None or replacement.promoted_at is None:
            return None
        return replacement.promoted_at + parse_duration(spec.after_replacement_promoted)
    return None


class _Plan:
    def __init__(
        self,
        spec: ModelRetirementSpec,
        meta: ObjectMeta,
        status: ModelRetirementStatus,
        obs: RetirementObservations,
        now: datetime,
    ) -> None:
        self.spec, self.name, self.generation = spec, meta.name, meta.generation
        self.before = status
        self.st = status.model_copy(deep=True)
        self.obs, self.now = obs, now
        self.actions: list[Action] = []
        self.events: list[EmitEvent] = []

    def event(self, type_: EventType, reason: Reason, message: str) -> None:
        self.events.append(EmitEvent(type_, reason.value, message))

    def block(self, reason: Reason, message: str) -> None:
        st = self.st
        if self.before.phase != RetirementPhase.BLOCKED or self.before.blocked_reason != reason.value:
            self.event("Warning", reason, message)
        st.phase = RetirementPhase.BLOCKED
        st.blocked_reason = reason.value
        st.message = message

    def unblock(self, phase: RetirementPhase, message: str) -> None:
        self.st.phase = phase
        self.st.blocked_reason = None
        self.st.message = message

    # ------------------------------------------------------------------------------------------------ run

    def run(self) -> RetirementDecision:
        st = self.st
        if st.phase == RetirementPhase.INVALID:
            st.phase = RetirementPhase.SCHEDULED if st.started_at is None else RetirementPhase.DRAINING
        if st.phase != RetirementPhase.RETIRED:
            self.step()
        self.conditions()
        st.observed_generation = self.generation
        return RetirementDecision(tuple(self.actions) + tuple(self.events), st)

    def step(self) -> None:
        st, spec, obs = self.st, self.spec, self.obs
        if st.phase == RetirementPhase.CLEANING_UP:
            self.clean_up()
            return
        target = obs.target
        if target is None:
            self.block(Reason.TARGET_NOT_FOUND, f"ModelDeployment {spec.model_deployment!r} not found")
            return
        if st.started_at is None and not self.start(target):
            return
        if self.needs_drain(target):
            if not self.drain():
                return
        elif st.drain_step is None and not self.version_idle(target):
            return
        self.zero_traffic_check()

    def start(self, target: DeploymentView) -> bool:
        """Scheduled until its time; then fix the version and start. True once started."""
        st, spec, obs = self.st, self.spec, self.obs
        when = scheduled_for(spec, obs.replacement)
        st.scheduled_for = when
        waiting_replacement = spec.after_replacement_promoted is not None and when is None
        if waiting_replacement:
            self.unblock(RetirementPhase.SCHEDULED, f"waiting for {spec.replacement} to be promoted")
            return False
        if when is not None and self.now < when:
            self.unblock(RetirementPhase.SCHEDULED, f"scheduled for {when.isoformat()}")
            return False
        version = spec.version or target.stable_version
        st.version = version
        st.started_at = self.now
        what = f"{target.name} version {version}" if spec.version else f"{target.name} ({version or 'no version'})"
        self.event("Normal", Reason.SCHEDULED, f"retiring {what}")
        return True

    def needs_drain(self, target: DeploymentView) -> bool:
        """A whole ModelDeployment with a replacement is drained; a single version only serves when it is stable."""
        if self.spec.replacement is None:
            return False
        return self.spec.version is None or self.spec.version == target.stable_version

    def version_idle(self, target: DeploymentView) -> bool:
        """A single version retired without drain must not be the one serving (or being rolled out)."""
        version = self.spec.version
        if version is not None and version in (target.stable_version, target.candidate_version):
            role = "stable" if version == target.stable_version else "candidate"
            self.block(
                Reason.VERSION_SERVING,
                f"{version} is the {role} version of {target.name}: roll out another version or give a replacement",
            )
            return False
        return True

    def drain(self) -> bool:
        """Move traffic step by step; True when the last step has been held for its interval."""
        st, spec, obs = self.st, self.spec, self.obs
        replacement = obs.replacement
        assert spec.replacement is not None
        if replacement is None or replacement.stable_version is None or not replacement.ready:
            state = "missing" if replacement is None else "not ready"
            self.block(Reason.REPLACEMENT_NOT_READY, f"replacement {spec.replacement} is {state}; traffic held")
            return False
        steps, interval = spec.drain.steps, parse_duration(spec.drain.interval)
        if st.drain_step is None:
            self.move(0)
            return False
        if obs.route_matches is False:
            self.event(
                "Warning",
                Reason.ROUTE_DRIFT,
                f"route reports {dict(obs.router_weights or {})}, expected {st.drained_weight}% to"
                f" {spec.replacement}: setting it back",
            )
            self.actions.append(DrainTraffic(spec.model_deployment, spec.replacement, st.drained_weight))
        assert st.step_started_at is not None
        if self.now < st.step_started_at + interval or self.now <= st.step_started_at:
            self.unblock(RetirementPhase.DRAINING, self.drain_message(st.drain_step))
            return False
        if st.drain_step + 1 < len(steps):
            self.move(st.drain_step + 1)
            return False
        return True

    def move(self, index: int) -> None:
        st, spec = self.st, self.spec
        assert spec.replacement is not None
        weight = spec.drain.steps[index]
        st.drain_step, st.drained_weight, st.step_started_at = index, weight, self.now
        self.actions.append(DrainTraffic(spec.model_deployment, spec.replacement, weight))
        message = self.drain_message(index)
        self.event("Normal", Reason.DRAIN_STEP, message)
        self.unblock(RetirementPhase.DRAINING, message)

    def drain_message(self, index: int) -> str:
        steps = self.spec.drain.steps
        return f"{steps[index]}% moved to {self.spec.replacement} (step {index + 1}/{len(steps)})"

    def zero_traffic_check(self) -> None:
        check, reading = self.spec.zero_traffic_check, self.obs.zero_traffic
        if reading is None:
            self.unblock(RetirementPhase.DRAINING, "waiting for the zero-traffic check")
            return
        if reading.kind is not ReadingKind.VALUE or reading.value is None:
            self.block(
                Reason.ZERO_TRAFFIC_UNKNOWN,
                f"zero-traffic check unavailable ({reading.message or reading.kind.value}): nothing is deleted"
                " until it reads a value",
            )
            return
        if reading.value > check.max_value:
            self.block(
                Reason.TRAFFIC_REMAINS,
                f"traffic remains: {reading.value:g} > {check.max_value:g} over {check.window}; nothing deleted",
            )
            return
        self.event("Normal", Reason.ZERO_TRAFFIC_CONFIRMED, f"{reading.value:g} <= {check.max_value:g}: cleaning up")
        self.unblock(RetirementPhase.CLEANING_UP, "deleting what belongs to the retired model")
        self.clean_up()

    def clean_up(self) -> None:
        st, spec, obs = self.st, self.spec, self.obs
        keep = set(spec.cleanup.keep)
        removed = {(r.kind, r.name) for r in st.removed}
        target = obs.target
        pending: list[ObservedObject] = []
        if target is not None:
            pending = [
                o
                for o in obs.objects
                if o.kind not in keep and o.kind != MODEL_DEPLOYMENT and belongs(o, target, spec.version)
            ]
        for obj in pending:
            if (obj.kind, obj.name) in removed:
                continue
            self.actions.append(DeleteObject(obj.kind, obj.name, obj.uid))
            st.removed = [*st.removed, RemovedObject(kind=obj.kind, name=obj.name, at=self.now)]
            self.event("Normal", Reason.OBJECT_DELETED, f"{obj.kind} {obj.name} deleted")
        whole = spec.version is None and MODEL_DEPLOYMENT not in keep
        if whole and target is not None and target.uid is not None:
            if not pending and (MODEL_DEPLOYMENT, target.name) not in removed:
                # Children first (recorded one by one), the ModelDeployment last.
                self.actions.append(DeleteObject(MODEL_DEPLOYMENT, target.name, target.uid))
                st.removed = [*st.removed, RemovedObject(kind=MODEL_DEPLOYMENT, name=target.name, at=self.now)]
                self.event("Normal", Reason.OBJECT_DELETED, f"{MODEL_DEPLOYMENT} {target.name} deleted")
            st.phase, st.message = RetirementPhase.CLEANING_UP, f"{len(st.removed)} objects deleted, waiting"
            return
        if pending:
            st.phase, st.message = RetirementPhase.CLEANING_UP, f"{len(st.removed)} objects deleted, waiting"
            return
        st.phase = RetirementPhase.RETIRED
        st.retired_at = self.now
        st.message = f"retired; {len(st.removed)} objects removed"
        self.event("Normal", Reason.RETIRED, f"{spec.model_deployment} retired: {len(st.removed)} objects removed")

    def conditions(self) -> None:
        st, now, gen = self.st, self.now, self.generation
        cs = st.conditions
        if st.phase == RetirementPhase.BLOCKED:
            cs = set_condition(cs, ConditionType.BLOCKED, "True", st.blocked_reason or "", st.message, now, gen)
        else:
            cs = set_condition(cs, ConditionType.BLOCKED, "False", Reason.NOT_BLOCKED, "", now, gen)
        if st.phase == RetirementPhase.RETIRED:
            cs = set_condition(cs, ConditionType.RETIRED, "True", Reason.RETIRED, st.message, now, gen)
        else:
            cs = set_condition(cs, ConditionType.RETIRED, "False", Reason.NOT_RETIRED, st.phase, now, gen)
        invalid = get_condition(cs, ConditionType.INVALID_SPEC)
        if invalid is not None and invalid.status != "False":
            cs = set_condition(cs, ConditionType.INVALID_SPEC, "False", Reason.SPEC_VALID, "spec is valid", now, gen)
        st.conditions = cs


def plan_retirement(
    spec: ModelRetirementSpec,
    meta: ObjectMeta,
    status: ModelRetirementStatus,
    obs: RetirementObservations,
    now: datetime,
) -> RetirementDecision:
    """One reconcile of a ModelRetirement: actions in order, then the new status. Pure: ``now`` is the only time."""
    return _Plan(spec, meta, status, obs, now).run()


__all__ = ["RetirementDecision", "belongs", "plan_retirement", "scheduled_for"]
