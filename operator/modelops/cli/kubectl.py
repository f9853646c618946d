"""The kubectl plugin ``kubectl modelops``."""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    raise SystemExit("kubectl-modelops: not implemented yet")
