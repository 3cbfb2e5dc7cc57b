"""What each action does once its guard held: the writes, in order, and the waits for the
clusters to react. Mixed into the executor, which provides the writes with preconditions, the
marks, the journal's record of each change and the waits."""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ivytui.domain import sql as sqlgen
from ivytui.domain.actions import abort_witnesses
from ivytui.domain.flavor import V4_RESOURCE
from ivytui.domain.lsn import Lsn
from ivytui.domain.manifest import SOURCE_ANNOTATION, pgbackrest_secret_name
from ivytui.domain.model import V4LastSeen
from ivytui.domain.walname import parse_walfile_name
from ivytui.sources.actions.errors import ActionFailed, GuardRefused, Stopped
from ivytui.sources.actions.freeze import SWITCH_TRIES, FreezeRunners, _spec, _with
from ivytui.sources.actions.plans import Plan
from ivytui.sources.journal import state_dir

if TYPE_CHECKING:
    from ivytui.sources.actions.executor import Act

Progress = Callable[[str], None]


class Runners(FreezeRunners):
    """The ``_run_<action>`` of every other action (see :mod:`ivytui.sources.actions.executor`)."""

    # ---- step 1 ---------------------------------------------------------------------------

    async def _run_create_standby(self, plan: Plan, act: Act, say: Progress) -> str:
        assert plan.manifest is not None
        w = self.writer()
        secret = plan.manifest.secret
        name = plan.manifest.secret_name
        # A Secret left by an earlier step 1 that stopped half-way (from this v4, by its
        # annotation) is replaced, with its resourceVersion; anyone else's is not touched.
        existing = await w.secret_metadata(name)
        ours = (secret.get("metadata") or {}).get("annotations") or {}
        if existing is not None and existing["annotations"].get(SOURCE_ANNOTATION) != ours.get(
            SOURCE_ANNOTATION
        ):
            raise Stopped(
                f"Secret {name} exists and was not made by ivytui from v4 {self.cluster}: "
                "it is left as it is; remove it, or give the standby another name"
            )
        self.before_write(act)
        say("server-side dry run")
        if existing is None:
            await w.create_secret(secret, dry_run=True)
        else:
            await w.replace_secret(
                secret, resource_version=existing["resourceVersion"], dry_run=True
            )
        await w.create(self.flavor.v5, plan.manifest.cluster, dry_run=True)
        say("creating the Secret and the standby")
        if existing is None:
            await w.create_secret(secret)
            act.changed(f"Secret {name} created")
        else:
            await w.replace_secret(secret, resource_version=existing["resourceVersion"])
            act.changed(f"Secret {name} replaced (an earlier step 1 had made it)")
        self.before_write(act)
        await w.create(self.flavor.v5, plan.manifest.cluster)
        act.changed(
            f"{self.flavor.v5.kind} {self.v5_name} created",
            key=f"{self.flavor.v5.kind}/{self.v5_name}",
            before=None,
            after={"standby": True},
        )
        return f"created {self.flavor.v5.kind} {self.v5_name} in standby mode"

    # ---- step 4 ---------------------------------------------------------------------------

    async def _run_shutdown_v4(self, plan: Plan, act: Act, say: Progress) -> str:
        snap = act.snapshot
        if snap.v4db.reachable:
            conn = await self._pg("v4")
            try:
                say("ending v4's remaining client sessions")
                self.before_write(act)
                ended = len(await conn.fetch(sqlgen.terminate_sessions_sql(None)))
                if ended:
                    act.changed(f"{ended} client session(s) ended on v4")
                horizon, lsn = await self._nothing_committed_since_switch(conn, act, say)
            finally:
                await conn.close()
            timeline = snap.v4db.timeline
            if snap.v5.exists and timeline is not None:
                seen = V4LastSeen(
                    lsn=lsn,
                    timeline=timeline,
                    system_id=snap.v4db.system_id,
                    at=time.time(),
                    xid_horizon=horizon,
                )
                # Remember v4's last position: the promotion gate compares it with the repo.
                await self._write_marks(act, lambda m: _with(m, v4_last_seen=seen))
        say("patching spec.shutdown")
        await self._patch(
            act,
            "v4",
            V4_RESOURCE,
            self.cluster,
            plan.options["patch"],
            depends=_spec,
            recheck=True,
        )
        act.changed(
            f"spec.shutdown set on Pgcluster {self.cluster}",
            key="v4/spec.shutdown",
            before=snap.v4.shutdown,
            after=True,
        )
        await self._wait(
            "v4 proven down (Shutdown, no PostgreSQL pod, database unreachable)",
            lambda: self.step(4).state == "done",
            say,
        )
        return f"v4 {self.cluster} is down"

    async def _nothing_committed_since_switch(
        self, conn: Any, act: Act, say: Progress
    ) -> tuple[int, Lsn]:
        """At the instant before the shutdown: v4's xid horizon is the one of the final switch
        and no transaction is in progress. A transaction that committed after the switch (an
        autovacuum's ANALYZE, a superuser's session) gets the switch repeated, and its segment
        archived and replayed, before v4 is shut down; never passed over."""
        marks = act.snapshot.marks
        recorded = marks.target_xid_horizon
        for _ in range(SWITCH_TRIES):
            row = await conn.fetchrow(sqlgen.horizon_sql())
            horizon = int(row[sqlgen.HORIZON_COLUMN])
            in_progress = int(row[sqlgen.IN_PROGRESS_COLUMN])
            lsn = Lsn.parse(str(row["lsn"]))
            if marks.target_lsn is None:  # the override: no final switch to hold it to
                return horizon, lsn
            if recorded is not None and horizon == recorded and not in_progress:
                return horizon, lsn
            say(
                f"a transaction committed on v4 after the final switch (xid horizon "
                f"{recorded} → {horizon}): switching WAL again"
            )
            target, walfile, recorded = await self._final_switch(conn)
            act.changed(f"WAL switched again at {target} ({walfile})")
            timeline, _ = parse_walfile_name(walfile, act.snapshot.segment_size)
            await self._write_marks(
                act,
                partial(
                    _with, target_lsn=target, target_timeline=timeline, target_xid_horizon=recorded
                ),
            )
            await self._wait_switch_replayed(target, walfile, say)
        raise GuardRefused(
            f"transactions kept committing on v4 after {SWITCH_TRIES} WAL switches: v4 was not "
            "shut down; end the remaining sessions (freeze again with the option ticked) or thaw"
        )

    # ---- step 5 ---------------------------------------------------------------------------

    async def _run_promote(self, plan: Plan, act: Act, say: Progress) -> str:
        say("patching spec.standby.enabled")
        await self._patch(
            act,
            "v5",
            self.flavor.v5,
            self.v5_name,
            plan.options["patch"],
            depends=_spec,
            recheck=True,
        )
        act.changed(
            f"spec.standby.enabled false on {self.flavor.v5.kind} {self.v5_name}",
            key="v5/spec.standby.enabled",
            before=act.snapshot.v5.standby_enabled,
            after=False,
        )
        await self._wait(
            "v5 out of recovery on a new timeline, its .history file in the repo",
            lambda: self.step(5).state == "done",
            say,
        )
        frozen = act.snapshot.marks.frozen_roles
        if frozen:
            # ALTER ROLE is in the WAL: v5 replayed the freeze's connection limits too.
            say("putting back on v5 the connection limits the freeze set on v4")
            await self._restore_limits(act, "v5", frozen)
        return f"v5 {self.v5_name} is promoted"

    async def _restore_limits(
        self, act: Act, which: str, frozen: tuple[tuple[str, int], ...]
    ) -> None:
        conn = await self._pg(which)
        try:
            self.before_write(act)
            for role, limit in frozen:
                await conn.execute(sqlgen.restore_role_statement(role, limit))
            rows = await conn.fetch(
                "SELECT rolname, rolconnlimit FROM pg_roles WHERE rolname = ANY($1::text[])",
                [r for r, _ in frozen],
            )
        finally:
            await conn.close()
        act.changed(
            f"connection limits put back on {which}: " + ", ".join(f"{r} {n}" for r, n in frozen),
            key=f"{which}/connection_limits",
            before=dict.fromkeys((r for r, _ in frozen), 0),
            after=dict(frozen),
        )
        now = {str(r["rolname"]): int(r["rolconnlimit"]) for r in rows}
        wrong = [f"{r} has {now[r]} (was {n})" for r, n in frozen if r in now and now[r] != n]
        if wrong:
            raise ActionFailed(
                f"the connection limits on {which} did not verify: " + "; ".join(wrong)
            )

    # ---- step 6 ---------------------------------------------------------------------------

    async def _run_grants(self, plan: Plan, act: Act, say: Progress) -> str:
        conn = await self._pg("v5")
        try:
            is_super = await conn.fetchval(
                "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
            )
            if not is_super:
                user = await conn.fetchval("SELECT current_user")
                raise GuardRefused(
                    f"the connection's role {user} is not a superuser: the grants need one "
                    "(give a superuser in the config's v5.database)"
                )
            say("granting, in one transaction")
            self.before_write(act)
            async with conn.transaction():
                for stmt in sqlgen.grants_statements(self.flavor):
                    await conn.execute(stmt)
            act.changed(
                f"{self.flavor.replication_role} created if missing and granted EXECUTE",
                key="v5/grants",
                before=act.snapshot.v5db.grants_verified,
                after=True,
            )
            row = await conn.fetchrow(sqlgen.verify_grants_sql(self.flavor))
            problems = sqlgen.grant_problems(self.flavor, dict(row) if row else {})
        finally:
            await conn.close()
        if problems:
            raise ActionFailed("the grants did not verify: " + "; ".join(problems))
        await self._wait("the grants verified", lambda: self.step(6).state == "done", say)
        return f"{self.flavor.replication_role} has its four grants"

    # ---- step 7 ---------------------------------------------------------------------------

    async def _export_credentials(self) -> Path:
        core = await self.writer().core()
        listing = await self.writer()._call(
            "list the v4 Secrets",
            lambda: core.list_namespaced_secret(
                self.namespace, label_selector=f"pg-cluster={self.cluster}"
            ),
        )
        users: dict[str, dict[str, str]] = {}
        for item in listing.items:
            name = item.metadata.name
            if not (name.startswith(f"{self.cluster}-") and name.endswith("-secret")):
                continue
            data = {k: base64.b64decode(v).decode() for k, v in (item.data or {}).items()}
            if "username" in data or "password" in data:
                users[name] = data
        if not users:
            raise ActionFailed(f"no v4 user Secret ({self.cluster}-<user>-secret) to export")
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        base = state_dir() / f"{self.cluster}-v4-credentials-{stamp}"
        base.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        for n in range(1, 100):
            # A second export in the same second (the step pressed again) gets a file of its
            # own: an earlier export is never overwritten.
            path = base.with_name(base.name + (f"-{n}" if n > 1 else "") + ".json")
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                break
            except FileExistsError:
                continue
        else:
            raise ActionFailed(f"cannot find a new file name for the export beside {base}")
        with os.fdopen(fd, "w") as fh:
            json.dump(
                {"cluster": self.cluster, "namespace": self.namespace, "secrets": users},
                fh,
                indent=2,
            )
        return path

    async def _run_retire_v4(self, plan: Plan, act: Act, say: Progress) -> str:
        schedules = act.snapshot.v4.backup_schedules
        if schedules:
            raise GuardRefused(
                f"v4 backup schedules still exist ({', '.join(schedules)}): they would run "
                "against the shared repo; delete them first"
            )
        say("exporting the v4 user credentials")
        path = await self._export_credentials()
        act.changed(f"v4 credentials exported to {path}")
        say(f"deleting Pgcluster {self.cluster}")
        await self._delete(act, "v4", V4_RESOURCE, self.cluster, depends=_spec)
        act.changed(
            f"Pgcluster {self.cluster} deleted", key="v4", before="present", after="deleted"
        )
        await self._wait("the v4 object gone", lambda: self.step(7).state == "done", say)
        return f"v4 {self.cluster} deleted; its credentials are in {path}"

    # ---- abort ----------------------------------------------------------------------------

    async def _run_abort(self, plan: Plan, act: Act, say: Progress) -> str:
        if not all(w.ok for w in abort_witnesses(act.snapshot)):  # the guard said so already
            raise Stopped("v5 cannot be proven a standby")
        snap = act.snapshot
        frozen = bool(snap.marks.frozen_roles) or bool(snap.v4db.read_only)
        if frozen and snap.v4db.reachable:
            say("thawing v4")
            await self._thaw(act, snap.marks.frozen_roles)
        live4 = act.objects.get("v4") or {}
        if (live4.get("spec") or {}).get("shutdown"):
            say("restarting v4")
            await self._patch(
                act, "v4", V4_RESOURCE, self.cluster, {"spec": {"shutdown": False}}, depends=_spec
            )
            act.changed("v4 restarted", key="v4/spec.shutdown", before=True, after=False)
        if act.objects.get("v5"):
            say(f"deleting {self.flavor.v5.kind} {self.v5_name}")
            await self._delete(act, "v5", self.flavor.v5, self.v5_name, depends=_spec)
            act.changed(
                "standby deleted",
                key=f"{self.flavor.v5.kind}/{self.v5_name}",
                before="present",
                after="deleted",
            )
        secret = pgbackrest_secret_name(self.v5_name)
        self.before_write(act)
        if await self.writer().delete_secret(secret):
            act.changed(f"Secret {secret} deleted (step 1 made it)")
        return ", ".join(act.changes) or "nothing to undo"
