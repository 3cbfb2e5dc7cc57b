"""What every pane shares: a title, the stale marker of its sources, and a focus target."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import ClassVar

from textual.containers import VerticalScroll
from textual.markup import escape
from textual.widget import Widget

from ivytui.domain.model import SOURCE_TITLES, PodInfo, Snapshot, SourceName
from ivytui.tui.protocols import HubViewLike
from ivytui.tui.text import DASH, coarse_age
from ivytui.tui.widgets import (
    POD_COLUMNS,
    FieldList,
    FieldSpec,
    KeyedTable,
    StaleLine,
    pod_rows,
)


def source_problems(
    snapshot: Snapshot,
    names: Sequence[SourceName],
    now: float,
    *,
    stale_after: float,
    paused: bool = False,
) -> tuple[list[str], bool]:
    """Lines that say what is wrong with the sources behind a pane, and whether any is stale.

    A source that failed keeps its last values; the line says since when and why:
    ``⚠ the repo in object storage: stale 10 s — connection refused``.
    """
    lines: list[str] = []
    stale = False
    for name in names:
        src = snapshot.source(name)
        title = SOURCE_TITLES[name]
        if src.error is not None:
            stale = True
            since = src.stale_since if src.stale_since is not None else src.observed_at
            if since and since > 0:
                when = f"stale {coarse_age(now - since)}"
            else:
                when = "no answer yet"
            lines.append(f"[$error]⚠ {escape(title)}: {when} — {escape(src.error)}[/]")
        elif src.stale_since is not None:
            stale = True
            lines.append(f"[$error]⚠ {escape(title)}: stale {coarse_age(now - src.stale_since)}[/]")
        elif src.observed_at <= 0:
            lines.append(f"[$text-muted]{escape(title)}: waiting for the first answer…[/]")
        elif not paused and now - src.observed_at > stale_after:
            stale = True
            lines.append(
                f"[$warning]⚠ {escape(title)}: stale {coarse_age(now - src.observed_at)}"
                " — no answer since[/]"
            )
    return lines, stale


class Pane(VerticalScroll):
    """A bordered, scrollable pane fed by one or more sources."""

    SOURCES: ClassVar[tuple[SourceName, ...]] = ()
    SHORT: ClassVar[str] = ""
    """The name on the tab strip at 80 columns."""

    can_focus = False

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, classes="pane")
        self.stale_line = StaleLine()
        self._title = ""

    def set_title(self, title: str) -> None:
        if title != self._title:
            self._title = title
            self.border_title = title

    def show_problems(self, view: HubViewLike, now: float, stale_after: float) -> None:
        lines, stale = source_problems(
            view.snapshot, self.SOURCES, now, stale_after=stale_after, paused=view.paused
        )
        self.stale_line.show_problems(lines)
        self.set_class(stale, "-stale")

    def show(self, view: HubViewLike, now: float, stale_after: float) -> None:
        """Render ``view``; only widgets whose text changed are repainted."""
        self.show_problems(view, now, stale_after)
        self.render_view(view, now)

    def render_view(self, view: HubViewLike, now: float) -> None:
        raise NotImplementedError

    @property
    def focus_target(self) -> Widget:
        """The widget that takes the focus when the pane is entered with tab."""
        return self

    def object_key(self) -> str | None:
        """The key in ``HubView.objects`` of the object under the cursor in this pane."""
        return None


class ClusterPane(Pane):
    """A cluster's pane (v4 or v5): its pods, then its fields; ``y`` shows the selected pod, or
    the cluster's object."""

    FIELDS: ClassVar[Sequence[FieldSpec]] = ()

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.fields = FieldList(self.FIELDS, label_width=12, id=f"{self.SHORT}-fields")
        self.pods = KeyedTable(POD_COLUMNS, flex="name", id=f"{self.SHORT}-pods")

    def compose(self) -> Iterable[Widget]:
        yield self.stale_line
        yield self.pods
        yield self.fields

    def show_cluster(self, values: Mapping[str, str], pods: Sequence[PodInfo]) -> None:
        """Fields not in ``values`` show a dash; only changed fields and rows are repainted."""
        shown = dict.fromkeys(self.fields.fields, DASH)
        shown.update(values)
        self.fields.set_values(shown)
        self.pods.sync(pod_rows(pods))

    @property
    def focus_target(self) -> Widget:
        return self.pods

    def object_key(self) -> str | None:
        if self.pods.has_focus and (name := self.pods.selected_key) is not None:
            return f"pod/{name}"
        return self.SHORT
