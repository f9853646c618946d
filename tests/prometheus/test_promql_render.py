"""Query templates: values are escaped so that they can never change the query's shape."""

from __future__ import annotations

import doctest
import re
from pathlib import Path

import httpx
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelops.api.retirement import DEFAULT_ZERO_TRAFFIC_QUERY
from modelops.core import promql
from modelops.core.promql import TemplateError, is_duration, placeholders, render
from modelops.sandbox.prometheus import PrometheusServer
from plugins.prometheus import Exporter, wait_for_value

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
VALUES = {"namespace": "ml", "model": "iris", "version": "v1", "interval": "5m"}

# ------------------------------------------------------------------------------------ a PromQL string reader
# Written from the PromQL lexer (promql/parser/lex.go, lexEscape) and Go's strconv.Unquote, independently of the
# renderer: it finds where a quoted string ends and what value it stands for.

_SIMPLE = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\"}


def read_string(text: str, start: int) -> tuple[str, int]:
    """The value of the PromQL string whose opening quote is at ``start``, and the index after its closing quote."""
    quote = text[start]
    out: list[str] = []
    i = start + 1
    while True:
        char = text[i]
        if char == quote:
            return "".join(out), i + 1
        if char == "\n":
            raise ValueError("newline in string")
        if char != "\\":
            out.append(char)
            i += 1
            continue
        esc = text[i + 1]
        if esc in _SIMPLE:
            out.append(_SIMPLE[esc])
            i += 2
        elif esc == quote:
            out.append(quote)
            i += 2
        elif esc in "01234567":
            out.append(chr(int(text[i + 1 : i + 4], 8)))
            i += 4
        elif esc in "xuU":
            width = {"x": 2, "u": 4, "U": 8}[esc]
            out.append(chr(int(text[i + 2 : i + 2 + width], 16)))
            i += 2 + width
        else:
            raise ValueError(f"unknown escape \\{esc}")


def unquote_meta(regex: str) -> str:
    """Undo RE2 QuoteMeta: a backslash makes the next character literal."""
    return re.sub(r"\\(.)", r"\1", regex, flags=re.DOTALL)


# ------------------------------------------------------------------------------------------------ rendering


def test_doctests() -> None:
    assert doctest.testmod(promql).failed == 0


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ('up{namespace="{{ namespace }}"}', 'up{namespace="ml"}'),
        ('up{model="{{model}}",version="{{  version  }}"}', 'up{model="iris",version="v1"}'),
        ("rate(x[{{ interval }}])", "rate(x[5m])"),
        ('rate(x{a="{{ model }}"}[{{interval}}:{{ interval }}])', 'rate(x{a="iris"}[5m:5m])'),
        ("up{a='{{ model }}'}", "up{a='iris'}"),
        ('up{a=~"{{ version }}|v2"}', 'up{a=~"v1|v2"}'),
        ('up{a="pre-{{ model }}-post"}', 'up{a="pre-iris-post"}'),
        ('up{a="\\"{{ model }}\\""}', 'up{a="\\"iris\\""}'),  # escaped quotes before the placeholder
        ("sum(up) # no placeholder in this comment\n", "sum(up) # no placeholder in this comment\n"),
        ("up", "up"),
    ],
)
def test_render(template: str, expected: str) -> None:
    assert render(template, VALUES) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('a"b', 'up{a="a\\"b"}'),
        ("a\\b", 'up{a="a\\\\b"}'),
        ("a\nb", 'up{a="a\\nb"}'),
        ("a\x00b", 'up{a="a\\x00b"}'),
        ('"} or vector(1) or up{a="', 'up{a="\\"} or vector(1) or up{a=\\""}'),
    ],
)
def test_values_in_equality_matchers_are_string_escaped(value: str, expected: str) -> None:
    assert render('up{a="{{ model }}"}', {**VALUES, "model": value}) == expected


def test_single_quoted_strings_escape_the_single_quote() -> None:
    assert render("up{a='{{ model }}'}", {**VALUES, "model": 'it\'s "x"'}) == "up{a='it\\'s \"x\"'}"


@pytest.mark.parametrize("operator", ["=~", "!~", "=~ ", " !~  "])
def test_values_in_regex_matchers_have_metacharacters_escaped(operator: str) -> None:
    rendered = render(f'up{{a{operator}"{{{{ version }}}}"}}', {**VALUES, "version": "v1.2+(x)|y\\"})
    assert rendered.endswith('"v1\\\\.2\\\\+\\\\(x\\\\)\\\\|y\\\\\\\\"}')


def test_equality_after_a_regex_matcher_is_not_regex_escaped() -> None:
    assert render('up{a=~"x.*", b="{{ version }}"}', {**VALUES, "version": "1.2"}) == 'up{a=~"x.*", b="1.2"}'


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ('up{a="{{ modle }}"}', "unknown placeholder {{ modle }}"),
        ('up{a="{{ model.name }}"}', "unknown placeholder {{ model.name }}"),
        ("up{a={{ model }}}", "{{ model }} at offset 5 must be inside a quoted label value"),
        ("up offset {{ interval }}", "{{ interval }} at offset 10 must be inside a quoted label value"),
        ("sum by ({{ namespace }}) (up)", "{{ namespace }}"),
        ("rate(x[{{ model }}])", "{{ model }}"),
        ("up{a=`{{ model }}`}", "backtick"),
        ("up # {{ model }}\n", "comment"),
        ('up{a="}"} # "{{ model }}"\n', "comment"),
    ],
)
def test_template_errors_name_the_placeholder(template: str, message: str) -> None:
    with pytest.raises(TemplateError, match=re.escape(message)):
        render(template, VALUES)


def test_a_missing_value_is_an_error() -> None:
    with pytest.raises(TemplateError, match=re.escape("no value for placeholder {{ version }}")):
        render('up{a="{{ version }}"}', {"model": "x"})


@pytest.mark.parametrize("interval", ["5 m", "5m]) or vector(1", "", "0s", "-5m", "5", "1.5m", "5M", "m"])
def test_interval_must_be_a_duration(interval: str) -> None:
    with pytest.raises(TemplateError, match="must be a PromQL duration"):
        render("rate(x[{{ interval }}])", {**VALUES, "interval": interval})


@pytest.mark.parametrize("interval", ["30s", "5m", "1h30m", "7d", "1w", "1y", "250ms", "1h0m0s"])
def test_valid_durations(interval: str) -> None:
    assert is_duration(interval)
    assert render("rate(x[{{ interval }}])", {**VALUES, "interval": interval}) == f"rate(x[{interval}])"


def test_placeholders_lists_names_in_order() -> None:
    assert placeholders('x{a="{{model}}",b="{{ version }}"}[{{ interval }}]') == ["model", "version", "interval"]


# ------------------------------------------------------------------------------------------------ properties


@given(value=st.text())
def test_any_value_reads_back_exactly_from_an_equality_matcher(value: str) -> None:
    rendered = render('up{model="{{ model }}"}', {**VALUES, "model": value})
    parsed, end = read_string(rendered, rendered.index('"'))
    assert parsed == value
    assert rendered[end:] == "}", "the value must not end the string early"


@given(value=st.text(), before=st.sampled_from(["pre", ""]), after=st.sampled_from(["post", ""]))
def test_any_value_reads_back_from_the_middle_of_a_single_quoted_string(value: str, before: str, after: str) -> None:
    rendered = render(f"up{{model='{before}{{{{ model }}}}{after}'}}", {**VALUES, "model": value})
    parsed, end = read_string(rendered, rendered.index("'"))
    assert parsed == before + value + after
    assert rendered[end:] == "}"


@given(value=st.text())
def test_any_value_in_a_regex_matcher_matches_exactly_itself(value: str) -> None:
    rendered = render('up{model=~"{{ model }}"}', {**VALUES, "model": value})
    regex, end = read_string(rendered, rendered.index('"'))
    assert rendered[end:] == "}"
    assert unquote_meta(regex) == value
    assert re.fullmatch(regex, value, flags=re.DOTALL) is not None


# ------------------------------------------------------------------------------------------------ real Prometheus


@pytest.mark.integration
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.text(min_size=1), quote=st.sampled_from(['"', "'"]))
def test_real_prometheus_parses_any_rendered_value_back_exactly(
    prometheus: PrometheusServer, value: str, quote: str
) -> None:
    # absent() answers with the labels of the selector's equality matchers: Prometheus' own parser reads it back.
    template = f"absent(modelops_no_such_metric{{model={quote}{{{{ model }}}}{quote}}})"
    rendered = render(template, {**VALUES, "model": value})
    body = httpx.post(f"{prometheus.url}/api/v1/query", data={"query": rendered}).json()
    assert body["status"] == "success", body
    assert body["data"]["result"][0]["metric"] == {"model": value}


@pytest.mark.integration
def test_real_prometheus_selects_exactly_the_series_with_an_awkward_label_value(
    prometheus: PrometheusServer, exporter: Exporter
) -> None:
    name = exporter.unique("awkward")
    gauge = exporter.gauge(name, labelnames=["model"])
    awkward = ['say "hi"\\now', "v1.2", "v1x2", "a|b", ".*", "(x)+[y]{2}^$"]
    for i, value in enumerate(awkward):
        gauge.labels(value).set(i)
    wait_for_value(prometheus, f"count({name})", len(awkward))

    for operator in ("=", "=~"):
        for i, value in enumerate(awkward):
            query = render(f'{name}{{model{operator}"{{{{ model }}}}"}}', {**VALUES, "model": value})
            result = httpx.post(f"{prometheus.url}/api/v1/query", data={"query": query}).json()["data"]["result"]
            assert [(r["metric"]["model"], float(r["value"][1])) for r in result] == [(value, i)], query

    excluded = render(f'{name}{{model!~"{{{{ model }}}}"}}', {**VALUES, "model": ".*"})
    result = httpx.post(f"{prometheus.url}/api/v1/query", data={"query": excluded}).json()["data"]["result"]
    assert sorted(r["metric"]["model"] for r in result) == sorted(v for v in awkward if v != ".*")


def _templates() -> list[str]:
    """Every PromQL template the project ships: the examples' metric queries and the zero-traffic default."""
    found = [DEFAULT_ZERO_TRAFFIC_QUERY]

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for key, item in node.items():
                if key == "query" and isinstance(item, str):
                    found.append(item)
                else:
                    walk(item)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    for path in sorted(EXAMPLES.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            walk(document)
    return found


@pytest.mark.integration
def test_every_shipped_template_renders_to_a_query_prometheus_accepts(prometheus: PrometheusServer) -> None:
    templates = _templates()
    assert len(templates) > 1
    for template in templates:
        query = render(template, {**VALUES, "version": 'v1.0-"rc"'})
        body = httpx.post(f"{prometheus.url}/api/v1/query", data={"query": query}).json()
        assert body["status"] == "success", (template, body)
