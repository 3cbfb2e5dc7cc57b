"""Catch-up facts (step 2): is v5's replay advancing, and is its lag small?

A standby fed from the repo replays in bursts: it fetches a segment once the segment is whole
in the repo, replays it, and tries for the next one every ``wal_retrieve_retry_interval``. Its
replay position stands still between two fetches, and the lag jumps by a segment each time
one lands in the repo. These checks judge that rhythm over a window, so that step 2 does not
flip between done and running on every segment:

- replay is advancing when v5 has replayed all the repo holds, or when its replay position
  moved within ``replay_window_seconds`` (``Rates.replay_moved_at``);
- replay is advancing too when all v5 lacks is the repo's newest segment, stored within that
  window: after a quiet spell (an idle primary) v5 has had no fair chance to fetch it yet;
- while replay advances, the lag is judged without the WAL in transit: that fresh newest
  segment (v5 fetches it on its next try) and the closed segments v4's archiver may still be
  pushing (``archive_backlog_segments``, 1 by default). That much and no more: a v5 that
  falls further behind still turns the check red.
"""

from __future__ import annotations

from functools import cached_property

from ivytui.domain.human import format_bytes, format_duration, plural
from ivytui.domain.lag import LagReport, lag_from_snapshot
from ivytui.domain.model import SourceName
from ivytui.domain.runbook.checks import Check, union
from ivytui.domain.runbook.v5 import V5Facts
from ivytui.domain.walname import WalSegment


class CatchUpFacts(V5Facts):
    """How far behind v5 is, and whether it keeps pace."""

    @cached_property
    def lag(self) -> LagReport:
        return lag_from_snapshot(self.s)

    @cached_property
    def replay_last_moved(self) -> str:
        """``last moved 3 s ago`` / ``has not been seen to move yet``."""
        moved = self.s.rates.replay_moved_at
        if moved is None:
            return "has not been seen to move yet"
        return f"last moved {format_duration(max(0.0, self.s.now - moved))} ago"

    @cached_property
    def replay_moved_recently(self) -> bool:
        moved = self.s.rates.replay_moved_at
        window = self.s.thresholds.replay_window_seconds
        return moved is not None and self.s.now - moved <= window

    @cached_property
    def replay_advancing(self) -> Check:
        sources: tuple[SourceName, ...] = ("repo", "v5db")
        if (c := self.unknown(*sources)) is not None:
            return c
        lag = self.lag
        if lag.replay_behind_bytes is None:
            return Check(False, "v5's replay position or the repo's end is not known", sources)
        if lag.replay_behind_bytes == 0:
            return Check(
                True,
                f"v5 has replayed all the repo holds ({lag.v5_lsn}); its replay "
                f"{self.replay_last_moved}",
                sources,
            )
        to_replay = f"{format_bytes(lag.replay_behind_bytes)} in the repo to replay"
        if self.replay_moved_recently:
            return Check(
                True,
                f"v5 replay advances: it {self.replay_last_moved}, to {lag.v5_lsn} ({to_replay})",
                sources,
            )
        fresh = self.fresh_newest
        if fresh is not None and lag.v5_lsn is not None and lag.v5_lsn >= fresh[0].start:
            return Check(
                True,
                f"v5 replayed all the repo held before {fresh[0].name}, stored "
                f"{format_duration(fresh[1])} ago; its replay {self.replay_last_moved}",
                sources,
            )
        window = format_duration(self.s.thresholds.replay_window_seconds)
        return Check(
            False,
            f"v5 replay is not advancing: it stays at {lag.v5_lsn} with {to_replay}; "
            f"it {self.replay_last_moved} (window {window})",
            sources,
        )

    @cached_property
    def fresh_newest(self) -> tuple[WalSegment, float] | None:
        """The repo's newest segment on v4's timeline and its age, while it is younger than
        ``replay_window_seconds``: v5 has had no fair chance to fetch it yet."""
        newest, _, _ = self.v4_newest
        if newest is None:
            return None
        obj = self.s.repo.newest_on(newest.timeline)
        if obj is None or obj.last_modified is None:
            return None
        age = max(0.0, self.s.now - obj.last_modified)
        return (newest, age) if age < self.s.thresholds.replay_window_seconds else None

    @cached_property
    def in_transit(self) -> tuple[int, tuple[str, ...]]:
        """WAL on its way to v5 that it has had no fair chance to replay yet, in bytes, with
        the words for it: the repo's newest segment while it is fresh, and the closed segments
        v4's archiver is allowed to be pushing."""
        lag, th = self.lag, self.s.thresholds
        if lag.v5_lsn is None or lag.repo_end is None:
            return 0, ()
        total, words = 0, []
        fresh = self.fresh_newest
        if fresh is not None and lag.v5_lsn < fresh[0].end:
            newest, age = fresh
            total += newest.end - max(lag.v5_lsn, newest.start)
            words.append(f"{newest.name} stored {format_duration(age)} ago")
        backlog = lag.archive_backlog_bytes or 0
        allowed = min(backlog, th.archive_backlog_segments * self.seg)
        if allowed > 0:
            total += allowed
            count = -(-allowed // self.seg)
            words.append(f"{plural(count, 'closed segment')} v4 is archiving")
        return total, tuple(words)

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
            sources = union([("repo", "v5db"), self.v4_finished.sources])
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
        moving, words = self.in_transit if self.replay_advancing.ok else (0, ())
        if moving:
            text += f", {format_bytes(moving)} of it in transit ({'; '.join(words)})"
        if lag.behind_bytes - moving <= limit:
            return Check(True, f"v5 lag: {text} (threshold {format_bytes(limit)})", sources)
        return Check(False, f"v5 lag: {text}, above {format_bytes(limit)}", sources)
