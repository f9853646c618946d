"""``modelops sandbox up`` / ``down`` / ``status`` / ``demo``: the whole local environment as one command.

``up`` runs :class:`~modelops.sandbox.env.SandboxEnv` (a real Kubernetes control plane, the node agent that runs its
Pods as local processes, Prometheus, Traefik, the operator installed from its Helm chart) in the foreground until
Ctrl-C (or SIGTERM), writing ``<dir>/state.json`` (pids, ports, URLs, refreshed every few seconds) and
``<dir>/kubeconfig`` (the cluster's admin: ``kubectl`` works on it, with the kubectl ``up`` prints). ``up --detach``
starts that same foreground process in its own session, waits until the state file says it is ready, and returns.
``down`` asks the supervising process to stop (SIGTERM: it stops everything in order), then finds any process still
carrying the sandbox's id in its environment and kills it, and checks that none is left.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

__all__ = ["register_env_commands", "run_demo_command", "run_down", "run_status", "run_up"]

DEFAULT_DIR = Path(".sandbox")
DEMO_DIR = Path(".sandbox-demo")
_MAIN = "import sys; from modelops.cli import main; sys.exit(main())"
#: how often the foreground ``up`` refreshes the state file (the node agent's Pods come and go)
STATE_REFRESH = 2.0


def register_env_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``up``, ``down`` and ``status`` to the ``sandbox`` subcommand group."""
    up = commands.add_parser(
        "up",
        help="start the local environment (Kubernetes control plane, node agent, Prometheus, Traefik, operator)",
        description="Start, on 127.0.0.1, a real Kubernetes control plane (etcd, kube-apiserver, "
        "kube-controller-manager, kube-scheduler), a node agent that runs the Pods bound to its Node as local "
        "processes, a real Prometheus, Traefik (a Gateway API data plane), and the operator (its chart installed "
        "with helm; "
        "`modelops run` with the chart's ServiceAccount token). Prints how to point kubectl at it. Stays in the "
        "foreground until Ctrl-C unless --detach.",
    )
    _dir_option(up)
    up.add_argument("--detach", action="store_true", help="return once everything is ready; stop with `down`")
    up.add_argument(
        "-n",
        "--namespace",
        action="append",
        dest="namespaces",
        metavar="NS",
        help="namespace the operator watches, created at start (repeatable; default: all)",
    )
    up.add_argument(
        "--gateway",
        action="append",
        dest="gateways",
        metavar="[NS/]MODEL",
        help="ModelDeployment to reach through Traefik: its namespace gets a Gateway "
        "(repeatable; default: default/recommender)",
    )
    up.add_argument("--no-operator", dest="operator", action="store_false", help="do not start `modelops run`")
    up.add_argument("--prometheus-port", type=int, default=0, help="Prometheus port (default: a free one)")
    up.add_argument("--gateway-port", type=int, default=0, help="Traefik's port (default: a free one)")
    up.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for readiness with --detach")
    up.add_argument("--sandbox-id", help=argparse.SUPPRESS)
    up.set_defaults(func=run_up)

    down = commands.add_parser(
        "down", help="stop every process of the sandbox (found by its id)", description=run_down.__doc__
    )
    _dir_option(down)
    down.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for a clean stop before killing")
    down.set_defaults(func=run_down)

    status = commands.add_parser("status", help="show what the sandbox runs", description=run_status.__doc__)
    _dir_option(status)
    status.add_argument("--json", action="store_true", help="print the state as JSON")
    status.set_defaults(func=run_status)

    demo = commands.add_parser(
        "demo",
        help="play the whole model lifecycle live in the local environment",
        description="Start the local environment and play the lifecycle of examples/recommender.yaml in a few "
        "minutes: v1 stable; v2 gates, canary, approval, promotion; v3 rolled back; drift, Degraded, retraining, "
        "promotion; a replacement and a ModelRetirement. Prints progress live, then a summary and a PNG timeline. "
        "Exit status 0 only when the lifecycle went as described; Ctrl-C stops everything.",
    )
    demo.add_argument(
        "--dir", type=Path, default=DEMO_DIR, help=f"the demo's directory (models, data, logs; default {DEMO_DIR})"
    )
    demo.add_argument("--png", type=Path, help="where to write the timeline (default DIR/timeline.png)")
    demo.add_argument(
        "--speed", type=float, default=1.0, help="divide every duration of the scenario by this (default 1: ~5 min)"
    )
    demo.add_argument("--rate", type=float, default=40.0, help="requests per second of the traffic (default 40)")
    demo.add_argument("--sandbox-id", help=argparse.SUPPRESS)
    demo.set_defaults(func=run_demo_command)


def _dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dir", type=Path, default=DEFAULT_DIR, help=f"the sandbox's directory (state, logs; default {DEFAULT_DIR})"
    )


# ----------------------------------------------------------------------------------------------------------- up


def run_up(args: argparse.Namespace) -> int:
    """Start the environment; in the foreground until interrupted, or detached with ``--detach``."""
    directory: Path = args.dir
    state = read_state(directory)
    if state is not None and _alive(state.get("supervisor_pid")):
        print(f"a sandbox already runs from {directory} (pid {state['supervisor_pid']}); stop it with `down`")
        return 1
    if args.detach:
        return _detach(args)
    return _foreground(args)


def _foreground(args: argparse.Namespace) -> int:
    from modelops.sandbox.env import SANDBOX_ID_ENV, SandboxEnv, SandboxError

    directory: Path = args.dir
    directory.mkdir(parents=True, exist_ok=True)
    sandbox_id = args.sandbox_id or uuid.uuid4().hex[:12]
    # Everything started from here inherits the id, whoever starts it (``down`` finds strays by it).
    os.environ[SANDBOX_ID_ENV] = sandbox_id
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        filename=str(directory / "sandbox.log"),
    )
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    env = SandboxEnv(
        directory,
        namespaces=args.namespaces,
        gateway_models=tuple(args.gateways or ("default/recommender",)),
        operator=args.operator,
        prometheus_port=args.prometheus_port,
        gateway_port=args.gateway_port,
        sandbox_id=sandbox_id,
    )
    stop = threading.Event()
    try:
        env.start()
    except SandboxError as e:
        print(f"sandbox up failed: {e}", file=sys.stderr)
        return 1
    except Exception as e:
        logging.exception("sandbox up failed")
        print(f"sandbox up failed: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        env.write_state(ready=True)
        print(describe(env.state()), flush=True)
        while not stop.wait(STATE_REFRESH):
            env.write_state(ready=True)
    finally:
        print("stopping the sandbox...", flush=True)
        env.stop()
        env.state_file.unlink(missing_ok=True)
        print("sandbox stopped", flush=True)
    return 0


def _detach(args: argparse.Namespace) -> int:
    from modelops.sandbox.env import SANDBOX_ID_ENV

    directory: Path = args.dir
    directory.mkdir(parents=True, exist_ok=True)
    sandbox_id = uuid.uuid4().hex[:12]
    argv = [sys.executable, "-c", _MAIN, "sandbox", "up", "--dir", str(directory), "--sandbox-id", sandbox_id]
    for ns in args.namespaces or ():
        argv += ["--namespace", ns]
    for gw in args.gateways or ():
        argv += ["--gateway", gw]
    if not args.operator:
        argv.append("--no-operator")
    argv += ["--prometheus-port", str(args.prometheus_port)]
    argv += ["--gateway-port", str(args.gateway_port)]
    log_path = directory / "up.log"
    (directory / "state.json").unlink(missing_ok=True)
    with log_path.open("ab") as out:
        child = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, SANDBOX_ID_ENV: sandbox_id},
        )
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        state = read_state(directory)
        if state is not None and state.get("sandbox_id") == sandbox_id and state.get("ready"):
            print(describe(state), flush=True)
            # The child outlives this process on purpose: tell Popen not to reap it nor warn about it.
            child.returncode = 0
            return 0
        if child.poll() is not None:
            print(f"sandbox up failed (exit {child.returncode}); its log {log_path}:", file=sys.stderr)
            print(_tail(log_path), file=sys.stderr)
            return 1
        time.sleep(0.2)
    print(f"sandbox not ready after {args.timeout}s; stopping it. Its log {log_path}:", file=sys.stderr)
    print(_tail(log_path), file=sys.stderr)
    _stop_pid(child.pid, 30.0)
    child.wait()
    return 1


def describe(state: dict[str, Any]) -> str:
    """How to use a running sandbox: its parts and the kubectl commands that talk to it."""
    lines = [f"sandbox {state['sandbox_id']} is up (supervisor pid {state['supervisor_pid']})"]
    if state.get("apiserver"):
        lines.append(
            f"  API server  {state['apiserver']['url']}  (kube-apiserver, etcd, controller-manager, scheduler)"
        )
    if state.get("prometheus"):
        lines.append(f"  Prometheus  {state['prometheus']['url']}")
    if state.get("traefik"):
        lines.append(
            f"  Traefik     {state['traefik']['url']}  (Gateway API data plane: Gateway 'sandbox' per namespace)"
        )
    for model, entry in (state.get("gateways") or {}).items():
        lines.append(
            f"  model       {model}: POST {entry['url']}/predict with Host: {entry['host']} (its HTTPRoute names"
            f" parent 'sandbox' and that host name)"
        )
    if state.get("operator"):
        lines.append(f"  operator    pid {state['operator']['pid']}, log {state['operator']['log']}")
    for note in state.get("notes") or []:
        lines.append(f"  note: {note}")
    directory = state.get("directory", ".sandbox")
    lines += [
        "",
        "Use it with kubectl or the kubernetes client:",
        f"  export KUBECONFIG={state['kubeconfig']}  PATH={state.get('kube_bin', '')}:$PATH",
        "  kubectl apply -f examples/recommender.yaml",
        "  kubectl get modeldeployments,deployments,jobs,pods",
        f"Stop it: modelops sandbox down --dir {directory}",
    ]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------------- down


def run_down(args: argparse.Namespace) -> int:
    """Stop every process `modelops sandbox up` started (the supervisor first, then any process still carrying the
    sandbox's id: control plane, node agent's Pods, Prometheus, operator) and check that none is left."""
    from modelops.sandbox.env import find_sandbox_processes

    directory: Path = args.dir
    state = read_state(directory)
    if state is None:
        print(f"no sandbox state in {directory}: nothing to stop")
        return 0
    sandbox_id = str(state["sandbox_id"])
    supervisor = state.get("supervisor_pid")
    if _alive(supervisor):
        print(f"stopping sandbox {sandbox_id} (pid {supervisor})...", flush=True)
        _stop_pid(int(str(supervisor)), args.timeout)
    strays = [p for p in find_sandbox_processes(sandbox_id) if p.pid != os.getpid()]
    if strays:
        print(f"killing {len(strays)} process(es) left behind: {[p.pid for p in strays]}", flush=True)
        _stop_procs(strays, 5.0)
    left = [p.pid for p in find_sandbox_processes(sandbox_id) if p.pid != os.getpid()]
    if left:
        print(f"processes still running: {left}", file=sys.stderr)
        return 1
    (directory / "state.json").unlink(missing_ok=True)
    print(f"sandbox {sandbox_id} stopped; nothing of it runs")
    return 0


# ----------------------------------------------------------------------------------------------------------- status


def run_status(args: argparse.Namespace) -> int:
    """Show what the sandbox runs (from its state file, checked against the live processes)."""
    from modelops.sandbox.env import find_sandbox_processes

    directory: Path = args.dir
    state = read_state(directory)
    if state is None:
        print(f"no sandbox runs from {directory}")
        return 1
    alive = _alive(state.get("supervisor_pid"))
    live = {p.pid for p in find_sandbox_processes(str(state["sandbox_id"]))}
    if args.json:
        print(json.dumps({**state, "running": alive, "live_pids": sorted(live)}, indent=2))
        return 0 if alive else 1
    if not alive:
        print(f"sandbox {state['sandbox_id']}: supervisor (pid {state.get('supervisor_pid')}) is not running")
        if live:
            print(f"  {len(live)} of its processes are still running: `modelops sandbox down --dir {directory}`")
        return 1
    print(describe(state).split("\n\n")[0])
    components = (state.get("apiserver") or {}).get("pids") or {}
    if components:
        print("  control plane:")
        for name, pid in components.items():
            print(f"    {name:<24} pid {pid} {'running' if pid in live else 'stopped'}")
    processes = state.get("processes") or []
    print(f"  {len(processes)} Pod process(es) under the node agent, {len(live)} sandbox processes in all:")
    for p in processes:
        running = "running" if p.get("pid") in live else "stopped"
        ready = " ready" if p.get("ready") else ""
        where = f" {p['ip']}" if p.get("ip") else ""
        print(f"    {p['kind']:<4} {p['namespace']}/{p['pod']:<50} pid {p.get('pid')} {running}{ready}{where}")
    print(f"  kubectl: KUBECONFIG={state['kubeconfig']} {state.get('kube_bin', '')}/kubectl get pods -A")
    return 0


# ----------------------------------------------------------------------------------------------------------- demo


def run_demo_command(args: argparse.Namespace) -> int:
    """Play the demo (``modelops.sandbox.demo``); its exit status."""
    from modelops.sandbox.demo import DemoOptions, run_demo

    options = DemoOptions(directory=args.dir, png=args.png, speed=args.speed, rate=args.rate)
    if args.sandbox_id:
        options.sandbox_id = args.sandbox_id
    return run_demo(options)


# ----------------------------------------------------------------------------------------------------------- helpers


def read_state(directory: Path) -> dict[str, Any] | None:
    try:
        state: dict[str, Any] = json.loads((directory / "state.json").read_text())
    except (OSError, ValueError):
        return None
    return state


def _alive(pid: Any) -> bool:
    import psutil

    if not isinstance(pid, int):
        return False
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _stop_pid(pid: int, timeout: float) -> None:
    import psutil

    try:
        proc = psutil.Process(pid)
    except psutil.Error:
        return
    _stop_procs([proc], timeout)


def _stop_procs(procs: list[Any], timeout: float) -> None:
    """SIGTERM, wait up to ``timeout``, SIGKILL what is left."""
    import psutil

    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.terminate()
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(alive, timeout=5.0)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
