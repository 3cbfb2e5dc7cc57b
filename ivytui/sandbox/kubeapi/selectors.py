"""Label and field selectors, parsed like kube-apiserver parses them, and the filter they make."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ivytui.sandbox.kubeapi.common import Obj
from ivytui.sandbox.kubeapi.errors import bad_request
from ivytui.sandbox.kubeapi.resources import FIELD_LABELS, ResourceType
from ivytui.sandbox.kubeapi.validation import label_key_error, label_value_error


@dataclass(frozen=True)
class LabelReq:
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


def parse_label_selector(selector: str | None) -> tuple[LabelReq, ...]:
    """Parse a label selector (`a=b,c!=d,e in (f,g),h notin (i),j,!k,l>3`); BadRequest if bad."""
    if selector is None or not selector.strip():
        return ()
    reqs: list[LabelReq] = []
    for term in _split_terms(selector):
        req: LabelReq | None = None
        if m := _SEL_SET.match(term):
            values = frozenset(v.strip() for v in m.group(3).split(",") if v.strip())
            req = LabelReq(m.group(1), m.group(2), values)
        elif m := _SEL_CMP.match(term):
            op = {"==": "=", "=": "=", "!=": "!=", ">": "gt", "<": "lt"}[m.group(2)]
            if op in ("gt", "lt"):
                try:
                    int(m.group(3))
                except ValueError:
                    raise bad_request(
                        f"unable to parse requirement: for 'Gt', 'Lt' operators, the value "
                        f"must be an integer: {term!r}"
                    ) from None
            req = LabelReq(m.group(1), op, frozenset({m.group(3)}))
        elif m := _SEL_EXISTS.match(term):
            req = LabelReq(m.group(2), "!exists" if m.group(1) else "exists")
        if req is None:
            raise bad_request(
                f"unable to parse requirement: found '{term}', expected: "
                "identifier, '=', '!=', 'in', 'notin', '!' or ','"
            )
        if err := label_key_error(req.key):
            raise bad_request(
                f"unable to parse requirement: key: Invalid value: {req.key!r}: {err}"
            )
        for v in req.values:
            if req.op not in ("gt", "lt") and (err := label_value_error(v)):
                raise bad_request(
                    f"unable to parse requirement: values[0][{req.key}]: "
                    f"Invalid value: {v!r}: {err}"
                )
        reqs.append(req)
    return tuple(reqs)


def field_value(obj: Obj, path: str) -> str:
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
    allowed = {"metadata.name", "metadata.namespace"} | FIELD_LABELS.get(rt.key, frozenset())
    out: list[tuple[str, bool, str]] = []
    for term in _split_terms(selector):
        m = re.match(r"^([^=!]+?)\s*(==|=|!=)\s*(.*)$", term)
        if m is None:
            raise bad_request(f"invalid selector: '{selector}'; can't understand '{term}'")
        field, op, value = m.group(1).strip(), m.group(2), m.group(3).strip()
        if field not in allowed:
            raise bad_request(f"field label not supported: {field}")
        out.append((field, op != "!=", value))
    return tuple(out)


@dataclass(frozen=True)
class Filter:
    namespace: str | None
    labels: tuple[LabelReq, ...]
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
            if (field_value(obj, field) == value) != equal:
                return False
        return True
