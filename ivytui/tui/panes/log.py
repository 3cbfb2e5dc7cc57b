"""The event log: Kubernetes events, pod changes, new segments, source errors and recoveries."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar

from textual import events
from textual.markup import escape
from textual.widget import Widget
from textual.widgets import RichLog

from ivytui.domain.model import SourceName
from ivytui.tui.panes.base import Pane
from ivytui.tui.protocols import HubViewLike, LogEntryLike
from ivytui.tui.widgets import rich_text

LEVEL_STYLE = {"error": "$error", "warning": "$warning"}


@dataclass(frozen=True, slots=True)
class LocalEntry:
    """A log line made by the UI itself (refresh asked, interval changed, an action's stages,
    hub errors)."""

    at: float
    source: str
    level: str
    text: str


def entry_markup(entry: LogEntryLike) -> str:
    """``12:01:05 repo   new segment 0000…05`` (UTC), errors in the error colour."""
    stamp = time.strftime("%H:%M:%S", time.gmtime(entry.at))
    text = escape(entry.text)
    style = LEVEL_STYLE.get(entry.level)
    if style is not None:
        text = f"[{style}]{text}[/]"
    return f"[$text-muted]{stamp}[/] [$accent]{escape(entry.source):<6}[/] {text}"


class EventLog(RichLog):
    """A RichLog of entries: each entry is rendered once, and again only when the width
    changes (so lines wrap to the pane)."""

    def __init__(self, *, max_lines: int | None = 500, id: str | None = None) -> None:
        super().__init__(
            max_lines=max_lines, wrap=True, markup=False, min_width=20, id=id, auto_scroll=True
        )
        self.entries: deque[LogEntryLike] = deque(maxlen=max_lines)
        self._width = 0

    def add(self, entry: LogEntryLike) -> None:
        self.entries.append(entry)
        self.write(rich_text(entry_markup(entry), self.app.theme_variables))

    def add_all(self, entries: Iterable[LogEntryLike]) -> None:
        for entry in entries:
            self.add(entry)

    def on_mount(self) -> None:
        self.app.theme_changed_signal.subscribe(self, self._restyle)

    def _restyle(self, _theme: object) -> None:
        self._width = 0
        self._rewrap()

    def on_resize(self, event: events.Resize) -> None:
        self.call_after_refresh(self._rewrap)

    def _rewrap(self) -> None:
        """Render the entries again at a new width or in a new theme (RichLog keeps its lines
        as they were rendered)."""
        width = self.scrollable_content_region.width
        if width and width != self._width:
            self._width = width
            self.clear()
            for entry in self.entries:
                self.write(rich_text(entry_markup(entry), self.app.theme_variables))

    @property
    def count(self) -> int:
        return len(self.entries)


class LogPane(Pane):
    SOURCES: ClassVar[tuple[SourceName, ...]] = ()
    SHORT: ClassVar[str] = "log"

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.log_view = EventLog(id="event-log")

    def compose(self) -> Iterable[Widget]:
        yield self.log_view

    def on_mount(self) -> None:
        self.set_title("events")

    def render_view(self, view: HubViewLike, now: float) -> None:
        return None

    @property
    def focus_target(self) -> Widget:
        return self.log_view
