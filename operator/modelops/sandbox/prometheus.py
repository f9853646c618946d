"""A real Prometheus server run as a plain process on loopback, for tests and the local environment.

Why a process manager rather than the Debian service: the packaged service listens on :9090 with a system-wide
config and data dir; tests need many short-lived servers on free ports, each with its own scrape targets and TSDB,
that can be stopped and started again (an integration test stops Prometheus mid-rollout and brings it back on the
same address and data).

Start-up timings (Prometheus 2.42, ``scrape_interval: 1s``): ready in under a second; the first scrape of a target
lands about 5 s later, because the discovery manager hands new target groups to the scrape manager at most every 5 s.
The same delay applies after a reload that adds targets, so share one server (and one exporter) across tests where
you can.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import yaml

__all__ = [
    "PrometheusError",
    "PrometheusServer",
    "ScrapeTarget",
    "ensure_prometheus_binary",
    "free_port",
    "render_config",
]

#: Where the Debian package puts the binary; used when ``prometheus`` is not on PATH.
DEBIAN_BINARY = Path("/usr/bin/prometheus")
#: ``lastScrape`` of a target that was never scraped (Go's zero time).
_NEVER = "0001-01-01T00:00:00Z"


class PrometheusError(RuntimeError):
    """Prometheus could not be installed, started, reloaded or did not become ready in time."""


@dataclass(frozen=True)
class ScrapeTarget:
    """One static scrape target. ``labels`` are attached to every series scraped from it (e.g. ``namespace``)."""

    job: str
    address: str
    metrics_path: str = "/metrics"
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def scrape_url(self) -> str:
        return f"http://{self.address}{self.metrics_path}"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the kernel's pick). Racy by nature: callers retry on a bind error."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def render_config(
    targets: Sequence[ScrapeTarget],
    *,
    scrape_interval: str = "1s",
    evaluation_interval: str = "1s",
    rule_files: Sequence[Path] = (),
    extra_scrape_configs: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The Prometheus configuration for these targets: one scrape job per (job, metrics path), one static group each,
    then ``extra_scrape_configs`` as given (e.g. ``kubernetes_sd_configs`` jobs).

    >>> cfg = render_config([ScrapeTarget("model", "127.0.0.1:8000", labels={"namespace": "ml"})])
    >>> cfg["scrape_configs"][0]["static_configs"]
    [{'targets': ['127.0.0.1:8000'], 'labels': {'namespace': 'ml'}}]
    """
    jobs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for target in targets:
        group: dict[str, Any] = {"targets": [target.address]}
        if target.labels:
            group["labels"] = dict(target.labels)
        jobs.setdefault((target.job, target.metrics_path), []).append(group)
    names = [job for job, _ in jobs]
    scrape_configs = []
    for (job, path), groups in jobs.items():
        # Two paths under one job name would be two scrape configs with the same name, which Prometheus rejects.
        name = job if names.count(job) == 1 else f"{job}{path.replace('/', '_')}"
        scrape_configs.append(
            {
                "job_name": name,
                "metrics_path": path,
                "scrape_interval": scrape_interval,
                "scrape_timeout": scrape_interval,
                "honor_labels": True,
                "static_configs": groups,
            }
        )
    scrape_configs += [dict(c) for c in extra_scrape_configs]
    config: dict[str, Any] = {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": evaluation_interval},
        "scrape_configs": scrape_configs,
    }
    if rule_files:
        config["rule_files"] = [str(p) for p in rule_files]
    return config


Runner = Callable[[Sequence[str], Mapping[str, str]], int]


def _run(argv: Sequence[str], env: Mapping[str, str]) -> int:
    return subprocess.run(list(argv), env=dict(env), check=False).returncode


def ensure_prometheus_binary(
    *, install: bool = True, runner: Runner = _run, policy_rc_d: Path = Path("/usr/sbin/policy-rc.d")
) -> Path:
    """The ``prometheus`` binary: from PATH, else /usr/bin, else installed from the Debian package (root only).

    The package's postinst would start its system service (on :9090, with its own data): a temporary
    ``policy-rc.d`` answering 101 ("action forbidden") keeps invoke-rc.d from starting it. ``runner`` and
    ``policy_rc_d`` are for tests.
    """
    found = shutil.which("prometheus")
    if found:
        return Path(found)
    if DEBIAN_BINARY.exists():
        return DEBIAN_BINARY
    if not install:
        raise PrometheusError("prometheus not found on PATH nor at /usr/bin/prometheus")
    if os.geteuid() != 0:
        raise PrometheusError(
            "prometheus is not installed and installing it needs root: "
            "apt-get install -y --no-install-recommends prometheus (or run `make deps`)"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive", "RUNLEVEL": "1"}
    install_cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "prometheus"]
    with _services_forbidden(policy_rc_d):
        # A fresh machine may have no package lists yet: update and try again.
        if runner(install_cmd, env) != 0 and (
            runner(["apt-get", "update", "-q"], env) != 0 or runner(install_cmd, env) != 0
        ):
            raise PrometheusError("apt-get install prometheus failed")
    if DEBIAN_BINARY.exists():
        return DEBIAN_BINARY
    found = shutil.which("prometheus")
    if found:
        return Path(found)
    raise PrometheusError("apt-get install prometheus succeeded but no prometheus binary was found")


@contextlib.contextmanager
def _services_forbidden(policy: Path) -> Iterator[None]:
    if policy.exists():
        yield
        return
    policy.write_text("#!/bin/sh\n# written by modelops while installing prometheus\nexit 101\n")
    policy.chmod(0o755)
    try:
        yield
    finally:
        policy.unlink(missing_ok=True)


class PrometheusServer:
    """A Prometheus process on 127.0.0.1 with a generated config and its own TSDB directory.

    Use as a context manager (start on enter, stop and clean up on exit), or call :meth:`start`/:meth:`stop`
    yourself. After :meth:`stop`, :meth:`start` brings it back on the same port with the same data.
    Targets can be replaced while it runs (:meth:`set_targets`): the config is rewritten and ``/-/reload`` posted.
    """

    def __init__(
        self,
        targets: Sequence[ScrapeTarget] = (),
        *,
        scrape_interval: str = "1s",
        evaluation_interval: str = "1s",
        rule_files: Sequence[Path] = (),
        port: int | None = None,
        host: str = "127.0.0.1",
        workdir: Path | None = None,
        binary: Path | None = None,
        extra_args: Sequence[str] = (),
        start_timeout: float = 20.0,
        log_level: str = "warn",
        extra_scrape_configs: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        self.targets: tuple[ScrapeTarget, ...] = tuple(targets)
        self.extra_scrape_configs = tuple(extra_scrape_configs)
        self.scrape_interval = scrape_interval
        self.evaluation_interval = evaluation_interval
        self.rule_files = tuple(rule_files)
        self.host = host
        self._fixed_port = port is not None
        self._port = port if port is not None else free_port(host)
        self._own_workdir = workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix="modelops-prometheus-")) if workdir is None else Path(workdir)
        self._binary = binary
        self.extra_args = tuple(extra_args)
        self.start_timeout = start_timeout
        self.log_level = log_level
        self._process: subprocess.Popen[bytes] | None = None

    # ------------------------------------------------------------------------------------------- properties

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self._port}"

    @property
    def config_path(self) -> Path:
        return self.workdir / "prometheus.yml"

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    @property
    def log_path(self) -> Path:
        return self.workdir / "prometheus.log"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    # ------------------------------------------------------------------------------------------- lifecycle

    def __enter__(self) -> PrometheusServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def start(self, *, wait_for_targets: bool = True) -> None:
        """Start the process and wait until it is ready and (by default) every target has been scraped once."""
        if self.running:
            return
        binary = self._binary or ensure_prometheus_binary()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._write_config()
        # A port picked by free_port() can be taken before Prometheus binds it: pick another, unless it was given
        # (or was used before: a restart must come back on the same address).
        attempts = 1 if self._fixed_port else 3
        for attempt in range(attempts):
            self._spawn(binary)
            try:
                self.wait_ready(self.start_timeout)
                break
            except PrometheusError:
                exited = self._process is not None and self._process.poll() is not None
                self._terminate()
                if not exited or attempt == attempts - 1 or "address already in use" not in self._log_tail():
                    raise
                self._port = free_port(self.host)
        self._fixed_port = True
        if wait_for_targets:
            self.wait_for_targets(self.start_timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate the process (SIGTERM, then SIGKILL after ``timeout``); keeps config and data for a restart."""
        self._terminate(timeout)

    def restart(self, *, wait_for_targets: bool = True) -> None:
        self.stop()
        self.start(wait_for_targets=wait_for_targets)

    def close(self) -> None:
        """Stop and remove the work directory if this object created it."""
        self.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # ------------------------------------------------------------------------------------------- targets

    def set_targets(self, targets: Sequence[ScrapeTarget], *, wait: bool = True, timeout: float | None = None) -> None:
        """Replace the scrape targets: rewrite the config, reload, and (by default) wait until all are scraped."""
        self.targets = tuple(targets)
        self._write_config()
        if not self.running:
            return
        self.reload()
        if wait:
            self.wait_for_targets(self.start_timeout if timeout is None else timeout)

    def add_target(self, target: ScrapeTarget, *, wait: bool = True, timeout: float | None = None) -> None:
        """Add a target, replacing any with the same job and address."""
        kept = [t for t in self.targets if (t.job, t.address) != (target.job, target.address)]
        self.set_targets([*kept, target], wait=wait, timeout=timeout)

    def remove_target(self, address: str, *, wait: bool = True) -> None:
        self.set_targets([t for t in self.targets if t.address != address], wait=wait)

    def reload(self) -> None:
        response = httpx.post(f"{self.url}/-/reload", timeout=10.0)
        if response.status_code != 200:
            raise PrometheusError(f"reload failed: HTTP {response.status_code}: {response.text.strip()}")

    # ------------------------------------------------------------------------------------------- waiting

    def wait_ready(self, timeout: float = 20.0) -> None:
        """Poll ``/-/ready`` until it answers 200; fail early if the process exits."""

        def ready() -> bool:
            if self._process is None or self._process.poll() is not None:
                raise PrometheusError(f"prometheus exited before it was ready:\n{self._log_tail()}")
            try:
                return httpx.get(f"{self.url}/-/ready", timeout=1.0).status_code == 200
            except httpx.TransportError:
                return False

        _poll(ready, timeout, lambda: f"prometheus at {self.url} not ready after {timeout}s:\n{self._log_tail()}")

    def wait_for_targets(self, timeout: float = 20.0) -> None:
        """Poll ``/api/v1/targets`` until every configured target shows ``health: up`` and a last scrape."""
        wanted = {t.scrape_url for t in self.targets}
        state: dict[str, str] = {}

        def scraped() -> bool:
            state.clear()
            response = httpx.get(f"{self.url}/api/v1/targets", params={"state": "active"}, timeout=2.0)
            response.raise_for_status()
            for target in response.json()["data"]["activeTargets"]:
                url = target["scrapeUrl"]
                if target["health"] == "up" and target.get("lastScrape", _NEVER) != _NEVER:
                    state[url] = "up"
                else:
                    state[url] = f"{target['health']} {target.get('lastError', '')}".strip()
            return all(state.get(url) == "up" for url in wanted)

        _poll(scraped, timeout, lambda: f"targets not all scraped after {timeout}s: wanted {sorted(wanted)}, {state}")

    def query(self, promql: str) -> list[dict[str, Any]]:
        """Run an instant query and return ``data.result`` (a convenience for tests and the sandbox)."""
        response = httpx.post(f"{self.url}/api/v1/query", data={"query": promql}, timeout=5.0)
        body = response.json()
        if body.get("status") != "success":
            raise PrometheusError(f"query {promql!r} failed: {body.get('error')}")
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    # ------------------------------------------------------------------------------------------- internals

    def _write_config(self) -> None:
        config = render_config(
            self.targets,
            scrape_interval=self.scrape_interval,
            evaluation_interval=self.evaluation_interval,
            rule_files=self.rule_files,
            extra_scrape_configs=self.extra_scrape_configs,
        )
        self.workdir.mkdir(parents=True, exist_ok=True)
        tmp = self.config_path.with_suffix(".tmp")
        tmp.write_text(yaml.safe_dump(config, sort_keys=False))
        tmp.replace(self.config_path)

    def _spawn(self, binary: Path) -> None:
        argv = [
            str(binary),
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={self.data_dir}",
            f"--web.listen-address={self.host}:{self._port}",
            "--web.enable-lifecycle",
            f"--log.level={self.log_level}",
            *self.extra_args,
        ]
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir
            )

    def _terminate(self, timeout: float = 10.0) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def _log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _poll(check: Callable[[], bool], timeout: float, describe: Callable[[], str], interval: float = 0.1) -> None:
    """Call ``check`` until it returns true; raise PrometheusError with ``describe()`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() >= deadline:
            raise PrometheusError(describe())
        time.sleep(interval)
