"""Validation errors as the API server words them: a field path and what is wrong with it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pydantic import ValidationError


def field_path(loc: Sequence[str | int]) -> str:
    """``('spec', 'rollout', 'steps', 1, 'weight')`` -> ``spec.rollout.steps[1].weight``.

    >>> field_path(("spec", "rollout", "steps", 1, "weight"))
    'spec.rollout.steps[1].weight'
    >>> field_path(())
    '<root>'
    """
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not out:
            out = str(part)
        else:
            out += f".{part}"
    return out or "<root>"


def describe(exc: ValidationError, prefix: Iterable[str | int] = ()) -> list[str]:
    """One line per problem: ``spec.rollout.steps[1].weight: Input should be less than or equal to 100``."""
    base = tuple(prefix)
    lines = []
    for err in exc.errors(include_url=False):
        # pydantic appends the validator kind to model-level locations (e.g. 'function-after[...]'); drop those
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and "[" in p))
        message = err["msg"].removeprefix("Value error, ")
        lines.append(f"{field_path(base + loc)}: {message}")
    return lines
