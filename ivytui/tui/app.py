"""The Textual app: starts the hub (and the executor next to it) after the first frame, routes
its views and log entries to the screens, and routes the keys: those that act on the hub and the
screens here, those that drive the move to :mod:`ivytui.tui.drive`, the YAML of the object under
the cursor to :mod:`ivytui.tui.objects`.

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
from pathlib import Path
from typing import Any, ClassVar

from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.screen import Screen

from ivytui.config import Config
from ivytui.domain.actions import ACTION_OF_STEP
from ivytui.errors import IvyError
from ivytui.tui.drive import DRIVE_BINDINGS, DRIVE_IDS, Drive, mutates
from ivytui.tui.driving import Ended, Running
from ivytui.tui.keymap import bound_keys, declared_bindings, help_rows, load_keymap
from ivytui.tui.messages import (
    ActionDone,
    ActionError,
    ActionProgress,
    ActionsInterrupted,
    HubFailed,
    HubStarted,
    LogArrived,
    ViewChanged,
)
from ivytui.tui.objects import yaml_for
from ivytui.tui.panes.log import LocalEntry
from ivytui.tui.panes.runbook import RunbookPane
from ivytui.tui.protocols import (
    ExecutorFactory,
    ExecutorLike,
    HubFactory,
    HubLike,
    HubViewLike,
    LogEntryLike,
)
from ivytui.tui.screens.main import MainScreen

__all__ = ["IvyApp", "LocalEntry", "make_app", "run_app"]

AGE_TICK = 2.5
"""Seconds between re-renders of ages; the ages themselves move in 5-second steps or more."""

HUB_STOP_TIMEOUT = 5.0


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


class IvyApp(App[int]):
    """The console. The hub is created (if only a factory is given) and started after the
    first frame is painted, and stopped when the app exits."""

    CSS_PATH = "app.tcss"
    TITLE = "ivytui"
    ENABLE_COMMAND_PALETTE = True

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
        # One key per action of the move (the domain's table), and the takeover.
        *DRIVE_BINDINGS,
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
        keymap: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.hub: HubLike | None = hub
        self.hub_factory = hub_factory
        self.executor_factory = executor_factory
        self.executor: ExecutorLike | None = None
        self.executor_error: str | None = None
        self.drive = Drive(self)
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
        if keymap:
            self.set_keymap(keymap)

    def _fatal_error(self) -> None:
        """Exit after an unhandled exception, printing the traceback without the frames'
        local variables: they hold passwords and keys on their way to a client (Textual's own
        shows them)."""
        import rich
        from rich.segment import Segments
        from rich.traceback import Traceback

        self.bell()
        traceback = Traceback(show_locals=False, width=None, suppress=[rich])
        self._exit_renderables.append(
            Segments(self.console.render(traceback, self.console.options))
        )
        self._close_messages_no_wait()

    # -- lifecycle ---------------------------------------------------------------------------

    def get_default_screen(self) -> Screen[Any]:
        return self.main

    @property
    def main(self) -> MainScreen:
        """The main screen (built on first use, inside the running app)."""
        if self._main is None:
            self._main = MainScreen(self.config, step_keys=self.step_keys())
        return self._main

    @property
    def running(self) -> Running | None:
        """The action under way, if any."""
        return self.drive.running

    @property
    def last_ended(self) -> Ended | None:
        """How the last action ended, if one did."""
        return self.drive.last_ended

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
        """The executor, next to the started hub: every action goes through it. Once it is
        there, the actions an earlier console left without an outcome are read (once)."""
        if self.executor is not None:
            return
        try:
            factory = self.executor_factory or await load_default_executor_factory()
            self.executor = factory(hub)
        except Exception as exc:
            self.executor_error = f"{type(exc).__name__}: {exc}"
            self.log.error("the executor did not start", exc)
            self.say("error", f"actions unavailable: {exc}")
        else:
            self.executor_error = None
            self.drive.read_interrupted(self.executor)

    async def _stop_executor(self) -> None:
        """Close the executor: it releases the driver Lease."""
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
        await self.drive.quit()

    async def quit_now(self) -> None:
        """Quit without asking: cancel the action's worker, stop the executor and the hub."""
        code = self.exit_code()
        self.workers.cancel_group(self, "action")
        await self._stop_hub()
        self.exit(code)

    async def on_unmount(self) -> None:
        await self._stop_hub()

    # -- messages from the hub and the executor ----------------------------------------------

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
        self.say("error", f"{message.title}: {message.message}")

    def on_view_changed(self, message: ViewChanged) -> None:
        self.view = message.view
        alarm_keys = frozenset(alarm.key for alarm in message.view.alarms)
        if alarm_keys - self._alarm_keys:
            self.bell()
        self._alarm_keys = alarm_keys
        self._render()
        self.drive.show_notice()

    def on_log_arrived(self, message: LogArrived) -> None:
        self.add_log(message.entry)

    def on_action_progress(self, message: ActionProgress) -> None:
        self.drive.progress_arrived(message)

    def on_action_done(self, message: ActionDone) -> None:
        self.drive.done(message)

    def on_action_error(self, message: ActionError) -> None:
        self.drive.failed(message)

    def on_actions_interrupted(self, message: ActionsInterrupted) -> None:
        self.drive.interrupted_arrived(message)

    def add_log(self, entry: LogEntryLike) -> None:
        from ivytui.tui.screens.modals import LogScreen

        self.log_entries.append(entry)
        if not self.screen_stack:
            return  # a line the hub sent while the app was closing: kept, nowhere to show it
        self.main.add_log(entry)
        if isinstance(self.screen, LogScreen):
            self.screen.add(entry)

    def say(self, level: str, text: str) -> None:
        """A line of the UI's own in the event log."""
        self.add_log(LocalEntry(self.clock(), "ui", level, text))

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
        self.drive.tick()

    def action_rerender(self) -> None:
        """Render again (after a resize: the header and ruler change form)."""
        self._render()

    # -- keys --------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if mutates(action, parameters):
            # MONITOR mode: shown dimmed, does nothing (and the executor refuses too)
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

    def set_keymap(self, keymap: Mapping[str, str]) -> None:
        """Textual's keymap (binding id → keys); the runbook's key column follows it."""
        super().set_keymap(keymap)
        self._keys_changed()

    def update_keymap(self, keymap: Mapping[str, str]) -> None:
        super().update_keymap(keymap)
        self._keys_changed()

    def _keys_changed(self) -> None:
        if self._main is not None:
            self._main.runbook.set_keys(self.step_keys())

    @classmethod
    def declared_bindings(cls) -> list[Binding]:
        """Every binding of the app, the main screen and the runbook, as declared (the ids a
        keymap may remap)."""
        return declared_bindings((cls, MainScreen, RunbookPane))

    def bound_keys(self) -> dict[str, list[Binding]]:
        """binding id → its bindings as they are now, the keymap applied (one per key)."""
        return bound_keys((type(self), MainScreen, RunbookPane), self._keymap)

    def step_keys(self) -> dict[int, str]:
        """The key of each runbook step that has an action, as it is bound now."""
        bound = self.bound_keys()
        return {
            step: ",".join(self.get_key_display(b) for b in bound[action_id])
            for step, action_id in ACTION_OF_STEP.items()
            if bound.get(action_id)
        }

    def key_help(self) -> list[tuple[str, str]]:
        """(key, description) for every binding of the app, the main screen and the runbook,
        with the keymap applied; the keys of the move with their help line in full."""
        rows = help_rows(
            self.declared_bindings(),
            self.bound_keys(),
            self.get_key_display,
            full=DRIVE_IDS,
            skip={"quit-ctrl-c"},
        )
        rows.append(("ctrl+p", "Command palette"))
        rows.append(("↑ ↓", "Select a step, a pod or a backup in the focused pane"))
        return rows

    async def action_refresh_now(self) -> None:
        if self.hub is None or not self.hub_started:
            if self.start_error is not None:
                self.start_error = None
                self.main.show_start_error(None, None)
                self.start_hub()
            return
        self.say("info", "refresh asked")
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
        self.say("info", "paused" if paused else "resumed")
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
            self.say("info", f"poll every {seconds:g} s")
            self._render()

        self.push_screen(IntervalScreen(self.interval), chosen)

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

    def action_show_yaml(self) -> None:
        from ivytui.tui.screens.modals import TextViewScreen

        if not isinstance(self.screen, MainScreen):
            return
        key = self.main.object_key()
        found = yaml_for(self.view, key)
        if found is None:
            what = key or "the selection"
            self.notify(f"no YAML for {what} yet", severity="warning", timeout=3)
            return
        title, text, language = found
        self.push_screen(TextViewScreen(title, text, language=language))

    # -- driving the move (ivytui.tui.drive) -------------------------------------------------

    def action_act(self, action_id: str) -> None:
        """The key of one action of the domain's table (``act('freeze')``)."""
        self.drive.act(action_id)

    def action_act_on_step(self) -> None:
        """``enter`` in the runbook: the action of the selected step."""
        self.drive.act_on_step()

    def action_take_over(self) -> None:
        """``T``: take the driver Lease from another console (the cluster name typed)."""
        self.drive.take_over()

    # -- command palette ---------------------------------------------------------------------

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        bound = self.bound_keys()

        def key(binding_id: str) -> str:
            keys = [self.get_key_display(b) for b in bound.get(binding_id, ())]
            return f" ({', '.join(keys)})" if keys else ""

        yield SystemCommand(
            "Refresh now", f"Poll every source now{key('refresh')}", self.action_refresh_now
        )
        if self.paused:
            yield SystemCommand("Resume polling", f"Poll again{key('resume')}", self.action_resume)
        else:
            yield SystemCommand("Pause polling", f"Stop polling{key('pause')}", self.action_pause)
        yield SystemCommand(
            "Change the interval",
            f"Seconds between polls{key('interval')}",
            self.action_change_interval,
        )
        yield SystemCommand(
            "Show YAML", f"The object under the cursor as YAML{key('yaml')}", self.action_show_yaml
        )
        yield SystemCommand(
            "Show the log", f"The event log, full screen{key('log')}", self.action_show_log
        )
        yield SystemCommand(
            "Show help", f"Keys and how to read the screen{key('help')}", self.action_show_help
        )
        if not self.read_only:
            yield SystemCommand(
                "Take over driving",
                f"Take the driver Lease from another console{key('take-over')}",
                self.action_take_over,
            )


def make_app(
    config: Config,
    hub: HubLike | None = None,
    *,
    hub_factory: HubFactory | None = None,
    clock: Callable[[], float] = time.time,
    start_hub: bool = True,
    executor_factory: ExecutorFactory | None = None,
    keymap: Mapping[str, str] | None = None,
) -> IvyApp:
    """The console for ``config``. With neither ``hub`` nor ``hub_factory`` the real hub
    (``ivytui.sources.hub.Hub``) is imported and built after the first frame; without
    ``executor_factory`` the real executor (``ivytui.sources.actions.Executor``) is built on it
    once it has started. ``keymap`` (binding id → keys) remaps keys (``App.set_keymap``)."""
    return IvyApp(
        config,
        hub,
        hub_factory=hub_factory,
        clock=clock,
        start_hub=start_hub,
        executor_factory=executor_factory,
        keymap=keymap,
    )


def run_app(config: Config, *, keymap: str | Path | None = None) -> int:
    """Run the console in the terminal; returns the exit code (2 when the sources could not be
    started, after saying why in one line).

    ``keymap``: the keymap file (``--keymap``); without it ``$XDG_CONFIG_HOME/ivytui/keymap.yaml``
    if it exists. A bad keymap raises :class:`~ivytui.errors.ConfigError` (one line that names
    the file) before the screen starts.
    """
    found = load_keymap(keymap, IvyApp.declared_bindings())
    app = make_app(config, keymap=found)
    code = app.run()
    if app.start_error is not None and code != 0:
        title, message = app.start_error
        print(f"ivytui: {title}: {message}", file=sys.stderr)
    return int(code or 0)
