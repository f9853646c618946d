"""A Job's Pods (the real Job controller's) run once under the node agent: they end Succeeded or Failed with the
container's exit code and termination message, and the Job controller reads the outcome from them."""

from __future__ import annotations

import json
from typing import Any

import psutil
import pytest

from modelops.sandbox.node import Client
from modelops.sandbox.node._kube import JOBS, PODS
from plugins.cluster import KubeCluster

from .helpers import condition, container_status, gone, job, pids, pod, pods, processes, wait_for

pytestmark = pytest.mark.integration

WRITE_RESULT = (
    "import json, os, sys; "
    "open(os.environ['MODELOPS_TERMINATION_LOG'], 'w').write(json.dumps({RESULT})); "
    "sys.exit({CODE})"
)


def _code(result: dict[str, Any], exit_code: int) -> str:
    return WRITE_RESULT.replace("{RESULT}", repr(result)).replace("{CODE}", str(exit_code))


def finished(api: Client, ns: str, name: str) -> dict[str, Any] | None:
    """The Job once the Job controller says it is Complete or Failed."""
    obj = api.get(JOBS, ns, name)
    done = condition(obj, "Complete") or condition(obj, "Failed")
    return obj if done and done["status"] == "True" else None


def terminated(item: dict[str, Any]) -> dict[str, Any]:
    state: dict[str, Any] = container_status(item)["state"]["terminated"]
    return state


def test_a_successful_job_pod_ends_succeeded_with_its_termination_message(api: Client, ns: str) -> None:
    result = {"accuracy": 0.91, "groups": {"a": {"positiveRate": 0.4}, "b": {"positiveRate": 0.38}}}
    api.create(JOBS, ns, job("gate", _code(result, 0)))

    done = wait_for(lambda: finished(api, ns, "gate"), 60, "the Job controller to see it complete")

    (item,) = pods(api, ns, job_name="gate")
    state = terminated(item)
    assert json.loads(state["message"]) == result
    assert (state["exitCode"], state["reason"]) == (0, "Completed")
    assert item["status"]["phase"] == "Succeeded"
    assert item["metadata"]["labels"]["modelops.io/gate"] == "held-out-eval"
    assert condition(done, "Complete")["status"] == "True"  # type: ignore[index]
    assert done["status"]["succeeded"] == 1
    assert done["status"].get("active") is None


def test_a_failing_job_pod_ends_failed_with_its_exit_code_and_the_job_retries_up_to_its_backoff_limit(
    api: Client, ns: str
) -> None:
    api.create(JOBS, ns, job("retrain", _code({"error": "no data"}, 3), backoff_limit=1))

    done = wait_for(lambda: finished(api, ns, "retrain"), 90, "the Job failed")

    listed = pods(api, ns, job_name="retrain")
    assert len(listed) == 2, "backoffLimit 1: the Job controller made one more Pod"
    for item in listed:
        state = terminated(item)
        assert (item["status"]["phase"], state["exitCode"], state["reason"]) == ("Failed", 3, "Error")
        assert json.loads(state["message"]) == {"error": "no data"}
    failed = condition(done, "Failed")
    assert (failed["status"], failed["reason"]) == ("True", "BackoffLimitExceeded")  # type: ignore[index]
    assert done["status"]["failed"] == 2
    assert condition(done, "Complete") is None


def test_the_termination_message_is_the_last_4096_bytes_as_the_kubelet_keeps_them(api: Client, ns: str) -> None:
    code = "import os; open(os.environ['TERMINATION_LOG'], 'w').write('head' + 'x' * 5000)"
    api.create(JOBS, ns, job("big", code))

    wait_for(lambda: finished(api, ns, "big"), 60)

    (item,) = pods(api, ns, job_name="big")
    assert terminated(item)["message"] == "x" * 4096


PRINT_AND_EXIT = "import sys\nfor i in range(int(sys.argv[1])): print(f'line {i}')\nsys.exit(int(sys.argv[2]))"


def _lines(start: int, end: int) -> str:
    return "".join(f"line {i}\n" for i in range(start, end))


@pytest.mark.parametrize(
    ("policy", "lines", "exit_code", "message"),
    [
        ("FallbackToLogsOnError", 200, 1, _lines(120, 200)),  # the last 80 lines
        ("FallbackToLogsOnError", 3, 1, _lines(0, 3)),  # what the container printed, nothing of the agent's
        ("FallbackToLogsOnError", 3, 0, ""),  # only on error
        ("File", 3, 1, ""),  # only when asked
    ],
)
def test_fallback_to_logs_on_error_takes_the_end_of_the_containers_own_output(
    api: Client, ns: str, policy: str, lines: int, exit_code: int, message: str
) -> None:
    body = job("logs", "", policy=policy)
    argv = ["python", "-c", PRINT_AND_EXIT, str(lines), str(exit_code)]
    body["spec"]["template"]["spec"]["containers"][0]["command"] = argv
    api.create(JOBS, ns, body)

    wait_for(lambda: finished(api, ns, "logs"), 60)

    (item,) = pods(api, ns, job_name="logs")
    state = terminated(item)
    assert state["exitCode"] == exit_code
    assert state.get("message", "") == message  # the API leaves an empty message out


def test_the_jobs_active_deadline_ends_its_pod(kube: KubeCluster, api: Client, ns: str) -> None:
    api.create(JOBS, ns, job("slow", "import time; time.sleep(600)", deadline=2))
    wait_for(lambda: pids(kube.node, ns, "slow-"), 30, "the Job's process")
    running = pids(kube.node, ns, "slow-")

    done = wait_for(lambda: finished(api, ns, "slow"), 60, "the deadline")

    failed = condition(done, "Failed")
    assert (failed["status"], failed["reason"]) == ("True", "DeadlineExceeded")  # type: ignore[index]
    assert gone(running, 20), "the Job controller deleted the Pod: its process must stop"


def test_a_pods_own_active_deadline_fails_it(kube: KubeCluster, api: Client, ns: str) -> None:
    api.create(PODS, ns, pod("late", ["python", "-c", "import time; time.sleep(600)"], restart="Never", deadline=1))

    def failed() -> dict[str, Any] | None:
        item = api.get(PODS, ns, "late") or {}
        return item if (item.get("status") or {}).get("phase") == "Failed" else None

    item = wait_for(failed, 30, "the Pod failed at its deadline")

    assert item["status"]["reason"] == "DeadlineExceeded"
    state = terminated(item)
    assert state["reason"] == "DeadlineExceeded"
    assert state["exitCode"] == 143  # SIGTERM
    assert all(p.pid is None for p in processes(kube.node, ns, "late"))


def test_deleting_a_running_job_stops_its_process(kube: KubeCluster, api: Client, ns: str) -> None:
    api.create(JOBS, ns, job("endless", "import time; time.sleep(600)"))
    (pid,) = wait_for(lambda: pids(kube.node, ns, "endless-"), 30, "the Job's process")
    assert "time.sleep(600)" in " ".join(psutil.Process(pid).cmdline())
    wait_for(lambda: ((api.get(JOBS, ns, "endless") or {}).get("status") or {}).get("active") == 1)

    api.delete(JOBS, ns, "endless")

    assert gone([pid], 30), "the deleted Job's process still runs"
    wait_for(lambda: not pods(api, ns, job_name="endless"), 30, "its Pod gone")
    assert processes(kube.node, ns, "endless-") == []
