"""``modelops run``: build the runtime (API client, Prometheus, telemetry) and run kopf with our handlers."""

from __future__ import annotations

import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import kopf
import kubernetes

from modelops import __version__
from modelops.adapters.kube import RestKubeApi
from modelops.adapters.prometheus import PrometheusProvider, PrometheusSettings
from modelops.telemetry import Telemetry

from .config import OperatorConfig
from .operator import register
from .reconcile import Runtime

log = logging.getLogger("modelops")

USER_AGENT = f"modelops/{__version__}"


def api_client(kubeconfig: str | None) -> kubernetes.client.ApiClient:
    """In-cluster when running in a pod, else the kubeconfig (``--kubeconfig``, ``$KUBECONFIG``, ~/.kube/config)."""
    configuration = kubernetes.client.Configuration()
    if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        kubernetes.config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    else:
        kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig, client_configuration=configuration
        )
    client = kubernetes.client.ApiClient(configuration)
    client.user_agent = USER_AGENT  # the operator's requests are told apart in audit logs (and in the RBAC test)
    return client


def connection_info(client: kubernetes.client.ApiClient) -> kopf.ConnectionInfo:
    """kopf's credentials from the same client configuration the reconciles use (one source of truth).

    kopf's own ``login_via_client`` reads the kubeconfig location fixed when the ``kubernetes`` package was
    imported, so ``--kubeconfig`` would be ignored; this reads the configuration we built instead.
    """
    cfg = client.configuration
    header = cfg.get_api_key_with_prefix("BearerToken") or cfg.get_api_key_with_prefix("authorization")
    parts = header.split(" ", 1) if header else []
    scheme, token = (None, None) if not parts else (None, parts[0]) if len(parts) == 1 else (parts[0], parts[1])
    return kopf.ConnectionInfo(
        server=cfg.host,
        ca_path=cfg.ssl_ca_cert,
        insecure=not cfg.verify_ssl,
        username=cfg.username or None,
        password=cfg.password or None,
        scheme=scheme,
        token=token,
        certificate_path=cfg.cert_file,
        private_key_path=cfg.key_file,
    )


def prometheus_settings(config: OperatorConfig) -> PrometheusSettings:
    p = config.prometheus
    password = Path(p.password_file).read_text().strip() if p.password_file else None
    return PrometheusSettings(
        url=p.url,
        timeout=p.timeout_seconds,
        bearer_token_file=Path(p.token_file) if p.token_file else None,
        username=p.username,
        password=password,
        ca_file=Path(p.ca_file) if p.ca_file else None,
        insecure=p.insecure,
    )


def build_runtime(
    config: OperatorConfig, telemetry: Telemetry | None = None, client: kubernetes.client.ApiClient | None = None
) -> Runtime:
    return Runtime(
        api=RestKubeApi(client or api_client(config.kubeconfig)),
        metrics=PrometheusProvider(prometheus_settings(config)),
        telemetry=telemetry or Telemetry(),
        poll_seconds=config.gate_poll_seconds,
        idle_seconds=config.resync_seconds,
        executor=ThreadPoolExecutor(config.workers, thread_name_prefix="reconcile"),
    )


def operator_task(
    config: OperatorConfig,
    *,
    registry: kopf.OperatorRegistry | None = None,
    runtime: Runtime | None = None,
    telemetry: Telemetry | None = None,
) -> tuple[kopf.OperatorRegistry, Runtime]:
    """The registry with our handlers and the runtime they use (tests run kopf on these in-process)."""
    client = api_client(config.kubeconfig)
    rt = runtime or build_runtime(config, telemetry, client=client)
    reg = registry or kopf.OperatorRegistry()
    register(reg, lambda: rt)

    @kopf.on.login(registry=reg)
    def login(**_: object) -> kopf.ConnectionInfo:
        return connection_info(client)

    return reg, rt


def peering_priority(config: OperatorConfig, started_ns: int | None = None) -> int:
    """This replica's kopf peering priority: ``--priority`` when given, else minus the start time in microseconds.

    kopf lets the live peer of the highest priority act and pauses the others, and pauses *every* peer when two
    share the highest one: with its default (0 for all) the chart's ``replicaCount: 2`` would have no replica acting.
    A priority derived from the start time is distinct per process, and the oldest replica ranks highest, so a newly
    started replica (a rolling update's surge pod, a restarted one) stands by instead of taking over from a leader
    in the middle of its work. Negative, so that an operator started with kopf's usual priorities (0 or more, e.g.
    for debugging) outranks every replica; microseconds stay exact as JSON numbers (below 2**53) for centuries.

    >>> peering_priority(OperatorConfig(priority=7))
    7
    >>> peering_priority(OperatorConfig(), started_ns=1_700_000_000_123_456_789)
    -1700000000123456
    >>> peering_priority(OperatorConfig(), started_ns=2) > peering_priority(OperatorConfig(), started_ns=2000)
    True
    """
    if config.priority is not None:
        return config.priority
    started = time.time_ns() if started_ns is None else started_ns
    return -(started // 1000)


def exact_namespaces(config: OperatorConfig) -> bool:
    """Whether the operator watches a fixed list of namespaces (names, no ``*``/``?``/``[`` patterns, no ``!``)."""
    return not config.clusterwide and not any(set(ns) & set("*?[]!") for ns in config.namespaces)


def kopf_settings(config: OperatorConfig) -> kopf.OperatorSettings:
    """kopf's settings from ours (the handlers' own, e.g. the finalizer, are set by their startup handler)."""
    settings = kopf.OperatorSettings()
    settings.peering.lifetime = config.peering_lifetime
    # Namespaced (the chart's Role per watched namespace, no right to list namespaces): kopf's namespace scan would
    # retry its forbidden LIST for ~1 min (its error backoffs) before it falls back to the names given, and only
    # then start, peering included. With fixed names there is nothing to scan; the cost is that kopf no longer
    # watches CRDs either, so the resources it serves are those found at start (the chart installs the CRDs first).
    settings.scanning.disabled = exact_namespaces(config)
    return settings


def run_operator(config: OperatorConfig) -> int:
    """Run until interrupted. Returns the process exit code."""
    kopf.configure(
        verbose=config.verbose,
        log_format=kopf.LogFormat.JSON if config.log_format == "json" else kopf.LogFormat.FULL,
    )
    logging.getLogger("modelops").setLevel(logging.DEBUG if config.verbose else logging.INFO)
    # httpx logs every Prometheus query at INFO: thousands of lines per interval at scale, and measurable CPU
    # (see docs/performance.md). Failed queries are reported by the analysis itself (verdict Error, events).
    logging.getLogger("httpx").setLevel(logging.DEBUG if config.verbose else logging.WARNING)
    # kopf logs "Handler ... succeeded." at INFO for every watch event our on.event handlers see: one line per
    # status write at scale. Its warnings and errors (a handler failing, a daemon not stopping) still show.
    logging.getLogger("kopf.objects").setLevel(logging.DEBUG if config.verbose else logging.WARNING)
    telemetry = Telemetry()
    registry, _ = operator_task(config, telemetry=telemetry)
    server = telemetry.serve(config.metrics_port, config.metrics_address) if config.metrics_port else None
    log.info("modelops %s: watching %s", __version__, ", ".join(config.namespaces) or "all namespaces")
    priority = peering_priority(config)
    if config.peering:
        log.info("peering %r: priority %d, lifetime %d s", config.peering, priority, config.peering_lifetime)
    try:
        kopf.run(
            registry=registry,
            settings=kopf_settings(config),
            standalone=config.standalone,
            peering_name=config.peering,
            priority=priority,
            clusterwide=config.clusterwide,
            namespaces=config.namespaces,
            liveness_endpoint=f"http://0.0.0.0:{config.health_port}/healthz" if config.health_port else None,
        )
    except KeyboardInterrupt:
        pass
    finally:
        if server is not None:
            server.shutdown()
    return 0
