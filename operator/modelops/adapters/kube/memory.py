"""An in-memory :class:`~modelops.adapters.kube.api.KubeApi` with the apiserver semantics the adapters rely on.

It stamps ``uid``, ``resourceVersion``, ``generation`` (bumped only when ``spec`` changes) and
``creationTimestamp``; answers 409 to a create of an existing name and to a merge patch whose
``metadata.resourceVersion`` is stale; honours label selectors; keeps a request log (to count writes) and lets a
test inject faults. It is the fake shipped with the protocol, for unit tests of the adapters, the core's callers and
the handlers; the integration tests on the real local cluster (``tests/plugins/cluster.py``) cover the wire.
"""

from __future__ import annotations

import copy
import itertools
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .api import Conflict, KubeApiError, NotFound, Obj, Resource, matches

WRITE_VERBS = frozenset({"create", "patch", "delete"})


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: dicts merge recursively, ``None`` deletes a key, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


@dataclass(frozen=True)
class Call:
    """One request as the log records it."""

    verb: str
    resource: Resource
    namespace: str
    name: str | None


@dataclass
class _Fault:
    verb: str
    resource: Resource | None
    name: str | None
    error: KubeApiError
    times: int


@dataclass
class InMemoryKube:
    """A dict store keyed by (resource, namespace, name)."""

    objects: dict[tuple[Resource, str, str], Obj] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    _faults: list[_Fault] = field(default_factory=list)
    _versions: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    # ------------------------------------------------------------------------------------------ test aids

    def writes(self) -> list[Call]:
        """The write requests made so far (create, patch, delete)."""
        return [c for c in self.calls if c.verb in WRITE_VERBS]

    def fail(
        self,
        verb: str,
        error: KubeApiError,
        *,
        resource: Resource | None = None,
        name: str | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` matching requests with ``error`` instead of serving them."""
        self._faults.append(_Fault(verb, resource, name, error, times))

    def put(self, resource: Resource, namespace: str, body: Obj) -> Obj:
        """Store an object as if a user had created it (not logged as a call)."""
        return self._store(resource, namespace, copy.deepcopy(body), previous=None)

    def edit(self, resource: Resource, namespace: str, name: str, patch: Obj) -> Obj:
        """Change an object as if a user had edited it (not logged): bumps resourceVersion."""
        key = (resource, namespace, name)
        return self._store(resource, namespace, merge_patch(self.objects[key], patch), previous=self.objects[key])

    # ------------------------------------------------------------------------------------------- KubeApi

    def get(self, resource: Resource, namespace: str, name: str) -> Obj | None:
        self._log("get", resource, namespace, name)
        obj = self.objects.get((resource, namespace, name))
        return copy.deepcopy(obj) if obj is not None else None

    def list(self, resource: Resource, namespace: str, labels: Mapping[str, str] | None = None) -> list[Obj]:
        self._log("list", resource, namespace, None)
        return [
            copy.deepcopy(obj)
            for (res, ns, _), obj in sorted(self.objects.items(), key=lambda kv: kv[0][2])
            if res == resource and ns == namespace and matches(obj, labels)
        ]

    def create(self, resource: Resource, namespace: str, body: Obj) -> Obj:
        name = body["metadata"]["name"]
        self._log("create", resource, namespace, name)
        if (resource, namespace, name) in self.objects:
            raise Conflict(409, f'{resource.plural} "{name}" already exists')
        return copy.deepcopy(self._store(resource, namespace, copy.deepcopy(body), previous=None))

    def patch(
        self, resource: Resource, namespace: str, name: str, patch: Obj, *, subresource: str | None = None
    ) -> Obj:
        """A merge patch; with ``subresource="status"`` only ``status`` changes (as with the status subresource)."""
        self._log("patch", resource, namespace, name)
        key = (resource, namespace, name)
        current = self.objects.get(key)
        if current is None:
            raise NotFound(404, f'{resource.plural} "{name}" not found')
        wanted_rv = (patch.get("metadata") or {}).get("resourceVersion")
        if wanted_rv is not None and wanted_rv != current["metadata"]["resourceVersion"]:
            raise Conflict(409, "the object has been modified; please apply your changes to the latest version")
        if subresource == "status":
            patch = {"status": patch.get("status")} if "status" in patch else {}
        elif subresource is None and resource.group == "modelops.io":
            patch = {k: v for k, v in patch.items() if k != "status"}
        return copy.deepcopy(self._store(resource, namespace, merge_patch(current, patch), previous=current))

    def delete(self, resource: Resource, namespace: str, name: str, *, uid: str | None = None) -> None:
        self._log("delete", resource, namespace, name)
        key = (resource, namespace, name)
        current = self.objects.get(key)
        if current is None:
            return
        if uid is not None and current["metadata"].get("uid") != uid:
            raise Conflict(409, f"precondition failed: uid in precondition {uid} does not match")
        del self.objects[key]

    # ------------------------------------------------------------------------------------------ internals

    def _log(self, verb: str, resource: Resource, namespace: str, name: str | None) -> None:
        self.calls.append(Call(verb, resource, namespace, name))
        for fault in self._faults:
            if (
                fault.times > 0
                and fault.verb == verb
                and fault.resource in (None, resource)
                and fault.name in (None, name)
            ):
                fault.times -= 1
                raise fault.error

    def _store(self, resource: Resource, namespace: str, obj: Obj, previous: Obj | None) -> Obj:
        meta = obj.setdefault("metadata", {})
        meta["namespace"] = namespace
        meta["resourceVersion"] = str(next(self._versions))
        obj.setdefault("apiVersion", resource.api_version)
        obj.setdefault("kind", resource.kind)
        if previous is None:
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            meta["generation"] = 1
        else:
            meta["uid"] = previous["metadata"]["uid"]
            meta["creationTimestamp"] = previous["metadata"]["creationTimestamp"]
            bump = obj.get("spec") != previous.get("spec")
            meta["generation"] = previous["metadata"].get("generation", 1) + (1 if bump else 0)
        self.objects[(resource, namespace, meta["name"])] = obj
        return obj
