"""Lists and watches: paged lists with continue tokens, chunked watch streams that replay from a
resourceVersion or start with the current objects, bookmarks, and 410 Gone from a compacted one;
a `WatchFault` from the fault stage refuses a stream or ends it early."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json

from aiohttp import web

from ivytui.sandbox.kubeapi.common import Obj, bool_param, copy_json, dumps
from ivytui.sandbox.kubeapi.errors import ApiError, bad_request, gone, int_param
from ivytui.sandbox.kubeapi.faults import FaultStage, WatchFault
from ivytui.sandbox.kubeapi.records import Record, Watcher
from ivytui.sandbox.kubeapi.requestlog import mark_logged
from ivytui.sandbox.kubeapi.resources import ResourceType, Target
from ivytui.sandbox.kubeapi.selectors import Filter
from ivytui.sandbox.kubeapi.store import KubeStore


class ListWatchHandlers:
    """The list and watch verbs of `KubeAPIServer` (a mixin: the server provides the state)."""

    store: KubeStore
    requests: list[Obj]
    bookmark_interval: float
    _streams: set[Watcher]
    _stopping: bool
    faults: FaultStage

    def _list(self, request: web.Request, t: Target) -> web.Response:
        q = request.query
        rt = t.rt
        rv = int_param(q.get("resourceVersion"), "resourceVersion")
        if (
            q.get("resourceVersionMatch") == "Exact"
            and rv is not None
            and (rv != self.store.resource_version)
        ):
            raise gone(rv, self.store.resource_version)
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
                raise bad_request("continue key is not valid") from None
            meta["resourceVersion"] = list_rv
            items = [
                o
                for o in items
                if (o["metadata"].get("namespace", ""), o["metadata"]["name"]) > after
            ]
        limit = int_param(q.get("limit"), "limit")
        if limit and limit > 0 and len(items) > limit:
            last = items[limit - 1]["metadata"]
            state = {"ns": last.get("namespace", ""), "name": last["name"], "rv": list_rv}
            meta["continue"] = base64.urlsafe_b64encode(dumps(state)).decode()
            meta["remainingItemCount"] = len(items) - limit
            items = items[:limit]
        body = dumps(
            {
                "kind": f"{rt.kind}List",
                "apiVersion": rt.api_version,
                "metadata": meta,
                "items": items,
            }
        )
        return web.Response(body=body, headers={"Content-Type": "application/json"})

    async def _watch(
        self, request: web.Request, t: Target, fault: WatchFault | None = None
    ) -> web.StreamResponse:
        q = request.query
        rt = t.rt
        field_selector = q.get("fieldSelector")
        if t.name is not None:
            by_name = f"metadata.name={t.name}"
            field_selector = f"{field_selector},{by_name}" if field_selector else by_name
        flt = self.store.make_filter(rt.key, t.namespace, q.get("labelSelector"), field_selector)
        raw_rv = q.get("resourceVersion", "")
        since = int_param(raw_rv, "resourceVersion")
        if since == 0:
            since = None
        send_initial = bool_param(q.get("sendInitialEvents"))
        if send_initial:
            since = None
        timeout = int_param(q.get("timeoutSeconds"), "timeoutSeconds")
        bookmarks = bool_param(q.get("allowWatchBookmarks"))
        resp = web.StreamResponse(
            status=200,
            headers={
                "Content-Type": "application/json",
                "Cache-Control": "no-cache, private",
            },
        )
        resp.enable_chunked_encoding()
        try:
            if fault is not None and fault.gone is not None:
                raise fault.gone
            initial, watcher = self.store.open_watch(rt.key, since)
        except ApiError as err:
            if err.code != 410:
                raise
            await resp.prepare(request)
            self._mark_logged(request, 200)
            await resp.write(dumps({"type": "ERROR", "object": err.status()}) + b"\n")
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
            # Live events the stream may still send before a fault ends it (None: no limit).
            budget = fault.close_after if fault is not None else None
            closed = budget == 0
            while not closed:
                now = loop.time()
                wait = 1.0
                if deadline is not None:
                    if now >= deadline:
                        break
                    wait = min(wait, deadline - now)
                if bookmarks:
                    wait = max(0.0, min(wait, last_bookmark + self.bookmark_interval - now))
                rec: Record | None
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
                if budget is not None and len(lines) >= budget:
                    del lines[budget:]
                    budget, closed = 0, True
                elif budget is not None:
                    budget -= len(lines)
                if lines:
                    await resp.write(b"".join(lines))
            if budget == 0 and fault is not None and fault.abort:
                # Reset mid-stream: the client sees the chunked body end without its last chunk.
                if request.transport is not None:
                    request.transport.abort()
                return resp
            with contextlib.suppress(ConnectionResetError, RuntimeError):
                await resp.write_eof()
        except ConnectionError:
            pass
        finally:
            if self._stopping:
                self.faults.note_stopped_stream(request)
            self._streams.discard(watcher)
            self.store.close_watch(watcher)
        return resp

    def _mark_logged(self, request: web.Request, status: int) -> None:
        mark_logged(request, status, self.requests)

    @staticmethod
    def _bookmark(rt: ResourceType, rv: int, *, initial_end: bool = False) -> bytes:
        meta: Obj = {"resourceVersion": str(rv)}
        if initial_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        obj = {"kind": rt.kind, "apiVersion": rt.api_version, "metadata": meta}
        return dumps({"type": "BOOKMARK", "object": obj}) + b"\n"

    @staticmethod
    def _event_line(rec: Record, flt: Filter) -> bytes | None:
        now_match = flt.matches(rec.obj)
        if rec.type == "MODIFIED" and rec.prev is not None:
            was_match = flt.matches(rec.prev)
            if now_match and not was_match:
                return dumps({"type": "ADDED", "object": rec.obj}) + b"\n"
            if was_match and not now_match:
                old = copy_json(rec.prev)
                old["metadata"]["resourceVersion"] = str(rec.rv)
                return dumps({"type": "DELETED", "object": old}) + b"\n"
        if not now_match:
            return None
        return dumps({"type": rec.type, "object": rec.obj}) + b"\n"
