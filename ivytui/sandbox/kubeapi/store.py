"""The object store: objects by type and namespace, the global resourceVersion, the bounded watch
history, subscribers, and the write semantics of kube-apiserver (create, update, patch, delete)."""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Any, Final

from ivytui.sandbox.kubeapi.common import AnyList, Obj, ObjList, copy_json, now
from ivytui.sandbox.kubeapi.errors import (
    ApiError,
    bad_request,
    conflict,
    delete_conflict,
    gone,
    invalid,
    not_found,
    required,
    rv_required,
    target,
)
from ivytui.sandbox.kubeapi.patch import apply_json_patch, apply_merge_patch
from ivytui.sandbox.kubeapi.resources import (
    BUILTIN_KEYS,
    BUILTIN_TYPES,
    CRD_KEY,
    NAMESPACES_KEY,
    ResourceType,
)
from ivytui.sandbox.kubeapi.selectors import Filter, parse_field_selector, parse_label_selector
from ivytui.sandbox.kubeapi.validation import (
    check_kind,
    check_meta,
    crd_status,
    crd_type,
    fold_string_data,
    name_error,
)

_GENERATE_ALPHABET: Final = "bcdfghjklmnpqrstvwxz2456789"


class Record:
    rv: int
    type: str
    key: str
    obj: Obj
    prev: Obj | None


RecordList = list[Record]


class Watcher:
    __slots__ = ("key", "queue")

    def __init__(self, key: str) -> None:
        self.key = key
        self.queue: asyncio.Queue[Record | None] = asyncio.Queue()


def _spec_part(obj: Obj, rt: ResourceType) -> Obj:
    skip = ("metadata", "status") if rt.has_status else ("metadata",)
    return {k: v for k, v in obj.items() if k not in skip}


_SERVER_META: Final = (
    "uid",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
)


class KubeStore:
    """In-memory objects with a global resourceVersion, watch history and subscribers.

    Every committed write bumps `resource_version`, is kept in a bounded history (for watches that
    resume from a resourceVersion) and is delivered to subscribers and HTTP watchers in order.
    Stored objects are never changed in place; callers always get deep copies.
    """

    def __init__(self, *, history: int = 2000) -> None:
        self.resource_version: int = 1
        self._history_size = max(0, history)
        self._history: deque[Record] = deque()
        self._oldest = self.resource_version
        self._types: dict[str, ResourceType] = {t.key: t for t in BUILTIN_TYPES}
        self._objects: dict[str, dict[tuple[str, str], Obj]] = {t.key: {} for t in BUILTIN_TYPES}
        self._gvr: dict[tuple[str, str, str], str] = {}
        self._subscribers: list[asyncio.Queue[tuple[str, str, Obj]]] = []
        self._watchers: set[Watcher] = set()
        self._index_types()

    # -- types --

    def _index_types(self) -> None:
        self._gvr = {(t.group, t.version, t.plural): k for k, t in self._types.items()}

    def resource_type(self, key: str) -> ResourceType:
        rt = self._types.get(key)
        if rt is None:
            raise ApiError(404, "NotFound", f'the server doesn\'t have a resource type "{key}"')
        return rt

    def types(self) -> list[ResourceType]:
        """Every served resource type: built-ins first, then custom ones by key."""
        builtin = [t for t in BUILTIN_TYPES if t.key in self._types]
        custom = sorted(
            (t for k, t in self._types.items() if k not in BUILTIN_KEYS), key=lambda t: t.key
        )
        return builtin + custom

    def key_for(self, group: str, version: str, plural: str) -> str | None:
        return self._gvr.get((group, version, plural))

    def is_custom(self, key: str) -> bool:
        return key not in BUILTIN_KEYS

    # -- reads --

    def _scope(self, rt: ResourceType, namespace: str | None) -> str:
        if rt.namespaced:
            if not namespace:
                raise bad_request(f"a namespace is required for {rt.key}")
            return namespace
        if namespace:
            raise bad_request(f"{rt.key} is not namespaced")
        return ""

    def _stored(self, key: str, name: str, namespace: str | None) -> tuple[ResourceType, str, Obj]:
        rt = self.resource_type(key)
        ns = self._scope(rt, namespace)
        obj = self._objects[key].get((ns, name))
        if obj is None:
            raise not_found(rt, name)
        return rt, ns, obj

    def get(self, key: str, name: str, *, namespace: str | None = None) -> Obj:
        return copy_json(self._stored(key, name, namespace)[2])

    def try_get(self, key: str, name: str, *, namespace: str | None = None) -> Obj | None:
        rt = self.resource_type(key)
        ns = self._scope(rt, namespace)
        obj = self._objects[key].get((ns, name))
        return None if obj is None else copy_json(obj)

    def _filter(
        self,
        rt: ResourceType,
        namespace: str | None,
        label_selector: str | None,
        field_selector: str | None,
    ) -> Filter:
        if not rt.namespaced:
            namespace = None
        return Filter(
            namespace or None,
            parse_label_selector(label_selector),
            parse_field_selector(field_selector, rt),
        )

    def _select(self, key: str, flt: Filter) -> ObjList:
        objects = self._objects[key]
        if flt.namespace is not None:
            keys = sorted(k for k in objects if k[0] == flt.namespace)
        else:
            keys = sorted(objects)
        if not flt.labels and not flt.fields:
            return [objects[k] for k in keys]
        return [objects[k] for k in keys if flt.matches(objects[k])]

    def list(
        self,
        key: str,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> tuple[ObjList, str]:
        rt = self.resource_type(key)
        flt = self._filter(rt, namespace, label_selector, field_selector)
        return [copy_json(o) for o in self._select(key, flt)], str(self.resource_version)

    # -- writes --

    def _bump(self) -> int:
        self.resource_version += 1
        return self.resource_version

    def _commit(self, etype: str, key: str, obj: Obj, prev: Obj | None) -> None:
        rec = Record(self.resource_version, etype, key, obj, prev)
        self._history.append(rec)
        while len(self._history) > self._history_size:
            self._oldest = self._history.popleft().rv
        for w in list(self._watchers):
            if w.key == key:
                w.queue.put_nowait(rec)
        for q in list(self._subscribers):
            q.put_nowait((etype, key, copy_json(obj)))

    def create(
        self, key: str, obj: Obj, *, namespace: str | None = None, dry_run: bool = False
    ) -> Obj:
        rt = self.resource_type(key)
        if not isinstance(obj, dict):
            raise bad_request("the body of a create must be a JSON object")
        new: Obj = copy_json(obj)
        check_kind(rt, new)
        if key == "secrets":
            fold_string_data(new)
        meta = new.get("metadata")
        if meta is None:
            meta = {}
        if not isinstance(meta, dict):
            raise bad_request("metadata must be an object")
        new["metadata"] = meta
        if rt.namespaced:
            body_ns = meta.get("namespace")
            if namespace and body_ns and body_ns != namespace:
                raise bad_request(
                    "the namespace of the provided object does not match the "
                    "namespace sent on the request"
                )
            ns = namespace or body_ns
            if not ns:
                raise bad_request(f"a namespace is required to create {rt.key}")
            meta["namespace"] = ns
            if ("", ns) not in self._objects[NAMESPACES_KEY]:
                raise not_found(self._types[NAMESPACES_KEY], ns)
        else:
            if namespace:
                raise bad_request(f"{rt.key} is not namespaced")
            meta.pop("namespace", None)
            ns = ""
        objects = self._objects[key]
        name = meta.get("name")
        if not name:
            prefix = meta.get("generateName")
            if not prefix or not isinstance(prefix, str):
                raise required(rt, "", "metadata.name", "name or generateName is required")
            while True:
                name = prefix + "".join(random.choices(_GENERATE_ALPHABET, k=5))
                if (ns, name) not in objects:
                    break
            meta["name"] = name
        if not isinstance(name, str):
            raise bad_request("metadata.name must be a string")
        if err := name_error(rt, name):
            raise invalid(rt, name, "metadata.name", name, err)
        check_meta(rt, name, meta)
        if (ns, name) in objects:
            raise ApiError(
                409, "AlreadyExists", f'{rt.key} "{name}" already exists', details=target(rt, name)
            )
        for field in (*_SERVER_META, "resourceVersion", "selfLink", "managedFields"):
            meta.pop(field, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now()
        meta["generation"] = 1
        if rt.has_status and self.is_custom(key):
            new.pop("status", None)
        if key == NAMESPACES_KEY:
            meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = name
            new.setdefault("spec", {"finalizers": ["kubernetes"]})
            new["status"] = {"phase": "Active"}
        elif key == CRD_KEY:
            crd_rt = crd_type(new)
            if crd_rt.key in BUILTIN_KEYS:
                raise invalid(
                    rt,
                    name,
                    "spec.names.plural",
                    crd_rt.plural,
                    "conflicts with a built-in resource",
                )
            new["status"] = crd_status(new, crd_rt)
        if dry_run:
            return copy_json(new)
        meta["resourceVersion"] = str(self._bump())
        objects[(ns, name)] = new
        self._commit("ADDED", key, new, None)
        if key == CRD_KEY:
            self._register_crd(new)
        return copy_json(new)

    def _update(
        self,
        key: str,
        name: str,
        namespace: str | None,
        candidate: Any,
        *,
        subresource: str | None,
        dry_run: bool,
        require_rv: bool,
    ) -> Obj:
        rt, ns, cur = self._stored(key, name, namespace)
        if not isinstance(candidate, dict):
            raise bad_request("the object must be a JSON object")
        meta = candidate.get("metadata")
        if meta is None:
            meta = {}
        if not isinstance(meta, dict):
            raise bad_request("metadata must be an object")
        candidate["metadata"] = meta
        given = meta.get("resourceVersion")
        cur_meta: Obj = cur["metadata"]
        if given not in (None, ""):
            if str(given) != cur_meta["resourceVersion"]:
                raise conflict(rt, name)
        elif require_rv:
            raise invalid(
                rt, name, "metadata.resourceVersion", 0, "must be specified for an update"
            )
        check_kind(rt, candidate)
        if meta.get("name", name) != name:
            raise bad_request(
                f"the name of the object ({meta.get('name')}) does not match the "
                f"name on the URL ({name})"
            )
        if rt.namespaced:
            if meta.get("namespace", ns) != ns:
                raise bad_request(
                    "the namespace of the provided object does not match the "
                    "namespace sent on the request"
                )
        if subresource == "status":
            result: Obj = copy_json(cur)
            if "status" in candidate:
                result["status"] = candidate["status"]
            else:
                result.pop("status", None)
        else:
            result = candidate
            if rt.has_status:
                if "status" in cur:
                    result["status"] = copy_json(cur["status"])
                else:
                    result.pop("status", None)
            meta["name"] = name
            if rt.namespaced:
                meta["namespace"] = ns
            else:
                meta.pop("namespace", None)
            for field in ("uid", "deletionTimestamp"):
                if meta.get(field) and meta[field] != cur_meta.get(field):
                    detail = (
                        "field is immutable; may only be changed via deletion"
                        if field == "deletionTimestamp"
                        else "field is immutable"
                    )
                    raise invalid(rt, name, f"metadata.{field}", meta[field], detail)
            for field in (*_SERVER_META, "selfLink", "managedFields"):
                if field in cur_meta:
                    meta[field] = cur_meta[field]
                else:
                    meta.pop(field, None)
            check_meta(rt, name, meta)
            if key == NAMESPACES_KEY:
                labels = meta.setdefault("labels", {})
                labels["kubernetes.io/metadata.name"] = name
            elif key == CRD_KEY:
                crd_rt = crd_type(result)
                if crd_rt.key != name:
                    raise invalid(
                        rt, name, "metadata.name", name, 'must be spec.names.plural+"."+spec.group'
                    )
        result["metadata"]["resourceVersion"] = cur_meta["resourceVersion"]
        if _spec_part(result, rt) != _spec_part(cur, rt):
            result["metadata"]["generation"] = int(cur_meta.get("generation", 0)) + 1
        if result == cur:
            return copy_json(cur)
        if dry_run:
            return copy_json(result)
        if cur_meta.get("deletionTimestamp") and not result["metadata"].get("finalizers"):
            return self._remove(rt, ns, name)
        result["metadata"]["resourceVersion"] = str(self._bump())
        self._objects[key][(ns, name)] = result
        self._commit("MODIFIED", key, result, cur)
        if key == CRD_KEY:
            self._register_crd(result)
        return copy_json(result)

    @staticmethod
    def _check_subresource(rt: ResourceType, name: str, subresource: str | None) -> None:
        if subresource is None:
            return
        if subresource != "status" or not rt.has_status:
            raise ApiError(
                404,
                "NotFound",
                "the server could not find the requested resource",
                details=target(rt, name),
            )

    def merge_patch(
        self,
        key: str,
        name: str,
        patch: Obj,
        *,
        namespace: str | None = None,
        subresource: str | None = None,
        dry_run: bool = False,
    ) -> Obj:
        rt, _, cur = self._stored(key, name, namespace)
        self._check_subresource(rt, name, subresource)
        if not isinstance(patch, dict):
            raise bad_request("a merge patch must be a JSON object")
        candidate = apply_merge_patch(copy_json(cur), patch)
        return self._update(
            key,
            name,
            namespace,
            candidate,
            subresource=subresource,
            dry_run=dry_run,
            require_rv=False,
        )

    def json_patch(
        self,
        key: str,
        name: str,
        ops: AnyList,
        *,
        namespace: str | None = None,
        subresource: str | None = None,
        dry_run: bool = False,
    ) -> Obj:
        rt, _, cur = self._stored(key, name, namespace)
        self._check_subresource(rt, name, subresource)
        candidate = apply_json_patch(cur, ops)
        return self._update(
            key,
            name,
            namespace,
            candidate,
            subresource=subresource,
            dry_run=dry_run,
            require_rv=False,
        )

    def replace(
        self,
        key: str,
        name: str,
        obj: Obj,
        *,
        namespace: str | None = None,
        subresource: str | None = None,
        dry_run: bool = False,
    ) -> Obj:
        rt, _, _ = self._stored(key, name, namespace)
        self._check_subresource(rt, name, subresource)
        return self._update(
            key,
            name,
            namespace,
            copy_json(obj),
            subresource=subresource,
            dry_run=dry_run,
            require_rv=self.is_custom(key),
        )

    def delete(
        self,
        key: str,
        name: str,
        *,
        namespace: str | None = None,
        dry_run: bool = False,
        resource_version: str | None = None,
    ) -> Obj:
        """Delete an object; with finalizers it only gets a deletionTimestamp (MODIFIED)."""
        rt, ns, cur = self._stored(key, name, namespace)
        if resource_version and resource_version != cur["metadata"]["resourceVersion"]:
            raise conflict(rt, name)
        if dry_run:
            return copy_json(cur)
        if cur["metadata"].get("finalizers") and key not in (NAMESPACES_KEY, CRD_KEY):
            if cur["metadata"].get("deletionTimestamp"):
                return copy_json(cur)
            marked: Obj = copy_json(cur)
            marked["metadata"]["deletionTimestamp"] = now()
            marked["metadata"]["deletionGracePeriodSeconds"] = 0
            marked["metadata"]["resourceVersion"] = str(self._bump())
            self._objects[key][(ns, name)] = marked
            self._commit("MODIFIED", key, marked, cur)
            return copy_json(marked)
        return self._remove(rt, ns, name)

    def delete_collection(
        self,
        key: str,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        dry_run: bool = False,
    ) -> ObjList:
        rt = self.resource_type(key)
        flt = self._filter(rt, namespace, label_selector, field_selector)
        out: ObjList = []
        for obj in self._select(key, flt):
            meta = obj["metadata"]
            with contextlib.suppress(ApiError):
                out.append(
                    self.delete(key, meta["name"], namespace=meta.get("namespace"), dry_run=dry_run)
                )
        return out

    def _remove(self, rt: ResourceType, ns: str, name: str) -> Obj:
        key = rt.key
        if key == NAMESPACES_KEY:
            for other, objects in self._objects.items():
                if self._types[other].namespaced:
                    for obj_ns, obj_name in sorted(k for k in objects if k[0] == name):
                        self._remove(self._types[other], obj_ns, obj_name)
        elif key == CRD_KEY and name in self._types and self.is_custom(name):
            served = self._types[name]
            for obj_ns, obj_name in sorted(self._objects.get(name, {})):
                self._remove(served, obj_ns, obj_name)
            self._unregister_crd(name)
        cur = self._objects[key].pop((ns, name))
        gone: Obj = copy_json(cur)
        gone["metadata"]["resourceVersion"] = str(self._bump())
        self._commit("DELETED", key, gone, cur)
        return copy_json(gone)

    def _register_crd(self, crd: Obj) -> None:
        rt = crd_type(crd)
        self._types[rt.key] = rt
        self._objects.setdefault(rt.key, {})
        self._index_types()

    def _unregister_crd(self, key: str) -> None:
        self._types.pop(key, None)
        self._objects.pop(key, None)
        self._index_types()
        for w in list(self._watchers):
            if w.key == key:
                w.queue.put_nowait(None)

    # -- events --

    def subscribe(self) -> asyncio.Queue[tuple[str, str, Obj]]:
        """A queue that receives (type, resource key, object copy) for every committed write."""
        q: asyncio.Queue[tuple[str, str, Obj]] = asyncio.Queue()
        self._subscribers.append(q)
        return q

    def unsubscribe(self, q: asyncio.Queue[tuple[str, str, Obj]]) -> None:
        with contextlib.suppress(ValueError):
            self._subscribers.remove(q)

    def compact(self) -> None:
        """Forget the watch history: watches from an older resourceVersion get 410 Gone."""
        self._history.clear()
        self._oldest = self.resource_version

    def open_watch(self, key: str, since: int | None) -> tuple[RecordList, Watcher]:
        """Register a watcher; returns the records to replay first (synthetic ADDED when `since`
        is None, else the history after `since`). Raises a 410 ApiError if `since` is too old."""
        rt = self.resource_type(key)
        if since is None:
            objects = self._objects[key]
            initial = [
                Record(
                    int(objects[k]["metadata"]["resourceVersion"]),
                    "ADDED",
                    rt.key,
                    objects[k],
                    None,
                )
                for k in sorted(objects)
            ]
        else:
            if since < self._oldest:
                raise gone(since, self._oldest + 1)
            initial = [r for r in self._history if r.rv > since and r.key == key]
        w = Watcher(key)
        self._watchers.add(w)
        return initial, w

    def close_watch(self, w: Watcher) -> None:
        self._watchers.discard(w)

    @property
    def open_watches(self) -> int:
        """How many HTTP watch streams are open on this store."""
        return len(self._watchers)

    # -- HTTP helpers --

    def select_raw(self, key: str, flt: Filter) -> ObjList:
        """Matching stored objects, shared (not copied): for serialisation only."""
        return self._select(key, flt)

    def make_filter(
        self,
        key: str,
        namespace: str | None,
        label_selector: str | None,
        field_selector: str | None,
    ) -> Filter:
        return self._filter(self.resource_type(key), namespace, label_selector, field_selector)

    def oldest_resource_version(self) -> int:
        return self._oldest
