"""``modelops sandbox up --detach`` brings the environment up; ``down`` leaves no process of it (psutil)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import kubernetes
import psutil
import pytest

from modelops.sandbox.env import SANDBOX_ID_ENV
from modelops.sandbox.runner import Client
from modelops.sandbox.runner._kube import DEPLOYMENTS

from .helpers import deployment, wait_for

pytestmark = pytest.mark.e2e

MODELOPS = [sys.executable, "-c", "import sys; from modelops.cli import main; sys.exit(main())"]


def _sandbox(*args: str, timeout: float = 150) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != SANDBOX_ID_ENV}
    return subprocess.run(
        [*MODELOPS, "sandbox", *args], capture_output=True, text=True, timeout=timeout, env=env, check=False
    )


def _marked(sandbox_id: str) -> list[int]:
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get(SANDBOX_ID_ENV) == sandbox_id and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc.pid)
        except psutil.Error:
            continue
    return found


def test_up_detach_then_down_leaves_nothing_running(tmp_path: Path) -> None:
    directory = tmp_path / "sandbox"
    # --no-operator: this test is about the processes `up` starts and `down` stops; the operator has its own tests.
    up = _sandbox("up", "--dir", str(directory), "--detach", "--no-operator")
    assert up.returncode == 0, up.stdout + up.stderr
    state = json.loads((directory / "state.json").read_text())
    try:
        assert "KUBECONFIG=" in up.stdout
        api = kubernetes.config.new_client_from_config(config_file=state["kubeconfig"])
        kube = Client(api)
        kube.create(DEPLOYMENTS, "default", deployment("web", replicas=2))
        wait_for(
            lambda: ((kube.get(DEPLOYMENTS, "default", "web") or {}).get("status") or {}).get("readyReplicas") == 2,
            what="the sandbox's runner to start the Deployment",
        )
        api.close()
        status = wait_for(lambda: (s := _sandbox("status", "--dir", str(directory))).stdout.count("ready") >= 2 and s)
        assert status.returncode == 0
        running = {psutil.Process(state["supervisor_pid"]), *map(psutil.Process, _marked(state["sandbox_id"]))}
        assert state["prometheus"]["pid"] in {p.pid for p in running}
        assert len(running) >= 4, "supervisor, Prometheus and two model servers"
    finally:
        down = _sandbox("down", "--dir", str(directory))

    assert down.returncode == 0, down.stdout + down.stderr
    _, alive = psutil.wait_procs(list(running), timeout=10)
    assert alive == []
    assert _marked(state["sandbox_id"]) == []
    assert not (directory / "state.json").exists()
    assert _sandbox("status", "--dir", str(directory)).returncode == 1
