"""A Kubernetes API server emulator: an in-memory object store served over real HTTP on loopback.

`KubeStore` keeps the objects, the global resourceVersion and a bounded watch history; code in the
same process reads and writes it directly. `KubeAPIServer` serves it with the conventions of a real
kube-apiserver (discovery, CRUD, merge and JSON patches, status subresources, selectors, chunked
watch streams with bookmarks and 410 Gone, dry runs, `Status` errors), which is what the
kubernetes_asyncio client and kubectl rely on. Custom resources are served from the
CustomResourceDefinition objects present in the store.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import json
import logging
import os
import random
import re
import socket
import time
import uuid
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, TypeVar, cast

import yaml
from aiohttp import web
from aiohttp.typedefs import Handler

from ivytui.errors import SandboxError

__all__ = [
    "BUILTIN_TYPES",
    "ApiError",
    "KubeAPIServer",
    "KubeStore",
    "ResourceType",
    "crd_manifest",
    "write_kubeconfig",
]

log = logging.getLogger(__name__)

Obj = dict[str, Any]
_ObjList = list[Obj]
_AnyList = list[Any]
_T = TypeVar("_T")

CRD_KEY: Final = "customresourcedefinitions.apiextensions.k8s.io"
NAMESPACES_KEY: Final = "namespaces"

_VERBS: Final = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
_STATUS_VERBS: Final = ["get", "patch", "update"]
_SERVER_VERSION: Final = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2024-12-11T00:00:00Z",
    "goVersion": "go1.23.3",
    "compiler": "gc",
    "platform": "linux/amd64",
}
_DISCOVERY_V2: Final = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
_MERGE_PATCH: Final = "application/merge-patch+json"
_JSON_PATCH: Final = "application/json-patch+json"
_STRATEGIC_PATCH: Final = "application/strategic-merge-patch+json"
_APPLY_PATCH: Final = "application/apply-patch+yaml"


# ---- resource types --------------------------------------------------------------------------


@dataclass(frozen=True)
class ResourceType:
    """One served resource: its group/version/plural, kind and scope."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    short_names: tuple[str, ...] = ()
    has_status: bool = False
    categories: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return self.plural if not self.group else f"{self.plural}.{self.group}"

    @property
    def api_version(self) -> str:
        return self.version if not self.group else f"{self.group}/{self.version}"

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def qualified_kind(self) -> str:
        return self.kind if not self.group else f"{self.kind}.{self.group}"


BUILTIN_TYPES: tuple[ResourceType, ...] = (
    ResourceType(
        "", "v1", "namespaces", "Namespace", namespaced=False, short_names=("ns",), has_status=True
    ),
    ResourceType(
        "", "v1", "pods", "Pod", short_names=("po",), has_status=True, categories=("all",)
    ),
    ResourceType(
        "", "v1", "services", "Service", short_names=("svc",), has_status=True, categories=("all",)
    ),
    ResourceType("", "v1", "secrets", "Secret"),
    ResourceType("", "v1", "configmaps", "ConfigMap", short_names=("cm",)),
    ResourceType("", "v1", "events", "Event", short_names=("ev",)),
    ResourceType(
        "",
        "v1",
        "persistentvolumeclaims",
        "PersistentVolumeClaim",
        short_names=("pvc",),
        has_status=True,
    ),
    ResourceType(
        "apps",
        "v1",
        "deployments",
        "Deployment",
        short_names=("deploy",),
        has_status=True,
        categories=("all",),
    ),
    ResourceType(
        "apps",
        "v1",
        "statefulsets",
        "StatefulSet",
        short_names=("sts",),
        has_status=True,
        categories=("all",),
    ),
    ResourceType("batch", "v1", "jobs", "Job", has_status=True, categories=("all",)),
    ResourceType(
        "batch",
        "v1",
        "cronjobs",
        "CronJob",
        short_names=("cj",),
        has_status=True,
        categories=("all",),
    ),
    ResourceType("coordination.k8s.io", "v1", "leases", "Lease"),
    ResourceType(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        namespaced=False,
        short_names=("crd", "crds"),
        has_status=True,
    ),
)
_BUILTIN_KEYS: Final = frozenset(t.key for t in BUILTIN_TYPES)
_BUILTIN_GROUPS: Final = tuple(dict.fromkeys(t.group for t in BUILTIN_TYPES if t.group))

_FIELD_LABELS: Final[dict[str, frozenset[str]]] = {
    "pods": frozenset(
        {
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        }
    ),
    "events": frozenset(
        {
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        }
    ),
    "secrets": frozenset({"type"}),
    "namespaces": frozenset({"status.phase"}),
    "jobs.batch": frozenset({"status.successful"}),
}


def crd_manifest(
    group: str,
    version: str,
    plural: str,
    kind: str,
    *,
    short_names: Iterable[str] = (),
    namespaced: bool = True,
    has_status: bool = True,
) -> Obj:
    """An apiextensions.k8s.io/v1 CustomResourceDefinition that makes the emulator serve a kind."""
    served: Obj = {
        "name": version,
        "served": True,
        "storage": True,
        "schema": {
            "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        },
    }
    if has_status:
        served["subresources"] = {"status": {}}
    names: Obj = {
        "plural": plural,
        "singular": kind.lower(),
        "kind": kind,
        "listKind": f"{kind}List",
    }
    shorts = list(short_names)
    if shorts:
        names["shortNames"] = shorts
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "names": names,
            "scope": "Namespaced" if namespaced else "Cluster",
            "versions": [served],
        },
    }


# ---- errors ----------------------------------------------------------------------------------


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
            out["details"] = _copy(self.details)
        out["code"] = self.code
        return out


def _target(rt: ResourceType | None, name: str | None) -> Obj:
    details: Obj = {}
    if name:
        details["name"] = name
    if rt is not None:
        if rt.group:
            details["group"] = rt.group
        details["kind"] = rt.plural
    return details


def _not_found(rt: ResourceType, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{rt.key} "{name}" not found', details=_target(rt, name))


def _no_route() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource", details={})


def _bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def _invalid(rt: ResourceType, name: str, field: str, value: Any, detail: str) -> ApiError:
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


def _required(rt: ResourceType, name: str, field: str, detail: str) -> ApiError:
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


def _conflict(rt: ResourceType, name: str) -> ApiError:
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {rt.key} "{name}": the object has been modified; '
        "please apply your changes to the latest version and try again",
        details=_target(rt, name),
    )


def _gone(requested: int, oldest: int) -> ApiError:
    return ApiError(410, "Expired", f"too old resource version: {requested} ({oldest})")


# ---- small helpers ---------------------------------------------------------------------------


def _fold_string_data(secret: Obj) -> None:
    """Like the API server: `stringData` is write-only, merged into `data` as base64."""
    string_data = secret.pop("stringData", None)
    if isinstance(string_data, dict) and string_data:
        data = secret.get("data")
        if not isinstance(data, dict):
            data = {}
        for k, v in string_data.items():
            data[str(k)] = base64.b64encode(str(v).encode()).decode()
        secret["data"] = data


def _copy(value: _T) -> _T:
    """A deep copy of a JSON value (faster than copy.deepcopy)."""
    if isinstance(value, dict):
        return cast(_T, {k: _copy(v) for k, v in value.items()})
    if isinstance(value, list):
        return cast(_T, [_copy(v) for v in value])
    return value


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_QUALIFIED_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_GENERATE_ALPHABET: Final = "bcdfghjklmnpqrstvwxz2456789"


def _label_key_error(key: str) -> str | None:
    prefix, _, name = key.rpartition("/")
    if "/" in prefix:
        return "a qualified name must have at most one '/'"
    if prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        return "prefix part must be a lowercase RFC 1123 subdomain"
    if not name or len(name) > 63 or not _QUALIFIED_NAME.match(name):
        return (
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must "
            "start and end with an alphanumeric character, at most 63 characters"
        )
    return None


def _label_value_error(value: str) -> str | None:
    if len(value) > 63 or not _LABEL_VALUE.match(value):
        return (
            "a valid label must be an empty string or consist of alphanumeric characters, "
            "'-', '_' or '.', and must start and end with an alphanumeric character, "
            "at most 63 characters"
        )
    return None


def _name_error(rt: ResourceType, name: str) -> str | None:
    if rt.key == NAMESPACES_KEY:
        if len(name) > 63 or not _DNS_LABEL.match(name):
            return (
                "a lowercase RFC 1123 label must consist of lower case alphanumeric "
                "characters or '-', and must start and end with an alphanumeric character"
            )
        return None
    if rt.key == "services":
        if len(name) > 63 or not _DNS1035_LABEL.match(name):
            return (
                "a DNS-1035 label must consist of lower case alphanumeric characters or "
                "'-', start with an alphabetic character, and end with an alphanumeric "
                "character"
            )
        return None
    if len(name) > 253 or not _DNS_SUBDOMAIN.match(name):
        return (
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
            "characters, '-' or '.', and must start and end with an alphanumeric character"
        )
    return None


def _int_param(raw: str | None, what: str) -> int | None:
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise _bad_request(f"invalid value for {what}: {raw!r}") from None


# ---- selectors -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _LabelReq:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!exists", "gt", "lt"
    values: frozenset[str] = frozenset()

    def matches(self, labels: dict[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key, "")
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
        if self.op == "!exists":
            return not present
        if not present:
            return False
        try:
            number = int(value)
        except ValueError:
            return False
        bound = int(next(iter(self.values)))
        return number > bound if self.op == "gt" else number < bound


_SEL_SET = re.compile(r"^([^\s!=<>(),]+)\s+(in|notin)\s*\(([^()]*)\)$")
_SEL_CMP = re.compile(r"^([^\s!=<>(),]+)\s*(==|=|!=|>|<)\s*([^\s!=<>(),]*)$")
_SEL_EXISTS = re.compile(r"^(!?)\s*([^\s!=<>(),]+)$")


def _split_terms(selector: str) -> list[str]:
    terms: list[str] = []
    depth = 0
    start = 0
    for i, ch in enumerate(selector):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            terms.append(selector[start:i])
            start = i + 1
    terms.append(selector[start:])
    return [t.strip() for t in terms]


def parse_label_selector(selector: str | None) -> tuple[_LabelReq, ...]:
    """Parse a label selector (`a=b,c!=d,e in (f,g),h notin (i),j,!k,l>3`); BadRequest if bad."""
    if selector is None or not selector.strip():
        return ()
    reqs: list[_LabelReq] = []
    for term in _split_terms(selector):
        req: _LabelReq | None = None
        if m := _SEL_SET.match(term):
            values = frozenset(v.strip() for v in m.group(3).split(",") if v.strip())
            req = _LabelReq(m.group(1), m.group(2), values)
        elif m := _SEL_CMP.match(term):
            op = {"==": "=", "=": "=", "!=": "!=", ">": "gt", "<": "lt"}[m.group(2)]
            if op in ("gt", "lt"):
                try:
                    int(m.group(3))
                except ValueError:
                    raise _bad_request(
                        f"unable to parse requirement: for 'Gt', 'Lt' operators, the value "
                        f"must be an integer: {term!r}"
                    ) from None
            req = _LabelReq(m.group(1), op, frozenset({m.group(3)}))
        elif m := _SEL_EXISTS.match(term):
            req = _LabelReq(m.group(2), "!exists" if m.group(1) else "exists")
        if req is None:
            raise _bad_request(
                f"unable to parse requirement: found '{term}', expected: "
                "identifier, '=', '!=', 'in', 'notin', '!' or ','"
            )
        if err := _label_key_error(req.key):
            raise _bad_request(
                f"unable to parse requirement: key: Invalid value: {req.key!r}: {err}"
            )
        for v in req.values:
            if req.op not in ("gt", "lt") and (err := _label_value_error(v)):
                raise _bad_request(
                    f"unable to parse requirement: values[0][{req.key}]: "
                    f"Invalid value: {v!r}: {err}"
                )
        reqs.append(req)
    return tuple(reqs)


def _field_value(obj: Obj, path: str) -> str:
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return ""
        cur = cur.get(part)
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    if isinstance(cur, dict | list):
        return ""
    return str(cur)


def parse_field_selector(
    selector: str | None, rt: ResourceType
) -> tuple[tuple[str, bool, str], ...]:
    """Parse a field selector into (field, equal?, value) terms; BadRequest for unknown fields."""
    if selector is None or not selector.strip():
        return ()
    allowed = {"metadata.name", "metadata.namespace"} | _FIELD_LABELS.get(rt.key, frozenset())
    out: list[tuple[str, bool, str]] = []
    for term in _split_terms(selector):
        m = re.match(r"^([^=!]+?)\s*(==|=|!=)\s*(.*)$", term)
        if m is None:
            raise _bad_request(f"invalid selector: '{selector}'; can't understand '{term}'")
        field, op, value = m.group(1).strip(), m.group(2), m.group(3).strip()
        if field not in allowed:
            raise _bad_request(f"field label not supported: {field}")
        out.append((field, op != "!=", value))
    return tuple(out)


@dataclass(frozen=True)
class _Filter:
    namespace: str | None
    labels: tuple[_LabelReq, ...]
    fields: tuple[tuple[str, bool, str], ...]

    def matches(self, obj: Obj) -> bool:
        meta = obj.get("metadata") or {}
        if self.namespace is not None and meta.get("namespace", "") != self.namespace:
            return False
        if self.labels:
            labels = meta.get("labels") or {}
            if not all(r.matches(labels) for r in self.labels):
                return False
        for field, equal, value in self.fields:
            if (_field_value(obj, field) == value) != equal:
                return False
        return True


# ---- patches ---------------------------------------------------------------------------------


def apply_merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch; `target` is modified in place when it is an object."""
    if not isinstance(patch, dict):
        return _copy(patch)
    result: Obj = target if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            result.pop(k, None)
        else:
            result[k] = apply_merge_patch(result.get(k), v)
    return result


class _PatchError(Exception):
    pass


def _pointer(path: Any) -> list[str]:
    if not isinstance(path, str):
        raise _PatchError(f"invalid JSON pointer: {path!r}")
    if path == "":
        return []
    if not path.startswith("/"):
        raise _PatchError(f"JSON pointer must start with '/': {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _index(token: str, size: int, *, allow_end: bool) -> int:
    if token == "-" and allow_end:
        return size
    if not token.isdigit() or (len(token) > 1 and token[0] == "0"):
        raise _PatchError(f"invalid array index: {token!r}")
    idx = int(token)
    if idx > size or (idx == size and not allow_end):
        raise _PatchError(f"array index out of bounds: {idx}")
    return idx


def _walk(doc: Any, tokens: list[str]) -> Any:
    cur = doc
    for tok in tokens:
        if isinstance(cur, dict):
            if tok not in cur:
                raise _PatchError(f"doc is missing path: /{'/'.join(tokens)}")
            cur = cur[tok]
        elif isinstance(cur, list):
            cur = cur[_index(tok, len(cur), allow_end=False)]
        else:
            raise _PatchError(f"doc is missing path: /{'/'.join(tokens)}")
    return cur


def _add(doc: Any, tokens: list[str], value: Any) -> Any:
    if not tokens:
        return value
    parent = _walk(doc, tokens[:-1])
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(last, len(parent), allow_end=True), value)
    else:
        raise _PatchError(f"add operation does not apply: doc is missing path: /{'/'.join(tokens)}")
    return doc


def _remove(doc: Any, tokens: list[str]) -> Any:
    if not tokens:
        raise _PatchError("remove operation does not apply to the whole document")
    parent = _walk(doc, tokens[:-1])
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise _PatchError(
                f"remove operation does not apply: doc is missing path: /{'/'.join(tokens)}"
            )
        return parent.pop(last)
    if isinstance(parent, list):
        return parent.pop(_index(last, len(parent), allow_end=False))
    raise _PatchError(f"remove operation does not apply: doc is missing path: /{'/'.join(tokens)}")


def _replace(doc: Any, tokens: list[str], value: Any) -> Any:
    if not tokens:
        return value
    parent = _walk(doc, tokens[:-1])
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise _PatchError(
                f"replace operation does not apply: doc is missing key: /{'/'.join(tokens)}"
            )
        parent[last] = value
    elif isinstance(parent, list):
        parent[_index(last, len(parent), allow_end=False)] = value
    else:
        raise _PatchError(
            f"replace operation does not apply: doc is missing path: /{'/'.join(tokens)}"
        )
    return doc


def apply_json_patch(doc: Any, ops: Any) -> Any:
    """RFC 6902 JSON patch on a copy of `doc`.

    A body that is not a list is a BadRequest; an operation that cannot be applied is Invalid (422).
    """
    if not isinstance(ops, list):
        shape = "object" if isinstance(ops, dict) else type(ops).__name__
        raise _bad_request(
            f"json: cannot unmarshal {shape} into Go value of type []handlers.jsonPatchOp"
        )
    doc = _copy(doc)
    for op in ops:
        if not isinstance(op, dict):
            raise _bad_request(
                "json: cannot unmarshal a non-object operation into handlers.jsonPatchOp"
            )
        try:
            kind = op.get("op")
            path = _pointer(op.get("path"))
            if kind in ("add", "replace", "test") and "value" not in op:
                raise _PatchError(f"{kind} operation is missing 'value'")
            if kind == "add":
                doc = _add(doc, path, _copy(op["value"]))
            elif kind == "remove":
                _remove(doc, path)
            elif kind == "replace":
                doc = _replace(doc, path, _copy(op["value"]))
            elif kind == "move":
                source = _pointer(op.get("from"))
                if path[: len(source)] == source and len(path) > len(source):
                    raise _PatchError("move operation cannot move a value into one of its children")
                if source != path:
                    value = _remove(doc, source) if source else doc
                    doc = _add(doc, path, value)
            elif kind == "copy":
                source = _pointer(op.get("from"))
                doc = _add(doc, path, _copy(_walk(doc, source)))
            elif kind == "test":
                if _walk(doc, path) != op["value"]:
                    raise _PatchError(f"testing value {op.get('path')} failed: test failed")
            else:
                raise _PatchError(f"Unexpected kind: {kind!r}")
        except _PatchError as exc:
            raise ApiError(422, "Invalid", str(exc)) from None
    return doc


# ---- the store -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Record:
    rv: int
    type: str
    key: str
    obj: Obj
    prev: Obj | None


_RecordList = list[_Record]


class _Watcher:
    __slots__ = ("key", "queue")

    def __init__(self, key: str) -> None:
        self.key = key
        self.queue: asyncio.Queue[_Record | None] = asyncio.Queue()


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
        self._history: deque[_Record] = deque()
        self._oldest = self.resource_version
        self._types: dict[str, ResourceType] = {t.key: t for t in BUILTIN_TYPES}
        self._objects: dict[str, dict[tuple[str, str], Obj]] = {t.key: {} for t in BUILTIN_TYPES}
        self._gvr: dict[tuple[str, str, str], str] = {}
        self._subscribers: list[asyncio.Queue[tuple[str, str, Obj]]] = []
        self._watchers: set[_Watcher] = set()
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
            (t for k, t in self._types.items() if k not in _BUILTIN_KEYS), key=lambda t: t.key
        )
        return builtin + custom

    def key_for(self, group: str, version: str, plural: str) -> str | None:
        return self._gvr.get((group, version, plural))

    def is_custom(self, key: str) -> bool:
        return key not in _BUILTIN_KEYS

    # -- reads --

    def _scope(self, rt: ResourceType, namespace: str | None) -> str:
        if rt.namespaced:
            if not namespace:
                raise _bad_request(f"a namespace is required for {rt.key}")
            return namespace
        if namespace:
            raise _bad_request(f"{rt.key} is not namespaced")
        return ""

    def _stored(self, key: str, name: str, namespace: str | None) -> tuple[ResourceType, str, Obj]:
        rt = self.resource_type(key)
        ns = self._scope(rt, namespace)
        obj = self._objects[key].get((ns, name))
        if obj is None:
            raise _not_found(rt, name)
        return rt, ns, obj

    def get(self, key: str, name: str, *, namespace: str | None = None) -> Obj:
        return _copy(self._stored(key, name, namespace)[2])

    def try_get(self, key: str, name: str, *, namespace: str | None = None) -> Obj | None:
        rt = self.resource_type(key)
        ns = self._scope(rt, namespace)
        obj = self._objects[key].get((ns, name))
        return None if obj is None else _copy(obj)

    def _filter(
        self,
        rt: ResourceType,
        namespace: str | None,
        label_selector: str | None,
        field_selector: str | None,
    ) -> _Filter:
        if not rt.namespaced:
            namespace = None
        return _Filter(
            namespace or None,
            parse_label_selector(label_selector),
            parse_field_selector(field_selector, rt),
        )

    def _select(self, key: str, flt: _Filter) -> _ObjList:
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
    ) -> tuple[_ObjList, str]:
        rt = self.resource_type(key)
        flt = self._filter(rt, namespace, label_selector, field_selector)
        return [_copy(o) for o in self._select(key, flt)], str(self.resource_version)

    # -- writes --

    def _bump(self) -> int:
        self.resource_version += 1
        return self.resource_version

    def _commit(self, etype: str, key: str, obj: Obj, prev: Obj | None) -> None:
        rec = _Record(self.resource_version, etype, key, obj, prev)
        self._history.append(rec)
        while len(self._history) > self._history_size:
            self._oldest = self._history.popleft().rv
        for w in list(self._watchers):
            if w.key == key:
                w.queue.put_nowait(rec)
        for q in list(self._subscribers):
            q.put_nowait((etype, key, _copy(obj)))

    def _check_kind(self, rt: ResourceType, obj: Obj) -> None:
        api_version = obj.get("apiVersion")
        kind = obj.get("kind")
        if api_version in (None, ""):
            obj["apiVersion"] = rt.api_version
        elif api_version != rt.api_version:
            raise _bad_request(
                f"the API version in the data ({api_version}) does not match the expected API "
                f"version ({rt.api_version})"
            )
        if kind in (None, ""):
            obj["kind"] = rt.kind
        elif kind != rt.kind:
            raise _bad_request(
                f"the kind in the data ({kind}) does not match the expected kind ({rt.kind})"
            )

    def _check_meta(self, rt: ResourceType, name: str, meta: Obj) -> None:
        for field in ("labels", "annotations"):
            value = meta.get(field)
            if value is None:
                meta.pop(field, None)
                continue
            if not isinstance(value, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in value.items()
            ):
                raise _bad_request(
                    f"json: cannot unmarshal metadata.{field} into Go struct field "
                    f"ObjectMeta.metadata.{field} of type map[string]string"
                )
            for k, v in value.items():
                if err := _label_key_error(k):
                    raise _invalid(rt, name, f"metadata.{field}", k, err)
                if field == "labels" and (err := _label_value_error(v)):
                    raise _invalid(rt, name, f"metadata.{field}", v, err)
        finalizers = meta.get("finalizers")
        if finalizers is not None and (
            not isinstance(finalizers, list) or not all(isinstance(f, str) for f in finalizers)
        ):
            raise _bad_request(
                "json: cannot unmarshal metadata.finalizers into Go struct field "
                "ObjectMeta.metadata.finalizers of type []string"
            )

    def create(
        self, key: str, obj: Obj, *, namespace: str | None = None, dry_run: bool = False
    ) -> Obj:
        rt = self.resource_type(key)
        if not isinstance(obj, dict):
            raise _bad_request("the body of a create must be a JSON object")
        new: Obj = _copy(obj)
        self._check_kind(rt, new)
        if key == "secrets":
            _fold_string_data(new)
        meta = new.get("metadata")
        if meta is None:
            meta = {}
        if not isinstance(meta, dict):
            raise _bad_request("metadata must be an object")
        new["metadata"] = meta
        if rt.namespaced:
            body_ns = meta.get("namespace")
            if namespace and body_ns and body_ns != namespace:
                raise _bad_request(
                    "the namespace of the provided object does not match the "
                    "namespace sent on the request"
                )
            ns = namespace or body_ns
            if not ns:
                raise _bad_request(f"a namespace is required to create {rt.key}")
            meta["namespace"] = ns
            if ("", ns) not in self._objects[NAMESPACES_KEY]:
                raise _not_found(self._types[NAMESPACES_KEY], ns)
        else:
            if namespace:
                raise _bad_request(f"{rt.key} is not namespaced")
            meta.pop("namespace", None)
            ns = ""
        objects = self._objects[key]
        name = meta.get("name")
        if not name:
            prefix = meta.get("generateName")
            if not prefix or not isinstance(prefix, str):
                raise _required(rt, "", "metadata.name", "name or generateName is required")
            while True:
                name = prefix + "".join(random.choices(_GENERATE_ALPHABET, k=5))
                if (ns, name) not in objects:
                    break
            meta["name"] = name
        if not isinstance(name, str):
            raise _bad_request("metadata.name must be a string")
        if err := _name_error(rt, name):
            raise _invalid(rt, name, "metadata.name", name, err)
        self._check_meta(rt, name, meta)
        if (ns, name) in objects:
            raise ApiError(
                409, "AlreadyExists", f'{rt.key} "{name}" already exists', details=_target(rt, name)
            )
        for field in (*_SERVER_META, "resourceVersion", "selfLink", "managedFields"):
            meta.pop(field, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = _now()
        meta["generation"] = 1
        if rt.has_status and self.is_custom(key):
            new.pop("status", None)
        if key == NAMESPACES_KEY:
            meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = name
            new.setdefault("spec", {"finalizers": ["kubernetes"]})
            new["status"] = {"phase": "Active"}
        elif key == CRD_KEY:
            crd_rt = _crd_type(new)
            if crd_rt.key in _BUILTIN_KEYS:
                raise _invalid(
                    rt,
                    name,
                    "spec.names.plural",
                    crd_rt.plural,
                    "conflicts with a built-in resource",
                )
            new["status"] = _crd_status(new, crd_rt)
        if dry_run:
            return _copy(new)
        meta["resourceVersion"] = str(self._bump())
        objects[(ns, name)] = new
        self._commit("ADDED", key, new, None)
        if key == CRD_KEY:
            self._register_crd(new)
        return _copy(new)

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
            raise _bad_request("the object must be a JSON object")
        meta = candidate.get("metadata")
        if meta is None:
            meta = {}
        if not isinstance(meta, dict):
            raise _bad_request("metadata must be an object")
        candidate["metadata"] = meta
        given = meta.get("resourceVersion")
        cur_meta: Obj = cur["metadata"]
        if given not in (None, ""):
            if str(given) != cur_meta["resourceVersion"]:
                raise _conflict(rt, name)
        elif require_rv:
            raise _invalid(
                rt, name, "metadata.resourceVersion", 0, "must be specified for an update"
            )
        self._check_kind(rt, candidate)
        if meta.get("name", name) != name:
            raise _bad_request(
                f"the name of the object ({meta.get('name')}) does not match the "
                f"name on the URL ({name})"
            )
        if rt.namespaced:
            if meta.get("namespace", ns) != ns:
                raise _bad_request(
                    "the namespace of the provided object does not match the "
                    "namespace sent on the request"
                )
        if subresource == "status":
            result: Obj = _copy(cur)
            if "status" in candidate:
                result["status"] = candidate["status"]
            else:
                result.pop("status", None)
        else:
            result = candidate
            if rt.has_status:
                if "status" in cur:
                    result["status"] = _copy(cur["status"])
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
                    raise _invalid(rt, name, f"metadata.{field}", meta[field], detail)
            for field in (*_SERVER_META, "selfLink", "managedFields"):
                if field in cur_meta:
                    meta[field] = cur_meta[field]
                else:
                    meta.pop(field, None)
            self._check_meta(rt, name, meta)
            if key == NAMESPACES_KEY:
                labels = meta.setdefault("labels", {})
                labels["kubernetes.io/metadata.name"] = name
            elif key == CRD_KEY:
                crd_rt = _crd_type(result)
                if crd_rt.key != name:
                    raise _invalid(
                        rt, name, "metadata.name", name, 'must be spec.names.plural+"."+spec.group'
                    )
        result["metadata"]["resourceVersion"] = cur_meta["resourceVersion"]
        if _spec_part(result, rt) != _spec_part(cur, rt):
            result["metadata"]["generation"] = int(cur_meta.get("generation", 0)) + 1
        if result == cur:
            return _copy(cur)
        if dry_run:
            return _copy(result)
        if cur_meta.get("deletionTimestamp") and not result["metadata"].get("finalizers"):
            return self._remove(rt, ns, name)
        result["metadata"]["resourceVersion"] = str(self._bump())
        self._objects[key][(ns, name)] = result
        self._commit("MODIFIED", key, result, cur)
        if key == CRD_KEY:
            self._register_crd(result)
        return _copy(result)

    @staticmethod
    def _check_subresource(rt: ResourceType, name: str, subresource: str | None) -> None:
        if subresource is None:
            return
        if subresource != "status" or not rt.has_status:
            raise ApiError(
                404,
                "NotFound",
                "the server could not find the requested resource",
                details=_target(rt, name),
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
            raise _bad_request("a merge patch must be a JSON object")
        candidate = apply_merge_patch(_copy(cur), patch)
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
        ops: _AnyList,
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
            _copy(obj),
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
            raise _conflict(rt, name)
        if dry_run:
            return _copy(cur)
        if cur["metadata"].get("finalizers") and key not in (NAMESPACES_KEY, CRD_KEY):
            if cur["metadata"].get("deletionTimestamp"):
                return _copy(cur)
            marked: Obj = _copy(cur)
            marked["metadata"]["deletionTimestamp"] = _now()
            marked["metadata"]["deletionGracePeriodSeconds"] = 0
            marked["metadata"]["resourceVersion"] = str(self._bump())
            self._objects[key][(ns, name)] = marked
            self._commit("MODIFIED", key, marked, cur)
            return _copy(marked)
        return self._remove(rt, ns, name)

    def delete_collection(
        self,
        key: str,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        dry_run: bool = False,
    ) -> _ObjList:
        rt = self.resource_type(key)
        flt = self._filter(rt, namespace, label_selector, field_selector)
        out: _ObjList = []
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
        gone: Obj = _copy(cur)
        gone["metadata"]["resourceVersion"] = str(self._bump())
        self._commit("DELETED", key, gone, cur)
        return _copy(gone)

    def _register_crd(self, crd: Obj) -> None:
        rt = _crd_type(crd)
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

    def open_watch(self, key: str, since: int | None) -> tuple[_RecordList, _Watcher]:
        """Register a watcher; returns the records to replay first (synthetic ADDED when `since`
        is None, else the history after `since`). Raises a 410 ApiError if `since` is too old."""
        rt = self.resource_type(key)
        if since is None:
            objects = self._objects[key]
            initial = [
                _Record(
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
                raise _gone(since, self._oldest + 1)
            initial = [r for r in self._history if r.rv > since and r.key == key]
        w = _Watcher(key)
        self._watchers.add(w)
        return initial, w

    def close_watch(self, w: _Watcher) -> None:
        self._watchers.discard(w)

    @property
    def open_watches(self) -> int:
        """How many HTTP watch streams are open on this store."""
        return len(self._watchers)

    # -- HTTP helpers --

    def select_raw(self, key: str, flt: _Filter) -> _ObjList:
        """Matching stored objects, shared (not copied): for serialisation only."""
        return self._select(key, flt)

    def make_filter(
        self,
        key: str,
        namespace: str | None,
        label_selector: str | None,
        field_selector: str | None,
    ) -> _Filter:
        return self._filter(self.resource_type(key), namespace, label_selector, field_selector)

    def oldest_resource_version(self) -> int:
        return self._oldest


def _crd_type(crd: Obj) -> ResourceType:
    rt = next(t for t in BUILTIN_TYPES if t.key == CRD_KEY)
    name = str((crd.get("metadata") or {}).get("name", ""))
    spec = crd.get("spec")
    if not isinstance(spec, dict):
        raise _required(rt, name, "spec", "spec is required")
    group = spec.get("group")
    if not isinstance(group, str) or "." not in group:
        raise _invalid(rt, name, "spec.group", group, "should be a domain with at least one dot")
    names = spec.get("names")
    if not isinstance(names, dict):
        raise _required(rt, name, "spec.names", "names are required")
    plural, kind = names.get("plural"), names.get("kind")
    if not isinstance(plural, str) or not _DNS_LABEL.match(plural):
        raise _invalid(rt, name, "spec.names.plural", plural, "must be a lowercase DNS label")
    if not isinstance(kind, str) or not kind:
        raise _required(rt, name, "spec.names.kind", "kind is required")
    if name != f"{plural}.{group}":
        raise _invalid(rt, name, "metadata.name", name, 'must be spec.names.plural+"."+spec.group')
    scope = spec.get("scope")
    if scope not in ("Namespaced", "Cluster"):
        raise _invalid(rt, name, "spec.scope", scope, 'supported values: "Cluster", "Namespaced"')
    versions = spec.get("versions")
    if not isinstance(versions, list) or not versions:
        raise _required(rt, name, "spec.versions", "must have at least one version")
    served = [v for v in versions if isinstance(v, dict) and v.get("served")]
    storage = [v for v in versions if isinstance(v, dict) and v.get("storage")]
    if len(storage) != 1:
        raise _invalid(
            rt,
            name,
            "spec.versions",
            len(storage),
            "must have exactly one version marked as storage version",
        )
    chosen = storage[0] if storage[0].get("served") else (served[0] if served else None)
    if chosen is None or not isinstance(chosen.get("name"), str):
        raise _invalid(rt, name, "spec.versions", 0, "must have at least one served version")
    subresources = chosen.get("subresources") or {}
    shorts = names.get("shortNames") or []
    categories = names.get("categories") or []
    return ResourceType(
        group=group,
        version=chosen["name"],
        plural=plural,
        kind=kind,
        namespaced=scope == "Namespaced",
        short_names=tuple(str(s) for s in shorts),
        has_status=isinstance(subresources, dict) and "status" in subresources,
        categories=tuple(str(c) for c in categories),
    )


def _crd_status(crd: Obj, rt: ResourceType) -> Obj:
    now = _now()
    names = dict(crd["spec"]["names"])
    names.setdefault("singular", rt.singular)
    names.setdefault("listKind", f"{rt.kind}List")
    return {
        "acceptedNames": names,
        "conditions": [
            {
                "type": "NamesAccepted",
                "status": "True",
                "lastTransitionTime": now,
                "reason": "NoConflicts",
                "message": "no conflicts found",
            },
            {
                "type": "Established",
                "status": "True",
                "lastTransitionTime": now,
                "reason": "InitialNamesAccepted",
                "message": "the initial names have been accepted",
            },
        ],
        "storedVersions": [rt.version],
    }


# ---- the HTTP server -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Target:
    rt: ResourceType
    namespace: str | None
    name: str | None
    subresource: str | None


def _wants(request: web.Request, marker: str) -> bool:
    return marker in request.headers.get("Accept", "")


def _json(value: Any, status: int = 200, content_type: str = "application/json") -> web.Response:
    return web.Response(body=_dumps(value), status=status, headers={"Content-Type": content_type})


def _status_response(err: ApiError) -> web.Response:
    return _json(err.status(), status=err.code)


@dataclass
class _LogSlot:
    entry: Obj
    logged: bool = False


_LOG_KEY: Final = web.RequestKey("ivytui_log", _LogSlot)


def _bool_param(raw: str | None) -> bool:
    return raw in ("1", "t", "T", "true", "TRUE", "True")


class KubeAPIServer:
    """Serves a `KubeStore` over HTTP with the conventions of kube-apiserver."""

    def __init__(self, store: KubeStore, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.store = store
        self.host = host
        self._port = port
        self.requests: list[Obj] = []
        self.bookmark_interval: float = 5.0
        self.aggregated_discovery = True
        self.app = web.Application(middlewares=[self._middleware], client_max_size=64 << 20)
        self._runner: web.AppRunner | None = None
        self._streams: set[_Watcher] = set()
        self._stopping = False
        r = self.app.router
        r.add_get("/version", self._version)
        for probe in ("/healthz", "/livez", "/readyz"):
            r.add_get(probe, self._ok)
        r.add_get("/openapi/v3", self._openapi_root)
        r.add_get("/openapi/v3/{gv:.+}", self._openapi_gv)
        r.add_get("/_sandbox/requests", self._sandbox_requests)
        r.add_post("/_sandbox/compact", self._sandbox_compact)
        for path in ("/api", "/api/{tail:.*}", "/apis", "/apis/{tail:.*}"):
            r.add_route("*", path, self._dispatch)

    # -- lifecycle --

    async def start(self) -> int:
        if self._runner is not None:
            raise SandboxError("the Kubernetes API emulator is already running")
        if self.host not in ("127.0.0.1", "localhost", "::1") and not self.host.startswith("127."):
            raise SandboxError(
                f"the Kubernetes API emulator binds only to loopback, not {self.host}"
            )
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self._port))
            sock.listen(128)
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            raise SandboxError(
                f"cannot listen on {self.host}:{self._port} for the Kubernetes API emulator: "
                f"{exc.strerror or exc}"
            ) from exc
        self._port = int(sock.getsockname()[1])
        self._stopping = False
        runner = web.AppRunner(
            self.app, handler_cancellation=True, shutdown_timeout=1.0, access_log=None
        )
        await runner.setup()
        site = web.SockSite(runner, sock)
        await site.start()
        self._runner = runner
        return self._port

    async def stop(self) -> None:
        self._stopping = True
        for w in list(self._streams):
            w.queue.put_nowait(None)
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        if not self._port:
            raise SandboxError("the Kubernetes API emulator has no port until it is started")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self._port}"

    # -- logging middleware --

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/_sandbox/"):
            return await handler(request)
        entry: Obj = {
            "time": time.time(),
            "method": request.method,
            "verb": "discovery" if request.path in ("/version", "/api", "/apis") else "other",
            "path": request.path,
            "query": request.query_string,
            "status": None,
            "user_agent": request.headers.get("User-Agent", ""),
        }
        slot = _LogSlot(entry)
        request[_LOG_KEY] = slot
        started = time.perf_counter()
        resp: web.StreamResponse | None = None
        try:
            try:
                resp = await handler(request)
            except ApiError as err:
                resp = _status_response(err)
            except web.HTTPNotFound:
                resp = _status_response(_no_route())
            except web.HTTPMethodNotAllowed:
                resp = _status_response(
                    ApiError(
                        405,
                        "MethodNotAllowed",
                        "the server does not allow this method on the requested resource",
                    )
                )
            except (asyncio.CancelledError, ConnectionResetError):
                raise
            except Exception as exc:
                log.exception("kube api emulator: %s %s failed", request.method, request.path)
                resp = _status_response(
                    ApiError(500, "InternalError", f"Internal error occurred: {exc}")
                )
            return resp
        finally:
            if not slot.logged:
                entry["status"] = resp.status if resp is not None else 499
                entry["duration_ms"] = round((time.perf_counter() - started) * 1000, 3)
                slot.logged = True
                self.requests.append(entry)

    @staticmethod
    def _set_verb(request: web.Request, verb: str, **extra: Any) -> None:
        slot = request.get(_LOG_KEY)
        if slot is not None:
            slot.entry["verb"] = verb
            slot.entry.update(extra)

    # -- diagnostics --

    async def _sandbox_requests(self, request: web.Request) -> web.Response:
        since = _int_param(request.query.get("since"), "since") or 0
        return _json({"next": len(self.requests), "requests": self.requests[since:]})

    async def _sandbox_compact(self, request: web.Request) -> web.Response:
        self.store.compact()
        return _json({"resourceVersion": str(self.store.resource_version)})

    async def _version(self, request: web.Request) -> web.Response:
        return _json(_SERVER_VERSION)

    async def _ok(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    # -- discovery --

    def _group_versions(self) -> dict[str, list[str]]:
        groups: dict[str, list[str]] = {g: [] for g in _BUILTIN_GROUPS}
        for rt in self.store.types():
            if rt.group:
                versions = groups.setdefault(rt.group, [])
                if rt.version not in versions:
                    versions.append(rt.version)
        return {g: v for g, v in groups.items() if v}

    def _api_group(self, group: str, versions: list[str]) -> Obj:
        entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        return {"name": group, "versions": entries, "preferredVersion": entries[0]}

    def _resource_list(self, group: str, version: str) -> Obj | None:
        types = [t for t in self.store.types() if t.group == group and t.version == version]
        if not types:
            return None
        resources: list[Obj] = []
        for t in types:
            entry: Obj = {
                "name": t.plural,
                "singularName": t.singular,
                "namespaced": t.namespaced,
                "kind": t.kind,
                "verbs": list(_VERBS),
            }
            if t.short_names:
                entry["shortNames"] = list(t.short_names)
            if t.categories:
                entry["categories"] = list(t.categories)
            resources.append(entry)
            if t.has_status:
                resources.append(
                    {
                        "name": f"{t.plural}/status",
                        "singularName": "",
                        "namespaced": t.namespaced,
                        "kind": t.kind,
                        "verbs": list(_STATUS_VERBS),
                    }
                )
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version,
            "resources": resources,
        }

    def _aggregated(self, core: bool) -> Obj:
        items: list[Obj] = []
        groups = {"": ["v1"]} if core else self._group_versions()
        for group, versions in groups.items():
            entries: list[Obj] = []
            for version in versions:
                resources: list[Obj] = []
                for t in self.store.types():
                    if t.group != group or t.version != version:
                        continue
                    kind = {"group": group, "version": version, "kind": t.kind}
                    res: Obj = {
                        "resource": t.plural,
                        "responseKind": kind,
                        "scope": "Namespaced" if t.namespaced else "Cluster",
                        "singularResource": t.singular,
                        "verbs": list(_VERBS),
                    }
                    if t.short_names:
                        res["shortNames"] = list(t.short_names)
                    if t.categories:
                        res["categories"] = list(t.categories)
                    if t.has_status:
                        res["subresources"] = [
                            {
                                "subresource": "status",
                                "responseKind": kind,
                                "verbs": list(_STATUS_VERBS),
                            }
                        ]
                    resources.append(res)
                entries.append({"version": version, "resources": resources, "freshness": "Current"})
            items.append(
                {"metadata": {"name": group, "creationTimestamp": None}, "versions": entries}
            )
        return {
            "kind": "APIGroupDiscoveryList",
            "apiVersion": "apidiscovery.k8s.io/v2",
            "metadata": {},
            "items": items,
        }

    def _discovery(self, request: web.Request, parts: list[str]) -> web.Response:
        self._set_verb(request, "discovery")
        if request.method != "GET":
            raise ApiError(405, "MethodNotAllowed", "discovery documents are read-only")
        aggregated = (
            self.aggregated_discovery
            and _wants(request, "as=APIGroupDiscoveryList")
            and _wants(request, "v=v2;")
        )
        if parts == ["api"]:
            if aggregated:
                return _json(self._aggregated(core=True), content_type=_DISCOVERY_V2)
            return _json(
                {
                    "kind": "APIVersions",
                    "versions": ["v1"],
                    "serverAddressByClientCIDRs": [
                        {"clientCIDR": "0.0.0.0/0", "serverAddress": f"{self.host}:{self._port}"}
                    ],
                }
            )
        if parts == ["apis"]:
            if aggregated:
                return _json(self._aggregated(core=False), content_type=_DISCOVERY_V2)
            groups = [self._api_group(g, v) for g, v in self._group_versions().items()]
            return _json({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
        if parts[0] == "apis" and len(parts) == 2:
            versions = self._group_versions().get(parts[1])
            if not versions:
                raise _no_route()
            return _json(
                {"kind": "APIGroup", "apiVersion": "v1", **self._api_group(parts[1], versions)}
            )
        group, version = ("", parts[1]) if parts[0] == "api" else (parts[1], parts[2])
        doc = self._resource_list(group, version)
        if doc is None:
            raise _no_route()
        return _json(doc)

    # -- OpenAPI v3: only what kubectl needs to learn that the server validates fields --

    def _openapi_docs(self) -> dict[str, Obj]:
        docs: dict[str, Obj] = {}
        for t in self.store.types():
            gv = f"apis/{t.group}/{t.version}" if t.group else "api/v1"
            doc = docs.setdefault(
                gv,
                {
                    "openapi": "3.0.0",
                    "info": {"title": "Kubernetes", "version": _SERVER_VERSION["gitVersion"]},
                    "paths": {},
                },
            )
            scope = "/namespaces/{namespace}" if t.namespaced else ""
            doc["paths"][f"/{gv}{scope}/{t.plural}/{{name}}"] = {
                "patch": {
                    "operationId": f"patch{t.kind}",
                    "x-kubernetes-action": "patch",
                    "x-kubernetes-group-version-kind": {
                        "group": t.group,
                        "version": t.version,
                        "kind": t.kind,
                    },
                    "parameters": [
                        {"name": "dryRun", "in": "query", "schema": {"type": "string"}},
                        {"name": "fieldManager", "in": "query", "schema": {"type": "string"}},
                        {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}},
                    ],
                    "responses": {"200": {"description": "OK"}},
                }
            }
        return docs

    async def _openapi_root(self, request: web.Request) -> web.Response:
        self._set_verb(request, "discovery")
        paths = {
            gv: {
                "serverRelativeURL": f"/openapi/v3/{gv}?hash="
                f"{hashlib.sha256(_dumps(doc)).hexdigest().upper()}"
            }
            for gv, doc in self._openapi_docs().items()
        }
        return _json({"paths": paths})

    async def _openapi_gv(self, request: web.Request) -> web.Response:
        self._set_verb(request, "discovery")
        doc = self._openapi_docs().get(request.match_info["gv"])
        if doc is None:
            raise _no_route()
        return _json(doc)

    # -- resource requests --

    def _target(self, parts: list[str]) -> _Target:
        if parts[0] == "api":
            group, version, rest = "", parts[1], parts[2:]
        else:
            group, version, rest = parts[1], parts[2], parts[3:]
        namespace: str | None = None
        if (
            rest[0] == "namespaces"
            and len(rest) >= 3
            and not (len(rest) == 3 and rest[2] in ("status", "finalize"))
        ):
            namespace, rest = rest[1], rest[2:]
        if len(rest) > 3:
            raise _no_route()
        key = self.store.key_for(group, version, rest[0])
        if key is None:
            raise _no_route()
        rt = self.store.resource_type(key)
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if namespace is not None and not rt.namespaced:
            raise _no_route()
        if name is not None and namespace is None and rt.namespaced:
            raise _no_route()
        if sub is not None and (sub != "status" or not rt.has_status):
            raise _no_route()
        return _Target(rt, namespace, name, sub)

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        parts = [p for p in request.path.split("/") if p]
        if (
            len(parts) == 1
            or (parts[0] == "api" and len(parts) == 2)
            or (parts[0] == "apis" and len(parts) <= 3)
        ):
            return self._discovery(request, parts)
        t = self._target(parts)
        q = request.query
        method = request.method
        watching = _bool_param(q.get("watch"))
        verb = {
            "GET": "watch" if watching else ("get" if t.name else "list"),
            "POST": "create",
            "PUT": "update",
            "PATCH": "patch",
            "DELETE": "delete" if t.name else "deletecollection",
        }.get(method, "other")
        self._set_verb(
            request,
            verb,
            resource=t.rt.key,
            namespace=t.namespace,
            name=t.name,
            subresource=t.subresource,
        )
        if method == "GET":
            if watching:
                return await self._watch(request, t)
            if t.name is not None:
                return _json(self.store.get(t.rt.key, t.name, namespace=t.namespace))
            return self._list(request, t)
        if method == "POST" and t.name is None:
            body = await self._body(request)
            created = self.store.create(
                t.rt.key, body, namespace=t.namespace, dry_run=self._dry_run(request)
            )
            return _json(created, status=201)
        if method == "PUT" and t.name is not None:
            body = await self._body(request)
            return _json(
                self.store.replace(
                    t.rt.key,
                    t.name,
                    body,
                    namespace=t.namespace,
                    subresource=t.subresource,
                    dry_run=self._dry_run(request),
                )
            )
        if method == "PATCH" and t.name is not None:
            return _json(await self._patch(request, t))
        if method == "DELETE" and t.subresource is None:
            options = await self._delete_options(request)
            dry_run = self._dry_run(request) or options.get("dryRun") == ["All"]
            if t.name is not None:
                pre = options.get("preconditions") or {}
                rv = pre.get("resourceVersion") if isinstance(pre, dict) else None
                return _json(
                    self.store.delete(
                        t.rt.key,
                        t.name,
                        namespace=t.namespace,
                        dry_run=dry_run,
                        resource_version=rv,
                    )
                )
            deleted = self.store.delete_collection(
                t.rt.key,
                namespace=t.namespace,
                label_selector=q.get("labelSelector"),
                field_selector=q.get("fieldSelector"),
                dry_run=dry_run,
            )
            return _json(
                {
                    "kind": f"{t.rt.kind}List",
                    "apiVersion": t.rt.api_version,
                    "metadata": {"resourceVersion": str(self.store.resource_version)},
                    "items": deleted,
                }
            )
        raise ApiError(
            405,
            "MethodNotAllowed",
            f"the server does not allow this method on the requested resource "
            f"({method} {t.rt.key})",
        )

    @staticmethod
    def _dry_run(request: web.Request) -> bool:
        values = request.query.getall("dryRun", [])
        for v in values:
            if v != "All":
                raise _bad_request(f'unsupported dry run value "{v}"; supported: "All"')
        return bool(values)

    @staticmethod
    async def _body(request: web.Request) -> Obj:
        ctype = request.headers.get("Content-Type", "application/json").split(";")[0].strip()
        raw = await request.read()
        if ctype in ("application/json", "*/*", ""):
            try:
                body = json.loads(raw or b"null")
            except ValueError as exc:
                raise _bad_request(f"couldn't get version/kind; json parse error: {exc}") from None
        elif ctype in ("application/yaml", "application/x-yaml"):
            try:
                body = yaml.safe_load(raw)
            except yaml.YAMLError as exc:
                raise _bad_request(f"error converting YAML to JSON: {exc}") from None
        else:
            raise ApiError(
                415,
                "UnsupportedMediaType",
                f"the body of the request was in an unknown format - accepted media "
                f'types include: application/json, application/yaml (got "{ctype}")',
            )
        if not isinstance(body, dict):
            raise _bad_request("the body of the request must be a JSON object")
        return body

    @staticmethod
    async def _delete_options(request: web.Request) -> Obj:
        raw = await request.read()
        if not raw.strip():
            return {}
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise _bad_request(f"invalid DeleteOptions: {exc}") from None
        return body if isinstance(body, dict) else {}

    async def _patch(self, request: web.Request, t: _Target) -> Obj:
        assert t.name is not None
        ctype = request.headers.get("Content-Type", "").split(";")[0].strip()
        accepted = f"{_JSON_PATCH}, {_MERGE_PATCH}"
        if not self.store.is_custom(t.rt.key):
            accepted += f", {_STRATEGIC_PATCH}"
        if ctype not in (_JSON_PATCH, _MERGE_PATCH, _STRATEGIC_PATCH) or (
            ctype == _STRATEGIC_PATCH and self.store.is_custom(t.rt.key)
        ):
            raise ApiError(
                415,
                "UnsupportedMediaType",
                f"the body of the request was in an unknown format - accepted media "
                f"types include: {accepted}",
            )
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise _bad_request(f"error decoding patch: {exc}") from None
        dry_run = self._dry_run(request)
        if ctype == _JSON_PATCH:
            return self.store.json_patch(
                t.rt.key,
                t.name,
                body,
                namespace=t.namespace,
                subresource=t.subresource,
                dry_run=dry_run,
            )
        if not isinstance(body, dict):
            raise _bad_request("a merge patch must be a JSON object")
        return self.store.merge_patch(
            t.rt.key,
            t.name,
            body,
            namespace=t.namespace,
            subresource=t.subresource,
            dry_run=dry_run,
        )

    def _list(self, request: web.Request, t: _Target) -> web.Response:
        q = request.query
        rt = t.rt
        rv = _int_param(q.get("resourceVersion"), "resourceVersion")
        if (
            q.get("resourceVersionMatch") == "Exact"
            and rv is not None
            and (rv != self.store.resource_version)
        ):
            raise _gone(rv, self.store.resource_version)
        flt = self.store.make_filter(
            rt.key, t.namespace, q.get("labelSelector"), q.get("fieldSelector")
        )
        items = self.store.select_raw(rt.key, flt)
        list_rv = str(self.store.resource_version)
        meta: Obj = {"resourceVersion": list_rv}
        token = q.get("continue")
        if token:
            try:
                state = json.loads(base64.urlsafe_b64decode(token.encode()))
                after = (str(state["ns"]), str(state["name"]))
                list_rv = str(state["rv"])
            except (ValueError, KeyError, TypeError, binascii.Error):
                raise _bad_request("continue key is not valid") from None
            meta["resourceVersion"] = list_rv
            items = [
                o
                for o in items
                if (o["metadata"].get("namespace", ""), o["metadata"]["name"]) > after
            ]
        limit = _int_param(q.get("limit"), "limit")
        if limit and limit > 0 and len(items) > limit:
            last = items[limit - 1]["metadata"]
            state = {"ns": last.get("namespace", ""), "name": last["name"], "rv": list_rv}
            meta["continue"] = base64.urlsafe_b64encode(_dumps(state)).decode()
            meta["remainingItemCount"] = len(items) - limit
            items = items[:limit]
        body = _dumps(
            {
                "kind": f"{rt.kind}List",
                "apiVersion": rt.api_version,
                "metadata": meta,
                "items": items,
            }
        )
        return web.Response(body=body, headers={"Content-Type": "application/json"})

    async def _watch(self, request: web.Request, t: _Target) -> web.StreamResponse:
        q = request.query
        rt = t.rt
        field_selector = q.get("fieldSelector")
        if t.name is not None:
            by_name = f"metadata.name={t.name}"
            field_selector = f"{field_selector},{by_name}" if field_selector else by_name
        flt = self.store.make_filter(rt.key, t.namespace, q.get("labelSelector"), field_selector)
        raw_rv = q.get("resourceVersion", "")
        since = _int_param(raw_rv, "resourceVersion")
        if since == 0:
            since = None
        send_initial = _bool_param(q.get("sendInitialEvents"))
        if send_initial:
            since = None
        timeout = _int_param(q.get("timeoutSeconds"), "timeoutSeconds")
        bookmarks = _bool_param(q.get("allowWatchBookmarks"))
        resp = web.StreamResponse(
            status=200,
            headers={
                "Content-Type": "application/json",
                "Cache-Control": "no-cache, private",
            },
        )
        resp.enable_chunked_encoding()
        try:
            initial, watcher = self.store.open_watch(rt.key, since)
        except ApiError as err:
            if err.code != 410:
                raise
            await resp.prepare(request)
            self._mark_logged(request, 200)
            await resp.write(_dumps({"type": "ERROR", "object": err.status()}) + b"\n")
            await resp.write_eof()
            return resp
        self._streams.add(watcher)
        try:
            await resp.prepare(request)
            self._mark_logged(request, 200)
            if self._stopping:
                return resp
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout if timeout and timeout > 0 else None
            sent_rv = self.store.resource_version if since is None else since
            chunk = [line for rec in initial if (line := self._event_line(rec, flt))]
            if send_initial:
                chunk.append(self._bookmark(rt, self.store.resource_version, initial_end=True))
            if chunk:
                await resp.write(b"".join(chunk))
            last_bookmark = loop.time()
            closed = False
            while not closed:
                now = loop.time()
                wait = 1.0
                if deadline is not None:
                    if now >= deadline:
                        break
                    wait = min(wait, deadline - now)
                if bookmarks:
                    wait = max(0.0, min(wait, last_bookmark + self.bookmark_interval - now))
                rec: _Record | None
                try:
                    async with asyncio.timeout(wait):
                        rec = await watcher.queue.get()
                except TimeoutError:
                    transport = request.transport
                    if transport is None or transport.is_closing():
                        break
                    if bookmarks and loop.time() >= last_bookmark + self.bookmark_interval:
                        last_bookmark = loop.time()
                        rv = max(sent_rv, self.store.resource_version)
                        await resp.write(self._bookmark(rt, rv))
                    continue
                lines: list[bytes] = []
                while True:
                    if rec is None:
                        closed = True
                        break
                    if rec.rv > sent_rv:
                        sent_rv = rec.rv
                        if line := self._event_line(rec, flt):
                            lines.append(line)
                    try:
                        rec = watcher.queue.get_nowait()
                    except asyncio.QueueEmpty:
                        break
                if lines:
                    await resp.write(b"".join(lines))
            with contextlib.suppress(ConnectionResetError, RuntimeError):
                await resp.write_eof()
        except ConnectionError:
            pass
        finally:
            self._streams.discard(watcher)
            self.store.close_watch(watcher)
        return resp

    def _mark_logged(self, request: web.Request, status: int) -> None:
        slot = request.get(_LOG_KEY)
        if slot is not None and not slot.logged:
            slot.entry["status"] = status
            slot.logged = True
            self.requests.append(slot.entry)

    @staticmethod
    def _bookmark(rt: ResourceType, rv: int, *, initial_end: bool = False) -> bytes:
        meta: Obj = {"resourceVersion": str(rv)}
        if initial_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        obj = {"kind": rt.kind, "apiVersion": rt.api_version, "metadata": meta}
        return _dumps({"type": "BOOKMARK", "object": obj}) + b"\n"

    @staticmethod
    def _event_line(rec: _Record, flt: _Filter) -> bytes | None:
        now_match = flt.matches(rec.obj)
        if rec.type == "MODIFIED" and rec.prev is not None:
            was_match = flt.matches(rec.prev)
            if now_match and not was_match:
                return _dumps({"type": "ADDED", "object": rec.obj}) + b"\n"
            if was_match and not now_match:
                old = _copy(rec.prev)
                old["metadata"]["resourceVersion"] = str(rec.rv)
                return _dumps({"type": "DELETED", "object": old}) + b"\n"
        if not now_match:
            return None
        return _dumps({"type": rec.type, "object": rec.obj}) + b"\n"


def write_kubeconfig(
    path: str | os.PathLike[str],
    server_url: str,
    *,
    namespace: str,
    context: str = "ivytui-sandbox",
    user_token: str | None = None,
) -> None:
    """Write a kubeconfig with one cluster, context and user; the context is current."""
    user: Obj = {"token": user_token} if user_token else {}
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [{"name": context, "cluster": {"server": server_url}}],
        "users": [{"name": context, "user": user}],
        "contexts": [
            {
                "name": context,
                "context": {"cluster": context, "user": context, "namespace": namespace},
            }
        ],
        "current-context": context,
    }
    text = yaml.safe_dump(config, sort_keys=False)
    fd = os.open(os.fspath(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
