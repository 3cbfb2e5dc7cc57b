"""The one executor that performs every runbook action.

For each action it builds a :class:`Plan` (what will change, as a diff, the equivalent kubectl
command, the SQL, the manifest), and executes it only after re-evaluating the step's guards at
that moment from a fresh poll — not from what was on the screen when the key was pressed. Every
patch carries the object's ``resourceVersion``; a conflict is reported, never retried blindly.
One journal record is written per attempt (and a short summary kept on the cluster).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shlex
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ivytui.domain import sql as sqlgen
from ivytui.domain.flavor import V4_RESOURCE, Resource
from ivytui.domain.lsn import Lsn
from ivytui.domain.manifest import StandbyManifest, build_standby, validate_edited
from ivytui.domain.model import MARKS_ANNOTATION, Marks
from ivytui.domain.runbook import StepStatus, check_v4_restart
from ivytui.domain.walname import parse_walfile_name
from ivytui.errors import IvyError
from ivytui.sources.journal import Journal, JournalRecord, state_dir
from ivytui.sources.kube_write import ConflictError, KubeWriter, ReadOnlyRefused, take_lease

if TYPE_CHECKING:
    from ivytui.sources.hub import Hub, HubView

Progress = Callable[[str], None]

ACTIONS = (
    "create-standby",
    "freeze",
    "thaw",
    "shutdown-v4",
    "promote",
    "grants",
    "retire-v4",
    "abort",
)
STEP_OF = {
    "create-standby": 1,
    "freeze": 3,
    "thaw": 3,
    "shutdown-v4": 4,
    "promote": 5,
    "grants": 6,
    "retire-v4": 7,
    "abort": 0,
}


class GuardRefused(IvyError):
    title = "refused"

    def __init__(self, message: str, checks: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.checks = checks


class ActionFailed(IvyError):
    title = "failed"


@dataclass(frozen=True)
class Plan:
    key: str
    step: int
    title: str
    summary: str
    diff: str = ""
    kubectl: str = ""
    sql: str = ""
    yaml: str = ""
    typed_name: str = ""
    override_needed: bool = False
    destructive: bool = False
    options: Mapping[str, Any] = field(default_factory=dict)
    manifest: StandbyManifest | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Outcome:
    ok: bool
    text: str


def _patch_diff(kind: str, name: str, live: Mapping[str, Any], patch: Mapping[str, Any]) -> str:
    lines = [f"{kind} {name}"]

    def walk(prefix: str, cur: Any, new: Mapping[str, Any]) -> None:
        for k, v in new.items():
            path = f"{prefix}.{k}" if prefix else k
            old = cur.get(k) if isinstance(cur, Mapping) else None
            if isinstance(v, Mapping) and k != "annotations":
                walk(path, old, v)
            elif k == "annotations" and isinstance(v, Mapping):
                for ak, av in v.items():
                    oldv = (old or {}).get(ak) if isinstance(old, Mapping) else None
                    lines.append(f"- {path}[{ak}]: {json.dumps(oldv)}")
                    lines.append(f"+ {path}[{ak}]: {json.dumps(av)}")
            else:
                lines.append(f"- {path}: {json.dumps(old)}")
                lines.append(f"+ {path}: {json.dumps(v)}")

    walk("", live, patch)
    return "\n".join(lines)


def _kubectl_patch(res: Resource, name: str, ns: str, patch: Mapping[str, Any]) -> str:
    return (
        f"kubectl patch {res.plural}.{res.group} {name} -n {ns} --type merge "
        f"-p {shlex.quote(json.dumps(patch, separators=(',', ':')))}"
    )


class Executor:
    def __init__(
        self,
        hub: Hub,
        *,
        journal: Journal | None = None,
        writer: KubeWriter | None = None,
        wait_timeout: float = 120.0,
    ) -> None:
        self.hub = hub
        self.config = hub.config
        self.flavor = hub.flavor
        self.journal = journal or Journal()
        self._writer = writer
        self.wait_timeout = wait_timeout
        self.busy: str | None = None

    # ---- context --------------------------------------------------------------------------

    @property
    def view(self) -> HubView:
        return self.hub.view

    @property
    def namespace(self) -> str:
        return self.view.namespace

    @property
    def cluster(self) -> str:
        return self.config.cluster

    @property
    def v5_name(self) -> str:
        return self.config.standby_name

    def writer(self) -> KubeWriter:
        if self._writer is None:
            self._writer = KubeWriter(
                self.config, namespace=self.namespace, context=self.view.context
            )
        return self._writer

    async def close(self) -> None:
        if self._writer is not None:
            await self._writer.close()

    def step(self, number: int) -> StepStatus:
        return next(s for s in self.view.steps if s.number == number)

    def _record(self, plan: Plan, outcome: str, detail: str = "", **extra: Any) -> JournalRecord:
        rec = JournalRecord(
            step=f"{plan.step} {plan.key}",
            action=plan.title,
            outcome=outcome,
            detail=detail,
            context=self.view.context,
            namespace=self.namespace,
            cluster=self.cluster,
            v5_name=self.v5_name,
            **extra,
        )
        self.journal.append(rec)
        return rec

    async def _summarise(self, rec: JournalRecord) -> None:
        """Keep the newest records on the cluster, for the other viewers."""
        if self.config.read_only:
            return
        name = f"{self.cluster}-ivytui-journal"
        with contextlib.suppress(IvyError):
            current = await self.writer().get_configmap(name) or {}
            lines = [ln for ln in current.get("summary", "").splitlines() if ln.strip()]
            lines = [*lines, rec.summary()][-30:]
            await self.writer().put_configmap(
                name,
                {"summary": "\n".join(lines) + "\n", "last": rec.summary()},
                {"app.kubernetes.io/managed-by": "ivytui", "pg-cluster": self.cluster},
            )

    # ---- plans ----------------------------------------------------------------------------

    async def plan(self, key: str, *, terminate_sessions: bool = False) -> Plan:
        if key not in ACTIONS:
            raise GuardRefused(f"unknown action {key!r}")
        builder: Callable[..., Awaitable[Plan]] = getattr(self, "_plan_" + key.replace("-", "_"))
        return await builder(terminate_sessions=terminate_sessions)

    async def _plan_create_standby(self, **_: Any) -> Plan:
        kube = self.hub.kube
        v4obj = kube.v4_object() if kube is not None else None
        if v4obj is None or kube is None:
            raise GuardRefused(f"the v4 cluster {self.cluster} is not there to copy from")
        secret = await kube.read_secret(f"{self.cluster}-backrest-repo-config")
        manifest = build_standby(
            v4obj,
            secret,
            flavor=self.flavor,
            v5_name=self.v5_name,
            namespace=self.namespace,
            include_secrets=True,
        )
        shown = manifest.redacted()
        return Plan(
            key="create-standby",
            step=1,
            title="create the v5 standby",
            summary=(
                f"create Secret {manifest.secret_name} and {self.flavor.v5.kind} {self.v5_name} "
                f"(standby of v4 {self.cluster}, repo {self.view.snapshot.v4.repo_url})"
            ),
            diff="\n".join(f"+ {d['kind']} {d['metadata']['name']}" for d in shown.documents()),
            kubectl=f"ivytui manifest {self.cluster} -n {self.namespace} | kubectl apply -f -",
            yaml=shown.to_yaml(),
            manifest=manifest,
            options={"warnings": list(manifest.warnings)},
        )

    def with_edited(self, plan: Plan, text: str) -> Plan:
        """The plan after the engineer edited the (redacted) YAML in $EDITOR."""
        assert plan.manifest is not None
        docs = validate_edited(
            text, flavor=self.flavor, expected_name=self.v5_name, namespace=self.namespace
        )
        manifest = plan.manifest.with_edited(docs)
        return replace(plan, manifest=manifest, yaml=manifest.redacted().to_yaml())

    async def _plan_freeze(self, *, terminate_sessions: bool = False, **_: Any) -> Plan:
        statements = sqlgen.freeze_sql(terminate_sessions, spare_applications=("ivytui-monitor",))
        db = self.view.snapshot.v4db
        sessions = db.client_sessions if db.client_sessions is not None else "unknown"
        rate = self.view.write_rate
        return Plan(
            key="freeze",
            step=3,
            title="freeze v4 and switch WAL",
            summary=(
                f"freeze writes on v4 {self.cluster} ({sessions} client sessions, writing "
                f"{rate or 0:.0f} B/s), wait until quiet, CHECKPOINT and pg_switch_wal(), then "
                "wait until the final segment is in the repo and replayed by v5"
                + ("; end the remaining client sessions" if terminate_sessions else "")
            ),
            sql=statements + "\n-- once no WAL is written:\n" + sqlgen.switch_sql(),
            options={"terminate_sessions": terminate_sessions},
        )

    async def _plan_thaw(self, **_: Any) -> Plan:
        return Plan(
            key="thaw",
            step=3,
            title="thaw v4 (undo the freeze)",
            summary=f"allow writes on v4 {self.cluster} again",
            sql=sqlgen.thaw_sql(),
        )

    async def _plan_shutdown_v4(self, **_: Any) -> Plan:
        step = self.step(4)
        live = self._live_v4()
        patch = {"spec": {"shutdown": True}}
        return Plan(
            key="shutdown-v4",
            step=4,
            title="shut down v4",
            summary=f"set spec.shutdown on Pgcluster {self.cluster}: the v4 operator scales "
            "every deployment to 0 and stops PostgreSQL",
            diff=_patch_diff("Pgcluster", self.cluster, live, patch),
            kubectl=_kubectl_patch(V4_RESOURCE, self.cluster, self.namespace, patch),
            override_needed=step.state == "blocked" and step.overridable,
            destructive=True,
            options={"patch": patch},
        )

    async def _plan_promote(self, **_: Any) -> Plan:
        live = self._live_v5()
        patch = {"spec": {"standby": {"enabled": False}}}
        return Plan(
            key="promote",
            step=5,
            title="promote v5",
            summary=f"set spec.standby.enabled false on {self.flavor.v5.kind} {self.v5_name}: "
            "it leaves recovery on a new timeline and archives into the same repo",
            diff=_patch_diff(self.flavor.v5.kind, self.v5_name, live, patch),
            kubectl=_kubectl_patch(self.flavor.v5, self.v5_name, self.namespace, patch),
            destructive=True,
            options={"patch": patch},
        )

    async def _plan_grants(self, **_: Any) -> Plan:
        return Plan(
            key="grants",
            step=6,
            title="grant the replication role",
            summary=f"create {self.flavor.replication_role} if missing and grant it EXECUTE on "
            "four functions, in one transaction on v5 as a superuser",
            sql=sqlgen.grants_sql(self.flavor),
        )

    async def _plan_retire_v4(self, **_: Any) -> Plan:
        out = state_dir() / f"{self.cluster}-v4-credentials-<time>.json"
        return Plan(
            key="retire-v4",
            step=7,
            title="retire v4",
            summary=f"export the v4 user Secrets to {out} (mode 0600), check that no v4 backup "
            f"schedule is left, then delete Pgcluster {self.cluster} (the bucket is kept)",
            diff=f"- Pgcluster {self.cluster}",
            kubectl=f"kubectl delete {V4_RESOURCE.plural}.{V4_RESOURCE.group} {self.cluster} "
            f"-n {self.namespace}",
            typed_name=self.cluster,
            destructive=True,
        )

    async def _plan_abort(self, **_: Any) -> Plan:
        v4 = self.view.snapshot.v4
        parts = []
        if v4.shutdown:
            parts.append(f"restart v4 {self.cluster} (spec.shutdown false)")
        if self.view.snapshot.v5.exists:
            parts.append(f"delete the standby {self.flavor.v5.kind} {self.v5_name}")
        return Plan(
            key="abort",
            step=0,
            title="abort the move",
            summary="; ".join(parts) or "nothing to undo",
            diff="\n".join(f"~ {p}" for p in parts),
            typed_name=self.cluster,
            destructive=True,
        )

    def _live_v4(self) -> Mapping[str, Any]:
        kube = self.hub.kube
        return (kube.v4_object() if kube is not None else None) or {}

    def _live_v5(self) -> Mapping[str, Any]:
        kube = self.hub.kube
        return (kube.v5_object() if kube is not None else None) or {}

    # ---- guards ---------------------------------------------------------------------------

    async def _guard(self, plan: Plan, override: str, typed: str) -> None:
        if self.config.read_only:
            self._record(plan, "refused", "read-only mode")
            raise ReadOnlyRefused("read-only mode: this console only watches")
        await self.hub.refresh()
        snap = self.view.snapshot
        failing: tuple[str, ...] = ()
        if plan.key == "thaw":
            if self.step(4).state == "done" or not snap.v4db.reachable:
                failing = ("v4 is shut down or unreachable: there is nothing to thaw",)
            elif snap.v4db.read_only is not True:
                failing = ("v4 is not frozen (default_transaction_read_only is off)",)
        elif plan.key == "abort":
            if self.step(5).state in ("done", "running") or (
                snap.v5db.reachable and snap.v5db.in_recovery is False
            ):
                check = check_v4_restart(snap)
                failing = (
                    "v5 is promoted: restarting v4 would put two writers on one repo",
                    check.text,
                )
        else:
            step = self.step(plan.step)
            if step.state == "ready":
                pass
            elif plan.key == "shutdown-v4" and step.state == "blocked" and step.overridable:
                if override != self.cluster:
                    failing = (
                        *(c.text for c in step.failing),
                        f"to shut down without the final switch, type the cluster name "
                        f"{self.cluster} as the override",
                    )
            else:
                failing = tuple(c.text for c in step.failing) or (
                    f"step {plan.step} is {step.state}",
                )
        if plan.typed_name and typed != plan.typed_name and not failing:
            failing = (f"type the cluster name {plan.typed_name} to confirm",)
        if failing:
            # A refusal is journaled locally only: nothing at all is sent to the cluster.
            self._record(plan, "refused", "; ".join(failing))
            raise GuardRefused(f"{plan.title} refused: {failing[0]}", failing)

    # ---- execution ------------------------------------------------------------------------

    async def execute(
        self,
        plan: Plan,
        *,
        override: str = "",
        typed: str = "",
        progress: Progress | None = None,
    ) -> Outcome:
        say = progress or (lambda text: None)
        if self.busy is not None:
            raise GuardRefused(f"{self.busy} is still running")
        await self._guard(plan, override, typed)
        await self._take_lease(plan)
        self.busy = plan.title
        is_override = bool(override) and plan.override_needed
        self._record(plan, "started", override=is_override)
        try:
            runner: Callable[[Plan, Progress], Awaitable[str]] = getattr(
                self, "_run_" + plan.key.replace("-", "_")
            )
            text = await runner(plan, say)
        except ConflictError as exc:
            rec = self._record(plan, "conflict", str(exc), override=is_override)
            await self._summarise(rec)
            raise
        except IvyError as exc:
            rec = self._record(plan, "failed", str(exc), override=is_override)
            await self._summarise(rec)
            raise
        except (OSError, TimeoutError) as exc:
            rec = self._record(plan, "failed", str(exc), override=is_override)
            await self._summarise(rec)
            raise ActionFailed(f"{plan.title} failed: {exc}") from None
        finally:
            self.busy = None
        rec = self._record(
            plan, "done", text, change=dict(plan.options.get("patch") or {}), override=is_override
        )
        await self._summarise(rec)
        return Outcome(True, text)

    @property
    def lease_name(self) -> str:
        return f"{self.cluster}-ivytui-driver"

    @property
    def holder(self) -> str:
        rec = JournalRecord(step="", action="", outcome="")
        return f"{rec.who}@{rec.host}"

    async def _take_lease(self, plan: Plan) -> None:
        """One driver at a time: the Lease is taken for each action and renewed while it runs."""
        try:
            await take_lease(self.writer(), self.lease_name, self.holder, now=time.time())
        except ConflictError as exc:
            self._record(plan, "refused", str(exc))
            raise GuardRefused(f"{plan.title} refused: {exc}", (str(exc),)) from None

    async def _wait(self, what: str, ready: Callable[[], bool], say: Progress) -> None:
        deadline = time.monotonic() + self.wait_timeout
        renewed = time.monotonic()
        say(f"waiting: {what}")
        while not ready():
            if time.monotonic() > deadline:
                raise ActionFailed(f"timed out after {self.wait_timeout:.0f} s waiting: {what}")
            await asyncio.sleep(0.5)
            await self.hub.refresh()
            if time.monotonic() - renewed > 30:
                await take_lease(self.writer(), self.lease_name, self.holder, now=time.time())
                renewed = time.monotonic()

    async def _pg(self, which: str) -> Any:
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
            return await asyncpg.connect(target.dsn, **kwargs)
        return await asyncpg.connect(
            host=target.host,
            port=target.port,
            user=target.user,
            password=target.password,
            database=target.database,
            **kwargs,
        )

    async def _write_marks(self, marks: Marks) -> None:
        live = self._live_v5()
        rv = (live.get("metadata") or {}).get("resourceVersion")
        if not rv:
            raise ActionFailed(f"the v5 cluster {self.v5_name} is not there to hold the marks")
        await self.writer().merge_patch(
            self.flavor.v5,
            self.v5_name,
            {"metadata": {"annotations": {MARKS_ANNOTATION: marks.to_json()}}},
            resource_version=str(rv),
        )

    async def _run_create_standby(self, plan: Plan, say: Progress) -> str:
        assert plan.manifest is not None
        w = self.writer()
        say("server-side dry run")
        await w.create_secret(plan.manifest.secret, dry_run=True)
        await w.create(self.flavor.v5, plan.manifest.cluster, dry_run=True)
        say("creating the Secret and the standby")
        await w.create_secret(plan.manifest.secret)
        await w.create(self.flavor.v5, plan.manifest.cluster)
        return f"created {self.flavor.v5.kind} {self.v5_name} in standby mode"

    async def _run_freeze(self, plan: Plan, say: Progress) -> str:
        conn = await self._pg("v4")
        try:
            say("freezing writes on v4")
            for stmt in sqlgen.freeze_statements(
                bool(plan.options.get("terminate_sessions")),
                spare_applications=("ivytui-monitor", "ivytui-driver"),
            ):
                await conn.execute(stmt)
            say("waiting until v4 writes no more WAL")
            last = await conn.fetchval("SELECT pg_current_wal_lsn()::text")
            quiet_since = time.monotonic()
            deadline = time.monotonic() + 60
            while time.monotonic() - quiet_since < 2.0:
                if time.monotonic() > deadline:
                    raise ActionFailed(
                        "v4 kept writing WAL for 60 s after the freeze: sessions still in a "
                        "read-write transaction? end them (tick the option) or thaw"
                    )
                await asyncio.sleep(0.25)
                now = await conn.fetchval("SELECT pg_current_wal_lsn()::text")
                if now != last:
                    last, quiet_since = now, time.monotonic()
            say("CHECKPOINT and pg_switch_wal()")
            row = None
            for stmt in sqlgen.switch_statements():
                row = await conn.fetchrow(stmt)
            assert row is not None
            target = Lsn.parse(str(row[sqlgen.SWITCH_LSN_COLUMN]))
            walfile = str(row[sqlgen.SWITCH_WALFILE_COLUMN])
            timeline, _ = parse_walfile_name(walfile, self.view.snapshot.segment_size)
        finally:
            await conn.close()
        marks = replace(
            self.view.snapshot.marks.with_v4_seen(self.view.snapshot.v4db),
            target_lsn=target,
            target_timeline=timeline,
            frozen_at=time.time(),
        )
        await self._write_marks(marks)
        await self._wait(
            f"segment {walfile} in the repo and replayed by v5",
            lambda: self.step(3).state == "done",
            say,
        )
        return f"v4 frozen; final switch at {target} ({walfile}) is in the repo and replayed"

    async def _run_thaw(self, plan: Plan, say: Progress) -> str:
        conn = await self._pg("v4")
        try:
            for stmt in sqlgen.thaw_statements():
                await conn.execute(stmt)
        finally:
            await conn.close()
        marks = replace(
            self.view.snapshot.marks, target_lsn=None, target_timeline=None, frozen_at=None
        )
        if self.view.snapshot.v5.exists:
            await self._write_marks(marks)
        return f"v4 {self.cluster} accepts writes again"

    async def _run_shutdown_v4(self, plan: Plan, say: Progress) -> str:
        snap = self.view.snapshot
        if snap.v5.exists:
            # Remember v4's last position: the promotion gate compares it with the repo.
            await self._write_marks(snap.marks.with_v4_seen(snap.v4db))
        live = self._live_v4()
        rv = str((live.get("metadata") or {}).get("resourceVersion") or "")
        say("patching spec.shutdown")
        await self.writer().merge_patch(
            V4_RESOURCE, self.cluster, plan.options["patch"], resource_version=rv
        )
        await self._wait(
            "v4 proven down (Shutdown, no PostgreSQL pod, database unreachable)",
            lambda: self.step(4).state == "done",
            say,
        )
        return f"v4 {self.cluster} is down"

    async def _run_promote(self, plan: Plan, say: Progress) -> str:
        live = self._live_v5()
        rv = str((live.get("metadata") or {}).get("resourceVersion") or "")
        say("patching spec.standby.enabled")
        await self.writer().merge_patch(
            self.flavor.v5, self.v5_name, plan.options["patch"], resource_version=rv
        )
        await self._wait(
            "v5 out of recovery on a new timeline, its .history file in the repo",
            lambda: self.step(5).state == "done",
            say,
        )
        return f"v5 {self.v5_name} is promoted"

    async def _run_grants(self, plan: Plan, say: Progress) -> str:
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
            async with conn.transaction():
                for stmt in sqlgen.grants_statements(self.flavor):
                    await conn.execute(stmt)
            row = await conn.fetchrow(sqlgen.verify_grants_sql(self.flavor))
            problems = sqlgen.grant_problems(self.flavor, dict(row) if row else {})
        finally:
            await conn.close()
        if problems:
            raise ActionFailed("the grants did not verify: " + "; ".join(problems))
        await self._wait("the grants verified", lambda: self.step(6).state == "done", say)
        return f"{self.flavor.replication_role} has its four grants"

    async def _export_credentials(self) -> Path:
        core = await self.writer().core()
        listing = await core.list_namespaced_secret(
            self.namespace, label_selector=f"pg-cluster={self.cluster}"
        )
        users: dict[str, dict[str, str]] = {}
        import base64

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
        path = state_dir() / f"{self.cluster}-v4-credentials-{stamp}.json"
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(
                {"cluster": self.cluster, "namespace": self.namespace, "secrets": users},
                fh,
                indent=2,
            )
        return path

    async def _run_retire_v4(self, plan: Plan, say: Progress) -> str:
        schedules = self.view.snapshot.v4.backup_schedules
        if schedules:
            raise GuardRefused(
                f"v4 backup schedules still exist ({', '.join(schedules)}): they would run "
                "against the shared repo; delete them first"
            )
        say("exporting the v4 user credentials")
        path = await self._export_credentials()
        live = self._live_v4()
        rv = str((live.get("metadata") or {}).get("resourceVersion") or "")
        say(f"deleting Pgcluster {self.cluster}")
        await self.writer().delete(V4_RESOURCE, self.cluster, resource_version=rv)
        await self._wait("the v4 object gone", lambda: self.step(7).state == "done", say)
        return f"v4 {self.cluster} deleted; its credentials are in {path}"

    async def _run_abort(self, plan: Plan, say: Progress) -> str:
        done = []
        live4 = self._live_v4()
        if (live4.get("spec") or {}).get("shutdown"):
            rv = str((live4.get("metadata") or {}).get("resourceVersion") or "")
            await self.writer().merge_patch(
                V4_RESOURCE, self.cluster, {"spec": {"shutdown": False}}, resource_version=rv
            )
            done.append("v4 restarted")
        live5 = self._live_v5()
        if live5:
            rv = str((live5.get("metadata") or {}).get("resourceVersion") or "")
            await self.writer().delete(self.flavor.v5, self.v5_name, resource_version=rv)
            done.append("standby deleted")
        return ", ".join(done) or "nothing to undo"
