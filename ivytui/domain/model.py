"""Immutable snapshots of what each source saw, and the :class:`Snapshot` the runbook reads.

Every source snapshot carries ``observed_at`` (when it was read, ``time.time()``; ``0`` means
never), ``error`` (the source's own failure, e.g. the API server or the bucket did not answer)
and ``stale_since`` (since when the values shown are no longer fresh). A database that refuses
connections is not a source error: the PostgreSQL source reports ``reachable=False`` with the
reason in ``unreachable_reason`` and ``error=None``, because "v4's database is unreachable" is
itself a fact the runbook needs.

Nothing the runbook needs is kept only in memory: what cannot be read from the clusters at any
moment (the freeze's target LSN, v4's last position before it went down) is in :class:`Marks`,
which a source reads back from an annotation, so every viewer evaluates the same state.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from ivytui.domain.flavor import IVYO, PRIMARY_ROLES, Flavor, v4_default_repo_path
from ivytui.domain.human import format_duration
from ivytui.domain.lsn import DEFAULT_SEGMENT_SIZE, Lsn, LsnError
from ivytui.domain.repoinfo import ArchiveInfo, BackupInfo
from ivytui.domain.walname import WalSegment
from ivytui.errors import IvyError

SourceName = Literal["v4", "v4db", "repo", "v5", "v5db", "marks"]

SOURCE_TITLES: Mapping[SourceName, str] = {
    "v4": "the v4 cluster",
    "v4db": "v4's database",
    "repo": "the repo in object storage",
    "v5": "the v5 cluster",
    "v5db": "v5's database",
    "marks": "the runbook marks",
}

PodKind = Literal["database", "repo-host", "pgbouncer", "other"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Observed:
    """When a source last answered, and what went wrong if it did not."""

    observed_at: float = 0.0
    error: str | None = None
    stale_since: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PodInfo:
    """A pod as the panes and the runbook need it."""

    name: str
    kind: PodKind = "other"
    role: str | None = None
    phase: str = "Unknown"
    ready: bool = False
    deleting: bool = False

    @property
    def is_database(self) -> bool:
        return self.kind == "database"

    @property
    def is_primary(self) -> bool:
        return self.role in PRIMARY_ROLES

    def describe(self) -> str:
        """``pod hippo-7d9f-abc (primary, Running, terminating)``."""
        parts = []
        if self.is_primary:
            parts.append("primary")
        elif self.role:
            parts.append(self.role)
        parts.append(self.phase)
        if self.deleting:
            parts.append("terminating")
        return f"pod {self.name} ({', '.join(parts)})"


def repo_url(storage: str | None, bucket: str | None, repo_path: str | None) -> str | None:
    """``s3://bucket/backrestrepo/hippo-backrest-shared-repo`` (``gs://`` for GCS)."""
    if storage not in ("s3", "gcs") or not bucket or repo_path is None:
        return None
    scheme = "s3" if storage == "s3" else "gs"
    path = repo_path.strip("/")
    return f"{scheme}://{bucket}/{path}" if path else f"{scheme}://{bucket}"


# --------------------------------------------------------------------------------------------
# v4


@dataclass(frozen=True, slots=True, kw_only=True)
class V4State(Observed):
    """The v4 ``Pgcluster`` object and its pods."""

    exists: bool = False
    name: str = ""
    namespace: str = ""
    state: str | None = None
    shutdown: bool = False
    deleting: bool = False
    storage_types: tuple[str, ...] = ()
    s3_bucket: str | None = None
    s3_endpoint: str | None = None
    s3_region: str | None = None
    s3_uri_style: str | None = None
    s3_verify_tls: bool | None = None
    gcs_bucket: str | None = None
    gcs_endpoint: str | None = None
    gcs_key_type: str | None = None
    repo_path_spec: str | None = None
    image_tag: str | None = None
    pg_major: int | None = None
    port: int | None = None
    replicas: int | None = None
    resource_version: str | None = None
    current_primary: str | None = None
    pods: tuple[PodInfo, ...] = ()
    backup_schedules: tuple[str, ...] = ()

    @property
    def repo_path(self) -> str:
        """``backrestRepoPath``, or v4's default ``/backrestrepo/<c>-backrest-shared-repo``."""
        return self.repo_path_spec or v4_default_repo_path(self.name)

    @property
    def object_storage(self) -> Literal["s3", "gcs"] | None:
        """The object store the standby can read: ``s3`` (preferred) or ``gcs``."""
        if "s3" in self.storage_types:
            return "s3"
        if "gcs" in self.storage_types:
            return "gcs"
        return None

    @property
    def bucket(self) -> str | None:
        return self.gcs_bucket if self.object_storage == "gcs" else self.s3_bucket

    @property
    def endpoint(self) -> str | None:
        return self.gcs_endpoint if self.object_storage == "gcs" else self.s3_endpoint

    @property
    def region(self) -> str | None:
        return self.s3_region

    @property
    def uri_style(self) -> str | None:
        return self.s3_uri_style

    @property
    def verify_tls(self) -> bool | None:
        return self.s3_verify_tls

    @property
    def repo_url(self) -> str | None:
        return repo_url(self.object_storage, self.bucket, self.repo_path)

    @property
    def database_pods(self) -> tuple[PodInfo, ...]:
        return tuple(pod for pod in self.pods if pod.is_database)

    @property
    def primary_pod(self) -> PodInfo | None:
        for pod in self.database_pods:
            if pod.is_primary:
                return pod
        if self.current_primary:
            for pod in self.database_pods:
                if pod.name.startswith(self.current_primary):
                    return pod
        return None


@dataclass(frozen=True, slots=True, kw_only=True)
class ArchiverStats:
    """``pg_stat_archiver`` on v4's primary (times as epoch seconds)."""

    archived_count: int = 0
    last_archived_wal: str | None = None
    last_archived_time: float | None = None
    failed_count: int = 0
    last_failed_wal: str | None = None
    last_failed_time: float | None = None


def pg_major_of(version_num: int | None) -> str | None:
    """``server_version_num`` → the major as pgBackRest writes it: 150018 → ``15``, 90624 →
    ``9.6``."""
    if version_num is None:
        return None
    if version_num >= 100000:
        return str(version_num // 10000)
    return f"{version_num // 10000}.{version_num // 100 % 100}"


@dataclass(frozen=True, slots=True, kw_only=True)
class V4Database(Observed):
    """One poll of v4's primary."""

    reachable: bool = False
    unreachable_reason: str | None = None
    in_recovery: bool | None = None
    current_lsn: Lsn | None = None
    walfile: str | None = None
    timeline: int | None = None
    system_id: int | None = None
    pg_version_num: int | None = None
    segment_size: int | None = None
    archiver: ArchiverStats | None = None
    client_sessions: int | None = None
    read_only: bool | None = None
    wal_bytes: int | None = None
    """WAL bytes generated since the statistics reset (``pg_stat_wal``, PostgreSQL 14+): unlike
    the LSN, it does not jump to the next segment boundary on a WAL switch."""
    xid_horizon: int | None = None
    """``txid_snapshot_xmax(txid_current_snapshot())``: one past the newest finished
    transaction id. It moves only when a transaction that wrote ends — never for the background
    records an idle primary writes — so an unchanged horizon proves that nothing committed."""
    xids_in_progress: int | None = None
    """How many transaction ids are assigned and not finished (the snapshot's ``xip`` list):
    a writing transaction that may still commit."""
    blocked_roles: tuple[str, ...] = ()
    """Login roles whose ``rolconnlimit`` is 0: no new session of theirs can start."""

    @property
    def pg_major(self) -> str | None:
        return pg_major_of(self.pg_version_num)


# --------------------------------------------------------------------------------------------
# repo


@dataclass(frozen=True, slots=True, kw_only=True)
class SegmentObject:
    """A WAL segment object in the bucket (the newest one seen on some timeline)."""

    name: str
    key: str
    size: int | None = None
    last_modified: float | None = None

    def segment(self, segment_size: int = DEFAULT_SEGMENT_SIZE) -> WalSegment:
        return WalSegment.parse(self.name, segment_size)

    @property
    def timeline(self) -> int:
        return int(self.name[:8], 16)


@dataclass(frozen=True, slots=True, kw_only=True)
class RepoState(Observed):
    """The pgBackRest repo under v4's ``repo1-path``."""

    url: str = ""
    reachable: bool = False
    unreachable_reason: str | None = None
    archive_info: ArchiveInfo | None = None
    backup_info: BackupInfo | None = None
    info_error: str | None = None
    newest_segments: tuple[SegmentObject, ...] = ()
    history_timelines: tuple[int, ...] = ()
    segment_count: int = 0

    def newest_on(self, timeline: int) -> SegmentObject | None:
        """The newest segment object stored on ``timeline``."""
        found = [seg for seg in self.newest_segments if seg.timeline == timeline]
        return max(found, key=lambda seg: seg.name) if found else None

    @property
    def timelines(self) -> tuple[int, ...]:
        return tuple(sorted({seg.timeline for seg in self.newest_segments}))


# --------------------------------------------------------------------------------------------
# v5


@dataclass(frozen=True, slots=True, kw_only=True)
class Condition:
    type: str
    status: str
    reason: str = ""
    message: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class InstanceSetStatus:
    """One entry of ``status.instances``."""

    name: str
    replicas: int = 0
    ready_replicas: int = 0
    updated_replicas: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class V5Repo:
    """One entry of ``spec.backups.pgbackrest.repos``."""

    name: str
    type: str
    bucket: str | None = None
    endpoint: str | None = None
    region: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class V5State(Observed):
    """The v5 cluster object (flavor-dependent kind) and its pods."""

    crd_installed: bool | None = None
    exists: bool = False
    name: str = ""
    namespace: str = ""
    kind: str = ""
    deleting: bool = False
    standby_enabled: bool | None = None
    standby_repo_name: str | None = None
    postgres_version: int | None = None
    repo_paths: tuple[tuple[str, str], ...] = ()
    repos: tuple[V5Repo, ...] = ()
    conditions: tuple[Condition, ...] = ()
    instances: tuple[InstanceSetStatus, ...] = ()
    pods: tuple[PodInfo, ...] = ()
    resource_version: str | None = None

    def repo(self, name: str) -> V5Repo | None:
        for repo in self.repos:
            if repo.name == name:
                return repo
        return None

    def repo_path(self, name: str) -> str | None:
        """``global.<name>-path`` (pgBackRest's own default is ``/pgbackrest/<name>``)."""
        return dict(self.repo_paths).get(name)

    @property
    def standby_repo(self) -> V5Repo | None:
        """The repo the standby replays from (``standby.repoName``, else ``repo1``)."""
        return self.repo(self.standby_repo_name or "repo1")

    @property
    def repo1_path(self) -> str | None:
        return self.repo_path(self.standby_repo_name or "repo1")

    @property
    def repo_url(self) -> str | None:
        repo = self.standby_repo
        if repo is None:
            return None
        return repo_url(repo.type, repo.bucket, self.repo1_path)

    def condition(self, type_: str) -> Condition | None:
        for condition in self.conditions:
            if condition.type == type_:
                return condition
        return None

    @property
    def database_pods(self) -> tuple[PodInfo, ...]:
        return tuple(pod for pod in self.pods if pod.is_database)

    @property
    def leader_pod(self) -> PodInfo | None:
        for pod in self.database_pods:
            if pod.is_primary:
                return pod
        return None


@dataclass(frozen=True, slots=True, kw_only=True)
class V5Database(Observed):
    """One poll of v5's leader."""

    reachable: bool = False
    unreachable_reason: str | None = None
    in_recovery: bool | None = None
    replay_lsn: Lsn | None = None
    receive_lsn: Lsn | None = None
    current_lsn: Lsn | None = None
    last_replay_time: float | None = None
    timeline: int | None = None
    system_id: int | None = None
    pg_version_num: int | None = None
    is_superuser: bool | None = None
    grants_verified: bool | None = None

    @property
    def pg_major(self) -> str | None:
        return pg_major_of(self.pg_version_num)

    @property
    def position(self) -> Lsn | None:
        """Replay LSN in recovery, current LSN once promoted."""
        return self.replay_lsn if self.in_recovery is not False else self.current_lsn


# --------------------------------------------------------------------------------------------
# Marks: what the runbook must remember, stored on the cluster


MARKS_ANNOTATION = "ivytui/runbook-marks"
"""Annotation (on the v5 object, which outlives v4) that holds :class:`Marks` as JSON."""


class MarksFormatError(IvyError):
    title = "runbook marks"


@dataclass(frozen=True, slots=True, kw_only=True)
class V4LastSeen:
    """v4's position the last time its database answered."""

    lsn: Lsn
    timeline: int
    system_id: int | None = None
    at: float = 0.0
    xid_horizon: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Marks(Observed):
    """The runbook's memory, read back from :data:`MARKS_ANNOTATION`.

    ``target_lsn`` is what ``pg_switch_wal()`` returned in step 3 (the end of the final
    segment v5 must replay); ``v4_last_seen`` is v4's last position before it went down.
    """

    target_lsn: Lsn | None = None
    target_timeline: int | None = None
    target_xid_horizon: int | None = None
    """v4's transaction id horizon (:attr:`V4Database.xid_horizon`) at the final switch, with
    no transaction in progress: while it is unchanged, nothing committed after the switch."""
    frozen_at: float | None = None
    frozen_roles: tuple[tuple[str, int], ...] = ()
    """The roles the freeze blocked, each with its connection limit before the freeze (what
    the thaw puts back)."""
    v4_last_seen: V4LastSeen | None = None

    def with_v4_seen(self, v4db: V4Database) -> Marks:
        """Marks advanced to what ``v4db`` shows (unchanged if it shows nothing newer)."""
        if (
            v4db.error is not None
            or not v4db.reachable
            or v4db.current_lsn is None
            or v4db.timeline is None
        ):
            return self
        last = self.v4_last_seen
        if (
            last is not None
            and (last.timeline, int(last.lsn)) >= (v4db.timeline, int(v4db.current_lsn))
            and (last.system_id == v4db.system_id or v4db.system_id is None)
            and (last.xid_horizon or 0) >= (v4db.xid_horizon or 0)
        ):
            return self
        newer = last is None or (v4db.timeline, int(v4db.current_lsn)) > (
            last.timeline,
            int(last.lsn),
        )
        lsn, timeline = (
            (v4db.current_lsn, v4db.timeline)
            if newer or last is None
            else (last.lsn, last.timeline)
        )
        seen = V4LastSeen(
            lsn=lsn,
            timeline=timeline,
            system_id=v4db.system_id,
            at=v4db.observed_at,
            xid_horizon=max(v4db.xid_horizon or 0, (last.xid_horizon or 0) if last else 0) or None,
        )
        return replace(self, v4_last_seen=seen)

    def to_json(self) -> str:
        """The annotation's value (only the remembered fields, not the observation)."""
        data: dict[str, Any] = {}
        if self.target_lsn is not None:
            data["targetLSN"] = str(self.target_lsn)
        if self.target_timeline is not None:
            data["targetTimeline"] = self.target_timeline
        if self.target_xid_horizon is not None:
            data["targetXidHorizon"] = str(self.target_xid_horizon)
        if self.frozen_at is not None:
            data["frozenAt"] = self.frozen_at
        if self.frozen_roles:
            data["frozenRoles"] = {role: limit for role, limit in self.frozen_roles}
        if self.v4_last_seen is not None:
            seen = self.v4_last_seen
            data["v4LastSeen"] = {
                "lsn": str(seen.lsn),
                "timeline": seen.timeline,
                "at": seen.at,
            }
            if seen.system_id is not None:
                data["v4LastSeen"]["systemID"] = str(seen.system_id)
            if seen.xid_horizon is not None:
                data["v4LastSeen"]["xidHorizon"] = str(seen.xid_horizon)
        return json.dumps(data, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | None, *, observed_at: float) -> Marks:
        """Marks from the annotation's value (``None`` or empty: nothing remembered yet)."""
        if not text:
            return cls(observed_at=observed_at)
        try:
            data = json.loads(text)
            if not isinstance(data, dict):
                raise TypeError("not an object")
            seen_data = data.get("v4LastSeen")
            seen = None
            if seen_data is not None:
                system_id = seen_data.get("systemID")
                horizon = seen_data.get("xidHorizon")
                seen = V4LastSeen(
                    lsn=Lsn.parse(seen_data["lsn"]),
                    timeline=int(seen_data["timeline"]),
                    system_id=int(system_id) if system_id is not None else None,
                    at=float(seen_data.get("at", 0.0)),
                    xid_horizon=int(horizon) if horizon is not None else None,
                )
            target = data.get("targetLSN")
            timeline = data.get("targetTimeline")
            target_horizon = data.get("targetXidHorizon")
            frozen = data.get("frozenAt")
            roles = data.get("frozenRoles") or {}
            if not isinstance(roles, dict):
                raise TypeError("frozenRoles is not an object")
            return cls(
                observed_at=observed_at,
                target_lsn=Lsn.parse(target) if target is not None else None,
                target_timeline=int(timeline) if timeline is not None else None,
                target_xid_horizon=int(target_horizon) if target_horizon is not None else None,
                frozen_at=float(frozen) if frozen is not None else None,
                frozen_roles=tuple(sorted((str(r), int(n)) for r, n in roles.items())),
                v4_last_seen=seen,
            )
        except (ValueError, TypeError, KeyError, AttributeError, LsnError) as exc:
            raise MarksFormatError(
                f"annotation {MARKS_ANNOTATION} is not valid runbook marks: {exc}"
            ) from None


# --------------------------------------------------------------------------------------------
# The snapshot


@dataclass(frozen=True, slots=True, kw_only=True)
class Thresholds:
    """Limits the runbook judges by (all configurable)."""

    stale_after: float = 30.0
    """A source whose last answer is older than this is treated as not answering."""
    catch_up_bytes: int = 64 * 1024 * 1024
    """Step 2 is done when v5 is closer than this to v4 (the open segment not counted)."""
    archive_backlog_segments: int = 1
    """Closed segments v4 may hold unarchived before archiving counts as behind."""
    archive_stale_after: float = 300.0
    """With a backlog, the last successful archive must be more recent than this."""
    repo_quiet_seconds: float = 30.0
    """The repo has stopped growing when its newest v4 segment is older than this."""
    replay_window_seconds: float = 30.0
    """Replay counts as advancing when v5's replay position moved within this many seconds:
    a standby fed from the repo replays in bursts, one fetched segment at a time."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Rates:
    """Recent rates in bytes per second (from :class:`ivytui.domain.lag.RateWindow`)."""

    write_bps: float | None = None
    archive_bps: float | None = None
    replay_bps: float | None = None
    replay_moved_at: float | None = None
    """When v5's replay position was last seen to move (``None``: not seen yet)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Snapshot:
    """Everything the runbook evaluates, at one instant ``now``."""

    now: float
    v4: V4State = field(default_factory=V4State)
    v4db: V4Database = field(default_factory=V4Database)
    repo: RepoState = field(default_factory=RepoState)
    v5: V5State = field(default_factory=V5State)
    v5db: V5Database = field(default_factory=V5Database)
    marks: Marks = field(default_factory=Marks)
    rates: Rates = field(default_factory=Rates)
    thresholds: Thresholds = field(default_factory=Thresholds)
    flavor: Flavor = IVYO
    segment_size: int = DEFAULT_SEGMENT_SIZE

    def source(self, name: SourceName) -> Observed:
        return {
            "v4": self.v4,
            "v4db": self.v4db,
            "repo": self.repo,
            "v5": self.v5,
            "v5db": self.v5db,
            "marks": self.marks,
        }[name]

    def problem(self, name: SourceName) -> str | None:
        """Why source ``name`` cannot be trusted now, in words; ``None`` when it can.

        A source is not trusted when it reported an error, was never read, is marked stale, or
        last answered more than ``thresholds.stale_after`` seconds ago.
        """
        src = self.source(name)
        title = SOURCE_TITLES[name]
        stale = (
            f", stale {format_duration(self.now - src.stale_since)}"
            if src.stale_since is not None
            else ""
        )
        if src.error is not None:
            return f"{title} is not answering ({src.error}{stale})"
        if src.observed_at <= 0:
            return f"{title} has not answered yet"
        if src.stale_since is not None:
            return f"{title} is not answering ({stale[2:]})"
        age = self.now - src.observed_at
        if age > self.thresholds.stale_after:
            return f"{title} is not answering (last answer {format_duration(age)} ago)"
        return None

    def available(self, name: SourceName) -> bool:
        return self.problem(name) is None
