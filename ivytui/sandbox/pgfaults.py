"""The PostgreSQL part of the sandbox's fault stage: kill, reject, hang.

Every fault ends by itself — a kill after ``restart_after`` seconds (the restart the operator
would do), a reject or a hang after ``seconds`` — and nothing runs while none is armed. Arming
waits until the fault is in effect (the server down, the rule written and reloaded, the lock
granted, the server stopped), so that a test may look at once.

- ``{"kind": "kill", "target": "v4"|"v5", "name": V5, "mode": "immediate"|"sigkill",
  "restart": true, "restart_after": 2}`` — ``pg_ctl stop -m immediate`` (or SIGKILL of the
  postmaster's process group, like a pod killed), then started again after ``restart_after``
  seconds, as Patroni restarts a crashed primary and the v5 operator its instance. Not
  restarted with ``"restart": false`` (``DELETE`` starts it), nor while v4 is shut down by its
  operator (``spec.shutdown``) or a v5 instance was deleted.
- ``{"kind": "reject", "target": …, "user": ROLE, "seconds": 5}`` — a ``host … ROLE … reject``
  line before every other rule of ``pg_hba.conf``, reloaded; taken away and reloaded after
  ``seconds``. Connections over TCP only: the socket (the sandbox's own way in) stays open.
- ``{"kind": "hang", "target": …, "seconds": 5, "how": "lock"|"stop", "lock": TABLE}`` —
  ``lock`` (the default): a superuser transaction (over the socket) holding
  ``LOCK TABLE pg_catalog.pg_authid IN ACCESS EXCLUSIVE MODE`` (or ``lock``): every statement
  that reads ``pg_roles`` or ``pg_stat_activity`` waits — the console's poll of v4 and v5, the
  freeze's ``ALTER ROLE``, its role list and its ``pg_terminate_backend`` — and so does every
  new connection (the login reads ``pg_authid``), while sessions already open go on writing
  their own tables. A standby refuses the lock: ``stop`` SIGSTOPs the whole server instead
  (statements hang without the server's ``statement_timeout`` firing: only a client's own
  timeout ends the wait). Released (``ROLLBACK``, or SIGCONT) after ``seconds``.

The world is seen through :class:`FaultWorld`; the control endpoints are in ``endpoints.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import asyncpg

from ivytui.errors import SandboxError
from ivytui.sandbox.pg import PgServer

log = logging.getLogger(__name__)

KINDS = ("kill", "reject", "hang")
TARGETS = ("v4", "v5")
KILL_MODES = ("immediate", "sigkill")
HANG_HOWS = ("lock", "stop")
MAX_SECONDS = 3600.0
DEFAULT_LOCK = "pg_catalog.pg_authid"
APPLICATION_NAME = "ivytui-sandbox-fault"
FIRED_KEPT = 200

_FIELDS: dict[str, tuple[str, ...]] = {
    "kill": ("kind", "target", "name", "mode", "restart", "restart_after"),
    "reject": ("kind", "target", "name", "user", "seconds"),
    "hang": ("kind", "target", "name", "seconds", "how", "lock"),
}
_TABLE = re.compile(r"[a-z_][a-z0-9_$]*(\.[a-z_][a-z0-9_$]*)?")


class FaultSpecError(ValueError):
    """A fault body that cannot be armed as written (one line: the endpoint answers 400)."""


class FaultConflict(Exception):
    """A fault that cannot be armed now (no such server, not running…): 409."""


class FaultWorld(Protocol):
    """What the faults need of the world."""

    def pg_server(self, target: str, name: str) -> tuple[str, PgServer]:
        """``(name, server)`` of v4 (name ``""``) or of the v5 instance ``name`` (``""``: the
        standby's); SandboxError when there is none."""
        ...

    def pg_restart_refused(self, target: str, name: str, server: PgServer) -> str | None:
        """Why the operator would not start this server again now (None: it would)."""
        ...

    async def pg_restart(self, target: str, name: str) -> None: ...

    def pg_changed(self) -> None:
        """A server stopped or started: world.json's pids are rewritten."""
        ...


# --------------------------------------------------------------------------------------------
# The body


@dataclass(frozen=True, slots=True)
class FaultSpec:
    kind: str
    target: str
    name: str = ""
    mode: str = "immediate"
    restart: bool = True
    restart_after: float = 2.0
    user: str = ""
    seconds: float = 5.0
    how: str = "lock"
    lock: str = DEFAULT_LOCK

    def fields(self) -> dict[str, Any]:
        """The fields of its kind (what GET shows)."""
        out = {k: getattr(self, k) for k in _FIELDS[self.kind] if k != "name"}
        if self.kind == "hang" and self.how == "stop":
            out.pop("lock")
        return out


def _number(body: dict[str, Any], key: str, default: float, *, zero_ok: bool) -> float:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FaultSpecError(f"{key}: give seconds as a number, e.g. 5 (got {value!r})")
    value = float(value)
    low_ok = value >= 0 if zero_ok else value > 0
    if not math.isfinite(value) or not low_ok or value > MAX_SECONDS:
        low = "0" if zero_ok else "more than 0"
        raise FaultSpecError(f"{key}={value:g}: use {low} to {MAX_SECONDS:g} seconds")
    return value


def _choice(body: dict[str, Any], key: str, choices: tuple[str, ...], default: str) -> str:
    value = body.get(key, default)
    if value not in choices:
        raise FaultSpecError(f"{key} {value!r}: use {' or '.join(choices)}")
    return str(value)


def parse_fault(body: Any) -> FaultSpec:
    """A fault from a JSON body; FaultSpecError (one line) when it is not one."""
    if not isinstance(body, dict):
        raise FaultSpecError(
            'the body must be a JSON object, e.g. {"kind": "kill", "target": "v4"}'
        )
    kind = body.get("kind")
    if kind not in KINDS:
        raise FaultSpecError(f"kind {kind!r}: use kill, reject or hang")
    allowed = _FIELDS[kind]
    unknown = sorted(str(k) for k in body if k not in allowed)
    if unknown:
        raise FaultSpecError(
            f"{kind}: unknown field {unknown[0]!r} (a {kind} takes {', '.join(allowed[1:])})"
        )
    target = _choice(body, "target", TARGETS, "")
    name = body.get("name", "")
    if not isinstance(name, str):
        raise FaultSpecError(f"name {name!r}: give the v5 instance's name as a string")
    if name and target == "v4":
        raise FaultSpecError("name is for a v5 instance: v4 has one server")
    if kind == "kill":
        restart = body.get("restart", True)
        if not isinstance(restart, bool):
            raise FaultSpecError(f"restart {restart!r}: use true or false")
        return FaultSpec(
            kind,
            target,
            name,
            mode=_choice(body, "mode", KILL_MODES, "immediate"),
            restart=restart,
            restart_after=_number(body, "restart_after", 2.0, zero_ok=True),
        )
    seconds = _number(body, "seconds", 5.0, zero_ok=False)
    if kind == "reject":
        user = body.get("user")
        if not isinstance(user, str) or not user:
            raise FaultSpecError('reject: name the user to reject, e.g. "user": "ivytui_monitor"')
        if '"' in user or any(ord(ch) < 32 or ord(ch) == 127 for ch in user):
            raise FaultSpecError(f"user {user!r}: no quotes or control characters")
        if len(user.encode()) > 63:
            raise FaultSpecError(f"user {user!r}: longer than 63 bytes, no role has that name")
        return FaultSpec(kind, target, name, user=user, seconds=seconds)
    how = _choice(body, "how", HANG_HOWS, "lock")
    lock = body.get("lock", DEFAULT_LOCK)
    if how == "stop" and "lock" in body:
        raise FaultSpecError('lock is for "how": "lock"; a stopped server holds no lock')
    if not isinstance(lock, str) or not _TABLE.fullmatch(lock):
        raise FaultSpecError(
            f"lock {lock!r}: a table such as pg_catalog.pg_authid or public.ivytui_load"
        )
    return FaultSpec(kind, target, name, seconds=seconds, how=how, lock=lock)


# --------------------------------------------------------------------------------------------
# The faults


Undo = Callable[[], Awaitable[str]]


@dataclass(eq=False)
class Fault:
    id: int
    spec: FaultSpec
    name: str
    server: PgServer = field(repr=False)
    armed_at: float
    ends_at: float | None = None
    ended_at: float | None = None
    outcome: str = ""
    undo: Undo | None = field(default=None, repr=False)
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def where(self) -> str:
        return "v4" if self.spec.target == "v4" else f"v5 {self.name}"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "kind": self.spec.kind, "target": self.spec.target}
        if self.spec.target == "v5":
            out["name"] = self.name
        out.update(self.spec.fields())
        out.update(
            state="armed" if self.ended_at is None else "fired",
            armed_at=self.armed_at,
            ends_at=self.ends_at,
            ended_at=self.ended_at,
            outcome=self.outcome,
        )
        return out


def _words(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


class PgFaults:
    """The armed and the fired PostgreSQL faults of one world."""

    def __init__(self, world: FaultWorld, *, clock: Callable[[], float] = time.time) -> None:
        self.world = world
        self.clock = clock
        self._armed: dict[int, Fault] = {}
        self._fired: list[Fault] = []
        self._left_down: dict[str, Fault] = {}
        self._hba_locks: dict[Path, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self._next_id = 1

    # ---- reading ----------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        return {
            "armed": [f.to_json() for f in self._armed.values()],
            "fired": [f.to_json() for f in self._fired],
        }

    # ---- arming -----------------------------------------------------------------------------

    async def arm(self, body: Any) -> dict[str, Any]:
        """Arm the fault a body describes; FaultSpecError (400) or FaultConflict (409)."""
        spec = parse_fault(body)
        if self._closed:
            raise FaultConflict("the world is stopping")
        try:
            name, server = self.world.pg_server(spec.target, spec.name)
        except SandboxError as exc:
            raise FaultConflict(_words(exc)) from None
        fault = Fault(self._next_id, spec, name, server, armed_at=self.clock())
        self._next_id += 1
        if spec.kind == "kill":
            await self._kill(fault)
        elif spec.kind == "reject":
            await self._reject(fault)
        elif spec.how == "lock":
            await self._hang_lock(fault)
        else:
            self._hang_stop(fault)
        return fault.to_json()

    def _busy_hang(self, fault: Fault) -> None:
        for other in self._armed.values():
            if other.spec.kind == "hang" and other.server is fault.server:
                raise FaultConflict(
                    f"{fault.where} already hangs (fault {other.id}): one hang a server at a time"
                )

    def _schedule(self, fault: Fault, delay: float, undo: Undo) -> None:
        fault.undo = undo
        fault.ends_at = self.clock() + delay
        self._armed[fault.id] = fault
        task = asyncio.create_task(self._end_after(fault, delay), name=f"pg-fault-{fault.id}")
        fault.task = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _end_after(self, fault: Fault, delay: float) -> None:
        await asyncio.sleep(delay)
        await self._finish(fault)

    async def _finish(self, fault: Fault, why: str = "") -> None:
        # Taken out before the first await: clear() and close() only touch faults still armed,
        # whose task is still asleep.
        if self._armed.pop(fault.id, None) is None:
            return
        undo, fault.undo = fault.undo, None
        words = ""
        if undo is not None:
            try:
                words = await undo()
            except Exception as exc:
                log.exception("pg fault %s: undoing failed", fault.id)
                words = f"undoing failed: {_words(exc)}"
        self._fire(fault, "; ".join(w for w in (fault.outcome, words, why) if w))

    def _fire(self, fault: Fault, outcome: str) -> None:
        fault.outcome = outcome
        fault.ended_at = self.clock()
        self._fired.append(fault)
        del self._fired[:-FIRED_KEPT]

    async def _kill(self, fault: Fault) -> None:
        server, spec = fault.server, fault.spec
        if not server.is_running():
            raise FaultConflict(f"{fault.where} is not running")
        pid = server.pid
        try:
            if spec.mode == "immediate":
                await server.stop("immediate")
            else:
                await server.kill()
        except SandboxError as exc:
            raise FaultConflict(_words(exc)) from None
        finally:
            self.world.pg_changed()
        fault.outcome = f"killed ({spec.mode}, pid {pid})"
        if spec.restart:
            self._schedule(fault, spec.restart_after, lambda: self._restart(fault))
        else:
            self._left_down[fault.where] = fault
            self._fire(fault, f"{fault.outcome}; left down (restart: false)")

    async def _restart(self, fault: Fault) -> str:
        self._left_down.pop(fault.where, None)
        if self._closed:
            return "not restarted: the world is stopping"
        reason = self.world.pg_restart_refused(fault.spec.target, fault.name, fault.server)
        if reason is not None:
            return f"not restarted: {reason}"
        if fault.server.is_running():
            return f"already running again (pid {fault.server.pid})"
        try:
            await self.world.pg_restart(fault.spec.target, fault.name)
        except SandboxError as exc:
            return f"restart failed: {_words(exc)}"
        finally:
            self.world.pg_changed()
        return f"restarted (pid {fault.server.pid})"

    def _hba_lock(self, server: PgServer) -> asyncio.Lock:
        return self._hba_locks.setdefault(server.data_dir, asyncio.Lock())

    async def _reject(self, fault: Fault) -> None:
        server, marker = fault.server, f"ivytui-sandbox-fault-{fault.id}"
        line = f'host    all    "{fault.spec.user}"    all    reject'
        async with self._hba_lock(server):
            try:
                server.hba_prepend([line], marker)
                if server.is_running():
                    await server.reload()
            except (OSError, SandboxError) as exc:
                with contextlib.suppress(OSError):
                    server.hba_remove(marker)
                raise FaultConflict(f"{fault.where}: pg_hba.conf: {_words(exc)}") from None
        fault.outcome = f"{fault.spec.user} rejected over TCP"

        async def undo() -> str:
            async with self._hba_lock(server):
                try:
                    server.hba_remove(marker)
                except OSError:
                    return "pg_hba.conf is gone"
                if not server.is_running():
                    return "pg_hba.conf put back (the server is down)"
                await server.reload()
            return "pg_hba.conf put back and reloaded"

        self._schedule(fault, fault.spec.seconds, undo)

    async def _hang_lock(self, fault: Fault) -> None:
        server, lock = fault.server, fault.spec.lock
        self._busy_hang(fault)
        if not server.is_running():
            raise FaultConflict(f"{fault.where} is not running")
        try:
            conn = await asyncpg.connect(
                host=str(server.socket_dir),
                port=server.port,
                user="postgres",
                database="postgres",
                timeout=10,
                server_settings={"application_name": APPLICATION_NAME},
            )
        except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
            raise FaultConflict(
                f"{fault.where}: cannot connect to hold a lock: {_words(exc)}"
            ) from None
        try:
            await conn.execute("BEGIN")
            await conn.execute("SET LOCAL lock_timeout = '10s'")
            await conn.execute(f"LOCK TABLE {lock} IN ACCESS EXCLUSIVE MODE")
            backend = await conn.fetchval("SELECT pg_backend_pid()")
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            conn.terminate()
            hint = (
                ' (a standby takes no such lock: use "how": "stop")'
                if "recovery" in str(exc)
                else ""
            )
            raise FaultConflict(f"{fault.where}: LOCK TABLE {lock}: {_words(exc)}{hint}") from None
        fault.outcome = f"{lock} locked (ACCESS EXCLUSIVE, backend pid {backend})"

        async def undo() -> str:
            try:
                await conn.execute("ROLLBACK", timeout=5)
                await conn.close(timeout=5)
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
                conn.terminate()
                return "the session was gone (the lock with it)"
            return "released"

        self._schedule(fault, fault.spec.seconds, undo)

    def _hang_stop(self, fault: Fault) -> None:
        server = fault.server
        self._busy_hang(fault)
        try:
            server.freeze()
        except SandboxError as exc:
            raise FaultConflict(_words(exc)) from None
        fault.outcome = f"stopped (SIGSTOP, pid {server.pid} and its children)"

        async def undo() -> str:
            if not server.frozen:
                return "already going again (the server was stopped or killed)"
            server.thaw()
            return "continued (SIGCONT)"

        self._schedule(fault, fault.spec.seconds, undo)

    # ---- ending early -----------------------------------------------------------------------

    async def clear(self) -> dict[str, Any]:
        """Undo every fault now: hangs released, rules taken away, killed servers started
        (also those left down by ``restart: false``, unless the operator would not)."""
        order = {"hang": 0, "reject": 1, "kill": 2}
        armed = sorted(self._armed.values(), key=lambda f: (order[f.spec.kind], f.id))
        for fault in armed:
            if fault.task is not None:
                fault.task.cancel()
        cleared: list[Fault] = []
        for fault in armed:
            await self._finish(fault, "undone early (DELETE)")
            cleared.append(fault)
        for fault in list(self._left_down.values()):
            words = await self._restart(fault)
            fault.outcome = f"{fault.outcome}; {words} (DELETE)"
            cleared.append(fault)
        return {"cleared": [f.to_json() for f in cleared], **self.status()}

    async def close(self) -> None:
        """The world stops: end every fault without starting anything again (servers are
        thawed and lock sessions ended, so that they can be stopped); waits for an ending
        already under way (a restart that has begun), so that the world stops what it started."""
        self._closed = True
        for fault in list(self._armed.values()):
            if fault.task is not None:
                fault.task.cancel()
            self._armed.pop(fault.id, None)
            undo = fault.undo if fault.spec.kind == "hang" else None
            fault.undo = None
            words = ""
            if undo is not None:
                with contextlib.suppress(Exception):
                    words = await undo()
            self._fire(
                fault, "; ".join(w for w in (fault.outcome, words, "the world stopped") if w)
            )
        self._left_down.clear()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
