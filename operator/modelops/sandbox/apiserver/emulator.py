"""kmock's ``KubernetesEmulator`` extended with the apiserver semantics the operator relies on.

What is kept from kmock: the HTTP handler and its reaction DSL (``emu['get /api/v1/pods'] << 500`` still injects
faults ahead of the emulated behaviour), request parsing into ``kmock.Request``, the discovery documents and the
bundled built-in resources, ``emu.resources`` and ``emu.objects`` (with each object's history of versions).

What is replaced, and why: kmock's emulator changes objects in ``_handle`` *before* any reaction is consulted,
with a plain dict merge, and without resourceVersion, generation, validation or preconditions; its list and
watch scan every stored object and every watch replays all objects. None of that can be extended from the
outside (the helpers are name-mangled), so the object store here is its own: per-resource indexes of live
objects, one global monotonic resourceVersion, and a bounded per-resource event log that watches resume from.
Writes happen in the fallback handlers, so an injected reaction that answers an error also means "not written".
kmock's reaction matching (``request in view`` replays every past request through each view) is quadratic in the
number of requests; ``_handle`` checks plain filter chains against the current request only.

Also served, for kubectl: an OpenAPI v3 index that makes kubectl leave validation to the server
(``fieldValidation=Strict``: unknown fields are a 400), and Tables with the CRDs' printer columns.

Not emulated: controllers (no ReplicaSets, Pods or Deployment status), namespace existence and namespace deletion
cascade, server-side apply (415), protobuf bodies (415), Foreground propagation (treated as Background),
deletecollection, admission webhooks, RBAC, and CEL transition rules (``oldSelf``). ``metadata.generation`` counts
changes to anything but metadata and status for every kind (the custom-resource rule).
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import copy
import datetime
import functools
import gzip
import importlib.resources
import json
import math
import random
import re
import traceback
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import aiohttp.web
import attrs
import kmock
import yaml
from kmock._internal import dsl, rendering  # kmock's reaction views and its Request/Response types

from .patching import PatchError, UnsupportedPatchType, apply_patch
from .paths import ApiPath, guess_verb, parse_api_path
from .schema import Cause, StructuralSchema, format_value
from .selectors import Selector, SelectorError
from .tables import table, wants_table

__all__ = ["ApiServerEmulator", "RequestRecord"]

CRD_RESOURCE = kmock.resource("apiextensions.k8s.io", "v1", "customresourcedefinitions")
NAMESPACES = kmock.resource("", "v1", "namespaces")
_ALL_VERBS = frozenset({"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"})
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
#: metadata the server owns: clients cannot set or change these on create/update
_SERVER_OWNED_META = (
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
)
_VERB_TO_ACTION = {
    "get": kmock.action.FETCH,
    "list": kmock.action.LIST,
    "watch": kmock.action.WATCH,
    "create": kmock.action.CREATE,
    "update": kmock.action.UPDATE,
    "patch": kmock.action.UPDATE,
    "delete": kmock.action.DELETE,
}
_current_record: contextvars.ContextVar[RequestRecord | None] = contextvars.ContextVar("record", default=None)
#: the request's ``fieldValidation`` (Strict, Warn, Ignore) and the warnings it produced
_field_validation: contextvars.ContextVar[str] = contextvars.ContextVar("field_validation", default="Warn")
_warnings: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("warnings", default=None)

Key = tuple[str | None, str]  # (namespace, name) within one resource


@dataclass
class RequestRecord:
    """One served request, for tests and benchmarks that count or inspect API calls.

    ``verb`` is the apiserver's verb (get, list, watch, create, update, patch, delete, deletecollection) or None
    for discovery and other non-resource paths; ``status`` is None while a watch is still streaming.
    """

    method: str
    path: str
    query: dict[str, str]
    verb: str | None
    group: str | None
    version: str | None
    resource: str | None
    subresource: str | None
    namespace: str | None
    name: str | None
    status: int | None = None
    #: the client's User-Agent: tells the operator's requests from the tests' own (RBAC test, benchmarks)
    user_agent: str = ""


@dataclass(frozen=True)
class _Event:
    rv: int
    type: str
    obj: dict[str, Any]
    previous: dict[str, Any] | None = None


@dataclass
class _Watchers:
    """A resource's bounded event log and the wake-up signal for its watches."""

    events: collections.deque[_Event] = field(default_factory=collections.deque)
    evicted_rv: int = 0  # events up to this resourceVersion are gone: older watches get 410 Gone
    changed: asyncio.Event = field(default_factory=asyncio.Event)


@functools.cache
def _bundled_resources() -> bytes:
    """kmock's bundled discovery data of the built-in resources (a recent k3s, CRDs stripped)."""
    return gzip.decompress(importlib.resources.files("kmock._internal").joinpath("resources.json.gz").read_bytes())


_PROTOBUF = object()  # marks a protobuf request body


def _crd_status(crd: dict[str, Any]) -> dict[str, Any]:
    now = _now()
    conditions = [
        {"type": kind, "status": "True", "reason": reason, "message": message, "lastTransitionTime": now}
        for kind, reason, message in (
            ("NamesAccepted", "NoConflicts", "no conflicts found"),
            ("Established", "InitialNamesAccepted", "the initial names have been accepted"),
        )
    ]
    versions = [v["name"] for v in crd["spec"].get("versions") or [] if v.get("storage")]
    return {"acceptedNames": crd["spec"]["names"], "conditions": conditions, "storedVersions": versions}


def _now() -> str:
    return datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _api_version(res: kmock.resource) -> str:
    return f"{res.group}/{res.version}" if res.group else str(res.version)


def _qualified(res: kmock.resource) -> str:
    """``modeldeployments.modelops.io`` / ``configmaps``: how apiserver messages name a resource."""
    return f"{res.plural}.{res.group}" if res.group else str(res.plural)


def _error(status: int, reason: str, message: str, details: dict[str, Any] | None = None) -> kmock.KubernetesError:
    return kmock.KubernetesError(status=status, reason=reason, message=message, details=details)


def _spec_view(obj: dict[str, Any]) -> dict[str, Any]:
    """What counts for ``metadata.generation``: everything but metadata and status (as for custom resources)."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


@attrs.define(kw_only=True)
class ApiServerEmulator(kmock.KubernetesEmulator):
    """An in-memory Kubernetes API with the apiserver behaviour the operator depends on.

    Run it with :func:`modelops.sandbox.apiserver.serve` (async) or :class:`ApiServerThread` (sync).
    ``history_limit`` bounds the per-object history kept in ``emu.objects`` (None: all versions),
    ``watch_cache_size`` bounds each resource's event log (older resumptions get 410 Gone), and
    ``bookmark_interval`` is how often an idle watch that asked for bookmarks gets one.
    """

    history_limit: int | None = None
    watch_cache_size: int = 10_000
    bookmark_interval: float = 5.0
    log: list[RequestRecord] = attrs.field(factory=list, init=False)

    _rv: int = attrs.field(default=0, init=False)
    _schemas: dict[kmock.resource, StructuralSchema] = attrs.field(factory=dict, init=False)
    _printer_columns: dict[kmock.resource, list[dict[str, Any]]] = attrs.field(factory=dict, init=False)
    _live: dict[kmock.resource, dict[Key, dict[str, Any]]] = attrs.field(
        factory=lambda: collections.defaultdict(dict), init=False
    )
    _uids: dict[str, tuple[kmock.resource, Key]] = attrs.field(factory=dict, init=False)
    _dependents: dict[str, set[tuple[kmock.resource, Key]]] = attrs.field(
        factory=lambda: collections.defaultdict(set), init=False
    )
    _orphaning: set[str] = attrs.field(factory=set, init=False)
    _watchers: dict[kmock.resource, _Watchers] = attrs.field(
        factory=lambda: collections.defaultdict(_Watchers), init=False
    )
    _closed: bool = attrs.field(default=False, init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.fallback["get /openapi/v3"] << self._serve_openapi_root
        self.fallback["get /version/"] << self._serve_server_version  # the kubernetes client asks with a slash
        self.fallback["get", re.compile(r"/openapi/v3/apis?/.+")] << self._serve_openapi_group_version
        self.resources.load_data(_bundled_resources())  # kmock's load_bundled() uses a deprecated importlib API
        for name in ("default", "kube-system", "kube-public"):
            self.create_object({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})

    # ------------------------------------------------------------------ public, synchronous API
    # These run in the event loop's thread (or before serving): see ApiServerThread.call() for other threads.

    @property
    def resource_version(self) -> int:
        """The latest resourceVersion handed out (every write takes the next integer)."""
        return self._rv

    def register_crd(self, crd: dict[str, Any]) -> list[kmock.resource]:
        """Serve the custom resources a CustomResourceDefinition declares: discovery, storage, schema."""
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        registered: list[kmock.resource] = []
        for version in spec.get("versions") or []:
            if not version.get("served", True):
                continue
            res = kmock.resource(spec["group"], version["name"], names["plural"])
            subresources = {"status"} if "status" in (version.get("subresources") or {}) else set()
            self.resources[res] = kmock.ResourceInfo(
                kind=names["kind"],
                singular=names.get("singular") or names["kind"].lower(),
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                shortnames=names.get("shortNames") or [],
                categories=names.get("categories") or [],
                subresources=subresources,
                verbs=_ALL_VERBS,
            )
            schema = (version.get("schema") or {}).get("openAPIV3Schema")
            if schema:
                self._schemas[res] = StructuralSchema(schema)
            self._printer_columns[res] = list(version.get("additionalPrinterColumns") or [])
            registered.append(res)
        return registered

    def load_crds(self, *paths: str | Path) -> list[str]:
        """Create the CustomResourceDefinitions found in YAML files (or directories of them); return their names."""
        names: list[str] = []
        for path in paths:
            path = Path(path)
            files = sorted(path.glob("*.yaml")) + sorted(path.glob("*.yml")) if path.is_dir() else [path]
            for file in files:
                for doc in yaml.safe_load_all(file.read_text(encoding="utf-8")):
                    if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
                        self.apply_object(doc)
                        names.append(doc["metadata"]["name"])
        return names

    def apply_object(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Create the object, or replace the live one's content with it (as ``kubectl apply`` would)."""
        res = self._resource_of(obj)
        namespace = (obj.get("metadata") or {}).get("namespace") if self._info(res).namespaced else None
        if not self._info(res).namespaced or namespace:
            key: Key = (namespace, obj["metadata"]["name"])
        else:
            key = ("default", obj["metadata"]["name"])
        old = self._live[res].get(key)
        if old is None:
            return self._create(res, key[0], obj)
        return self._commit(res, key, old, self._prepare_update(res, old, obj, None))

    def create_object(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Create an object as a POST would (stamped, validated, announced to watches)."""
        res = self._resource_of(obj)
        return self._create(res, (obj.get("metadata") or {}).get("namespace"), obj)

    def get_object(self, resource: str | kmock.resource, namespace: str | None, name: str) -> dict[str, Any] | None:
        """The live object (a copy), or None; ``resource`` as kmock spells it, e.g. ``'v1/configmaps'``."""
        res = resource if isinstance(resource, kmock.resource) else kmock.resource(resource)
        found = self._live.get(res, {}).get((namespace, name))
        return copy.deepcopy(found) if found is not None else None

    def list_objects(self, resource: str | kmock.resource, namespace: str | None = None) -> list[dict[str, Any]]:
        """Live objects of a resource (copies), optionally of one namespace."""
        res = resource if isinstance(resource, kmock.resource) else kmock.resource(resource)
        live = self._live.get(res, {})
        return [copy.deepcopy(o) for (ns, _), o in sorted(live.items()) if namespace is None or ns == namespace]

    def close_watches(self) -> None:
        """End every open watch stream (before shutting the server down, so that it does not wait for them)."""
        self._closed = True
        for watchers in self._watchers.values():
            watchers.changed.set()

    # ------------------------------------------------------------------ request entry point

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        """Parse with the emulator's own path parser (see paths.py), log, handle, and record the status."""
        body = await raw_request.read()
        query = dict(raw_request.query)
        api_path = parse_api_path(raw_request.path)
        verb = guess_verb(raw_request.method, api_path, query)
        record = RequestRecord(
            method=raw_request.method,
            path=raw_request.path,
            query=query,
            verb=verb,
            group=api_path.group if api_path else None,
            version=api_path.version if api_path else None,
            resource=api_path.resource if api_path else None,
            subresource=api_path.subresource if api_path else None,
            namespace=api_path.namespace if api_path else None,
            name=api_path.name if api_path else None,
            user_agent=raw_request.headers.get("User-Agent", ""),
        )
        self.log.append(record)
        _current_record.set(record)
        _field_validation.set(query.get("fieldValidation") or "Warn")
        _warnings.set([])
        raw_response: aiohttp.web.StreamResponse | None = None
        try:
            request = self._make_request(raw_request, body, query, api_path, verb)
            self._requests.append(request)
            try:
                response = await self._handle(request)
            except rendering.StreamingError as exc:
                raw_response = exc.args[0]
                raise (exc.__cause__ or exc) from None
        except kmock.KubernetesError as exc:  # an API answer (404, 409, 422...), not a failure of the emulator
            if raw_response is not None and raw_response.prepared:
                await self._stream_error(exc, raw_response)
                return raw_response
            response = await self._render_error(exc)
        except Exception as exc:
            if self._errors:
                self._errors[-1].append(exc)
            if raw_response is not None and raw_response.prepared:
                await self._stream_error(exc, raw_response)
                return raw_response
            response = await self._render_error(exc)
        record.status = response.status
        return response

    async def _handle(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        """Serve by the reactions (kmock's DSL, fallbacks last), as ``RawHandler._handle`` does, but:

        - without ``KubernetesEmulator._handle``, which writes objects before any reaction runs, with plain dict
          merges; here every write happens in the fallback handlers below;
        - without asking each reaction's view ``request in view``, which replays every past request through the
          view's filters (quadratic in the number of requests: 1,000 objects took minutes); chains of plain
          filters and priorities are checked against this request alone, others the kmock way.
        """
        ranked = sorted(
            ((tuple(-p for p in payload.priorities), index, payload) for index, payload in enumerate(self._payloads)),
            key=lambda item: (item[0] + (0,) * (8 - len(item[0])), item[1]),
        )
        for _, _, payload in ranked:
            if payload._disabled.is_set():
                continue
            seen = self._sees(payload._source, request)
            if seen is None:
                seen = request in payload._source
            if not seen:
                continue
            try:
                return await payload(request)
            except rendering.ReactionMismatchError:
                payload._disabled.set()
            except NotImplementedError:
                pass
        raise _error(404, "NotFound", "the server could not find the requested resource")

    def _sees(self, view: Any, request: rendering.Request) -> bool | None:
        """Whether ``request`` passes a chain of filters and priorities ending at this handler; None when the
        chain holds views that depend on request history (slices, groups, exclusions)."""
        while True:
            if isinstance(view, dsl.Filter):
                if not view.criteria(request):
                    return False
                view = view._source
            elif type(view) in (dsl.Priority, dsl.Chained):
                view = view._source
            elif isinstance(view, dsl.Root):
                return view is self
            else:
                return None

    def _make_request(
        self,
        raw_request: aiohttp.web.BaseRequest,
        body: bytes,
        query: dict[str, str],
        api_path: ApiPath | None,
        verb: str | None,
    ) -> rendering.Request:
        text = body.decode("utf-8", errors="replace")
        data: Any = None
        if body and "protobuf" in raw_request.headers.get("Content-Type", ""):
            data = _PROTOBUF  # kubectl's typed commands (e.g. create namespace) send protobuf: not understood
        elif body:
            try:
                data = json.loads(text)
            except ValueError:
                try:
                    data = yaml.safe_load(text)
                except yaml.YAMLError:
                    data = None
        resource = None
        if api_path is not None:  # discovery documents too: kmock serves them by group and version
            resource = kmock.resource(group=api_path.group, version=api_path.version or None, plural=api_path.resource)
        return rendering.Request(
            id=len(self._requests),
            raw_request=raw_request,
            url=raw_request.url,
            method=raw_request.method,
            params=query,
            headers=dict(raw_request.headers),
            cookies=dict(raw_request.cookies),
            body=body,
            text=text,
            data=data,
            action=_VERB_TO_ACTION.get(verb or ""),
            resource=resource,
            namespace=api_path.namespace if api_path else None,
            name=api_path.name if api_path else None,
            subresource=api_path.subresource if api_path else None,
        )

    async def _render_error(self, exc: Exception) -> aiohttp.web.StreamResponse:
        if isinstance(exc, kmock.KubernetesNotFoundError) and exc.reason != "NotFound":  # kmock's own 404s
            exc = _error(404, "NotFound", "the server could not find the requested resource")
        if isinstance(exc, kmock.KubernetesError):
            status: dict[str, Any] = {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": exc.message or "",
                "reason": exc.reason or "",
                "code": exc.status,
            }
            if exc.details:
                status["details"] = exc.details
            return aiohttp.web.json_response(status, status=exc.status)
        message = "".join(traceback.format_exception(exc))
        status = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure"}
        status |= {"message": message, "reason": "InternalError", "code": 500}
        return aiohttp.web.json_response(status, status=500)

    # ------------------------------------------------------------------ discovery fixes

    async def _serve_version(self, request: rendering.Request) -> rendering.Payload:
        """The core group-version is ``v1``, not kmock's ``/v1`` (kubectl cannot map core kinds otherwise)."""
        doc = cast(dict[str, Any], await super()._serve_version(request))
        if request.resource is not None and not request.resource.group:
            doc["groupVersion"] = request.resource.version
        for entry in doc.get("resources", []):
            if "/" in entry["name"]:  # subresources have no short names or categories of their own
                entry.update(shortNames=[], categories=[], singularName="", verbs=["get", "patch", "update"])
            elif not entry.get("verbs"):
                entry["verbs"] = sorted(_ALL_VERBS)
        return doc

    async def _serve_server_version(self, request: rendering.Request) -> rendering.Payload:
        """A complete version object: the kubernetes client v37 rejects a partial one."""
        return {
            "major": "1",
            "minor": "32",
            "gitVersion": "v1.32.0-modelops-sandbox",
            "gitCommit": "0000000000000000000000000000000000000000",
            "gitTreeState": "clean",
            "buildDate": "2026-01-01T00:00:00Z",
            "goVersion": "go1.23.0",
            "compiler": "gc",
            "platform": "linux/amd64",
        }

    # ------------------------------------------------------------------ OpenAPI v3 (what kubectl needs of it)
    # kubectl apply refuses to run without OpenAPI unless told --validate=false. With a PATCH operation per kind
    # that declares the ``fieldValidation`` parameter, kubectl leaves validation to the server (fieldValidation=
    # Strict) instead of validating client-side; schemas are not published (kubectl falls back to its built-in
    # types for strategic merge patches, and custom resources use merge patches anyway).

    def _group_versions(self) -> dict[str, list[kmock.resource]]:
        groups: dict[str, list[kmock.resource]] = collections.defaultdict(list)
        for res in self.resources:
            prefix = f"apis/{res.group}/{res.version}" if res.group else f"api/{res.version}"
            groups[prefix].append(res)
        return groups

    async def _serve_openapi_root(self, request: rendering.Request) -> rendering.Payload:
        stamp = len(self.resources)
        paths = {gv: {"serverRelativeURL": f"/openapi/v3/{gv}?hash={stamp}"} for gv in self._group_versions()}
        return {"paths": paths}

    async def _serve_openapi_group_version(self, request: rendering.Request) -> rendering.Payload:
        prefix = request.url.path.removeprefix("/openapi/v3/")
        resources = self._group_versions().get(prefix)
        if not resources:
            raise _error(404, "NotFound", "the server could not find the requested resource")
        paths: dict[str, Any] = {}
        for res in resources:
            info = self.resources[res]
            scope = "/namespaces/{namespace}" if info.namespaced else ""
            gvk = {"group": res.group, "version": res.version, "kind": info.kind}
            patch = {
                "x-kubernetes-group-version-kind": gvk,
                "parameters": [{"name": "fieldValidation", "in": "query", "schema": {"type": "string"}}],
                "responses": {"200": {"description": "OK"}},
            }
            paths[f"/{prefix}{scope}/{res.plural}/{{name}}"] = {"patch": patch}
        return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.32.0"}, "paths": paths}

    # ------------------------------------------------------------------ reads

    def _info(self, res: kmock.resource | None) -> kmock.ResourceInfo:
        if res is None or res not in self.resources:
            raise _error(404, "NotFound", "the server could not find the requested resource")
        return self.resources[res]

    def _kind(self, res: kmock.resource) -> str:
        info = self._info(res)
        return info.kind or str(res.plural).capitalize()

    def _resource_of(self, obj: dict[str, Any]) -> kmock.resource:
        api_version, kind = obj.get("apiVersion", ""), obj.get("kind", "")
        group, _, version = api_version.rpartition("/")
        for res in self.resources:
            if res.group == group and res.version == version and self.resources[res].kind == kind:
                return res
        raise _error(404, "NotFound", f"no resource for {api_version} {kind}")

    def _not_found(self, res: kmock.resource, name: str) -> kmock.KubernetesError:
        details = {"name": name, "group": res.group, "kind": res.plural}
        return _error(404, "NotFound", f'{_qualified(res)} "{name}" not found', details)

    def _conflict(self, res: kmock.resource, name: str, why: str) -> kmock.KubernetesError:
        details = {"name": name, "group": res.group, "kind": res.plural}
        return _error(409, "Conflict", f'Operation cannot be fulfilled on {_qualified(res)} "{name}": {why}', details)

    def _invalid(self, res: kmock.resource, name: str, causes: list[Cause]) -> kmock.KubernetesError:
        kind = self._kind(res)
        qualified_kind = f"{kind}.{res.group}" if res.group else kind
        lines = [f"{c.field}: {c.message}" for c in causes]
        summary = lines[0] if len(lines) == 1 else "[" + ", ".join(lines) + "]"
        details: dict[str, Any] = {"name": name, "group": res.group, "kind": kind}
        details["causes"] = [c.as_dict() for c in causes]
        return _error(422, "Invalid", f'{qualified_kind} "{name}" is invalid: {summary}', details)

    def _key(self, request: rendering.Request) -> tuple[kmock.resource, Key]:
        res = request.resource
        info = self._info(res)
        assert res is not None
        assert request.name is not None
        namespace = request.namespace if info.namespaced else None
        return res, (namespace, request.name)

    def _get_live(self, res: kmock.resource, key: Key) -> dict[str, Any]:
        obj = self._live[res].get(key)
        if obj is None:
            raise self._not_found(res, key[1])
        return obj

    async def _serve_fetch(self, request: rendering.Request) -> rendering.Payload:
        res, key = self._key(request)
        if request.subresource not in (None, "status"):
            raise _error(404, "NotFound", "the server could not find the requested resource")
        obj = self._get_live(res, key)
        if wants_table(request.headers.get("Accept", "")):
            return self._table(res, [obj], request)
        return obj

    def _table(self, res: kmock.resource, objects: list[dict[str, Any]], request: rendering.Request) -> dict[str, Any]:
        include = request.params.get("includeObject", "Metadata")
        return table(objects, self._printer_columns.get(res, []), str(self._rv), include)

    def _selector(self, request: rendering.Request) -> Selector:
        try:
            selector = Selector.parse(request.params.get("labelSelector"), request.params.get("fieldSelector"))
        except SelectorError as exc:
            raise _error(400, "BadRequest", str(exc)) from exc
        return selector

    def _matching(self, request: rendering.Request, selector: Selector) -> list[dict[str, Any]]:
        assert request.resource is not None
        namespace = request.namespace
        live = self._live[request.resource]
        return [
            obj
            for (ns, _), obj in sorted(live.items())
            if (namespace is None or ns == namespace) and selector.matches(obj)
        ]

    async def _serve_list(self, request: rendering.Request) -> rendering.Payload:
        assert request.resource is not None
        self._info(request.resource)
        items = self._matching(request, self._selector(request))
        if wants_table(request.headers.get("Accept", "")):
            return self._table(request.resource, items, request)
        metadata: dict[str, Any] = {"resourceVersion": str(self._rv)}
        limit = int(request.params.get("limit") or 0)
        start = int(request.params.get("continue") or 0)
        if limit > 0:
            if start + limit < len(items):
                metadata["continue"] = str(start + limit)
                metadata["remainingItemCount"] = len(items) - start - limit
            items = items[start : start + limit]
        return {
            "apiVersion": _api_version(request.resource),
            "kind": f"{self._kind(request.resource)}List",
            "metadata": metadata,
            "items": items,
        }

    # ------------------------------------------------------------------ watch

    async def _serve_watch(self, request: rendering.Request) -> AsyncIterator[rendering.Payload]:
        res = request.resource
        assert res is not None
        self._info(res)
        selector = self._selector(request)
        if request.name is not None:
            selector = Selector(selector.labels, Selector.parse(None, f"metadata.name={request.name}").fields)
        params = request.params
        since = params.get("resourceVersion") or ""
        timeout = float(params["timeoutSeconds"]) if params.get("timeoutSeconds") else math.inf
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        bookmarks = params.get("allowWatchBookmarks", "").lower() == "true"
        initial = params.get("sendInitialEvents", "").lower() == "true"
        watchers = self._watchers[res]
        record = _current_record.get()
        if record is not None:
            record.status = 200

        yield b""  # send the headers: a watch that has nothing to say yet is still a started watch
        if since in ("", "0") or initial:
            cursor = self._rv
            for obj in self._matching(request, selector):
                yield {"type": "ADDED", "object": obj}
            if initial:
                yield self._bookmark(res, cursor, initial_events_end=True)
        else:
            cursor = int(since)
        while not self._closed:
            if cursor < watchers.evicted_rv:
                yield self._gone(cursor)
                return
            for event in self._events_after(watchers, cursor):
                cursor = event.rv
                translated = self._translate(event, request.namespace, selector)
                if translated is not None:
                    yield translated
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            changed = watchers.changed
            wait = min(remaining, self.bookmark_interval) if bookmarks else remaining
            try:
                await asyncio.wait_for(changed.wait(), timeout=None if math.isinf(wait) else wait)
            except TimeoutError:
                if bookmarks and loop.time() < deadline:
                    yield self._bookmark(res, max(cursor, self._rv))

    @staticmethod
    def _events_after(watchers: _Watchers, cursor: int) -> list[_Event]:
        newer: list[_Event] = []
        for event in reversed(watchers.events):
            if event.rv <= cursor:
                break
            newer.append(event)
        newer.reverse()
        return newer

    @staticmethod
    def _translate(event: _Event, namespace: str | None, selector: Selector) -> dict[str, Any] | None:
        """What a watch with this namespace and selector sees: objects moving in or out of the selection
        arrive as ADDED or DELETED, as the apiserver's watch cache reports them."""
        if namespace is not None and event.obj.get("metadata", {}).get("namespace") != namespace:
            return None
        now = selector.matches(event.obj)
        if event.type == "MODIFIED":
            before = event.previous is not None and selector.matches(event.previous)
            kind = "MODIFIED" if now and before else "ADDED" if now else "DELETED" if before else None
            return {"type": kind, "object": event.obj} if kind else None
        return {"type": event.type, "object": event.obj} if now else None

    def _bookmark(self, res: kmock.resource, rv: int, *, initial_events_end: bool = False) -> dict[str, Any]:
        metadata: dict[str, Any] = {"resourceVersion": str(rv)}
        if initial_events_end:
            metadata["annotations"] = {"k8s.io/initial-events-end": "true"}
        obj = {"apiVersion": _api_version(res), "kind": self._kind(res), "metadata": metadata}
        return {"type": "BOOKMARK", "object": obj}

    @staticmethod
    def _gone(cursor: int) -> dict[str, Any]:
        status: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure"}
        status["reason"] = "Expired"
        status |= {"message": f"too old resource version: {cursor}", "code": 410}
        return {"type": "ERROR", "object": status}

    def _emit(self, res: kmock.resource, type_: str, obj: dict[str, Any], previous: dict[str, Any] | None) -> None:
        watchers = self._watchers[res]
        watchers.events.append(_Event(int(obj["metadata"]["resourceVersion"]), type_, obj, previous))
        while len(watchers.events) > self.watch_cache_size:
            watchers.evicted_rv = watchers.events.popleft().rv
        watchers.changed.set()
        watchers.changed = asyncio.Event()

    # ------------------------------------------------------------------ writes

    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    def _remember(self, res: kmock.resource, key: Key, obj: dict[str, Any], *, new: bool) -> None:
        """Store the object's new version: the live index, kmock's ``objects`` history, the owner index."""
        self._live[res][key] = obj
        self._uids[obj["metadata"]["uid"]] = (res, key)
        array_key = (res, key[0], key[1])
        if array_key not in self._objects:
            self._objects[array_key] = obj
        elif new:
            self._objects[array_key].create(obj)
        else:
            self._objects[array_key].history.append(obj)
        history = self._objects[array_key].history
        if self.history_limit is not None and len(history) > self.history_limit:
            del history[: -self.history_limit]
        for ref in obj["metadata"].get("ownerReferences") or []:
            if isinstance(ref, dict) and ref.get("uid"):
                self._dependents[ref["uid"]].add((res, key))

    def _validate(
        self, res: kmock.resource, obj: dict[str, Any], *, creating: bool, old: dict[str, Any] | None = None
    ) -> None:
        name = obj["metadata"].get("name", "")
        causes: list[Cause] = []
        if creating and (len(name) > 253 or not _DNS_SUBDOMAIN.match(name)):
            causes.append(
                Cause(
                    "FieldValueInvalid", "metadata.name", f"Invalid value: {format_value(name)}: {_DNS_SUBDOMAIN_MSG}"
                )
            )
        schema = self._schemas.get(res)
        if schema is not None:
            unknown: list[str] = []
            causes += schema.process(obj, unknown, old)
            mode = _field_validation.get()
            if unknown and mode == "Strict":
                fields = ", ".join(f'unknown field "{path}"' for path in unknown)
                kind, version = self._kind(res), res.version
                raise _error(
                    400,
                    "BadRequest",
                    f'{kind} in version "{version}" cannot be handled as a {kind}: strict decoding error: {fields}',
                )
            warnings = _warnings.get()
            if unknown and mode == "Warn" and warnings is not None:
                warnings += [f'unknown field "{path}"' for path in unknown]
        if causes:
            raise self._invalid(res, name, causes)

    def _create(
        self, res: kmock.resource, namespace: str | None, body: Any, *, dry_run: bool = False
    ) -> dict[str, Any]:
        info = self._info(res)
        self._check_body(body)
        obj: dict[str, Any] = copy.deepcopy(body)
        meta: dict[str, Any] = obj["metadata"] if isinstance(obj.get("metadata"), dict) else {}
        name = meta.get("name") or ""
        if not name and meta.get("generateName"):
            name = meta["generateName"] + "".join(random.choices("bcdfghjklmnpqrstvwxz2456789", k=5))
        if not name:
            cause = Cause("FieldValueRequired", "metadata.name", "Required value: name or generateName is required")
            raise self._invalid(res, "", [cause])
        if info.namespaced:
            if namespace and meta.get("namespace") and meta["namespace"] != namespace:
                raise _error(
                    400,
                    "BadRequest",
                    "the namespace of the provided object does not match the namespace sent on the request",
                )
            namespace = namespace or meta.get("namespace") or "default"
        else:
            namespace = None
        key: Key = (namespace, name)
        if key in self._live[res]:
            details = {"name": name, "group": res.group, "kind": res.plural}
            raise _error(409, "AlreadyExists", f'{_qualified(res)} "{name}" already exists', details)
        meta = {k: v for k, v in meta.items() if k not in _SERVER_OWNED_META and k != "managedFields"}
        meta["name"] = name
        if namespace is not None:
            meta["namespace"] = namespace
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=_now(), generation=1)
        obj["metadata"] = meta
        obj["apiVersion"], obj["kind"] = _api_version(res), self._kind(res)
        if "status" in info.subresources:
            obj.pop("status", None)  # status is only written through /status
        self._validate(res, obj, creating=True)
        if res == CRD_RESOURCE:
            self._check_crd(obj)
        if dry_run:
            return obj
        meta["resourceVersion"] = self._next_rv()
        if res == CRD_RESOURCE:
            self.register_crd(obj)
            obj["status"] = _crd_status(obj)  # what the CRD controllers report once the names are served
        self._remember(res, key, obj, new=True)
        self._emit(res, "ADDED", obj, None)
        return obj

    @staticmethod
    def _check_body(body: Any) -> None:
        if body is _PROTOBUF:
            raise _error(
                415,
                "UnsupportedMediaType",
                "the emulator serves JSON only, not protobuf (use kubectl apply -f instead of kubectl create <kind>)",
            )
        if not isinstance(body, dict):
            raise _error(400, "BadRequest", "the body of the request must be a JSON object")

    def _check_crd(self, crd: dict[str, Any]) -> None:
        try:
            spec = crd["spec"]
            for version in spec["versions"]:
                schema = (version.get("schema") or {}).get("openAPIV3Schema")
                if schema:
                    StructuralSchema(schema)
            _ = spec["group"], spec["names"]["plural"], spec["names"]["kind"]
        except (KeyError, TypeError, ValueError) as exc:
            cause = Cause("FieldValueInvalid", "spec", f"Invalid value: {exc}")
            raise self._invalid(CRD_RESOURCE, crd["metadata"]["name"], [cause]) from exc

    async def _serve_create(self, request: rendering.Request) -> rendering.Payload:
        assert request.resource is not None
        if request.subresource is not None:
            raise _error(404, "NotFound", "the server could not find the requested resource")
        dry_run = request.params.get("dryRun") == "All"
        obj = self._create(request.resource, request.namespace, request.data, dry_run=dry_run)
        return self._respond(obj, 201)

    @staticmethod
    def _respond(obj: dict[str, Any], status: int = 200) -> rendering.Response:
        """The object, with the apiserver's ``Warning`` headers for fields it dropped (fieldValidation=Warn)."""
        warnings = _warnings.get() or []
        headers = {"Warning": ", ".join(f'299 - "{json.dumps(w)[1:-1]}"' for w in warnings)} if warnings else None
        return rendering.Response(status=status, payload=obj, headers=headers)

    async def _serve_update(self, request: rendering.Request) -> rendering.Payload:
        """PUT (update) and PATCH (patch): both land here, told apart by the HTTP method."""
        res, key = self._key(request)
        if request.subresource not in (None, "status"):
            raise _error(404, "NotFound", "the server could not find the requested resource")
        if request.subresource == "status" and "status" not in self._info(res).subresources:
            raise _error(404, "NotFound", "the server could not find the requested resource")
        old = self._get_live(res, key)
        old_rv = old["metadata"]["resourceVersion"]
        if request.method == kmock.method.PUT:
            body = request.data
            self._check_body(body)
            meta = body.get("metadata") or {}
            if meta.get("name") not in (None, key[1]):
                raise _error(
                    400,
                    "BadRequest",
                    f"the name of the object ({meta.get('name')}) does not match the name on the URL ({key[1]})",
                )
            given_rv = meta.get("resourceVersion")
            if not given_rv and res in self._schemas:
                cause = Cause(
                    "FieldValueInvalid",
                    "metadata.resourceVersion",
                    "Invalid value: 0x0: must be specified for an update",
                )
                raise self._invalid(res, key[1], [cause])
        else:
            content_type = request.headers.get("Content-Type", "")
            try:
                body = apply_patch(old, request.data, content_type)
            except UnsupportedPatchType as exc:
                raise _error(415, "UnsupportedMediaType", str(exc)) from exc
            except PatchError as exc:
                raise _error(422, "Invalid", str(exc)) from exc
            given_rv = (body.get("metadata") or {}).get("resourceVersion")
        if given_rv and given_rv != old_rv:
            raise self._conflict(
                res,
                key[1],
                "the object has been modified; please apply your changes to the latest version and try again",
            )
        new = self._prepare_update(res, old, body, request.subresource)
        return self._respond(self._commit(res, key, old, new, dry_run=request.params.get("dryRun") == "All"))

    def _prepare_update(
        self, res: kmock.resource, old: dict[str, Any], body: dict[str, Any], subresource: str | None
    ) -> dict[str, Any]:
        """Writes to /status change only status; writes to the object never change status (with a status
        subresource) nor the metadata the server owns."""
        if subresource == "status":
            new = copy.deepcopy(old)
            if "status" in body:
                new["status"] = copy.deepcopy(body["status"])
            else:
                new.pop("status", None)
            return new
        new = copy.deepcopy(body)
        new["apiVersion"], new["kind"] = old["apiVersion"], old["kind"]
        meta = new["metadata"] = dict(new.get("metadata") or {})
        meta.pop("managedFields", None)
        for name in ("name", "namespace", *_SERVER_OWNED_META):
            if name in old["metadata"]:
                meta[name] = old["metadata"][name]
            else:
                meta.pop(name, None)
        if "status" in self._info(res).subresources:
            if "status" in old:
                new["status"] = copy.deepcopy(old["status"])
            else:
                new.pop("status", None)
        if old["metadata"].get("deletionTimestamp"):
            added = set(meta.get("finalizers") or []) - set(old["metadata"].get("finalizers") or [])
            if added:
                cause = Cause(
                    "FieldValueForbidden",
                    "metadata.finalizers",
                    "Forbidden: no new finalizers can be added if the object is being deleted, found new "
                    f"finalizers {sorted(added)!r}",
                )
                raise self._invalid(res, old["metadata"]["name"], [cause])
        return new

    def _commit(
        self, res: kmock.resource, key: Key, old: dict[str, Any], new: dict[str, Any], *, dry_run: bool = False
    ) -> dict[str, Any]:
        """Validate, bump generation on spec changes, skip no-op writes, store, announce; release the object
        if it is being deleted and has no finalizers left."""
        self._validate(res, new, creating=False, old=old)
        if res == CRD_RESOURCE:
            self._check_crd(new)
        if _spec_view(new) != _spec_view(old):
            new["metadata"]["generation"] = int(old["metadata"].get("generation") or 0) + 1
        if new == old or dry_run:
            return new  # a no-op write changes nothing, not even the resourceVersion
        new["metadata"]["resourceVersion"] = self._next_rv()
        if new["metadata"].get("deletionTimestamp") and not new["metadata"].get("finalizers"):
            self._remove(res, key, new, old)
            return new
        if res == CRD_RESOURCE:
            self.register_crd(new)
            new["status"] = _crd_status(new)
        self._remember(res, key, new, new=False)
        self._emit(res, "MODIFIED", new, old)
        return new

    # ------------------------------------------------------------------ deletion and garbage collection

    async def _serve_delete(self, request: rendering.Request) -> rendering.Payload:
        res, key = self._key(request)
        old = self._get_live(res, key)
        options = request.data if isinstance(request.data, dict) else {}
        preconditions = options.get("preconditions") or {}
        for field_name in ("resourceVersion", "uid"):
            wanted, actual = preconditions.get(field_name), old["metadata"].get(field_name)
            if wanted and wanted != actual:
                why = (
                    f"Precondition failed: {field_name[0].upper() + field_name[1:]} in precondition: {wanted}, "
                    f"{field_name[0].upper() + field_name[1:]} in object meta: {actual}"
                )
                raise self._conflict(res, key[1], why)
        policy = options.get("propagationPolicy") or request.params.get("propagationPolicy") or "Background"
        if request.params.get("dryRun") == "All":
            return old
        return self._delete(res, key, policy)

    def _delete(self, res: kmock.resource, key: Key, policy: str) -> dict[str, Any]:
        """Mark for deletion while finalizers remain, otherwise remove. Foreground propagation is treated as
        Background: dependents are collected after the owner is gone rather than before."""
        old = self._live[res][key]
        if policy == "Orphan":
            self._orphaning.add(old["metadata"]["uid"])
        if old["metadata"].get("deletionTimestamp"):
            return old
        if old["metadata"].get("finalizers"):
            new = copy.deepcopy(old)
            new["metadata"]["deletionTimestamp"] = _now()
            new["metadata"]["deletionGracePeriodSeconds"] = 0
            new["metadata"]["generation"] = int(old["metadata"].get("generation") or 0) + 1
            new["metadata"]["resourceVersion"] = self._next_rv()
            self._remember(res, key, new, new=False)
            self._emit(res, "MODIFIED", new, old)
            return new
        final = copy.deepcopy(old)
        final["metadata"]["resourceVersion"] = self._next_rv()
        self._remove(res, key, final, old)
        return final

    def _remove(self, res: kmock.resource, key: Key, final: dict[str, Any], old: dict[str, Any]) -> None:
        del self._live[res][key]
        uid = final["metadata"]["uid"]
        self._uids.pop(uid, None)
        self._objects[res, key[0], key[1]].history.append(final)
        self._objects[res, key[0], key[1]].delete()
        self._emit(res, "DELETED", final, old)
        if uid in self._orphaning:
            self._orphaning.discard(uid)
            self._dependents.pop(uid, None)
        else:
            self._collect_dependents(uid)

    def _collect_dependents(self, owner_uid: str) -> None:
        """Background cascade: delete dependents whose ownerReferences all point to owners that are gone."""
        for res, key in sorted(self._dependents.pop(owner_uid, set()), key=repr):
            dependent = self._live.get(res, {}).get(key)
            if dependent is None:
                continue
            owners = [r.get("uid") for r in dependent["metadata"].get("ownerReferences") or [] if isinstance(r, dict)]
            if owner_uid in owners and all(uid not in self._uids for uid in owners):
                self._delete(res, key, "Background")
