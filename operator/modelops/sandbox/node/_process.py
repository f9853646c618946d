"""Local processes standing in for containers: a supervised server (restarted with backoff, probed for readiness) and
a one-shot job (run to completion under a deadline).

Each process is started in its own session (``start_new_session``), so it leads its own process group and stopping
it kills the whole group (a model server's workers included); :func:`kill_tree` also collects descendants that left
the group. One thread per process does the waiting and probing, so a slow probe never stalls the agent's loop.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psutil

log = logging.getLogger(__name__)

Notify = Callable[[], None]


@dataclass(frozen=True)
class ProcessSpec:
    """What to run: argv, full environment, working directory, and the file that gets stdout and stderr."""

    argv: Sequence[str]
    env: Mapping[str, str]
    cwd: Path
    log_path: Path


def spawn(spec: ProcessSpec) -> subprocess.Popen[bytes]:
    """Start ``spec`` in a new session (its own process group), output appended to its log file."""
    return spawn_logged(spec)[0]


def spawn_logged(spec: ProcessSpec) -> tuple[subprocess.Popen[bytes], int]:
    """:func:`spawn`, and the offset in the log file where the process's own output starts (after the line that
    says what starts)."""
    spec.cwd.mkdir(parents=True, exist_ok=True)
    spec.log_path.parent.mkdir(parents=True, exist_ok=True)
    with spec.log_path.open("ab") as out:
        out.write(f"--- {datetime.now(UTC).isoformat()} starting: {' '.join(spec.argv)}\n".encode())
        out.flush()
        offset = out.tell()
        return subprocess.Popen(
            list(spec.argv),
            env=dict(spec.env),
            cwd=spec.cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        ), offset


def kill_tree(process: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """SIGTERM the process group (and any descendant that left it), SIGKILL what is left after ``grace`` seconds."""
    # Once the leader is reaped its pid may be another process's: only a live leader's children are looked up.
    try:
        descendants = psutil.Process(process.pid).children(recursive=True) if process.poll() is None else []
    except psutil.Error:
        descendants = []
    _signal_group(process.pid, signal.SIGTERM)
    for child in descendants:
        _signal(child, signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        _signal_group(process.pid, signal.SIGKILL)
        process.wait()
    _, alive = psutil.wait_procs(descendants, timeout=grace)
    for child in alive:
        _signal(child, signal.SIGKILL)
    psutil.wait_procs(alive, timeout=grace)
    # No last SIGKILL to the group once the leader is reaped: its id may then belong to an unrelated new group.


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _signal(proc: psutil.Process, sig: signal.Signals) -> None:
    with contextlib.suppress(psutil.Error):
        proc.send_signal(sig)


def probe(url: str, timeout: float = 1.0) -> bool:
    """An HTTP readiness probe as the kubelet's: any status from 200 to 399 passes."""
    try:
        response = httpx.get(url, timeout=timeout)
    except httpx.HTTPError:
        return False
    return 200 <= response.status_code < 400


@dataclass
class Backoff:
    """Crash-loop backoff: ``initial`` doubled per consecutive crash up to ``maximum``; reset after a long run.

    >>> b = Backoff(initial=0.5, maximum=2.0)
    >>> [b.next(ran_for=0.1) for _ in range(4)]
    [0.5, 1.0, 2.0, 2.0]
    >>> b.next(ran_for=60.0)
    0.5
    """

    initial: float = 0.5
    maximum: float = 10.0
    reset_after: float = 10.0
    _crashes: int = field(default=0, init=False)

    def next(self, ran_for: float) -> float:
        self._crashes = 1 if ran_for >= self.reset_after else self._crashes + 1
        return float(min(self.initial * 2 ** (self._crashes - 1), self.maximum))


class ServerProcess:
    """One replica of a Deployment: kept running (restarted with backoff when it exits) and probed for readiness.

    ``on_change`` is called (from the supervising thread) whenever readiness, pid or restart count changes, so the
    node agent can write status without polling every process.
    """

    def __init__(
        self,
        spec: ProcessSpec,
        *,
        port: int,
        readiness_path: str | None,
        on_change: Notify,
        host: str = "127.0.0.1",
        probe_period: float = 0.25,
        failure_threshold: int = 3,
        backoff: Backoff | None = None,
        grace: float = 5.0,
    ) -> None:
        self.spec = spec
        self.port = port
        self.host = host
        #: ``None``: no readiness probe, ready while running (as the kubelet does)
        self.readiness_url = None if readiness_path is None else f"http://{host}:{port}{readiness_path}"
        self.on_change = on_change
        self.probe_period = probe_period
        self.failure_threshold = failure_threshold
        self.backoff = backoff or Backoff()
        self.grace = grace
        self.started_at = datetime.now(UTC)
        #: how many times the process was started again (as the kubelet's ``restartCount``: counted at the restart)
        self.restarts = 0
        #: how the previous run ended (exit code, started, finished): the container's ``lastState``
        self.last_exit: tuple[int, datetime, datetime] | None = None
        self._ready = False
        self._process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._supervise, name=f"replica-{host}:{port}", daemon=True)

    @property
    def ready(self) -> bool:
        return self._ready

    @property
    def pid(self) -> int | None:
        process = self._process
        return process.pid if process is not None and process.poll() is None else None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop supervising and kill the process group; returns once nothing of it runs."""
        with self._lock:
            self._stopping.set()
            process, self._process = self._process, None
        if process is not None:
            kill_tree(process, self.grace)
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(self.grace + 5.0)
        self._ready = False

    def _set_ready(self, ready: bool) -> None:
        if ready != self._ready:
            self._ready = ready
            log.info("%s %s", self.readiness_url, "ready" if ready else "not ready")
            self.on_change()

    def _supervise(self) -> None:
        failures = 0
        next_start = 0.0
        started = 0.0
        runs = 0
        while not self._stopping.is_set():
            process = self._process
            now = time.monotonic()
            if process is None:
                if now < next_start:
                    self._stopping.wait(next_start - now)
                    continue
                with self._lock:
                    if self._stopping.is_set():
                        return
                    try:
                        self._process = spawn(self.spec)
                    except OSError as e:
                        log.error("cannot start %s: %s", list(self.spec.argv), e)
                        next_start = now + self.backoff.next(0.0)
                        continue
                started = now
                self.started_at = datetime.now(UTC)
                self.restarts = runs
                runs += 1
                failures = 0
                self.on_change()
                continue
            code = process.poll()
            if code is not None:
                with self._lock:
                    if self._stopping.is_set():
                        return
                    self._process = None
                delay = self.backoff.next(now - started)
                log.warning("%s exited with %s; restarting in %.1fs", list(self.spec.argv), code, delay)
                self.last_exit = (code if code >= 0 else 128 - code, self.started_at, datetime.now(UTC))
                next_start = now + delay
                self._set_ready(False)
                self.on_change()
                continue
            if self.readiness_url is None or probe(
                self.readiness_url, timeout=min(1.0, max(self.probe_period * 4, 0.5))
            ):
                failures = 0
                self._set_ready(True)
            else:
                failures += 1
                if not self._ready or failures >= self.failure_threshold:
                    self._set_ready(False)
            self._stopping.wait(self.probe_period)


@dataclass(frozen=True)
class Outcome:
    """How a one-shot process ended: exit code (negative: killed by that signal), reason, times."""

    exit_code: int
    reason: str
    started: datetime
    finished: datetime


class JobProcess:
    """The single pod of a Job: runs once; killed at its deadline; ``outcome`` is set when it ended."""

    def __init__(self, spec: ProcessSpec, *, on_change: Notify, deadline: float | None = None, grace: float = 5.0):
        self.spec = spec
        self.on_change = on_change
        self.deadline = deadline
        self.grace = grace
        self.started_at = datetime.now(UTC)
        self.outcome: Outcome | None = None
        #: where this run's output starts in the log file
        self.output_offset = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._wait, name=f"job-{spec.log_path.stem}", daemon=True)

    @property
    def pid(self) -> int | None:
        process = self._process
        return process.pid if process is not None and process.poll() is None else None

    def start(self) -> None:
        """Spawn now (so a bad argv fails here, not in a thread) and start waiting for the exit."""
        self.started_at = datetime.now(UTC)
        self._process, self.output_offset = spawn_logged(self.spec)
        self._thread.start()

    def stop(self) -> None:
        """Kill the process group (the Job was deleted); no outcome is reported."""
        with self._lock:
            self._stopping.set()
            process = self._process
        if process is not None:
            kill_tree(process, self.grace)
        if self._thread.is_alive():
            self._thread.join(self.grace + 5.0)

    def _wait(self) -> None:
        process = self._process
        assert process is not None
        limit = None if self.deadline is None else time.monotonic() + self.deadline
        reason = ""
        while not self._stopping.is_set():
            remaining = 0.2 if limit is None else min(0.2, limit - time.monotonic())
            if remaining <= 0:
                reason = "DeadlineExceeded"
                kill_tree(process, self.grace)
                break
            try:
                process.wait(remaining)
                break
            except subprocess.TimeoutExpired:
                continue
        with self._lock:
            if self._stopping.is_set():
                return
        code = process.wait()
        self.outcome = Outcome(code, reason, self.started_at, datetime.now(UTC))
        self.on_change()
