"""The operator's settings: from flags, with environment variables as defaults (12-factor, like the Helm chart sets)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

#: Seconds a replica's peering record counts as alive: kopf renews it 5-10 s before it runs out, and a replica killed
#: without a goodbye is replaced by a standby within this bound (kopf's own default is 60 s).
PEERING_LIFETIME = 15
#: The shortest lifetime accepted: below it kopf's keep-alive (every ``lifetime - 5..10`` s, at least every second)
#: leaves too little margin for one slow PATCH, and replicas would take turns.
MIN_PEERING_LIFETIME = 5


@dataclass(frozen=True)
class PrometheusConfig:
    url: str = "http://127.0.0.1:9090"
    token_file: str | None = None
    username: str | None = None
    password_file: str | None = None
    ca_file: str | None = None
    insecure: bool = False
    timeout_seconds: float = 10.0


@dataclass(frozen=True)
class OperatorConfig:
    namespaces: tuple[str, ...] = ()
    prometheus: PrometheusConfig = field(default_factory=PrometheusConfig)
    metrics_port: int = 8080
    metrics_address: str = "0.0.0.0"
    health_port: int = 8081
    log_format: str = "text"
    peering: str | None = None
    standalone: bool = True
    #: kopf peering priority: of the live replicas the highest acts, the others stand by. None: derived from the
    #: start time (see :func:`modelops.handlers.runtime.peering_priority`), so no two replicas share one.
    priority: int | None = None
    peering_lifetime: int = PEERING_LIFETIME
    gate_poll_seconds: float = 5.0
    resync_seconds: float = 60.0
    #: reconciles running at once (threads; each mostly waits on the API server and Prometheus)
    workers: int = 4
    kubeconfig: str | None = None
    verbose: bool = False

    @property
    def clusterwide(self) -> bool:
        return not self.namespaces


def env_list(name: str) -> tuple[str, ...]:
    raw = os.environ.get(name, "")
    return tuple(part.strip() for part in raw.split(",") if part.strip())
