"""The HTTP server: the aiohttp app, routing of resource requests to the store, the request log
and the `/_sandbox/` endpoints (the log, compacting the watch history, and the fault stage of
`faults`)."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from typing import Final

import yaml
from aiohttp import web
from aiohttp.typedefs import Handler

from ivytui.errors import SandboxError
from ivytui.sandbox.kubeapi.common import Obj, bool_param, json_response
from ivytui.sandbox.kubeapi.discovery import DiscoveryHandlers
from ivytui.sandbox.kubeapi.errors import ApiError, bad_request, int_param, no_route
from ivytui.sandbox.kubeapi.faults import CONTROL_PATH, FaultStage
from ivytui.sandbox.kubeapi.records import Watcher
from ivytui.sandbox.kubeapi.requestlog import note_precondition, open_entry, set_verb
from ivytui.sandbox.kubeapi.resources import Target
from ivytui.sandbox.kubeapi.store import KubeStore
from ivytui.sandbox.kubeapi.watch import ListWatchHandlers

log = logging.getLogger(__name__)

MERGE_PATCH: Final = "application/merge-patch+json"
JSON_PATCH: Final = "application/json-patch+json"
STRATEGIC_PATCH: Final = "application/strategic-merge-patch+json"


def _status_response(err: ApiError) -> web.Response:
    resp = json_response(err.status(), status=err.code)
    # Like `responsewriters.ErrorNegotiated`: a retry-after period is also sent as the header.
    retry = err.details.get("retryAfterSeconds")
    if isinstance(retry, int) and retry > 0:
        resp.headers["Retry-After"] = str(retry)
    return resp


class KubeAPIServer(DiscoveryHandlers, ListWatchHandlers):
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
        self._streams: set[Watcher] = set()
        self._stopping = False
        self.faults = FaultStage(store, self._halt, self.start)
        r = self.app.router
        r.add_get("/version", self._version)
        for probe in ("/healthz", "/livez", "/readyz"):
            r.add_get(probe, self._ok)
        r.add_get("/openapi/v3", self._openapi_root)
        r.add_get("/openapi/v3/{gv:.+}", self._openapi_gv)
        r.add_get("/_sandbox/requests", self._sandbox_requests)
        r.add_post("/_sandbox/compact", self._sandbox_compact)
        r.add_route("*", CONTROL_PATH, self.faults.control)
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
        await self.faults.cancel_outage()
        await self._halt()

    async def _halt(self) -> None:
        self._stopping = True
        for w in list(self._streams):
            w.queue.put_nowait(None)
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    @property
    def running(self) -> bool:
        """Whether the server listens (False before `start`, after `stop`, during a `stop` fault)."""
        return self._runner is not None

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
        slot = open_entry(request)
        entry = slot.entry
        started = time.perf_counter()
        resp: web.StreamResponse | None = None
        try:
            try:
                await note_precondition(request)
                resp = await handler(request)
            except ApiError as err:
                resp = _status_response(err)
            except web.HTTPNotFound:
                resp = _status_response(no_route())
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

    # -- diagnostics --

    async def _sandbox_requests(self, request: web.Request) -> web.Response:
        since = int_param(request.query.get("since"), "since") or 0
        return json_response({"next": len(self.requests), "requests": self.requests[since:]})

    async def _sandbox_compact(self, request: web.Request) -> web.Response:
        self.store.compact()
        return json_response({"resourceVersion": str(self.store.resource_version)})

    async def _ok(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    # -- resource requests --

    def _target(self, parts: list[str]) -> Target:
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
            raise no_route()
        key = self.store.key_for(group, version, rest[0])
        if key is None:
            raise no_route()
        rt = self.store.resource_type(key)
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if namespace is not None and not rt.namespaced:
            raise no_route()
        if name is not None and namespace is None and rt.namespaced:
            raise no_route()
        if sub is not None and (sub != "status" or not rt.has_status):
            raise no_route()
        return Target(rt, namespace, name, sub)

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
        watching = bool_param(q.get("watch"))
        verb = {
            "GET": "watch" if watching else ("get" if t.name else "list"),
            "POST": "create",
            "PUT": "update",
            "PATCH": "patch",
            "DELETE": "delete" if t.name else "deletecollection",
        }.get(method, "other")
        set_verb(
            request,
            verb,
            resource=t.rt.key,
            namespace=t.namespace,
            name=t.name,
            subresource=t.subresource,
        )
        fault = await self.faults.intercept(request, verb, t) if self.faults.live else None
        if method == "GET":
            if watching:
                return await self._watch(request, t, fault)
            if t.name is not None:
                return json_response(self.store.get(t.rt.key, t.name, namespace=t.namespace))
            return self._list(request, t)
        if method == "POST" and t.name is None:
            body = await self._body(request)
            created = self.store.create(
                t.rt.key, body, namespace=t.namespace, dry_run=self._dry_run(request)
            )
            return json_response(created, status=201)
        if method == "PUT" and t.name is not None:
            body = await self._body(request)
            return json_response(
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
            return json_response(await self._patch(request, t))
        if method == "DELETE" and t.subresource is None:
            options = await self._delete_options(request)
            dry_run = self._dry_run(request) or options.get("dryRun") == ["All"]
            if t.name is not None:
                pre = options.get("preconditions") or {}
                rv = pre.get("resourceVersion") if isinstance(pre, dict) else None
                if rv is not None and not isinstance(rv, str):
                    raise bad_request(
                        "json: cannot unmarshal preconditions.resourceVersion into Go struct "
                        "field Preconditions.preconditions.resourceVersion of type string"
                    )
                return json_response(
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
            return json_response(
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
                raise bad_request(f'unsupported dry run value "{v}"; supported: "All"')
        return bool(values)

    @staticmethod
    async def _body(request: web.Request) -> Obj:
        ctype = request.headers.get("Content-Type", "application/json").split(";")[0].strip()
        raw = await request.read()
        if ctype in ("application/json", "*/*", ""):
            try:
                body = json.loads(raw or b"null")
            except ValueError as exc:
                raise bad_request(f"couldn't get version/kind; json parse error: {exc}") from None
        elif ctype in ("application/yaml", "application/x-yaml"):
            try:
                body = yaml.safe_load(raw)
            except yaml.YAMLError as exc:
                raise bad_request(f"error converting YAML to JSON: {exc}") from None
        else:
            raise ApiError(
                415,
                "UnsupportedMediaType",
                f"the body of the request was in an unknown format - accepted media "
                f'types include: application/json, application/yaml (got "{ctype}")',
            )
        if not isinstance(body, dict):
            raise bad_request("the body of the request must be a JSON object")
        return body

    @staticmethod
    async def _delete_options(request: web.Request) -> Obj:
        raw = await request.read()
        if not raw.strip():
            return {}
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise bad_request(f"invalid DeleteOptions: {exc}") from None
        return body if isinstance(body, dict) else {}

    async def _patch(self, request: web.Request, t: Target) -> Obj:
        assert t.name is not None
        ctype = request.headers.get("Content-Type", "").split(";")[0].strip()
        accepted = f"{JSON_PATCH}, {MERGE_PATCH}"
        if not self.store.is_custom(t.rt.key):
            accepted += f", {STRATEGIC_PATCH}"
        if ctype not in (JSON_PATCH, MERGE_PATCH, STRATEGIC_PATCH) or (
            ctype == STRATEGIC_PATCH and self.store.is_custom(t.rt.key)
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
            raise bad_request(f"error decoding patch: {exc}") from None
        dry_run = self._dry_run(request)
        if ctype == JSON_PATCH:
            return self.store.json_patch(
                t.rt.key,
                t.name,
                body,
                namespace=t.namespace,
                subresource=t.subresource,
                dry_run=dry_run,
            )
        if not isinstance(body, dict):
            raise bad_request("a merge patch must be a JSON object")
        return self.store.merge_patch(
            t.rt.key,
            t.name,
            body,
            namespace=t.namespace,
            subresource=t.subresource,
            dry_run=dry_run,
        )
