"""``ivytui demo``: the console opens at once on a start-up screen that follows the sandbox world
as it starts (``progress.jsonl``), then switches to the main screen with a real hub.

The caller started the world (``control.spawn``) and tears it down after :func:`run_demo`.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar

from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.markup import escape
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer, ProgressBar

from ivytui.config import Config
from ivytui.sandbox.control import PROGRESS_FILE, STATE_FILE
from ivytui.tui.app import IvyApp
from ivytui.tui.keymap import load_keymap
from ivytui.tui.messages import WorldFailed, WorldProgress, WorldReady
from ivytui.tui.widgets import Line

POLL_SECONDS = 0.2


def config_from_world(directory: Path, state: dict[str, Any], *, read_only: bool) -> Config:
    """The console's settings for a sandbox world (``world.json`` and its kubeconfig)."""
    return Config(
        cluster=str(state["cluster"]),
        namespace=str(state["namespace"]),
        flavor=str(state.get("flavor") or "ivyo"),
        v5_name=str(state.get("v5_name") or ""),
        kubeconfig=str(directory / "kubeconfig"),
        read_only=read_only,
    )


class ProgressTail:
    """Reads new complete lines of ``progress.jsonl`` without blocking."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._pos = 0
        self._buffer = ""

    def read(self) -> list[dict[str, Any]]:
        try:
            with self.path.open() as fh:
                fh.seek(self._pos)
                chunk = fh.read()
                self._pos = fh.tell()
        except FileNotFoundError:
            return []
        self._buffer += chunk
        *lines, self._buffer = self._buffer.split("\n")
        records = []
        for line in lines:
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict):
                records.append(record)
        return records


class StartupScreen(Screen[None]):
    """Each stage of the world as it starts, a progress bar, and the error in words."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "app.quit", "Quit", id="quit"),
    ]

    def __init__(self, directory: Path, proc: subprocess.Popen[bytes]) -> None:
        super().__init__(id="startup")
        self.directory = directory
        self.proc = proc
        self.tail = ProgressTail(directory / PROGRESS_FILE)
        self.stages: list[str] = []
        self.finished = False
        self.stages_line = Line(
            "[$text-muted]waiting for the world to report…[/]", id="startup-stages"
        )
        self.bar = ProgressBar(total=100, show_eta=False, id="startup-progress")
        self.error_line = Line("", id="startup-error")
        self.error_line.display = False

    def compose(self) -> Iterable[Widget]:
        with Vertical(id="startup-dialog"):
            yield self.stages_line
            yield self.bar
            yield self.error_line
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(
            "#startup-dialog"
        ).border_title = f"starting the sandbox world in {self.directory}"
        self.set_interval(POLL_SECONDS, self.poll, name="world-progress")

    def poll(self) -> None:
        """Read new progress records; notice a supervisor that died without saying why."""
        if self.finished:
            return
        for record in self.tail.read():
            if "error" in record:
                self.post_message(WorldFailed(str(record["error"])))
                self.finished = True
                return
            stage = str(record.get("stage", ""))
            progress = float(record.get("progress", 0.0))
            self.post_message(WorldProgress(stage, progress, float(record.get("time", 0.0))))
            if stage == "ready":
                self.finished = True
                self.post_message(WorldReady(self._read_state()))
                return
        code = self.proc.poll()
        if code is not None:
            self.finished = True
            self.post_message(
                WorldFailed(
                    f"the sandbox supervisor exited with code {code} before the world was ready "
                    f"(see {self.directory / 'world.log'})"
                )
            )

    def _read_state(self) -> dict[str, Any]:
        try:
            data = json.loads((self.directory / STATE_FILE).read_text())
        except (OSError, json.JSONDecodeError):
            return {}
        return data if isinstance(data, dict) else {}

    def on_world_progress(self, message: WorldProgress) -> None:
        if message.stage != "ready":
            self.stages.append(message.stage)
        lines = [f"[$success]✓[/] {escape(stage)}" for stage in self.stages[:-1]]
        if self.stages:
            lines.append(f"[$accent]…[/] [b]{escape(self.stages[-1])}[/]")
        if message.stage == "ready":
            lines = [f"[$success]✓[/] {escape(stage)}" for stage in self.stages]
            lines.append("[$success]✓ ready[/]")
        self.stages_line.show("\n".join(lines))
        self.bar.update(progress=round(message.progress * 100))

    def show_error(self, error: str) -> None:
        self.error_line.show(
            f"[b]The sandbox world did not start.[/]\n{escape(error)}\n\n"
            "[$text-muted]press q to quit[/]"
        )
        self.error_line.display = True


class DemoApp(IvyApp):
    """The console on a sandbox world that is still starting."""

    def __init__(
        self,
        directory: Path,
        proc: subprocess.Popen[bytes],
        *,
        read_only: bool,
        keymap: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(Config(read_only=read_only), start_hub=False, keymap=keymap)
        self.directory = directory
        self.proc = proc
        self.startup = StartupScreen(directory, proc)
        self.world_error: str | None = None

    def get_default_screen(self) -> Screen[Any]:
        return self.startup

    def on_world_failed(self, message: WorldFailed) -> None:
        self.world_error = message.error
        self.startup.show_error(message.error)

    def on_world_ready(self, message: WorldReady) -> None:
        if not message.state:
            self.on_world_failed(WorldFailed(f"the world is ready but {STATE_FILE} is unreadable"))
            return
        self.config = config_from_world(
            self.directory, message.state, read_only=self.config.read_only
        )
        self.interval = self.config.interval
        self._main = None
        self.push_screen(self.main)
        self._render_header()
        self.call_after_refresh(self.start_hub)

    def exit_code(self) -> int:
        return 2 if self.world_error is not None else super().exit_code()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if self.screen is self.startup and action not in ("quit", "show_help", "command_palette"):
            return False
        return super().check_action(action, parameters)


def run_demo(directory: Path, proc: subprocess.Popen[bytes], *, read_only: bool) -> int:
    """Run the console on the world being started in ``directory``; returns the exit code
    (2 when the world failed to start). The caller tears the world down. The user's keymap
    file applies as in the console (a bad one is a ``ConfigError`` before the screen starts)."""
    keymap = load_keymap(None, DemoApp.declared_bindings())
    app = DemoApp(directory, proc, read_only=read_only, keymap=keymap)
    code = app.run()
    if code is None:
        code = app.exit_code()
    return int(code)
