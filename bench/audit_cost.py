"""What the audit log costs the API server per request: ``python -m bench.audit_cost``.

The scale runs count the operator's requests from the audit log (user and User-Agent per request; the API server's
``apiserver_request_total`` has neither). Writing an audit event costs the API server CPU (encoding the event, a
blocking write to the log), so the bench's policy audits the operator's ServiceAccount only. This measures that
cost on one API server, with the bench's own policy: batches of the same requests (a GET and a merge PATCH of a
ConfigMap, the shape of a reconcile's route read and status write) from two identities, one in the audited group
and one not, in alternating batches so that the machine's drift falls on both alike. The difference of the API
server's CPU per request is the audit event's cost.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from .env import OPERATOR_GROUP, BenchCluster, process_cpu, workdir


def _batch(client: Any, namespace: str, name: str, n: int) -> None:
    """``n`` requests: GET and PATCH of one ConfigMap, alternately."""
    path = f"/api/v1/namespaces/{namespace}/configmaps/{name}"
    for i in range(n):
        if i % 2:
            method, body, content = "PATCH", {"data": {"i": str(i)}}, "application/merge-patch+json"
        else:
            method, body, content = "GET", None, "application/json"
        request = client.param_serialize(
            method=method,
            resource_path=path,
            header_params={"Accept": "application/json", "Content-Type": content},
            body=body,
            auth_settings=["BearerToken"],
        )
        response = client.call_api(*request, _request_timeout=30)
        response.read()
        if response.status != 200:
            raise RuntimeError(f"{method} {path}: HTTP {response.status}")


def audit_cost(directory: Path, requests: int = 1000, rounds: int = 6) -> dict[str, Any]:
    """``rounds`` pairs of batches of ``requests`` (audited, then not), on a cluster under ``directory``."""
    with BenchCluster(directory, "audit-cost") as cluster:
        local = cluster.cluster
        clients = {
            "audited": local.api_client(local.user_kubeconfig("audited", "bench-audited", [OPERATOR_GROUP])),
            "not_audited": local.api_client(local.user_kubeconfig("plain", "bench-plain")),
        }
        local.kubectl("create", "clusterrolebinding", "bench-audit-cost", "--clusterrole=cluster-admin",
                      "--user=bench-audited", "--user=bench-plain")  # fmt: skip
        local.kubectl("create", "configmap", "probe", "-n", "audit-cost", "--from-literal=i=0")
        pid = local.pids()["kube-apiserver"]
        samples: dict[str, list[float]] = {k: [] for k in clients}
        logged: dict[str, float] = {}
        try:
            for client in clients.values():  # warm up connections and caches
                _batch(client, "audit-cost", "probe", 200)
            for _ in range(rounds):
                for label, client in clients.items():
                    size0, cpu0, t0 = cluster.position(), process_cpu(pid), time.monotonic()
                    _batch(client, "audit-cost", "probe", requests)
                    cpu, wall = process_cpu(pid) - cpu0, time.monotonic() - t0
                    logged[label] = (cluster.position() - size0) / requests
                    samples[label].append(1e6 * cpu / requests)
                    line = (
                        f"{label:12} {1e6 * cpu / requests:7.0f} us API-server CPU/request, "
                        f"{1e3 * wall / requests:5.2f} ms wall/request, {logged[label]:5.0f} audit bytes/request"
                    )
                    print(line, file=sys.stderr)
        finally:
            for client in clients.values():
                client.close()
    differences = [a - b for a, b in zip(samples["audited"], samples["not_audited"], strict=True)]
    plain = statistics.median(samples["not_audited"])
    return {
        "requests_per_batch": requests,
        "rounds": rounds,
        "apiserver_cpu_us_per_request": {k: statistics.median(v) for k, v in samples.items()},
        #: the median of the paired differences (each round's audited batch minus the batch after it)
        "audit_cpu_us_per_request": statistics.median(differences),
        "audit_share": statistics.median(differences) / plain if plain else None,
        "audit_bytes_per_request": logged.get("audited"),
        "samples_us": samples,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.audit_cost", description=__doc__)
    p.add_argument("--requests", type=int, default=1000, help="requests per batch")
    p.add_argument("--rounds", type=int, default=6, help="pairs of batches (audited, not audited)")
    args = p.parse_args(argv)
    with workdir() as tmp:
        print(json.dumps(audit_cost(tmp / "cluster", args.requests, args.rounds), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
