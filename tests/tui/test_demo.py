"""``ivytui demo``: the start-up screen follows progress.jsonl, then the main screen opens."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ivytui.tui.demo import DemoApp, StartupScreen
from ivytui.tui.screens.main import MainScreen


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """Stands in for the world's supervisor: alive until killed."""
    proc = subprocess.Popen(["sleep", "60"])
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def progress(directory: Path, **record: Any) -> None:
    with (directory / "progress.jsonl").open("a") as fh:
        fh.write(json.dumps({"time": time.time(), **record}) + "\n")


async def wait_for(pilot: Any, what: str, predicate: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g} s: {what}")
        await pilot.pause(0.1)


async def test_stages_then_the_error_in_words(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    app = DemoApp(tmp_path, sleeper, read_only=False)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.startup
        assert isinstance(app.screen, StartupScreen)
        progress(tmp_path, stage="starting the S3 server", progress=0.125)
        progress(tmp_path, stage="starting the v4 primary", progress=0.375)
        await wait_for(pilot, "two stages", lambda: len(screen.stages) == 2, 5)
        assert screen.bar.progress == 38
        assert "✓[/] starting the S3 server" in screen.stages_line.markup_text
        assert "[b]starting the v4 primary[/]" in screen.stages_line.markup_text
        await pilot.press("r", "y")
        assert app.screen is screen
        progress(tmp_path, error="PostgreSQL was not found: install postgresql")
        await wait_for(pilot, "the error", lambda: screen.error_line.display, 5)
        assert "PostgreSQL was not found" in screen.error_line.markup_text
        assert "press q to quit" in screen.error_line.markup_text
        await pilot.press("q")
    assert app.return_value == 2


async def test_a_supervisor_that_dies_is_reported(tmp_path: Path) -> None:
    proc = subprocess.Popen(["true"])
    proc.wait()
    app = DemoApp(tmp_path, proc, read_only=False)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.startup
        assert app.screen is screen
        await wait_for(pilot, "the error", lambda: screen.error_line.display, 5)
        assert "exited with code 0 before the world was ready" in screen.error_line.markup_text


@pytest.mark.world
async def test_ready_opens_the_main_screen_on_the_world(
    tmp_path: Path, sleeper: subprocess.Popen[bytes], world: Any
) -> None:
    shutil.copy(world.dir / "world.json", tmp_path / "world.json")
    shutil.copy(world.dir / "kubeconfig", tmp_path / "kubeconfig")
    app = DemoApp(tmp_path, sleeper, read_only=True)
    async with app.run_test(size=(160, 48)) as pilot:
        progress(tmp_path, stage="creating the v5 standby", progress=0.875)
        progress(tmp_path, stage="ready", progress=1.0)
        await wait_for(pilot, "the main screen", lambda: isinstance(app.screen, MainScreen), 5)
        assert app.config.cluster == world.cluster
        assert app.config.kubeconfig == str(tmp_path / "kubeconfig")
        assert "MONITOR" in app.main.header.markup_text
        await wait_for(
            pilot,
            "v4 and v5 positions on screen",
            lambda: (
                app.view is not None
                and app.view.snapshot.v4db.reachable
                and app.view.snapshot.v5db.reachable
            ),
            20,
        )
        await pilot.press("q")
    assert app.return_value == 0
