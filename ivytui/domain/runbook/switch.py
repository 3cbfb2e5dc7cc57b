"""The freeze and the final WAL switch (step 3): what the marks recorded, whether the switch's
segment reached the repo and v5, whether the freeze still holds, and whether anything
committed on v4 after the switch.

A byte count cannot tell an idle primary's background records (a running-xacts record is 96
bytes) from a one-row commit (104 bytes). v4's transaction id horizon can: it moves only when a
transaction that wrote ends, so an unchanged horizon proves that nothing committed.
"""

from __future__ import annotations

from functools import cached_property

from ivytui.domain.human import format_bytes, plural
from ivytui.domain.lag import newest_segment_on, v4_timeline
from ivytui.domain.model import SourceName
from ivytui.domain.runbook.catchup import CatchUpFacts
from ivytui.domain.runbook.checks import Check, segment_or_none, union
from ivytui.domain.walname import WalSegment


class SwitchFacts(CatchUpFacts):
    """The final switch recorded in the marks, and what became of it."""

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
            sources = union([sources, tl_sources])
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
        last = segment_or_none(v4db.archiver.last_archived_wal, self.seg)
        if last is not None and last.segno >= wanted.segno:
            return Check(True, f"v4's archiver has pushed {last.name}: no backlog", sources)
        newest = newest_segment_on(self.s, wanted.timeline) if self.s.available("repo") else None
        if newest is not None and newest.segno >= wanted.segno:
            # The repo is what counts; the statistics start again empty after a crash restart.
            return Check(
                True,
                f"the repo holds {wanted.name}, although v4's archiver statistics show "
                f"{last.name if last else 'nothing archived'} (reset by a restart)",
                (*sources, "repo"),
            )
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
    def v4_seen_horizon(self) -> tuple[int | None, tuple[SourceName, ...]]:
        """The highest transaction id horizon seen on v4 — live while it answers, and the one
        the marks kept from its last answer — with the sources it comes from."""
        values: list[int] = []
        sources: list[SourceName] = []
        seen = self.s.marks.v4_last_seen
        if self.s.available("marks") and seen is not None and seen.xid_horizon is not None:
            values.append(seen.xid_horizon)
            sources.append("marks")
        v4db = self.s.v4db
        if self.s.available("v4db") and v4db.reachable and v4db.xid_horizon is not None:
            values.append(v4db.xid_horizon)
            sources.append("v4db")
        return (max(values) if values else None), tuple(sources)

    @cached_property
    def commit_after_switch(self) -> Check | None:
        """While v4 answers: did a transaction commit after the final switch? ``None`` when
        there is nothing to compare (no switch, or a horizon not known)."""
        sources: tuple[SourceName, ...] = ("marks", "v4db")
        if self.unknown(*sources) is not None:
            return None
        marks, v4db = self.s.marks, self.s.v4db
        at, now = marks.target_xid_horizon, v4db.xid_horizon
        if marks.target_lsn is None or at is None or not v4db.reachable or now is None:
            return None
        if now > at:
            return Check(
                False,
                f"a transaction committed on v4 after the final switch (xid horizon {at} → "
                f"{now}): switch again",
                sources,
            )
        if now < at:
            return Check(
                False,
                f"v4's xid horizon {now} is below the {at} recorded at the final switch: "
                "switch again to record this server's",
                sources,
            )
        return Check(
            True,
            f"no transaction committed on v4 after the final switch at {marks.target_lsn} "
            f"(xid horizon {at} unchanged)",
            sources,
        )

    @cached_property
    def freeze_holds(self) -> Check:
        """The roles the freeze blocked are still blocked (connection limit 0)."""
        sources: tuple[SourceName, ...] = ("marks", "v4db")
        if (c := self.unknown(*sources)) is not None:
            return c
        v4db = self.s.v4db
        if not v4db.reachable:
            return Check(
                False,
                "whether the freeze still keeps new sessions out is not known "
                "(v4's database does not answer)",
                sources,
            )
        roles = [role for role, _ in self.s.marks.frozen_roles]
        if not roles:
            return Check(True, "the freeze blocked no role (none recorded in the marks)", sources)
        loose = [role for role in roles if role not in v4db.blocked_roles]
        if loose:
            names = ", ".join(loose)
            which = f"role {names} is" if len(loose) == 1 else f"roles {names} are"
            return Check(
                False,
                f"the freeze no longer holds: {which} not blocked (connection limit not 0) "
                "and new sessions can write: freeze again",
                sources,
            )
        return Check(
            True,
            f"the freeze holds: {plural(len(roles), 'role')} blocked with connection limit 0 "
            f"({', '.join(roles)})",
            sources,
        )
