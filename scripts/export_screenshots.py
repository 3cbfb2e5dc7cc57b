"""Start a sandbox world, open the console on it with the real hub and executor, and save SVG
screenshots into ``screenshots/``: the confirm modal of step 1 with its YAML and a blocked step's
checks (before the standby exists), then — the standby created with its key — the main screen at
160×48 and 80×24, the help, a YAML view, the log, the storage pane when the bucket stops
answering, the freeze's SQL, the progress line while it runs, and (the move driven on with its
keys) the typed-name confirm of the retirement. The world is torn down at the end.

    .venv/bin/python scripts/export_screenshots.py [--out screenshots]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ivytui.config import Config, Thresholds  # noqa: E402
from ivytui.sandbox import control  # noqa: E402
from ivytui.tui.app import IvyApp, make_app  # noqa: E402
from ivytui.tui.demo import config_from_world  # noqa: E402
from ivytui.tui.screens.confirm import ConfirmScreen, ReasonsScreen  # noqa: E402

WIDE = (160, 48)
NARROW = (80, 24)


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def filled(app: IvyApp) -> bool:
    """All three panes hold values from every source, and v5 has a replay position."""
    view = app.view
    if view is None:
        return False
    s = view.snapshot
    return (
        all(
            src.observed_at > 0 and src.error is None
            for src in (s.v4, s.v4db, s.repo, s.v5, s.v5db)
        )
        and bool(s.repo.newest_segments)
        and s.v5db.reachable
        and view.lag.behind_bytes is not None
    )


async def wait_for(pilot: Any, what: str, predicate: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"export_screenshots: not within {timeout:g} s: {what}")
        await pilot.pause(0.1)


def step_state(app: IvyApp, number: int) -> str:
    if app.view is None:
        return "unknown"
    return next((s.state for s in app.view.steps if s.number == number), "unknown")


def ended_after(app: IvyApp, before: Any) -> Callable[[], bool]:
    """Whether an action ended since ``before`` (the app's last ending when its key was pressed)."""
    return lambda: app.last_ended is not before


async def open_modal(pilot: Any, app: IvyApp, key: str) -> None:
    """Press ``key`` and wait until its modal (a plan, or a blocked step's reasons) is up."""
    await pilot.press(key)
    await wait_for(
        pilot,
        f"the modal of {key}",
        lambda: isinstance(app.screen, ConfirmScreen | ReasonsScreen),
        15,
    )
    await pilot.pause(0.5)


async def act(pilot: Any, app: IvyApp, key: str, step: int, *answer: str) -> None:
    """Drive one step with its key, as an engineer would: wait until it is ready, press the key,
    answer the confirm modal, wait until the action ended; again if it was refused at the moment
    of acting (the view moved in between)."""
    for _ in range(3):
        await wait_for(pilot, f"step {step} ready", lambda: step_state(app, step) == "ready", 120)
        before = app.last_ended
        await open_modal(pilot, app, key)
        if isinstance(app.screen, ReasonsScreen):
            await pilot.press("escape")
            continue
        await pilot.press(*answer)
        await wait_for(pilot, f"the action of {key}", ended_after(app, before), 180)
        if app.last_ended is not None and app.last_ended.ok:
            return
        await pilot.press("escape")
    raise SystemExit(f"export_screenshots: {key} was refused three times")


def fault(kube_url: str, action: str) -> None:
    request = urllib.request.Request(
        f"{kube_url}/_sandbox/faults/s3/{action}", data=b"{}", method="POST"
    )
    with urllib.request.urlopen(request, timeout=15):
        pass


async def act_and_watch(pilot: Any, app: IvyApp, save: Callable[[str], None]) -> None:
    """Step 3 with its key, saving the screen while the action waits for the repo and v5."""
    before = app.last_ended
    await open_modal(pilot, app, "f")
    await pilot.press("y")
    await wait_for(
        pilot,
        "the freeze waiting",
        lambda: app.running is not None and app.running.stage.startswith("waiting"),
        60,
    )
    await pilot.pause(0.5)
    save("action-running-160x48")
    await wait_for(pilot, "the freeze done", ended_after(app, before), 180)
    if app.last_ended is None or not app.last_ended.ok:
        await pilot.press("escape")
        await act(pilot, app, "f", 3, "y")


async def shoot(config: Config, kube_url: str, out: Path) -> list[Path]:
    saved: list[Path] = []
    app = make_app(config)

    def save(name: str) -> None:
        path = out / f"{name}.svg"
        app.save_screenshot(filename=path.name, path=str(out))
        saved.append(path)
        say(f"  saved {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")

    async with app.run_test(size=WIDE) as pilot:
        # before the standby exists: step 1's confirm with the YAML, and a blocked step
        await wait_for(pilot, "step 1 ready", lambda: step_state(app, 1) == "ready", 60)
        await wait_for(pilot, "the executor", lambda: app.executor is not None, 20)
        await open_modal(pilot, app, "c")
        save("confirm-create-standby-160x48")
        await pilot.press("escape")
        await open_modal(pilot, app, "o")
        save("blocked-promote-160x48")
        await pilot.press("escape")
        await act(pilot, app, "c", 1, "y")

        await wait_for(pilot, "all three panes filled", lambda: filled(app), 90)
        # a few polls, so the rates and the lag sparkline have something to show
        await pilot.pause(6)
        save("main-160x48")

        await pilot.press("question_mark")
        await pilot.pause(0.5)
        save("help-160x48")
        await pilot.press("escape")

        await pilot.press("3", "y")
        await pilot.pause(1.0)
        save("yaml-v5-pod-160x48")
        await pilot.press("escape")

        await pilot.press("l")
        await pilot.pause(0.5)
        save("log-160x48")
        await pilot.press("escape")

        await pilot.resize_terminal(*NARROW)
        await pilot.press("1")
        await pilot.pause(1.0)
        save("main-80x24")
        await pilot.press("4")
        await pilot.pause(0.5)
        save("runbook-80x24")

        await pilot.resize_terminal(*WIDE)
        await pilot.press("1")
        try:
            fault(kube_url, "stop")
            await wait_for(
                pilot,
                "the storage pane stale",
                lambda: app.main.repo.has_class("-stale"),
                30,
            )
            await pilot.pause(0.5)
            save("storage-stale-160x48")
        finally:
            fault(kube_url, "start")

        # step 3: the SQL first, then the progress line while it runs
        await wait_for(pilot, "step 3 ready", lambda: step_state(app, 3) == "ready", 90)
        await open_modal(pilot, app, "f")
        save("confirm-freeze-sql-160x48")
        await pilot.press("escape")
        await act_and_watch(pilot, app, save)

        # the rest of the move with its keys, up to the typed-name confirm of step 7
        await act(pilot, app, "s", 4, "y")
        await act(pilot, app, "o", 5, "y")
        await act(pilot, app, "g", 6, "y")
        await wait_for(pilot, "step 7 ready", lambda: step_state(app, 7) == "ready", 90)
        await open_modal(pilot, app, "x")
        save("confirm-retire-typed-name-160x48")
        await pilot.press("escape")
        await pilot.press("q")
    return saved


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=ROOT / "screenshots")
    args = parser.parse_args()
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    # the world's S3 server has its own certificate; proxies' CA bundles would get in the way
    for var in ("REQUESTS_CA_BUNDLE", "AWS_CA_BUNDLE", "SSL_CERT_FILE"):
        os.environ.pop(var, None)
    with tempfile.TemporaryDirectory(prefix="ivytui-shots-") as tmp:
        directory = Path(tmp) / "world"
        say(f"starting a sandbox world in {directory}")
        # the journal and the exported v4 credentials of this rehearsal stay in the temporary
        # directory
        os.environ["IVYTUI_STATE_DIR"] = str(Path(tmp) / "state")
        state = control.up(
            directory,
            control.UpOptions(with_standby=False, archive_timeout=5),
            on_progress=lambda stage, frac: say(f"  [{frac * 100:3.0f}%] {stage}"),
            parent_pid=os.getpid(),
        )
        try:
            config = replace(
                config_from_world(directory, state, read_only=False),
                thresholds=Thresholds(repo_quiet_seconds=5),
            )
            saved = asyncio.run(shoot(config, str(state["kube_url"]), out))
        finally:
            say("stopping the world")
            control.down(directory)
    say(f"{len(saved)} screenshots in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
