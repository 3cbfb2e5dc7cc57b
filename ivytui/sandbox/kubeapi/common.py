"""JSON helpers shared by the emulator's modules."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

from aiohttp import web

Obj = dict[str, Any]
ObjList = list[Obj]
AnyList = list[Any]
_T = TypeVar("_T")


def copy_json(value: _T) -> _T:
    """A deep copy of a JSON value (faster than copy.deepcopy)."""
    if isinstance(value, dict):
        return cast(_T, {k: copy_json(v) for k, v in value.items()})
    if isinstance(value, list):
        return cast(_T, [copy_json(v) for v in value])
    return value


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def bool_param(raw: str | None) -> bool:
    return raw in ("1", "t", "T", "true", "TRUE", "True")


def json_response(
    value: Any, status: int = 200, content_type: str = "application/json"
) -> web.Response:
    return web.Response(body=dumps(value), status=status, headers={"Content-Type": content_type})
