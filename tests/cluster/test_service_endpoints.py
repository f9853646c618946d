"""A version's Service has the version's serving Pods as endpoints and nothing else: not the Pods of the gate and
retraining Jobs, which carry the same owner and version labels (the real EndpointSlice controller decides).

Found through Traefik in the demo: the retraining Job's Pod, Ready once running, was an endpoint of the stable
version's Service, and a share of the requests went to a Pod that serves nothing (502 Bad Gateway).
"""

from __future__ import annotations

import pytest

from modelops.adapters.kube import DEPLOYMENTS, JOBS, MODELDEPLOYMENTS, SERVICES, RestKubeApi
from modelops.adapters.kube.objects import build_deployment, build_job, build_service, labels
from modelops.api.deployment import ModelDeployment
from modelops.sandbox.node import Client
from modelops.sandbox.node._kube import PODS
from node.helpers import TINY_SERVER, ready_endpoints
from plugins.cluster import KubeCluster

from .conftest import eventually, model_deployment

pytestmark = pytest.mark.integration


def test_a_job_pod_with_the_versions_labels_is_no_endpoint_of_its_service(
    kube: KubeCluster, admin: RestKubeApi
) -> None:
    namespace = kube.namespace("endpoints")
    md = ModelDeployment.model_validate(admin.create(MODELDEPLOYMENTS, namespace, model_deployment("fraud")))
    md.spec.server.command = ["python", TINY_SERVER]
    md.spec.server.readiness_path = "/healthz"
    admin.create(DEPLOYMENTS, namespace, build_deployment(md, "v1", "s3://models/fraud/v1", replicas=1))
    admin.create(SERVICES, namespace, build_service(md, "v1"))
    template = {"template": {"spec": {"containers": [{"name": "gate", "image": "i", "command": ["python", "-c",
                "import time; time.sleep(120)"]}]}}}  # fmt: skip
    admin.create(JOBS, namespace, build_job(md, "fraud-v1-gate", template, job_labels=labels(md, "v1"), env={}))

    with kube.client() as client:
        api = Client(client)

        def pods_ready() -> dict[str, str]:
            pods = api.list(PODS, namespace)
            ready = {
                p["metadata"]["name"]: p["status"].get("podIP", "")
                for p in pods
                if any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))
            }
            return ready if len(ready) == 2 else {}  # fmt: skip

        ready = eventually(pods_ready, 60, what="the server's Pod and the Job's Pod both Ready")
        job_ip = next(ip for name, ip in ready.items() if name.startswith("fraud-v1-gate"))
        server_ip = next(ip for name, ip in ready.items() if not name.startswith("fraud-v1-gate"))
        endpoints = eventually(lambda: ready_endpoints(api, namespace, "fraud-v1"), 30, what="the Service's endpoints")

    assert endpoints == [server_ip]
    assert job_ip not in endpoints
