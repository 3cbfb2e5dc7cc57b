"""How a write makes the object to store: the fields the server sets on a create, and what an update
(PUT or patch) may change, with its resourceVersion precondition. Pure: the store commits."""

from __future__ import annotations

import uuid
from typing import Any, Final

from ivytui.sandbox.kubeapi.common import Obj, copy_json, now
from ivytui.sandbox.kubeapi.errors import (
    ApiError,
    bad_request,
    conflict,
    invalid,
    rv_required,
    target,
)
from ivytui.sandbox.kubeapi.resources import BUILTIN_KEYS, CRD_KEY, NAMESPACES_KEY, ResourceType
from ivytui.sandbox.kubeapi.validation import (
    check_kind,
    check_meta,
    crd_status,
    crd_type,
    fold_string_data,
)

SERVER_META: Final = (
    "uid",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
)


def spec_part(obj: Obj, rt: ResourceType) -> Obj:
    skip = ("metadata", "status") if rt.has_status else ("metadata",)
    return {k: v for k, v in obj.items() if k not in skip}


def new_object(rt: ResourceType, obj: Any) -> Obj:
    """A copy of a create's body with its kind checked and `metadata` an object."""
    if not isinstance(obj, dict):
        raise bad_request("the body of a create must be a JSON object")
    new: Obj = copy_json(obj)
    check_kind(rt, new)
    if rt.key == "secrets":
        fold_string_data(new)
    meta = new.get("metadata")
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        raise bad_request("metadata must be an object")
    new["metadata"] = meta
    return new


def initialize(rt: ResourceType, new: Obj, name: str, *, custom: bool) -> None:
    """Set what the server owns on a created object (all but its resourceVersion)."""
    meta: Obj = new["metadata"]
    for field in (*SERVER_META, "resourceVersion", "selfLink", "managedFields"):
        meta.pop(field, None)
    meta["uid"] = str(uuid.uuid4())
    meta["creationTimestamp"] = now()
    meta["generation"] = 1
    if rt.has_status and custom:
        new.pop("status", None)
    if rt.key == NAMESPACES_KEY:
        meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = name
        new.setdefault("spec", {"finalizers": ["kubernetes"]})
        new["status"] = {"phase": "Active"}
    elif rt.key == CRD_KEY:
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


def check_subresource(rt: ResourceType, name: str, subresource: str | None) -> None:
    if subresource is None:
        return
    if subresource != "status" or not rt.has_status:
        raise ApiError(
            404,
            "NotFound",
            "the server could not find the requested resource",
            details=target(rt, name),
        )


def updated_object(
    rt: ResourceType,
    ns: str,
    name: str,
    cur: Obj,
    candidate: Any,
    *,
    subresource: str | None,
    require_rv: bool,
) -> Obj:
    """The object an update of `cur` to `candidate` stores (with `cur`'s resourceVersion).

    Like the registry store: a resourceVersion in `candidate` is a precondition (409 Conflict
    unless it is the stored one); an empty or missing one is an unconditional update where the
    type allows it, else (`require_rv`, custom resources) 422 Invalid. A patch that does not
    mention the resourceVersion leaves the stored one in `candidate`: no precondition.
    """
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
        raise rv_required(rt, name)
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
        for field in (*SERVER_META, "selfLink", "managedFields"):
            if field in cur_meta:
                meta[field] = cur_meta[field]
            else:
                meta.pop(field, None)
        check_meta(rt, name, meta)
        if rt.key == NAMESPACES_KEY:
            labels = meta.setdefault("labels", {})
            labels["kubernetes.io/metadata.name"] = name
        elif rt.key == CRD_KEY:
            crd_rt = crd_type(result)
            if crd_rt.key != name:
                raise invalid(
                    rt, name, "metadata.name", name, 'must be spec.names.plural+"."+spec.group'
                )
    result["metadata"]["resourceVersion"] = cur_meta["resourceVersion"]
    if spec_part(result, rt) != spec_part(cur, rt):
        result["metadata"]["generation"] = int(cur_meta.get("generation", 0)) + 1
    return result
