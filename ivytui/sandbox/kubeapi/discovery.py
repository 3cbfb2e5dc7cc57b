"""Discovery: `/version`, the aggregated (apidiscovery.k8s.io/v2) and legacy discovery documents
of the core group and the named groups, and the OpenAPI v3 documents kubectl asks for."""

from __future__ import annotations

import hashlib
from typing import Final

from aiohttp import web

from ivytui.sandbox.kubeapi.common import Obj, dumps, json_response
from ivytui.sandbox.kubeapi.errors import ApiError, no_route
from ivytui.sandbox.kubeapi.requestlog import set_verb
from ivytui.sandbox.kubeapi.resources import BUILTIN_GROUPS
from ivytui.sandbox.kubeapi.store import KubeStore

VERBS: Final = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
STATUS_VERBS: Final = ["get", "patch", "update"]
SERVER_VERSION: Final = {
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
DISCOVERY_V2: Final = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"


def _wants(request: web.Request, marker: str) -> bool:
    return marker in request.headers.get("Accept", "")


class DiscoveryHandlers:
    """The discovery endpoints of `KubeAPIServer` (a mixin: the server provides the state)."""

    store: KubeStore
    host: str
    _port: int
    aggregated_discovery: bool

    async def _version(self, request: web.Request) -> web.Response:
        return json_response(SERVER_VERSION)

    def _group_versions(self) -> dict[str, list[str]]:
        groups: dict[str, list[str]] = {g: [] for g in BUILTIN_GROUPS}
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
                "verbs": list(VERBS),
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
                        "verbs": list(STATUS_VERBS),
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
                        "verbs": list(VERBS),
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
                                "verbs": list(STATUS_VERBS),
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
        set_verb(request, "discovery")
        if request.method != "GET":
            raise ApiError(405, "MethodNotAllowed", "discovery documents are read-only")
        aggregated = (
            self.aggregated_discovery
            and _wants(request, "as=APIGroupDiscoveryList")
            and _wants(request, "v=v2;")
        )
        if parts == ["api"]:
            if aggregated:
                return json_response(self._aggregated(core=True), content_type=DISCOVERY_V2)
            return json_response(
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
                return json_response(self._aggregated(core=False), content_type=DISCOVERY_V2)
            groups = [self._api_group(g, v) for g, v in self._group_versions().items()]
            return json_response({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
        if parts[0] == "apis" and len(parts) == 2:
            versions = self._group_versions().get(parts[1])
            if not versions:
                raise no_route()
            return json_response(
                {"kind": "APIGroup", "apiVersion": "v1", **self._api_group(parts[1], versions)}
            )
        group, version = ("", parts[1]) if parts[0] == "api" else (parts[1], parts[2])
        doc = self._resource_list(group, version)
        if doc is None:
            raise no_route()
        return json_response(doc)

    # -- OpenAPI v3: only what kubectl needs to learn that the server validates fields --

    def _openapi_docs(self) -> dict[str, Obj]:
        docs: dict[str, Obj] = {}
        for t in self.store.types():
            gv = f"apis/{t.group}/{t.version}" if t.group else "api/v1"
            doc = docs.setdefault(
                gv,
                {
                    "openapi": "3.0.0",
                    "info": {"title": "Kubernetes", "version": SERVER_VERSION["gitVersion"]},
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
        set_verb(request, "discovery")
        paths = {
            gv: {
                "serverRelativeURL": f"/openapi/v3/{gv}?hash="
                f"{hashlib.sha256(dumps(doc)).hexdigest().upper()}"
            }
            for gv, doc in self._openapi_docs().items()
        }
        return json_response({"paths": paths})

    async def _openapi_gv(self, request: web.Request) -> web.Response:
        set_verb(request, "discovery")
        doc = self._openapi_docs().get(request.match_info["gv"])
        if doc is None:
            raise no_route()
        return json_response(doc)
