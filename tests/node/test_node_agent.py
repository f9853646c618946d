"""The node agent as the control plane sees a kubelet: its Node Ready, its Lease renewed; and what it leaves when it
stops (no process; its Pods stay in the API, and a new agent of the same Node takes them over).

Tests that stop an agent use a spare one of their own, on a Node of its own (tainted, so the scheduler never puts
another test's Pods there; their Pods are bound to it by ``spec.nodeName``)."""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from modelops.sandbox.cluster import NODE_NAME
from modelops.sandbox.node import ApiError, Client, Kind, NodeAgent
from modelops.sandbox.node._kube import PODS
from plugins.cluster import KubeCluster

from .helpers import TINY_SERVER, alive, condition, container_status, gone, pod, wait_for

pytestmark = pytest.mark.integration

NODES = Kind("", "v1", "nodes")
LEASES = Kind("coordination.k8s.io", "v1", "leases")
TAINT = "modelops.io/spare-node"
_spares = itertools.count()

SpareFactory = Callable[..., NodeAgent]


@pytest.fixture
def spare(kube: KubeCluster, api: Client, tmp_path: Path) -> Iterator[tuple[str, SpareFactory]]:
    """A spare Node's name and a factory of agents for it (each started; all stopped at the end, when the Node,
    its Lease and its Pods are removed)."""
    name = f"spare-{next(_spares)}-{os.getpid() % 1000}"
    kubeconfig = kube.cluster.user_kubeconfig(name, f"system:node:{name}", ["system:nodes"])
    agents: list[NodeAgent] = []
    clients: list[Any] = []

    def start(**options: Any) -> NodeAgent:
        client = kube.cluster.api_client(kubeconfig)
        clients.append(client)
        taints = [{"key": TAINT, "effect": "NoSchedule"}]
        agent = NodeAgent(client, tmp_path / f"agent-{len(agents)}", name=name, taints=taints, **options)
        agents.append(agent)
        agent.start()
        return agent

    try:
        yield name, start
    finally:
        for agent in agents:
            agent.stop()
        for client in clients:
            client.close()
        for item in api.request("GET", PODS.path(None), query=[("fieldSelector", f"spec.nodeName={name}")])["items"]:
            body = {"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0}
            api.request("DELETE", PODS.path(item["metadata"]["namespace"], item["metadata"]["name"]), body=body)
        for kind, namespace in ((NODES, None), (LEASES, "kube-node-lease")):
            try:
                api.request("DELETE", kind.path(namespace, name))
            except ApiError as e:
                if e.status != 404:
                    raise


def _pod(api: Client, ns: str, name: str) -> dict[str, Any]:
    return api.get(PODS, ns, name) or {}


def test_the_node_is_registered_ready_and_the_control_plane_keeps_it_schedulable(api: Client) -> None:
    node = api.request("GET", NODES.path(None, NODE_NAME))

    ready = condition(node, "Ready")
    assert ready is not None
    assert (ready["status"], ready["reason"]) == ("True", "KubeletReady")
    for pressure in ("MemoryPressure", "DiskPressure", "PIDPressure"):
        assert condition(node, pressure)["status"] == "False"  # type: ignore[index]
    assert {"type": "InternalIP", "address": "127.0.0.1"} in node["status"]["addresses"]
    assert int(node["status"]["allocatable"]["pods"]) >= 100
    assert node["metadata"]["labels"]["kubernetes.io/hostname"] == NODE_NAME
    # the node lifecycle controller reads the Lease: a node it thought gone would be tainted not-ready/unreachable
    assert not [t for t in node["spec"].get("taints") or [] if t["key"].startswith("node.kubernetes.io/")]
    lease = api.get(LEASES, "kube-node-lease", NODE_NAME) or {}
    assert lease["spec"]["holderIdentity"] == NODE_NAME


def test_the_lease_is_renewed(spare: tuple[str, SpareFactory], api: Client) -> None:
    name, start = spare
    start(lease_seconds=4, resync=0.5)  # renewed every lease_seconds / 4

    def renewals(n: int, seen: list[str]) -> bool:
        stamp = ((api.get(LEASES, "kube-node-lease", name) or {}).get("spec") or {}).get("renewTime")
        if stamp and (not seen or seen[-1] != stamp):
            seen.append(stamp)
        return len(seen) >= n

    seen: list[str] = []
    wait_for(lambda: renewals(3, seen), 20, "the Lease renewed twice")

    assert seen == sorted(seen)
    lease = api.get(LEASES, "kube-node-lease", name) or {}
    assert (lease["spec"]["holderIdentity"], lease["spec"]["leaseDurationSeconds"]) == (name, 4)
    node = api.request("GET", NODES.path(None, name))
    assert {"key": TAINT, "effect": "NoSchedule"} in node["spec"]["taints"]


def test_stop_leaves_no_process_and_a_new_agent_takes_the_pods_over(
    spare: tuple[str, SpareFactory], api: Client, ns: str, tmp_path: Path
) -> None:
    name, start = spare
    server = pod("server", ["python", TINY_SERVER], node=name, tolerate=TAINT)
    server["spec"]["containers"][0]["ports"] = [{"containerPort": 8080}]
    server["spec"]["containers"][0]["readinessProbe"] = {"httpGet": {"path": "/healthz", "port": 8080}}
    first = start()
    api.create(PODS, ns, server)
    api.create(PODS, ns, pod("once", ["python", "-c", "import time; time.sleep(600)"], restart="Never", node=name,
                             tolerate=TAINT))  # fmt: skip
    wait_for(lambda: container_status(_pod(api, ns, "server")).get("ready") is True and len(first.pids()) == 2,
             what="both Pods running, the server ready")  # fmt: skip
    running = first.pids()
    assert len(alive(running)) == 2

    first.stop()

    assert gone(running, 20), f"processes left after stop(): {alive(running)}"
    assert first.processes() == []
    # a stopped kubelet deletes nothing: the Pods are still there
    assert _pod(api, ns, "server")["status"]["phase"] == "Running"
    assert _pod(api, ns, "once")["status"]["phase"] == "Running"

    second = start()

    def taken_over() -> bool:
        return bool(second.pids()) and container_status(_pod(api, ns, "server")).get("ready") is True

    wait_for(taken_over, 30, "the server running again under the new agent")
    (pid,) = second.pids()
    assert pid not in running
    # the run-once Pod's container ended with the old agent: running it again would run it twice
    once = wait_for(lambda: (p := _pod(api, ns, "once"))["status"]["phase"] == "Failed" and p, 30, "'once' failed")
    terminated = container_status(once)["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (137, "ContainerStatusUnknown")
    assert [p.name for p in second.processes()] == ["server"]


TERM_IGNORED = (
    "import signal, sys, time\n"
    "log = open(sys.argv[1], 'a', buffering=1)\n"
    "signal.signal(signal.SIGTERM, lambda *_: log.write('term\\n'))\n"
    "log.write('started\\n')\n"
    "while True: time.sleep(0.1)\n"
)


def test_the_grace_period_is_capped(spare: tuple[str, SpareFactory], api: Client, ns: str, tmp_path: Path) -> None:
    name, start = spare
    agent = start(max_grace=1.5)
    log = tmp_path / "term.log"
    api.create(PODS, ns, pod("stubborn", ["python", "-c", TERM_IGNORED, str(log)], grace=300, node=name,
                             tolerate=TAINT))  # fmt: skip
    wait_for(lambda: log.exists() and "started" in log.read_text(), what="the process started")
    (pid,) = agent.pids()

    began = time.monotonic()
    api.request("DELETE", PODS.path(ns, "stubborn"))  # its own grace period: 300 s
    wait_for(lambda: api.get(PODS, ns, "stubborn") is None, 20, "the Pod gone")
    took = time.monotonic() - began

    assert gone([pid])
    assert "term" in log.read_text().split(), "SIGTERM first"
    assert 1.5 <= took < 10, f"the agent's cap is 1.5 s, the Pod asked for 300 s; it took {took:.1f}s"
