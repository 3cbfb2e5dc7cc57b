"""The Textual app: starts the hub (and the executor next to it) after the first frame, routes
its views and log entries to the screens, and owns the keys that act on the hub and drive the
move, one key per runbook step.

``make_app`` is the factory used by the CLI, the tests and the screenshot script;
``run_app`` runs it for the CLI and returns the exit code.
"""

from __future__ import annotations

import asyncio
import importlib
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.dom import DOMNode
from textual.screen import Screen

from ivytui.config import Config
from ivytui.errors import IvyError
from ivytui.tui.driving import (
    ACTION_OF_STEP,
    BY_KEY,
    NO_ACTION,
    Ended,
    Running,
    conflict_hint,
    done_markup,
    failed_markup,
    quit_question,
    refusal,
    running_markup,
)
from ivytui.tui.messages import (
    ActionDone,
    ActionError,
    ActionProgress,
    HubFailed,
    HubStarted,
    LogArrived,
    ViewChanged,
)
from ivytui.tui.panes.runbook import RunbookPane
from ivytui.tui.protocols import (
    ExecutorFactory,
    ExecutorLike,
    HubFactory,
    HubLike,
    HubViewLike,
    LogEntryLike,
    PlanLike,
)
from ivytui.tui.screens.main import MainScreen

if TYPE_CHECKING:
    from ivytui.tui.screens.confirm import ConfirmScreen

AGE_TICK = 2.5
"""Seconds between re-renders of ages; the ages themselves move in 5-second steps or more."""

HUB_STOP_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class LocalEntry:
    """A log line made by the UI itself (refresh asked, interval changed, hub errors)."""

    at: float
    source: str
    level: str
    text: str


def _default_hub_factory(module: Any) -> HubFactory:
    hub_class = module.Hub

    def build(config: Config) -> HubLike:
        hub: HubLike = hub_class(config)
        return hub

    return build


async def load_default_hub_factory() -> HubFactory:
    """``ivytui.sources.hub.Hub``, imported in a thread: its clients are slow to import."""
    module = await asyncio.to_thread(importlib.import_module, "ivytui.sources.hub")
    return _default_hub_factory(module)


async def load_default_executor_factory() -> ExecutorFactory:
    """``ivytui.sources.actions.Executor`` on the app's hub, imported in a thread after the
    first frame, like the hub."""
    module = await asyncio.to_thread(importlib.import_module, "ivytui.sources.actions")
    executor_class = module.Executor

    def build(hub: HubLike) -> ExecutorLike:
        executor: ExecutorLike = executor_class(hub)
        return executor

    return build


def to_plain(obj: Any) -> Any:
    """Mappings and sequences as plain dicts and lists, for YAML."""
    if isinstance(obj, Mapping):
        return {str(key): to_plain(value) for key, value in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_plain(item) for item in obj]
    return obj


def object_text(obj: Mapping[str, Any]) -> tuple[str, str | None]:
    """The text and the highlighting language of an object from ``HubView.objects``."""
    if set(obj) == {"text"} and isinstance(obj["text"], str):
        return obj["text"], None
    import yaml

    text = yaml.safe_dump(to_plain(obj), sort_keys=False, allow_unicode=True, width=100)
    return text, "yaml"


class IvyApp(App[int]):
    """The console. The hub is created (if only a factory is given) and started after the
    first frame is painted, and stopped when the app exits."""

    CSS_PATH = "app.tcss"
    TITLE = "ivytui"
    ENABLE_COMMAND_PALETTE = True

    MUTATING_ACTIONS: ClassVar[frozenset[str]] = frozenset(
        {
            "create_standby",
            "freeze",
            "thaw",
            "shutdown_v4",
            "promote",
            "grants",
            "retire_v4",
            "abort",
            "act_on_step",
        }
    )
    """Actions that change a cluster. In MONITOR mode ``check_action`` returns ``None`` for
    them: the footer shows them dimmed and they do nothing (and the executor refuses too)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("question_mark", "show_help", "Help", id="help", key_display="?"),
        Binding("q", "quit", "Quit", id="quit"),
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True, id="quit-ctrl-c"),
        Binding("r", "refresh_now", "Refresh", id="refresh", tooltip="Poll every source now"),
        Binding("p", "pause", "Pause", id="pause", tooltip="Stop polling"),
        Binding("p", "resume", "Resume", id="resume", tooltip="Poll again"),
        Binding("i", "change_interval", "Interval", id="interval"),
        Binding("y", "show_yaml", "YAML", id="yaml", tooltip="The object under the cursor as YAML"),
        Binding("l", "show_log", "Log", id="log", tooltip="The event log, full screen"),
        # One key per runbook step: the confirm modal with the plan, or the reasons it is blocked.
        Binding(
            "c",
            "create_standby",
            "Standby",
            id="create-standby",
            tooltip="Step 1: the v5 standby built from v4 (YAML preview, dry run, apply)",
        ),
        Binding(
            "f",
            "freeze",
            "Freeze",
            id="freeze",
            tooltip="Step 3: freeze writes on v4, final WAL switch, wait until v5 replayed it",
        ),
        Binding(
            "u", "thaw", "Thaw", id="thaw", tooltip="Undo step 3 before step 4: v4 writable again"
        ),
        Binding(
            "s",
            "shutdown_v4",
            "Shutdown",
            id="shutdown-v4",
            tooltip="Step 4: spec.shutdown on the v4 cluster, then wait until it is proven down",
        ),
        Binding(
            "o",
            "promote",
            "Promote",
            id="promote",
            tooltip="Step 5: spec.standby.enabled false on v5, once v4 is proven down",
        ),
        Binding(
            "g",
            "grants",
            "Grants",
            id="grants",
            tooltip="Step 6: the replication role and its four grants, on v5",
        ),
        Binding(
            "x",
            "retire_v4",
            "Retire",
            id="retire-v4",
            tooltip="Step 7: export v4's credentials, delete the v4 object (type its name)",
        ),
        Binding(
            "a",
            "abort",
            "Abort",
            id="abort",
            tooltip="Before promotion: restart v4 and remove the standby (type the name)",
        ),
    ]

    def __init__(
        self,
        config: Config,
        hub: HubLike | None = None,
        *,
        hub_factory: HubFactory | None = None,
        clock: Callable[[], float] = time.time,
        start_hub: bool = True,
        executor_factory: ExecutorFactory | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.hub: HubLike | None = hub
        self.hub_factory = hub_factory
        self.executor_factory = executor_factory
        self.executor: ExecutorLike | None = None
        self.executor_error: str | None = None
        self.running: Running | None = None
        self.last_ended: Ended | None = None
        self._asking_quit: ConfirmScreen | None = None
        self._alarm_keys: frozenset[str] = frozenset()
        self.clock = clock
        self.auto_start_hub = start_hub
        self.view: HubViewLike | None = None
        self.log_entries: deque[LogEntryLike] = deque(maxlen=5000)
        self.paused = False
        self.interval = config.interval
        self.start_error: tuple[str, str] | None = None
        self.hub_started = False
        self._main: MainScreen | None = None
        self._wired: HubLike | None = None
        self._hub_touched = False

    # -- lifecycle ---------------------------------------------------------------------------

    def get_default_screen(self) -> Screen[Any]:
        return self.main

    @property
    def main(self) -> MainScreen:
        """The main screen (built on first use, inside the running app)."""
        if self._main is None:
            self._main = MainScreen(self.config)
        return self._main

    @property
    def read_only(self) -> bool:
        return self.config.read_only or (self.view is not None and self.view.read_only)

    @property
    def stale_after(self) -> float:
        return max(self.config.thresholds.stale_seconds, 3 * self.interval)

    def on_mount(self) -> None:
        self._render_header()
        self.set_interval(AGE_TICK, self._tick, name="ages")
        if self.auto_start_hub:
            self.call_after_refresh(self.start_hub)

    def start_hub(self) -> None:
        """Create (if needed) and start the hub in a worker; the UI stays responsive."""
        self.run_worker(self._start_hub(), name="hub-start", group="hub", exclusive=True)

    async def _start_hub(self) -> None:
        try:
            hub = self.hub
            if hub is None:
                factory = self.hub_factory or await load_default_hub_factory()
                hub = factory(self.config)
                self.hub = hub
            if self._wired is not hub:
                hub.on_view(self._hub_view)
                hub.on_log(self._hub_log)
                self._wired = hub
            self._hub_touched = True
            await hub.start()
            await self._start_executor(hub)
        except IvyError as exc:
            self.post_message(HubFailed(exc.title, exc.message))
            return
        except Exception as exc:
            self.log.error("the hub did not start", exc)
            self.post_message(HubFailed("unexpected error", f"{type(exc).__name__}: {exc}"))
            return
        self.post_message(HubStarted(hub))

    async def _start_executor(self, hub: HubLike) -> None:
        """The executor, next to the started hub: every action goes through it."""
        if self.executor is not None:
            return
        try:
            factory = self.executor_factory or await load_default_executor_factory()
            self.executor = factory(hub)
        except Exception as exc:
            self.executor_error = f"{type(exc).__name__}: {exc}"
            self.log.error("the executor did not start", exc)
            self.add_log(LocalEntry(self.clock(), "ui", "error", f"actions unavailable: {exc}"))
        else:
            self.executor_error = None

    async def _stop_executor(self) -> None:
        executor, self.executor = self.executor, None
        if executor is None:
            return
        try:
            await asyncio.wait_for(executor.close(), HUB_STOP_TIMEOUT)
        except Exception as exc:
            self.log.warning("the executor did not close cleanly", exc)

    def _hub_view(self, view: Any) -> None:
        self.post_message(ViewChanged(view))

    def _hub_log(self, entry: Any) -> None:
        self.post_message(LogArrived(entry))

    async def _stop_hub(self) -> None:
        """Stop the executor and the hub once, even after a failed start (they may hold
        connections)."""
        await self._stop_executor()
        hub = self.hub
        if hub is None or not self._hub_touched:
            return
        self._hub_touched = False
        self.hub_started = False
        try:
            await asyncio.wait_for(hub.stop(), HUB_STOP_TIMEOUT)
        except Exception as exc:
            self.log.warning("the hub did not stop cleanly", exc)

    def exit_code(self) -> int:
        """2 when the sources never started (the reason was shown), else 0."""
        return 2 if self.start_error is not None and not self.hub_started else 0

    async def action_quit(self) -> None:
        """Quit; while an action runs, ask first (a second ctrl+c quits at once)."""
        from ivytui.tui.screens.confirm import ConfirmScreen

        if self.running is not None and self._asking_quit is None:
            question = ConfirmScreen(
                quit_question(self.running, self.clock()), yes_label="Quit anyway"
            )
            self._asking_quit = question

            async def answered(yes: bool | None) -> None:
                self._asking_quit = None
                if yes:
                    await self._quit()

            self.push_screen(question, answered)
            return
        await self._quit()

    async def _quit(self) -> None:
        code = self.exit_code()
        self.workers.cancel_group(self, "action")
        await self._stop_hub()
        self.exit(code)

    async def on_unmount(self) -> None:
        await self._stop_hub()

    # -- messages from the hub ---------------------------------------------------------------

    def on_hub_started(self, message: HubStarted) -> None:
        self.hub_started = True
        self.start_error = None
        self.main.show_start_error(None, None)
        self.view = message.hub.view if self.view is None else self.view
        if self.view is not None:
            self._render()

    def on_hub_failed(self, message: HubFailed) -> None:
        self.start_error = (message.title, message.message)
        self.main.show_start_error(message.title, message.message)
        self.add_log(LocalEntry(self.clock(), "ui", "error", f"{message.title}: {message.message}"))

    def on_view_changed(self, message: ViewChanged) -> None:
        self.view = message.view
        alarm_keys = frozenset(alarm.key for alarm in message.view.alarms)
        if alarm_keys - self._alarm_keys:
            self.bell()
        self._alarm_keys = alarm_keys
        self._render()

    def on_log_arrived(self, message: LogArrived) -> None:
        self.add_log(message.entry)

    def add_log(self, entry: LogEntryLike) -> None:
        from ivytui.tui.screens.modals import LogScreen

        self.log_entries.append(entry)
        self.main.add_log(entry)
        if isinstance(self.screen, LogScreen):
            self.screen.add(entry)

    # -- rendering ---------------------------------------------------------------------------

    def _render_header(self) -> None:
        self.main.show_header(
            self.view,
            self.clock(),
            read_only=self.read_only,
            paused=self.paused,
            interval=self.interval,
        )

    def _render(self) -> None:
        now = self.clock()
        with self.batch_update():
            self._render_header()
            if self.view is not None:
                self.main.show_view(self.view, now, stale_after=self.stale_after)

    def _tick(self) -> None:
        self._render()
        if self.running is not None:
            self.main.show_progress(running_markup(self.running, self.clock()))

    def action_rerender(self) -> None:
        """Render again (after a resize: the header and ruler change form)."""
        self._render()

    # -- actions -----------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in self.MUTATING_ACTIONS:
            if self.read_only:
                return None
            return self.screen is self.main
        if action == "pause":
            return not self.paused
        if action == "resume":
            return self.paused
        if action in ("show_yaml", "show_log"):
            return self.screen is self.main
        return True

    async def action_refresh_now(self) -> None:
        if self.hub is None or not self.hub_started:
            if self.start_error is not None:
                self.start_error = None
                self.main.show_start_error(None, None)
                self.start_hub()
            return
        self.add_log(LocalEntry(self.clock(), "ui", "info", "refresh asked"))
        self.run_worker(self.hub.refresh(), name="refresh", group="refresh", exclusive=True)

    def action_pause(self) -> None:
        self._set_paused(True)

    def action_resume(self) -> None:
        self._set_paused(False)

    def _set_paused(self, paused: bool) -> None:
        self.paused = paused
        if self.hub is not None:
            if paused:
                self.hub.pause()
            else:
                self.hub.resume()
        self.add_log(LocalEntry(self.clock(), "ui", "info", "paused" if paused else "resumed"))
        self.refresh_bindings()
        self._render()

    def action_change_interval(self) -> None:
        from ivytui.tui.screens.modals import IntervalScreen

        def chosen(seconds: float | None) -> None:
            if seconds is None:
                return
            self.interval = seconds
            if self.hub is not None:
                self.hub.set_interval(seconds)
            self.add_log(LocalEntry(self.clock(), "ui", "info", f"poll every {seconds:g} s"))
            self._render()

        self.push_screen(IntervalScreen(self.interval), chosen)

    def key_help(self) -> list[tuple[str, str]]:
        """(key, description) for every binding of the app and the main screen; bindings that
        share a key (pause / resume) share a line."""
        rows: dict[str, list[str]] = {}
        for binding in (
            *self._bindings_of(type(self)),
            *self._bindings_of(MainScreen),
            *self._bindings_of(RunbookPane),
        ):
            if binding.id == "quit-ctrl-c":
                continue
            key = binding.key_display or self.get_key_display(binding)
            descriptions = rows.setdefault(key, [])
            description = binding.description or binding.action
            if binding.action.removeprefix("app.") in self.MUTATING_ACTIONS and binding.tooltip:
                description = binding.tooltip
            if description not in descriptions:
                descriptions.append(description)
        found = [(key, " / ".join(descriptions)) for key, descriptions in rows.items()]
        found.append(("ctrl+p", "Command palette"))
        found.append(("↑ ↓", "Select a step, a pod or a backup in the focused pane"))
        return found

    @staticmethod
    def _bindings_of(cls: type[DOMNode]) -> Iterable[Binding]:
        for binding in cls.BINDINGS:
            if isinstance(binding, Binding):
                yield binding

    def action_show_help(self) -> None:
        from ivytui.tui.screens.modals import HelpScreen

        if isinstance(self.screen, HelpScreen):
            return
        self.push_screen(HelpScreen(self.key_help(), read_only=self.read_only))

    def action_show_log(self) -> None:
        from ivytui.tui.screens.modals import LogScreen

        if isinstance(self.screen, LogScreen):
            return
        self.push_screen(LogScreen(self.log_entries))

    def yaml_for(self, key: str | None) -> tuple[str, str, str | None] | None:
        """(title, text, language) for the object ``key`` of the current view."""
        if key is None or self.view is None:
            return None
        if key.startswith("step/"):
            number = int(key.split("/", 1)[1])
            for step in self.view.steps:
                if step.number == number:
                    data = {
                        "step": step.number,
                        "title": step.title,
                        "state": step.state,
                        "summary": step.summary,
                        "checks": [
                            {"ok": c.ok, "text": c.text, "sources": list(c.sources)}
                            for c in step.checks
                        ],
                    }
                    text, language = object_text(data)
                    return f"step {step.number}: {step.title}", text, language
            return None
        obj = self.view.objects.get(key)
        if obj is None:
            return None
        text, language = object_text(obj)
        return key, text, language

    def action_show_yaml(self) -> None:
        from ivytui.tui.screens.modals import TextViewScreen

        if not isinstance(self.screen, MainScreen):
            return
        key = self.main.object_key()
        found = self.yaml_for(key)
        if found is None:
            what = key or "the selection"
            self.notify(f"no YAML for {what} yet", severity="warning", timeout=3)
            return
        title, text, language = found
        self.push_screen(TextViewScreen(title, text, language=language))

    # -- driving the move: one key per step --------------------------------------------------

    def action_create_standby(self) -> None:
        self.act("create-standby")

    def action_freeze(self) -> None:
        self.act("freeze")

    def action_thaw(self) -> None:
        self.act("thaw")

    def action_shutdown_v4(self) -> None:
        self.act("shutdown-v4")

    def action_promote(self) -> None:
        self.act("promote")

    def action_grants(self) -> None:
        self.act("grants")

    def action_retire_v4(self) -> None:
        self.act("retire-v4")

    def action_abort(self) -> None:
        self.act("abort")

    def action_act_on_step(self) -> None:
        """``enter`` in the runbook: the action of the selected step."""
        step = self.main.runbook.selected_step
        if step is None:
            self.notify("no step is selected", severity="warning", timeout=3)
            return
        key = ACTION_OF_STEP.get(step.number)
        if key is None:
            self.notify(NO_ACTION.get(step.number, "this step has no action"), timeout=6)
            return
        self.act(key)

    def act(self, key: str) -> None:
        """The key of an action: the reasons if it cannot act now, else its plan in the confirm
        modal (built in a worker: it may read the cluster)."""
        from ivytui.tui.screens.confirm import ReasonsScreen

        if self.read_only:
            self.notify("MONITOR mode: no key changes anything", severity="warning", timeout=4)
            return
        if self.running is not None:
            self.notify(
                f"wait: “{self.running.title}” is still running ({self.running.stage})",
                severity="warning",
                timeout=5,
            )
            return
        if self.executor is None:
            why = self.executor_error or "the sources are still starting"
            self.notify(f"actions are not available yet: {why}", severity="warning", timeout=5)
            return
        if self.view is None:
            self.notify("no data yet: wait for the first snapshot", severity="warning", timeout=4)
            return
        found = refusal(self.view, key)
        if found is not None:
            self.push_screen(ReasonsScreen(found.title, found.summary, found.reasons))
            return
        self.run_worker(self._open_plan(key), name=f"plan {key}", group="plan", exclusive=True)

    async def _open_plan(self, key: str) -> None:
        from ivytui.tui.screens.confirm import ConfirmScreen

        executor = self.executor
        if executor is None:
            return
        title = BY_KEY[key].title
        try:
            plan = await executor.plan(key)
        except IvyError as exc:
            self.post_message(ActionError(title, exc.title, exc.message, _checks_of(exc)))
            return
        except Exception as exc:
            self.log.error("the plan could not be built", exc)
            self.post_message(
                ActionError(title, "unexpected error", f"{type(exc).__name__}: {exc}")
            )
            return
        failing: tuple[str, ...] = ()
        if plan.override_needed and self.view is not None:
            step = next((s for s in self.view.steps if s.number == plan.step), None)
            failing = tuple(c.text for c in step.failing) if step is not None else ()

        async def replan(terminate: bool) -> PlanLike:
            return await executor.plan(key, terminate_sessions=terminate)

        screen = ConfirmScreen(
            plan,
            cluster=self.config.cluster,
            failing=failing,
            replan=replan if key == "freeze" else None,
            edit=executor.with_edited if key == "create-standby" and plan.yaml else None,
        )

        def answered(yes: bool | None) -> None:
            if yes:
                self.start_action(screen.plan, typed=screen.typed, override=screen.override)

        self.push_screen(screen, answered)

    def start_action(self, plan: PlanLike, *, typed: str = "", override: str = "") -> None:
        """Run a confirmed plan in a worker; the screen stays live and shows its progress."""
        if self.running is not None or self.executor is None:
            return
        self.running = Running(plan.key, plan.title, self.clock())
        self.main.show_progress(running_markup(self.running, self.clock()))
        self.add_log(LocalEntry(self.clock(), "ui", "info", f"{plan.title}: confirmed"))
        self.run_worker(
            self._execute(self.executor, plan, typed=typed, override=override),
            name=f"action {plan.key}",
            group="action",
            exit_on_error=False,
        )

    async def _execute(
        self, executor: ExecutorLike, plan: PlanLike, *, typed: str, override: str
    ) -> None:
        try:
            outcome = await executor.execute(
                plan, override=override, typed=typed, progress=self._action_progress
            )
        except IvyError as exc:
            self.post_message(ActionError(plan.title, exc.title, exc.message, _checks_of(exc)))
        except Exception as exc:
            self.log.error("the action failed unexpectedly", exc)
            self.post_message(
                ActionError(plan.title, "unexpected error", f"{type(exc).__name__}: {exc}")
            )
        else:
            self.post_message(ActionDone(plan.title, outcome.text))

    def _action_progress(self, text: str) -> None:
        self.post_message(ActionProgress(text))

    def on_action_progress(self, message: ActionProgress) -> None:
        if self.running is None:
            return
        self.running.stage = message.text
        self.main.show_progress(running_markup(self.running, self.clock()))
        self.add_log(
            LocalEntry(self.clock(), "ui", "info", f"{self.running.title}: {message.text}")
        )

    def on_action_done(self, message: ActionDone) -> None:
        self.running = None
        self.last_ended = Ended(message.title, True, message.text, self.clock())
        self.main.show_progress(done_markup(message.title, message.text))
        self.add_log(LocalEntry(self.clock(), "ui", "info", f"{message.title}: {message.text}"))
        self.notify(message.text, title=f"done: {message.title}", timeout=6)
        self._refresh_after_action()

    def on_action_error(self, message: ActionError) -> None:
        from ivytui.tui.screens.confirm import ReasonsScreen

        self.running = None
        self.last_ended = Ended(
            message.action, False, f"{message.title}: {message.message}", self.clock()
        )
        self.main.show_progress(failed_markup(message.action, message.title, message.message))
        self.add_log(
            LocalEntry(
                self.clock(), "ui", "error", f"{message.action}: {message.title}: {message.message}"
            )
        )
        self.push_screen(
            ReasonsScreen(
                f"{message.action}: {message.title}",
                message.message,
                message.checks,
                hint=conflict_hint() if message.title == "conflict" else "",
                error=True,
            )
        )
        self._refresh_after_action()

    def _refresh_after_action(self) -> None:
        if self.hub is not None and self.hub_started:
            self.run_worker(self.hub.refresh(), name="refresh", group="refresh", exclusive=True)

    # -- command palette ---------------------------------------------------------------------

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Refresh now", "Poll every source now (r)", self.action_refresh_now)
        if self.paused:
            yield SystemCommand("Resume polling", "Poll again (p)", self.action_resume)
        else:
            yield SystemCommand("Pause polling", "Stop polling (p)", self.action_pause)
        yield SystemCommand(
            "Change the interval", "Seconds between polls (i)", self.action_change_interval
        )
        yield SystemCommand(
            "Show YAML", "The object under the cursor as YAML (y)", self.action_show_yaml
        )
        yield SystemCommand("Show the log", "The event log, full screen (l)", self.action_show_log)
        yield SystemCommand(
            "Show help", "Keys and how to read the screen (?)", self.action_show_help
        )


def _checks_of(exc: IvyError) -> tuple[str, ...]:
    """The failing checks a guard's refusal carries (``GuardRefused.checks``), if any."""
    checks = getattr(exc, "checks", ())
    return tuple(str(c) for c in checks) if isinstance(checks, tuple | list) else ()


def make_app(
    config: Config,
    hub: HubLike | None = None,
    *,
    hub_factory: HubFactory | None = None,
    clock: Callable[[], float] = time.time,
    start_hub: bool = True,
    executor_factory: ExecutorFactory | None = None,
) -> IvyApp:
    """The console for ``config``. With neither ``hub`` nor ``hub_factory`` the real hub
    (``ivytui.sources.hub.Hub``) is imported and built after the first frame; without
    ``executor_factory`` the real executor (``ivytui.sources.actions.Executor``) is built on it
    once it has started."""
    return IvyApp(
        config,
        hub,
        hub_factory=hub_factory,
        clock=clock,
        start_hub=start_hub,
        executor_factory=executor_factory,
    )


def run_app(config: Config) -> int:
    """Run the console in the terminal; returns the exit code (2 when the sources could not be
    started, after saying why in one line)."""
    app = make_app(config)
    code = app.run()
    if app.start_error is not None and code != 0:
        title, message = app.start_error
        print(f"ivytui: {title}: {message}", file=sys.stderr)
    return int(code or 0)
