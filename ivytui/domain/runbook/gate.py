"""The promotion gate (step 5): v4 proven down, the repo quiet, v5 replayed to its end, one
system id everywhere, and nothing of v4's beyond what the repo holds."""

from __future__ import annotations

from functools import cached_property

from ivytui.domain.human import format_bytes, format_duration
from ivytui.domain.lag import newest_segment_on
from ivytui.domain.lsn import Lsn
from ivytui.domain.model import SourceName
from ivytui.domain.runbook.checks import Check, segment_range, union
from ivytui.domain.runbook.switch import SwitchFacts


class GateFacts(SwitchFacts):
    """What must hold before v5 may be promoted."""

    @cached_property
    def gate(self) -> tuple[Check, ...]:
        return (
            *self.v4_down,
            self.repo_quiet,
            self.v5_replayed_repo,
            self.system_ids_match,
            self.v4_last_in_repo,
            self.v5_is_standby,
            self.v5_in_recovery,
        )

    @cached_property
    def v5_replayed_repo(self) -> Check:
        newest, problem, sources = self.v4_newest
        sources = union([sources, ("v5db",)])
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
        first, final = end.segno(self.seg), last.pg_walfile_segno(self.seg)
        marks = self.s.marks
        target = marks.target_lsn
        switched_within = (
            target is not None
            and target <= end
            and marks.target_timeline in (None, timeline)
            and last.segno(self.seg) == end.segno(self.seg)
        )
        if not switched_within:
            return Check(
                False,
                f"v4's last LSN {last}{seen} is beyond the repo, which ends at {end}: "
                f"{segment_range(timeline, first, final, self.seg)} missing from the repo "
                f"({format_bytes(excess)} of v4's WAL)",
                sources,
            )
        return self.tail_after_switch(last, end, sources)

    def tail_after_switch(self, last: Lsn, end: Lsn, sources: tuple[SourceName, ...]) -> Check:
        """v4's last LSN stands past the repo's end, in the segment after the final switch:
        only background records may be there, and only the xid horizon can prove it."""
        target, at = self.s.marks.target_lsn, self.s.marks.target_xid_horizon
        horizon, horizon_sources = self.v4_seen_horizon
        sources = union([sources, horizon_sources])
        at_time = self.v4_last_lsn[2]
        seen = f", seen {format_duration(self.s.now - at_time)} ago" if at_time else ""
        past = f"{format_bytes(last - end)} past the repo's end {end}"
        where = f"v4's last LSN {last}{seen}"
        if at is None or horizon is None:
            why = (
                "v4's xid horizon at the switch was not recorded"
                if at is None
                else "v4's xid horizon was not seen after the switch"
            )
            return Check(
                False,
                f"whether a transaction committed on v4 after the final switch at {target} is "
                f"unknown: {why}; the {past} may hold one ({where})",
                sources,
            )
        if horizon > at:
            return Check(
                False,
                f"a transaction committed on v4 after the final switch (xid horizon {at} → "
                f"{horizon}): its WAL is not in the repo ({past}: {where})",
                sources,
            )
        if horizon < at:
            return Check(
                False,
                f"v4's last xid horizon {horizon} is below the {at} recorded at the final switch "
                f"at {target}: no proof that nothing committed after it ({past}: {where})",
                sources,
            )
        return Check(
            True,
            f"no transaction committed after the final switch at {target}: xid horizon {at} "
            f"unchanged; the {past} are background records ({where})",
            sources,
        )
