"""A Job becomes one process; its JSON result lands in the Pod's termination message and the Job gets its status."""

from __future__ import annotations

import json
from typing import Any

import psutil
import pytest

from modelops.sandbox.runner import Client, LocalRunner
from modelops.sandbox.runner._kube import JOBS, PODS

from .helpers import condition, gone, job, wait_for

pytestmark = pytest.mark.integration

WRITE_RESULT = (
    "import json, os, sys; "
    "open(os.environ['MODELOPS_TERMINATION_LOG'], 'w').write(json.dumps({RESULT})); "
    "sys.exit({CODE})"
)


def _code(result: dict[str, Any], exit_code: int) -> str:
    return WRITE_RESULT.replace("{RESULT}", repr(result)).replace("{CODE}", str(exit_code))


def _finished(kube: Client, ns: str, name: str) -> dict[str, Any] | None:
    obj = kube.get(JOBS, ns, name)
    done = condition(obj, "Complete") or condition(obj, "Failed")
    return obj if done and done["status"] == "True" else None


def _pods(kube: Client, ns: str, name: str) -> list[dict[str, Any]]:
    return [p for p in kube.list(PODS, ns) if p["metadata"]["labels"].get("job-name") == name]


def _terminated(pod: dict[str, Any]) -> dict[str, Any]:
    state: dict[str, Any] = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    return state


def test_a_successful_job_reports_its_json_in_the_pod_and_completes(
    runner: LocalRunner, kube: Client, apiserver_namespace: str
) -> None:
    ns = apiserver_namespace
    result = {"accuracy": 0.91, "groups": {"a": {"positiveRate": 0.4}, "b": {"positiveRate": 0.38}}}
    kube.create(JOBS, ns, job("gate", _code(result, 0)))

    done = wait_for(lambda: _finished(kube, ns, "gate"), what="the Job finished")

    (pod,) = _pods(kube, ns, "gate")
    terminated = _terminated(pod)
    assert json.loads(terminated["message"]) == result
    assert (terminated["exitCode"], terminated["reason"]) == (0, "Completed")
    assert pod["metadata"]["name"].startswith("gate-")
    assert pod["metadata"]["labels"]["modelops.io/gate"] == "held-out-eval"
    assert pod["status"]["phase"] == "Succeeded"
    status = done["status"]
    assert condition(done, "Complete")["status"] == "True"
    assert status["succeeded"] == 1
    assert status.get("active") is None
    assert status["startTime"] <= status["completionTime"]


def test_a_failing_job_reports_its_error_and_fails_after_its_backoff_limit(
    runner: LocalRunner, kube: Client, apiserver_namespace: str
) -> None:
    ns = apiserver_namespace
    kube.create(JOBS, ns, job("retrain", _code({"error": "no data"}, 3), backoff_limit=1))

    done = wait_for(lambda: _finished(kube, ns, "retrain"), what="the Job failed")

    pods = _pods(kube, ns, "retrain")
    assert len(pods) == 2, "backoffLimit 1 means one retry"
    for pod in pods:
        terminated = _terminated(pod)
        assert (terminated["exitCode"], terminated["reason"]) == (3, "Error")
        assert json.loads(terminated["message"]) == {"error": "no data"}
    failed = condition(done, "Failed")
    assert (failed["status"], failed["reason"]) == ("True", "BackoffLimitExceeded")
    assert done["status"]["failed"] == 2
    assert condition(done, "Complete") is None


def test_the_termination_message_is_capped_at_4096_bytes(
    runner: LocalRunner, kube: Client, apiserver_namespace: str
) -> None:
    ns = apiserver_namespace
    code = "import os; open(os.environ['TERMINATION_LOG'], 'w').write('x' * 5000)"
    kube.create(JOBS, ns, job("big", code))

    wait_for(lambda: _finished(kube, ns, "big"))

    (pod,) = _pods(kube, ns, "big")
    assert _terminated(pod)["message"] == "x" * 4096


def test_active_deadline_kills_the_job(runner: LocalRunner, kube: Client, apiserver_namespace: str) -> None:
    ns = apiserver_namespace
    kube.create(JOBS, ns, job("slow", "import time; time.sleep(120)", deadline=1))

    done = wait_for(lambda: _finished(kube, ns, "slow"), what="the deadline")

    failed = condition(done, "Failed")
    assert (failed["status"], failed["reason"]) == ("True", "DeadlineExceeded")
    (pod,) = _pods(kube, ns, "slow")
    assert _terminated(pod)["exitCode"] != 0
    assert not [p for p in runner.processes() if p.owner == "slow"]


def test_deleting_a_running_job_kills_its_process(runner: LocalRunner, kube: Client, apiserver_namespace: str) -> None:
    ns = apiserver_namespace
    kube.create(JOBS, ns, job("endless", "import time; time.sleep(120)"))
    (proc,) = wait_for(lambda: [p for p in runner.processes() if p.owner == "endless" and p.pid])
    assert "time.sleep(120)" in " ".join(psutil.Process(proc.pid).cmdline())
    wait_for(lambda: (kube.get(JOBS, ns, "endless") or {}).get("status", {}).get("active") == 1)

    kube.delete(JOBS, ns, "endless")

    assert gone([proc.pid]), "the deleted Job's process still runs"
    assert not [p for p in runner.processes() if p.owner == "endless"]
