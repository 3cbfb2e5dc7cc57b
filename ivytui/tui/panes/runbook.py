"""The runbook pane: steps 0–7 and, under the selected one, every check with its reason."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.markup import escape
from textual.widget import Widget
from textual.widgets import DataTable
from textual.widgets.data_table import RowDoesNotExist

from ivytui.domain.model import SourceName
from ivytui.domain.runbook import STEPS, StepStatus
from ivytui.tui.panes.base import Pane
from ivytui.tui.protocols import HubViewLike
from ivytui.tui.text import mark, muted
from ivytui.tui.widgets import KeyedTable, Line

STATE_MARKUP = {
    "done": "[$success]✓ done[/]",
    "ready": "[$accent]▶ ready[/]",
    "running": "[$warning]… running[/]",
    "blocked": "[$text-muted]■ blocked[/]",
}

STEP_COLUMNS = (("number", "#"), ("key", "key"), ("title", "step"), ("state", "state"))


def current_step(steps: Sequence[StepStatus]) -> StepStatus | None:
    """The step under way: the first one that is not done (else the last)."""
    for step in steps:
        if step.state != "done":
            return step
    return steps[-1] if steps else None


def step_rows(
    steps: Sequence[StepStatus], keys: Mapping[int, str] | None = None
) -> list[tuple[str, list[str]]]:
    """One row per step; ``keys``: the key that acts on each step that has an action."""
    return [
        (
            str(step.number),
            [
                str(step.number),
                key_cell(keys or {}, step.number),
                escape(step.title),
                STATE_MARKUP.get(step.state, step.state),
            ],
        )
        for step in steps
    ]


def key_cell(keys: Mapping[int, str], number: int) -> str:
    return f"[$accent]{escape(keys[number])}[/]" if number in keys else ""


def checks_text(step: StepStatus) -> str:
    """``2 · Catch up — catching up`` then one ✓/✗ line per check."""
    head = f"[b]{step.number} · {escape(step.title)}[/] — {escape(step.summary)}"
    if step.overridable:
        head += " " + muted("(an override can be typed)")
    lines = [head]
    lines.extend(mark(check.ok, check.text) for check in step.checks)
    if not step.checks:
        lines.append(muted("no checks"))
    return "\n".join(lines)


class RunbookPane(Pane):
    SOURCES: ClassVar[tuple[SourceName, ...]] = ()
    SHORT: ClassVar[str] = "runbook"

    BINDINGS: ClassVar[list[BindingType]] = [
        # priority: the steps table would take enter for its own row selection
        Binding(
            "enter",
            "app.act_on_step",
            "Act on step",
            id="act-on-step",
            priority=True,
            tooltip="The action of the selected step (its confirm modal, or why it is blocked)",
        ),
    ]

    def __init__(self, *, keys: Mapping[int, str] | None = None, id: str | None = None) -> None:
        super().__init__(id=id)
        self.steps_table = KeyedTable(STEP_COLUMNS, id="steps")
        self.checks = Line(muted("waiting for the first snapshot…"), id="checks")
        self._steps: dict[str, StepStatus] = {}
        self._keys: dict[int, str] = dict(keys or {})
        """The key of each step that has an action, as the app binds it (its keymap applied)."""
        self._chosen: str | None = None
        self._programmatic: str | None = None

    def compose(self) -> Iterable[Widget]:
        with Horizontal(id="runbook-body"):
            yield self.steps_table
            yield self.checks

    def on_mount(self) -> None:
        self.set_title("runbook")
        self._sync_rows()

    def _sync_rows(self) -> None:
        if self._steps:
            self.steps_table.sync(step_rows(list(self._steps.values()), self._keys))
            return
        self.steps_table.sync(
            [
                (
                    str(s.number),
                    [str(s.number), key_cell(self._keys, s.number), escape(s.title), muted("…")],
                )
                for s in STEPS
            ]
        )

    def set_keys(self, keys: Mapping[int, str]) -> None:
        """New keys for the steps (the keymap changed): the key column follows."""
        self._keys = dict(keys)
        if self.is_mounted:
            self._sync_rows()

    def render_view(self, view: HubViewLike, now: float) -> None:
        steps = view.steps
        self._steps = {str(step.number): step for step in steps}
        self.steps_table.sync(step_rows(steps, self._keys))
        current = current_step(steps)
        if current is not None:
            self.set_title(f"runbook · step {current.number}: {current.summary}")
        key = self._chosen if self._chosen in self._steps else None
        if key is None and current is not None:
            key = str(current.number)
            self._move_cursor(key)
        self._show_checks(key)

    def _move_cursor(self, key: str) -> None:
        table = self.steps_table
        try:
            row = table.get_row_index(key)
        except RowDoesNotExist:
            return
        if table.cursor_row != row:
            self._programmatic = key
            table.move_cursor(row=row, animate=False)

    def _show_checks(self, key: str | None) -> None:
        step = self._steps.get(key) if key is not None else None
        if step is not None:
            self.checks.show(checks_text(step))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table is not self.steps_table or event.row_key.value is None:
            return
        key = str(event.row_key.value)
        if key == self._programmatic:
            self._programmatic = None
        elif self.steps_table.has_focus:
            self._chosen = key
        self._show_checks(key)

    @property
    def selected_step(self) -> StepStatus | None:
        key = self.steps_table.selected_key
        return self._steps.get(key) if key is not None else None

    @property
    def focus_target(self) -> Widget:
        return self.steps_table

    def object_key(self) -> str | None:
        step = self.selected_step
        return f"step/{step.number}" if step is not None else None
