"""How the main screen and the modals of the move look, from frozen views (frozen clock, fixed
log entries, the real executor's plans)."""

from __future__ import annotations

from typing import Any

import domain_factory as df
import pytest
from textual.pilot import Pilot
from textual.widgets import Input
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


# -- the modals of the move ------------------------------------------------------------------


def _opening(*keys: str) -> Any:
    """Press ``keys`` and wait until the modal they open is painted (plans are built in a
    worker); input cursors do not blink in a snapshot."""

    async def run_before(pilot: Pilot[Any]) -> None:
        await _settle(pilot)
        for key in keys:
            await pilot.press(key)
            await pilot.app.workers.wait_for_complete()
            await _settle(pilot)
        for field in pilot.app.screen.query(Input):
            field.cursor_blink = False
        await _settle(pilot)

    return run_before


def test_confirm_create_standby_shows_the_yaml(snap_compare: Any) -> None:
    app, _ = frozen_app(df.preflight())
    assert snap_compare(app, terminal_size=(120, 40), run_before=_opening("c"))


def test_confirm_create_standby_fits_80x24(snap_compare: Any) -> None:
    app, _ = frozen_app(df.preflight())
    assert snap_compare(app, terminal_size=(80, 24), run_before=_opening("c"))


def test_confirm_freeze_shows_the_sql_and_the_sessions_choice(snap_compare: Any) -> None:
    app, _ = frozen_app(catching_up())
    assert snap_compare(app, terminal_size=(120, 40), run_before=_opening("f"))


def test_confirm_shutdown_before_the_switch_asks_for_the_override(snap_compare: Any) -> None:
    app, _ = frozen_app(catching_up())
    assert snap_compare(app, terminal_size=(120, 40), run_before=_opening("s"))


def test_confirm_promote_shows_the_diff_and_kubectl(snap_compare: Any) -> None:
    app, _ = frozen_app(df.down())
    assert snap_compare(app, terminal_size=(120, 40), run_before=_opening("o"))


def test_confirm_grants_shows_the_sql(snap_compare: Any) -> None:
    app, _ = frozen_app(df.promoted())
    assert snap_compare(app, terminal_size=(120, 40), run_before=_opening("g"))


def test_confirm_retire_needs_the_typed_name(
    snap_compare: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IVYTUI_STATE_DIR", "/home/oncall/.local/state/ivytui")
    app, _ = frozen_app(df.granted())
    assert snap_compare(app, terminal_size=(120, 40), run_before=_opening("x"))


def test_a_blocked_step_lists_its_failing_checks(snap_compare: Any) -> None:
    app, _ = frozen_app(catching_up())
    assert snap_compare(app, terminal_size=(120, 40), run_before=_opening("o"))
