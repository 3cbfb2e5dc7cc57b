"""A hub double with the real hub's surface, and frozen views built from domain snapshots."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

from domain_factory import NOW, SYSTEM_ID, segment_object, standby, with_source

from ivytui.config import Config
from ivytui.domain.actions import Verdict
from ivytui.domain.flavor import Flavor, flavor_named
from ivytui.domain.lag import LagReport, lag_from_snapshot
from ivytui.domain.lsn import Lsn
from ivytui.domain.model import ArchiverStats, PodInfo, Snapshot
from ivytui.domain.repoinfo import parse_backup_info
from ivytui.domain.runbook import Alarm, StepStatus, alarms, evaluate
from ivytui.errors import KubeError
from ivytui.sources.actions import Executor, GuardRefused, Outcome, Plan
from ivytui.tui.app import IvyApp, make_app

DATA = Path(__file__).parent.parent / "domain" / "data"

CONFIG = Config(
    cluster="hippo", namespace="pgo", flavor="ivyo", v5_name="hippo", context="ivytui-sandbox"
)


@dataclass(frozen=True)
class LogEntry:
    at: float
    source: str
    level: str
    text: str


@dataclass(frozen=True)
class FakeView:
    """The same fields as ``ivytui.sources.hub.HubView``."""

    snapshot: Snapshot
    steps: tuple[StepStatus, ...]
    alarms: tuple[Alarm, ...]
    lag: LagReport
    lag_history: tuple[tuple[float, int], ...]
    write_rate: float | None
    arrival_rate: float | None
    replay_rate: float | None
    context: str
    namespace: str
    cluster: str
    v5_name: str
    flavor: str
    read_only: bool
    freshest_at: float | None
    paused: bool
    interval: float
    objects: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    driver: str = ""


def _view_class() -> Any:
    """The real HubView once ``ivytui.sources.hub`` exists (it must accept the same fields)."""
    try:
        from ivytui.sources.hub import HubView
    except ImportError:
        return FakeView
    names = {f.name for f in dataclasses.fields(HubView)}
    if names != {f.name for f in dataclasses.fields(FakeView)}:
        return FakeView
    return HubView


def sample_objects(snap: Snapshot) -> dict[str, Mapping[str, Any]]:
    objects: dict[str, Mapping[str, Any]] = {
        "v4": {
            "apiVersion": "crunchydata.com/v1",
            "kind": "Pgcluster",
            "metadata": {"name": "hippo", "namespace": "pgo", "resourceVersion": "1001"},
            "spec": {
                "backrestStorageTypes": ["s3"],
                "backrestS3Bucket": "hippo-backups",
                "backrestS3Endpoint": "s3.example.net",
                "backrestS3Region": "us-east-1",
                "ccpimagetag": "centos8-15.4-4.7.10",
                "port": "5432",
                "replicas": "1",
                "shutdown": False,
                "PrimaryStorage": {
                    "name": "hippo",
                    "accessmode": "ReadWriteOnce",
                    "size": "20Gi",
                    "storagetype": "dynamic",
                },
            },
            "status": {"state": "pgcluster Initialized"},
        },
        "v5": {
            "apiVersion": "ivory-operator.ivorysql.org/v1beta1",
            "kind": "IvoryCluster",
            "metadata": {"name": "hippo", "namespace": "pgo"},
            "spec": {"standby": {"enabled": True, "repoName": "repo1"}},
        },
        "repo/archive.info": {"text": (DATA / "archive.info").read_text()},
        "repo/backup.info": {"text": (DATA / "backup.info").read_text()},
    }
    for pod in (*snap.v4.pods, *snap.v5.pods):
        objects[f"pod/{pod.name}"] = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": pod.name, "namespace": "pgo", "labels": {"role": pod.role}},
            "status": {"phase": pod.phase},
        }
    return objects


def make_view(snap: Snapshot, **changes: Any) -> Any:
    lag = lag_from_snapshot(snap)
    history = tuple(
        (NOW - 2 * (40 - i), max(0, (lag.behind_bytes or 0) + (20 - abs(20 - i)) * 600_000))
        for i in range(40)
    )
    values: dict[str, Any] = {
        "snapshot": snap,
        "steps": evaluate(snap),
        "alarms": alarms(snap),
        "lag": lag,
        "lag_history": history,
        "write_rate": snap.rates.write_bps,
        "arrival_rate": snap.rates.archive_bps,
        "replay_rate": snap.rates.replay_bps,
        "context": "ivytui-sandbox",
        "namespace": "pgo",
        "cluster": "hippo",
        "v5_name": "hippo",
        "flavor": "ivyo",
        "read_only": False,
        "freshest_at": NOW - 1,
        "paused": False,
        "interval": 2.0,
        "objects": sample_objects(snap),
    }
    values.update(changes)
    return _view_class()(**values)


def catching_up() -> Snapshot:
    """v5 a few segments behind v4, with a backup in the repo."""
    s: Snapshot = standby()
    backup_info = parse_backup_info((DATA / "backup.info").read_text(), verify_checksum=False)
    repo = replace(
        s.repo,
        newest_segments=(segment_object("000000010000000000000008", stored=NOW - 3),),
        segment_count=8,
        backup_info=backup_info,
    )
    v4db = replace(
        s.v4db,
        current_lsn=Lsn.parse("0/9000060"),
        walfile="000000010000000000000009",
        archiver=replace(
            s.v4db.archiver or ArchiverStats(),
            archived_count=8,
            last_archived_wal="000000010000000000000008",
            last_archived_time=NOW - 3,
        ),
    )
    v5db = replace(s.v5db, replay_lsn=Lsn.parse("0/6A00000"), last_replay_time=NOW - 4)
    return replace(s, repo=repo, v4db=v4db, v5db=v5db)


def stale_repo_with_alarm() -> Snapshot:
    """The bucket stopped answering 12 s ago, and a v4 primary is back after promotion."""
    from domain_factory import promoted

    s: Snapshot = promoted()
    s = replace(
        s,
        v4=replace(
            s.v4,
            pods=(
                PodInfo(
                    name="hippo-7d9f-abc",
                    kind="database",
                    role="master",
                    phase="Running",
                    ready=True,
                ),
            ),
        ),
    )
    stale: Snapshot = with_source(
        s,
        "repo",
        error="connect to 127.0.0.1:9000: connection refused",
        stale_since=NOW - 12,
        observed_at=NOW - 14,
    )
    return stale


class FakeHub:
    """Records what the app asks; emits views and log entries on demand."""

    executor: FakeExecutor

    def __init__(self, view: Any, *, logs: tuple[LogEntry, ...] = ()) -> None:
        self.view = view
        self.calls: list[str] = []
        self.interval = view.interval
        self.paused = False
        self.started = False
        self._logs = logs
        self._view_cbs: list[Callable[[Any], None]] = []
        self._log_cbs: list[Callable[[Any], None]] = []
        self.fail_with: BaseException | None = None

    async def start(self) -> None:
        self.calls.append("start")
        if self.fail_with is not None:
            raise self.fail_with
        self.started = True
        for entry in self._logs:
            self.log(entry)
        self.emit(self.view)

    async def stop(self) -> None:
        self.calls.append("stop")
        self.started = False

    def on_view(self, cb: Callable[[Any], None]) -> None:
        self._view_cbs.append(cb)

    def on_log(self, cb: Callable[[Any], None]) -> None:
        self._log_cbs.append(cb)

    async def refresh(self) -> None:
        self.calls.append("refresh")
        self.emit(self.view)

    def pause(self) -> None:
        self.calls.append("pause")
        self.paused = True
        self.emit(replace(self.view, paused=True))

    def resume(self) -> None:
        self.calls.append("resume")
        self.paused = False
        self.emit(replace(self.view, paused=False))

    def set_interval(self, seconds: float) -> None:
        self.calls.append(f"interval {seconds:g}")
        self.interval = seconds
        self.emit(replace(self.view, interval=seconds))

    def emit(self, view: Any) -> None:
        self.view = view
        for cb in self._view_cbs:
            cb(view)

    def log(self, entry: LogEntry) -> None:
        for cb in self._log_cbs:
            cb(entry)


S3_KEYS = {"aws-s3-key": "AKIAFAKEACCESSKEY0001", "aws-s3-key-secret": "fake+secret/never/shown"}
"""v4's pgBackRest keys in the fake cluster: they must never appear on screen."""


class FakeKube:
    """The raw objects the executor plans from, out of the fake view."""

    def __init__(self, hub: FakeHub) -> None:
        self.hub = hub

    def v4_object(self) -> Mapping[str, Any] | None:
        return cast("Mapping[str, Any] | None", self.hub.view.objects.get("v4"))

    def v5_object(self) -> Mapping[str, Any] | None:
        return cast("Mapping[str, Any] | None", self.hub.view.objects.get("v5"))

    async def read_secret(self, name: str) -> dict[str, str]:
        return dict(S3_KEYS)

    async def read_service(self, name: str) -> dict[str, Any]:
        """No database is reachable from the fake cluster: plans that would read one (the
        freeze's roles) do without, as they do when v4 does not answer."""
        raise KubeError(f"Service {name}: the fake cluster has no databases")


class PlanningHub:
    """What the real executor reads from a hub, over the fake one: the plans are real."""

    def __init__(self, hub: FakeHub, config: Config) -> None:
        self._hub = hub
        self.config = config
        self.flavor: Flavor = flavor_named(config.flavor)
        self.kube = FakeKube(hub)

    @property
    def view(self) -> Any:
        return self._hub.view

    async def refresh(self) -> None:
        await self._hub.refresh()


class FakeExecutor:
    """Plans with the real executor (from the frozen view); records what it is asked to run
    instead of running it, optionally holding it until ``release`` or failing with ``fail_with``.
    ``interrupted`` answers ``unfinished``; ``take_over`` refuses unless the cluster name is
    typed, as the real one does."""

    def __init__(self, hub: FakeHub, config: Config) -> None:
        self.real = Executor(cast(Any, PlanningHub(hub, config)))
        self.cluster = config.cluster
        self.holder = "oncall@bastion-1 (pid 4242, 7f3a)"
        self.busy: str | None = None
        self.planned: list[str] = []
        self.executed: list[tuple[str, str, str]] = []
        self.plans: list[Plan] = []
        self.shown: list[Verdict | None] = []
        self.hold: asyncio.Event | None = None
        self.fail_with: BaseException | None = None
        self.unfinished: tuple[str, ...] = ()
        self.interrupted_asked = 0
        self.took_over: list[str] = []
        self.closed = False

    async def plan(self, key: str, *, terminate_sessions: bool = False) -> Plan:
        self.planned.append(key)
        return await self.real.plan(key, terminate_sessions=terminate_sessions)

    def with_edited(self, plan: Plan, text: str) -> Plan:
        return self.real.with_edited(plan, text)

    async def execute(
        self,
        plan: Plan,
        *,
        override: str = "",
        typed: str = "",
        progress: Callable[[str], None] | None = None,
        shown: Verdict | None = None,
    ) -> Outcome:
        say = progress or (lambda text: None)
        self.executed.append((plan.key, typed, override))
        self.plans.append(plan)
        self.shown.append(shown)
        self.busy = plan.title
        try:
            say("server-side dry run")
            if self.hold is not None:
                say("waiting: the clusters")
                await self.hold.wait()
            if self.fail_with is not None:
                raise self.fail_with
            return Outcome(True, f"{plan.title}: done")
        finally:
            self.busy = None

    async def interrupted(self) -> tuple[str, ...]:
        self.interrupted_asked += 1
        return self.unfinished

    async def take_over(self, typed: str) -> str:
        self.took_over.append(typed)
        if typed != self.cluster:
            raise GuardRefused(f"type the cluster name {self.cluster} to take over")
        if self.fail_with is not None:
            raise self.fail_with
        return "took the driver lease from alice@laptop (pid 77, 1c2d)"

    async def close(self) -> None:
        self.closed = True


SAMPLE_LOGS = (
    LogEntry(NOW - 40, "kube", "info", "pod hippo-00-abcd-0 is Running and ready"),
    LogEntry(NOW - 30, "repo", "info", "new segment 000000010000000000000007"),
    LogEntry(NOW - 20, "events", "warning", "Pgcluster hippo: BackupFailed (retrying)"),
    LogEntry(NOW - 14, "repo", "error", "connect to 127.0.0.1:9000: connection refused"),
    LogEntry(NOW - 3, "repo", "info", "new segment 000000010000000000000008"),
)


def frozen_app(
    snap: Snapshot,
    *,
    config: Config = CONFIG,
    logs: tuple[LogEntry, ...] = SAMPLE_LOGS,
    keymap: Mapping[str, str] | None = None,
    **view: Any,
) -> tuple[IvyApp, FakeHub]:
    hub = FakeHub(make_view(snap, **view), logs=logs)
    hub.executor = FakeExecutor(hub, config)
    app = make_app(
        config,
        hub,
        clock=lambda: NOW,
        executor_factory=lambda _hub: hub.executor,
        keymap=keymap,
    )
    return app, hub


__all__ = [
    "NOW",
    "S3_KEYS",
    "SYSTEM_ID",
    "FakeExecutor",
    "FakeHub",
    "LogEntry",
    "catching_up",
    "frozen_app",
    "make_view",
]
