"""What each action will change, shown before anything is sent: the :class:`Plan`.

A plan is built from the action's spec in the domain table (title, step, typed name,
destructive) and the live objects: the patch as a diff against the object, the equivalent
``kubectl`` command, the SQL exactly as it will run, the manifest.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ivytui.domain import sql as sqlgen
from ivytui.domain.actions import spec
from ivytui.domain.flavor import V4_RESOURCE, Flavor, Resource
from ivytui.domain.manifest import StandbyManifest, build_standby, validate_edited
from ivytui.errors import IvyError
from ivytui.sources.actions.errors import GuardRefused
from ivytui.sources.journal import state_dir

if TYPE_CHECKING:
    from ivytui.config import Config
    from ivytui.sources.hub import Hub, HubView


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


def patch_diff(kind: str, name: str, live: Mapping[str, Any], patch: Mapping[str, Any]) -> str:
    """The patch as ``- old`` / ``+ new`` lines against the live object."""
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


def kubectl_patch(res: Resource, name: str, ns: str, patch: Mapping[str, Any]) -> str:
    return (
        f"kubectl patch {res.plural}.{res.group} {name} -n {ns} --type merge "
        f"-p {shlex.quote(json.dumps(patch, separators=(',', ':')))}"
    )


SHUTDOWN_PATCH: Mapping[str, Any] = {"spec": {"shutdown": True}}
RESTART_PATCH: Mapping[str, Any] = {"spec": {"shutdown": False}}
PROMOTE_PATCH: Mapping[str, Any] = {"spec": {"standby": {"enabled": False}}}


class PlanBuilder:
    """Builds the plan of each action (mixed into the executor, which provides the context)."""

    hub: Hub
    config: Config
    flavor: Flavor

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

    async def _pg(self, which: str) -> Any:
        raise NotImplementedError

    async def spare_roles(self) -> tuple[str, ...]:
        """Roles a freeze leaves alone besides its own session's: the monitors' — the users
        of the config's database targets and the ``username`` of the Secret
        ``<cluster>-ivytui-monitor`` — so that every watcher keeps seeing v4 while it is frozen
        (a ``pg_monitor`` role cannot write)."""
        users = {self.config.v4_database.user, self.config.v5_database.user}
        kube = self.hub.kube
        if kube is not None:
            try:
                secret = await kube.read_secret(f"{self.cluster}-ivytui-monitor")
            except IvyError:
                secret = {}
            users.add(secret.get("username", ""))
        return tuple(sorted(u for u in users if u))

    def _live(self, which: str) -> Mapping[str, Any]:
        return self.view.objects.get(which) or {}

    def _base(self, key: str, summary: str, **fields: Any) -> Plan:
        found = spec(key)
        return Plan(
            key=key,
            step=found.step,
            title=found.title,
            summary=summary,
            typed_name=self.cluster if found.typed_name else "",
            destructive=found.destructive,
            **fields,
        )

    async def plan(self, key: str, *, terminate_sessions: bool = False) -> Plan:
        try:
            spec(key)
        except KeyError as exc:
            raise GuardRefused(str(exc.args[0])) from None
        builder = getattr(self, "_plan_" + key.replace("-", "_"))
        plan: Plan = await builder(terminate_sessions=terminate_sessions)
        return plan

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
        return self._base(
            "create-standby",
            f"create Secret {manifest.secret_name} and {self.flavor.v5.kind} {self.v5_name} "
            f"(standby of v4 {self.cluster}, repo {self.view.snapshot.v4.repo_url})",
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

    def freeze_preview(
        self, terminate_sessions: bool, roles: Sequence[str], spare: Sequence[str]
    ) -> str:
        """The SQL of the freeze, exactly as the run sends it for ``roles``."""
        return (
            "-- the login roles blocked (every non-superuser but ivytui's and the monitors'):\n"
            + sqlgen.blockable_roles_sql(spare)
            + "\n-- then, one by one:\n"
            + sqlgen.freeze_sql(terminate_sessions, roles)
            + "\n-- once no WAL is written and no transaction is in progress:\n"
            + sqlgen.switch_sql()
        )

    async def _plan_freeze(self, *, terminate_sessions: bool = False, **_: Any) -> Plan:
        db = self.view.snapshot.v4db
        sessions = db.client_sessions if db.client_sessions is not None else "unknown"
        rate = self.view.write_rate
        roles = await self._blockable_roles()
        named = ", ".join(roles) or "none"
        return self._base(
            "freeze",
            f"freeze writes on v4 {self.cluster} ({sessions} client sessions, writing "
            f"{rate or 0:.0f} B/s): read-only by default, no new session for the roles "
            f"{named} and their sessions ended"
            + ("; every other client session ended too" if terminate_sessions else "")
            + "; wait until quiet, CHECKPOINT and pg_switch_wal(), then wait until the final "
            "segment is in the repo and replayed by v5",
            sql=self.freeze_preview(terminate_sessions, roles, await self.spare_roles()),
            options={"terminate_sessions": terminate_sessions, "roles": list(roles)},
        )

    async def _blockable_roles(self) -> tuple[str, ...]:
        """The roles the freeze would block now, read from v4 (empty when it does not answer:
        the run reads them again in any case)."""
        try:
            conn = await self._pg("v4")
        except (IvyError, OSError, TimeoutError):
            return ()
        try:
            rows = await conn.fetch(sqlgen.blockable_roles_sql(await self.spare_roles()))
        finally:
            await conn.close()
        return tuple(str(r["rolname"]) for r in rows)

    async def _plan_thaw(self, **_: Any) -> Plan:
        frozen = self.view.snapshot.marks.frozen_roles
        roles = ", ".join(f"{r} (limit {n})" for r, n in frozen) or "none recorded"
        return self._base(
            "thaw",
            f"allow writes on v4 {self.cluster} again; put back the connection limits of {roles}",
            sql=sqlgen.thaw_sql(frozen),
        )

    async def _plan_shutdown_v4(self, **_: Any) -> Plan:
        step = next(s for s in self.view.steps if s.number == 4)
        return self._base(
            "shutdown-v4",
            f"end v4's remaining client sessions, check that no transaction committed after "
            f"the final switch, then set spec.shutdown on Pgcluster {self.cluster}: the v4 "
            "operator scales every deployment to 0 and stops PostgreSQL",
            diff=patch_diff("Pgcluster", self.cluster, self._live("v4"), SHUTDOWN_PATCH),
            kubectl=kubectl_patch(V4_RESOURCE, self.cluster, self.namespace, SHUTDOWN_PATCH),
            override_needed=step.state == "blocked" and step.overridable,
            options={"patch": dict(SHUTDOWN_PATCH)},
        )

    async def _plan_promote(self, **_: Any) -> Plan:
        return self._base(
            "promote",
            f"set spec.standby.enabled false on {self.flavor.v5.kind} {self.v5_name}: "
            "it leaves recovery on a new timeline and archives into the same repo",
            diff=patch_diff(self.flavor.v5.kind, self.v5_name, self._live("v5"), PROMOTE_PATCH),
            kubectl=kubectl_patch(self.flavor.v5, self.v5_name, self.namespace, PROMOTE_PATCH),
            options={"patch": dict(PROMOTE_PATCH)},
        )

    async def _plan_grants(self, **_: Any) -> Plan:
        return self._base(
            "grants",
            f"create {self.flavor.replication_role} if missing and grant it EXECUTE on "
            "four functions, in one transaction on v5 as a superuser",
            sql=sqlgen.grants_sql(self.flavor),
        )

    async def _plan_retire_v4(self, **_: Any) -> Plan:
        out = state_dir() / f"{self.cluster}-v4-credentials-<time>.json"
        return self._base(
            "retire-v4",
            f"export the v4 user Secrets to {out} (mode 0600), check that no v4 backup "
            f"schedule is left, then delete Pgcluster {self.cluster} (the bucket is kept)",
            diff=f"- Pgcluster {self.cluster}",
            kubectl=f"kubectl delete {V4_RESOURCE.plural}.{V4_RESOURCE.group} {self.cluster} "
            f"-n {self.namespace}",
        )

    async def _plan_abort(self, **_: Any) -> Plan:
        v4 = self.view.snapshot.v4
        parts = []
        if v4.shutdown:
            parts.append(f"restart v4 {self.cluster} (spec.shutdown false)")
        if self.view.snapshot.v5.exists:
            parts.append(f"delete the standby {self.flavor.v5.kind} {self.v5_name}")
        return self._base(
            "abort",
            "; ".join(parts) or "nothing to undo",
            diff="\n".join(f"~ {p}" for p in parts),
        )
