"""The demo's scenario: the lifecycle of ``examples/recommender.yaml``, acted out step by step and checked.

Each act changes the world the way its owner would (a git commit bumping ``spec.model.version``, the product team
approving through the request annotation, upstream sensors being re-calibrated, the platform team applying a
retirement) and then waits, with a deadline, for what the operator should do, checking each expectation on what the
API reports. An expectation that fails stops the scenario: the later acts build on it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

from modelops.api import ModelDeploymentStatus
from modelops.cli.plugin_view import request_body
from modelops.sandbox.env import HTTPROUTES, SandboxEnv
from modelops.sandbox.install import SANDBOX_APPROVERS
from modelops.sandbox.node import Client
from modelops.sandbox.node._kube import DEPLOYMENTS, ApiError, Kind
from modelops.sandbox.shares import RouteSegments, segment_checks
from modelops.sandbox.traefik import route_host
from modelops.sandbox.traffic import Segment, TrafficDriver, TrafficStats

from .manifests import Timings, demo_deployment, demo_retirement, httproute, load_example
from .observer import MODELDEPLOYMENTS, MODELRETIREMENTS, Observer, Printer
from .workloads import DemoData, train_replacement, train_versions

__all__ = ["ACTS", "MODEL", "REPLACEMENT", "RETIREMENT", "DemoFailed", "Expectation", "Scenario", "ScenarioConfig"]

T = TypeVar("T")

MODEL = "recommender"
REPLACEMENT = "recommender-next"
RETIREMENT = f"retire-{MODEL}"
#: the re-calibration of the sensors the demo plays (see ``modelops.sandbox.models.data``)
SHIFT = 1.0
#: the acts, in order (methods of :class:`Scenario`)
ACTS = ("setup", "first_version", "canary_promoted", "canary_rolled_back", "drift", "retirement")
#: the team that must approve a promotion in the example, and the member of it who approves (a user of the local
#: cluster in the group the chart maps to the team: ``modelops.sandbox.install.SANDBOX_APPROVERS``)
APPROVER = "product"
APPROVER_USER = "pat"
MODELREQUESTS = Kind("modelops.io", "v1alpha1", "modelrequests")


class DemoFailed(Exception):
    """An expectation failed (the scenario stops there)."""


@dataclass
class Expectation:
    act: str
    text: str
    passed: bool
    detail: str = ""


@dataclass(frozen=True)
class ScenarioConfig:
    namespace: str = "default"
    timings: Timings = field(default_factory=Timings)
    rate: float = 40.0
    #: rows per request: several rows give the accuracy of a 5% canary enough judged predictions per window
    batch: int = 4


class Scenario:
    """Runs the acts in order (:meth:`run`); :attr:`expectations` says what held. :meth:`close` stops the traffic
    and the observer (the caller stops the environment)."""

    def __init__(self, env: SandboxEnv, config: ScenarioConfig, printer: Printer) -> None:
        self.env, self.config, self.say = env, config, printer
        self.ns = config.namespace
        self.t = config.timings
        self.client = Client(env.api_client)
        self.models = env.directory / "models"
        self.data = DemoData(env.directory / "data")
        self.example = load_example("recommender.yaml")
        self.retirement_example = load_example("recommender-retirement.yaml")
        self.observer = Observer(self.client, self.ns, printer, (MODEL, REPLACEMENT), (RETIREMENT,))
        self.driver: TrafficDriver | None = None
        self.expectations: list[Expectation] = []
        self.act = "setup"
        self.acts_done: list[str] = []
        self.approved: set[tuple[str, str]] = set()
        self.approvals: list[tuple[float, str, str]] = []
        self._approver: tuple[Client, Path] | None = None
        self.uris: dict[str, str] = {}
        self.retrained: str | None = None
        self.traffic: TrafficStats | None = None
        #: the traffic per split of the route, as Traefik accepted each (filled when the traffic stops)
        self.segments: list[Segment] = []
        self.route_segments: RouteSegments | None = None
        self._stop = threading.Event()

    # ----------------------------------------------------------------------------------------------- plumbing

    @property
    def ok(self) -> bool:
        return bool(self.expectations) and all(e.passed for e in self.expectations)

    def expect(self, text: str, passed: bool, detail: str = "") -> bool:
        self.expectations.append(Expectation(self.act, text, passed, detail))
        mark = "ok" if passed else "FAILED"
        self.say("demo", f"[{mark}] {text}" + (f" ({detail})" if detail and not passed else ""))
        return passed

    def require(self, text: str, passed: bool, detail: str = "") -> None:
        if not self.expect(text, passed, detail):
            raise DemoFailed(f"{self.act}: {text}")

    def wait(self, what: str, check: Callable[[], T | None], timeout: float) -> T:
        """Poll ``check`` (approving on the way) until it returns something truthy; a failed expectation after
        ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            self.observer.poll()
            self.approve_if_asked()
            value = check()
            if value:
                return value
            if time.monotonic() >= deadline:
                self.require(f"{what} within {timeout:.0f}s", False, self.state_summary())
            self._stop.wait(0.5)

    def state_summary(self) -> str:
        parts = []
        for name in (MODEL, REPLACEMENT):
            st = self.observer.status(name)
            if st is not None:
                parts.append(f"{name}: {st.phase}, stable {st.stable_version}, candidate {st.candidate_version}, "
                             f"{st.message}")  # fmt: skip
        mret = self.observer.retirement(RETIREMENT)
        if mret is not None:
            parts.append(f"{RETIREMENT}: {mret.phase} {mret.message}")
        return "; ".join(parts) or "nothing observed"

    def status(self, name: str = MODEL) -> ModelDeploymentStatus:
        return self.observer.status(name) or ModelDeploymentStatus()

    def ready(self, st: ModelDeploymentStatus) -> bool:
        return any(c.type == "Ready" and c.status == "True" for c in st.conditions)

    def approver(self) -> tuple[Client, Path]:
        """A client (and its kubeconfig) of the product team's approver: a user in the team's group, an editor of
        the demo's namespace (Kubernetes' ``edit`` role, which the chart's roles extend to ModelRequests)."""
        if self._approver is None:
            groups = SANDBOX_APPROVERS[APPROVER]
            kubeconfig = self.env.cluster.editor_kubeconfig(APPROVER_USER, groups, self.ns)
            self._approver = Client(self.env.cluster.api_client(kubeconfig)), kubeconfig
        return self._approver

    def approve_if_asked(self) -> None:
        """The product team approves a candidate the operator holds for approval: a ModelRequest made as its member
        (what ``kubectl modelops approve`` does), which the API server admits for members of the team's group."""
        for name in (MODEL, REPLACEMENT):
            st = self.observer.status(name)
            if st is None or st.phase != "Paused" or st.candidate_version is None:
                continue
            if "awaiting approval" not in st.message or (name, st.candidate_version) in self.approved:
                continue
            client, kubeconfig = self.approver()
            md = self.client.get(MODELDEPLOYMENTS, self.ns, name)
            if md is None:
                continue
            self.say("demo", f"{APPROVER_USER} of the {APPROVER} team approves {st.candidate_version}: "
                     f"kubectl --kubeconfig {kubeconfig} modelops approve {name} --team {APPROVER}")  # fmt: skip
            client.create(MODELREQUESTS, self.ns, request_body(md, "approve", APPROVER_USER, APPROVER))
            self.approved.add((name, st.candidate_version))
            self.approvals.append((self.say.elapsed(), name, st.candidate_version))

    def deploy(self, name: str, model_name: str, version: str, uri: str, models: Path) -> None:
        """Apply the ModelDeployment, or change its version (what a git commit synced by Argo CD would do)."""
        body = demo_deployment(
            self.example,
            name=name,
            model_name=model_name,
            version=version,
            uri=uri,
            timings=self.t,
            holdout=self.data.holdout,
            training_data=self.data.latest,
            models_dir=models,
        )
        if self.client.get(MODELDEPLOYMENTS, self.ns, name) is None:
            self.say("demo", f"kubectl apply: ModelDeployment {name} at {version}")
            self.client.create(MODELDEPLOYMENTS, self.ns, body)
        else:
            self.say("demo", f"git commit: {name} spec.model.version -> {version}")
            self.client.patch(MODELDEPLOYMENTS, self.ns, name, {"spec": {"model": body["spec"]["model"]}})

    def history(self, name: str, version: str) -> str | None:
        """The outcome of ``version``'s last rollout, from the ModelDeployment's history."""
        outcomes = [h.outcome for h in self.status(name).history if h.version == version]
        return outcomes[-1] if outcomes else None

    def gate_phases(self, name: str, version: str) -> list[str]:
        return [str(g.phase) for g in self.status(name).gates if g.version == version]

    def seen_phase(self, name: str, phase: str, version: str | None = None) -> bool:
        return any(m.phase == phase and (version is None or m.version == version) for m in self.observer.marks(name))

    # ----------------------------------------------------------------------------------------------- the acts

    def run(self) -> None:
        self.observer.start()
        for name in ACTS:
            self.act = name
            getattr(self, name)()
            self.acts_done.append(name)
        self.act = "end"
        self.stop_traffic()

    def close(self) -> None:
        self._stop.set()
        self.stop_traffic()
        self.observer.stop()

    def stop_traffic(self) -> None:
        watcher, self.route_segments = self.route_segments, None
        if watcher is not None:
            watcher.stop()
        driver, self.driver = self.driver, None
        if driver is not None:
            self.traffic = driver.stop()
            self.segments = driver.segments()

    def setup(self) -> None:
        self.say("demo", f"training v1 (baseline), v2 (improved), v3 (broken at serving time) into {self.models}")
        self.uris = train_versions(self.models)
        self.data.publish(0.0)
        self.say("demo", f"data pipeline: held-out and training data in {self.data.directory}")
        for route in (MODEL, REPLACEMENT):
            self.client.create(HTTPROUTES, self.ns, httproute(route, host=route_host(self.ns, route)))
            self.say("demo", f"platform team: HTTPRoute {route} created")

    def first_version(self) -> None:
        self.deploy(MODEL, MODEL, "v1", self.uris["v1"], self.models)
        self.wait(
            "v1 stable and ready",
            lambda: (s := self.status()).stable_version == "v1" and self.ready(s),
            self.t.budget(1),
        )
        self.require("v1 passed its gates", self.gate_phases(MODEL, "v1") == ["Passed"], str(self.status().gates))
        self.require("v1 deployed at 100% as the first version", self.history(MODEL, "v1") == "Initial")
        entry = self.env.gateway(f"{self.ns}/{MODEL}")
        # Ready in status is not yet served by Traefik: its view of v1's endpoints may lag a moment behind
        self.wait("Traefik serving v1", lambda: _served_through(entry.url, entry.headers), 30)
        self.driver = TrafficDriver(
            entry.url,
            rate=self.config.rate,
            batch=self.config.batch,
            max_requests=10**8,
            max_seconds=6 * 3600,
            headers=entry.headers,
        ).start()
        self.route_segments = RouteSegments(self.client, self.ns, MODEL, self.driver).start()
        self.say(
            "demo",
            f"traffic: {self.config.rate:g} labelled requests/s of {self.config.batch} rows through Traefik "
            f"({entry.url}, Host {entry.host})",
        )
        self.wait("traffic served by v1", lambda: self._served("v1", 20), 30)

    def _served(self, version: str, n: int) -> bool:
        driver = self.driver
        return driver is not None and driver.stats().by_version[version] >= n

    def canary_promoted(self) -> None:
        self.deploy(MODEL, MODEL, "v2", self.uris["v2"], self.models)
        self.wait("v2 promoted", lambda: self.history(MODEL, "v2") == "Promoted", self.t.budget())
        self.require("v2 passed its gates before any traffic moved", self.gate_phases(MODEL, "v2") == ["Passed"])
        weights = _distinct(self.observer.weights_of(MODEL, "v2"))
        steps = [s["weight"] for s in self.example["spec"]["rollout"]["steps"]]
        self.require(f"v2 canary went {' -> '.join(map(str, steps))}", [w for w in weights if w] == steps, str(weights))
        self.require(
            f"v2 paused for the {APPROVER} team's approval before 100%",
            self.seen_phase(MODEL, "Paused", "v2") and (MODEL, "v2") in self.approved,
        )
        st = self.status()
        self.require("v2 is stable and ready", st.stable_version == "v2" and self.ready(st), st.message)

    def canary_rolled_back(self) -> None:
        self.deploy(MODEL, MODEL, "v3", self.uris["v3"], self.models)
        self.wait("v3 rolled back", lambda: self.history(MODEL, "v3") == "RolledBack", self.t.budget())
        self.require(
            "v3 passed its gates (its bug is at serving time only)", self.gate_phases(MODEL, "v3") == ["Passed"]
        )
        self.require("v3 took canary traffic", any(self.observer.weights_of(MODEL, "v3")))
        failed = {
            p.name
            for p in self.observer.select(lambda p: p.owner == MODEL and p.version == "v3" and p.source == "analysis")
            if p.verdict == "Fail"
        }
        self.require(
            "v3 failed on accuracy (vs its threshold and the stable baseline)", "accuracy" in failed, str(failed)
        )
        self.require("v3 failed on error rate", "error-rate" in failed, str(failed))
        st = self.status()
        self.require("v2 kept serving", st.stable_version == "v2" and self.ready(st), st.message)

    def drift(self) -> None:
        assert self.driver is not None
        self.say("demo", f"upstream sensors re-calibrated: live inputs shift by {SHIFT:g} (f0 +{2 * SHIFT:g}, "
                 f"f1 -{2 * SHIFT:g}); the data pipeline now delivers shifted data too")  # fmt: skip
        self.driver.shift(SHIFT)
        self.data.publish(SHIFT)
        monitoring = self.t.monitoring_interval * (int(self.example["spec"]["monitoring"].get("degradedAfter", 3)) + 4)
        self.wait("v2 Degraded", lambda: self._degraded() == "True", 30 + monitoring)
        st = self.status()
        failing = {m.name for m in st.monitoring.metrics if m.verdict == "Fail"}
        self.require("monitoring saw the drift and the accuracy drop on v2",
                     st.stable_version == "v2" and {"accuracy", "input-drift"} <= failing, str(failing))  # fmt: skip
        self.wait("retraining started", lambda: self.status().retraining.phase in ("Running", "Succeeded"), 60)
        self.require("retraining was started by the degradation", self.status().retraining.reason == "Degradation")
        produced = self.wait("retraining produced a version", lambda: self.status().retraining.produced_version, 120)
        self.retrained = produced
        self.wait(f"{produced} promoted", lambda: self.history(MODEL, produced) == "Promoted", self.t.budget())
        self.require(f"{produced} passed its gates", self.gate_phases(MODEL, produced) == ["Passed"])
        weights = [w for w in _distinct(self.observer.weights_of(MODEL, produced)) if w]
        self.require(f"{produced} went through the canary", len(weights) >= 3 and weights[-1] == 100, str(weights))
        self.wait("Degraded cleared", lambda: self._degraded() == "False", 60)
        st = self.status()
        self.require(f"{produced} is stable and Degraded is cleared", st.stable_version == produced, st.message)

    def _degraded(self) -> str | None:
        return next((c.status for c in self.status().conditions if c.type == "Degraded"), None)

    def retirement(self) -> None:
        assert self.driver is not None
        next_models = self.env.directory / "models-next"
        self.say("demo", f"training {REPLACEMENT} v1, a random forest (new architecture) on today's data")
        uri = train_replacement(next_models, "v1", SHIFT)
        self.deploy(REPLACEMENT, REPLACEMENT, "v1", uri, next_models)
        self.wait(
            f"{REPLACEMENT} v1 stable and ready",
            lambda: (s := self.status(REPLACEMENT)).stable_version == "v1" and self.ready(s),
            self.t.budget(1),
        )
        retired_version = self.status().stable_version
        body = demo_retirement(self.retirement_example, target=MODEL, replacement=REPLACEMENT, timings=self.t)
        self.say("demo", f"kubectl apply: ModelRetirement {RETIREMENT} ({MODEL} -> {REPLACEMENT})")
        self.client.create(MODELRETIREMENTS, self.ns, body)
        drain = body["spec"]["drain"]
        budget = 60 + self.t.after_replacement_promoted + len(drain["steps"]) * self.t.drain_interval * 2
        self.wait(
            f"{MODEL} retired", lambda: (r := self.observer.retirement(RETIREMENT)) and r.phase == "Retired", budget
        )
        mret = self.observer.retirement(RETIREMENT)
        assert mret is not None
        drained = [w for w in _distinct(self.observer.weights_of(RETIREMENT, REPLACEMENT)) if w]
        self.require(f"traffic drained to {REPLACEMENT} step by step", drained == drain["steps"], str(drained))
        removed = {(r.kind, r.name) for r in mret.removed}
        wanted = {("Deployment", f"{MODEL}-{retired_version}"), ("Service", f"{MODEL}-{retired_version}"),
                  ("ModelDeployment", MODEL)}  # fmt: skip
        self.require(f"what belonged to {MODEL} was removed", wanted <= removed, str(sorted(removed)))
        self.require(
            f"nothing of {REPLACEMENT} was removed",
            not any(name.startswith(REPLACEMENT) for _, name in removed)
            and self._exists(DEPLOYMENTS, f"{REPLACEMENT}-v1")
            and self._exists(HTTPROUTES, MODEL),
        )
        self.require(
            "the zero-traffic check passed before anything was deleted",
            any(reason == "ZeroTrafficConfirmed" for _, _, _, reason, _ in self.observer.events),
        )
        backend = f"{REPLACEMENT}/v1"
        start = self.driver.stats().by_backend[backend]
        self.wait(
            f"traffic served by {REPLACEMENT} after the retirement",
            lambda: self.driver is not None and self.driver.stats().by_backend[backend] >= start + 20,
            30,
        )
        self.require(f"{REPLACEMENT} serves the traffic after the retirement", True)
        stats = self.driver.stats()
        broken = f"{MODEL}/v3"
        others = {b: n for b, n in stats.errors_by_backend.items() if b != broken}
        self.require(
            "no request was lost through every weight change (the only errors are v3's own 500s)",
            stats.failures == 0
            and not others
            and stats.errors == stats.by_status[500] == stats.errors_by_backend[broken],
            f"{stats.failures} without answer {dict(stats.failure_kinds)}, statuses {dict(stats.by_status)}, "
            f"errors by server {dict(stats.errors_by_backend)}",
        )
        watcher = self.route_segments
        segments = self.driver.segments()
        checks = [c for g in segments for c in segment_checks(g)]
        self.require(
            f"Traefik split the traffic as the route said at each of its {len(segments)} splits (binomial bound)",
            bool(segments) and all(c.ok for c in checks) and watcher is not None,
            "; ".join(str(c) for c in checks if not c.ok),
        )

    def _exists(self, kind: Any, name: str) -> bool:
        try:
            return self.client.get(kind, self.ns, name) is not None
        except ApiError:
            return False


def _served_through(url: str, headers: dict[str, str]) -> bool:
    """Whether the data plane reaches a ready model server (its /healthz answers 200 through the route)."""
    try:
        return httpx.get(f"{url}/healthz", headers=headers, timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def _distinct(values: list[int]) -> list[int]:
    """Consecutive repeats collapsed: ``[0, 5, 5, 25]`` -> ``[0, 5, 25]``."""
    out: list[int] = []
    for v in values:
        if not out or out[-1] != v:
            out.append(v)
    return out
