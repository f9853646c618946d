"""Label and field selectors as the apiserver reads them (``labelSelector`` / ``fieldSelector`` query params).

Pure functions: parse once per request, then ``matches(object)`` per object.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_SET_RE = re.compile(r"^\s*(!?)\s*([A-Za-z0-9_./-]+)\s+(in|notin)\s*\((.*)\)\s*$")
_EQ_RE = re.compile(r"^\s*([A-Za-z0-9_./-]+)\s*(==|=|!=)\s*([A-Za-z0-9_.-]*)\s*$")
_EXISTS_RE = re.compile(r"^\s*(!?)\s*([A-Za-z0-9_./-]+)\s*$")
_SUPPORTED_FIELDS = ("metadata.name", "metadata.namespace")


class SelectorError(ValueError):
    """An unparsable selector: the apiserver answers 400 BadRequest."""


@dataclass(frozen=True)
class Requirement:
    """One clause: ``op`` is one of ``=``, ``!=``, ``in``, ``notin``, ``exists``, ``!``."""

    key: str
    op: str
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.op == "=":
            return present and value in self.values
        if self.op == "!=":
            return not present or value not in self.values
        if self.op == "in":
            return present and value in self.values
        if self.op == "notin":
            return not present or value not in self.values
        if self.op == "exists":
            return present
        return not present  # "!"


def _split_clauses(text: str) -> list[str]:
    """Split on commas outside parentheses: ``a in (x,y),b`` -> ``["a in (x,y)", "b"]``."""
    clauses: list[str] = []
    depth = 0
    current: list[str] = []
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            clauses.append("".join(current))
            current = []
        else:
            current.append(char)
    clauses.append("".join(current))
    return [c for c in (c.strip() for c in clauses) if c]


def parse_label_selector(text: str | None) -> tuple[Requirement, ...]:
    """Parse equality-based (``a=b``, ``a==b``, ``a!=b``) and set-based (``a in (x,y)``, ``a notin (x)``,
    ``a``, ``!a``) clauses; all must hold.

    >>> [r.op for r in parse_label_selector("app=web,tier in (a, b),!legacy")]
    ['=', 'in', '!']
    """
    requirements: list[Requirement] = []
    for clause in _split_clauses(text or ""):
        if match := _SET_RE.match(clause):
            if match.group(1):
                raise SelectorError(f"unable to parse requirement: {clause!r}")
            values = frozenset(v.strip() for v in match.group(4).split(",") if v.strip())
            requirements.append(Requirement(match.group(2), match.group(3), values))
        elif match := _EQ_RE.match(clause):
            op = "!=" if match.group(2) == "!=" else "="
            requirements.append(Requirement(match.group(1), op, frozenset({match.group(3)})))
        elif match := _EXISTS_RE.match(clause):
            requirements.append(Requirement(match.group(2), "!" if match.group(1) else "exists"))
        else:
            raise SelectorError(f"unable to parse requirement: {clause!r}")
    return tuple(requirements)


def parse_field_selector(text: str | None) -> tuple[Requirement, ...]:
    """Parse ``metadata.name=x`` / ``metadata.namespace!=y`` (the fields every resource supports)."""
    requirements: list[Requirement] = []
    for clause in _split_clauses(text or ""):
        match = _EQ_RE.match(clause)
        if match is None:
            raise SelectorError(f"invalid selector: {clause!r}; can't understand {clause!r}")
        if match.group(1) not in _SUPPORTED_FIELDS:
            raise SelectorError(f'field label not supported: "{match.group(1)}"')
        op = "!=" if match.group(2) == "!=" else "="
        requirements.append(Requirement(match.group(1), op, frozenset({match.group(3)})))
    return tuple(requirements)


@dataclass(frozen=True)
class Selector:
    """A parsed ``labelSelector`` plus ``fieldSelector``; the empty selector matches everything."""

    labels: tuple[Requirement, ...] = ()
    fields: tuple[Requirement, ...] = ()

    @classmethod
    def parse(cls, label_selector: str | None, field_selector: str | None) -> Selector:
        return cls(parse_label_selector(label_selector), parse_field_selector(field_selector))

    def matches(self, obj: Mapping[str, Any]) -> bool:
        metadata = obj.get("metadata") or {}
        if self.labels:
            labels = metadata.get("labels") or {}
            if not all(r.matches(labels) for r in self.labels):
                return False
        if self.fields:
            fields = {
                "metadata.name": metadata.get("name", ""),
                "metadata.namespace": metadata.get("namespace", ""),
            }
            if not all(r.matches(fields) for r in self.fields):
                return False
        return True
