"""The request log (`GET /_sandbox/requests`): one entry per API request, in arrival order.

An entry has `time`, `method`, `verb` (get, list, watch, create, update, patch, delete,
deletecollection, discovery or other), `path`, `query`, `status`, `user_agent` and, once served,
`duration_ms`; a resource request adds `resource`, `namespace`, `name` and `subresource`. Every
PUT, PATCH and DELETE adds `precondition`: the resourceVersion its body carried, or "" when none —
`metadata.resourceVersion` of the object or merge patch, the value a JSON patch adds, replaces or
tests at `/metadata/resourceVersion`, `preconditions.resourceVersion` of the DeleteOptions.
A request a fault answered, held or cut short (see `faults`) adds `fault`: the fault's id.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Final

import yaml
from aiohttp import web

from ivytui.sandbox.kubeapi.common import Obj

WRITE_METHODS: Final = frozenset({"PUT", "PATCH", "DELETE"})
_RV_PATH: Final = "/metadata/resourceVersion"


@dataclass
class LogSlot:
    entry: Obj
    logged: bool = False


LOG_KEY: Final = web.RequestKey("ivytui_log", LogSlot)


def open_entry(request: web.Request) -> LogSlot:
    """Start the entry of a request; it is appended to the log when the response starts."""
    entry: Obj = {
        "time": time.time(),
        "method": request.method,
        "verb": "discovery" if request.path in ("/version", "/api", "/apis") else "other",
        "path": request.path,
        "query": request.query_string,
        "status": None,
        "user_agent": request.headers.get("User-Agent", ""),
    }
    if request.method in WRITE_METHODS:
        entry["precondition"] = ""
    slot = LogSlot(entry)
    request[LOG_KEY] = slot
    return slot


def set_verb(request: web.Request, verb: str, **extra: Any) -> None:
    slot = request.get(LOG_KEY)
    if slot is not None:
        slot.entry["verb"] = verb
        slot.entry.update(extra)


def note_fault(request: web.Request, fault_id: str) -> None:
    """Mark a request's entry as answered (or held, or cut short) by a fault."""
    slot = request.get(LOG_KEY)
    if slot is not None:
        slot.entry["fault"] = fault_id


def mark_logged(request: web.Request, status: int, requests: list[Obj]) -> None:
    """Log a streamed response (a watch) as soon as its status is sent."""
    slot = request.get(LOG_KEY)
    if slot is not None and not slot.logged:
        slot.entry["status"] = status
        slot.logged = True
        requests.append(slot.entry)


async def note_precondition(request: web.Request) -> None:
    """Record the resourceVersion a write's body carried (the body stays cached for the handler)."""
    slot = request.get(LOG_KEY)
    if slot is None or request.method not in WRITE_METHODS:
        return
    ctype = request.headers.get("Content-Type", "").split(";")[0].strip()
    slot.entry["precondition"] = carried_precondition(request.method, ctype, await request.read())


def carried_precondition(method: str, content_type: str, raw: bytes) -> str:
    """The resourceVersion a PUT, PATCH or DELETE body asks the server to check, or ""."""
    body = _decode(content_type, raw)
    found: Any = None
    if method == "DELETE":
        if isinstance(body, dict) and isinstance(pre := body.get("preconditions"), dict):
            found = pre.get("resourceVersion")
    elif isinstance(body, dict):
        if isinstance(meta := body.get("metadata"), dict):
            found = meta.get("resourceVersion")
    elif isinstance(body, list):
        for op in body:
            if not isinstance(op, dict):
                continue
            kind, path, value = op.get("op"), op.get("path"), op.get("value")
            if kind in ("add", "replace", "test") and path == _RV_PATH:
                found = value
            elif kind in ("add", "replace") and path == "/metadata" and isinstance(value, dict):
                found = value.get("resourceVersion")
            elif kind == "remove" and path in (_RV_PATH, "/metadata"):
                found = None
    if found is None:
        return ""
    return found if isinstance(found, str) else json.dumps(found)


def _decode(content_type: str, raw: bytes) -> Any:
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError:
        pass
    if "yaml" in content_type:
        try:
            return yaml.safe_load(raw)
        except yaml.YAMLError:
            pass
    return None
