"""The Kubernetes adapter: each version's Deployment and Service, gate and retraining Jobs, Events.

Everything goes through the small dict-based :class:`KubeApi` (``RestKubeApi`` over the synchronous ``kubernetes``
client in production, ``InMemoryKube`` in tests); the builders and predicates in ``objects`` are pure.
"""

from modelops.core.naming import workload_name
from modelops.core.observations import JobResult, JobState

from .adapter import (
    MAX_TERMINATION_MESSAGE,
    KubeAdapter,
    NotOwnedError,
    deployment_ready,
    job_state,
    router_owns_replicas,
    termination_message,
)
from .api import (
    DEPLOYMENTS,
    DESTINATIONRULES,
    EVENTS,
    HTTPROUTES,
    JOBS,
    MODELDEPLOYMENTS,
    MODELREQUESTS,
    MODELRETIREMENTS,
    PODS,
    SERVICES,
    VIRTUALSERVICES,
    Conflict,
    KubeApi,
    KubeApiError,
    NotFound,
    Obj,
    Resource,
    RestKubeApi,
    as_kube_api,
)
from .memory import Call, InMemoryKube, merge_patch
from .objects import (
    build_deployment,
    build_job,
    build_service,
    build_shared_service,
    is_subset,
    labels,
    observed,
    owned_by,
    owner_labels,
    owner_reference,
)

__all__ = [
    "DEPLOYMENTS",
    "DESTINATIONRULES",
    "EVENTS",
    "HTTPROUTES",
    "JOBS",
    "MAX_TERMINATION_MESSAGE",
    "MODELDEPLOYMENTS",
    "MODELREQUESTS",
    "MODELRETIREMENTS",
    "PODS",
    "SERVICES",
    "VIRTUALSERVICES",
    "Call",
    "Conflict",
    "InMemoryKube",
    "JobResult",
    "JobState",
    "KubeAdapter",
    "KubeApi",
    "KubeApiError",
    "NotFound",
    "NotOwnedError",
    "Obj",
    "Resource",
    "RestKubeApi",
    "as_kube_api",
    "build_deployment",
    "build_job",
    "build_service",
    "build_shared_service",
    "deployment_ready",
    "is_subset",
    "job_state",
    "labels",
    "merge_patch",
    "observed",
    "owned_by",
    "owner_labels",
    "owner_reference",
    "router_owns_replicas",
    "termination_message",
    "workload_name",
]
