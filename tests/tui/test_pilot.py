"""The keys do what the footer says, against a hub double."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.screen import Screen
from textual.widgets import Input, TextArea
from tui_fakes import CONFIG, NOW, catching_up, frozen_app, make_view, stale_repo_with_alarm

from ivytui.domain.actions import BY_ID
from ivytui.errors import KubeError
from ivytui.tui.app import IvyApp
from ivytui.tui.screens.modals import HelpScreen, IntervalScreen, LogScreen, TextViewScreen
from ivytui.tui.widgets import Line

WIDE = (160, 48)
NARROW = (80, 24)


def on_top(app: IvyApp) -> Screen[Any]:
    """The screen on top (a function, so that type narrowing does not stick to it)."""
    return app.screen


def header(app: IvyApp) -> str:
    return app.main.header.markup_text


async def settle(pilot: Pilot[Any], times: int = 3) -> None:
    for _ in range(times):
        await pilot.pause()


async def test_the_hub_starts_after_the_first_frame_and_stops_on_quit() -> None:
    app, hub = frozen_app(catching_up())
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        assert hub.calls == ["start"]
        assert app.view is not None
        assert app.main.v4.fields.value("lsn") == "0/9000060"
        await pilot.press("q")
        await settle(pilot)
    assert hub.calls == ["start", "stop"]
    assert app.return_value == 0


async def test_p_pauses_and_resumes_the_hub() -> None:
    app, hub = frozen_app(catching_up())
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        assert app.check_action("pause", ()) is True
        await pilot.press("p")
        await settle(pilot)
        assert hub.calls[-1] == "pause" and hub.paused
        assert "PAUSED" in header(app)
        assert app.check_action("pause", ()) is False
        assert app.check_action("resume", ()) is True
        await pilot.press("p")
        await settle(pilot)
        assert hub.calls[-1] == "resume" and not hub.paused
        assert "PAUSED" not in header(app)


async def test_r_refreshes_now() -> None:
    app, hub = frozen_app(catching_up())
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        await pilot.press("r")
        await app.workers.wait_for_complete()
        await settle(pilot)
        assert hub.calls.count("refresh") == 1


async def test_i_asks_for_an_interval_and_refuses_bad_input_with_a_reason() -> None:
    app, hub = frozen_app(catching_up())
    async with app.run_test(size=NARROW) as pilot:
        await settle(pilot)
        await pilot.press("i")
        await settle(pilot)
        assert isinstance(app.screen, IntervalScreen)
        field = app.screen.query_one(Input)
        error = app.screen.query_one("#interval-error", Line)

        field.value = "soon"
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, IntervalScreen)
        assert "'soon' is not a number of seconds" in error.markup_text

        field.value = "0.01"
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, IntervalScreen)
        assert "out of range: use 0.2 to 3600 seconds" in error.markup_text

        field.value = "5"
        await pilot.press("enter")
        await settle(pilot)
        assert not isinstance(app.screen, IntervalScreen)
        assert hub.calls[-1] == "interval 5"
        assert app.interval == 5.0

        await pilot.press("i", "escape")
        await settle(pilot)
        assert not isinstance(app.screen, IntervalScreen)
        assert hub.calls[-1] == "interval 5"


async def test_y_shows_the_yaml_of_the_selected_pod_and_copies_it() -> None:
    app, _ = frozen_app(catching_up())
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        assert app.focused is app.main.v4.pods
        await pilot.press("down", "y")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, TextViewScreen)
        assert screen.title_text == "pod/hippo-rpa-5c8-xyz"
        area = screen.query_one(TextArea)
        assert area.read_only and area.language == "yaml"
        assert "name: hippo-rpa-5c8-xyz" in area.text
        await pilot.press("c")
        await settle(pilot)
        assert app.clipboard == area.text
        await pilot.press("escape")
        await settle(pilot)
        assert on_top(app) is app.main


async def test_y_in_each_pane_shows_its_object() -> None:
    app, _ = frozen_app(catching_up())
    shown: list[str] = []
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        for key in ("2", "3", "4"):
            await pilot.press(key, "y")
            await settle(pilot)
            assert isinstance(app.screen, TextViewScreen), key
            shown.append(app.screen.title_text)
            await pilot.press("escape")
            await settle(pilot)
    assert shown[0] == "repo/backup.info"
    assert shown[1] == "pod/hippo-00-abcd-0"
    assert shown[2].startswith("step 3: Freeze")


async def test_l_opens_the_log_full_screen() -> None:
    app, hub = frozen_app(catching_up())
    async with app.run_test(size=NARROW) as pilot:
        await settle(pilot)
        await pilot.press("l")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, LogScreen)
        texts = [entry.text for entry in screen.log_view.entries]
        assert "connect to 127.0.0.1:9000: connection refused" in texts
        hub.log(replace(hub._logs[0], at=NOW, text="a new line while the log is open"))
        await settle(pilot)
        assert screen.log_view.entries[-1].text == "a new line while the log is open"
        await pilot.press("escape")
        await settle(pilot)
        assert on_top(app) is app.main


async def test_question_mark_shows_help_with_every_key() -> None:
    app, _ = frozen_app(catching_up())
    async with app.run_test(size=NARROW) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        await settle(pilot)
        assert isinstance(app.screen, HelpScreen)
        keys = dict(app.screen.keys)
        for description in ("Help", "Quit", "Refresh", "Pause / Resume", "Interval", "YAML", "Log"):
            assert description in keys.values()
        assert keys["tab"] == "Next pane"
        assert keys["ctrl+p"] == "Command palette"
        # the keys of the move say what they do in full (the table's help line)
        assert keys["f"] == BY_ID["freeze"].help
        assert keys["⏎"].startswith("The action of the selected step")
        assert keys["T"].startswith("Take the driver Lease")
        await pilot.press("escape")
        await settle(pilot)
        assert on_top(app) is app.main


async def test_the_footer_bindings_have_ids_and_descriptions() -> None:
    app, _ = frozen_app(catching_up())
    async with app.run_test(size=NARROW) as pilot:
        await settle(pilot)
        shown = {
            binding.id: binding.description
            for binding in IvyApp.BINDINGS
            if not isinstance(binding, tuple) and binding.show
        }
        assert set(shown) == {
            "help",
            "quit",
            "refresh",
            "pause",
            "resume",
            "interval",
            "yaml",
            "log",
            "create-standby",
            "freeze",
            "thaw",
            "shutdown-v4",
            "promote",
            "grants",
            "retire-v4",
            "abort",
        }
        assert all(shown.values())
        # the takeover is rare and the footer full: bound, described, in the help only
        (take_over,) = [b for b in IvyApp.BINDINGS if not isinstance(b, tuple) and b.key == "T"]
        assert (take_over.id, take_over.description, take_over.show) == (
            "take-over",
            "Take over",
            False,
        )


async def test_read_only_shows_monitor_and_dims_mutating_actions() -> None:
    app, _ = frozen_app(catching_up(), config=replace(CONFIG, read_only=True), read_only=True)
    async with app.run_test(size=NARROW) as pilot:
        await settle(pilot)
        assert "MONITOR" in header(app) and "DRIVER" not in header(app)
        assert app.check_action("act", ("promote",)) is None
        assert app.check_action("take_over", ()) is None
        assert app.check_action("refresh_now", ()) is True
        titles = {command.title for command in app.get_system_commands(app.screen)}
        assert "Take over driving" not in titles and "Refresh now" in titles
    driver, _ = frozen_app(catching_up())
    async with driver.run_test(size=NARROW) as pilot:
        await settle(pilot)
        assert "DRIVER" in header(driver)
        assert driver.check_action("act", ("promote",)) is True
        assert driver.check_action("take_over", ()) is True


async def test_tab_moves_between_panes_at_80x24() -> None:
    app, _ = frozen_app(catching_up())
    async with app.run_test(size=NARROW) as pilot:
        await settle(pilot)
        main = app.main
        assert main.has_class("-narrow")
        visible = [pane.id for pane in main.panes if pane.display and pane.region.height]
        assert visible == ["v4-pane"]
        await pilot.press("tab")
        await settle(pilot)
        assert main.current == 1
        assert [p.id for p in main.panes if p.region.height] == ["repo-pane"]
        assert app.focused is main.repo.backups
        await pilot.press("shift+tab", "shift+tab")
        await settle(pilot)
        assert main.pane_of(app.focused) == 4
        assert main.current == 4


async def test_tab_moves_focus_when_side_by_side() -> None:
    app, _ = frozen_app(catching_up())
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        main = app.main
        assert main.has_class("-wide")
        assert all(p.region.height for p in main.panes)
        await pilot.press("tab", "tab")
        await settle(pilot)
        assert app.focused is main.v5.pods


async def test_arrow_keys_select_a_step_and_show_its_checks() -> None:
    app, _ = frozen_app(catching_up())
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        runbook = app.main.runbook
        assert "Freeze and final WAL switch" in runbook.checks.markup_text
        await pilot.press("4", "up")
        await settle(pilot)
        assert runbook.selected_step is not None and runbook.selected_step.number == 2
        assert "Catch up" in runbook.checks.markup_text
        await pilot.press("down", "down")
        await settle(pilot)
        assert "Shut down v4" in runbook.checks.markup_text
        assert "[$error]" in runbook.checks.markup_text


async def test_a_view_that_did_not_change_repaints_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app, hub = frozen_app(catching_up())
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        updates: list[str] = []
        original = Line.update

        def counting(self: Line, *args: Any, **kwargs: Any) -> None:
            parent = self.parent
            updates.append(self.id or (parent.id if parent is not None else None) or "")
            original(self, *args, **kwargs)

        monkeypatch.setattr(Line, "update", counting)
        hub.emit(hub.view)
        await settle(pilot)
        assert updates == []

        snap = catching_up()
        assert snap.v4db.current_lsn is not None
        moved = replace(
            snap, v4db=replace(snap.v4db, current_lsn=snap.v4db.current_lsn.advance(0x40))
        )
        lsn_field = app.main.v4.fields.fields["lsn"]
        hub.emit(make_view(moved))
        await settle(pilot)
        assert lsn_field.value_markup == "0/90000A0"
        assert app.main.v4.fields.fields["lsn"] is lsn_field
        # the LSN, the ruler's v4 position and the pending bytes, and the check that quotes it
        assert set(updates) == {"field-lsn", "ruler-v4", "ruler-compact", "ruler-summary", "checks"}


async def test_a_failing_source_marks_only_its_pane_stale() -> None:
    app, hub = frozen_app(catching_up())
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        main = app.main
        assert not any(p.has_class("-stale") for p in main.panes)
        hub.emit(make_view(stale_repo_with_alarm()))
        await settle(pilot)
        assert [p.id for p in main.panes if p.has_class("-stale")] == ["repo-pane"]
        text = main.repo.stale_line.markup_text
        assert "stale 10 s" in text and "connection refused" in text
        assert main.alarms.display and "Split-brain risk" in main.alarms.markup_text
        assert main.repo.fields.value("segments") == "5"


async def test_a_hub_that_cannot_start_says_why_and_quits_with_2() -> None:
    app, hub = frozen_app(catching_up())
    hub.fail_with = KubeError("the kubeconfig /nowhere does not exist")
    async with app.run_test(size=NARROW) as pilot:
        await settle(pilot)
        line = app.main.start_error
        assert line.display
        assert "kubernetes: the kubeconfig /nowhere does not exist" in line.markup_text
        hub.fail_with = None
        await pilot.press("r")
        await settle(pilot, 5)
        assert hub.calls == ["start", "start"]
        assert not line.display
        hub.fail_with = KubeError("gone again")
    failing, hub2 = frozen_app(catching_up())
    hub2.fail_with = KubeError("the kubeconfig /nowhere does not exist")
    async with failing.run_test(size=NARROW) as pilot:
        await settle(pilot)
        await pilot.press("q")
        await settle(pilot)
    assert failing.return_value == 2


async def test_the_command_palette_offers_the_same_actions() -> None:
    app, _ = frozen_app(catching_up())
    async with app.run_test(size=NARROW) as pilot:
        await settle(pilot)
        titles = {command.title for command in app.get_system_commands(app.screen)}
        for title in (
            "Refresh now",
            "Pause polling",
            "Change the interval",
            "Show YAML",
            "Show the log",
            "Show help",
            "Take over driving",
        ):
            assert title in titles
        helps = {c.title: c.help for c in app.get_system_commands(app.screen)}
        assert helps["Take over driving"].endswith("(T)")
        await pilot.press("ctrl+p")
        await settle(pilot)
        assert type(app.screen).__name__ == "CommandPalette"


async def test_page_down_scrolls_the_pane_at_80x24() -> None:
    app, _ = frozen_app(catching_up())
    async with app.run_test(size=NARROW) as pilot:
        await settle(pilot)
        pane = app.main.v4
        assert pane.max_scroll_y > 0
        assert pane.scroll_y == 0
        await pilot.press("pagedown")
        await settle(pilot)
        assert pane.scroll_y > 0
        assert app.focused is pane.pods
        await pilot.press("pageup")
        await settle(pilot)
        assert pane.scroll_y == 0
