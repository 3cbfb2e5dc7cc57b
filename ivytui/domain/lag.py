"""How far v5 is behind v4, measured in WAL bytes along the path the WAL travels.

Three positions: v4's current LSN, the end of the newest segment the repo holds on v4's
timeline, and v5's replay LSN. WAL leaves v4 one whole segment at a time, so the bytes in v4's
open (unfinished) segment cannot be in the repo yet: they are reported apart, as
``pending_open_bytes``, and are not lag. An idle primary can sit a few bytes into a segment
for ever; v5 is *caught up* when it has replayed all the repo holds and v4 has nothing closed
that the repo lacks.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ivytui.domain.human import format_bytes, format_duration, format_rate, plural
from ivytui.domain.lsn import DEFAULT_SEGMENT_SIZE, Lsn, LsnError
from ivytui.domain.model import Snapshot, SourceName
from ivytui.domain.walname import WalSegment


@dataclass(frozen=True, slots=True)
class RateWindow:
    """Recent ``(time, position)`` samples, bounded, giving bytes per second.

    Immutable: :meth:`add` returns a new window. A position that goes backwards (a different
    server, a reset counter) starts the window afresh.
    """

    max_samples: int = 30
    max_age: float = 60.0
    samples: tuple[tuple[float, int], ...] = ()

    def add(self, at: float, position: int) -> RateWindow:
        samples = self.samples
        if samples and (position < samples[-1][1] or at < samples[-1][0]):
            samples = ()
        if samples and at == samples[-1][0]:
            samples = samples[:-1]
        samples = (*samples, (at, int(position)))
        recent = tuple(s for s in samples if at - s[0] <= self.max_age)
        if len(recent) < 2:
            recent = samples[-2:]
        return replace(self, samples=recent[-self.max_samples :])

    def rate(self) -> float | None:
        """Bytes per second over the window; ``None`` until two samples are in."""
        if len(self.samples) < 2:
            return None
        (t0, p0), (t1, p1) = self.samples[0], self.samples[-1]
        if t1 <= t0:
            return None
        return (p1 - p0) / (t1 - t0)

    @property
    def latest(self) -> tuple[float, int] | None:
        return self.samples[-1] if self.samples else None


@dataclass(frozen=True, slots=True)
class LagHistory:
    """The last ``max_points`` lag values, for a sparkline."""

    max_points: int = 120
    points: tuple[tuple[float, int], ...] = ()

    def add(self, at: float, lag_bytes: int) -> LagHistory:
        return replace(self, points=(*self.points, (at, lag_bytes))[-self.max_points :])

    def values(self) -> tuple[int, ...]:
        return tuple(value for _, value in self.points)


@dataclass(frozen=True, slots=True, kw_only=True)
class LagReport:
    """The lag between v4, the repo and v5. Byte counts are never negative; ``None`` means
    unknown (a position is missing)."""

    v4_lsn: Lsn | None
    repo_end: Lsn | None
    v5_lsn: Lsn | None
    segment_size: int = DEFAULT_SEGMENT_SIZE
    archive_backlog_bytes: int | None = None
    """Closed segments on v4 that the repo does not hold yet."""
    pending_open_bytes: int | None = None
    """Bytes in v4's open segment: not archivable until the segment closes; not lag."""
    replay_behind_bytes: int | None = None
    """WAL the repo holds that v5 has not replayed yet."""
    behind_bytes: int | None = None
    """The lag: ``archive_backlog_bytes`` (when v4 is known) + ``replay_behind_bytes``."""
    total_bytes: int | None = None
    """``v4_lsn - v5_lsn``, open segment included."""
    segments_behind: int | None = None
    caught_up: bool | None = None
    eta_seconds: float | None = None
    """Time to close ``behind_bytes`` at the recent rates (``None``: unknown or not closing)."""
    write_bps: float | None = None
    archive_bps: float | None = None
    replay_bps: float | None = None

    @property
    def v4_to_repo_bytes(self) -> int | None:
        if self.archive_backlog_bytes is None or self.pending_open_bytes is None:
            return None
        return self.archive_backlog_bytes + self.pending_open_bytes

    def describe(self) -> str:
        """One line: ``caught up (96 B pending in v4's open segment)`` or
        ``48.0 MiB behind (3 segments), about 2 m 05 s at 1.2 MiB/s``."""
        if self.behind_bytes is None:
            return "lag unknown"
        pending = ""
        if self.pending_open_bytes:
            pending = f" ({format_bytes(self.pending_open_bytes)} pending in v4's open segment)"
        if self.caught_up:
            return f"caught up{pending}"
        segments = plural(self.segments_behind or 0, "segment")
        text = f"{format_bytes(self.behind_bytes)} behind ({segments})"
        if self.eta_seconds is not None:
            text += f", about {format_duration(self.eta_seconds)}"
            text += f" at {format_rate(self.replay_bps)}"
        elif self.replay_bps is not None:
            text += f", not closing (replay {format_rate(self.replay_bps)}"
            text += f", writes {format_rate(self.write_bps)})"
        return text + pending


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def lag_report(
    v4_lsn: Lsn | None,
    repo_end: Lsn | None,
    v5_lsn: Lsn | None,
    *,
    segment_size: int = DEFAULT_SEGMENT_SIZE,
    write_bps: float | None = None,
    archive_bps: float | None = None,
    replay_bps: float | None = None,
) -> LagReport:
    """The lag from three positions (any may be ``None`` when unknown).

    ``repo_end`` is the end of the newest segment the repo holds on v4's timeline.
    """
    backlog = pending = replay_behind = behind = total = segments = None
    caught_up = None
    if v4_lsn is not None and repo_end is not None:
        open_start = v4_lsn.segment_start(segment_size)
        backlog = max(0, open_start - repo_end)
        pending = max(0, v4_lsn - max(open_start, repo_end))
    if repo_end is not None and v5_lsn is not None:
        replay_behind = max(0, repo_end - v5_lsn)
        behind = replay_behind + (backlog or 0)
        segments = _ceil_div(replay_behind, segment_size) + (backlog or 0) // segment_size
        caught_up = replay_behind == 0 and not backlog
    if v4_lsn is not None and v5_lsn is not None:
        total = max(0, v4_lsn - v5_lsn)
    eta = None
    if behind == 0:
        eta = 0.0
    elif behind is not None and replay_bps is not None:
        closing = replay_bps - (write_bps or 0.0)
        if closing > 0:
            eta = behind / closing
    return LagReport(
        v4_lsn=v4_lsn,
        repo_end=repo_end,
        v5_lsn=v5_lsn,
        segment_size=segment_size,
        archive_backlog_bytes=backlog,
        pending_open_bytes=pending,
        replay_behind_bytes=replay_behind,
        behind_bytes=behind,
        total_bytes=total,
        segments_behind=segments,
        caught_up=caught_up,
        eta_seconds=eta,
        write_bps=write_bps,
        archive_bps=archive_bps,
        replay_bps=replay_bps,
    )


def v4_timeline(snapshot: Snapshot) -> tuple[int | None, tuple[SourceName, ...]]:
    """v4's timeline and the source it comes from: its database while it answers, else the
    marks (v4's last seen position)."""
    v4db = snapshot.v4db
    if snapshot.available("v4db") and v4db.reachable and v4db.timeline is not None:
        return v4db.timeline, ("v4db",)
    seen = snapshot.marks.v4_last_seen
    if snapshot.available("marks") and seen is not None:
        return seen.timeline, ("marks",)
    return None, ("v4db", "marks")


def newest_segment_on(snapshot: Snapshot, timeline: int) -> WalSegment | None:
    """The newest segment the repo holds on ``timeline`` (``None`` if none or unreadable)."""
    newest = snapshot.repo.newest_on(timeline)
    if newest is None:
        return None
    try:
        return newest.segment(snapshot.segment_size)
    except LsnError:
        return None


def lag_from_snapshot(snapshot: Snapshot) -> LagReport:
    """:func:`lag_report` for the positions in a snapshot; sources that cannot be trusted
    contribute ``None``. After promotion v5 has no replay position to compare."""
    seg = snapshot.segment_size
    v4db, v5db = snapshot.v4db, snapshot.v5db
    v4_lsn = None
    if snapshot.available("v4db") and v4db.reachable:
        v4_lsn = v4db.current_lsn
    repo_end = None
    timeline, _ = v4_timeline(snapshot)
    if timeline is not None and snapshot.available("repo"):
        newest = newest_segment_on(snapshot, timeline)
        repo_end = newest.end if newest is not None else None
    v5_lsn = None
    if snapshot.available("v5db") and v5db.reachable and v5db.in_recovery:
        v5_lsn = v5db.replay_lsn
    rates = snapshot.rates
    return lag_report(
        v4_lsn,
        repo_end,
        v5_lsn,
        segment_size=seg,
        write_bps=rates.write_bps,
        archive_bps=rates.archive_bps,
        replay_bps=rates.replay_bps,
    )
