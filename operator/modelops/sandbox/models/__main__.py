"""``python -m modelops.sandbox.models``: train, serve, evaluate (gate job), retrain (retraining job), data.

Examples::

    python -m modelops.sandbox.models train --version v1 --out /tmp/models/v1      # baseline, prints the URI
    python -m modelops.sandbox.models serve --port 8080 --model-uri file:///tmp/models/v1/model.pkl \\
        --model-name demo --model-version v1
    python -m modelops.sandbox.models evaluate --model-uri file:///tmp/models/v2/model.pkl \\
        --stable-uri file:///tmp/models/v1/model.pkl --termination-log /tmp/gate.json
    python -m modelops.sandbox.models retrain --data builtin:train --data-shift 1 --out-dir /tmp/models \\
        --version-prefix v --termination-log /tmp/retrain.json
    python -m modelops.sandbox.models data --slice live --data-shift 1 --out /tmp/shifted.csv

Options fall back to environment variables where a pod template would set them: ``MODEL_URI``, ``MODEL_NAME``,
``MODEL_VERSION``, ``PORT`` (serve, evaluate), ``STABLE_MODEL_URI`` or ``STABLE_URI`` (evaluate; the operator sets
the latter on gate Jobs), ``MODELOPS_DATA_SHIFT`` (the current re-calibration of the sensors, for evaluate and
retrain) and ``MODELOPS_TERMINATION_LOG`` (instead of ``/dev/termination-log``). Jobs print their JSON result and
write it to the termination log; on failure they write ``{"error": ...}`` there and exit 1, and so they do when the
result is larger than the 4096 bytes a termination message holds (the error names the limit and the size).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .artifacts import ARTIFACT_FILE, save_artifact
from .data import SLICES, Dataset, load_data, load_slice, write_csv
from .jobs import DEFAULT_TERMINATION_LOG, ResultTooLarge, evaluation_job, retraining_job, write_result
from .server import ModelServer
from .training import RECIPES, train


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(name) or default


def _shift_default() -> float:
    return float(_env("MODELOPS_DATA_SHIFT", "0") or 0)


def _termination_log_default() -> str:
    return _env("MODELOPS_TERMINATION_LOG", DEFAULT_TERMINATION_LOG) or DEFAULT_TERMINATION_LOG


def _require(args: argparse.Namespace, parser: argparse.ArgumentParser, *names: str) -> None:
    missing = [f"--{n.replace('_', '-')}" for n in names if not getattr(args, n)]
    if missing:
        parser.error(f"missing {', '.join(missing)} (or its environment variable)")


def _cmd_train(args: argparse.Namespace) -> int:
    rows = Dataset.concat([load_data(spec, args.data_shift) for spec in args.data or ["builtin:train"]])
    trained_on = {"data": args.data or ["builtin:train"], "shift": args.data_shift}
    artifact = train(rows, args.version, args.recipe, args.seed, trained_on=trained_on)
    uri = save_artifact(artifact, Path(args.out) / ARTIFACT_FILE)
    print(json.dumps({"version": artifact.version, "recipe": artifact.recipe, "rows": len(rows), "uri": uri}))
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    server = ModelServer(
        args.model_uri,
        args.model_name,
        args.model_version,
        port=args.port,
        drift_window=args.drift_window,
        host=args.host,
    )
    print(f"listening on {server.url}", flush=True)
    # SIGTERM (a Pod being deleted) is a graceful stop: the server keeps answering for ``--drain-seconds`` while
    # the deletion reaches whoever routes to it (endpoints leave out a deleting Pod, a gateway refreshes its table),
    # so no request routed to it meanwhile fails; then it stops. Ctrl-C stops at once.
    terminated = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: terminated.set())
    serving = threading.Thread(target=server.serve_forever, name="serve", daemon=True)
    serving.start()
    with contextlib.suppress(KeyboardInterrupt):
        while serving.is_alive() and not terminated.wait(0.5):
            pass
        if terminated.is_set():
            threading.Event().wait(args.drain_seconds)
    server.stop()
    return 0


def _run_job(job: Callable[[], dict[str, Any]], termination_log: str) -> int:
    try:
        result = job()
    except Exception as exc:
        message = f"{type(exc).__name__}: {exc}"
        print(message, file=sys.stderr)
        try:
            write_result({"error": message[:3000]}, termination_log)
        except (OSError, ResultTooLarge) as log_exc:  # a message that escapes to more than the limit is cut there
            print(f"cannot write the termination log: {log_exc}", file=sys.stderr)
        return 1
    try:
        print(write_result(result, termination_log), flush=True)
    except ResultTooLarge as exc:  # the termination log says so; the whole result goes to the log
        print(json.dumps(result), flush=True)
        print(exc, file=sys.stderr)
        return 1
    except OSError as exc:
        print(json.dumps(result), flush=True)
        print(f"cannot write the termination log {termination_log}: {exc}", file=sys.stderr)
        return 1
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    return _run_job(
        lambda: evaluation_job(args.model_uri, args.stable_uri, args.data, args.data_shift), args.termination_log
    )


def _cmd_retrain(args: argparse.Namespace) -> int:
    data = args.data or ["builtin:train"]
    return _run_job(
        lambda: retraining_job(data, Path(args.out_dir), args.version_prefix, args.data_shift, args.recipe, args.seed),
        args.termination_log,
    )


def _cmd_data(args: argparse.Namespace) -> int:
    rows = load_slice(args.slice, args.data_shift)
    write_csv(rows, Path(args.out))
    print(json.dumps({"rows": len(rows), "out": str(Path(args.out).resolve())}))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m modelops.sandbox.models", description="the sandbox model: train, serve, evaluate, retrain, data"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def data_options(p: argparse.ArgumentParser, default: str | None = None) -> None:
        p.add_argument(
            "--data",
            action="append" if default is None else "store",
            default=default,
            help="builtin:<slice> (train, test, live) or a CSV path" + ("; repeatable" if default is None else ""),
        )
        p.add_argument(
            "--data-shift",
            type=float,
            default=_shift_default(),
            help="sensor re-calibration applied to builtin slices (env MODELOPS_DATA_SHIFT; default 0)",
        )

    p = sub.add_parser("train", help="train one version and write its artifact to DIR/model.pkl")
    p.add_argument("--version", required=True)
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--recipe", choices=RECIPES, help="default: baseline for v1, improved for v2, broken for v3")
    p.add_argument("--seed", type=int, default=0)
    data_options(p)
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("serve", help="serve one version on 127.0.0.1")
    p.add_argument(
        "--host", default=_env("POD_IP") or "127.0.0.1", help="address to bind (env POD_IP: the pod's own address)"
    )
    p.add_argument("--port", type=int, default=int(_env("PORT", "8080") or 8080), help="0 picks a free port")
    p.add_argument("--model-uri", default=_env("MODEL_URI"))
    p.add_argument("--model-name", default=_env("MODEL_NAME"))
    p.add_argument("--model-version", default=_env("MODEL_VERSION"))
    p.add_argument("--drift-window", type=int, default=500, help="recent inputs the drift gauges look at")
    p.add_argument(
        "--drain-seconds", type=float, default=2.0, help="how long to keep answering after SIGTERM before stopping"
    )
    p.set_defaults(func=_cmd_serve, required=("model_uri", "model_name", "model_version"))

    p = sub.add_parser("evaluate", help="the gate job: held-out metrics and per-group rates")
    p.add_argument("--model-uri", default=_env("MODEL_URI"))
    # STABLE_URI is what the operator sets on gate Jobs (modelops.handlers.reconcile); STABLE_MODEL_URI by hand.
    p.add_argument("--stable-uri", default=_env("STABLE_MODEL_URI") or _env("STABLE_URI"))
    p.add_argument("--termination-log", default=_termination_log_default())
    data_options(p, default="builtin:test")
    p.set_defaults(func=_cmd_evaluate, required=("model_uri",))

    p = sub.add_parser("retrain", help="the retraining job: train the next version on the data given")
    p.add_argument("--out-dir", required=True)
    p.add_argument("--version-prefix", default="v")
    p.add_argument("--recipe", choices=RECIPES, default="improved")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--termination-log", default=_termination_log_default())
    data_options(p)
    p.set_defaults(func=_cmd_retrain)

    p = sub.add_parser("data", help="write a slice of the data set as CSV (the format --data reads)")
    p.add_argument("--slice", choices=sorted(SLICES), default="live")
    p.add_argument("--out", required=True)
    p.add_argument("--data-shift", type=float, default=_shift_default())
    p.set_defaults(func=_cmd_data)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _require(args, parser, *getattr(args, "required", ()))
    func: Callable[[argparse.Namespace], int] = args.func
    return func(args)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sys.exit(main())
