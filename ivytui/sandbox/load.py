"""A light, steady write load on the v4 primary: rows with increasing ids.

Every id whose COMMIT the server acknowledged is appended to a file, so that a test can later
prove that no acknowledged row was lost on the way to v5.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

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
