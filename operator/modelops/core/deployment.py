"""``decide``: one reconcile of a ModelDeployment, as a pure function.

``decide(spec, meta, status, observations, now)`` returns the actions to execute and the new status. Nothing here
reads a clock, the network or the API server: time is ``now`` and the world is ``observations``. Every call
recomputes from spec + status + observations (level-triggered), so a call with nothing new returns the same status
and no actions, and an operator restarted at any moment resumes where status says.

The shape of a rollout::

    spec.model.version changes (or a retraining Job produced a version)
      -> Validating: every gate Job runs, its JSON results judged (no traffic moves)
           -> Failed (stable untouched) | first version ever: Promoted at 100% (history "Initial")
      -> Progressing: candidate workload up and ready, then steps[0], steps[1], ... each held for its pause;
         analysis every interval; the move to weight 100 waits for every approval (phase Paused)
           -> RolledBack (weight 0, candidate deleted) on failed checks > failureLimit, unavailable metrics (by
              policy or after maxUnavailableChecks in a row), candidate never ready or no progress by
              progressDeadline, or an abort request
      -> Promoted: the candidate is stable; the old stable is deleted after scaleDownDelay.
    Promoted: monitoring metrics on the stable version -> Degraded; retraining on schedule or on degradation.

Desired workloads and weights are a function of status (``desired_weights``, ``desired_workloads``); the actions
that create, scale, route and delete are the difference between the desired state before and after the call, plus
repairs of drift the observations report (someone edited the route, a workload disappeared).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from croniter import croniter

from modelops.api.common import VERSION_PATTERN, Condition, parse_duration
from modelops.api.deployment import (
    HISTORY_LIMIT,
    AnalysisStatus,
    ApprovalStatus,
    GateBaseline,
    GatePhase,
    GateStatus,
    HistoryEntry,
    ModelDeploymentSpec,
    ModelDeploymentStatus,
    MonitoringStatus,
    ObjectMeta,
    Phase,
    RequestRecord,
    Verdict,
)

from . import naming
from .actions import (
    Action,
    AnswerRequest,
    DeleteJob,
    DeleteWorkload,
    EmitEvent,
    EnsureWorkload,
    EventType,
    SetWeights,
    StartGateJob,
    StartRetrainingJob,
)
from .analysis import CheckOutcome, check_outcome, judge_metric, summary
from .conditions import ConditionStatus, ConditionType, Reason, get_condition, set_condition
from .gates import flatten_metrics, judge_gate
from .observations import Acceptance, DeploymentObservations, JobResult, JobState, ManualRequest
from .readings import Reading
from .requests import RequestAction, describe
from .steps import canary_weights, split_replicas

#: Phases in which a candidate is being rolled out.
#: why a step waits for its route before the route was read back after the write
NOT_READ_BACK = "the route was not read back yet"
ROLLOUT_PHASES = frozenset({Phase.VALIDATING, Phase.PROGRESSING, Phase.PAUSED})
#: Phases in which the candidate's workload runs.
CANDIDATE_LIVE_PHASES = frozenset({Phase.PROGRESSING, Phase.PAUSED})

Outcome = Literal["Promoted", "RolledBack", "Failed", "Superseded", "Aborted", "Initial"]


#: New requests applied by one reconcile at most: half of what ``status.requests`` keeps, so that a request stays on
#: record (and is never applied twice) until the watch shows its answer, even when many arrive at once.
MAX_REQUESTS_PER_TICK = HISTORY_LIMIT // 2


@dataclass(frozen=True, slots=True)
class Decision:
    """What one reconcile decided: actions to execute in order, then the status to write (if it changed)."""

    actions: tuple[Action, ...]
    status: ModelDeploymentStatus


# ------------------------------------------------------------------------------------------- desired state


def _candidate_live(status: ModelDeploymentStatus) -> bool:
    return status.candidate_version is not None and status.phase in CANDIDATE_LIVE_PHASES


def desired_weights(status: ModelDeploymentStatus) -> dict[str, int]:
    """The traffic split status implies: stable and live candidate by ``canaryWeight``; a previous stable kept
    for ``scaleDownDelay`` stays in the route at 0. Always 0..100 each and summing to 100 (or empty)."""
    candidate = status.candidate_version if _candidate_live(status) else None
    weights = canary_weights(status.stable_version, candidate, status.canary_weight)
    previous = status.previous_stable_version
    if weights and previous is not None and previous not in weights:
        weights[previous] = 0
    return weights


def desired_workloads(spec: ModelDeploymentSpec, status: ModelDeploymentStatus) -> dict[str, tuple[str, int]]:
    """``version -> (uri, replicas)`` of every workload status implies.

    Each version runs ``spec.server.replicas``, except with the ``replicas`` router, where the split of replicas
    *is* the split of traffic (``split_replicas``) and a previous stable runs none.
    """
    total = spec.server.replicas
    by_replicas = spec.traffic.router == "replicas"
    out: dict[str, tuple[str, int]] = {}
    live = _candidate_live(status) and status.candidate_version is not None
    weight = status.canary_weight if live else 0
    if status.previous_stable_version is not None and status.previous_stable_uri is not None:
        out[status.previous_stable_version] = (status.previous_stable_uri, 0 if by_replicas else total)
    if status.stable_version is not None and status.stable_uri is not None:
        stable_n = split_replicas(total, weight)[0] if by_replicas else total
        out[status.stable_version] = (status.stable_uri, stable_n)
    if live and status.candidate_version is not None and status.candidate_uri is not None:
        if by_replicas:
            # Warming up (no step yet) a candidate still needs pods; it gets what its first step will give it.
            first = weight or spec.rollout.steps[0].weight
            canary_n = split_replicas(total, first)[1] if status.stable_version else total
        else:
            canary_n = total
        out[status.candidate_version] = (status.candidate_uri, canary_n)
    return out


# -------------------------------------------------------------------------------------------------- timing


def awaits_acceptance(spec: ModelDeploymentSpec) -> bool:
    """Whether a step's weights count as set only once the route's controller accepted them (Gateway API)."""
    gateway = spec.traffic.gateway_api
    return spec.traffic.router == "gatewayAPI" and gateway is not None and gateway.wait_for_acceptance


def route_unconfirmed(spec: ModelDeploymentSpec, status: ModelDeploymentStatus) -> bool:
    """The Gateway has not (yet) accepted the route as last written: a step waits for it, or condition
    ``RouteAccepted`` is not True. The route is then read back at every tick until it is.

    >>> from modelops.api.deployment import ModelDeploymentStatus as S
    >>> from modelops.api.common import Condition
    >>> spec = ModelDeploymentSpec.model_validate({"model": {"name": "m", "version": "1.0.0", "uri": "s3://m"},
    ...     "server": {"image": "i"}, "traffic": {"router": "gatewayAPI", "gatewayAPI": {"httpRoute": "m"}}})
    >>> ok = Condition(type="RouteAccepted", status="True", reason="Accepted")
    >>> route_unconfirmed(spec, S(phase="Progressing", currentStep=0, conditions=[ok]))
    True
    >>> route_unconfirmed(spec, S(phase="Promoted")), route_unconfirmed(spec, S(phase="Promoted", conditions=[ok]))
    (True, False)
    """
    if not awaits_acceptance(spec):
        return False
    accepted = get_condition(status.conditions, ConditionType.ROUTE_ACCEPTED)
    waiting = status.phase == Phase.PROGRESSING and status.current_step is not None and status.step_started_at is None
    return waiting or accepted is None or accepted.status != "True"


def analysis_due(spec: ModelDeploymentSpec, status: ModelDeploymentStatus, now: datetime) -> bool:
    """Whether the next analysis is due: one interval after the later of the last check and the step's start.

    Handlers may use it to query Prometheus only when the readings will be used.
    """
    if not spec.rollout.analysis.metrics or status.current_step is None or status.step_started_at is None:
        return False
    if status.phase not in CANDIDATE_LIVE_PHASES:
        return False
    anchor = status.step_started_at
    last = status.analysis.last_check_at
    if last is not None and last > anchor:
        anchor = last
    return now >= anchor + parse_duration(spec.rollout.analysis.interval)


def monitoring_due(spec: ModelDeploymentSpec, status: ModelDeploymentStatus, now: datetime) -> bool:
    """Whether the monitoring metrics of the stable version are due: one interval after the last check (or the
    promotion)."""
    mon = spec.monitoring
    if mon is None or not mon.metrics or status.stable_version is None:
        return False
    anchor = status.monitoring.last_check_at or status.promoted_at
    return anchor is None or now >= anchor + parse_duration(mon.interval)


# ---------------------------------------------------------------------------------------------- the tick


class _Tick:
    """One call of ``decide``: mutates a private deep copy of status and collects actions."""

    def __init__(
        self,
        spec: ModelDeploymentSpec,
        meta: ObjectMeta,
        status: ModelDeploymentStatus,
        obs: DeploymentObservations,
        now: datetime,
    ) -> None:
        self.spec = spec
        self.meta = meta
        self.before = status
        self.st = status.model_copy(deep=True)
        self.obs = obs
        self.now = now
        self.actions: list[Action] = []
        self.events: list[EmitEvent] = []
        cond = get_condition(status.conditions, ConditionType.PROGRESSING)
        self.progressing: tuple[ConditionStatus, str, str] | None = (
            (cond.status, cond.reason, cond.message) if cond is not None else None
        )

    # ------------------------------------------------------------------------------------------ helpers

    def event(self, type_: EventType, reason: Reason, message: str) -> None:
        self.events.append(EmitEvent(type_, reason.value, message))

    @property
    def in_rollout(self) -> bool:
        return self.st.candidate_version is not None and self.st.phase in ROLLOUT_PHASES

    def record(self, version: str, outcome: Outcome, reason: str, started: datetime | None) -> None:
        entry = HistoryEntry(version=version, outcome=outcome, reason=reason, started_at=started, finished_at=self.now)
        self.st.history = [*self.st.history, entry][-HISTORY_LIMIT:]

    def set_progressing(self, status: ConditionStatus, reason: Reason, message: str) -> None:
        self.progressing = (status, reason.value, message)
        self.st.message = message

    def missing_approvals(self) -> list[str]:
        approved = {a.team for a in self.st.approvals}
        return [a.team for a in self.spec.approvals if a.team not in approved]

    def deadline_passed(self) -> bool:
        """No progress for ``progressDeadline`` after progress was due (a step's pause does not count)."""
        anchor = self.st.last_progress_at or self.st.rollout_started_at or self.now
        steps = self.spec.rollout.steps
        if self.st.current_step is not None and self.st.step_started_at is not None:
            step_end = self.st.step_started_at + parse_duration(steps[self.st.current_step].pause)
            anchor = max(anchor, step_end)
        return self.now >= anchor + parse_duration(self.spec.rollout.progress_deadline)

    # ------------------------------------------------------------------------------------------- phases

    def run(self) -> Decision:
        self.leave_invalid_spec()
        self.retraining_results()
        self.handle_requests()
        self.new_candidate()
        if self.st.phase == Phase.VALIDATING:
            self.validate()
        if self.st.phase in CANDIDATE_LIVE_PHASES:
            self.progress()
        self.scale_down_old_stable()
        self.monitoring()
        self.retraining_trigger()
        self.reconcile()
        self.conditions()
        self.st.observed_generation = self.meta.generation
        return Decision(tuple(self.actions) + tuple(self.events), self.st)

    def leave_invalid_spec(self) -> None:
        if self.st.phase == Phase.INVALID:
            self.st.phase = infer_phase(self.st)

    # ---------------------------------------------------------------------------------------- requests

    def handle_requests(self) -> None:
        """Each request once, oldest first: applied or refused, recorded in status, named in an Event, and answered
        in the ModelRequest's own status (again, without applying it twice, when an earlier answer was lost)."""
        records = {r.id: r for r in self.st.requests}
        if self.st.last_request is not None:
            records.setdefault(self.st.last_request.id, self.st.last_request)
        taken = 0
        for req in self.obs.requests:
            done = records.get(req.id)
            if done is not None:
                if req.name and done.accepted is not None:
                    message = done.result.split(": ", 1)[-1]
                    self.actions.append(AnswerRequest(req.name, done.accepted, message))
                continue
            if taken == MAX_REQUESTS_PER_TICK:
                break  # the rest at the next reconcile (the handler comes back at once), while these are on record
            taken += 1
            accepted, message = self.apply_request(req)
            record = RequestRecord(
                id=req.id,
                name=req.name,
                action=req.action,
                by=req.by,
                at=self.now,
                accepted=accepted,
                result=("Accepted: " if accepted else "Rejected: ") + message,
            )
            records[req.id] = record
            self.st.last_request = record
            self.st.requests = [*self.st.requests, record][-HISTORY_LIMIT:]
            if accepted:
                self.event("Normal", Reason.REQUEST_ACCEPTED, f"{describe(req)}: {message}")
            else:
                self.event("Warning", Reason.REQUEST_REJECTED, f"{describe(req)}: {message}")
            if req.name:
                self.actions.append(AnswerRequest(req.name, accepted, message))

    def apply_request(self, req: ManualRequest) -> tuple[bool, str]:
        st = self.st
        if req.error:
            return False, req.error
        phase = Phase(st.phase)
        if req.action == RequestAction.ABORT:
            if not self.in_rollout:
                return False, f"no rollout to abort in phase {phase}"
            self.rollback(Reason.ABORTED, f"aborted by {req.by or 'request'}", outcome="Aborted")
            return True, f"rollout of {st.candidate_version} aborted"
        if req.action == RequestAction.PAUSE:
            if phase not in CANDIDATE_LIVE_PHASES or st.paused:
                return False, f"cannot pause in phase {phase}" + (" (already paused)" if st.paused else "")
            st.paused = True
            return True, f"rollout of {st.candidate_version} paused"
        if req.action == RequestAction.RESUME:
            if not st.paused or not self.in_rollout:
                return False, f"nothing paused in phase {phase}"
            st.paused = False
            st.last_progress_at = self.now
            return True, f"rollout of {st.candidate_version} resumed"
        if req.action == RequestAction.APPROVE:
            teams = [a.team for a in self.spec.approvals]
            if req.team not in teams:
                return False, f"team {req.team!r} is not among the approvers {teams}"
            if not self.in_rollout:
                return False, f"no rollout to approve in phase {phase}"
            if any(a.team == req.team for a in st.approvals):
                return False, f"{req.team} already approved {st.candidate_version}"
            st.approvals = [*st.approvals, ApprovalStatus(team=req.team, approved_at=self.now, by=req.by)]
            return True, f"{req.team} approved {st.candidate_version}"
        if req.action == RequestAction.PROMOTE:
            if phase not in CANDIDATE_LIVE_PHASES:
                return False, f"cannot promote in phase {phase}"
            missing = self.missing_approvals()
            if missing:
                return False, f"awaiting approval from {', '.join(missing)}"
            if not self.obs.candidate_ready:
                return False, f"candidate {st.candidate_version} is not ready"
            self.promote(f"promoted by {req.by or 'request'}, skipping the remaining steps")
            return True, f"{st.stable_version} promoted"
        # retry
        if phase not in (Phase.ROLLED_BACK, Phase.FAILED) or not st.candidate_version or not st.candidate_uri:
            return False, f"nothing to retry in phase {phase}"
        self.start_candidate(st.candidate_version, st.candidate_uri, st.candidate_source or "Spec", "retry")
        return True, f"rollout of {st.candidate_version} restarted"

    # ---------------------------------------------------------------------------------------- new versions

    def new_candidate(self) -> None:
        st = self.st
        version = self.spec.model.version
        observed = st.observed_spec_version
        if observed is None and version in (st.stable_version, st.candidate_version):
            observed = version  # status written before this field existed
        if version != observed:
            st.observed_spec_version = version
            self.drop_retraining_output(f"spec.model.version changed to {version}")
            if version == st.stable_version:
                if self.in_rollout and st.candidate_version is not None:
                    self.end_rollout(
                        "Superseded", Reason.REVERTED_TO_STABLE, f"spec reverted to the stable version {version}"
                    )
                    st.phase = Phase.PROMOTED
                    self.set_progressing("False", Reason.REVERTED_TO_STABLE, f"{version} is stable; rollout ended")
                return
            if version == st.candidate_version and self.in_rollout:
                return
            self.start_candidate(version, self.spec.model.uri, "Spec", "spec change")
            return
        retraining = st.retraining
        if retraining.produced_version is None or retraining.consumed_at is not None or self.in_rollout:
            return
        retraining.consumed_at = self.now
        produced, uri = retraining.produced_version, retraining.produced_uri
        if produced in (st.stable_version, st.candidate_version) or uri is None:
            self.event(
                "Normal", Reason.RETRAINING_OUTPUT_DISCARDED, f"retraining produced {produced}, which is not new"
            )
            return
        self.start_candidate(produced, uri, "Retraining", f"retraining job {retraining.job_name}")

    def drop_retraining_output(self, why: str) -> None:
        r = self.st.retraining
        if r.produced_version is not None and r.consumed_at is None:
            r.consumed_at = self.now
            self.event(
                "Normal", Reason.RETRAINING_OUTPUT_DISCARDED, f"retraining output {r.produced_version} dropped: {why}"
            )

    def start_candidate(self, version: str, uri: str, source: Literal["Spec", "Retraining"], why: str) -> None:
        st = self.st
        if self.in_rollout and st.candidate_version is not None and st.candidate_version != version:
            self.end_rollout("Superseded", Reason.SUPERSEDED, f"superseded by {version}")
        st.candidate_version = version
        st.candidate_uri = uri
        st.candidate_source = source
        st.canary_weight = 0
        st.current_step = None
        st.step_started_at = None
        st.rollout_started_at = self.now
        st.last_progress_at = self.now
        st.paused = False
        st.analysis = AnalysisStatus()
        st.approvals = []
        st.gates = [GateStatus(name=g.name, version=version) for g in self.spec.gates]
        st.phase = Phase.VALIDATING
        base = f"; stable {st.stable_version}" if st.stable_version else ""
        self.event("Normal", Reason.NEW_CANDIDATE, f"rolling out {version} from {source.lower()} ({why}){base}")
        self.set_progressing("True", Reason.GATES_RUNNING, f"{version}: running {len(st.gates)} gates")

    def end_rollout(self, outcome: Outcome, reason: Reason, message: str) -> None:
        """Close the current candidate's rollout: history, event, gate Jobs stopped; the caller sets the phase."""
        st = self.st
        assert st.candidate_version is not None
        self.record(st.candidate_version, outcome, message, st.rollout_started_at)
        for gate in st.gates:
            if gate.phase == GatePhase.RUNNING and gate.job_name:
                gate.phase = GatePhase.FAILED
                gate.finished_at = self.now
                gate.message = f"stopped: {message}"
                self.actions.append(DeleteJob(gate.job_name))
        kind: EventType = "Normal" if outcome in ("Superseded", "Promoted", "Initial") else "Warning"
        self.event(kind, reason, f"{st.candidate_version}: {message}")
        st.canary_weight = 0
        st.current_step = None
        st.step_started_at = None
        st.paused = False

    # --------------------------------------------------------------------------------------------- gates

    def validate(self) -> None:
        st, spec = self.st, self.spec
        assert st.candidate_version is not None
        assert st.candidate_uri is not None
        by_name = {g.name: g for g in st.gates}
        st.gates = [by_name.get(g.name) or GateStatus(name=g.name, version=st.candidate_version) for g in spec.gates]
        baseline = {g.name: g.metrics for g in st.stable_gates}
        for gate, gs in zip(spec.gates, st.gates, strict=True):
            if gs.phase == GatePhase.PENDING:
                started = st.rollout_started_at or self.now
                gs.job_name = naming.gate_job_name(self.meta.name, st.candidate_version, gate.name, started)
                gs.phase = GatePhase.RUNNING
                gs.started_at = self.now
                self.actions.append(StartGateJob(gate.name, st.candidate_version, st.candidate_uri, gs.job_name))
                self.event("Normal", Reason.GATE_STARTED, f"gate {gate.name} started for {st.candidate_version}")
                continue
            if gs.phase != GatePhase.RUNNING:
                continue
            result = self.obs.gates.get(gate.name)
            if result is not None and result.job_name is not None and result.job_name != gs.job_name:
                result = None  # a result of another attempt's Job
            timeout = parse_duration(gate.timeout)
            if result is not None and result.state == JobState.SUCCEEDED:
                judgement = judge_gate(gate, result.results, baseline.get(gate.name), stable_version=st.stable_version)
                gs.results = dict(result.results) if result.results is not None else None
                gs.phase = GatePhase.PASSED if judgement.passed else GatePhase.FAILED
                gs.message = judgement.message
                gs.not_judged = list(judgement.not_judged)
            elif result is not None and result.state == JobState.FAILED:
                gs.phase, gs.message = GatePhase.FAILED, f"job failed: {job_failure(result)}"
            elif (result is not None and result.state == JobState.TIMED_OUT) or (
                gs.started_at is not None and self.now >= gs.started_at + timeout
            ):
                gs.phase, gs.message = GatePhase.FAILED, f"timed out after {gate.timeout}"
                if gs.job_name:
                    self.actions.append(DeleteJob(gs.job_name))
            else:
                continue
            gs.finished_at = self.now
            if gs.phase == GatePhase.PASSED:
                self.event("Normal", Reason.GATE_PASSED, f"gate {gate.name}: {gs.message}")
            else:
                self.event("Warning", Reason.GATE_FAILED, f"gate {gate.name}: {gs.message}")
        failed = [g for g in st.gates if g.phase == GatePhase.FAILED]
        if failed and all(g.phase in (GatePhase.PASSED, GatePhase.FAILED) for g in st.gates):
            message = "; ".join(f"{g.name}: {g.message}" for g in failed)
            self.end_rollout("Failed", Reason.GATES_FAILED, f"gates failed: {message}")
            st.phase = Phase.FAILED
            self.set_progressing("False", Reason.GATES_FAILED, f"{st.candidate_version} failed its gates: {message}")
            return
        if not all(g.phase == GatePhase.PASSED for g in st.gates):
            running = [g.name for g in st.gates if g.phase != GatePhase.PASSED]
            self.set_progressing("True", Reason.GATES_RUNNING, f"{st.candidate_version}: waiting for gates {running}")
            return
        if st.stable_version is None:
            self.initial_deployment()
            return
        if st.gates:
            self.event("Normal", Reason.GATES_PASSED, f"{st.candidate_version} passed {len(st.gates)} gates")
        st.phase = Phase.PROGRESSING
        st.last_progress_at = self.now

    def initial_deployment(self) -> None:
        """The first version ever: nothing to compare a canary with, so it takes all traffic at once."""
        st = self.st
        assert st.candidate_version is not None
        version = st.candidate_version
        self.record(version, "Initial", "first version", st.rollout_started_at)
        self.make_stable()
        st.phase = Phase.PROMOTED
        self.event("Normal", Reason.INITIAL_DEPLOYMENT, f"{version} deployed at 100% (first version)")
        self.set_progressing("False", Reason.INITIAL_DEPLOYMENT, f"{version} is stable (first version)")

    # ------------------------------------------------------------------------------------------ progress

    def progress(self) -> None:
        st, spec, obs = self.st, self.spec, self.obs
        steps = spec.rollout.steps
        assert st.candidate_version is not None
        version = st.candidate_version
        if st.current_step is None:
            # Warm-up: the candidate's workload starts at weight 0; it must be ready before any traffic moves.
            if st.paused:
                st.phase = Phase.PAUSED
                self.set_progressing("Unknown", Reason.ROLLOUT_PAUSED, f"{version}: paused by request")
                return
            if not obs.candidate_ready:
                st.phase = Phase.PROGRESSING
                if self.deadline_passed():
                    self.rollback(Reason.CANDIDATE_NOT_READY, f"not ready within {spec.rollout.progress_deadline}")
                    return
                self.set_progressing("True", Reason.CANDIDATE_STARTING, f"{version}: waiting for the workload")
                return
            self.enter_step(0)
            return
        if analysis_due(spec, st, self.now) and self.analyse():
            return
        step = steps[st.current_step]
        where = f"step {st.current_step + 1}/{len(steps)} at weight {st.canary_weight}"
        if st.paused:
            st.phase = Phase.PAUSED
            self.set_progressing("Unknown", Reason.ROLLOUT_PAUSED, f"{version}: paused by request at {where}")
            return
        st.phase = Phase.PROGRESSING
        if st.step_started_at is None and not self.route_confirmed(where):
            return
        assert st.step_started_at is not None
        # A step lasts at least until the next reconcile: a call repeated at the same instant changes nothing.
        if self.now < st.step_started_at + parse_duration(step.pause) or self.now <= st.step_started_at:
            self.set_progressing("True", Reason.ROLLOUT_IN_PROGRESS, f"{version}: {where}")
            return
        if not obs.candidate_ready:
            if self.deadline_passed():
                self.rollback(Reason.CANDIDATE_NOT_READY, f"not ready at {where}")
            else:
                self.set_progressing("True", Reason.CANDIDATE_NOT_READY, f"{version}: {where}, waiting for readiness")
            return
        if spec.rollout.analysis.metrics and not self.passed_in_step():
            if self.deadline_passed():
                unavailable = st.analysis.consecutive_unavailable > 0
                reason = Reason.METRICS_UNAVAILABLE if unavailable else Reason.PROGRESS_DEADLINE_EXCEEDED
                self.rollback(reason, f"no passing analysis within {spec.rollout.progress_deadline} at {where}")
            else:
                self.set_progressing("True", Reason.ROLLOUT_IN_PROGRESS, f"{version}: {where}, awaiting analysis")
            return
        if st.current_step + 1 >= len(steps):
            self.promote(f"completed {len(steps)} steps")
            return
        self.enter_step(st.current_step + 1)

    def route_confirmed(self, where: str) -> bool:
        """The step's weights are in the route and its controller accepted them: the step starts now. Else it
        waits (Progressing says for what), and rolls back once ``progressDeadline`` passes without acceptance."""
        st, obs = self.st, self.obs
        accepted = obs.route_acceptance
        # Not at the instant the step was entered: what was observed then is the route before this step's weights.
        entered = st.last_progress_at is not None and self.now <= st.last_progress_at
        if not entered and obs.route_matches is True and accepted is not None and accepted.state == Acceptance.ACCEPTED:
            st.step_started_at = self.now
            return True
        detail = accepted.message if accepted is not None and not entered else NOT_READ_BACK
        if self.deadline_passed():
            deadline = self.spec.rollout.progress_deadline
            self.rollback(Reason.ROUTE_NOT_ACCEPTED, f"route not accepted within {deadline} at {where}: {detail}")
            return False
        self.awaiting_route(where, detail)
        return False

    def awaiting_route(self, where: str, detail: str) -> None:
        message = f"{self.st.candidate_version}: {where}, waiting for the Gateway to accept the route: {detail}"
        self.set_progressing("True", Reason.AWAITING_ROUTE, message)

    def passed_in_step(self) -> bool:
        """The latest analysis ran during the current step and every metric passed."""
        a, started = self.st.analysis, self.st.step_started_at
        if a.last_check_at is None or started is None or a.last_check_at <= started:
            return False
        return bool(a.metrics) and all(m.verdict == Verdict.PASS for m in a.metrics)

    def enter_step(self, index: int) -> None:
        """Move to step ``index``; full traffic (weight 100) waits for every approval."""
        st, steps = self.st, self.spec.rollout.steps
        assert st.candidate_version is not None
        weight = steps[index].weight
        missing = self.missing_approvals()
        if weight == 100 and missing:
            message = f"{st.candidate_version}: awaiting approval from {', '.join(missing)} before full traffic"
            if self.before.phase != Phase.PAUSED or self.before.message != message:
                self.event("Normal", Reason.AWAITING_APPROVAL, message)
            st.phase = Phase.PAUSED
            self.set_progressing("Unknown", Reason.AWAITING_APPROVAL, message)
            return
        st.phase = Phase.PROGRESSING
        st.current_step = index
        st.canary_weight = weight
        # With a Gateway whose controller must accept the route first, the step starts once it has (route_confirmed).
        st.step_started_at = None if awaits_acceptance(self.spec) else self.now
        st.last_progress_at = self.now
        where = f"step {index + 1}/{len(steps)} at weight {weight}"
        self.event("Normal", Reason.STEP_ADVANCED, f"{st.candidate_version}: {where}")
        if st.step_started_at is None:
            self.awaiting_route(where, NOT_READ_BACK)
        else:
            self.set_progressing("True", Reason.ROLLOUT_IN_PROGRESS, f"{st.candidate_version}: {where}")

    def analyse(self) -> bool:
        """Run one analysis; True when it rolled the candidate back."""
        st, spec, obs = self.st, self.spec, self.obs
        policy = spec.rollout.analysis
        # At weight 100 the stable version serves nothing, so its reading of a rate is empty: a baseline comparison
        # cannot be made and would hold the last step until maxUnavailableChecks rolled it back. Thresholds only.
        full = st.canary_weight >= 100
        results = [
            judge_metric(
                m.model_copy(update={"baseline": None}) if full and m.baseline is not None else m,
                obs.candidate.get(m.name, Reading.no_data("not observed")),
                None if m.baseline is None or full else obs.stable.get(m.name, Reading.no_data("not observed")),
                self.now,
            )
            for m in policy.metrics
        ]
        a = st.analysis
        a.metrics = results
        a.last_check_at = self.now
        outcome = check_outcome(results)
        version = st.candidate_version
        if outcome == CheckOutcome.FAIL:
            a.failed_checks += 1
            a.consecutive_unavailable = 0
            failing = summary(results, Verdict.FAIL)
            if a.failed_checks > policy.failure_limit:
                self.rollback(
                    Reason.ANALYSIS_FAILED, f"{a.failed_checks} failed checks (limit {policy.failure_limit}): {failing}"
                )
                return True
            self.event(
                "Warning",
                Reason.CHECK_FAILED,
                f"{version}: check failed ({a.failed_checks}/{policy.failure_limit}) {failing}",
            )
        elif outcome == CheckOutcome.UNAVAILABLE:
            a.unavailable_checks += 1
            a.consecutive_unavailable += 1
            missing = summary(results, Verdict.NO_DATA, Verdict.ERROR)
            if policy.on_metrics_unavailable == "Rollback":
                self.rollback(Reason.METRICS_UNAVAILABLE, f"metrics unavailable (policy Rollback): {missing}")
                return True
            if a.consecutive_unavailable >= policy.max_unavailable_checks:
                self.rollback(
                    Reason.METRICS_UNAVAILABLE,
                    f"metrics unavailable for {a.consecutive_unavailable} checks in a row"
                    f" (maxUnavailableChecks {policy.max_unavailable_checks}): {missing}",
                )
                return True
            self.event(
                "Warning",
                Reason.METRICS_UNAVAILABLE,
                f"{version}: holding weight {st.canary_weight}, metrics unavailable"
                f" ({a.consecutive_unavailable}/{policy.max_unavailable_checks}): {missing}",
            )
        else:
            a.passed_checks += 1
            a.consecutive_unavailable = 0
        return False

    def rollback(self, reason: Reason, message: str, outcome: Outcome = "RolledBack") -> None:
        """Weight back to 0 and the candidate deleted (through ``reconcile``); the stable version keeps serving."""
        st = self.st
        version = st.candidate_version
        self.end_rollout(outcome, reason, message)
        st.phase = Phase.ROLLED_BACK
        stable = f"; {st.stable_version} keeps serving" if st.stable_version else ""
        self.set_progressing("False", reason, f"{version} rolled back: {message}{stable}")

    def make_stable(self) -> None:
        st = self.st
        if st.stable_version is not None and st.stable_version != st.candidate_version:
            # A previous stable still waiting for its scale-down goes now: only one is kept.
            st.previous_stable_version, st.previous_stable_uri = st.stable_version, st.stable_uri
        st.stable_version, st.stable_uri = st.candidate_version, st.candidate_uri
        st.stable_gates = [
            GateBaseline(name=g.name, version=g.version, metrics=flatten_metrics(g.results))
            for g in st.gates
            if g.phase == GatePhase.PASSED
        ]
        st.promoted_at = self.now
        st.candidate_version = st.candidate_uri = st.candidate_source = None
        st.canary_weight = 0
        st.current_step = None
        st.step_started_at = None
        st.paused = False
        st.monitoring = MonitoringStatus()

    def promote(self, message: str) -> None:
        st = self.st
        version = st.candidate_version
        assert version is not None
        self.record(version, "Promoted", message, st.rollout_started_at)
        old = st.stable_version
        self.make_stable()
        st.phase = Phase.PROMOTED
        self.event("Normal", Reason.PROMOTED, f"{version} promoted ({message}); previous stable {old}")
        self.set_progressing("False", Reason.PROMOTED, f"{version} is stable: {message}")

    def scale_down_old_stable(self) -> None:
        st = self.st
        previous = st.previous_stable_version
        if previous is None:
            return
        delay = parse_duration(self.spec.rollout.scale_down_delay)
        if st.promoted_at is not None and self.now < st.promoted_at + delay:
            return
        st.previous_stable_version = st.previous_stable_uri = None
        self.event(
            "Normal",
            Reason.OLD_STABLE_DELETED,
            f"{previous} removed {self.spec.rollout.scale_down_delay} after promotion",
        )

    # ---------------------------------------------------------------------------------- monitoring

    def monitoring(self) -> None:
        st, mon = self.st, self.spec.monitoring
        if st.stable_version is not None and st.promoted_at is None:
            st.promoted_at = self.now  # status from before promotedAt was kept: the clock starts now
        if mon is None or not monitoring_due(self.spec, st, self.now):
            return
        results = [
            judge_metric(
                m, self.obs.monitoring.get(m.name, Reading.no_data("not observed")), None, self.now, subject=m.name
            )
            for m in mon.metrics
        ]
        m = st.monitoring
        m.metrics = results
        m.last_check_at = self.now
        # A check without data (or with a failed query) is neither a failure nor a pass: it leaves the failures as
        # they were and is counted on its own; a check that judged every metric ends a run of those.
        outcome = check_outcome(results)
        if outcome == CheckOutcome.UNAVAILABLE:
            m.consecutive_no_data += 1
            return
        m.consecutive_no_data = 0
        if outcome == CheckOutcome.FAIL:
            m.consecutive_failures += 1
        else:
            m.consecutive_failures = 0

    def degraded(self) -> bool:
        mon = self.spec.monitoring
        return mon is not None and self.st.monitoring.consecutive_failures >= mon.degraded_after

    def without_data(self) -> bool:
        """As many checks in a row without data as would have degraded the model: it cannot be judged."""
        mon = self.spec.monitoring
        return mon is not None and self.st.monitoring.consecutive_no_data >= mon.degraded_after

    # ---------------------------------------------------------------------------------- retraining

    def retraining_results(self) -> None:
        r, rs = self.st.retraining, self.spec.retraining
        if r.phase != "Running":
            return
        res = self.obs.retraining
        if res is not None and res.job_name is not None and res.job_name != r.job_name:
            res = None
        timed_out = (
            rs is not None
            and r.last_started_at is not None
            and (self.now >= r.last_started_at + parse_duration(rs.timeout))
        )
        if res is not None and res.state == JobState.SUCCEEDED:
            data = res.results or {}
            version, uri = data.get("version"), data.get("uri")
            if isinstance(version, str) and isinstance(uri, str) and uri and _valid_version(version):
                r.phase, r.produced_version, r.produced_uri, r.consumed_at = "Succeeded", version, uri, None
                r.message = f"produced {version} ({uri})"
                self.event("Normal", Reason.RETRAINING_SUCCEEDED, f"retraining job {r.job_name}: {r.message}")
            else:
                r.phase = "Failed"
                r.message = f'result must be JSON {{"version": ..., "uri": ...}} with a valid version, got {data}'
                self.event("Warning", Reason.RETRAINING_FAILED, f"retraining job {r.job_name}: {r.message}")
        elif res is not None and res.state == JobState.FAILED:
            r.phase, r.message = "Failed", f"job failed: {job_failure(res)}"
            self.event("Warning", Reason.RETRAINING_FAILED, f"retraining job {r.job_name}: {r.message}")
        elif (res is not None and res.state == JobState.TIMED_OUT) or timed_out:
            r.phase, r.message = "Failed", f"timed out after {rs.timeout if rs else 'its deadline'}"
            if r.job_name:
                self.actions.append(DeleteJob(r.job_name))
            self.event("Warning", Reason.RETRAINING_FAILED, f"retraining job {r.job_name}: {r.message}")
        else:
            return
        r.last_finished_at = self.now

    def retraining_trigger(self) -> None:
        st, rs = self.st, self.spec.retraining
        r = st.retraining
        if rs is None or st.stable_version is None or st.stable_uri is None or self.obs.retiring:
            return
        if r.phase == "Running" or self.in_rollout:
            return
        if r.produced_version is not None and r.consumed_at is None:
            return  # an output waits to be rolled out
        if r.last_started_at is not None and self.now < r.last_started_at + parse_duration(rs.min_interval):
            return
        reason = None
        if rs.on_degradation and self.degraded():
            reason = "Degradation"
        elif rs.schedule:
            anchors = [t for t in (r.last_started_at, st.promoted_at) if t is not None]
            base = max(anchors) if anchors else self.now
            due: datetime = croniter(rs.schedule, base).get_next(datetime)
            if due <= self.now:
                reason = "Schedule"
        if reason is None:
            return
        job = naming.retraining_job_name(self.meta.name, self.now)
        r.phase, r.job_name, r.last_started_at, r.reason = "Running", job, self.now, reason
        r.message = f"retraining {st.stable_version} ({reason.lower()})"
        self.actions.append(StartRetrainingJob(job, st.stable_version, st.stable_uri, reason))
        self.event("Normal", Reason.RETRAINING_STARTED, f"retraining job {job} started: {reason.lower()}")

    # ------------------------------------------------------------------------------------- reconcile

    def reconcile(self) -> None:
        """Turn the change of desired state into actions: ensure first, then route, then delete."""
        before_w, after_w = desired_weights(self.before), desired_weights(self.st)
        before_wl, after_wl = desired_workloads(self.spec, self.before), desired_workloads(self.spec, self.st)
        spec_changed = self.meta.generation is not None and self.meta.generation != self.before.observed_generation
        for version, (uri, replicas) in after_wl.items():
            missing = self.obs.workloads is not None and version not in self.obs.workloads
            if missing and before_wl.get(version) == (uri, replicas):
                self.event("Warning", Reason.WORKLOAD_MISSING, f"workload of {version} is missing; recreating it")
            if missing or spec_changed or before_wl.get(version) != (uri, replicas):
                self.actions.append(EnsureWorkload(version, uri, replicas))
        if after_w and not self.obs.retiring:
            drift = self.obs.route_matches is False
            if after_w != before_w or drift or spec_changed:
                if drift and after_w == before_w:
                    self.event(
                        "Warning",
                        Reason.ROUTE_DRIFT,
                        f"router reports {dict(self.obs.router_weights or {})}, expected {after_w}: setting it back",
                    )
                self.actions.append(SetWeights(after_w))
        for version in before_wl:
            if version not in after_wl:
                self.actions.append(DeleteWorkload(version))

    # ------------------------------------------------------------------------------------ conditions

    def conditions(self) -> None:
        st, gen, now = self.st, self.meta.generation, self.now
        cs = ready_condition(st.conditions, st.stable_version, self.obs.stable_ready, now, gen)
        status, reason, message = self.progressing or ("False", Reason.NO_CANDIDATE.value, "no rollout yet")
        cs = set_condition(cs, ConditionType.PROGRESSING, status, reason, message, now, gen)
        cs = self.degraded_condition(cs)
        invalid = get_condition(cs, ConditionType.INVALID_SPEC)
        if invalid is not None and invalid.status != "False":
            cs = set_condition(cs, ConditionType.INVALID_SPEC, "False", Reason.SPEC_VALID, "spec is valid", now, gen)
        cs = self.route_condition(cs)
        blocked = get_condition(cs, ConditionType.BLOCKED)
        if blocked is not None and blocked.status != "False":
            # This status is written only once every action of the tick is carried out: nothing is in the way now.
            message = "every object the operator writes is its own"
            cs = set_condition(cs, ConditionType.BLOCKED, "False", Reason.NOT_BLOCKED, message, now, gen)
        st.conditions = cs

    def route_condition(self, cs: list[Condition]) -> list[Condition]:
        """``RouteAccepted`` from what the route's controller reported (kept as it was when the route was not read);
        a Warning event when it turns to a rejection, or the rejection's message changes."""
        accepted = self.obs.route_acceptance
        if self.spec.traffic.router != "gatewayAPI":
            # another router now: what a Gateway said of the old route says nothing any more
            return [c for c in cs if c.type != ConditionType.ROUTE_ACCEPTED]
        if accepted is None:
            return cs
        statuses: dict[Acceptance, ConditionStatus] = {Acceptance.ACCEPTED: "True", Acceptance.REJECTED: "False"}
        status = statuses.get(accepted.state, "Unknown")
        was = get_condition(self.before.conditions, ConditionType.ROUTE_ACCEPTED)
        if status == "False" and (was is None or was.status != "False" or was.message != accepted.message):
            self.event("Warning", Reason.ROUTE_REJECTED, accepted.message)
        return set_condition(
            cs, ConditionType.ROUTE_ACCEPTED, status, accepted.reason, accepted.message, self.now, self.meta.generation
        )

    def degraded_condition(self, cs: list[Condition]) -> list[Condition]:
        st, mon, now, gen = self.st, self.spec.monitoring, self.now, self.meta.generation
        was = get_condition(self.before.conditions, ConditionType.DEGRADED)
        if mon is None or not mon.metrics or st.stable_version is None:
            return set_condition(cs, ConditionType.DEGRADED, "False", Reason.NO_MONITORING, "no monitoring", now, gen)
        m, version, after = st.monitoring, st.stable_version, mon.degraded_after
        failing = summary(m.metrics, Verdict.FAIL)
        missing = summary(m.metrics, Verdict.NO_DATA, Verdict.ERROR)
        no_data = f"no data in {_checks(m.consecutive_no_data)} in a row"
        if self.degraded():
            message = f"{version}: {_checks(m.consecutive_failures, 'failed')} in a row" + (
                f": {failing}" if failing else ""
            )
            if m.consecutive_no_data:
                message += f"; since then {no_data}: {missing}"
            if was is None or was.status != "True":
                self.event("Warning", Reason.METRICS_DEGRADED, message)
            return set_condition(cs, ConditionType.DEGRADED, "True", Reason.METRICS_DEGRADED, message, now, gen)
        if self.without_data():
            message = f"{version}: cannot be judged, {no_data} (degradedAfter {after}): {missing}"
            if was is None or (was.status, was.reason) != ("Unknown", Reason.NO_DATA):
                self.event("Warning", Reason.NO_DATA, message)
            return set_condition(cs, ConditionType.DEGRADED, "Unknown", Reason.NO_DATA, message, now, gen)
        if m.last_check_at is None:
            message = f"{version}: no monitoring check yet"
        elif m.consecutive_no_data:
            message = f"{version}: {no_data} (Unknown after {after}): {missing}"
        elif m.consecutive_failures:
            message = (
                f"{version}: {_checks(m.consecutive_failures, 'failed')} in a row (Degraded after {after}): {failing}"
            )
        else:
            message = f"{version}: monitoring metrics within bounds"
        if was is not None and was.status != "False":  # no longer degraded, or judged again: said once, as it is
            self.event("Normal", Reason.METRICS_HEALTHY, message)
        return set_condition(cs, ConditionType.DEGRADED, "False", Reason.METRICS_HEALTHY, message, now, gen)


def ready_condition(
    conditions: Sequence[Condition], stable: str | None, stable_ready: bool, now: datetime, generation: int | None
) -> list[Condition]:
    """``Ready``: whether the stable version serves. From what was observed alone, so that a tick whose decision is
    not recorded (``mark_blocked``) still says it."""
    if stable is None:
        return set_condition(
            conditions, ConditionType.READY, "False", Reason.NO_STABLE_VERSION, "nothing promoted yet", now, generation
        )
    if stable_ready:
        return set_condition(
            conditions, ConditionType.READY, "True", Reason.STABLE_READY, f"{stable} serving", now, generation
        )
    message = f"{stable} is not ready"
    return set_condition(conditions, ConditionType.READY, "False", Reason.STABLE_NOT_READY, message, now, generation)


def _checks(n: int, kind: str = "") -> str:
    """``3 checks``, ``1 failed check``."""
    return f"{n} {kind + ' ' if kind else ''}check{'' if n == 1 else 's'}"


def job_failure(result: JobResult) -> str:
    """Why a Job failed: the ``error`` its JSON result names (a job that refused to write an oversized result says
    so there), then the Job's own reason.

    >>> job_failure(JobResult(JobState.FAILED, {"error": "result too large"}, "BackoffLimitExceeded"))
    'result too large (BackoffLimitExceeded)'
    >>> job_failure(JobResult(JobState.FAILED, None, ""))
    'no message'
    """
    error = (result.results or {}).get("error")
    if isinstance(error, str) and error:
        return f"{error} ({result.message})" if result.message else error
    return result.message or "no message"


def _valid_version(version: str) -> bool:
    return len(version) <= 40 and re.fullmatch(VERSION_PATTERN, version) is not None


def infer_phase(status: ModelDeploymentStatus) -> Phase:
    """The phase status implies, used when leaving ``InvalidSpec`` (which hides the phase it interrupted)."""
    candidate = status.candidate_version
    if candidate is not None:
        last = status.history[-1] if status.history else None
        started = status.rollout_started_at
        if (
            last is not None
            and last.version == candidate
            and (started is None or (last.finished_at or started) >= started)
        ):
            if last.outcome in ("RolledBack", "Aborted"):
                return Phase.ROLLED_BACK
            if last.outcome == "Failed":
                return Phase.FAILED
        if all(g.phase == GatePhase.PASSED for g in status.gates):
            return Phase.PAUSED if status.paused else Phase.PROGRESSING
        return Phase.VALIDATING
    return Phase.PROMOTED if status.stable_version is not None else Phase.PENDING


def decide(
    spec: ModelDeploymentSpec,
    meta: ObjectMeta,
    status: ModelDeploymentStatus,
    obs: DeploymentObservations,
    now: datetime,
) -> Decision:
    """One reconcile of a ModelDeployment: the actions to execute, in order, and the new status.

    Pure: ``status`` is not modified, ``now`` is the only time. Actions come in a safe order: workloads are
    ensured before weights move to them, weights move away before workloads are deleted, events last.
    """
    return _Tick(spec, meta, status, obs, now).run()


#: The answer to a ModelRequest for a ModelDeployment whose spec is invalid: nothing is applied until it is fixed.
INVALID_SPEC_REFUSAL = "not applied: the ModelDeployment's spec is invalid (InvalidSpec); fix it, then ask again"


def mark_invalid_spec(
    status: ModelDeploymentStatus,
    message: str,
    generation: int | None,
    now: datetime,
    requests: Sequence[ManualRequest] = (),
) -> Decision:
    """Semantic errors in the spec: phase ``InvalidSpec`` with the message, and nothing else changes; pending
    ModelRequests (``requests``) are refused, not kept to be applied late once the spec is fixed.

    The event is emitted once per distinct message; the next valid spec resumes the interrupted phase.
    """
    st = status.model_copy(deep=True)
    before = get_condition(status.conditions, ConditionType.INVALID_SPEC)
    st.phase = Phase.INVALID
    st.message = message
    st.conditions = set_condition(
        st.conditions, ConditionType.INVALID_SPEC, "True", Reason.INVALID_SPEC, message, now, generation
    )
    st.observed_generation = generation
    changed = before is None or before.status != "True" or before.message != message
    events: tuple[Action, ...] = (EmitEvent("Warning", Reason.INVALID_SPEC.value, message),) if changed else ()
    refused = tuple(AnswerRequest(r.name, False, INVALID_SPEC_REFUSAL) for r in requests if r.name)
    return Decision(events + refused, st)


def mark_blocked(
    status: ModelDeploymentStatus,
    message: str,
    generation: int | None,
    now: datetime,
    stable_ready: bool | None = None,
) -> Decision:
    """An action of the tick met an object that the operator must write and that is not its own (a DestinationRule of
    the same name in Istio's host mode, a Service of a version's name): it is left alone, and the status is the one
    before the tick with condition ``Blocked`` (reason ObjectNotOwned, ``message`` naming the object) added, and
    ``Ready`` as observed (``stable_ready``, when given: the stable version keeps serving meanwhile).

    Nothing else of the tick is recorded: phase, weights and ``observedGeneration`` stay, so the next reconcile
    decides the same and tries again. A Warning event is emitted when the condition appears or its message changes;
    the first tick whose actions all succeed sets it back to False.
    """
    st = status.model_copy(deep=True)
    before = get_condition(status.conditions, ConditionType.BLOCKED)
    if stable_ready is not None:
        st.conditions = ready_condition(st.conditions, st.stable_version, stable_ready, now, generation)
    st.conditions = set_condition(
        st.conditions, ConditionType.BLOCKED, "True", Reason.OBJECT_NOT_OWNED, message, now, generation
    )
    changed = before is None or before.status != "True" or before.message != message
    events: tuple[Action, ...] = (EmitEvent("Warning", Reason.OBJECT_NOT_OWNED.value, message),) if changed else ()
    return Decision(events, st)


__all__ = [
    "Decision",
    "analysis_due",
    "awaits_acceptance",
    "decide",
    "desired_weights",
    "desired_workloads",
    "infer_phase",
    "mark_blocked",
    "mark_invalid_spec",
    "monitoring_due",
    "route_unconfirmed",
]
