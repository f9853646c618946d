"""``modelops sandbox demo``: start the sandbox, play the scenario, report, and stop everything whatever happens.

SIGINT (Ctrl-C) and SIGTERM interrupt the scenario where it is; the traffic, the operator, the gateway, the node agent
with every model server and job it runs, Prometheus and the Kubernetes control plane are then stopped in order, and
any process still carrying the sandbox's id is killed, so nothing is left running. Before stopping (unless
interrupted), the demo shows what the cluster holds: ``kubectl get mdep,deploy,pods``, objects made by the real
controllers from what the operator applied. Exit status: 0 when every expectation held, 1 when one failed (the summary
says which), 130 when interrupted.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import sys
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from modelops.sandbox.env import SandboxEnv, find_sandbox_processes

from .manifests import Timings
from .observer import Printer
from .report import plot_timeline, summary
from .scenario import ACTS, MODEL, REPLACEMENT, RETIREMENT, DemoFailed, Scenario, ScenarioConfig

__all__ = ["DemoInterrupted", "DemoOptions", "run_demo"]

#: what a previous run left in the demo directory, removed before a new run (nothing else there is touched): the
#: cluster's state (etcd's data, certificates, logs) among them, so every run starts from an empty cluster
RUN_ARTIFACTS = ("models", "models-next", "data", "cluster", "node", "prometheus", "logs", "kubeconfig", "state.json",
                 "demo.log")  # fmt: skip
#: what the demo shows of the cluster at the end: the objects, made by the operator and the real controllers
KUBECTL_GET = ("get", "mdep,deploy,pods", "-o", "wide")
#: the operator checks gate and retraining Jobs every second, and looks at idle objects every 10 s
OPERATOR_ARGS = ("--gate-poll", "1", "--resync", "10")


class DemoInterrupted(BaseException):
    """SIGINT or SIGTERM arrived: stop where we are (a BaseException, like KeyboardInterrupt, so nothing swallows
    it on the way up)."""


@dataclass
class DemoOptions:
    directory: Path = Path(".sandbox-demo")
    png: Path | None = None
    speed: float = 1.0
    rate: float = 40.0
    namespace: str = "default"
    sandbox_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    out: TextIO = field(default_factory=lambda: sys.stdout)


class _Signals:
    """Turns the first SIGINT/SIGTERM into :class:`DemoInterrupted`; once disarmed (cleanup), signals are noted."""

    def __init__(self, say: Printer) -> None:
        self.say = say
        self.armed = True
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is None:
            self.received = signum
        if self.armed:
            self.armed = False
            raise DemoInterrupted(signal.Signals(signum).name)
        self.say("demo", f"{signal.Signals(signum).name} received: already stopping")


def _prepare(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name in RUN_ARTIFACTS:
        path = directory / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def _running(directory: Path) -> int | None:
    """The pid of a live process that runs a sandbox (a demo, or ``sandbox up``) from ``directory``, if any."""
    import psutil

    try:
        pid = json.loads((directory / "state.json").read_text()).get("supervisor_pid")
        alive = isinstance(pid, int) and pid != os.getpid() and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except (OSError, ValueError, AttributeError, psutil.Error):
        return None
    return pid if alive else None


def _log_to(path: Path) -> logging.Handler:
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    if root.level == logging.NOTSET or root.level > logging.INFO:
        root.setLevel(logging.INFO)
    for noisy in ("httpx", "aiohttp.access", "kubernetes", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return handler


def _kill_leftovers(sandbox_id: str) -> list[int]:
    """Any process still carrying the sandbox's id (say, a job started as the interrupt came): SIGTERM, then
    SIGKILL. Returns their pids."""
    import psutil

    procs = [p for p in find_sandbox_processes(sandbox_id) if p.pid != psutil.Process().pid]
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.terminate()
    _, alive = psutil.wait_procs(procs, timeout=5.0)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(alive, timeout=5.0)
    return [p.pid for p in procs]


def kubectl_command(env: SandboxEnv, namespace: str) -> str:
    """The kubectl command line that shows the demo's objects (the cluster's own kubectl, its admin kubeconfig)."""
    return f"KUBECONFIG={env.kubeconfig} {env.cluster.bin / 'kubectl'} {' '.join(KUBECTL_GET)} -n {namespace}"


def show_cluster(env: SandboxEnv, namespace: str, say: Printer, out: TextIO) -> None:
    """Print :func:`kubectl_command` and its output (what the cluster holds before it stops)."""
    say("demo", f"what the cluster holds now: {kubectl_command(env, namespace)}")
    try:
        text = env.cluster.kubectl(*KUBECTL_GET, "-n", namespace)
    except Exception as exc:  # the demo's outcome stands without the listing
        say("demo", f"kubectl failed: {exc}")
        return
    for line in text.rstrip().splitlines():
        print(f"    {line}", file=out, flush=True)


def run_demo(options: DemoOptions) -> int:
    """Play the demo; the exit status (see the module docstring)."""
    directory = options.directory.resolve()
    running = _running(directory)
    if running is not None:
        print(f"a sandbox already runs from {directory} (pid {running}): stop it first, or use another --dir",
              file=options.out, flush=True)  # fmt: skip
        return 1
    _prepare(directory)
    handler = _log_to(directory / "demo.log")
    say = Printer(options.out)
    signals = _Signals(say)
    signals.install()
    timings = Timings().scaled(options.speed)
    env = SandboxEnv(
        directory,
        namespaces=[options.namespace],
        gateway_models=(f"{options.namespace}/{MODEL}",),
        operator_args=OPERATOR_ARGS,
        sandbox_id=options.sandbox_id,
    )
    scenario: Scenario | None = None
    code = 1
    try:
        say("demo", f"starting the sandbox in {directory} (id {env.sandbox_id}): Kubernetes control plane, node "
            "agent, Prometheus, Traefik, operator (helm install of its chart)")  # fmt: skip
        env.start()
        env.write_state(ready=True, demo=True)
        say("demo", f"API {env.api_url}, Prometheus {env.prometheus_url}, operator log {directory}/logs/operator.log")
        say("demo", f"kubectl: {kubectl_command(env, options.namespace)}")
        scenario = Scenario(env, ScenarioConfig(namespace=options.namespace, timings=timings, rate=options.rate), say)
        scenario.run()
        code = 0 if scenario.ok else 1
        show_cluster(env, options.namespace, say, options.out)
    except DemoInterrupted as exc:
        say("demo", f"{exc} received: stopping everything")
        code = 130
    except DemoFailed as exc:
        say("demo", f"stopped: {exc}")
        code = 1
        show_cluster(env, options.namespace, say, options.out)
    except Exception as exc:
        logging.exception("the demo failed")
        say("demo", f"the demo failed: {type(exc).__name__}: {exc}")
        print(traceback.format_exc(), file=options.out, flush=True)
        code = 1
    finally:
        signals.armed = False
        if scenario is not None:
            scenario.close()
        say("demo", "stopping the sandbox")
        env.stop()
        left = _kill_leftovers(env.sandbox_id)
        if left:
            say("demo", f"killed {len(left)} process(es) left behind: {left}")
        env.state_file.unlink(missing_ok=True)
        say("demo", "sandbox stopped; nothing of it runs")
        signals.restore()
        logging.getLogger().removeHandler(handler)
        handler.close()
    if scenario is not None:
        planned = list(ACTS)
        statuses = {name: st for name in (MODEL, REPLACEMENT) if (st := scenario.observer.status(name))}
        text = summary(
            scenario.observer,
            scenario.expectations,
            planned,
            scenario.acts_done,
            scenario.traffic,
            statuses,
            scenario.observer.retirement(RETIREMENT),
            scenario.segments,
        )
        print(text, file=options.out, flush=True)
        if code == 0 and scenario.acts_done != planned:
            code = 1
        png = options.png or directory / "timeline.png"
        try:
            plot_timeline(scenario.observer, png)
            print(f"timeline: {png}", file=options.out, flush=True)
        except Exception as exc:  # the summary stands without the picture
            print(f"cannot draw the timeline: {type(exc).__name__}: {exc}", file=options.out, flush=True)
            code = code or 1
    print(f"exit status {code}", file=options.out, flush=True)
    return code
