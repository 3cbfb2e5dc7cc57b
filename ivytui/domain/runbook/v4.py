"""Facts read from v4: its ``Pgcluster`` object and pods, and its database."""

from __future__ import annotations

from functools import cached_property

from ivytui.domain.flavor import V4_STATE_INITIALIZED, V4_STATE_SHUTDOWN
from ivytui.domain.human import format_duration, format_rate, plural
from ivytui.domain.runbook.checks import (
    Check,
    Facts,
    because,
    pod_sentence,
    segment_or_none,
)
from ivytui.domain.walname import WalSegment


class V4Facts(Facts):
    """What v4's object, pods and database show."""

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
            return Check(False, pod_sentence("v4", pods), ("v4",))
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
            True, f"v4's database does not answer{because(v4db.unreachable_reason)}", ("v4db",)
        )

    @cached_property
    def v4_down(self) -> tuple[Check, Check, Check]:
        return (self.v4_state_shutdown, self.v4_no_db_pods, self.v4_db_unreachable)

    @cached_property
    def v4_is_down(self) -> bool:
        return all(check.ok for check in self.v4_down)

    @cached_property
    def v4_db_answers(self) -> Check:
        if (c := self.unknown("v4db")) is not None:
            return c
        v4db = self.s.v4db
        if not v4db.reachable:
            return Check(
                False,
                f"v4's database does not answer{because(v4db.unreachable_reason)}",
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
        last = segment_or_none(arch.last_archived_wal, self.seg)
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
