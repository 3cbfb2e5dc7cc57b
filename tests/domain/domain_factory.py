"""Snapshots of the migration at each stage, built from plain values, for the domain tests."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

from ivytui.domain.lsn import DEFAULT_SEGMENT_SIZE, Lsn
from ivytui.domain.model import (
    ArchiverStats,
    Marks,
    PodInfo,
    Rates,
    RepoState,
    SegmentObject,
    Snapshot,
    SourceName,
    V4Database,
    V4LastSeen,
    V4State,
    V5Database,
    V5Repo,
    V5State,
)
from ivytui.domain.repoinfo import ArchiveInfo
from ivytui.domain.walname import segment_name

NOW = 1_795_618_500.0
SYSTEM_ID = 7712122409858461008
BUCKET = "hippo-backups"
REPO_PATH = "/backrestrepo/hippo-backrest-shared-repo"
KEY_ROOT = "backrestrepo/hippo-backrest-shared-repo/archive/db/15-1"
URL = f"s3://{BUCKET}/backrestrepo/hippo-backrest-shared-repo"


def lsn(text: str) -> Lsn:
    return Lsn.parse(text)


_replace: Callable[..., Any] = dataclasses.replace


def with_source(s: Snapshot, name: SourceName, **changes: Any) -> Snapshot:
    """``s`` with fields of source ``name`` changed (``error=...``, ``observed_at=...``)."""
    changed = _replace(s.source(name), **changes)
    result: Snapshot = _replace(s, **{name: changed})
    return result


def segment_object(name: str, *, stored: float = NOW - 2.0) -> SegmentObject:
    key = f"{KEY_ROOT}/{name[:16]}/{name}-{'a' * 40}.gz"
    return SegmentObject(name=name, key=key, size=16_000, last_modified=stored)


V4_PODS = (
    PodInfo(name="hippo-7d9f-abc", kind="database", role="master", phase="Running", ready=True),
    PodInfo(name="hippo-rpa-5c8-xyz", kind="database", role="replica", phase="Running", ready=True),
    PodInfo(name="hippo-backrest-shared-repo-1", kind="repo-host", phase="Running", ready=True),
    PodInfo(name="hippo-pgbouncer-1", kind="pgbouncer", phase="Running", ready=True),
)

V5_PODS = (
    PodInfo(name="hippo-00-abcd-0", kind="database", role="master", phase="Running", ready=True),
    PodInfo(name="hippo-repo-host-0", kind="repo-host", phase="Running", ready=True),
)


def preflight() -> Snapshot:
    """v4 running and archiving, the repo healthy, no v5 cluster yet."""
    v4 = V4State(
        observed_at=NOW - 1,
        exists=True,
        name="hippo",
        namespace="pgo",
        state="pgcluster Initialized",
        storage_types=("s3",),
        s3_bucket=BUCKET,
        s3_endpoint="s3.example.net",
        s3_region="us-east-1",
        image_tag="centos8-15.4-4.7.10",
        pg_major=15,
        port=5432,
        replicas=1,
        resource_version="1001",
        current_primary="hippo",
        pods=V4_PODS,
    )
    v4db = V4Database(
        observed_at=NOW - 1,
        reachable=True,
        in_recovery=False,
        current_lsn=lsn("0/5000060"),
        walfile="000000010000000000000005",
        timeline=1,
        system_id=SYSTEM_ID,
        pg_version_num=150018,
        archiver=ArchiverStats(
            archived_count=4,
            last_archived_wal="000000010000000000000004",
            last_archived_time=NOW - 30,
            failed_count=0,
        ),
        client_sessions=12,
        read_only=False,
        xid_horizon=712,
    )
    repo = RepoState(
        observed_at=NOW - 1,
        url=URL,
        reachable=True,
        archive_info=ArchiveInfo(db_id=1, system_id=SYSTEM_ID, version="15"),
        newest_segments=(segment_object("000000010000000000000004", stored=NOW - 30),),
        segment_count=4,
    )
    v5 = V5State(
        observed_at=NOW - 1,
        crd_installed=True,
        exists=False,
        name="hippo",
        namespace="pgo",
        kind="IvoryCluster",
    )
    v5db = V5Database(observed_at=NOW - 1, reachable=False, unreachable_reason="no such host")
    marks = Marks(observed_at=NOW - 1)
    return Snapshot(
        now=NOW,
        v4=v4,
        v4db=v4db,
        repo=repo,
        v5=v5,
        v5db=v5db,
        marks=marks,
        rates=Rates(write_bps=1000.0, archive_bps=1000.0, replay_bps=None),
    )


def standby() -> Snapshot:
    """v5 created as a standby on v4's repo, caught up to the newest archived segment."""
    s = preflight()
    v5 = replace(
        s.v5,
        exists=True,
        standby_enabled=True,
        standby_repo_name="repo1",
        postgres_version=15,
        repo_paths=(("repo1", REPO_PATH),),
        repos=(V5Repo(name="repo1", type="s3", bucket=BUCKET, endpoint="s3.example.net"),),
        pods=V5_PODS,
        resource_version="2001",
    )
    v5db = V5Database(
        observed_at=NOW - 1,
        reachable=True,
        in_recovery=True,
        replay_lsn=lsn("0/5000000"),
        timeline=1,
        system_id=SYSTEM_ID,
        pg_version_num=150018,
        is_superuser=True,
    )
    rates = replace(s.rates, replay_bps=2000.0, replay_moved_at=NOW - 2)
    return replace(s, v5=v5, v5db=v5db, rates=rates)


FROZEN_ROLES = ("app", "reporting")
"""The login roles the freeze blocked (connection limit 0)."""


def frozen() -> Snapshot:
    """Step 3 finished: v4 read-only, its roles blocked, final switch at 0/5000168 (xid
    horizon 725) archived and replayed; since then only background records (96 B)."""
    s = standby()
    v4db = replace(
        s.v4db,
        read_only=True,
        current_lsn=lsn("0/6000060"),
        walfile="000000010000000000000006",
        archiver=replace(
            s.v4db.archiver or ArchiverStats(),
            archived_count=5,
            last_archived_wal="000000010000000000000005",
            last_archived_time=NOW - 20,
        ),
        client_sessions=0,
        xid_horizon=725,
        blocked_roles=FROZEN_ROLES,
    )
    repo = replace(
        s.repo,
        newest_segments=(segment_object("000000010000000000000005", stored=NOW - 20),),
        segment_count=5,
    )
    v5db = replace(s.v5db, replay_lsn=lsn("0/6000000"))
    marks = replace(
        s.marks,
        target_lsn=lsn("0/5000168"),
        target_timeline=1,
        target_xid_horizon=725,
        frozen_at=NOW - 60,
        frozen_roles=tuple((role, -1) for role in FROZEN_ROLES),
        v4_last_seen=V4LastSeen(
            lsn=lsn("0/6000060"), timeline=1, system_id=SYSTEM_ID, at=NOW - 1, xid_horizon=725
        ),
    )
    return replace(s, v4db=v4db, repo=repo, v5db=v5db, marks=marks)


def shutting_down() -> Snapshot:
    """spec.shutdown set, state already Shutdown, but the primary pod is still there."""
    s = frozen()
    v4 = replace(s.v4, shutdown=True, state="pgcluster Shutdown")
    return replace(s, v4=v4)


def down() -> Snapshot:
    """v4 proven down; the repo quiet; v5 replayed everything: promotion may go."""
    s = shutting_down()
    v4 = replace(s.v4, pods=())
    v4db = V4Database(observed_at=NOW - 1, reachable=False, unreachable_reason="connection refused")
    repo = replace(
        s.repo, newest_segments=(segment_object("000000010000000000000005", stored=NOW - 120),)
    )
    return replace(s, v4=v4, v4db=v4db, repo=repo)


def promoted() -> Snapshot:
    """v5 promoted onto timeline 2; the history file is in the repo."""
    s = down()
    v5 = replace(s.v5, standby_enabled=False, resource_version="2002")
    v5db = replace(
        s.v5db,
        in_recovery=False,
        current_lsn=lsn("0/6000108"),
        timeline=2,
        grants_verified=False,
    )
    repo = replace(
        s.repo,
        newest_segments=(
            segment_object("000000010000000000000005", stored=NOW - 120),
            segment_object("000000020000000000000006", stored=NOW - 5),
        ),
        history_timelines=(2,),
    )
    return replace(s, v5=v5, v5db=v5db, repo=repo)


def granted() -> Snapshot:
    s = promoted()
    return replace(s, v5db=replace(s.v5db, grants_verified=True))


def retired() -> Snapshot:
    s = granted()
    v4 = V4State(observed_at=NOW - 1, exists=False, name="hippo", namespace="pgo")
    return replace(s, v4=v4)


def catch_up_snapshots(
    seed: int,
    *,
    seconds: float = 120.0,
    segment_every: tuple[float, float] = (0.7, 1.3),
    replay_stops_at: float | None = None,
) -> Iterator[Snapshot]:
    """What the hub sees of a repo-fed standby catching up, one snapshot per poll.

    v4 writes a little and switches segments every ``segment_every`` seconds (drawn at random);
    each closed segment reaches the repo 0.15–0.7 s later. v5's ``restore_command`` fetches the
    next segment once it is whole in the repo, replays it, tries for the next at once, and
    waits ``wal_retrieve_retry_interval`` (1 s) after a miss — so its replay moves in bursts.
    v5 stops fetching at ``replay_stops_at``. The hub polls v4's database, the repo and v5's
    database every second each, out of phase, each poll taking its own time; after each poll
    it evaluates the values of every source as last polled, and ``replay_moved_at`` is the time
    of the poll at which v5's replay position was last seen to change. Time 0 is ``NOW``.
    """
    rng = random.Random(seed)
    seg = DEFAULT_SEGMENT_SIZE
    first = 5
    opened = {first: -0.4}
    while opened[max(opened)] < seconds + 5:
        last = max(opened)
        opened[last + 1] = opened[last] + rng.uniform(*segment_every)
    arrived = {n: opened[n + 1] + rng.uniform(0.15, 0.7) for n in opened if n + 1 in opened}
    arrived[first - 1] = -1.0
    replayed = [(-5.0, first - 1)]  # (when, segments replayed up to and including)
    at, wanted = 0.3, first
    while at < seconds and (replay_stops_at is None or at < replay_stops_at):
        if arrived.get(wanted, float("inf")) <= at:
            at += rng.uniform(0.03, 0.15)
            replayed.append((at, wanted))
            wanted += 1
        else:
            at += 1.0 + rng.uniform(0.0, 0.05)

    polls: list[tuple[float, str, float]] = []
    for name, took in (("v4db", (0.01, 0.03)), ("repo", (0.1, 0.4)), ("v5db", (0.01, 0.03))):
        at = rng.uniform(0.0, 1.0)
        while at < seconds:
            done = at + rng.uniform(*took)
            polls.append((done, name, at))
            at = done + 1.0
    polls.sort()

    base = standby()
    v4db, repo, v5db = base.v4db, base.repo, base.v5db
    assert v4db.archiver is not None
    moved_at: float | None = None
    last_position: Lsn | None = None
    for done, name, began in polls:
        if name == "v4db":
            open_seg = max(n for n, t in opened.items() if t <= began)
            pushed = max(n for n, t in arrived.items() if t <= began)
            written = int((began - opened[open_seg]) * 5000)
            v4db = replace(
                v4db,
                observed_at=NOW + done,
                current_lsn=Lsn(open_seg * seg + 40 + written),
                walfile=segment_name(1, open_seg, seg),
                archiver=replace(
                    v4db.archiver,
                    last_archived_wal=segment_name(1, pushed, seg),
                    last_archived_time=NOW + arrived[pushed],
                ),
            )
        elif name == "repo":
            newest = max(n for n, t in arrived.items() if t <= began)
            stored = NOW + arrived[newest]
            repo = replace(
                repo,
                observed_at=NOW + done,
                newest_segments=(segment_object(segment_name(1, newest, seg), stored=stored),),
            )
        else:
            upto = max((t, n) for t, n in replayed if t <= began)[1]
            position = Lsn((upto + 1) * seg)
            if last_position is not None and position != last_position:
                moved_at = NOW + done
            last_position = position
            v5db = replace(v5db, observed_at=NOW + done, replay_lsn=position)
        now = NOW + done
        yield replace(
            base,
            now=now,
            v4=replace(base.v4, observed_at=now - 0.5),
            v5=replace(base.v5, observed_at=now - 0.5),
            marks=replace(base.marks, observed_at=now - 0.5),
            v4db=v4db,
            repo=repo,
            v5db=v5db,
            rates=Rates(write_bps=5000.0, replay_moved_at=moved_at),
        )


STAGES = {
    "preflight": preflight,
    "standby": standby,
    "frozen": frozen,
    "shutting_down": shutting_down,
    "down": down,
    "promoted": promoted,
    "granted": granted,
    "retired": retired,
}
