"""Writers on the v4 primary: rows with increasing ids.

- :class:`WriteLoad` — a light, steady, cooperative load (the superuser, one long session): it
  obeys the freeze like a well-behaved client.
- :class:`CarelessWriter` — an application that does not: its own role, a new session per row,
  ``SET default_transaction_read_only = off`` in each.

Every id whose COMMIT the server acknowledged is appended to a file, so that a test can later
prove that no acknowledged row was lost on the way to v5.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

log = logging.getLogger(__name__)

TABLE_SQL = """
CREATE TABLE IF NOT EXISTS ivytui_load (
    id bigint PRIMARY KEY,
    written_at timestamptz NOT NULL DEFAULT now(),
    payload text NOT NULL
)
"""


class WriteLoad:
    """Inserts one row every `interval` seconds while the primary accepts writes."""

    def __init__(self, dsn: str, acked_file: Path, *, interval: float = 0.25) -> None:
        self.dsn = dsn
        self.acked_file = acked_file
        self.interval = interval
        self.last_error: str | None = None
        self.acked = 0
        self._task: asyncio.Task[None] | None = None
        self._paused = asyncio.Event()
        self._paused.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="write-load")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    def pause(self) -> None:
        self._paused.clear()

    def resume(self) -> None:
        self._paused.set()

    def _next_id(self) -> int:
        if not self.acked_file.exists():
            return 1
        last = 0
        with self.acked_file.open() as fh:
            for line in fh:
                line = line.strip()
                if line.isdigit():
                    last = max(last, int(line))
        return last + 1

    async def _run(self) -> None:
        next_id = self._next_id()
        conn: asyncpg.Connection | None = None
        backoff = 0.5
        with self.acked_file.open("a") as out:
            while True:
                await self._paused.wait()
                try:
                    if conn is None or conn.is_closed():
                        conn = await asyncpg.connect(self.dsn, timeout=3)
                        await conn.execute(TABLE_SQL)
                        row = await conn.fetchval("SELECT coalesce(max(id), 0) FROM ivytui_load")
                        next_id = max(next_id, int(row) + 1)
                    await conn.execute(
                        "INSERT INTO ivytui_load (id, payload) VALUES ($1, $2)",
                        next_id,
                        f"row {next_id} at {time.time():.3f}",
                        timeout=5,
                    )
                    out.write(f"{next_id}\n")
                    out.flush()
                    self.acked += 1
                    next_id += 1
                    self.last_error = None
                    backoff = 0.5
                    await asyncio.sleep(self.interval)
                except asyncio.CancelledError:
                    if conn is not None:
                        conn.terminate()
                    raise
                except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
                    self.last_error = str(exc) or type(exc).__name__
                    if isinstance(exc, asyncpg.ReadOnlySQLTransactionError):
                        pass
                    elif conn is not None:
                        conn.terminate()
                        conn = None
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)


# --------------------------------------------------------------------------------------------
# A careless application


MONITOR_ROLE = "ivytui_monitor"
APP_ROLE = "app"
APP_TABLE = "app_rows"
APP_TABLE_SQL = f"""
CREATE TABLE IF NOT EXISTS {APP_TABLE} (
    id bigint PRIMARY KEY,
    written_at timestamptz NOT NULL DEFAULT now(),
    payload text NOT NULL
)
"""


def sql_literal(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def roles_sql(*, monitor_password: str, app_password: str) -> str:
    """The monitor's role (``pg_monitor`` and nothing else) and the application's role with its
    table: run on v4 before the full backup, so that a v5 standby restored from it has them."""
    return (
        f"CREATE ROLE {MONITOR_ROLE} LOGIN PASSWORD {sql_literal(monitor_password)}"
        " IN ROLE pg_monitor;\n"
        f"CREATE ROLE {APP_ROLE} LOGIN PASSWORD {sql_literal(app_password)};\n"
        f"{APP_TABLE_SQL.strip()};\n"
        f"GRANT USAGE ON SCHEMA public TO {APP_ROLE};\n"
        f"GRANT SELECT, INSERT ON {APP_TABLE} TO {APP_ROLE};\n"
    )


Targets = Callable[[], Sequence[tuple[str, str]]]
"""``(name, dsn)`` pairs, asked again before every row: where the application may write."""


@dataclass(frozen=True, slots=True)
class Commit:
    """One acknowledged row: its id, when the COMMIT was acknowledged, and where."""

    id: int
    at: float
    target: str


class CarelessWriter:
    """An application that ignores every freeze: one NEW session per row, each starting with
    ``SET default_transaction_read_only = off``, as its own non-superuser role.

    Every ``interval`` seconds it writes one row with the next id, trying each target in turn
    (the first that takes the row wins; the world gives v4 first, then the v5 instances, as an
    application behind a Service that moves would see them). Errors — connection refused, too
    many connections for the role, a read-only transaction, a server shutting down — are
    counted and retried after a short back-off, with the next id. Each acknowledged id is
    appended to ``acked_file`` (one a line, flushed) and, with the time of its acknowledgement
    and the target, to ``commits_file`` (``id<TAB>epoch<TAB>target``).

    Plain asyncpg and nothing of ivytui, so that what it proves does not depend on ivytui.
    """

    def __init__(
        self,
        targets: Targets,
        acked_file: Path,
        *,
        interval: float,
        commits_file: Path | None = None,
        connect_timeout: float = 2.0,
        statement_timeout: float = 3.0,
        backoff_start: float = 0.05,
        backoff_max: float = 0.5,
    ) -> None:
        if interval <= 0:
            raise ValueError(f"interval must be positive, got {interval}")
        self.targets = targets
        self.acked_file = acked_file
        self.commits_file = commits_file or acked_file.with_suffix(".commits.tsv")
        self.interval = interval
        self.connect_timeout = connect_timeout
        self.statement_timeout = statement_timeout
        self.backoff_start = backoff_start
        self.backoff_max = backoff_max
        self.acked = 0
        self.attempts = 0
        self.errors: Counter[str] = Counter()
        self.last_error: str | None = None
        self.last_commit: Commit | None = None
        self.commits: list[Commit] = []
        self.started_at: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._conn: asyncpg.Connection | None = None
        self._next = 1

    def __repr__(self) -> str:
        # The targets carry passwords: never shown.
        return (
            f"CarelessWriter(interval={self.interval}, acked={self.acked}, running={self.running})"
        )

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if self.running:
            raise RuntimeError("the careless writer is already running")
        self.started_at = time.time()
        self._task = asyncio.create_task(self._run(), name="careless-writer")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            conn.terminate()

    def status(self) -> dict[str, Any]:
        last = self.last_commit
        return {
            "running": self.running,
            "interval": self.interval,
            "acked": self.acked,
            "attempts": self.attempts,
            "errors": dict(self.errors),
            "last_error": self.last_error,
            "last_commit": (
                {"id": last.id, "at": last.at, "target": last.target} if last else None
            ),
            "started_at": self.started_at,
            "acked_file": str(self.acked_file),
            "commits_file": str(self.commits_file),
        }

    def _next_id(self) -> int:
        last = 0
        with contextlib.suppress(FileNotFoundError):
            with self.acked_file.open() as fh:
                for line in fh:
                    line = line.strip()
                    if line.isdigit():
                        last = max(last, int(line))
        return last + 1

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        self._next = self._next_id()
        backoff = self.backoff_start
        due = loop.time()
        with self.acked_file.open("a") as acked, self.commits_file.open("a") as commits:
            while True:
                delay = due - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                self.attempts += 1
                commit = await self._write_one(self._next)
                # An id tried and not acknowledged may have been committed: never reused.
                self._next += 1
                if commit is None:
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, self.backoff_max)
                    due = loop.time()
                    continue
                acked.write(f"{commit.id}\n")
                acked.flush()
                commits.write(f"{commit.id}\t{commit.at:.6f}\t{commit.target}\n")
                commits.flush()
                self.acked += 1
                self.last_commit = commit
                self.commits.append(commit)
                self.last_error = None
                backoff = self.backoff_start
                due = max(due + self.interval, loop.time())

    async def _write_one(self, row_id: int) -> Commit | None:
        """Write the row through the first target that takes it."""
        try:
            targets = list(self.targets())
        except Exception as exc:
            self._failed("targets", f"no targets: {exc}")
            return None
        if not targets:
            self._failed("no-target", "no database to write to")
            return None
        for name, dsn in targets:
            try:
                at = await self._insert(dsn, row_id)
            except asyncio.CancelledError:
                raise
            except _IdTaken as taken:
                # Rows of an earlier run (or committed without an acknowledgement): go past them.
                self._failed("unique_violation", f"{name}: id {row_id} exists already")
                self._next = max(self._next, taken.newest)
                return None
            except Exception as exc:
                self._failed(_error_kind(exc), f"{name}: {exc or type(exc).__name__}")
                continue
            return Commit(id=row_id, at=at, target=name)
        return None

    async def _insert(self, dsn: str, row_id: int) -> float:
        """One session, one row; the time its COMMIT was acknowledged."""
        conn = await asyncpg.connect(dsn, timeout=self.connect_timeout, statement_cache_size=0)
        self._conn = conn
        try:
            await conn.execute(
                "SET default_transaction_read_only = off", timeout=self.statement_timeout
            )
            try:
                await conn.execute(
                    f"INSERT INTO {APP_TABLE} (id, payload) VALUES ($1, $2)",
                    row_id,
                    f"careless row {row_id} at {time.time():.3f}",
                    timeout=self.statement_timeout,
                )
            except asyncpg.UniqueViolationError:
                newest = await conn.fetchval(
                    f"SELECT coalesce(max(id), 0) FROM {APP_TABLE}",
                    timeout=self.statement_timeout,
                )
                raise _IdTaken(int(newest)) from None
            return time.time()
        finally:
            self._conn = None
            if not conn.is_closed():
                try:
                    await asyncio.wait_for(conn.close(), 1.0)
                except asyncio.CancelledError:
                    conn.terminate()
                    raise
                except Exception:
                    conn.terminate()

    def _failed(self, kind: str, words: str) -> None:
        self.errors[kind] += 1
        self.last_error = words
        log.debug("careless writer: %s", words)


class _IdTaken(Exception):
    """The id is in the table already; ``newest`` is the highest there."""

    def __init__(self, newest: int) -> None:
        super().__init__(f"ids up to {newest} are taken")
        self.newest = newest


def _error_kind(exc: BaseException) -> str:
    """A short name for the failure: the SQLSTATE's condition name where there is one."""
    if isinstance(exc, asyncpg.TooManyConnectionsError):
        return "too_many_connections"
    if isinstance(exc, asyncpg.ReadOnlySQLTransactionError):
        return "read_only"
    if isinstance(exc, asyncpg.CannotConnectNowError):
        return "cannot_connect_now"
    if isinstance(exc, ConnectionRefusedError):
        return "connection_refused"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, OSError):
        return "os_error"
    if isinstance(exc, asyncpg.PostgresError):
        return f"sqlstate_{exc.sqlstate}"
    return type(exc).__name__
