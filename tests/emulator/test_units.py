"""The emulator's pure parts: path and verb parsing, selectors, patches and the structural schema."""

from __future__ import annotations

import doctest
from typing import Any

import pytest

from modelops.sandbox.apiserver import (
    ApiPath,
    Selector,
    SelectorError,
    StructuralSchema,
    guess_verb,
    merge_patch,
    parse_api_path,
    patching,
    paths,
    schema,
    selectors,
    strategic_merge_patch,
)
from modelops.sandbox.apiserver.patching import PatchError, UnsupportedPatchType, apply_patch


@pytest.mark.parametrize("module", [paths, patching, schema, selectors])
def test_docstring_examples(module):
    assert doctest.testmod(module).failed == 0


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/api/v1/namespaces", ApiPath("", "v1", "namespaces")),
        ("/api/v1/namespaces/ns1", ApiPath("", "v1", "namespaces", None, "ns1")),
        ("/api/v1/namespaces/ns1/status", ApiPath("", "v1", "namespaces", None, "ns1", "status")),
        ("/api/v1/namespaces/ns1/configmaps", ApiPath("", "v1", "configmaps", "ns1")),
        ("/api/v1/namespaces/ns1/configmaps/c", ApiPath("", "v1", "configmaps", "ns1", "c")),
        ("/apis/apps/v1/deployments", ApiPath("apps", "v1", "deployments")),
        ("/apis/a.io/v1/namespaces/n/things/t/status", ApiPath("a.io", "v1", "things", "n", "t", "status")),
        ("/apis/a.io/v1", ApiPath("a.io", "v1")),
        ("/apis/a.io", ApiPath("a.io", "")),
        ("/version", None),
        ("/apis", None),
    ],
)
def test_paths_parse_like_the_apiserver_routes_them(path, expected):
    assert parse_api_path(path) == expected


@pytest.mark.parametrize(
    ("method", "path", "query", "verb"),
    [
        ("GET", "/api/v1/pods", {}, "list"),
        ("GET", "/api/v1/pods", {"watch": "true"}, "watch"),
        ("GET", "/api/v1/namespaces/n/pods/p", {}, "get"),
        ("POST", "/api/v1/namespaces/n/pods", {}, "create"),
        ("PUT", "/api/v1/namespaces/n/pods/p", {}, "update"),
        ("PATCH", "/api/v1/namespaces/n/pods/p/status", {}, "patch"),
        ("DELETE", "/api/v1/namespaces/n/pods/p", {}, "delete"),
        ("DELETE", "/api/v1/namespaces/n/pods", {}, "deletecollection"),
        ("GET", "/api/v1", {}, None),
    ],
)
def test_verbs_are_the_apiservers(method, path, query, verb):
    assert guess_verb(method, parse_api_path(path), query) == verb


@pytest.mark.parametrize("text", ["a in (x", "a notin x", "=x", "a b c"])
def test_malformed_label_selectors_are_rejected(text):
    with pytest.raises(SelectorError):
        Selector.parse(text, None)


def test_selector_matches_labels_and_fields():
    obj = {"metadata": {"name": "n", "namespace": "ns", "labels": {"app": "web", "tier": "front"}}}
    assert Selector.parse("app=web,tier in (front,back),!legacy", "metadata.name=n").matches(obj)
    assert not Selector.parse("app=web", "metadata.namespace!=ns").matches(obj)
    assert not Selector.parse("tier notin (front)", None).matches(obj)
    assert Selector().matches({"metadata": {}})


def test_merge_patch_follows_rfc_7386():
    assert merge_patch({"a": {"b": 1, "c": 2}, "d": [1]}, {"a": {"b": None}, "d": [2], "e": {"f": None}}) == {
        "a": {"c": 2},
        "d": [2],
        "e": {},
    }


def test_strategic_merge_patch_directives():
    target = {"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "1"}], "keep": 1, "drop": 2}
    patch: dict[str, Any] = {"containers": [{"name": "a", "$patch": "delete"}, {"name": "c", "image": "3"}]}
    result = strategic_merge_patch(target, patch)
    assert [c["name"] for c in result["containers"]] == ["b", "c"]
    assert strategic_merge_patch(target, {"$retainKeys": ["keep"], "keep": 5}) == {"keep": 5}
    assert strategic_merge_patch({"m": {"x": 1}}, {"m": {"$patch": "replace", "y": 2}}) == {"m": {"y": 2}}
    assert strategic_merge_patch({"f": ["a", "b"]}, {"$deleteFromPrimitiveList/f": ["a"]}) == {"f": ["b"]}


def test_json_patch_failures_and_unknown_patch_types():
    with pytest.raises(PatchError):
        apply_patch({"a": 1}, [{"op": "test", "path": "/a", "value": 2}], "application/json-patch+json")
    with pytest.raises(PatchError):
        apply_patch({"a": 1}, [{"op": "remove", "path": "/b"}], "application/json-patch+json")
    with pytest.raises(UnsupportedPatchType):
        apply_patch({"a": 1}, {"a": 2}, "application/apply-patch+yaml")
    assert apply_patch({"a": 1}, [{"op": "replace", "path": "/a", "value": 2}], "application/json-patch+json") == {
        "a": 2
    }


SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "pattern": "^[a-z]+$", "maxLength": 5},
                "size": {"type": "integer", "minimum": 1, "default": 3},
                "ratio": {"type": "number", "exclusiveMinimum": True, "minimum": 0},
                "mode": {"type": "string", "enum": ["a", "b"]},
                "port": {"x-kubernetes-int-or-string": True},
                "note": {"type": "string", "nullable": True},
                "items": {"type": "array", "maxItems": 1, "items": {"type": "object", "properties": {"k": {}}}},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "map": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        }
    },
}


def process(spec: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    obj = {"apiVersion": "x/v1", "kind": "X", "metadata": {"name": "x"}, "spec": spec}
    causes = StructuralSchema(SCHEMA).process(obj)
    return obj, {c.field: c.message for c in causes}


def test_schema_prunes_defaults_and_keeps_preserved_fields():
    obj, causes = process({"name": "ok", "extra": 1, "free": {"any": {"thing": 1}}, "items": [{"k": 1, "z": 2}]})
    assert causes == {}
    assert obj["spec"] == {"name": "ok", "size": 3, "free": {"any": {"thing": 1}}, "items": [{"k": 1}]}


def test_schema_null_in_a_non_nullable_field_is_dropped_and_defaulted():
    obj, causes = process({"name": "ok", "size": None, "note": None})
    assert causes == {}
    assert (obj["spec"]["size"], obj["spec"]["note"]) == (3, None)


@pytest.mark.parametrize(
    ("spec", "field", "message"),
    [
        ({}, "spec.name", "Required value"),
        ({"name": "UP"}, "spec.name", "Invalid value: \"UP\": spec.name in body should match '^[a-z]+$'"),
        ({"name": "abcdef"}, "spec.name", "Too long: may not be more than 5 bytes"),
        (
            {"name": "a", "size": 0},
            "spec.size",
            "Invalid value: 0: spec.size in body should be greater than or equal to 1",
        ),
        ({"name": "a", "ratio": 0}, "spec.ratio", "Invalid value: 0: spec.ratio in body should be greater than 0"),
        ({"name": "a", "mode": "c"}, "spec.mode", 'Unsupported value: "c": supported values: "a", "b"'),
        (
            {"name": "a", "size": "x"},
            "spec.size",
            'Invalid value: "string": spec.size in body must be of type integer: "string"',
        ),
        ({"name": "a", "items": [{}, {}]}, "spec.items", "Too many: 2: must have at most 1 items"),
        (
            {"name": "a", "map": {"k": 1}},
            "spec.map.k",
            'Invalid value: "number": spec.map.k in body must be of type string: "number"',
        ),
    ],
)
def test_schema_errors_read_like_the_apiservers(spec, field, message):
    _, causes = process(spec)
    assert causes[field] == message


def test_schema_int_or_string_accepts_both():
    assert process({"name": "a", "port": 80})[1] == {}
    assert process({"name": "a", "port": "http"})[1] == {}
    assert "spec.port" in process({"name": "a", "port": 1.5})[1]


def test_cel_rules_with_kubernetes_list_functions():
    pytest.importorskip("celpy")
    from modelops.sandbox.apiserver.cel import check_rules

    rules = {
        "type": "array",
        "items": {"type": "object", "properties": {"w": {"type": "number"}}},
        "x-kubernetes-validations": [
            {"rule": "self.map(s, s.w).isSorted()", "message": "sorted"},
            {"rule": "self.map(s, s.w).sum() <= 10.0", "message": "small", "fieldPath": ".total"},
            {"rule": "self.size() == oldSelf.size()", "message": "transition rules are skipped"},
        ],
    }
    assert check_rules([{"w": 1}, {"w": 2}], rules, "spec.l") == []
    assert check_rules([{"w": 9}, {"w": 3}], rules, "spec.l") == [
        ("spec.l", "FieldValueInvalid", 'Invalid value: "array": sorted'),
        ("spec.l.total", "FieldValueInvalid", 'Invalid value: "array": small'),
    ]
