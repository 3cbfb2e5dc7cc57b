"""The object store: objects by type and namespace, the global resourceVersion and the write
semantics of kube-apiserver (create, update, patch, delete with finalizers and cascades)."""

from __future__ import annotations

import asyncio
import contextlib
import random
from typing import Any, Final

from ivytui.sandbox.kubeapi.common import AnyList, Obj, ObjList, copy_json, now
from ivytui.sandbox.kubeapi.errors import (
    ApiError,
    bad_request,
    delete_conflict,
    invalid,
    not_found,
    required,
    target,
)
from ivytui.sandbox.kubeapi.patch import apply_json_patch, apply_merge_patch
from ivytui.sandbox.kubeapi.records import Event, EventLog, Record, RecordList, Watcher
from ivytui.sandbox.kubeapi.resources import (
    BUILTIN_KEYS,
    BUILTIN_TYPES,
    CRD_KEY,
    NAMESPACES_KEY,
    ResourceType,
)
from ivytui.sandbox.kubeapi.selectors import Filter, parse_field_selector, parse_label_selector
from ivytui.sandbox.kubeapi.validation import check_meta, crd_type, name_error
from ivytui.sandbox.kubeapi.writes import (
    check_subresource,
    initialize,
    new_object,
    updated_object,
)

_GENERATE_ALPHABET: Final = "bcdfghjklmnpqrstvwxz2456789"


class KubeStore:
    """In-memory objects with a global resourceVersion, watch history and subscribers.

    Every committed write bumps `resource_version`, is kept in a bounded history (for watches that
    resume from a resourceVersion) and is delivered to subscribers and HTTP watchers in order.
    Stored objects are never changed in place; callers always get deep copies.
    """

    def __init__(self, *, history: int = 2000) -> None:
        self.resource_version: int = 1
        self._events = EventLog(history, self.resource_version)
        self._types: dict[str, ResourceType] = {t.key: t for t in BUILTIN_TYPES}
        self._objects: dict[str, dict[tuple[str, str], Obj]] = {t.key: {} for t in BUILTIN_TYPES}
        self._gvr: dict[tuple[str, str, str], str] = {}
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
        self._events.commit(Record(self.resource_version, etype, key, obj, prev))

    def create(
        self, key: str, obj: Obj, *, namespace: str | None = None, dry_run: bool = False
    ) -> Obj:
        rt = self.resource_type(key)
        new = new_object(rt, obj)
        meta: Obj = new["metadata"]
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
        initialize(rt, new, name, custom=self.is_custom(key))
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
    ) -> Obj:
        rt, ns, cur = self._stored(key, name, namespace)
        # Custom resources need a resourceVersion on every update (their strategy does not
        # allow unconditional updates); built-in types take an empty one as "no precondition".
        result = updated_object(
            rt, ns, name, cur, candidate, subresource=subresource, require_rv=self.is_custom(key)
        )
        if result == cur:
            return copy_json(cur)
        if dry_run:
            return copy_json(result)
        if cur["metadata"].get("deletionTimestamp") and not result["metadata"].get("finalizers"):
            return self._remove(rt, ns, name)
        result["metadata"]["resourceVersion"] = str(self._bump())
        self._objects[key][(ns, name)] = result
        self._commit("MODIFIED", key, result, cur)
        if key == CRD_KEY:
            self._register_crd(result)
        return copy_json(result)

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
        check_subresource(rt, name, subresource)
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
        check_subresource(rt, name, subresource)
        candidate = apply_json_patch(cur, ops)
        return self._update(
            key,
            name,
            namespace,
            candidate,
            subresource=subresource,
            dry_run=dry_run,
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
        check_subresource(rt, name, subresource)
        return self._update(
            key,
            name,
            namespace,
            copy_json(obj),
            subresource=subresource,
            dry_run=dry_run,
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
        """Delete an object; with finalizers it only gets a deletionTimestamp (MODIFIED).

        `resource_version` is `preconditions.resourceVersion`: None is no precondition; any
        string, even an empty one, must be the stored resourceVersion (409 Conflict otherwise),
        as in kube-apiserver's `rest.BeforeDelete`, which checks it before a dry run too.
        """
        rt, ns, cur = self._stored(key, name, namespace)
        current = cur["metadata"]["resourceVersion"]
        if resource_version is not None and resource_version != current:
            raise delete_conflict(rt, name, resource_version, current)
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
        removed: Obj = copy_json(cur)
        removed["metadata"]["resourceVersion"] = str(self._bump())
        self._commit("DELETED", key, removed, cur)
        return copy_json(removed)

    def _register_crd(self, crd: Obj) -> None:
        rt = crd_type(crd)
        self._types[rt.key] = rt
        self._objects.setdefault(rt.key, {})
        self._index_types()

    def _unregister_crd(self, key: str) -> None:
        self._types.pop(key, None)
        self._objects.pop(key, None)
        self._index_types()
        self._events.end_watchers(key)

    # -- events --

    def subscribe(self) -> asyncio.Queue[Event]:
        """A queue that receives (type, resource key, object copy) for every committed write."""
        return self._events.subscribe()

    def unsubscribe(self, q: asyncio.Queue[Event]) -> None:
        self._events.unsubscribe(q)

    def compact(self) -> None:
        """Forget the watch history: watches from an older resourceVersion get 410 Gone."""
        self._events.compact(self.resource_version)

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
            initial = self._events.since(key, since)
        return initial, self._events.add_watcher(key)

    def close_watch(self, w: Watcher) -> None:
        self._events.remove_watcher(w)

    @property
    def open_watches(self) -> int:
        """How many HTTP watch streams are open on this store."""
        return self._events.watchers

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
        return self._events.oldest
