"""The LSN ruler: v4's position → the end of the repo → v5's replay, and the lag between."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from textual.containers import Horizontal, Vertical
from textual.widget import Widget
from textual.widgets import Sparkline

from ivytui.domain.human import format_bytes, format_duration
from ivytui.domain.lag import LagReport, newest_segment_on, v4_timeline
from ivytui.domain.model import Snapshot
from ivytui.tui.protocols import HubViewLike
from ivytui.tui.text import muted, value, warn
from ivytui.tui.widgets import Line

ARROW = "[$text-muted]━━▶[/]"


def _newest_v4_segment(snap: Snapshot) -> str | None:
    """The newest segment the repo holds on v4's timeline."""
    timeline, _ = v4_timeline(snap)
    if timeline is None:
        return None
    seg = newest_segment_on(snap, timeline)
    return seg.name if seg is not None else None


def ruler_texts(view: HubViewLike) -> tuple[str, str, str, str]:
    """Markup for the three positions and the summary line."""
    lag, snap = view.lag, view.snapshot
    v4 = f"[b]v4[/] {value(lag.v4_lsn)} "
    if lag.archive_backlog_bytes is not None:
        hop = f"{format_bytes(lag.archive_backlog_bytes)} to archive"
        v4 += (warn(hop) if lag.archive_backlog_bytes else muted(hop)) + " "
    v4 += ARROW
    newest = _newest_v4_segment(snap)
    repo = f"[b]repo[/] {value(lag.repo_end)} "
    if newest is not None and lag.repo_end is not None:
        repo += muted(f"(…{newest[-8:]}) ")
    if lag.replay_behind_bytes is not None:
        hop = f"{format_bytes(lag.replay_behind_bytes)} to replay"
        repo += (warn(hop) if lag.replay_behind_bytes else muted(hop)) + " "
    repo += ARROW
    v5 = f"[b]v5[/] {value(lag.v5_lsn)}"
    if snap.v5db.reachable and snap.v5db.in_recovery is False:
        v5 += " " + muted("(promoted: no replay position)")
    return v4, repo, v5, summary_text(lag)


def summary_text(lag: LagReport) -> str:
    """``lag 48.0 MiB · 3 segments · ETA 2 m 05 s`` or ``caught up``, and the open segment."""
    if lag.behind_bytes is None:
        missing = [
            name
            for name, pos in (("v4", lag.v4_lsn), ("repo", lag.repo_end), ("v5", lag.v5_lsn))
            if pos is None
        ]
        text = "lag unknown" + (f": no position from {', '.join(missing)}" if missing else "")
        return muted(text)
    if lag.caught_up:
        text = "[$success]caught up[/] · lag 0 B · 0 segments"
    else:
        eta = (
            f"ETA {format_duration(lag.eta_seconds)}"
            if lag.eta_seconds is not None
            else "ETA — (not closing)"
        )
        text = (
            f"[$warning]lag {format_bytes(lag.behind_bytes)}[/] · "
            f"{lag.segments_behind} segments · {eta}"
        )
    if lag.pending_open_bytes:
        text += " · " + muted(
            f"{format_bytes(lag.pending_open_bytes)} pending in open segment (not lag)"
        )
    return text


def compact_text(view: HubViewLike) -> str:
    """The three positions on one line, for 80 columns."""
    lag = view.lag
    return (
        f"[b]v4[/] {value(lag.v4_lsn)} {ARROW} [b]repo[/] {value(lag.repo_end)} {ARROW} "
        f"[b]v5[/] {value(lag.v5_lsn)}"
    )


class LsnRuler(Vertical):
    """Wide: three positions aligned over the three panes, then the lag and its sparkline.
    Narrow: the positions and the sparkline on one line, the lag below."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.v4 = Line(muted("v4 …"), id="ruler-v4", classes="ruler-pos")
        self.repo = Line(muted("repo …"), id="ruler-repo", classes="ruler-pos")
        self.v5 = Line(muted("v5 …"), id="ruler-v5", classes="ruler-pos")
        self.compact = Line(muted("v4 … → repo … → v5 …"), id="ruler-compact")
        self.summary = Line(muted("lag: waiting for the sources…"), id="ruler-summary")
        self.sparks = (
            Sparkline([], id="lag-spark", classes="lag-spark"),
            Sparkline([], id="lag-spark-narrow", classes="lag-spark"),
        )
        self._spark_data: dict[str, tuple[float, ...]] = {}
        self._history: tuple[float, ...] = ()

    def compose(self) -> Iterable[Widget]:
        with Horizontal(id="ruler-positions"):
            yield self.v4
            yield self.repo
            yield self.v5
        with Horizontal(id="ruler-top-narrow"):
            yield self.compact
            yield self.sparks[1]
        with Horizontal(id="ruler-bottom"):
            yield self.summary
            yield self.sparks[0]

    def show(self, view: HubViewLike) -> None:
        v4, repo, v5, summary = ruler_texts(view)
        self.v4.show(v4)
        self.repo.show(repo)
        self.v5.show(v5)
        self.compact.show(compact_text(view))
        self.summary.show(summary)
        self.show_history([value for _, value in view.lag_history])

    def show_history(self, values: Sequence[int]) -> None:
        """Feed each sparkline only with what fits and only when it differs."""
        self._history = tuple(float(v) for v in values)
        for spark in self.sparks:
            width = spark.size.width or 40
            data = self._history[-width:]
            if data and len(data) < width:
                # A fixed length: a growing but unchanged history repaints nothing.
                data = (data[0],) * (width - len(data)) + data
            key = spark.id or ""
            if data != self._spark_data.get(key):
                self._spark_data[key] = data
                spark.data = list(data)
                spark.set_class(not data, "-empty")

    def on_resize(self) -> None:
        self._spark_data.clear()
        self.show_history([int(v) for v in self._history])
