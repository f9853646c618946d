"""``modelops run``: the operator (kopf under the hood)."""

from __future__ import annotations

import argparse
import os

from modelops.handlers.config import (
    MIN_PEERING_LIFETIME,
    PEERING_LIFETIME,
    OperatorConfig,
    PrometheusConfig,
    env_list,
)


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(name, default)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "run",
        help="run the operator",
        description="Run the modelops operator against the cluster of the current kubeconfig (or in-cluster). "
        "Every flag can also be set by the environment variable named in its help.",
    )
    scope = p.add_mutually_exclusive_group()
    scope.add_argument(
        "-n",
        "--namespace",
        action="append",
        dest="namespaces",
        metavar="NS",
        help="watch this namespace (repeatable; env MODELOPS_NAMESPACES, comma-separated)",
    )
    scope.add_argument(
        "-A", "--all-namespaces", action="store_true", help="watch every namespace (the default when none is given)"
    )
    p.add_argument(
        "--prometheus-url",
        default=_env("MODELOPS_PROMETHEUS_URL", "http://127.0.0.1:9090"),
        help="Prometheus used for analysis and monitoring queries (env MODELOPS_PROMETHEUS_URL)",
    )
    p.add_argument(
        "--prometheus-token-file",
        default=_env("MODELOPS_PROMETHEUS_TOKEN_FILE"),
        help="file holding a bearer token for Prometheus (env MODELOPS_PROMETHEUS_TOKEN_FILE)",
    )
    p.add_argument(
        "--prometheus-username",
        default=_env("MODELOPS_PROMETHEUS_USERNAME"),
        help="basic-auth user for Prometheus (env MODELOPS_PROMETHEUS_USERNAME)",
    )
    p.add_argument(
        "--prometheus-password-file",
        default=_env("MODELOPS_PROMETHEUS_PASSWORD_FILE"),
        help="file holding the basic-auth password (env MODELOPS_PROMETHEUS_PASSWORD_FILE)",
    )
    p.add_argument(
        "--prometheus-ca-file",
        default=_env("MODELOPS_PROMETHEUS_CA_FILE"),
        help="CA bundle to verify Prometheus' TLS certificate (env MODELOPS_PROMETHEUS_CA_FILE)",
    )
    p.add_argument(
        "--prometheus-timeout",
        type=float,
        default=float(_env("MODELOPS_PROMETHEUS_TIMEOUT", "10") or 10),
        help="seconds before a Prometheus query counts as an error (env MODELOPS_PROMETHEUS_TIMEOUT)",
    )
    p.add_argument(
        "--metrics-port",
        type=int,
        default=int(_env("MODELOPS_METRICS_PORT", "8080") or 8080),
        help="port of the operator's own Prometheus metrics at /metrics; 0 disables (env MODELOPS_METRICS_PORT)",
    )
    p.add_argument(
        "--metrics-address",
        default=_env("MODELOPS_METRICS_ADDRESS", "0.0.0.0"),
        help="address the metrics endpoint binds (env MODELOPS_METRICS_ADDRESS)",
    )
    p.add_argument(
        "--health-port",
        type=int,
        default=int(_env("MODELOPS_HEALTH_PORT", "8081") or 8081),
        help="port of the liveness endpoint /healthz; 0 disables (env MODELOPS_HEALTH_PORT)",
    )
    p.add_argument(
        "--log-format",
        choices=["text", "json"],
        default=_env("MODELOPS_LOG_FORMAT", "text"),
        help="log lines as text or JSON objects (env MODELOPS_LOG_FORMAT)",
    )
    peering = p.add_mutually_exclusive_group()
    peering.add_argument(
        "--peering",
        default=_env("MODELOPS_PEERING"),
        metavar="NAME",
        help="kopf peering object: with several replicas only the one with the highest priority acts "
        "(env MODELOPS_PEERING; needs kopf's peering CRDs)",
    )
    peering.add_argument("--standalone", action="store_true", help="no peering: this process acts alone (the default)")
    p.add_argument(
        "--priority",
        type=int,
        default=_env("MODELOPS_PRIORITY"),
        metavar="N",
        help="peering priority of this replica (env MODELOPS_PRIORITY). By default it is derived from the start "
        "time, negative and lower for a later start: the oldest replica acts, a newer one stands by, and any "
        "priority of 0 or more (e.g. a debugging session) outranks them all. Replicas of equal priority all pause",
    )
    p.add_argument(
        "--peering-lifetime",
        type=_lifetime,
        default=_env("MODELOPS_PEERING_LIFETIME", str(PEERING_LIFETIME)),
        metavar="SECONDS",
        help="how long a replica's keep-alive counts: a replica killed without a goodbye is replaced by a standby "
        f"within about this time; a stopped one hands over at once (env MODELOPS_PEERING_LIFETIME, default "
        f"{PEERING_LIFETIME}, at least {MIN_PEERING_LIFETIME})",
    )
    p.add_argument(
        "--gate-poll",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="how often running gate and retraining Jobs are checked",
    )
    p.add_argument(
        "--resync",
        type=float,
        default=float(_env("MODELOPS_RESYNC_SECONDS", "60") or 60),
        metavar="SECONDS",
        help="how often an object with nothing due is checked anyway, e.g. for an edited route "
        "(env MODELOPS_RESYNC_SECONDS)",
    )
    p.add_argument(
        "--workers",
        type=_positive_int,
        default=_env("MODELOPS_WORKERS", "4"),
        metavar="N",
        help="reconciles run at once, each in a thread that mostly waits on the API server and Prometheus; raise it "
        "when Prometheus answers slowly and checks fall behind their interval (env MODELOPS_WORKERS, default 4)",
    )
    p.add_argument("--kubeconfig", default=_env("KUBECONFIG"), help="kubeconfig file (env KUBECONFIG)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.set_defaults(func=run)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _lifetime(text: str) -> int:
    value = _positive_int(text)
    if value < MIN_PEERING_LIFETIME:
        raise argparse.ArgumentTypeError(f"must be at least {MIN_PEERING_LIFETIME} seconds, not {value}")
    return value


def config_from(args: argparse.Namespace) -> OperatorConfig:
    namespaces = tuple(args.namespaces or ()) if not args.all_namespaces else ()
    if not namespaces and not args.all_namespaces:
        namespaces = env_list("MODELOPS_NAMESPACES")
    return OperatorConfig(
        namespaces=namespaces,
        prometheus=PrometheusConfig(
            url=args.prometheus_url,
            token_file=args.prometheus_token_file,
            username=args.prometheus_username,
            password_file=args.prometheus_password_file,
            ca_file=args.prometheus_ca_file,
            timeout_seconds=args.prometheus_timeout,
        ),
        metrics_port=args.metrics_port,
        metrics_address=args.metrics_address,
        health_port=args.health_port,
        log_format=args.log_format,
        peering=None if args.standalone else args.peering,
        standalone=args.standalone or not args.peering,
        priority=args.priority,
        peering_lifetime=args.peering_lifetime,
        gate_poll_seconds=args.gate_poll,
        resync_seconds=args.resync,
        workers=args.workers,
        kubeconfig=args.kubeconfig,
        verbose=args.verbose,
    )


def run(args: argparse.Namespace) -> int:
    from modelops.handlers.runtime import run_operator

    return run_operator(config_from(args))
