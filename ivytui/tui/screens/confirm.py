"""The confirm modal of every action, and the list of reasons when a key cannot act.

:class:`ConfirmScreen` says exactly what will change — the summary, the patch as a diff against
the live object, the equivalent ``kubectl`` command, the SQL or the YAML (highlighted, in one
scrollable body) — and answers ``True`` only on an explicit yes. Focus starts on "No"; ``y``
confirms an ordinary step; deletion and abort need the cluster name typed, and so does step 4
before step 3 (the override). Step 1's YAML can be edited in ``$EDITOR`` and is validated again;
step 3 has the choice to end the remaining client sessions (the plan is built again). Under the
plan, the verdict of the action's guard that the key read (``ivytui.domain.actions.check``):
every check, red first, then green — the same verdict the executor is handed with the yes.

:class:`ReasonsScreen` lists why a key did nothing (the failing checks of its verdict) or why an
action was refused or failed (the error's title, message and checks).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import ClassVar

from textual.app import SuspendNotSupported
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.markup import escape
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import Button, Checkbox, Input, Static

from ivytui.domain.actions import Verdict
from ivytui.domain.runbook import Check
from ivytui.errors import IvyError
from ivytui.tui.protocols import PlanLike
from ivytui.tui.text import mark
from ivytui.tui.widgets import Line

Replan = Callable[[bool], Awaitable[PlanLike]]
"""Builds the plan again with ``terminate_sessions`` set (step 3)."""

Edit = Callable[[PlanLike, str], PlanLike]
"""The plan after its YAML was edited (``Executor.with_edited``); raises ``IvyError``."""

SECTIONS: tuple[tuple[str, str, str], ...] = (
    ("diff", "What changes", "diff"),
    ("kubectl", "The same with kubectl", "bash"),
    ("sql", "SQL, in this order", "sql"),
    ("yaml", "YAML (secret values are placeholders, never shown)", "yaml"),
)
"""(plan field, heading, lexer) of each part of the body, in order."""

TERMINATE_LABEL = "end the remaining client sessions"


class Note(Line):
    """One line under the body (an edit's result, a copy); hidden while empty."""

    def show(self, markup: str) -> bool:
        self.display = bool(markup)
        changed = super().show(markup)
        if changed and isinstance(self.screen, ConfirmScreen):
            self.screen.call_after_refresh(self.screen._fit)
        return changed


def fit_body(dialog: Widget, body: Widget, screen_height: int) -> None:
    """Let the scrollable ``body`` take what ``dialog`` (at most 90% of the screen) leaves
    after its other children, so the answers stay on screen at 80×24."""
    if screen_height <= 0:
        return
    budget = int(screen_height * 0.9) - dialog.styles.gutter.height
    others = 0
    for child in dialog.children:
        if child is body or not child.display:
            continue
        margin = child.styles.margin
        others += child.outer_size.height + margin.top + margin.bottom
    limit = max(3, budget - others - body.styles.margin.top - body.styles.margin.bottom)
    if body.styles.max_height is None or body.styles.max_height.value != limit:
        body.styles.max_height = limit


def verdict_markup(verdict: Verdict) -> str:
    """The checks of a verdict, red first, under a heading that says what they decide."""
    if verdict.override:
        head = "[b]Refused without the override, because:[/]"
    elif verdict.ok:
        head = "[b]Checked when the key was pressed[/] [$text-muted](again before acting)[/]"
    else:
        head = "[b]Refused, because:[/]"
    ordered = sorted(verdict.checks, key=lambda check: check.ok)
    return "\n".join([head, *(mark(check.ok, check.text) for check in ordered)])


def reason_markup(reason: str | Check) -> str:
    """A sentence in red, or a check in its colour."""
    if isinstance(reason, Check):
        return mark(reason.ok, reason.text)
    return f"[$error]✗ {escape(reason)}[/]"


def _lines(text: str) -> int:
    return text.count("\n") + (0 if text.endswith("\n") else 1)


def _editor_command() -> list[str]:
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    return shlex.split(editor)


class ConfirmScreen(ModalScreen[bool]):
    """Yes or no to one plan; ``True`` only on an explicit yes (and the typed name, if asked)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "confirm", "Yes", id="confirm-yes"),
        Binding("n,escape", "cancel", "No", id="confirm-no"),
        Binding("e", "edit", "Edit in $EDITOR", id="confirm-edit"),
        Binding("c", "copy", "Copy", id="confirm-copy", tooltip="Copy the preview (OSC 52)"),
        Binding("t", "toggle_terminate", "End sessions", id="confirm-terminate"),
        Binding("up", "scroll_body(-1)", "Scroll", show=False, id="confirm-up"),
        Binding("down", "scroll_body(1)", "Scroll", show=False, id="confirm-down"),
        Binding("pageup", "scroll_body(-10)", "Scroll", show=False, id="confirm-page-up"),
        Binding("pagedown", "scroll_body(10)", "Scroll", show=False, id="confirm-page-down"),
    ]

    def __init__(
        self,
        plan: PlanLike,
        *,
        cluster: str = "",
        verdict: Verdict | None = None,
        replan: Replan | None = None,
        edit: Edit | None = None,
        yes_label: str | None = None,
    ) -> None:
        super().__init__(id="confirm")
        self.plan = plan
        self.cluster = cluster
        self.verdict = verdict
        self._replan = replan
        self._edit = edit
        self.yes_label = yes_label or f"Yes, {plan.title}"
        self.name_wanted = plan.typed_name or (cluster if plan.override_needed else "")
        self.name_typed = ""
        self.replanning = False
        self._draft: str | None = None
        self.note = Note("", id="confirm-note")
        self.body = VerticalScroll(id="confirm-body")
        self._codes: dict[str, Static] = {}
        self._heads: dict[str, Static] = {}

    # -- what the caller reads after a yes ---------------------------------------------------

    @property
    def typed(self) -> str:
        """The typed cluster name, for a plan that needs one."""
        return self.name_typed if self.plan.typed_name else ""

    @property
    def override(self) -> str:
        """The override typed for step 4 before step 3."""
        return self.name_typed if self.plan.override_needed else ""

    @property
    def may_confirm(self) -> bool:
        if self.replanning:
            return False
        return not self.name_wanted or self.name_typed == self.name_wanted

    # -- layout ------------------------------------------------------------------------------

    def compose(self) -> Iterable[Widget]:
        plan = self.plan
        classes = "dialog -destructive" if plan.destructive else "dialog"
        with Vertical(id="confirm-dialog", classes=classes):
            yield Line(escape(plan.summary), id="confirm-summary")
            warnings = [str(w) for w in plan.options.get("warnings") or ()]
            if warnings:
                yield Line(
                    "\n".join(f"[$warning]⚠ {escape(w)}[/]" for w in warnings),
                    id="confirm-warnings",
                )
            with self.body:
                for field, heading, _ in SECTIONS:
                    head = Static(f"[b]{escape(heading)}[/]", classes="code-head")
                    code = Static("", classes="code")
                    self._heads[field] = head
                    self._codes[field] = code
                    yield head
                    yield code
            if self.verdict is not None and self.verdict.checks:
                with VerticalScroll(id="confirm-checks", can_focus=False):
                    yield Line(verdict_markup(self.verdict), id="confirm-checks-list")
            if self._replan is not None:
                yield Checkbox(
                    TERMINATE_LABEL,
                    value=bool(plan.options.get("terminate_sessions")),
                    id="confirm-terminate",
                    compact=True,
                )
            if self.name_wanted:
                yield Line(self._name_prompt(), id="confirm-prompt")
                yield Input(placeholder=f"type {self.name_wanted}", id="confirm-name")
            yield self.note
            with Horizontal(id="confirm-buttons"):
                yield Button("No", id="confirm-button-no", compact=True)
                yield Button(
                    self.yes_label,
                    id="confirm-button-yes",
                    variant="error" if plan.destructive else "primary",
                    disabled=not self.may_confirm,
                    compact=True,
                )
            yield Static(self._hint(), classes="hint", id="confirm-hint")

    def _name_prompt(self) -> str:
        name = escape(self.name_wanted)
        if self.plan.override_needed:
            return (
                "[$warning]Shutting v4 down before the final switch loses whatever it wrote "
                "after its last archived segment.[/]\n"
                f"To do it anyway, type the cluster name [b]{name}[/] as the override "
                "(the journal records it):"
            )
        return f"Type the cluster name [b]{name}[/] to confirm:"

    def _hint(self) -> str:
        if self.name_wanted:
            # the field takes the letters: only enter, esc and the arrows act here
            parts = ["enter confirms once the name matches", "esc cancels", "↑ ↓ scroll"]
            return "[$text-muted]" + " · ".join(parts) + "[/]"
        parts = ["y confirms", "n / esc cancels"]
        if self._edit is not None and self.plan.yaml:
            parts.append("e edits a copy in $EDITOR")
        if self._replan is not None:
            parts.append("t ends sessions")
        if self._copy_text():
            parts.append("c copies")
        parts.append("↑ ↓ scroll")
        return "[$text-muted]" + " · ".join(parts) + "[/]"

    def on_mount(self) -> None:
        self.note.display = False
        dialog = self.query_one("#confirm-dialog")
        step = self.plan.step
        dialog.border_title = (
            f"step {step} · {self.plan.title}" if 1 <= step <= 7 else self.plan.title
        )
        self._show_plan()
        if self.name_wanted:
            self.query_one("#confirm-name", Input).focus()
        else:
            self.query_one("#confirm-button-no", Button).focus()
        self.call_after_refresh(self._fit)

    def on_resize(self) -> None:
        self.call_after_refresh(self._fit)

    def _fit(self) -> None:
        fit_body(self.query_one("#confirm-dialog"), self.body, self.size.height)

    def _theme(self) -> str:
        return "ansi_dark" if self.app.current_theme.dark else "ansi_light"

    def _show_plan(self) -> None:
        theme = self._theme()
        for field, _, lexer in SECTIONS:
            text = str(getattr(self.plan, field, "") or "").rstrip("\n")
            head, code = self._heads[field], self._codes[field]
            head.display = code.display = bool(text)
            if text:
                from rich.syntax import Syntax

                code.update(Syntax(text, lexer, theme=theme, word_wrap=True))
        self.query_one("#confirm-summary", Line).show(escape(self.plan.summary))

    # -- answers -----------------------------------------------------------------------------

    def action_confirm(self) -> None:
        if not self.may_confirm:
            self.app.bell()
            if self.replanning:
                self.note.show("[$warning]the plan is being built again: a moment[/]")
            else:
                self.note.show(
                    f"[$warning]type the cluster name {escape(self.name_wanted)} first[/]"
                )
            return
        self.dismiss(True)

    def action_cancel(self) -> None:
        self.dismiss(False)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "confirm-button-yes":
            self.action_confirm()
        else:
            self.action_cancel()

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.name_typed = event.value.strip()
        self._sync_yes()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.name_typed = event.value.strip()
        self.action_confirm()

    def _sync_yes(self) -> None:
        self.query_one("#confirm-button-yes", Button).disabled = not self.may_confirm

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "edit":
            return self._edit is not None and bool(self.plan.yaml)
        if action == "toggle_terminate":
            return self._replan is not None
        if action == "copy":
            return bool(self._copy_text())
        return True

    def action_scroll_body(self, lines: int) -> None:
        self.body.scroll_relative(y=lines, animate=False)

    # -- copy --------------------------------------------------------------------------------

    def _copy_text(self) -> str:
        return self.plan.yaml or self.plan.sql or self.plan.kubectl

    def action_copy(self) -> None:
        text = self._copy_text()
        if not text:
            return
        what = "YAML" if self.plan.yaml else "SQL" if self.plan.sql else "kubectl command"
        self.app.copy_to_clipboard(text)
        self.note.show(f"[$text-muted]copied {_lines(text)} lines of the {what}[/]")

    # -- step 3: end the client sessions -----------------------------------------------------

    def action_toggle_terminate(self) -> None:
        if self._replan is not None:
            box = self.query_one("#confirm-terminate", Checkbox)
            box.value = not box.value

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        event.stop()
        if self._replan is None:
            return
        self.replanning = True
        self._sync_yes()
        self.run_worker(self._plan_again(event.value), group="replan", exclusive=True)

    async def _plan_again(self, terminate: bool) -> None:
        assert self._replan is not None
        try:
            self.plan = await self._replan(terminate)
        except IvyError as exc:
            self._keep_plan(f"{exc.title}: {exc.message}")
        except Exception as exc:
            self._keep_plan(f"unexpected error: {type(exc).__name__}: {exc}")
        else:
            self._show_plan()
            self.note.show("")
        finally:
            self.replanning = False
            self._sync_yes()

    def _keep_plan(self, why: str) -> None:
        """The plan could not be built again: the box goes back to what the shown plan does."""
        box = self.query_one("#confirm-terminate", Checkbox)
        with box.prevent(Checkbox.Changed):
            box.value = bool(self.plan.options.get("terminate_sessions"))
        self.note.show(f"[$error]✗ {escape(why)}[/] [$text-muted](the preview is unchanged)[/]")

    # -- step 1: edit the YAML in $EDITOR ----------------------------------------------------

    def action_edit(self) -> None:
        if self._edit is None or not self.plan.yaml:
            return
        original = self._draft if self._draft is not None else self.plan.yaml
        with tempfile.TemporaryDirectory(prefix="ivytui-edit-") as tmp:
            path = Path(tmp) / f"{self.plan.key}.yaml"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(original)
            try:
                code = self._run_editor(path)
            except OSError as exc:
                self.note.show(f"[$error]✗ the editor did not start: {escape(str(exc))}[/]")
                return
            if code is None:
                return
            edited = path.read_text()
        if code != 0:
            self.note.show(f"[$warning]the editor exited with {code}: the manifest is unchanged[/]")
            return
        if edited == original:
            self.note.show("[$text-muted]no change[/]")
            return
        try:
            plan = self._edit(self.plan, edited)
        except IvyError as exc:
            self._draft = edited
            first = exc.message.splitlines()[0] if exc.message else exc.title
            self.note.show(
                f"[$error]✗ {escape(exc.title)}: {escape(first)}[/] "
                "[$text-muted](e edits your text again; the preview is the last valid one)[/]"
            )
            return
        self._draft = None
        self.plan = plan
        self._show_plan()
        self.note.show("[$success]✓ the edited manifest is valid: the preview shows it[/]")

    def _run_editor(self, path: Path) -> int | None:
        """Hand the terminal to ``$EDITOR``; ``None`` when no terminal can be handed over."""
        command = [*_editor_command(), str(path)]
        try:
            with self.app.suspend():
                return subprocess.call(command)
        except SuspendNotSupported:
            if not self.app.is_headless:
                self.note.show("[$error]✗ this terminal cannot be handed to an editor[/]")
                return None
        # Headless (tests, scripts): no terminal to hand over; the editor runs on its own.
        return subprocess.call(command, stdin=subprocess.DEVNULL)


class ReasonsScreen(ModalScreen[None]):
    """Why a key did nothing, or why an action was refused or failed: a title, one message, and
    the reasons in words."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,enter", "dismiss", "Close", id="close"),
        Binding("c", "copy", "Copy", id="reasons-copy", tooltip="Copy the reasons (OSC 52)"),
    ]

    def __init__(
        self,
        title: str,
        message: str,
        reasons: Sequence[str | Check] = (),
        *,
        hint: str = "",
        error: bool = False,
    ) -> None:
        super().__init__(id="reasons")
        self.title_text = title
        self.message = message
        self.reasons = tuple(reasons)
        self.hint = hint
        self.error = error

    def compose(self) -> Iterable[Widget]:
        classes = "dialog -error" if self.error else "dialog -blocked"
        with Vertical(id="reasons-dialog", classes=classes):
            yield Line(escape(self.message), id="reasons-message")
            if self.reasons:
                lines = [reason_markup(reason) for reason in self.reasons]
                with VerticalScroll(id="reasons-body"):
                    yield Line("\n".join(lines), id="reasons-list")
            if self.hint:
                yield Line(f"[$text-muted]{escape(self.hint)}[/]", id="reasons-hint")
            yield Static("[$text-muted]esc closes · c copies[/]", classes="hint")

    def on_mount(self) -> None:
        self.query_one("#reasons-dialog").border_title = self.title_text
        self.call_after_refresh(self._fit)

    def on_resize(self) -> None:
        self.call_after_refresh(self._fit)

    def _fit(self) -> None:
        bodies = self.query("#reasons-body")
        if bodies:
            fit_body(self.query_one("#reasons-dialog"), bodies.first(), self.size.height)

    @property
    def texts(self) -> tuple[str, ...]:
        """The words of every reason listed."""
        return tuple(r.text if isinstance(r, Check) else r for r in self.reasons)

    def as_text(self) -> str:
        lines = [f"{self.title_text}: {self.message}"]
        for reason in self.reasons:
            if isinstance(reason, Check):
                lines.append(f"{'✓' if reason.ok else '✗'} {reason.text}")
            else:
                lines.append(f"- {reason}")
        return "\n".join(lines)

    def action_copy(self) -> None:
        self.app.copy_to_clipboard(self.as_text())
        self.notify("copied the reasons", timeout=3)
