"""``modelops sandbox demo`` end to end: the whole lifecycle on the local environment, then nothing left running.

Given a fresh directory, when the demo runs (as ``make demo`` does, at 1.5x speed to keep the suite short), then it
exits 0, its output names each phase of the lifecycle in order, it shows ``kubectl get mdep,deploy,pods`` of the
cluster before stopping it (objects of the real controllers: ReplicaSet-made Pods on the node agent's Node), it
writes the PNG timeline, and no process carrying its sandbox id survives it. Given a running demo, when it receives
SIGINT, then it stops everything and exits 130.

The two tests that run the demo need the local cluster (the demo starts its own, and its model servers run from
the source tree under the node agent): given ``$MODELOPS_E2E_KUBECONFIG`` they skip. The others touch no cluster.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import psutil
import pytest

from modelops.api import ModelDeploymentSpec
from modelops.sandbox.cluster import NODE_NAME
from modelops.sandbox.demo import Observer, Printer, Timings, demo_deployment, load_example, plot_timeline
from modelops.sandbox.demo.observer import MetricPoint, PhaseMark, WeightPoint
from modelops.sandbox.env import SANDBOX_ID_ENV
from modelops.sandbox.node import Client
from plugins.waiting import wait_for

from .target import local_cluster_only

pytestmark = pytest.mark.e2e
DEMO_LOCAL = local_cluster_only(
    "the demo starts a local cluster of its own, and its model servers and Jobs run from the source tree under the "
    "node agent (their image is not published)"
)

T = TypeVar("T")
MODELOPS = [sys.executable, "-c", "import sys; from modelops.cli import main; sys.exit(main())"]
#: the speed the suite runs the demo at (about 3 minutes instead of 4 to 5)
SPEED = "1.5"

#: what the output must show, in this order: one line per phase change of the lifecycle
LIFECYCLE = [
    "recommender            phase Pending -> Validating",  # v1's gates
    "recommender            phase Validating -> Promoted  (v1 is stable (first version))",
    "recommender            phase Validating -> Progressing",  # v2 passed its gates
    "weight: v2 5%",
    "weight: v2 25%",
    "weight: v2 50%",
    "phase Progressing -> Paused  (v2: awaiting approval from product",
    "the product team approves v2",
    "weight: v2 100%",
    "phase Progressing -> Promoted  (v2 is stable",
    "weight: v3 5%",
    "phase Progressing -> RolledBack  (v3 rolled back",
    "condition Degraded=True",
    "retraining Running (Degradation",
    "retraining Succeeded",
    "phase Progressing -> Promoted  (v4 is stable",
    "condition Degraded=False",
    "recommender-next       phase Validating -> Promoted",
    "retire-recommender     phase Scheduled -> Draining",
    "drain: recommender-next 100%",
]
#: what must follow the drain, in any order (one look at the API can see all of it)
RETIRED = [
    "event Normal ZeroTrafficConfirmed",
    "retire-recommender     removed ModelDeployment recommender",
    "-> Retired  (retired;",
    # the traffic went through Traefik, split as each accepted route said, and none of it was lost
    "[ok] no request was lost through every weight change",
    "[ok] Traefik split the traffic as the route said at each of its",
    "Traffic per split of the route (as Traefik accepted it",
    "The lifecycle went as described.",
]


def poll(check: Callable[[], T | None], timeout: float, what: str) -> T:
    """``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    return wait_for(check, timeout, what, interval=0.2)


def marked(sandbox_id: str) -> list[int]:
    """Live processes (zombies run nothing) carrying the sandbox's id in their environment."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get(SANDBOX_ID_ENV) == sandbox_id and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc.pid)
        except psutil.Error:
            continue
    return found


class Demo:
    """The demo as a child process, its output collected line by line by a thread."""

    def __init__(self, directory: Path, png: Path) -> None:
        self.sandbox_id = uuid.uuid4().hex[:12]
        argv = [*MODELOPS, "sandbox", "demo", "--dir", str(directory), "--png", str(png), "--speed", SPEED]
        env = {k: v for k, v in os.environ.items() if k != SANDBOX_ID_ENV}
        self.process = subprocess.Popen(
            [*argv, "--sandbox-id", self.sandbox_id],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait(self, timeout: float) -> int:
        code = self.process.wait(timeout)
        self._reader.join(10)
        return code

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)
        self._reader.join(10)
        if self.process.stdout is not None:
            self.process.stdout.close()


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    running = Demo(tmp_path / "demo", tmp_path / "timeline.png")
    try:
        yield running
    finally:
        running.close()


def in_order(text: str, expected: list[str]) -> list[str]:
    """The expected lines not found in ``text`` after the previous one (empty when all are there, in order)."""
    missing, position = [], 0
    for item in expected:
        found = text.find(item, position)
        if found < 0:
            missing.append(item)
        else:
            position = found + len(item)
    return missing


@DEMO_LOCAL
@pytest.mark.timeout(540)
def test_the_demo_plays_the_whole_lifecycle_and_leaves_nothing_running(demo: Demo, tmp_path: Path) -> None:
    code = demo.wait(timeout=480)
    output = demo.output

    assert code == 0, output[-6000:]
    assert in_order(output, LIFECYCLE) == [], output[-6000:]
    after_drain = output[output.find(LIFECYCLE[-1]) :]
    assert [line for line in RETIRED if line not in after_drain] == [], output[-6000:]
    assert "[FAILED]" not in output
    # before stopping, what the cluster holds: the replacement's objects, its Pod bound to the node agent's Node
    listing = output[output.find("what the cluster holds now: KUBECONFIG=") :]
    assert "kubectl get mdep,deploy,pods -o wide -n default" in listing, output[-6000:]
    for line in ("modeldeployment.modelops.io/recommender-next", "deployment.apps/recommender-next-v1"):
        assert line in listing, listing[:3000]
    pods = [line.split() for line in listing.splitlines() if line.strip().startswith("pod/recommender-next-v1-")]
    servers = [p for p in pods if "-held-out-eval-" not in p[0]]
    assert len(servers) == 1, listing[:3000]  # the Deployment's one replica, from its ReplicaSet
    assert (servers[0][1], servers[0][2]) == ("1/1", "Running")
    assert NODE_NAME in servers[0]
    assert all(p[2] == "Completed" and NODE_NAME in p for p in pods if p not in servers)  # its gate Job's Pod
    png = (tmp_path / "timeline.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(png) > 50_000  # four panels of lines and markers, not an empty figure
    assert marked(demo.sandbox_id) == []


@DEMO_LOCAL
@pytest.mark.timeout(180)
def test_sigint_stops_the_demo_and_everything_it_started(demo: Demo) -> None:
    # Given the demo running v1 with traffic (control plane, node agent, Prometheus, operator, a model server)
    poll(lambda: "traffic: " in demo.output, 150, "the demo sent traffic")
    before = marked(demo.sandbox_id)
    assert len(before) >= 7, before  # etcd, 3 control-plane components, Prometheus, the operator, v1's server

    # When Ctrl-C arrives
    demo.process.send_signal(signal.SIGINT)

    # Then it stops everything it started and says so
    assert demo.wait(timeout=90) == 130, demo.output[-4000:]
    assert "SIGINT received: stopping everything" in demo.output
    assert "sandbox stopped; nothing of it runs" in demo.output
    assert poll(lambda: not marked(demo.sandbox_id) and "gone", 15, "the sandbox's processes exited") == "gone"


# ------------------------------------------------------------------------------------- the parts, without processes


def test_the_demo_deployment_is_the_example_at_demo_speed(tmp_path: Path) -> None:
    example = load_example("recommender.yaml")
    body = demo_deployment(
        example,
        name="recommender",
        model_name="recommender",
        version="v2",
        uri="file:///demo/models/v2/model.pkl",
        timings=Timings(),
        holdout=tmp_path / "holdout.csv",
        training_data=tmp_path / "latest.csv",
        models_dir=tmp_path / "models",
    )
    demo, original = (
        ModelDeploymentSpec.model_validate(body["spec"]),
        ModelDeploymentSpec.model_validate(example["spec"]),
    )

    # what is judged, by whom, against what: unchanged
    assert demo.rollout.analysis.metrics == original.rollout.analysis.metrics
    assert demo.monitoring is not None
    assert original.monitoring is not None
    assert demo.monitoring.metrics == original.monitoring.metrics
    assert demo.monitoring.degraded_after == original.monitoring.degraded_after
    assert [(g.checks, g.fairness) for g in demo.gates] == [(g.checks, g.fairness) for g in original.gates]
    assert demo.approvals == original.approvals
    assert [s.weight for s in demo.rollout.steps] == [s.weight for s in original.rollout.steps]
    # only durations shrink, to seconds
    assert demo.rollout.analysis.interval == "10s"
    assert {s.pause for s in demo.rollout.steps if s.pause != "0s"} == {"15s"}
    assert demo.monitoring.interval == "10s"
    assert demo.retraining is not None
    assert demo.retraining.min_interval == "30s"
    # the model server binds its Pod's address and port (the node agent expands the variables as a kubelet does)
    assert body["spec"]["server"]["args"] == ["--host=$(POD_IP)", "--port=$(PORT)"]
    # the jobs read the demo's data and write versions to its directory; the example is left alone
    retrain_args = demo.retraining.template["template"]["spec"]["containers"][0]["args"]
    assert retrain_args == ["--out-dir", str(tmp_path / "models"), "--data", str(tmp_path / "latest.csv")]
    assert example == load_example("recommender.yaml")


def test_speed_divides_durations_down_to_their_floors() -> None:
    fast = Timings().scaled(100)
    assert (fast.step_pause, fast.drain_interval) == (1, 1)
    assert (fast.analysis_interval, fast.monitoring_interval) == (4, 4)  # rate() windows keep a few samples
    assert Timings().scaled(2).step_pause == round(Timings().step_pause / 2)
    with pytest.raises(ValueError, match="speed"):
        Timings().scaled(0)


def test_the_timeline_draws_weights_metrics_and_phase_marks(tmp_path: Path) -> None:
    observer = Observer(Client(None), "default", Printer(io.StringIO()), ("recommender",), ())
    for t, weight in enumerate([0, 5, 5, 25, 50, 100]):
        observer.weights.append(WeightPoint(float(t), "recommender", "v2", weight))
        observer.metrics.append(
            MetricPoint(float(t), "recommender", "analysis", "v2", "accuracy", "ds", 0.9, 0.83, 0.8, None, "Pass")
        )
    observer.phases.append(PhaseMark(5.0, "recommender", "Promoted", "v2", "v2 is stable"))

    path = plot_timeline(observer, tmp_path / "t.png")

    assert path.read_bytes().startswith(b"\x89PNG")
