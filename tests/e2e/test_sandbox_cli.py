"""``modelops sandbox up --detach`` brings the local environment up and says how to use kubectl on it; ``status``
shows what runs; ``down`` stops every process carrying the sandbox's id (psutil sees none left).

Local cluster only: ``up`` starts the sandbox's own cluster."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
import yaml

from modelops.sandbox.cluster import NODE_NAME
from modelops.sandbox.env import SANDBOX_ID_ENV
from node.helpers import deployment, wait_for

from .target import local_cluster_only

pytestmark = [
    pytest.mark.e2e,
    local_cluster_only("the sandbox starts a local cluster of its own (with the node agent, Prometheus, Traefik)"),
]

MODELOPS = [sys.executable, "-c", "import sys; from modelops.cli import main; sys.exit(main())"]


def _sandbox(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != SANDBOX_ID_ENV}
    return subprocess.run(
        [*MODELOPS, "sandbox", *args], capture_output=True, text=True, timeout=timeout, env=env, check=False
    )


def _marked(sandbox_id: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get(SANDBOX_ID_ENV) == sandbox_id and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except psutil.Error:
            continue
    return found


def _names(procs: list[psutil.Process]) -> set[str]:
    out = set()
    for proc in procs:
        try:
            out.add(Path(proc.cmdline()[0]).name)
        except (psutil.Error, IndexError):
            continue
    return out


@pytest.mark.timeout(420)
def test_up_says_how_to_use_kubectl_status_shows_the_pods_and_down_leaves_nothing(tmp_path: Path) -> None:
    directory = tmp_path / "sandbox"
    # --no-operator: this test is about what `up` starts and `down` stops; the operator has its own tests.
    up = _sandbox("up", "--dir", str(directory), "--detach", "--no-operator")
    assert up.returncode == 0, up.stdout + up.stderr
    state = json.loads((directory / "state.json").read_text())
    running: list[psutil.Process] = []
    try:
        # `up` prints how to use kubectl: the kubeconfig and the directory of the kubectl binary
        found = re.search(r"export KUBECONFIG=(\S+)\s+PATH=(\S+):\$PATH", up.stdout)
        assert found is not None, up.stdout
        kubeconfig, bin_dir = Path(found.group(1)), Path(found.group(2))
        assert kubeconfig == Path(state["kubeconfig"])
        assert (bin_dir / "kubectl").is_file()
        env = {**os.environ, "KUBECONFIG": str(kubeconfig), "PATH": f"{bin_dir}:{os.environ['PATH']}"}

        def kubectl(*args: str, stdin: str | None = None) -> str:
            done = subprocess.run(["kubectl", *args], input=stdin, capture_output=True, text=True, env=env, timeout=60)
            assert done.returncode == 0, done.stderr
            return done.stdout

        nodes = json.loads(kubectl("get", "nodes", "-o", "json"))["items"]
        assert [n["metadata"]["name"] for n in nodes] == [NODE_NAME]
        kubectl("apply", "-f", "-", stdin=yaml.safe_dump(deployment("web", replicas=2)))
        kubectl("rollout", "status", "deployment/web", "--timeout=90s")
        pods = json.loads(kubectl("get", "pods", "-l", "app=web", "-o", "json"))["items"]
        assert [p["status"]["phase"] for p in pods] == ["Running", "Running"]

        # The state file `status` reads is a snapshot the sandbox rewrites every few seconds: wait until it has
        # caught up with both Pods being ready, as the API says they are.
        def listed_ready(out: str) -> bool:
            lines = out.splitlines()
            return all(any(f"default/{p['metadata']['name']} " in line and "running ready" in line for line in lines)
                       for p in pods)  # fmt: skip

        status = wait_for(
            lambda: (s := _sandbox("status", "--dir", str(directory))).returncode == 0 and listed_ready(s.stdout) and s,
            30,
            "status to list both Pods ready",
        )
        for pod in pods:
            (line,) = [line for line in status.stdout.splitlines() if f"default/{pod['metadata']['name']} " in line]
            assert "running ready" in line, status.stdout
            assert pod["status"]["podIP"] in line

        running = [psutil.Process(state["supervisor_pid"]), *_marked(state["sandbox_id"])]
        names = _names(running)
        assert {"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "prometheus"} <= names, names
        assert state["prometheus"]["pid"] in {p.pid for p in running}
        assert {p.pid for p in running} >= {int(x) for x in re.findall(r"pid (\d+) running", status.stdout)}
    finally:
        down = _sandbox("down", "--dir", str(directory))

    assert down.returncode == 0, down.stdout + down.stderr
    _, alive = psutil.wait_procs(running, timeout=15)
    assert alive == []
    assert _marked(state["sandbox_id"]) == []
    assert not (directory / "state.json").exists()
    assert _sandbox("status", "--dir", str(directory)).returncode == 1
