"""Small screens over the main one: help, the poll interval, a read-only text view, the log."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.markup import escape
from textual.screen import ModalScreen, Screen
from textual.validation import Number
from textual.widget import Widget
from textual.widgets import Footer, Input, Static, TextArea

from ivytui.tui.panes.log import EventLog
from ivytui.tui.protocols import LogEntryLike
from ivytui.tui.widgets import Line

MIN_INTERVAL = 0.2
MAX_INTERVAL = 3600.0


class HelpScreen(ModalScreen[None]):
    """Every key, what it does, and how to read the screen."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark", "dismiss", "Close", id="close"),
    ]

    def __init__(self, keys: Sequence[tuple[str, str]], *, read_only: bool) -> None:
        super().__init__(id="help")
        self.keys = tuple(keys)
        self.read_only = read_only

    def compose(self) -> Iterable[Widget]:
        width = max((len(k) for k, _ in self.keys), default=4) + 2
        lines = ["[b]Keys[/]"]
        lines += [f"  [$accent]{escape(k):<{width}}[/]{escape(d)}" for k, d in self.keys]
        lines += [
            "",
            "[b]Reading the screen[/]",
            "  [b]ruler[/]  v4's current LSN → the end of the newest segment in the repo → "
            "v5's replay LSN.",
            "         Lag is WAL the repo lacks or v5 has not replayed; bytes in v4's open",
            "         segment are [i]pending[/], not lag (an idle primary sits there for ever).",
            "  [b]panes[/]  a source that stops answering keeps its last values, marked "
            "[$error]stale[/] with the reason.",
            "  [b]runbook[/]  [$success]✓ done[/] · [$accent]▶ ready[/] · "
            "[$warning]… running[/] · [$text-muted]■ blocked[/];",
            "           the checks of the selected step are listed with their reasons.",
            "  Times are UTC; ages move in coarse steps to keep the screen calm over SSH.",
            "",
            "[b]Driving the move[/]",
            "  Each step has a key (the runbook's key column); enter acts on the step selected "
            "there.",
            "  A blocked step lists its failing checks. Otherwise one confirm shows what will "
            "change: the",
            "  diff against the live object, the kubectl command, the SQL or the YAML, and the "
            "checks it",
            "  passed; focus starts on No.",
            "  Deletion and abort need the cluster name typed. Nothing is sent before a yes, and "
            "the guards",
            "  are checked again at that moment. The cluster is the state: a new ivytui picks "
            "the move up.",
            "  One console drives at a time; the takeover key asks for the cluster name. Keys "
            "are remapped",
            "  by binding id in ~/.config/ivytui/keymap.yaml or --keymap FILE (freeze: F).",
        ]
        if self.read_only:
            lines += ["", "[$warning]MONITOR mode: no key changes anything.[/]"]
        with Vertical(id="help-dialog", classes="dialog"):
            with VerticalScroll(id="help-body"):
                yield Static("\n".join(lines), id="help-text")
            yield Static("[$text-muted]↑ ↓ scroll · esc closes[/]", classes="hint")

    def on_mount(self) -> None:
        self.query_one("#help-dialog").border_title = "help"
        self.query_one("#help-body").focus()


class IntervalScreen(ModalScreen[float | None]):
    """Ask for a new poll interval in seconds; refuse anything out of range, saying why."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="cancel"),
    ]

    def __init__(self, current: float) -> None:
        super().__init__(id="interval")
        self.current = current

    def compose(self) -> Iterable[Widget]:
        with Vertical(id="interval-dialog", classes="dialog"):
            yield Static(
                f"Seconds between polls ({MIN_INTERVAL:g} to {MAX_INTERVAL:g}), now "
                f"{self.current:g}:"
            )
            yield Input(
                value=f"{self.current:g}",
                placeholder="e.g. 2",
                validators=[Number(minimum=MIN_INTERVAL, maximum=MAX_INTERVAL)],
                validate_on=["submitted"],
                id="interval-input",
            )
            yield Line("", id="interval-error")
            yield Static("[$text-muted]enter sets · esc cancels[/]", classes="hint")

    def on_mount(self) -> None:
        self.query_one("#interval-dialog").border_title = "poll interval"
        field = self.query_one("#interval-input", Input)
        field.focus()
        field.select_all()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        message = self.problem(event.value)
        if message is not None:
            self.query_one("#interval-error", Line).show(f"[$error]{escape(message)}[/]")
            return
        self.dismiss(float(event.value))

    @staticmethod
    def problem(text: str) -> str | None:
        """Why ``text`` is not an acceptable interval, or ``None``."""
        try:
            seconds = float(text.strip())
        except ValueError:
            return f"{text.strip() or 'nothing'!r} is not a number of seconds"
        if not MIN_INTERVAL <= seconds <= MAX_INTERVAL:
            return (
                f"{seconds:g} s is out of range: use {MIN_INTERVAL:g} to {MAX_INTERVAL:g} seconds"
            )
        return None

    def action_cancel(self) -> None:
        self.dismiss(None)


class TextViewScreen(ModalScreen[None]):
    """A read-only, syntax-highlighted, scrollable text (YAML of an object, an info file)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "dismiss", "Close", id="close"),
        Binding("c", "copy", "Copy", id="copy", tooltip="Copy to the clipboard (OSC 52)"),
    ]

    def __init__(self, title: str, text: str, *, language: str | None = "yaml") -> None:
        super().__init__(id="text-view")
        self.title_text = title
        self.text = text
        self.language = language

    def compose(self) -> Iterable[Widget]:
        with Vertical(id="text-dialog", classes="dialog"):
            yield TextArea(
                self.text,
                language=self.language,
                read_only=True,
                show_line_numbers=True,
                soft_wrap=False,
                id="text-body",
            )
            yield Static("[$text-muted]c copies · esc closes[/]", classes="hint")

    def on_mount(self) -> None:
        self.query_one("#text-dialog").border_title = self.title_text
        area = self.query_one(TextArea)
        area.cursor_blink = False
        area.focus()

    def action_copy(self) -> None:
        self.app.copy_to_clipboard(self.text)
        lines = self.text.count("\n") + (0 if self.text.endswith("\n") else 1)
        self.notify(f"copied {lines} lines of {self.title_text}", timeout=3)


class LogScreen(Screen[None]):
    """The event log, full screen."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,l", "dismiss", "Close", id="close"),
    ]

    def __init__(self, entries: Iterable[LogEntryLike]) -> None:
        super().__init__(id="log-screen")
        self.entries = tuple(entries)
        self.log_view = EventLog(max_lines=None, id="full-log")

    def compose(self) -> Iterable[Widget]:
        yield Static("[b]events[/] [$text-muted](UTC)[/]", id="log-title")
        yield self.log_view
        yield Footer()

    def on_mount(self) -> None:
        self.log_view.add_all(self.entries)
        self.log_view.focus()

    def add(self, entry: LogEntryLike) -> None:
        self.log_view.add(entry)
