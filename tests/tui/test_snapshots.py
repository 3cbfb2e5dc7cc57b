"""How the main screen looks, from frozen views (frozen clock, fixed log entries)."""

from __future__ import annotations

from typing import Any

from textual.pilot import Pilot
from tui_fakes import catching_up, frozen_app, stale_repo_with_alarm


async def _settle(pilot: Pilot[Any]) -> None:
    for _ in range(4):
        await pilot.pause()


def test_main_screen_wide_catching_up(snap_compare: Any) -> None:
    app, _ = frozen_app(catching_up())
    assert snap_compare(app, terminal_size=(160, 48), run_before=_settle)


def test_main_screen_80x24_catching_up(snap_compare: Any) -> None:
    app, _ = frozen_app(catching_up())
    assert snap_compare(app, terminal_size=(80, 24), run_before=_settle)


def test_main_screen_wide_stale_storage_and_alarm(snap_compare: Any) -> None:
    app, _ = frozen_app(stale_repo_with_alarm())
    assert snap_compare(app, terminal_size=(160, 48), run_before=_settle)


def test_storage_pane_stale_at_80x24(snap_compare: Any) -> None:
    app, _ = frozen_app(stale_repo_with_alarm())
    assert snap_compare(app, terminal_size=(80, 24), press=["2"], run_before=_settle)


def test_runbook_pane_at_80x24(snap_compare: Any) -> None:
    app, _ = frozen_app(catching_up())
    assert snap_compare(app, terminal_size=(80, 24), press=["4"], run_before=_settle)
