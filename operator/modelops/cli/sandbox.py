"""``modelops sandbox``: the local environment (a real Kubernetes control plane on 127.0.0.1, the node agent,
Prometheus, the gateway and the operator installed from its chart). ``up``/``down``/``status``/``demo`` come from
``modelops.cli.sandbox_env``. Each subcommand is a function ``(args) -> int`` set as ``func`` on its parser.
"""

from __future__ import annotations

import argparse

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``sandbox`` and its subcommands to the ``modelops`` parser."""
    parser = subparsers.add_parser("sandbox", help="the local environment (a real local cluster, Prometheus, ...)")
    commands = parser.add_subparsers(dest="sandbox_command", required=True, metavar="SANDBOX_COMMAND")
    from modelops.cli.sandbox_env import register_env_commands

    register_env_commands(commands)
