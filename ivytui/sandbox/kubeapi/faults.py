"""The fault stage: API faults a test arms on demand, each ending by itself after a count of
matching requests or a duration, and costing nothing while none is armed.

Control, on the emulator itself: `POST /_sandbox/faults/kube` with one fault as a JSON object
(answers it, with its `id`), `GET` lists the faults armed since the last clear (with `fired`,
`active`, `remaining`, `expires_in`), `DELETE` clears them all (and wakes the requests a hang
holds). A bad body gets a 400 `{"error": "<one line>"}`.

Every kind but `stop` matches `verb` (get, list, watch, create, patch, update, delete,
deletecollection), `resource` (a plural, `plural.group`, or `plural/status` for the status
subresource only; a plain plural matches both) and optionally `namespace` and `name` (a list or
watch matches a name through `fieldSelector=metadata.name=...`); `*` (the default) is any. Each
takes `count` (the next N matching requests) and/or `duration` (seconds it stays armed); with
neither, `count` is 1.

- `status`: `status` 500 (`InternalError`, "Internal error occurred: <message>" with the message
  as the one cause), 503 (`ServiceUnavailable`) or 429 (`TooManyRequests`); 503 and 429 send
  `retry_after` seconds (default 1) as the `Retry-After` header and `details.retryAfterSeconds`,
  both left out when it is 0, as kube-apiserver does. `message` replaces the default text.
- `hang`: the request waits `seconds` before it is served (or until its client gives up, logged
  499).
- `close-watch`: the watch stream ends after its initial events and `events` more (default 0);
  cleanly (the last chunk, like a server-side timeout), or with `abort: true` by resetting the
  connection mid-stream.
- `gone`: a watch that resumes from a resourceVersion (not "0", not sendInitialEvents) is refused
  with 410 `Expired` "too old resource version": as an ERROR event in a 200 stream (`form`
  "event", the default: what the watch cache does) or as an HTTP 410 `Status` (`form` "http").
- `conflict`: a patch, update or delete of an existing object answers 409 `Conflict` with the
  optimistic-lock message (a write of a missing object is served, and is not counted).
- `stop`: `seconds` — the answer is sent, then the whole server stops (its port refuses
  connections, watches end) and starts again on the same port with the same store.

Each request a fault answered (or held, or whose stream it ended) carries `"fault": "<id>"` in the
request log. `arm`, `armed` and `clear` are the client for callers in other threads or processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final, cast

from aiohttp import web

from ivytui.errors import SandboxError
from ivytui.sandbox.kubeapi.common import Obj, json_response
from ivytui.sandbox.kubeapi.errors import ApiError, conflict, gone
from ivytui.sandbox.kubeapi.requestlog import LOG_KEY, note_fault
from ivytui.sandbox.kubeapi.resources import Target
from ivytui.sandbox.kubeapi.store import KubeStore

log = logging.getLogger(__name__)

CONTROL_PATH: Final = "/_sandbox/faults/kube"
KINDS: Final = ("status", "hang", "close-watch", "gone", "conflict", "stop")
VERBS: Final = ("get", "list", "watch", "create", "patch", "update", "delete", "deletecollection")
WRITES: Final = ("patch", "update", "delete")
REASONS: Final = {429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable"}
MESSAGES: Final = {
    429: "Too many requests, please try again later.",
    500: "etcdserver: request timed out",
    503: "the server is currently unable to handle the request",
}
_MATCH: Final = ("verb", "resource", "namespace", "name", "count", "duration")
_FIELDS: Final[dict[str, tuple[str, ...]]] = {
    "status": (*_MATCH, "status", "retry_after", "message"),
    "hang": (*_MATCH, "seconds"),
    "close-watch": (*_MATCH, "events", "abort"),
    "gone": (*_MATCH, "form"),
    "conflict": _MATCH,
    "stop": ("seconds",),
}
_SHOWN: Final = ("kind", *_MATCH, "status", "retry_after", "message", "seconds", "events")
_SHOWN_MORE: Final = ("abort", "form")


class FaultSpecError(ValueError):
    """A fault the stage cannot arm; the message is one line."""

    code = 400


class FaultBusy(FaultSpecError):
    code = 409


@dataclass
class Fault:
    """One armed fault: what it matches, what it does, and how often it has fired."""

    id: str
    kind: str
    verb: str = "*"
    resource: str = "*"
    namespace: str | None = None
    name: str | None = None
    count: int | None = None
    duration: float | None = None
    status: int | None = None
    retry_after: int | None = None
    message: str | None = None
    seconds: float | None = None
    events: int | None = None
    abort: bool | None = None
    form: str | None = None
    fired: int = 0
    armed_at: float = field(default_factory=time.monotonic)
    state: str | None = None
    released: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    def live(self, now: float) -> bool:
        if self.kind == "stop":
            return self.state in ("stopping", "stopped")
        if self.count is not None and self.fired >= self.count:
            return False
        return self.duration is None or now < self.armed_at + self.duration

    def matches(self, verb: str, t: Target, request: web.Request) -> bool:
        if self.verb != "*" and self.verb != verb:
            return False
        if self.kind in ("close-watch", "gone") and verb != "watch":
            return False
        if self.kind == "conflict" and verb not in WRITES:
            return False
        if self.resource != "*":
            base, _, sub = self.resource.partition("/")
            if base not in (t.rt.plural, t.rt.key) or (sub and sub != t.subresource):
                return False
        if self.namespace is not None and self.namespace != t.namespace:
            return False
        return self.name is None or self.name == (t.name or _selected_name(request))

    def describe(self, now: float | None = None) -> Obj:
        now = time.monotonic() if now is None else now
        out: Obj = {"id": self.id}
        for key in (*_SHOWN, *_SHOWN_MORE):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        out["fired"] = self.fired
        out["active"] = self.live(now)
        if self.count is not None:
            out["remaining"] = max(0, self.count - self.fired)
        if self.duration is not None:
            out["expires_in"] = round(max(0.0, self.armed_at + self.duration - now), 3)
        if self.state is not None:
            out["state"] = self.state
        return out


@dataclass(frozen=True)
class WatchFault:
    """What a fault does to one watch stream: refuse it (`gone`) or end it after `close_after`
    live events (`abort`: by resetting the connection)."""

    fault_id: str
    gone: ApiError | None = None
    close_after: int | None = None
    abort: bool = False


def _selected_name(request: web.Request) -> str | None:
    for term in request.query.get("fieldSelector", "").split(","):
        key, sep, value = term.partition("=")
        if sep and key.strip() == "metadata.name":
            return value.lstrip("=").strip()
    return None


def _resume_rv(request: web.Request) -> int | None:
    """The resourceVersion a watch resumes from, or None when it starts afresh."""
    q = request.query
    if q.get("sendInitialEvents") in ("1", "t", "T", "true", "TRUE", "True"):
        return None
    try:
        rv = int(q.get("resourceVersion", ""))
    except ValueError:
        return None
    return rv if rv > 0 else None


# ---- parsing -----------------------------------------------------------------------------------


def parse_spec(body: Any) -> Obj:
    """The normalised fields of a fault from its JSON form; FaultSpecError says what is wrong."""
    if not isinstance(body, dict):
        raise FaultSpecError("a fault must be a JSON object")
    kind = body.get("kind")
    if kind not in KINDS:
        raise FaultSpecError(f"kind must be one of {', '.join(KINDS)}; got {json.dumps(kind)}")
    allowed = _FIELDS[kind]
    for key in body:
        if key != "kind" and key not in allowed:
            raise FaultSpecError(
                f'unknown field "{key}" for a {kind} fault; it takes {", ".join(allowed)}'
            )
    spec: Obj = {"kind": kind}
    if kind == "stop":
        spec["seconds"] = _positive(body, "seconds", required=True)
        return spec
    verbs = {"close-watch": ("watch",), "gone": ("watch",), "conflict": WRITES}.get(kind, VERBS)
    verb = body.get("verb", "*")
    if verb != "*" and verb not in verbs:
        raise FaultSpecError(
            f'verb must be "*" or one of {", ".join(verbs)} for a {kind} fault; '
            f"got {json.dumps(verb)}"
        )
    spec["verb"] = verb
    resource = _text(body, "resource") or "*"
    base, slash, sub = resource.partition("/")
    if resource != "*" and (not base or base == "*" or (slash and sub != "status")):
        raise FaultSpecError(
            f'resource must be "*", a plural, plural.group or plural/status; got "{resource}"'
        )
    spec["resource"] = resource
    spec["namespace"] = _text(body, "namespace")
    spec["name"] = _text(body, "name")
    spec["count"] = _integer(body, "count", minimum=1)
    spec["duration"] = _positive(body, "duration")
    if spec["count"] is None and spec["duration"] is None:
        spec["count"] = 1
    if kind == "status":
        code = body.get("status")
        if isinstance(code, bool) or code not in REASONS:
            raise FaultSpecError(
                f"status must be 429, 500 or 503 for a status fault; got {json.dumps(code)}"
            )
        spec["status"] = code
        retry = _integer(body, "retry_after", minimum=0)
        if code == 500 and retry is not None:
            raise FaultSpecError("retry_after applies to 429 and 503 only")
        spec["retry_after"] = None if code == 500 else (1 if retry is None else retry)
        spec["message"] = _text(body, "message")
    elif kind == "hang":
        spec["seconds"] = _positive(body, "seconds", required=True)
    elif kind == "close-watch":
        spec["events"] = _integer(body, "events", minimum=0) or 0
        abort = body.get("abort", False)
        if not isinstance(abort, bool):
            raise FaultSpecError(f"abort must be true or false; got {json.dumps(abort)}")
        spec["abort"] = abort
    elif kind == "gone":
        form = body.get("form", "event")
        if form not in ("event", "http"):
            raise FaultSpecError(f'form must be "event" or "http"; got {json.dumps(form)}')
        spec["form"] = form
    return {k: v for k, v in spec.items() if v is not None}


def _text(body: Obj, key: str) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or "\n" in value:
        raise FaultSpecError(f"{key} must be a non-empty one-line string; got {json.dumps(value)}")
    return value


def _integer(body: Obj, key: str, *, minimum: int) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise FaultSpecError(f"{key} must be an integer >= {minimum}; got {json.dumps(value)}")
    return value


def _positive(body: Obj, key: str, *, required: bool = False) -> float | None:
    value = body.get(key)
    if value is None:
        if required:
            raise FaultSpecError(f"{key} is required: a number of seconds > 0")
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise FaultSpecError(f"{key} must be a number of seconds > 0; got {json.dumps(value)}")
    return float(value)


# ---- the stage ---------------------------------------------------------------------------------


class FaultStage:
    """The armed faults of one `KubeAPIServer`; the server consults it only while `live` is not
    empty. `halt` and `restart` stop and start the server for the `stop` fault."""

    def __init__(
        self,
        store: KubeStore,
        halt: Callable[[], Awaitable[None]],
        restart: Callable[[], Awaitable[int]],
    ) -> None:
        self.store = store
        self.live: list[Fault] = []
        self._all: list[Fault] = []
        self._seq = 0
        self._halt = halt
        self._restart = restart
        self._outage: asyncio.Task[None] | None = None
        self.outage_id: str | None = None

    # -- arming --

    def arm(self, body: Any) -> Obj:
        """Arm a fault from its JSON form (in-process); a `stop` starts at once."""
        f = self._register(parse_spec(body))
        if f.kind == "stop":
            self._begin_outage(f)
        return f.describe()

    def _register(self, spec: Obj) -> Fault:
        if spec["kind"] == "stop" and self._outage is not None and not self._outage.done():
            raise FaultBusy("the server is already stopped or stopping")
        self._seq += 1
        f = Fault(id=f"kf{self._seq}", **spec)
        if f.kind == "stop":
            f.state = "stopping"
        else:
            self.live.append(f)
        self._all.append(f)
        log.info("kube api emulator: armed fault %s", f.describe())
        return f

    def faults(self) -> list[Obj]:
        now = time.monotonic()
        return [f.describe(now) for f in self._all]

    def clear(self) -> int:
        """Forget every fault; requests a hang holds go on. A stop in progress still restarts."""
        n = len(self._all)
        for f in self._all:
            f.released.set()
        self.live.clear()
        self._all.clear()
        return n

    # -- the request path --

    def _pick(
        self, kinds: tuple[str, ...], verb: str, t: Target, request: web.Request
    ) -> Fault | None:
        now = time.monotonic()
        for f in list(self.live):
            if not f.live(now):
                self.live.remove(f)
            elif f.kind in kinds and f.matches(verb, t, request) and self._eligible(f, t, request):
                return f
        return None

    def _eligible(self, f: Fault, t: Target, request: web.Request) -> bool:
        if f.kind == "conflict":
            return (
                t.name is not None
                and self.store.try_get(t.rt.key, t.name, namespace=t.namespace) is not None
            )
        if f.kind == "gone":
            return _resume_rv(request) is not None
        return True

    def _fire(self, f: Fault, request: web.Request) -> None:
        f.fired += 1
        note_fault(request, f.id)
        if not f.live(time.monotonic()):
            with contextlib.suppress(ValueError):
                self.live.remove(f)

    async def intercept(self, request: web.Request, verb: str, t: Target) -> WatchFault | None:
        """Apply the faults that match a resource request: hold it, answer it (raises the
        ApiError), or return what to do to its watch stream."""
        hang = self._pick(("hang",), verb, t, request)
        if hang is not None:
            self._fire(hang, request)
            assert hang.seconds is not None
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(hang.seconds):
                    await hang.released.wait()
        f = self._pick(("status", "conflict", "gone", "close-watch"), verb, t, request)
        if f is None:
            return None
        self._fire(f, request)
        if f.kind == "status":
            raise status_error(f)
        if f.kind == "conflict":
            assert t.name is not None
            raise conflict(t.rt, t.name)
        if f.kind == "gone":
            rv = _resume_rv(request) or 0
            err = gone(rv, max(rv, self.store.oldest_resource_version()) + 1)
            if f.form == "http":
                raise err
            return WatchFault(f.id, gone=err)
        return WatchFault(f.id, close_after=f.events or 0, abort=bool(f.abort))

    def note_stopped_stream(self, request: web.Request) -> None:
        """Mark a watch the `stop` fault ended (unless another fault already marked it)."""
        slot = request.get(LOG_KEY)
        if self.outage_id is not None and slot is not None and "fault" not in slot.entry:
            slot.entry["fault"] = self.outage_id

    # -- the outage --

    def _begin_outage(self, f: Fault) -> None:
        self.outage_id = f.id
        self._outage = asyncio.get_running_loop().create_task(self._run_outage(f))

    async def _run_outage(self, f: Fault) -> None:
        assert f.seconds is not None
        try:
            await self._halt()
            f.fired, f.state = 1, "stopped"
            log.info("kube api emulator: stopped by fault %s for %ss", f.id, f.seconds)
            await asyncio.sleep(f.seconds)
            await self._restart()
            f.state = "restarted"
        except SandboxError as exc:
            f.state = "failed"
            log.error("kube api emulator: cannot start again after fault %s: %s", f.id, exc)
        finally:
            self.outage_id = None

    async def cancel_outage(self) -> None:
        """Called when the server is stopped for good: a pending restart is cancelled."""
        task, self._outage = self._outage, None
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def restarted(self) -> None:
        """Wait until a `stop` in progress has started the server again."""
        task = self._outage
        if task is not None:
            await asyncio.shield(task)

    # -- the control endpoint --

    async def control(self, request: web.Request) -> web.StreamResponse:
        if request.method == "GET":
            return json_response({"faults": self.faults()})
        if request.method == "DELETE":
            return json_response({"cleared": self.clear()})
        if request.method != "POST":
            return web.json_response(
                {"error": f"{request.method} is not allowed; use GET, POST or DELETE"},
                status=405,
                headers={"Allow": "GET, POST, DELETE"},
            )
        raw = await request.read()
        try:
            body = json.loads(raw or b"null")
        except ValueError as exc:
            return web.json_response({"error": f"the body is not JSON: {exc}"}, status=400)
        try:
            f = self._register(parse_spec(body))
        except FaultSpecError as exc:
            return web.json_response({"error": str(exc)}, status=exc.code)
        resp = json_response(f.describe())
        if f.kind == "stop":
            # The answer goes out before the server stops: the stop closes this connection.
            resp.force_close()
            await resp.prepare(request)
            await resp.write_eof()
            self._begin_outage(f)
        return resp


def status_error(f: Fault) -> ApiError:
    """The Status a `status` fault answers, as `apierrors` builds it."""
    code = f.status or 500
    if code == 500:
        cause = f.message or MESSAGES[500]
        return ApiError(
            500,
            "InternalError",
            f"Internal error occurred: {cause}",
            details={"causes": [{"message": cause}]},
        )
    details: Obj = {"retryAfterSeconds": f.retry_after} if f.retry_after else {}
    return ApiError(code, REASONS[code], f.message or MESSAGES[code], details=details)


# ---- the client --------------------------------------------------------------------------------


def arm(kube_url: str, **fault: Any) -> Obj:
    """Arm a fault on the emulator at `kube_url` (blocking; call it off the emulator's loop).

    `arm(url, kind="status", status=503, verb="patch", resource="ivoryclusters", count=2)`
    returns the armed fault with its `id`; a refused fault raises SandboxError with the reason.
    """
    return cast(Obj, _call(kube_url, "POST", fault))


def armed(kube_url: str) -> list[Obj]:
    """The faults armed since the last clear, each with how many times it fired."""
    return cast(list[Obj], _call(kube_url, "GET")["faults"])


def clear(kube_url: str) -> int:
    """Clear every fault; returns how many there were."""
    return int(_call(kube_url, "DELETE")["cleared"])


_OPENER: Final = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _call(kube_url: str, method: str, body: Obj | None = None, timeout: float = 30.0) -> Any:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"} if data is not None else {}
    req = urllib.request.Request(
        kube_url.rstrip("/") + CONTROL_PATH, data=data, method=method, headers=headers
    )
    try:
        with _OPENER.open(req, timeout=timeout) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            words = str(json.loads(raw)["error"])
        except (ValueError, KeyError, TypeError):
            words = raw.decode(errors="replace").strip() or str(exc.reason)
        raise SandboxError(f"the Kubernetes API emulator refused the fault: {words}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise SandboxError(
            f"cannot reach the Kubernetes API emulator at {kube_url}: {reason}"
        ) from None
