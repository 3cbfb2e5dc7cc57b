"""Start a sandbox world, open the console on it with the real hub, and save SVG screenshots
into ``screenshots/``: the main screen at 160×48 and 80×24, the storage pane when the bucket
stops answering, the help, a YAML view and the log. The world is torn down at the end.

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
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ivytui.config import Config  # noqa: E402
from ivytui.sandbox import control  # noqa: E402
from ivytui.tui.app import IvyApp, make_app  # noqa: E402
from ivytui.tui.demo import config_from_world  # noqa: E402

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


def fault(kube_url: str, action: str) -> None:
    request = urllib.request.Request(
        f"{kube_url}/_sandbox/faults/s3/{action}", data=b"{}", method="POST"
    )
    with urllib.request.urlopen(request, timeout=15):
        pass


async def shoot(config: Config, kube_url: str, out: Path) -> list[Path]:
    saved: list[Path] = []
    app = make_app(config)

    def save(name: str) -> None:
        path = out / f"{name}.svg"
        app.save_screenshot(filename=path.name, path=str(out))
        saved.append(path)
        say(f"  saved {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")

    async with app.run_test(size=WIDE) as pilot:
        await wait_for(pilot, "all three panes filled", lambda: filled(app), 60)
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
        state = control.up(
            directory,
            control.UpOptions(with_standby=True),
            on_progress=lambda stage, frac: say(f"  [{frac * 100:3.0f}%] {stage}"),
            parent_pid=os.getpid(),
        )
        try:
            config = config_from_world(directory, state, read_only=False)
            saved = asyncio.run(shoot(config, str(state["kube_url"]), out))
        finally:
            say("stopping the world")
            control.down(directory)
    say(f"{len(saved)} screenshots in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
