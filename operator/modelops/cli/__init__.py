"""The ``modelops`` command: ``run`` (the operator), ``sandbox`` (the local environment), ``backtest``.

Each subcommand lives in its own module exposing ``register(subparsers)``; the module is imported only when
its subcommand runs, so ``modelops --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable
from typing import Protocol


class _Registrar(Protocol):
    def __call__(self, subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None: ...


#: subcommand modules, in the order ``--help`` lists them
SUBCOMMANDS = ("modelops.cli.run", "modelops.cli.sandbox", "modelops.cli.backtest")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="modelops",
        description="modelops: runs the whole lifecycle of machine-learning models on Kubernetes.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        register: _Registrar = module.register
        register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``modelops`` console script. Each subcommand sets ``func`` returning an exit code."""
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    func: Callable[[argparse.Namespace], int] = args.func
    return func(args)
