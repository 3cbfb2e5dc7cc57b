"""The supervisor's control endpoints, served beside the API emulator under ``/_sandbox/``.

They see the world through :class:`Controlled`, never the World class itself:

- ``GET  /_sandbox/world`` — what ``world.json`` says, live;
- ``POST /_sandbox/faults/s3/stop|start`` — the object store refuses connections, or serves again;
- ``POST /_sandbox/faults/s3/arm`` — arm an S3 fault (body: ``{"fault": "slowdown"|
  "internal_error"|"access_denied"|"truncate"|"corrupt"|"delay", "count"|"duration", …}``, see
  ``s3server.py``; 400 for a bad body, 409 when the storage is GCS or down for good);
  ``GET /_sandbox/faults/s3`` — the armed and ended ones; ``DELETE /_sandbox/faults/s3`` — clear
  them all; ``GET /_sandbox/faults/s3/log?since=SEQ&injected=1`` — the S3 server's request log,
  the injected answers marked;
- ``POST /_sandbox/standby`` — create the v5 standby object (body: ``name``, ``repo_path``,
  ``bucket``, all optional);
- ``POST /_sandbox/load/pause|resume`` — the cooperative write load;
- ``POST /_sandbox/careless/start?interval=SECONDS`` — start (or restart at a new rate) the
  careless application writer; ``POST /_sandbox/careless/stop``; ``GET /_sandbox/careless`` —
  its counts, errors and last acknowledged commit;
- ``POST /_sandbox/faults/pg`` — arm a PostgreSQL fault (body: ``{"kind": "kill"|"reject"|"hang",
  "target": "v4"|"v5", …}``, see ``pgfaults.py``; 400 for a bad body, 409 when it cannot be armed
  now); ``GET /_sandbox/faults/pg`` — the armed and the fired ones; ``DELETE
  /_sandbox/faults/pg`` — undo them all now.
"""

from __future__ import annotations

import json
import math
from typing import Any, Protocol

from aiohttp import web

from ivytui.errors import SandboxError
from ivytui.sandbox.load import CarelessWriter, WriteLoad
from ivytui.sandbox.objectstore import ObjectStore
from ivytui.sandbox.pgfaults import FaultConflict, FaultSpecError, PgFaults


class Controlled(Protocol):
    """What the endpoints need of the world."""

    load: WriteLoad | None
    careless: CarelessWriter | None
    objstore: ObjectStore
    pg_faults: PgFaults

    def describe(self) -> dict[str, Any]: ...

    async def storage_fault(self, up: bool) -> None: ...

    def create_standby_object(
        self, name: str | None = None, *, repo_path: str | None = None, bucket: str | None = None
    ) -> dict[str, Any]: ...

    async def careless_start(self, interval: float) -> CarelessWriter: ...

    async def careless_stop(self) -> CarelessWriter | None: ...


def _error(words: str, status: int) -> web.Response:
    return web.json_response({"error": words}, status=status)


def add_control_routes(app: web.Application, world: Controlled) -> None:
    async def world_info(_: web.Request) -> web.Response:
        return web.json_response(world.describe())

    async def s3_fault(request: web.Request) -> web.Response:
        action = request.match_info["action"]
        if action not in ("stop", "start"):
            return _error("use stop or start", 400)
        await world.storage_fault(action == "start")
        return web.json_response({"s3": action})

    async def standby(request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else {}
        obj = world.create_standby_object(
            body.get("name"), repo_path=body.get("repo_path"), bucket=body.get("bucket")
        )
        return web.json_response(obj)

    async def load(request: web.Request) -> web.Response:
        action = request.match_info["action"]
        if world.load is None:
            return _error("no load", 409)
        if action == "pause":
            world.load.pause()
        elif action == "resume":
            world.load.resume()
        return web.json_response({"load": action, "acked": world.load.acked})

    async def careless_start(request: web.Request) -> web.Response:
        text = request.query.get("interval", "")
        try:
            interval = float(text)
        except ValueError:
            return _error(f"interval={text!r}: give the seconds between rows, e.g. 4 or 0.05", 400)
        if not math.isfinite(interval) or not 0.001 <= interval <= 3600:
            return _error(f"interval={text}: use 0.001 to 3600 seconds", 400)
        writer = await world.careless_start(interval)
        return web.json_response(writer.status())

    async def careless_stop(_: web.Request) -> web.Response:
        writer = await world.careless_stop()
        if writer is None:
            return _error("the careless writer was never started", 409)
        return web.json_response(writer.status())

    async def careless_status(_: web.Request) -> web.Response:
        writer = world.careless
        if writer is None:
            return _error("the careless writer was never started", 404)
        return web.json_response(writer.status())

    app.router.add_get("/_sandbox/world", world_info)
    app.router.add_post("/_sandbox/faults/s3/{action}", s3_fault)
    app.router.add_post("/_sandbox/standby", standby)
    app.router.add_post("/_sandbox/load/{action}", load)
    app.router.add_post("/_sandbox/careless/start", careless_start)
    app.router.add_post("/_sandbox/careless/stop", careless_stop)
    app.router.add_get("/_sandbox/careless", careless_status)
    add_s3_fault_routes(app, world)
    add_pg_fault_routes(app, world)


def add_pg_fault_routes(app: web.Application, world: Controlled) -> None:
    """``/_sandbox/faults/pg``: POST arms one, GET lists them, DELETE undoes them all now."""

    async def arm(request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.text())
        except ValueError:
            return _error('the body is not JSON: e.g. {"kind": "kill", "target": "v4"}', 400)
        try:
            return web.json_response(await world.pg_faults.arm(body))
        except FaultSpecError as exc:
            return _error(" ".join(str(exc).split()), 400)
        except FaultConflict as exc:
            return _error(" ".join(str(exc).split()), 409)

    async def listed(_: web.Request) -> web.Response:
        return web.json_response(world.pg_faults.status())

    async def cleared(_: web.Request) -> web.Response:
        return web.json_response(await world.pg_faults.clear())

    app.router.add_post("/_sandbox/faults/pg", arm)
    app.router.add_get("/_sandbox/faults/pg", listed)
    app.router.add_delete("/_sandbox/faults/pg", cleared)


def add_s3_fault_routes(app: web.Application, world: Controlled) -> None:
    """``/_sandbox/faults/s3``: POST ``…/arm`` arms one, GET lists them, DELETE clears them all,
    GET ``…/log`` reads the S3 server's request log. Forwarded to the S3 server's control port."""

    async def forward(
        method: str, path: str, body: Any = None, query: dict[str, str] | None = None
    ) -> web.Response:
        try:
            status, answer = await world.objstore.s3_faults(method, path, body=body, query=query)
        except SandboxError as exc:
            return _error(str(exc), 409)
        return web.json_response(answer, status=status)

    async def arm(request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.text())
        except ValueError:
            return _error('the body is not JSON: e.g. {"fault": "slowdown", "count": 1}', 400)
        return await forward("POST", "/faults", body)

    async def listed(_: web.Request) -> web.Response:
        return await forward("GET", "/faults")

    async def cleared(_: web.Request) -> web.Response:
        return await forward("DELETE", "/faults")

    async def request_log(request: web.Request) -> web.Response:
        query = {k: request.query[k] for k in ("since", "injected") if k in request.query}
        return await forward("GET", "/log", query=query)

    app.router.add_post("/_sandbox/faults/s3/arm", arm)
    app.router.add_get("/_sandbox/faults/s3", listed)
    app.router.add_delete("/_sandbox/faults/s3", cleared)
    app.router.add_get("/_sandbox/faults/s3/log", request_log)
