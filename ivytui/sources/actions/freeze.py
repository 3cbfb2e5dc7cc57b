"""Step 3 and its undo — the freeze, the final switch, the thaw — and what every runner
shares: the driver's database connection. What each action does once its guard held: the writes, in order, and the waits for the
clusters to react. Mixed into the executor, which provides the writes with preconditions, the
marks, the journal's record of each change and the waits."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any

from ivytui.domain import sql as sqlgen
from ivytui.domain.lsn import Lsn
from ivytui.domain.model import Marks
from ivytui.domain.walname import parse_walfile_name
from ivytui.sources.actions.errors import ActionFailed
from ivytui.sources.actions.plans import Plan, PlanBuilder
from ivytui.sources.kube_write import ReadOnlyRefused

if TYPE_CHECKING:
    from ivytui.sources.actions.executor import Act

Progress = Callable[[str], None]
QUIET_POLL = 0.1
QUIET_DEADLINE = 60.0
SWITCH_TRIES = 5
RELOAD_DEADLINE = 5.0


def _spec(obj: Mapping[str, Any]) -> Any:
    return obj.get("spec")


class FreezeRunners(PlanBuilder):
    """The runners of step 3 and the thaw, and the driver's connection every runner uses
    (mixed into the executor through :class:`ivytui.sources.actions.runners.Runners`)."""

    # Provided by the executor.
    _patch: Any
    _delete: Any
    _write_marks: Any
    _wait: Any
    step: Any
    writer: Any
    before_write: Any

    async def _pg(self, which: str) -> Any:
        """A driver connection to v4 or v5 (``application_name`` ivytui-driver). Refused in
        read-only mode, whatever the caller."""
        if self.config.read_only:
            raise ReadOnlyRefused("read-only mode: no driver connection to a database")
        import asyncpg

        from ivytui.sources.postgres import v4_locator, v5_locator

        kube = self.hub.kube
        if which == "v4":
            locate = v4_locator(self.config, kube, lambda: self.view.snapshot.v4.port)
        else:
            locate = v5_locator(self.config, kube)
        target = await locate()
        kwargs: dict[str, Any] = {
            "timeout": 5,
            "server_settings": {"application_name": "ivytui-driver"},
        }
        if target.dsn:
            conn = await asyncpg.connect(target.dsn, **kwargs)
        else:
            conn = await asyncpg.connect(
                host=target.host,
                port=target.port,
                user=target.user,
                password=target.password,
                database=target.database,
                **kwargs,
            )
        # ivytui's own session writes through the freeze it makes (ALTER ROLE, the thaw); a
        # session SET, so that reset_val still shows what the server is configured with.
        await conn.execute("SET default_transaction_read_only = off")
        return conn

    # ---- step 3 ---------------------------------------------------------------------------

    async def _run_freeze(self, plan: Plan, act: Act, say: Progress) -> str:
        terminate = bool(plan.options.get("terminate_sessions"))
        conn = await self._pg("v4")
        try:
            rows = await conn.fetch(sqlgen.blockable_roles_sql(await self.spare_roles()))
            limits = {str(r["rolname"]): int(r["rolconnlimit"]) for r in rows}
            recorded = dict(act.snapshot.marks.frozen_roles)
            # A role blocked by an earlier freeze keeps the limit recorded then.
            frozen = {**limits, **{r: n for r, n in recorded.items() if r in limits}}
            roles = tuple(sorted(frozen))
            # The roles and their limits are recorded before they are changed: a thaw (from
            # this console or another) can always put them back.
            await self._write_marks(act, partial(_with, frozen_roles=tuple(sorted(frozen.items()))))
            act.changed(f"the roles to block recorded on {self.flavor.v5.kind} {self.v5_name}")
            read_only = await conn.fetchval(
                "SELECT reset_val FROM pg_settings WHERE name = 'default_transaction_read_only'"
            )
            say("freezing writes on v4")
            ended = 0
            self.before_write(act)
            for stmt in sqlgen.freeze_statements(terminate, roles):
                if stmt.startswith("SELECT pid"):
                    ended += len(await conn.fetch(stmt))
                else:
                    await conn.execute(stmt)
            act.changed(
                "v4 set read-only by default (ALTER SYSTEM)",
                key="v4/default_transaction_read_only",
                before=read_only,
                after="on",
            )
            if roles:
                act.changed(
                    f"connection limit 0 for {', '.join(roles)}",
                    key="v4/connection_limits",
                    before={r: limits[r] for r in roles},
                    after=dict.fromkeys(roles, 0),
                )
            if ended:
                act.changed(f"{ended} client session(s) ended")
            await self._verify_frozen(conn, roles)
            say("waiting until no transaction is in progress on v4")
            self.before_write(act)
            target, walfile, horizon = await self._final_switch(conn)
        finally:
            await conn.close()
        for attempt in range(1, SWITCH_TRIES + 1):
            again = " again" if attempt > 1 else ""
            act.changed(f"WAL switched{again} at {target} ({walfile})")
            timeline, _ = parse_walfile_name(walfile, act.snapshot.segment_size)
            await self._write_marks(
                act,
                partial(
                    _with,
                    target_lsn=target,
                    target_timeline=timeline,
                    target_xid_horizon=horizon,
                    frozen_at=time.time(),
                ),
            )
            act.changed(
                f"final switch recorded on {self.flavor.v5.kind} {self.v5_name}",
                key="marks/target",
                before=None,
                after={"lsn": str(target), "xid_horizon": horizon},
            )
            moved = await self._wait_switch_replayed(target, walfile, say, horizon=horizon)
            if moved is None:
                return (
                    f"v4 frozen; final switch at {target} ({walfile}, xid horizon {horizon}) is "
                    "in the repo and replayed"
                )
            # A transaction committed after the switch (after a restart, autovacuum's ANALYZE
            # does): its WAL would be past the switch, so the switch is made again.
            say(
                f"a transaction committed after the switch (xid horizon {horizon} → {moved}): "
                "switching WAL again"
            )
            conn = await self._pg("v4")
            try:
                self.before_write(act)
                target, walfile, horizon = await self._final_switch(conn)
            finally:
                await conn.close()
        raise ActionFailed(
            f"transactions kept committing on v4 after {SWITCH_TRIES} WAL switches: end the "
            "remaining sessions (freeze again with the option ticked) or thaw"
        )

    async def _wait_switch_replayed(
        self, target: Lsn, walfile: str, say: Progress, *, horizon: int | None = None
    ) -> int | None:
        """Until the view shows this switch recorded, its segment in the repo and v5 past it
        (``None``) — or, with ``horizon``, v4's xid horizon past it (returned: the switch must
        be made again)."""

        def moved() -> int | None:
            v4db = self.view.snapshot.v4db
            if horizon is None or not v4db.reachable or v4db.xid_horizon is None:
                return None
            return v4db.xid_horizon if v4db.xid_horizon > horizon else None

        await self._wait(
            f"segment {walfile} in the repo and replayed by v5",
            lambda: (
                moved() is not None
                or (self.view.snapshot.marks.target_lsn == target and self.step(3).state == "done")
            ),
            say,
        )
        return moved()

    async def _verify_frozen(self, conn: Any, roles: tuple[str, ...]) -> None:
        """Read the freeze back: the setting in force and every role at connection limit 0."""
        if await self._configured_read_only(conn, "on") != "on":
            raise ActionFailed("the freeze did not take: default_transaction_read_only is off")
        if roles:
            left = await conn.fetch(
                "SELECT rolname FROM pg_roles WHERE rolname = ANY($1::text[]) "
                "AND rolconnlimit <> 0",
                list(roles),
            )
            if left:
                names = ", ".join(str(r["rolname"]) for r in left)
                raise ActionFailed(f"the freeze did not take for the roles {names}")

    async def _configured_read_only(self, conn: Any, wanted: str) -> str:
        """``default_transaction_read_only`` as the server is configured, once this session
        has taken the reload in (it does at a statement boundary, soon after the signal)."""
        deadline = time.monotonic() + RELOAD_DEADLINE
        while True:
            value = str(
                await conn.fetchval(
                    "SELECT reset_val FROM pg_settings WHERE name = 'default_transaction_read_only'"
                )
            )
            if value == wanted or time.monotonic() > deadline:
                return value
            await asyncio.sleep(QUIET_POLL)

    async def _final_switch(self, conn: Any) -> tuple[Lsn, str, int]:
        """``CHECKPOINT`` and ``pg_switch_wal()`` at a moment when no transaction is in
        progress, returning the switch's end, its segment and the xid horizon of that moment."""
        deadline = time.monotonic() + QUIET_DEADLINE
        for _ in range(SWITCH_TRIES):
            last: int | None = None
            while True:
                row = await conn.fetchrow(sqlgen.horizon_sql())
                horizon = int(row[sqlgen.HORIZON_COLUMN])
                if int(row[sqlgen.IN_PROGRESS_COLUMN]) == 0 and horizon == last:
                    break
                last = horizon if int(row[sqlgen.IN_PROGRESS_COLUMN]) == 0 else None
                if time.monotonic() > deadline:
                    raise ActionFailed(
                        "v4 kept a writing transaction open for "
                        f"{QUIET_DEADLINE:.0f} s after the freeze (a superuser's session?): "
                        "end the remaining sessions (tick the option) or thaw"
                    )
                await asyncio.sleep(QUIET_POLL)
            result = None
            for stmt in sqlgen.switch_statements():
                result = await conn.fetchrow(stmt)
            assert result is not None
            if int(result[sqlgen.IN_PROGRESS_COLUMN]) == 0:
                return (
                    Lsn.parse(str(result[sqlgen.SWITCH_LSN_COLUMN])),
                    str(result[sqlgen.SWITCH_WALFILE_COLUMN]),
                    int(result[sqlgen.HORIZON_COLUMN]),
                )
        raise ActionFailed(
            f"a transaction was in progress at each of {SWITCH_TRIES} WAL switches: the final "
            "switch is not recorded; end the remaining sessions (tick the option) or thaw"
        )

    async def _run_thaw(self, plan: Plan, act: Act, say: Progress) -> str:
        frozen = act.snapshot.marks.frozen_roles
        await self._thaw(act, frozen)
        if act.objects.get("v5"):
            await self._write_marks(
                act,
                lambda m: _with(
                    m,
                    target_lsn=None,
                    target_timeline=None,
                    target_xid_horizon=None,
                    frozen_at=None,
                    frozen_roles=(),
                ),
            )
        return f"v4 {self.cluster} accepts writes again"

    async def _thaw(self, act: Act, frozen: tuple[tuple[str, int], ...]) -> None:
        conn = await self._pg("v4")
        try:
            self.before_write(act)
            for stmt in sqlgen.thaw_statements(frozen):
                await conn.execute(stmt)
            act.changed(
                "v4 writable by default again",
                key="v4/default_transaction_read_only",
                before="on",
                after="off",
            )
            if frozen:
                act.changed(
                    "connection limits put back: " + ", ".join(f"{r} {n}" for r, n in frozen),
                    key="v4/connection_limits",
                    before=dict.fromkeys((r for r, _ in frozen), 0),
                    after=dict(frozen),
                )
            # Read back: the setting and every role as it was.
            setting = await self._configured_read_only(conn, "off")
            rows = await conn.fetch(
                "SELECT rolname, rolconnlimit FROM pg_roles WHERE rolname = ANY($1::text[])",
                [r for r, _ in frozen],
            )
        finally:
            await conn.close()
        now = {str(r["rolname"]): int(r["rolconnlimit"]) for r in rows}
        wrong = [f"{r} has {now.get(r)} (was {n})" for r, n in frozen if r in now and now[r] != n]
        if setting != "off" or wrong:
            raise ActionFailed(
                "the thaw did not verify: "
                + "; ".join(
                    [
                        *(
                            ["default_transaction_read_only is still on"]
                            if setting != "off"
                            else []
                        ),
                        *wrong,
                    ]
                )
            )


def _with(marks: Marks, **fields: Any) -> Marks:
    from dataclasses import replace

    return replace(marks, **fields)
