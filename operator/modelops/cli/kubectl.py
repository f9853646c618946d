"""The kubectl plugin ``kubectl modelops`` (console script ``kubectl-modelops``; kubectl finds it on PATH).

Inspect (``list``, ``status``, ``history``, ``watch``) and act without editing the spec (``promote``, ``abort``,
``pause``, ``resume``, ``approve``, ``retry``: a ModelRequest, carrying the user name the API server authenticates,
that the operator answers; ``retire``: a ModelRetirement). This module is the I/O half: the kubeconfig, the API
calls, waiting; the rules and the output are pure functions in :mod:`modelops.cli.plugin_view`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import yaml

from modelops.adapters.kube import (
    MODELDEPLOYMENTS,
    MODELREQUESTS,
    MODELRETIREMENTS,
    KubeApi,
    KubeApiError,
    Resource,
    RestKubeApi,
)

from .plugin_view import (
    FINAL_PHASES,
    PluginError,
    check_request,
    history_rows,
    list_rows,
    parse_spec,
    parse_status,
    request_answer,
    request_body,
    retirement_body,
    status_text,
    watch_line,
    watch_state,
)

ACTIONS = ("promote", "abort", "pause", "resume", "approve", "retry")
SELFSUBJECTREVIEWS = Resource("authentication.k8s.io", "v1", "selfsubjectreviews", "SelfSubjectReview")


def now() -> datetime:
    return datetime.now(UTC)


# ------------------------------------------------------------------------------------------ connection


def connect(kubeconfig: str | None, context: str | None, namespace: str | None) -> tuple[KubeApi, str]:
    """An API client from the kubeconfig (or in-cluster config) and the namespace to use: ``-n``, else the
    context's namespace, else ``default`` (as kubectl does)."""
    import kubernetes

    try:
        client = kubernetes.config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig, context=context
        )
        contexts, active = kubernetes.config.list_kube_config_contexts(  # type: ignore[no-untyped-call]
            config_file=kubeconfig
        )
        if context is not None:
            active = next((c for c in contexts if c.get("name") == context), active)
        ctx_namespace = (active or {}).get("context", {}).get("namespace")
    except kubernetes.config.ConfigException as exc:
        try:
            kubernetes.config.load_incluster_config()  # type: ignore[no-untyped-call]
        except kubernetes.config.ConfigException:
            raise PluginError(f"cannot load the kubeconfig: {exc}") from exc
        client, ctx_namespace = kubernetes.client.ApiClient(), None
    return PluginApi(client, timeout=15.0), namespace or ctx_namespace or "default"


def _api_error(exc: KubeApiError, what: str, namespace: str) -> PluginError:
    if exc.status == 404:
        return PluginError(f'{what} not found in namespace "{namespace}"')
    if exc.status in (401, 403):
        return PluginError(f"forbidden: you may not access {what} in namespace {namespace!r} ({exc.message})")
    return PluginError(f"the API server refused: {exc}")


def _get(api: KubeApi, namespace: str, name: str) -> dict[str, Any]:
    what = f'modeldeployment "{name}"'
    try:
        obj = api.get(MODELDEPLOYMENTS, namespace, name)
    except KubeApiError as exc:
        raise _api_error(exc, what, namespace) from exc
    if obj is None:
        raise PluginError(f'{what} not found in namespace "{namespace}"')
    return obj


def _emit(data: Any, output: str) -> None:
    if output == "json":
        print(json.dumps(data, indent=2, default=str))
    else:
        print(yaml.safe_dump(data, sort_keys=False, default_flow_style=False).rstrip())


# -------------------------------------------------------------------------------------------- commands


def cmd_list(args: argparse.Namespace, api: KubeApi, namespace: str) -> int:
    ns = "" if args.all_namespaces else namespace
    try:
        items = api.list(MODELDEPLOYMENTS, ns) if ns else _list_all(api)
    except KubeApiError as exc:
        raise _api_error(exc, "modeldeployments", namespace) from exc
    if args.output in ("json", "yaml"):
        _emit({"apiVersion": "v1", "kind": "List", "items": items}, args.output)
    else:
        print(list_rows(items, now(), all_namespaces=args.all_namespaces))
    return 0


class PluginApi(RestKubeApi):
    """The operator's REST client, plus the one call the operator never makes: a list across all namespaces."""

    def list_all(self, resource: Resource) -> list[dict[str, Any]]:
        answer = self._call("GET", f"/apis/{resource.group}/{resource.version}/{resource.plural}") or {}
        items: list[dict[str, Any]] = answer.get("items") or []
        return items


def _list_all(api: KubeApi) -> list[dict[str, Any]]:
    if not isinstance(api, PluginApi):
        raise PluginError("listing all namespaces needs the REST client")
    return api.list_all(MODELDEPLOYMENTS)


def cmd_status(args: argparse.Namespace, api: KubeApi, namespace: str) -> int:
    obj = _get(api, namespace, args.name)
    if args.output in ("json", "yaml"):
        _emit(obj, args.output)
    else:
        print(status_text(obj, now()))
    return 0


def cmd_history(args: argparse.Namespace, api: KubeApi, namespace: str) -> int:
    obj = _get(api, namespace, args.name)
    if args.output in ("json", "yaml"):
        status = obj.get("status") or {}
        _emit({"history": status.get("history", []), "requests": status.get("requests", [])}, args.output)
    else:
        print(history_rows(obj, now()))
    return 0


def cmd_watch(args: argparse.Namespace, api: KubeApi, namespace: str) -> int:
    """Poll (every ``--interval``) and print a line whenever something changed, until a final phase or Ctrl-C."""
    last: tuple[Any, ...] | None = None
    try:
        while True:
            obj = _get(api, namespace, args.name)
            state = watch_state(obj)
            if state != last:
                if args.output in ("json", "yaml"):
                    _emit(obj.get("status") or {}, args.output)
                    sys.stdout.flush()
                else:
                    print(watch_line(obj, now()), flush=True)
                last = state
            status = parse_status(obj)
            if status.phase in FINAL_PHASES:
                return 0
            if args.max_duration is not None and time.monotonic() - args._started > args.max_duration:
                return 0
            time.sleep(args.interval)
    except KeyboardInterrupt:
        return 130


def cmd_request(args: argparse.Namespace, api: KubeApi, namespace: str) -> int:
    action: str = args.command
    team: str = getattr(args, "team", "") or ""
    obj = _get(api, namespace, args.name)
    problem = check_request(action, parse_status(obj), parse_spec(obj), team)
    if problem is not None and not args.force:
        raise PluginError(f"{args.name}: {problem}")
    by = whoami(api)
    if by is None and action == "approve":
        raise PluginError("cannot approve: the API server did not say who you are (SelfSubjectReview refused)")
    try:
        created = api.create(MODELREQUESTS, namespace, request_body(obj, action, by, team, args.reason or ""))
    except KubeApiError as exc:
        if exc.status in (400, 403, 422):  # RBAC, or the admission policy on who may ask what: its own words
            raise PluginError(f"{args.name}: the API server refused the {action}: {exc.message}") from exc
        raise _api_error(exc, "modelrequests", namespace) from exc
    request = str(created["metadata"]["name"])
    if args.no_wait:
        print(f"modelrequest.modelops.io/{request} created: {action} of {args.name}")
        return 0
    deadline = time.monotonic() + args.timeout
    while True:
        try:
            current = api.get(MODELREQUESTS, namespace, request) or {}
        except KubeApiError as exc:
            raise _api_error(exc, f'modelrequest "{request}"', namespace) from exc
        answer = request_answer(current)
        if answer is not None:
            applied, message = answer
            if not applied:
                raise PluginError(f"{args.name}: the operator refused {action} ({request}): {message}")
            if args.output in ("json", "yaml"):
                _emit({"request": request, "action": action, "by": by, "applied": True, "message": message},
                      args.output)  # fmt: skip
            else:
                print(f"modeldeployment.modelops.io/{args.name}: {action} applied: {message} ({request})")
            return 0
        if time.monotonic() >= deadline:
            raise PluginError(
                f"{args.name}: {action} requested ({request}) but the operator did not answer within "
                f"{args.timeout:g}s: is it running?"
            )
        time.sleep(0.2)


def whoami(api: KubeApi) -> str | None:
    """The user name the API server authenticates these credentials as (a SelfSubjectReview, as ``kubectl auth
    whoami``); None when it refuses to say."""
    try:
        review = api.create(SELFSUBJECTREVIEWS, "", {"apiVersion": "authentication.k8s.io/v1",
                                                    "kind": "SelfSubjectReview"})  # fmt: skip
    except KubeApiError:
        return None
    name = ((review.get("status") or {}).get("userInfo") or {}).get("username")
    return str(name) if name else None


def cmd_retire(args: argparse.Namespace, api: KubeApi, namespace: str) -> int:
    if args.after and args.not_before:
        raise PluginError("give --after or --not-before, not both")
    if args.after and not args.replacement:
        raise PluginError("--after counts from the replacement's promotion: give --replacement")
    _get(api, namespace, args.name)
    if args.replacement:
        _get(api, namespace, args.replacement)
    not_before = None
    if args.not_before:
        try:
            not_before = datetime.fromisoformat(args.not_before.replace("Z", "+00:00"))
        except ValueError as exc:
            raise PluginError(f"invalid --not-before {args.not_before!r}: expected a date like 2026-06-30") from exc
        if not_before.tzinfo is None:
            not_before = not_before.replace(tzinfo=UTC)
    steps = [int(s) for s in args.drain_steps.split(",")] if args.drain_steps else None
    retirement = args.retirement_name or f"{args.name}-retirement"
    try:
        body = retirement_body(
            retirement, args.name, args.replacement, args.after, not_before, steps, args.drain_interval
        )
    except ValueError as exc:
        raise PluginError(f"invalid retirement: {str(exc).splitlines()[0]}") from exc
    try:
        created = api.create(MODELRETIREMENTS, namespace, body)
    except KubeApiError as exc:
        if exc.status == 409:
            raise PluginError(f'modelretirement "{retirement}" already exists in namespace "{namespace}"') from exc
        raise _api_error(exc, f'modelretirement "{retirement}"', namespace) from exc
    if args.output in ("json", "yaml"):
        _emit(created, args.output)
    else:
        print(f"modelretirement.modelops.io/{retirement} created")
    return 0


# -------------------------------------------------------------------------------------------- parser


def _common(top: bool) -> argparse.ArgumentParser:
    """The flags every command takes, before or after the command name. Below the top level their defaults are
    suppressed, so ``-n x status y`` and ``status y -n x`` both work (argparse would reset the former)."""
    common = argparse.ArgumentParser(add_help=False)

    def default(value: Any) -> Any:
        return value if top else argparse.SUPPRESS

    common.add_argument("--kubeconfig", default=default(None), help="kubeconfig file (default: $KUBECONFIG)")
    common.add_argument("--context", default=default(None), help="kubeconfig context to use")
    common.add_argument(
        "-n", "--namespace", default=default(None), help="namespace (default: the context's, else default)"
    )
    common.add_argument(
        "-o", "--output", choices=["table", "json", "yaml"], default=default("table"), help="output format"
    )
    return common


def build_parser() -> argparse.ArgumentParser:
    common = _common(top=False)
    parser = argparse.ArgumentParser(
        prog="kubectl modelops",
        description="Inspect and steer modelops ModelDeployments without editing their spec.",
        parents=[_common(top=True)],
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("list", parents=[common], help="list ModelDeployments")
    p.add_argument("-A", "--all-namespaces", action="store_true")
    p.set_defaults(func=cmd_list)
    for name, helptext, func in (
        ("status", "phase, weights, step, metrics, gates, approvals, conditions", cmd_status),
        ("history", "past rollouts and consumed requests", cmd_history),
    ):
        p = sub.add_parser(name, parents=[common], help=helptext)
        p.add_argument("name")
        p.set_defaults(func=func)
    p = sub.add_parser("watch", parents=[common], help="follow a rollout until a final phase (Ctrl-C to stop)")
    p.add_argument("name")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between polls")
    p.add_argument("--max-duration", type=float, default=None, help="stop after this many seconds")
    p.set_defaults(func=cmd_watch)

    helps = {
        "promote": "promote the candidate now, skipping the remaining steps",
        "abort": "roll the candidate back",
        "pause": "hold the rollout at its current weight",
        "resume": "resume a paused rollout",
        "approve": "approve the candidate for a team",
        "retry": "restart a rolled-back or failed rollout",
    }
    for action in ACTIONS:
        p = sub.add_parser(action, parents=[common], help=helps[action])
        p.add_argument("name")
        if action == "approve":
            p.add_argument("--team", required=True, help="the approving team (one of spec.approvals)")
        p.add_argument("--no-wait", action="store_true", help="write the request and return")
        p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the operator's verdict")
        p.add_argument("--force", action="store_true", help="send even when it does not fit the phase seen here")
        p.add_argument("--reason", default=None, help="why, kept in the ModelRequest")
        p.set_defaults(func=cmd_request)

    p = sub.add_parser("retire", parents=[common], help="schedule the retirement of a ModelDeployment")
    p.add_argument("name")
    p.add_argument("--replacement", help="the ModelDeployment that takes its traffic")
    when = p.add_mutually_exclusive_group(required=True)
    when.add_argument("--after", help="this long after the replacement was promoted, e.g. 90d")
    when.add_argument("--not-before", help="not before this date/time (ISO 8601, UTC when no zone)")
    p.add_argument("--drain-steps", help="percent moved to the replacement per step, e.g. 25,50,75,100")
    p.add_argument("--drain-interval", help="how long each drain step is held, e.g. 1h")
    p.add_argument("--retirement-name", help="name of the ModelRetirement (default: NAME-retirement)")
    p.set_defaults(func=cmd_retire)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``kubectl-modelops``: one-line errors on stderr and exit code 1."""
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    args._started = time.monotonic()
    func: Callable[[argparse.Namespace, KubeApi, str], int] = args.func
    try:
        api, namespace = connect(args.kubeconfig, args.context, args.namespace)
        return func(args, api, namespace)
    except PluginError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KubeApiError as exc:
        print(f"error: the API server refused: {exc}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


__all__ = ["PluginApi", "build_parser", "connect", "main"]
