"""Validation the API server does on writes: names, labels, metadata, kind, and CRD specs."""

from __future__ import annotations

import base64
import re

from ivytui.sandbox.kubeapi.common import Obj, now
from ivytui.sandbox.kubeapi.errors import bad_request, invalid, required
from ivytui.sandbox.kubeapi.resources import BUILTIN_TYPES, CRD_KEY, NAMESPACES_KEY, ResourceType

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
QUALIFIED_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def label_key_error(key: str) -> str | None:
    prefix, _, name = key.rpartition("/")
    if "/" in prefix:
        return "a qualified name must have at most one '/'"
    if prefix and (len(prefix) > 253 or not DNS_SUBDOMAIN.match(prefix)):
        return "prefix part must be a lowercase RFC 1123 subdomain"
    if not name or len(name) > 63 or not QUALIFIED_NAME.match(name):
        return (
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must "
            "start and end with an alphanumeric character, at most 63 characters"
        )
    return None


def label_value_error(value: str) -> str | None:
    if len(value) > 63 or not LABEL_VALUE.match(value):
        return (
            "a valid label must be an empty string or consist of alphanumeric characters, "
            "'-', '_' or '.', and must start and end with an alphanumeric character, "
            "at most 63 characters"
        )
    return None


def name_error(rt: ResourceType, name: str) -> str | None:
    if rt.key == NAMESPACES_KEY:
        if len(name) > 63 or not DNS_LABEL.match(name):
            return (
                "a lowercase RFC 1123 label must consist of lower case alphanumeric "
                "characters or '-', and must start and end with an alphanumeric character"
            )
        return None
    if rt.key == "services":
        if len(name) > 63 or not DNS1035_LABEL.match(name):
            return (
                "a DNS-1035 label must consist of lower case alphanumeric characters or "
                "'-', start with an alphabetic character, and end with an alphanumeric "
                "character"
            )
        return None
    if len(name) > 253 or not DNS_SUBDOMAIN.match(name):
        return (
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
            "characters, '-' or '.', and must start and end with an alphanumeric character"
        )
    return None


def fold_string_data(secret: Obj) -> None:
    """Like the API server: `stringData` is write-only, merged into `data` as base64."""
    string_data = secret.pop("stringData", None)
    if isinstance(string_data, dict) and string_data:
        data = secret.get("data")
        if not isinstance(data, dict):
            data = {}
        for k, v in string_data.items():
            data[str(k)] = base64.b64encode(str(v).encode()).decode()
        secret["data"] = data


def check_kind(rt: ResourceType, obj: Obj) -> None:
    api_version = obj.get("apiVersion")
    kind = obj.get("kind")
    if api_version in (None, ""):
        obj["apiVersion"] = rt.api_version
    elif api_version != rt.api_version:
        raise bad_request(
            f"the API version in the data ({api_version}) does not match the expected API "
            f"version ({rt.api_version})"
        )
    if kind in (None, ""):
        obj["kind"] = rt.kind
    elif kind != rt.kind:
        raise bad_request(
            f"the kind in the data ({kind}) does not match the expected kind ({rt.kind})"
        )


def check_meta(rt: ResourceType, name: str, meta: Obj) -> None:
    for field in ("labels", "annotations"):
        value = meta.get(field)
        if value is None:
            meta.pop(field, None)
            continue
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise bad_request(
                f"json: cannot unmarshal metadata.{field} into Go struct field "
                f"ObjectMeta.metadata.{field} of type map[string]string"
            )
        for k, v in value.items():
            if err := label_key_error(k):
                raise invalid(rt, name, f"metadata.{field}", k, err)
            if field == "labels" and (err := label_value_error(v)):
                raise invalid(rt, name, f"metadata.{field}", v, err)
    finalizers = meta.get("finalizers")
    if finalizers is not None and (
        not isinstance(finalizers, list) or not all(isinstance(f, str) for f in finalizers)
    ):
        raise bad_request(
            "json: cannot unmarshal metadata.finalizers into Go struct field "
            "ObjectMeta.metadata.finalizers of type []string"
        )


def crd_type(crd: Obj) -> ResourceType:
    rt = next(t for t in BUILTIN_TYPES if t.key == CRD_KEY)
    name = str((crd.get("metadata") or {}).get("name", ""))
    spec = crd.get("spec")
    if not isinstance(spec, dict):
        raise required(rt, name, "spec", "spec is required")
    group = spec.get("group")
    if not isinstance(group, str) or "." not in group:
        raise invalid(rt, name, "spec.group", group, "should be a domain with at least one dot")
    names = spec.get("names")
    if not isinstance(names, dict):
        raise required(rt, name, "spec.names", "names are required")
    plural, kind = names.get("plural"), names.get("kind")
    if not isinstance(plural, str) or not DNS_LABEL.match(plural):
        raise invalid(rt, name, "spec.names.plural", plural, "must be a lowercase DNS label")
    if not isinstance(kind, str) or not kind:
        raise required(rt, name, "spec.names.kind", "kind is required")
    if name != f"{plural}.{group}":
        raise invalid(rt, name, "metadata.name", name, 'must be spec.names.plural+"."+spec.group')
    scope = spec.get("scope")
    if scope not in ("Namespaced", "Cluster"):
        raise invalid(rt, name, "spec.scope", scope, 'supported values: "Cluster", "Namespaced"')
    versions = spec.get("versions")
    if not isinstance(versions, list) or not versions:
        raise required(rt, name, "spec.versions", "must have at least one version")
    served = [v for v in versions if isinstance(v, dict) and v.get("served")]
    storage = [v for v in versions if isinstance(v, dict) and v.get("storage")]
    if len(storage) != 1:
        raise invalid(
            rt,
            name,
            "spec.versions",
            len(storage),
            "must have exactly one version marked as storage version",
        )
    chosen = storage[0] if storage[0].get("served") else (served[0] if served else None)
    if chosen is None or not isinstance(chosen.get("name"), str):
        raise invalid(rt, name, "spec.versions", 0, "must have at least one served version")
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


def crd_status(crd: Obj, rt: ResourceType) -> Obj:
    stamp = now()
    names = dict(crd["spec"]["names"])
    names.setdefault("singular", rt.singular)
    names.setdefault("listKind", f"{rt.kind}List")
    return {
        "acceptedNames": names,
        "conditions": [
            {
                "type": "NamesAccepted",
                "status": "True",
                "lastTransitionTime": stamp,
                "reason": "NoConflicts",
                "message": "no conflicts found",
            },
            {
                "type": "Established",
                "status": "True",
                "lastTransitionTime": stamp,
                "reason": "InitialNamesAccepted",
                "message": "the initial names have been accepted",
            },
        ],
        "storedVersions": [rt.version],
    }
