"""The runbook: a pure function from a :class:`Snapshot` to the state of each step.

Each step is ``done``, ``ready`` (its action may run now), ``running`` (its action has started
and the clusters have not finished reacting) or ``blocked``, with the checks that make it so.
Every check says what it saw, with names and values. A check that depends on a source that is
not answering is red with ``unknown: …``: nothing is green by default. A step is ``done`` or
``ready`` only when all its checks are green.

Done-ness is read from the clusters, never remembered: a second viewer, or the same one after
an SSH drop, evaluates the same snapshot to the same steps.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

from ivytui.domain.flavor import GRANTED_FUNCTIONS, V4_STATE_INITIALIZED, V4_STATE_SHUTDOWN
from ivytui.domain.human import format_bytes, format_duration, format_rate, plural
from ivytui.domain.lag import LagReport, lag_from_snapshot, newest_segment_on, v4_timeline
from ivytui.domain.lsn import Lsn
from ivytui.domain.model import PodInfo, Snapshot, SourceName
from ivytui.domain.walname import WalSegment, segment_name

StepState = Literal["done", "ready", "blocked", "running"]


@dataclass(frozen=True, slots=True)
class Check:
    """One condition, green (``ok``) or red, with the reason in words and the sources read."""

    ok: bool
    text: str
    sources: tuple[SourceName, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class StepStatus:
    number: int
    key: str
    title: str
    state: StepState
    checks: tuple[Check, ...]
    summary: str
    overridable: bool = False
    """Step 4 only: blocked solely because step 3 is not done; an engineer may type an
    override (which the executor journals)."""

    @property
    def failing(self) -> tuple[Check, ...]:
        return tuple(check for check in self.checks if not check.ok)

    @property
    def sources(self) -> tuple[SourceName, ...]:
        return _union(check.sources for check in self.checks)


@dataclass(frozen=True, slots=True)
class Alarm:
    """A condition that must be seen at once, whatever step is under way."""

    key: str
    title: str
    text: str


@dataclass(frozen=True, slots=True)
class StepInfo:
    number: int
    key: str
    title: str


STEPS: tuple[StepInfo, ...] = (
    StepInfo(0, "preflight", "Preflight"),
    StepInfo(1, "create-standby", "Create the standby"),
    StepInfo(2, "catch-up", "Catch up"),
    StepInfo(3, "freeze", "Freeze and final WAL switch"),
    StepInfo(4, "shutdown-v4", "Shut down v4"),
    StepInfo(5, "promote", "Promote v5"),
    StepInfo(6, "grants", "Grants"),
    StepInfo(7, "retire-v4", "Retire v4"),
)

_DONE_TEXT = {
    0: "preflight passed",
    1: "v5 standby exists and reads v4's repo",
    2: "v5 has caught up",
    3: "v4 is frozen and its final WAL is replayed",
    4: "v4 is down",
    5: "v5 is promoted",
    6: "grants verified",
    7: "v4 is retired",
}

_READY_TEXT = {
    0: "preflight passed",
    1: "ready to create the v5 standby",
    2: "catching up",
    3: "ready to freeze v4 and switch WAL",
    4: "ready to shut down v4",
    5: "ready to promote v5",
    6: "ready to add the replication role and grants",
    7: "ready to retire v4",
}


def _union(groups: Iterable[Iterable[SourceName]]) -> tuple[SourceName, ...]:
    seen: list[SourceName] = []
    for group in groups:
        for name in group:
            if name not in seen:
                seen.append(name)
    return tuple(seen)


def _because(reason: str | None) -> str:
    """`` (reason)`` or nothing."""
    return f" ({reason})" if reason else ""


def _pod_sentence(prefix: str, pods: Sequence[PodInfo]) -> str:
    """``v4 primary pod hippo-7d9f-abc is still Running`` (+ ``and 2 more``)."""
    first = pods[0]
    role = "primary " if first.is_primary else f"{first.role} " if first.role else ""
    text = f"{prefix} {role}pod {first.name} is still {first.phase}"
    if first.deleting:
        text += " (terminating)"
    if len(pods) > 1:
        text += f" (and {plural(len(pods) - 1, 'more pod')})"
    return text


def _segment_range(timeline: int, first: int, last: int, segment_size: int) -> str:
    if first == last:
        return f"segment {segment_name(timeline, first, segment_size)} is"
    count = last - first + 1
    return (
        f"segments {segment_name(timeline, first, segment_size)} to "
        f"{segment_name(timeline, last, segment_size)} ({count}) are"
    )


class _Eval:
    """Evaluation of one snapshot; facts are computed once and shared between steps."""

    def __init__(self, snap: Snapshot) -> None:
        self.s = snap
        self.seg = snap.segment_size

    # -- helpers ---------------------------------------------------------------------------

    def unknown(self, *sources: SourceName) -> Check | None:
        """A red check if any of ``sources`` cannot be trusted now."""
        for name in sources:
            problem = self.s.problem(name)
            if problem is not None:
                return Check(False, f"unknown: {problem}", tuple(sources))
        return None

    def step(
        self,
        number: int,
        checks: Sequence[Check],
        state: StepState,
        *,
        overridable: bool = False,
    ) -> StepStatus:
        info = STEPS[number]
        failing = [check for check in checks if not check.ok]
        if state in ("done", "ready") and failing:
            state = "blocked"
        if state == "done":
            summary = _DONE_TEXT[number]
        elif state == "ready":
            summary = _READY_TEXT[number]
        elif state == "running":
            summary = "in progress: " + (failing[0].text if failing else _READY_TEXT[number])
        else:
            summary = "blocked: " + (failing[0].text if failing else "waiting")
        return StepStatus(
            number=number,
            key=info.key,
            title=info.title,
            state=state,
            checks=tuple(checks),
            summary=summary,
            overridable=overridable and state == "blocked",
        )

    def after(self, status: StepStatus) -> Check:
        """A check that an earlier step is done."""
        label = f"step {status.number} ({status.title})"
        if status.state == "done":
            return Check(True, f"{label} is done", status.sources)
        return Check(False, f"{label} is not done, it is {status.state}", status.sources)

    # -- v4 ----------------------------------------------------------------------------------

    @cached_property
    def v4_label(self) -> str:
        return f"v4 {self.s.v4.name or 'cluster'}"

    @cached_property
    def v4_initialized(self) -> Check:
        if (c := self.unknown("v4")) is not None:
            return c
        v4 = self.s.v4
        if not v4.exists:
            return Check(
                False, f"v4 object {v4.name} not found in namespace {v4.namespace}", ("v4",)
            )
        if v4.state == V4_STATE_INITIALIZED:
            return Check(True, f"{self.v4_label} exists and is {V4_STATE_INITIALIZED}", ("v4",))
        return Check(
            False,
            f"{self.v4_label} is {v4.state or 'without a state'!r}, "
            f"expected {V4_STATE_INITIALIZED!r}",
            ("v4",),
        )

    @cached_property
    def v4_object_storage(self) -> Check:
        if (c := self.unknown("v4")) is not None:
            return c
        v4 = self.s.v4
        types = ", ".join(v4.storage_types) or "no storage type"
        if v4.object_storage is None:
            return Check(
                False,
                f"{self.v4_label} stores its repo in {types}: a repo-based standby needs s3 or gcs",
                ("v4",),
            )
        if not v4.bucket:
            return Check(
                False, f"{self.v4_label} uses {v4.object_storage} but names no bucket", ("v4",)
            )
        return Check(True, f"{self.v4_label} archives to {v4.repo_url}", ("v4",))

    @cached_property
    def v4_state_shutdown(self) -> Check:
        if (c := self.unknown("v4")) is not None:
            return c
        v4 = self.s.v4
        if not v4.exists:
            return Check(
                False,
                f"v4 object {v4.name} not found in namespace {v4.namespace}: "
                "its state cannot be read",
                ("v4",),
            )
        if v4.state == V4_STATE_SHUTDOWN:
            return Check(True, f"{self.v4_label} is {V4_STATE_SHUTDOWN}", ("v4",))
        return Check(
            False,
            f"{self.v4_label} is {v4.state or 'without a state'!r}, not {V4_STATE_SHUTDOWN!r}",
            ("v4",),
        )

    @cached_property
    def v4_no_db_pods(self) -> Check:
        if (c := self.unknown("v4")) is not None:
            return c
        pods = sorted(self.s.v4.database_pods, key=lambda p: (not p.is_primary, p.name))
        if pods:
            return Check(False, _pod_sentence("v4", pods), ("v4",))
        return Check(True, "no v4 PostgreSQL pod is left", ("v4",))

    @cached_property
    def v4_db_unreachable(self) -> Check:
        if (c := self.unknown("v4db")) is not None:
            return c
        v4db = self.s.v4db
        if v4db.reachable:
            where = f" at {v4db.current_lsn}" if v4db.current_lsn is not None else ""
            return Check(False, f"v4's database still answers{where}", ("v4db",))
        return Check(
            True, f"v4's database does not answer{_because(v4db.unreachable_reason)}", ("v4db",)
        )

    @cached_property
    def v4_down(self) -> tuple[Check, Check, Check]:
        return (self.v4_state_shutdown, self.v4_no_db_pods, self.v4_db_unreachable)

    @cached_property
    def v4_is_down(self) -> bool:
        return all(check.ok for check in self.v4_down)

    @cached_property
    def v4_finished(self) -> Check | None:
        """A green check when v4 can write no more: down, or deleted after v5's promotion."""
        if self.v4_is_down:
            return Check(
                True,
                "v4 is down: nothing more can be written",
                _union(check.sources for check in self.v4_down),
            )
        gone = (
            self.s.available("v4")
            and not self.s.v4.exists
            and self.v4_no_db_pods.ok
            and self.v4_db_unreachable.ok
            and self.step5_post_ok
        )
        if gone:
            return Check(
                True,
                f"v4 object {self.s.v4.name} is gone and v5 is promoted",
                _union([("v4", "v4db"), *(check.sources for check in self.step5_post)]),
            )
        return None

    @cached_property
    def v4_db_answers(self) -> Check:
        if (c := self.unknown("v4db")) is not None:
            return c
        v4db = self.s.v4db
        if not v4db.reachable:
            return Check(
                False,
                f"v4's database does not answer{_because(v4db.unreachable_reason)}",
                ("v4db",),
            )
        if v4db.in_recovery:
            return Check(False, "v4's database answers but is in recovery", ("v4db",))
        return Check(True, f"v4's primary answers at {v4db.current_lsn}", ("v4db",))

    @cached_property
    def archiver_failures(self) -> Check:
        if (c := self.unknown("v4db")) is not None:
            return c
        v4db = self.s.v4db
        if not v4db.reachable or v4db.archiver is None:
            return Check(
                False, "v4's archiver cannot be read: its database does not answer", ("v4db",)
            )
        arch = v4db.archiver
        if arch.last_failed_time is not None and (
            arch.last_archived_time is None or arch.last_failed_time >= arch.last_archived_time
        ):
            ago = format_duration(self.s.now - arch.last_failed_time)
            return Check(
                False,
                f"v4's archiver is failing: {arch.last_failed_wal} failed {ago} ago "
                f"({arch.failed_count} failures), with no success since",
                ("v4db",),
            )
        return Check(
            True,
            f"v4's archiver succeeds ({arch.archived_count} archived, "
            f"{arch.failed_count} failed, none since the last success)",
            ("v4db",),
        )

    @cached_property
    def archiver_backlog(self) -> Check:
        if (c := self.unknown("v4db")) is not None:
            return c
        v4db = self.s.v4db
        arch = v4db.archiver
        if not v4db.reachable or arch is None or v4db.current_lsn is None:
            return Check(
                False, "v4's archiver cannot be read: its database does not answer", ("v4db",)
            )
        if v4db.timeline is None:
            return Check(False, "v4's timeline is not known", ("v4db",))
        current = WalSegment.containing(v4db.timeline, v4db.current_lsn, self.seg)
        last = _segment_or_none(arch.last_archived_wal, self.seg)
        if last is None:
            backlog = current.segno
            last_text = "nothing yet"
        else:
            backlog = max(0, current.segno - last.segno - 1)
            last_text = last.name
        limit = self.s.thresholds.archive_backlog_segments
        if backlog > limit:
            return Check(
                False,
                f"v4 has {plural(backlog, 'closed segment')} waiting to be archived "
                f"(last archived {last_text}, writing {current.name}; limit {limit})",
                ("v4db",),
            )
        if backlog and arch.last_archived_time is not None:
            age = self.s.now - arch.last_archived_time
            if age > self.s.thresholds.archive_stale_after:
                return Check(
                    False,
                    f"v4's last archive ({last_text}) was {format_duration(age)} ago "
                    f"with {plural(backlog, 'segment')} waiting",
                    ("v4db",),
                )
        return Check(
            True,
            f"v4's archiver keeps up (last archived {last_text}, writing {current.name})",
            ("v4db",),
        )

    # -- repo --------------------------------------------------------------------------------

    @cached_property
    def repo_reachable(self) -> Check:
        if (c := self.unknown("repo")) is not None:
            return c
        repo = self.s.repo
        if not repo.reachable:
            return Check(
                False,
                f"the bucket {repo.url} is not reachable with the credentials"
                f"{_because(repo.unreachable_reason)}",
                ("repo",),
            )
        return Check(True, f"the bucket {repo.url} is reachable", ("repo",))

    @cached_property
    def repo_matches_v4(self) -> Check:
        if (c := self.unknown("v4", "repo")) is not None:
            return c
        expected, actual = self.s.v4.repo_url, self.s.repo.url
        if expected is None:
            return Check(False, f"{self.v4_label} names no object-storage repo", ("v4", "repo"))
        if actual.rstrip("/") != expected:
            return Check(
                False, f"the repo read is {actual}, but v4 archives to {expected}", ("v4", "repo")
            )
        return Check(True, f"the repo read is v4's, {expected}", ("v4", "repo"))

    @cached_property
    def archive_info_present(self) -> Check:
        if (c := self.unknown("repo")) is not None:
            return c
        repo = self.s.repo
        if repo.info_error is not None:
            return Check(False, f"archive.info cannot be read: {repo.info_error}", ("repo",))
        if repo.archive_info is None:
            return Check(False, f"no archive.info for stanza db under {repo.url}", ("repo",))
        info = repo.archive_info
        return Check(
            True,
            f"archive.info for stanza db: system id {info.system_id}, PostgreSQL {info.version}",
            ("repo",),
        )

    @cached_property
    def repo_identity_matches_v4(self) -> tuple[Check, Check]:
        if (c := self.unknown("repo", "v4db")) is not None:
            return c, c
        info = self.s.repo.archive_info
        v4db = self.s.v4db
        src: tuple[SourceName, ...] = ("repo", "v4db")
        if info is None:
            missing = Check(False, "archive.info is missing: nothing to compare with v4", src)
            return missing, missing
        if not v4db.reachable or v4db.system_id is None:
            silent = Check(
                False, "v4's database does not answer: its system id and version are unknown", src
            )
            return silent, silent
        if info.system_id == v4db.system_id:
            sysid = Check(True, f"system id {info.system_id} is the same in v4 and the repo", src)
        else:
            sysid = Check(
                False,
                f"the repo's system id {info.system_id} is not v4's {v4db.system_id}: "
                "the repo belongs to another cluster",
                src,
            )
        if info.version == v4db.pg_major:
            version = Check(True, f"PostgreSQL {info.version} in v4 and in the repo", src)
        else:
            version = Check(
                False,
                f"the repo says PostgreSQL {info.version}, v4 runs {v4db.pg_major or 'unknown'}",
                src,
            )
        return sysid, version

    # -- v5 ----------------------------------------------------------------------------------

    @cached_property
    def v5_label(self) -> str:
        v5 = self.s.v5
        return f"{v5.kind or self.s.flavor.v5.kind} {v5.name or '(unnamed)'}"

    @cached_property
    def v5_crd(self) -> Check:
        if (c := self.unknown("v5")) is not None:
            return c
        crd = self.s.flavor.v5.crd_name
        if self.s.v5.crd_installed is True:
            return Check(True, f"the v5 CRD {crd} is installed", ("v5",))
        if self.s.v5.crd_installed is False:
            return Check(False, f"the v5 CRD {crd} is not installed", ("v5",))
        return Check(False, f"whether the v5 CRD {crd} is installed is not known yet", ("v5",))

    @cached_property
    def v5_exists(self) -> Check:
        if (c := self.unknown("v5")) is not None:
            return c
        v5 = self.s.v5
        if v5.exists:
            return Check(True, f"{self.v5_label} exists in namespace {v5.namespace}", ("v5",))
        return Check(False, f"{self.v5_label} does not exist in namespace {v5.namespace}", ("v5",))

    @cached_property
    def v5_points_at_repo(self) -> Check:
        """v5's standby repo is v4's (or, once v4 is gone, the repo being watched)."""
        v4_known = self.s.available("v4") and self.s.v4.exists
        other: SourceName = "v4" if v4_known else "repo"
        if (c := self.unknown("v5", other)) is not None:
            return c
        src: tuple[SourceName, ...] = ("v5", other)
        expected = self.s.v4.repo_url if v4_known else self.s.repo.url.rstrip("/")
        actual = self.s.v5.repo_url
        repo_name = self.s.v5.standby_repo_name or "repo1"
        if expected is None:
            return Check(False, f"{self.v4_label} names no object-storage repo", src)
        if actual is None:
            return Check(
                False,
                f"{self.v5_label} has no object-storage {repo_name} with a "
                f"{repo_name}-path to read from",
                src,
            )
        if actual != expected:
            whose = "v4 archives to" if v4_known else "the repo watched is"
            return Check(
                False, f"{self.v5_label} {repo_name} reads {actual}, but {whose} {expected}", src
            )
        return Check(True, f"{self.v5_label} {repo_name} reads {actual}, v4's repo", src)

    @cached_property
    def v5_standby_role(self) -> Check:
        """v5 is a standby — or no longer one because v4 is down (the promotion)."""
        if (c := self.unknown("v5")) is not None:
            return c
        v5 = self.s.v5
        if v5.standby_enabled:
            return Check(True, f"{self.v5_label} is a standby (spec.standby.enabled)", ("v5",))
        if self.v4_finished is not None:
            return Check(
                True,
                f"{self.v5_label} is no longer a standby: promoted after v4 went down",
                _union([("v5",), self.v4_finished.sources]),
            )
        return Check(
            False,
            f"{self.v5_label} is not a standby (spec.standby.enabled is false) "
            "while v4 is not proven down",
            ("v5",),
        )

    @cached_property
    def v5_pods_ready(self) -> Check:
        if (c := self.unknown("v5")) is not None:
            return c
        pods = self.s.v5.database_pods
        if not pods:
            return Check(False, f"{self.v5_label} has no PostgreSQL pod yet", ("v5",))
        waiting = [pod for pod in pods if not pod.ready or pod.phase != "Running"]
        if waiting:
            pod = waiting[0]
            state = pod.phase if pod.phase != "Running" else "Running, not ready"
            more = f" (and {len(waiting) - 1} more)" if len(waiting) > 1 else ""
            return Check(False, f"v5 pod {pod.name} is {state}{more}", ("v5",))
        names = ", ".join(pod.name for pod in pods)
        return Check(True, f"v5 PostgreSQL pods ready: {names}", ("v5",))

    @cached_property
    def v5_in_recovery(self) -> Check:
        if (c := self.unknown("v5db")) is not None:
            return c
        v5db = self.s.v5db
        if not v5db.reachable:
            return Check(
                False,
                f"v5's database does not answer{_because(v5db.unreachable_reason)}",
                ("v5db",),
            )
        if v5db.in_recovery:
            return Check(True, f"v5 is in recovery, replayed to {v5db.replay_lsn}", ("v5db",))
        return Check(False, "v5 is out of recovery (no longer a standby)", ("v5db",))

    @cached_property
    def v5_out_of_recovery(self) -> Check:
        if (c := self.unknown("v5db")) is not None:
            return c
        v5db = self.s.v5db
        if not v5db.reachable:
            return Check(
                False,
                f"v5's database does not answer{_because(v5db.unreachable_reason)}",
                ("v5db",),
            )
        if v5db.in_recovery is False:
            return Check(True, f"v5 is out of recovery, writing at {v5db.current_lsn}", ("v5db",))
        return Check(False, f"v5 is still in recovery at {v5db.replay_lsn}", ("v5db",))

    # -- positions ---------------------------------------------------------------------------

    @cached_property
    def lag(self) -> LagReport:
        return lag_from_snapshot(self.s)

    @cached_property
    def v4_newest(self) -> tuple[WalSegment | None, Check | None, tuple[SourceName, ...]]:
        """The repo's newest segment on v4's timeline, or the red check explaining why not."""
        timeline, tl_sources = v4_timeline(self.s)
        sources = _union([("repo",), tl_sources])
        if (c := self.unknown("repo")) is not None:
            return None, c, sources
        if timeline is None:
            return (
                None,
                Check(
                    False,
                    "unknown: v4's timeline (its database does not answer and no last position "
                    "was recorded)",
                    sources,
                ),
                sources,
            )
        newest = newest_segment_on(self.s, timeline)
        if newest is None:
            return (
                None,
                Check(False, f"the repo holds no WAL segment on v4's timeline {timeline}", sources),
                sources,
            )
        return newest, None, sources

    @cached_property
    def repo_quiet(self) -> Check:
        newest, problem, sources = self.v4_newest
        if newest is None:
            assert problem is not None
            return problem
        obj = self.s.repo.newest_on(newest.timeline)
        stored = obj.last_modified if obj is not None else None
        if stored is None:
            return Check(
                False, f"the repo's newest v4 segment {newest.name} has no stored time", sources
            )
        age = self.s.now - stored
        quiet = self.s.thresholds.repo_quiet_seconds
        if age >= quiet:
            return Check(
                True,
                f"the repo stopped growing on timeline {newest.timeline}: newest segment "
                f"{newest.name} stored {format_duration(age)} ago",
                sources,
            )
        return Check(
            False,
            f"the repo is still growing on timeline {newest.timeline}: {newest.name} stored "
            f"{format_duration(max(age, 0))} ago (needs {format_duration(quiet)} of quiet)",
            sources,
        )

    @cached_property
    def v5_replayed_repo(self) -> Check:
        newest, problem, sources = self.v4_newest
        sources = _union([sources, ("v5db",)])
        if (c := self.unknown("v5db")) is not None:
            return Check(False, c.text, sources)
        if newest is None:
            assert problem is not None
            return problem
        v5db = self.s.v5db
        if not v5db.reachable or v5db.replay_lsn is None:
            return Check(
                False, "v5's replay position is not known (its database does not answer)", sources
            )
        end = newest.end
        if v5db.replay_lsn >= end:
            return Check(
                True,
                f"v5 replayed to {v5db.replay_lsn}, the end of the newest v4 segment "
                f"{newest.name} in the repo",
                sources,
            )
        return Check(
            False,
            f"v5 replayed to {v5db.replay_lsn}, the newest v4 segment in the repo ends at "
            f"{end} ({format_bytes(end - v5db.replay_lsn)} behind)",
            sources,
        )

    @cached_property
    def system_ids_match(self) -> Check:
        v4db, seen = self.s.v4db, self.s.marks.v4_last_seen
        v4_src: SourceName
        v4_id: int | None
        if self.s.available("v4db") and v4db.reachable and v4db.system_id is not None:
            v4_id, v4_src = v4db.system_id, "v4db"
        else:
            v4_id, v4_src = (seen.system_id if seen is not None else None), "marks"
        sources: tuple[SourceName, ...] = (v4_src, "repo", "v5db")
        if (c := self.unknown(*sources)) is not None:
            return c
        info, v5_id = self.s.repo.archive_info, self.s.v5db.system_id
        if v4_id is None:
            return Check(False, "unknown: v4's system id was never recorded", sources)
        if info is None:
            return Check(False, "the repo's archive.info is not readable: no system id", sources)
        if v5_id is None:
            return Check(
                False, "v5's system id is not known (its database does not answer)", sources
            )
        if v4_id == info.system_id == v5_id:
            return Check(True, f"system id {v4_id} is the same in v4, the repo and v5", sources)
        return Check(
            False,
            f"system ids differ: v4 {v4_id}, repo {info.system_id}, v5 {v5_id}",
            sources,
        )

    @cached_property
    def v4_last_lsn(self) -> tuple[Lsn | None, int | None, float | None, bool]:
        """v4's last known position, timeline and when it was seen — live while it answers,
        else the marks — and whether it came from the live database."""
        v4db, marks = self.s.v4db, self.s.marks
        best: tuple[Lsn | None, int | None, float | None, bool] = (None, None, None, False)
        if self.s.available("marks") and marks.v4_last_seen is not None:
            seen = marks.v4_last_seen
            best = (seen.lsn, seen.timeline, seen.at, False)
        if (
            self.s.available("v4db")
            and v4db.reachable
            and v4db.current_lsn is not None
            and v4db.timeline is not None
            and (best[0] is None or v4db.current_lsn >= best[0])
        ):
            best = (v4db.current_lsn, v4db.timeline, v4db.observed_at, True)
        return best

    @cached_property
    def v4_last_in_repo(self) -> Check:
        sources: tuple[SourceName, ...] = ("marks", "repo")
        if (c := self.unknown(*sources)) is not None:
            return c
        last, timeline, at, live = self.v4_last_lsn
        if live:
            sources = ("marks", "repo", "v4db")
        if last is None or timeline is None:
            return Check(False, "unknown: v4's last LSN was never recorded", sources)
        newest = newest_segment_on(self.s, timeline)
        seen = f" (seen {format_duration(self.s.now - at)} ago)" if at else ""
        if newest is None:
            return Check(
                False,
                f"v4's last LSN {last}{seen} is on timeline {timeline}, where the repo holds "
                "no segment",
                sources,
            )
        end = newest.end
        if last <= end:
            return Check(
                True,
                f"v4's last LSN {last}{seen} is within the repo, which holds WAL up to {end}",
                sources,
            )
        excess = last - end
        target = self.s.marks.target_lsn
        allowance = self.s.thresholds.frozen_tail_bytes
        if (
            target is not None
            and target <= end
            and excess <= allowance
            and last.segno(self.seg) == end.segno(self.seg)
        ):
            return Check(
                True,
                f"v4's last LSN {last}{seen} is {format_bytes(excess)} past the repo's end {end}: "
                f"background records written after the final switch at {target}, while v4 "
                f"was frozen (allowance {format_bytes(allowance)})",
                sources,
            )
        first, final = end.segno(self.seg), last.pg_walfile_segno(self.seg)
        return Check(
            False,
            f"v4's last LSN {last}{seen} is beyond the repo, which ends at {end}: "
            f"{_segment_range(timeline, first, final, self.seg)} missing from the repo "
            f"({format_bytes(excess)} of v4's WAL)",
            sources,
        )

    # -- steps -------------------------------------------------------------------------------

    @cached_property
    def promotion_requested(self) -> bool:
        return self.s.available("v5") and self.s.v5.exists and self.s.v5.standby_enabled is False

    @cached_property
    def step0(self) -> StepStatus:
        v4 = self.s.v4
        if self.v4_finished is not None:
            note = Check(
                True,
                f"{self.v4_finished.text}; the preflight applied before that",
                self.v4_finished.sources,
            )
            return self.step(0, [note], "done")
        if self.s.available("v4") and v4.exists and (v4.shutdown or v4.state == V4_STATE_SHUTDOWN):
            note = Check(
                True,
                f"{self.v4_label} is being shut down; the preflight applied before that",
                ("v4",),
            )
            return self.step(0, [note], "done")
        sysid, version = self.repo_identity_matches_v4
        checks = [
            self.v4_initialized,
            self.v4_object_storage,
            self.v5_crd,
            self.repo_reachable,
            self.repo_matches_v4,
            self.archive_info_present,
            sysid,
            version,
            self.archiver_failures,
            self.archiver_backlog,
        ]
        return self.step(0, checks, "done")

    @cached_property
    def step1(self) -> StepStatus:
        if self.s.available("v5") and self.s.v5.exists:
            checks = [self.v5_exists, self.v5_points_at_repo, self.v5_standby_role]
            return self.step(1, checks, "done")
        absent = self.unknown("v5") or Check(
            True,
            f"no {self.v5_label} in namespace {self.s.v5.namespace} yet",
            ("v5",),
        )
        checks = [self.after(self.step0), self.v5_crd, absent]
        return self.step(1, checks, "ready")

    @cached_property
    def step2(self) -> StepStatus:
        if self.step5_post_ok or self.promotion_requested:
            return self.step(2, [self.v5_standby_role], "done")
        after = self.after(self.step1)
        checks = [
            after,
            self.v5_pods_ready,
            self.v5_in_recovery,
            self.replay_advancing,
            self.lag_small,
        ]
        if not after.ok:
            return self.step(2, checks, "blocked")
        if all(check.ok for check in checks):
            return self.step(2, checks, "done")
        return self.step(2, checks, "running")

    @cached_property
    def replay_advancing(self) -> Check:
        sources: tuple[SourceName, ...] = ("repo", "v5db")
        if (c := self.unknown(*sources)) is not None:
            return c
        lag = self.lag
        if lag.replay_behind_bytes is None:
            return Check(False, "v5's replay position or the repo's end is not known", sources)
        if lag.replay_behind_bytes == 0:
            return Check(True, f"v5 has replayed all the repo holds ({lag.v5_lsn})", sources)
        rate = self.s.rates.replay_bps
        if rate is None:
            return Check(False, "v5's replay rate is not measured yet", sources)
        if rate > 0:
            return Check(True, f"v5 replay advances at {format_rate(rate)}", sources)
        return Check(
            False,
            f"v5 replay is not advancing: it stays at {lag.v5_lsn} with "
            f"{format_bytes(lag.replay_behind_bytes)} in the repo to replay",
            sources,
        )

    @cached_property
    def lag_small(self) -> Check:
        sources: tuple[SourceName, ...] = ("v4db", "repo", "v5db")
        if (c := self.unknown(*sources)) is not None:
            return c
        lag = self.lag
        limit = self.s.thresholds.catch_up_bytes
        if lag.behind_bytes is None:
            return Check(False, "v5's lag is not known (a position is missing)", sources)
        if lag.v4_lsn is None and self.v4_finished is not None:
            sources = _union([("repo", "v5db"), self.v4_finished.sources])
            if lag.replay_behind_bytes == 0:
                return Check(True, "v4 is down and v5 has replayed all the repo holds", sources)
            return Check(
                False,
                f"v4 is down; v5 still has {format_bytes(lag.behind_bytes)} of the repo to replay",
                sources,
            )
        if lag.v4_lsn is None:
            return Check(False, "v4's position is not known: its database does not answer", sources)
        text = lag.describe()
        if lag.behind_bytes <= limit:
            return Check(True, f"v5 lag: {text} (threshold {format_bytes(limit)})", sources)
        return Check(False, f"v5 lag: {text}, above {format_bytes(limit)}", sources)

    @cached_property
    def target(self) -> tuple[Check, Check]:
        """Is the final switch recorded, and is its segment in the repo?"""
        if (c := self.unknown("marks")) is not None:
            return c, c
        marks = self.s.marks
        if marks.target_lsn is None:
            missing = Check(False, "no final WAL switch is recorded yet", ("marks",))
            return missing, missing
        target = marks.target_lsn
        timeline = marks.target_timeline
        sources: tuple[SourceName, ...] = ("marks", "repo")
        if timeline is None:
            timeline, tl_sources = v4_timeline(self.s)
            sources = _union([sources, tl_sources])
        recorded = Check(True, f"final WAL switch recorded at {target}", ("marks",))
        if (c := self.unknown("repo")) is not None:
            return recorded, c
        if timeline is None:
            return recorded, Check(False, "the final switch's timeline is not known", sources)
        wanted = WalSegment(timeline, target.pg_walfile_segno(self.seg), self.seg)
        newest = newest_segment_on(self.s, timeline)
        if newest is not None and newest.segno >= wanted.segno:
            return recorded, Check(
                True, f"segment {wanted.name} (ending the final switch) is in the repo", sources
            )
        newest_text = newest.name if newest is not None else "none"
        return recorded, Check(
            False,
            f"segment {wanted.name} (ending the final switch) is not in the repo yet "
            f"(newest: {newest_text})",
            sources,
        )

    @cached_property
    def target_archived_by_v4(self) -> Check:
        sources: tuple[SourceName, ...] = ("marks", "v4db")
        if (c := self.unknown(*sources)) is not None:
            return c
        target, v4db = self.s.marks.target_lsn, self.s.v4db
        if target is None:
            return Check(False, "no final WAL switch is recorded yet", sources)
        if not v4db.reachable or v4db.archiver is None or v4db.timeline is None:
            return Check(
                False, "v4's archiver cannot be read: its database does not answer", sources
            )
        wanted = WalSegment(v4db.timeline, target.pg_walfile_segno(self.seg), self.seg)
        last = _segment_or_none(v4db.archiver.last_archived_wal, self.seg)
        if last is not None and last.segno >= wanted.segno:
            return Check(True, f"v4's archiver has pushed {last.name}: no backlog", sources)
        return Check(
            False,
            f"v4's archiver has not pushed {wanted.name} yet "
            f"(last: {last.name if last else 'none'})",
            sources,
        )

    @cached_property
    def v5_past_target(self) -> Check:
        sources: tuple[SourceName, ...] = ("marks", "v5db")
        if (c := self.unknown(*sources)) is not None:
            return c
        target, v5db = self.s.marks.target_lsn, self.s.v5db
        if target is None:
            return Check(False, "no final WAL switch is recorded yet", sources)
        if not v5db.reachable or v5db.replay_lsn is None:
            return Check(False, "v5's replay position is not known", sources)
        if v5db.replay_lsn >= target:
            return Check(
                True,
                f"v5 replayed to {v5db.replay_lsn}, past the final switch at {target}",
                sources,
            )
        return Check(
            False,
            f"v5 replayed to {v5db.replay_lsn}, short of the final switch at {target} "
            f"({format_bytes(target - v5db.replay_lsn)} to go)",
            sources,
        )

    @cached_property
    def v4_read_only(self) -> Check:
        if (c := self.unknown("v4db")) is not None:
            return c
        v4db = self.s.v4db
        if not v4db.reachable or v4db.read_only is None:
            return Check(
                False,
                "whether v4 is read-only is not known (its database does not answer)",
                ("v4db",),
            )
        if v4db.read_only:
            return Check(True, "v4 is frozen: default_transaction_read_only = on", ("v4db",))
        return Check(False, "v4 is writable: default_transaction_read_only = off", ("v4db",))

    @cached_property
    def v4_activity(self) -> Check:
        if (c := self.unknown("v4db")) is not None:
            return c
        v4db = self.s.v4db
        sessions = (
            f"{plural(v4db.client_sessions, 'client session')}"
            if v4db.client_sessions is not None
            else "client sessions unknown"
        )
        return Check(
            True, f"v4 writes {format_rate(self.s.rates.write_bps)}; {sessions}", ("v4db",)
        )

    @cached_property
    def step3(self) -> StepStatus:
        if self.v4_finished is not None:
            recorded, in_repo = self.target
            if recorded.ok:
                return self.step(3, [recorded, in_repo, self.v4_finished], "done")
            if self.unknown("marks") is not None:
                return self.step(3, [recorded], "blocked")
            skipped = Check(
                False,
                "v4 went down without a recorded final WAL switch: the promotion gate decides "
                "what reached the repo",
                ("marks",),
            )
            return self.step(3, [skipped], "blocked")
        frozen = self.s.available("v4db") and self.s.v4db.reachable and self.s.v4db.read_only
        marks_target = self.s.available("marks") and self.s.marks.target_lsn is not None
        v4db_silent = not self.s.available("v4db")
        if frozen or (marks_target and v4db_silent):
            recorded, in_repo = self.target
            checks = [
                self.v4_read_only,
                recorded,
                in_repo,
                self.target_archived_by_v4,
                self.v5_past_target,
            ]
            return self.step(3, checks, "done" if all(c.ok for c in checks) else "running")
        checks = [self.after(self.step2), self.v4_db_answers, self.v4_activity]
        if marks_target:
            checks.append(
                Check(
                    True,
                    f"a final switch at {self.s.marks.target_lsn} was recorded before; "
                    "v4 has been thawed since",
                    ("marks", "v4db"),
                )
            )
        return self.step(3, checks, "ready")

    @cached_property
    def step4(self) -> StepStatus:
        checks = list(self.v4_down)
        if self.v4_is_down:
            return self.step(4, checks, "done")
        if self.v4_finished is not None:
            return self.step(4, [self.v4_finished], "done")
        if self.s.available("v4") and self.s.v4.exists and self.s.v4.shutdown:
            return self.step(4, checks, "running")
        after = self.after(self.step3)
        pre = [after, self.v4_initialized]
        only_step3 = not after.ok and self.v4_initialized.ok and self.step1.state == "done"
        return self.step(4, pre, "ready", overridable=only_step3)

    @cached_property
    def step5_post(self) -> tuple[Check, ...]:
        return (
            self.v5_standby_disabled,
            self.v5_out_of_recovery,
            self.v5_new_timeline,
            self.history_in_repo,
        )

    @cached_property
    def step5_post_ok(self) -> bool:
        return all(check.ok for check in self.step5_post)

    @cached_property
    def v5_standby_disabled(self) -> Check:
        if (c := self.unknown("v5")) is not None:
            return c
        v5 = self.s.v5
        if not v5.exists:
            return Check(False, f"{self.v5_label} does not exist", ("v5",))
        if v5.standby_enabled is False:
            return Check(True, f"{self.v5_label} has spec.standby.enabled: false", ("v5",))
        return Check(False, f"{self.v5_label} is still a standby (spec.standby.enabled)", ("v5",))

    @cached_property
    def v5_new_timeline(self) -> Check:
        v4_tl, tl_sources = v4_timeline(self.s)
        sources = _union([("v5db",), tl_sources if v4_tl is not None else ("repo",)])
        if (c := self.unknown(*sources)) is not None:
            return c
        v5db = self.s.v5db
        if not v5db.reachable or v5db.timeline is None:
            return Check(False, "v5's timeline is not known", sources)
        if v4_tl is not None:
            if v5db.timeline > v4_tl:
                return Check(
                    True, f"v5 is on timeline {v5db.timeline} (v4 was on {v4_tl})", sources
                )
            return Check(False, f"v5 is still on timeline {v5db.timeline}, v4's timeline", sources)
        if v5db.timeline in self.s.repo.history_timelines:
            return Check(
                True, f"v5 is on timeline {v5db.timeline}, created by a promotion", sources
            )
        return Check(
            False, f"v5 is on timeline {v5db.timeline}; v4's timeline is not known", sources
        )

    @cached_property
    def history_in_repo(self) -> Check:
        sources: tuple[SourceName, ...] = ("v5db", "repo")
        if (c := self.unknown(*sources)) is not None:
            return c
        timeline = self.s.v5db.timeline
        if timeline is None:
            return Check(False, "v5's timeline is not known", sources)
        name = f"{timeline:08X}.history"
        if timeline in self.s.repo.history_timelines:
            return Check(True, f"{name} is in the repo", sources)
        return Check(False, f"{name} is not in the repo yet", sources)

    @cached_property
    def v5_is_standby(self) -> Check:
        if (c := self.unknown("v5")) is not None:
            return c
        if self.s.v5.exists and self.s.v5.standby_enabled:
            return Check(True, f"{self.v5_label} is a standby, ready to promote", ("v5",))
        if not self.s.v5.exists:
            return Check(False, f"{self.v5_label} does not exist", ("v5",))
        return Check(False, f"{self.v5_label} is not a standby", ("v5",))

    @cached_property
    def step5(self) -> StepStatus:
        post = list(self.step5_post)
        if self.step5_post_ok:
            return self.step(5, post, "done")
        if self.promotion_requested:
            return self.step(5, post, "running")
        gate = [
            *self.v4_down,
            self.repo_quiet,
            self.v5_replayed_repo,
            self.system_ids_match,
            self.v4_last_in_repo,
            self.v5_is_standby,
            self.v5_in_recovery,
        ]
        return self.step(5, gate, "ready")

    @cached_property
    def superuser(self) -> Check:
        if (c := self.unknown("v5db")) is not None:
            return c
        v5db = self.s.v5db
        if not v5db.reachable:
            return Check(False, "v5's database does not answer", ("v5db",))
        if v5db.is_superuser:
            return Check(True, "the v5 connection is a superuser's", ("v5db",))
        if v5db.is_superuser is None:
            return Check(False, "whether the v5 connection is a superuser is not known", ("v5db",))
        return Check(False, "the v5 connection is not a superuser: the grants need one", ("v5db",))

    @cached_property
    def grants(self) -> Check:
        if (c := self.unknown("v5db")) is not None:
            return c
        role = self.s.flavor.replication_role
        verified = self.s.v5db.grants_verified if self.s.v5db.reachable else None
        if verified:
            return Check(True, f"role {role} exists with EXECUTE on the 4 functions", ("v5db",))
        if verified is None:
            return Check(False, f"the grants to {role} are not verified yet", ("v5db",))
        functions = ", ".join(sorted({f.split(".")[-1].split("(")[0] for f in GRANTED_FUNCTIONS}))
        return Check(False, f"role {role} is missing or lacks EXECUTE on {functions}", ("v5db",))

    @cached_property
    def step6(self) -> StepStatus:
        if self.grants.ok:
            return self.step(6, [self.grants], "done")
        grants = self.grants
        if self.unknown("v5db") is None and self.s.v5db.reachable:
            grants = Check(True, f"to do: {grants.text}", grants.sources)
        checks = [self.after(self.step5), self.superuser, grants]
        return self.step(6, checks, "ready")

    @cached_property
    def no_v4_schedules(self) -> Check:
        if (c := self.unknown("v4")) is not None:
            return c
        schedules = self.s.v4.backup_schedules
        if schedules:
            more = f" and {len(schedules) - 1} more" if len(schedules) > 1 else ""
            return Check(
                False,
                f"v4 backup schedule {schedules[0]}{more} still exists and could write "
                "into the shared repo",
                ("v4",),
            )
        return Check(True, "no v4 backup schedule is left", ("v4",))

    @cached_property
    def step7(self) -> StepStatus:
        v4_known = self.s.available("v4")
        if v4_known and not self.s.v4.exists and self.step5.state == "done":
            gone = Check(True, f"v4 object {self.s.v4.name} is gone", ("v4",))
            return self.step(7, [gone, self.after(self.step5)], "done")
        checks = [
            self.after(self.step5),
            self.v5_out_of_recovery,
            self.v5_pods_ready,
            self.after(self.step6),
            self.no_v4_schedules,
        ]
        if v4_known and self.s.v4.exists and self.s.v4.deleting:
            deleting = Check(False, f"v4 object {self.s.v4.name} is being deleted", ("v4",))
            return self.step(7, [*checks, deleting], "running")
        if v4_known and not self.s.v4.exists:
            checks.append(Check(False, f"v4 object {self.s.v4.name} is already gone", ("v4",)))
        else:
            checks.append(
                self.unknown("v4") or Check(True, f"{self.v4_label} is there to delete", ("v4",))
            )
        return self.step(7, checks, "ready")

    def all_steps(self) -> tuple[StepStatus, ...]:
        return (
            self.step0,
            self.step1,
            self.step2,
            self.step3,
            self.step4,
            self.step5,
            self.step6,
            self.step7,
        )


def _segment_or_none(name: str | None, segment_size: int) -> WalSegment | None:
    """The segment a ``pg_stat_archiver`` file name refers to (``.partial``/``.backup``
    suffixes ignored; ``.history`` and junk give ``None``)."""
    if not name or len(name) < 24:
        return None
    try:
        return WalSegment.parse(name[:24], segment_size)
    except ValueError:
        return None


def evaluate(snapshot: Snapshot) -> tuple[StepStatus, ...]:
    """The state of steps 0–7 for ``snapshot``."""
    return _Eval(snapshot).all_steps()


def alarms(snapshot: Snapshot) -> tuple[Alarm, ...]:
    """Conditions to show at once: split-brain risks, and v4 restarted after promotion."""
    s = snapshot
    found: list[Alarm] = []
    v5_promoted = (s.available("v5") and s.v5.exists and s.v5.standby_enabled is False) or (
        s.available("v5db") and s.v5db.reachable and s.v5db.in_recovery is False
    )
    v4_pods = s.v4.database_pods if s.available("v4") else ()
    if v5_promoted and v4_pods:
        found.append(
            Alarm(
                "split-brain-pod",
                "Split-brain risk",
                _pod_sentence("v4", v4_pods) + " after v5 was promoted: two writers on one repo",
            )
        )
    v4_primary = (
        s.available("v4db")
        and s.v4db.reachable
        and s.v4db.in_recovery is not True
        and s.v4db.current_lsn is not None
    )
    v5_primary = s.available("v5db") and s.v5db.reachable and s.v5db.in_recovery is False
    if v4_primary and v5_primary:
        found.append(
            Alarm(
                "split-brain-primaries",
                "Split-brain",
                f"v4 ({s.v4db.current_lsn}, timeline {s.v4db.timeline}) and v5 "
                f"({s.v5db.current_lsn}, timeline {s.v5db.timeline}) are both out of recovery",
            )
        )
    if v5_promoted and s.available("v4") and s.v4.exists and not s.v4.shutdown:
        found.append(
            Alarm(
                "v4-restarted",
                "v4 restarted after promotion",
                f"v4 {s.v4.name} has spec.shutdown: false after v5 was promoted: it would "
                "archive into the same repo on its old timeline",
            )
        )
    return tuple(found)


def check_v4_restart(snapshot: Snapshot) -> Check:
    """May v4 be started again (``spec.shutdown: false``, the undo of step 4)?

    Only while v5 is provably still a standby: after promotion two writers would share the repo.
    """
    e = _Eval(snapshot)
    if (c := e.unknown("v5", "v5db")) is not None:
        return c
    v5, v5db = snapshot.v5, snapshot.v5db
    sources: tuple[SourceName, ...] = ("v5", "v5db")
    if v5.exists and v5.standby_enabled is False:
        return Check(False, f"{e.v5_label} has been promoted: v4 must stay shut down", sources)
    if v5db.reachable and v5db.in_recovery is False:
        return Check(False, "v5 is out of recovery: v4 must stay shut down", sources)
    if v5.exists and not v5db.reachable:
        return Check(
            False, "v5's database does not answer: cannot prove it is still a standby", sources
        )
    return Check(True, "v5 is still a standby: v4 may be started again", sources)
