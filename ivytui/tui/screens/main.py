"""The main screen: header, alarms, LSN ruler, the three source panes, runbook and log.

Side by side when the terminal is at least 140 columns wide; at 80×24 one pane at a time, with a
tab strip, ``tab``/``shift+tab`` (or ``1``–``5``) to move between them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.lazy import Lazy
from textual.markup import escape
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer

from ivytui.config import Config
from ivytui.tui.panes.base import Pane
from ivytui.tui.panes.header import AlarmBar, HeaderBar, header_text
from ivytui.tui.panes.log import LogPane
from ivytui.tui.panes.ruler import LsnRuler
from ivytui.tui.panes.runbook import RunbookPane
from ivytui.tui.panes.storage import StoragePane
from ivytui.tui.panes.v4 import V4Pane
from ivytui.tui.panes.v5 import V5Pane
from ivytui.tui.protocols import HubViewLike, LogEntryLike
from ivytui.tui.widgets import Line

WIDE_AT = 140
"""Columns from which the panes sit side by side."""


class PaneRow(Horizontal):
    """A row of panes; tells the screen when it is mounted (rows are mounted lazily)."""

    def on_mount(self) -> None:
        screen = self.screen
        if isinstance(screen, MainScreen):
            screen.row_mounted(self)


class MainScreen(Screen[None]):
    HORIZONTAL_BREAKPOINTS = [  # noqa: RUF012 - Screen declares it as an instance variable
        (0, "-narrow"),
        (WIDE_AT, "-wide"),
    ]

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("tab", "next_pane", "Next pane", show=False, id="next-pane"),
        Binding("shift+tab", "previous_pane", "Previous pane", show=False, id="previous-pane"),
        Binding("1", "pane(0)", "v4 pane", show=False, id="pane-v4"),
        Binding("2", "pane(1)", "Storage pane", show=False, id="pane-repo"),
        Binding("3", "pane(2)", "v5 pane", show=False, id="pane-v5"),
        Binding("4", "pane(3)", "Runbook pane", show=False, id="pane-runbook"),
        Binding("5", "pane(4)", "Log pane", show=False, id="pane-log"),
        Binding(
            "pagedown",
            "scroll_pane(1)",
            "Scroll the pane",
            show=False,
            priority=True,
            id="page-down",
        ),
        Binding(
            "pageup", "scroll_pane(-1)", "Scroll the pane", show=False, priority=True, id="page-up"
        ),
    ]

    def __init__(self, config: Config, *, step_keys: Mapping[int, str] | None = None) -> None:
        super().__init__(id="main")
        self.config = config
        self.header = HeaderBar("", id="header")
        self.alarms = AlarmBar(id="alarms")
        self.start_error = Line("", id="start-error")
        self.start_error.display = False
        self.ruler = LsnRuler(id="ruler")
        self.tabs = Line("", id="pane-tabs")
        self.v4 = V4Pane(id="v4-pane")
        self.repo = StoragePane(id="repo-pane")
        self.v5 = V5Pane(id="v5-pane")
        self.runbook = RunbookPane(keys=step_keys, id="runbook-pane")
        self.log_pane = LogPane(id="log-pane")
        self.progress = Line("", id="action-progress")
        self.progress.display = False
        self.panes: tuple[Pane, ...] = (self.v4, self.repo, self.v5, self.runbook, self.log_pane)
        self.current = 0

    def compose(self) -> Iterable[Widget]:
        yield self.header
        yield self.alarms
        yield self.start_error
        yield self.ruler
        yield self.tabs
        # The panes are mounted right after the first frame: the header and the ruler paint at
        # once, the panes (most of the widgets) a moment later.
        yield Lazy(PaneRow(self.v4, self.repo, self.v5, id="sources", classes="pane-row"))
        yield Lazy(PaneRow(self.runbook, self.log_pane, id="lower", classes="pane-row"))
        yield self.progress
        yield Lazy(Footer())

    def on_mount(self) -> None:
        self._set_current(0, focus=False)

    def row_mounted(self, row: PaneRow) -> None:
        """A row of panes arrived (after the first frame): mark and focus the current pane."""
        current = self.panes[self.current]
        self._set_current(self.current, focus=current in row.children and self.focused is None)

    def on_resize(self) -> None:
        self.call_after_refresh(self.app.run_action, "rerender")

    # -- rendering ---------------------------------------------------------------------------

    def show_header(
        self,
        view: HubViewLike | None,
        now: float,
        *,
        read_only: bool,
        paused: bool,
        interval: float,
    ) -> None:
        self.header.show(
            header_text(
                config=self.config,
                view=view,
                now=now,
                read_only=read_only,
                paused=paused,
                interval=interval,
                compact=self.size.width < WIDE_AT,
            )
        )

    def show_view(self, view: HubViewLike, now: float, *, stale_after: float) -> None:
        """Render ``view`` into every pane; unchanged text is not repainted."""
        self.alarms.show_alarms(view.alarms)
        self.ruler.show(view)
        for pane in self.panes:
            pane.show(view, now, stale_after)

    def show_start_error(self, title: str | None, message: str | None) -> None:
        if title is None:
            self.start_error.display = False
            self.start_error.show("")
            return
        self.start_error.show(
            f"[$error]✗ {escape(title)}: {escape(message or '')}[/]"
            "  [$text-muted]r retries · q quits[/]"
        )
        self.start_error.display = True

    def add_log(self, entry: LogEntryLike) -> None:
        self.log_pane.log_view.add(entry)

    def show_progress(self, markup: str) -> None:
        """The line above the footer: the running action's stage, or how the last one ended."""
        self.progress.show(markup)
        self.progress.display = bool(markup)

    # -- panes and focus ---------------------------------------------------------------------

    def _tabs_text(self) -> str:
        parts = []
        for index, pane in enumerate(self.panes):
            label = f"{index + 1} {pane.SHORT}"
            if index == self.current:
                parts.append(f"[reverse $accent] {label} [/]")
            else:
                parts.append(f"[$text-muted] {label} [/]")
        return " ".join(parts) + "  [$text-muted]tab: next pane[/]"

    def _set_current(self, index: int, *, focus: bool) -> None:
        self.current = index % len(self.panes)
        current = self.panes[self.current]
        for pane in self.panes:
            pane.set_class(pane is current, "-current")
        for row in self.query(".pane-row"):
            row.set_class(current in row.children, "-current")
        self.tabs.show(self._tabs_text())
        if focus:
            current.focus_target.focus()

    def pane_of(self, widget: Widget | None) -> int | None:
        node = widget
        while node is not None:
            if isinstance(node, Pane) and node in self.panes:
                return self.panes.index(node)
            parent = node.parent
            node = parent if isinstance(parent, Widget) else None
        return None

    def on_descendant_focus(self) -> None:
        index = self.pane_of(self.focused)
        if index is not None and index != self.current:
            self._set_current(index, focus=False)

    def action_next_pane(self) -> None:
        self._set_current(self.current + 1, focus=True)

    def action_previous_pane(self) -> None:
        self._set_current(self.current - 1, focus=True)

    def action_pane(self, index: int) -> None:
        self._set_current(index, focus=True)

    def action_scroll_pane(self, direction: int) -> None:
        """Page through the current pane (its tables keep the arrow keys)."""
        pane = self.current_pane
        target = pane.log_view if isinstance(pane, LogPane) else pane
        if direction > 0:
            target.scroll_page_down()
        else:
            target.scroll_page_up()

    @property
    def current_pane(self) -> Pane:
        return self.panes[self.current]

    def object_key(self) -> str | None:
        """The key of the object under the cursor (for the YAML view)."""
        return self.current_pane.object_key()
