"""API errors: `ApiError` and the `Status` bodies kube-apiserver sends for each failure."""

from __future__ import annotations

import json
from typing import Any

from ivytui.sandbox.kubeapi.common import Obj, copy_json
from ivytui.sandbox.kubeapi.resources import ResourceType

OPTIMISTIC_LOCK_MESSAGE = (
    "the object has been modified; please apply your changes to the latest version and try again"
)


class ApiError(Exception):
    """A failed API call: the HTTP code and the fields of a Kubernetes `Status`."""

    def __init__(self, code: int, reason: str, message: str, *, details: Obj | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details: Obj = details or {}

    def __str__(self) -> str:
        return f"{self.code} {self.reason}: {self.message}"

    def status(self) -> Obj:
        out: Obj = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
        }
        if self.details:
            out["details"] = copy_json(self.details)
        out["code"] = self.code
        return out


def target(rt: ResourceType | None, name: str | None) -> Obj:
    details: Obj = {}
    if name:
        details["name"] = name
    if rt is not None:
        if rt.group:
            details["group"] = rt.group
        details["kind"] = rt.plural
    return details


def not_found(rt: ResourceType, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{rt.key} "{name}" not found', details=target(rt, name))


def no_route() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource", details={})


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def invalid(rt: ResourceType, name: str, field: str, value: Any, detail: str) -> ApiError:
    shown = json.dumps(value) if isinstance(value, str) else repr(value)
    cause = f"{field}: Invalid value: {shown}: {detail}"
    details: Obj = {"name": name, "kind": rt.kind}
    if rt.group:
        details["group"] = rt.group
    details["causes"] = [
        {
            "reason": "FieldValueInvalid",
            "message": f"Invalid value: {shown}: {detail}",
            "field": field,
        }
    ]
    return ApiError(
        422, "Invalid", f'{rt.qualified_kind} "{name}" is invalid: {cause}', details=details
    )


def required(rt: ResourceType, name: str, field: str, detail: str) -> ApiError:
    details: Obj = {"name": name, "kind": rt.kind}
    if rt.group:
        details["group"] = rt.group
    details["causes"] = [
        {"reason": "FieldValueRequired", "message": f"Required value: {detail}", "field": field}
    ]
    return ApiError(
        422,
        "Invalid",
        f'{rt.qualified_kind} "{name}" is invalid: {field}: Required value: {detail}',
        details=details,
    )


def rv_required(rt: ResourceType, name: str) -> ApiError:
    """An update (PUT or patch) whose object has no resourceVersion, where the type needs one.

    Like the generic registry store: the qualified resource stands where the kind would, and the
    unsigned zero is printed the Go way (`0x0`).
    """
    body = "Invalid value: 0x0: must be specified for an update"
    details: Obj = {"name": name}
    if rt.group:
        details["group"] = rt.group
    details["kind"] = rt.plural
    details["causes"] = [
        {"reason": "FieldValueInvalid", "message": body, "field": "metadata.resourceVersion"}
    ]
    return ApiError(
        422,
        "Invalid",
        f'{rt.key} "{name}" is invalid: metadata.resourceVersion: {body}',
        details=details,
    )


def conflict(rt: ResourceType, name: str) -> ApiError:
    """An update whose resourceVersion is not the stored one (the optimistic lock failed)."""
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {rt.key} "{name}": {OPTIMISTIC_LOCK_MESSAGE}',
        details=target(rt, name),
    )


def delete_conflict(rt: ResourceType, name: str, given: str, current: str) -> ApiError:
    """A delete whose `preconditions.resourceVersion` is not the stored one.

    kube-apiserver checks it in `rest.BeforeDelete`, which names the kind (not the resource).
    """
    details: Obj = {"name": name}
    if rt.group:
        details["group"] = rt.group
    details["kind"] = rt.kind
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {rt.qualified_kind} "{name}": the ResourceVersion '
        f"in the precondition ({given}) does not match the ResourceVersion in record "
        f"({current}). The object might have been modified",
        details=details,
    )


def gone(requested: int, oldest: int) -> ApiError:
    return ApiError(410, "Expired", f"too old resource version: {requested} ({oldest})")


def int_param(raw: str | None, what: str) -> int | None:
    """A query parameter as an int (None when absent or empty); BadRequest when it is not one."""
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise bad_request(f"invalid value for {what}: {raw!r}") from None
