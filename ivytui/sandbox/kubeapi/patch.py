"""Patches: RFC 7386 JSON merge patch and RFC 6902 JSON patch, with kube-apiserver's errors."""

from __future__ import annotations

from typing import Any

from ivytui.sandbox.kubeapi.common import Obj, copy_json
from ivytui.sandbox.kubeapi.errors import ApiError, bad_request


def apply_merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch; `target` is modified in place when it is an object."""
    if not isinstance(patch, dict):
        return copy_json(patch)
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
        raise bad_request(
            f"json: cannot unmarshal {shape} into Go value of type []handlers.jsonPatchOp"
        )
    doc = copy_json(doc)
    for op in ops:
        if not isinstance(op, dict):
            raise bad_request(
                "json: cannot unmarshal a non-object operation into handlers.jsonPatchOp"
            )
        try:
            kind = op.get("op")
            path = _pointer(op.get("path"))
            if kind in ("add", "replace", "test") and "value" not in op:
                raise _PatchError(f"{kind} operation is missing 'value'")
            if kind == "add":
                doc = _add(doc, path, copy_json(op["value"]))
            elif kind == "remove":
                _remove(doc, path)
            elif kind == "replace":
                doc = _replace(doc, path, copy_json(op["value"]))
            elif kind == "move":
                source = _pointer(op.get("from"))
                if path[: len(source)] == source and len(path) > len(source):
                    raise _PatchError("move operation cannot move a value into one of its children")
                if source != path:
                    value = _remove(doc, source) if source else doc
                    doc = _add(doc, path, value)
            elif kind == "copy":
                source = _pointer(op.get("from"))
                doc = _add(doc, path, copy_json(_walk(doc, source)))
            elif kind == "test":
                if _walk(doc, path) != op["value"]:
                    raise _PatchError(f"testing value {op.get('path')} failed: test failed")
            else:
                raise _PatchError(f"Unexpected kind: {kind!r}")
        except _PatchError as exc:
            raise ApiError(422, "Invalid", str(exc)) from None
    return doc
