"""Fill a metric's PromQL template with escaped values: a value can never change the shape of the query.

A template names ``{{ namespace }}``, ``{{ model }}``, ``{{ version }}`` and ``{{ interval }}`` (spaces inside the
braces optional). Where a placeholder sits decides how its value is written:

====================================  =======================================================================
where                                 what is written
====================================  =======================================================================
inside ``"..."`` or ``'...'``         the value with ``\\``, the quote and control characters escaped
... after ``=~`` or ``!~``            regex metacharacters escaped first (RE2 ``QuoteMeta``), then as above
``{{ interval }}`` inside ``[...]``   the value, after checking it is a PromQL duration (``5m``, ``1h30m``)
anywhere else                         an error: a value there would be PromQL code, not a label value
====================================  =======================================================================

>>> render('up{namespace="{{ namespace }}", version=~"{{version}}"}[{{ interval }}]',
...        {"namespace": 'a"b', "version": "v1.2", "interval": "5m"})
'up{namespace="a\\\\"b", version=~"v1\\\\\\\\.2"}[5m]'

A purely computational module: no I/O, no clock.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from enum import Enum

__all__ = [
    "PLACEHOLDERS",
    "TemplateError",
    "escape_regex",
    "escape_string",
    "is_duration",
    "placeholders",
    "render",
]

#: The names a template may use.
PLACEHOLDERS = frozenset({"namespace", "model", "version", "interval"})

#: ``{{ anything }}``: the inside is checked against PLACEHOLDERS, so a typo is an error, not raw text.
_PLACEHOLDER_RE = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
#: A PromQL duration (Prometheus 2.x ``model.ParseDuration``): units in decreasing order, each at most once.
_DURATION_RE = re.compile(r"^(?:[0-9]+y)?(?:[0-9]+w)?(?:[0-9]+d)?(?:[0-9]+h)?(?:[0-9]+m)?(?:[0-9]+s)?(?:[0-9]+ms)?$")
#: Characters RE2's QuoteMeta (Go ``regexp.QuoteMeta``) escapes.
_REGEX_META = frozenset(r"\.+*?()|[]{}^$")
_NAMED_ESCAPES = {"\a": r"\a", "\b": r"\b", "\f": r"\f", "\n": r"\n", "\r": r"\r", "\t": r"\t", "\v": r"\v"}


class TemplateError(ValueError):
    """The template cannot be rendered safely (unknown placeholder, misplaced placeholder, bad value)."""


class _Where(Enum):
    CODE = "code"
    DOUBLE = '"'
    SINGLE = "'"
    RAW = "`"
    COMMENT = "#"


def is_duration(text: str) -> bool:
    """Whether ``text`` is a non-zero PromQL duration.

    >>> [is_duration(d) for d in ("5m", "1h30m", "90s", "250ms", "0s", "5 m", "1m; x", "")]
    [True, True, True, True, False, False, False, False]
    """
    return bool(text) and _DURATION_RE.match(text) is not None and any(c in "123456789" for c in text)


def escape_string(value: str, quote: str = '"') -> str:
    """Escape ``value`` for the inside of a PromQL string quoted with ``quote`` (Go string-literal rules).

    >>> escape_string('a"b\\\\c\\n')
    'a\\\\"b\\\\\\\\c\\\\n'
    """
    out = []
    for char in value:
        if char == "\\" or char == quote:
            out.append("\\" + char)
        elif char in _NAMED_ESCAPES:
            out.append(_NAMED_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(char)
    return "".join(out)


def escape_regex(value: str) -> str:
    r"""Escape RE2 metacharacters so the regex matches exactly ``value`` (Go ``regexp.QuoteMeta``).

    >>> escape_regex("v1.2|x")
    'v1\\.2\\|x'
    """
    return "".join("\\" + c if c in _REGEX_META else c for c in value)


def placeholders(template: str) -> list[str]:
    """The placeholder names a template uses, in order (stripped of spaces).

    >>> placeholders('x{a="{{ model }}"}[{{interval}}]')
    ['model', 'interval']
    """
    return [m.group(1).strip() for m in _PLACEHOLDER_RE.finditer(template)]


def render(template: str, values: Mapping[str, str]) -> str:
    """The template with each placeholder replaced by its escaped value (see the module docstring for the rules).

    Raises TemplateError naming the placeholder when it is unknown, has no value, stands outside a string (other
    than ``interval`` in a range selector), sits in a backtick string (which has no escapes), or when ``interval``
    is not a PromQL duration.

    Memoized: an object's queries are rendered with the same values at every check (a few entries per object:
    the cache holds those of several thousand objects).
    """
    return _render(template, tuple(sorted(values.items())))


@functools.lru_cache(maxsize=32768)
def _render(template: str, items: tuple[tuple[str, str], ...]) -> str:
    values = dict(items)
    out: list[str] = []
    where = _Where.CODE
    regex_string = False  # the current string follows =~ or !~
    brackets = 0  # depth of [...] in code
    i = 0
    n = len(template)
    while i < n:
        char = template[i]
        if char == "{" and template.startswith("{{", i):
            match = _PLACEHOLDER_RE.match(template, i)
            if match is not None:
                out.append(_fill(match.group(1).strip(), values, where, regex_string, brackets, i))
                i = match.end()
                continue
        out.append(char)
        i += 1
        if where is _Where.CODE:
            if char in "\"'`":
                where = _Where(char)
                regex_string = _follows_regex_operator(template, i - 1)
            elif char == "#":
                where = _Where.COMMENT
            elif char == "[":
                brackets += 1
            elif char == "]":
                brackets = max(0, brackets - 1)
        elif where is _Where.COMMENT:
            if char == "\n":
                where = _Where.CODE
        elif where is not _Where.RAW and char == "\\" and i < n:
            out.append(template[i])  # an escaped character never ends the string
            i += 1
        elif char == where.value:
            where = _Where.CODE
    return "".join(out)


def _fill(name: str, values: Mapping[str, str], where: _Where, regex: bool, brackets: int, pos: int) -> str:
    if name not in PLACEHOLDERS:
        raise TemplateError(f"unknown placeholder {{{{ {name} }}}} at offset {pos}; known: {sorted(PLACEHOLDERS)}")
    if name not in values:
        raise TemplateError(f"no value for placeholder {{{{ {name} }}}}")
    value = values[name]
    if name == "interval" and not is_duration(value):
        raise TemplateError(f"{{{{ interval }}}} must be a PromQL duration such as 30s, 5m or 1h30m, got {value!r}")
    if where is _Where.CODE:
        if name == "interval" and brackets > 0:
            return value
        raise TemplateError(
            f"placeholder {{{{ {name} }}}} at offset {pos} must be inside a quoted label value"
            + (" (or, for interval, a range selector [...])" if name == "interval" else "")
        )
    if where is _Where.COMMENT:
        raise TemplateError(f"placeholder {{{{ {name} }}}} at offset {pos} is inside a comment")
    if where is _Where.RAW:
        raise TemplateError(
            f"placeholder {{{{ {name} }}}} at offset {pos} is inside a `backtick` string, which cannot escape "
            "a value: use double quotes"
        )
    return escape_string(escape_regex(value) if regex else value, where.value)


def _follows_regex_operator(template: str, quote_pos: int) -> bool:
    """Whether the string opening at ``quote_pos`` is the right side of ``=~`` or ``!~`` (spaces allowed)."""
    before = template[:quote_pos].rstrip()
    return before.endswith(("=~", "!~"))
