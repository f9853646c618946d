"""``modelops sandbox``: the local environment. ``apiserver`` serves the Kubernetes API emulator on loopback;
``up``/``down``/``status`` (the whole environment) come from ``modelops.cli.sandbox_env`` when it is present.
Each subcommand is a function ``(args) -> int`` set as ``func`` on its parser.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from pathlib import Path

__all__ = ["register", "run_apiserver"]

#: the CRDs of this repository, next to operator/ in a source checkout
DEFAULT_CRDS = Path(__file__).resolve().parents[3] / "crds"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``sandbox`` and its subcommands to the ``modelops`` parser."""
    parser = subparsers.add_parser("sandbox", help="the local environment (API emulator, ...)")
    commands = parser.add_subparsers(dest="sandbox_command", required=True, metavar="SANDBOX_COMMAND")

    apiserver = commands.add_parser(
        "apiserver",
        help="serve the Kubernetes API emulator on 127.0.0.1",
        description="Serve the Kubernetes API emulator on 127.0.0.1 with the CRDs registered, until interrupted.",
    )
    apiserver.add_argument("--port", type=int, default=0, help="port to listen on (0: pick a free one and print it)")
    apiserver.add_argument("--kubeconfig", type=Path, help="write a kubeconfig for kubectl and clients to this file")
    apiserver.add_argument(
        "--crds",
        type=Path,
        action="append",
        help=f"CRD YAML file or directory to register (repeatable; default: {DEFAULT_CRDS})",
    )
    apiserver.add_argument(
        "--history-limit", type=int, default=20, help="versions of each object kept for inspection (default 20)"
    )
    apiserver.set_defaults(func=run_apiserver)

    # up / down / status: the whole environment (modelops.cli.sandbox_env)
    from modelops.cli.sandbox_env import register_env_commands

    register_env_commands(commands)


def run_apiserver(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM; print the URL (and the kubeconfig path) once listening."""
    from modelops.sandbox.apiserver import ApiServerEmulator, serve, write_kubeconfig

    emulator = ApiServerEmulator(history_limit=args.history_limit)
    crds: list[Path] = args.crds or ([DEFAULT_CRDS] if DEFAULT_CRDS.is_dir() else [])
    emulator.load_crds(*crds)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with serve(emulator, args.port) as url:
            port = url.rsplit(":", 1)[1]
            print(f"apiserver emulator listening on {url} (port {port})", flush=True)
            if args.kubeconfig is not None:
                write_kubeconfig(args.kubeconfig, url)
                print(f"kubeconfig written to {args.kubeconfig}", flush=True)
            await stop.wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
    print("apiserver emulator stopped", file=sys.stderr)
    return 0
