"""The keys that drive the move, against a hub double and an executor double whose plans are the
real executor's (built from the frozen view): what each key opens, what a yes sends to the
executor, and what is never sent."""

from __future__ import annotations

import asyncio
import stat
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import domain_factory as df
import pytest
from textual.pilot import Pilot
from textual.screen import Screen
from textual.widgets import Button, Checkbox, Input
from tui_fakes import CONFIG, S3_KEYS, catching_up, frozen_app, make_view, stale_repo_with_alarm

from ivytui.domain.actions import ACTIONS, check
from ivytui.domain.runbook import Check
from ivytui.errors import KubeError
from ivytui.sources.actions import GuardRefused
from ivytui.sources.kube_write import ConflictError
from ivytui.tui.app import IvyApp
from ivytui.tui.driving import Running, quit_question
from ivytui.tui.screens.confirm import ConfirmScreen, ReasonsScreen
from ivytui.tui.widgets import Line

WIDE = (160, 48)
NARROW = (80, 24)

STEP_KEYS = {
    "c": "create-standby",
    "f": "freeze",
    "u": "thaw",
    "s": "shutdown-v4",
    "o": "promote",
    "g": "grants",
    "x": "retire-v4",
    "a": "abort",
}
"""The default key of each action of the domain's table."""


def on_top(app: IvyApp) -> Screen[Any]:
    return app.screen


async def settle(pilot: Pilot[Any], times: int = 4) -> None:
    for _ in range(times):
        await pilot.pause()


async def until(pilot: Pilot[Any], what: str, check: Any, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        await pilot.pause(0.05)


def confirm(app: IvyApp) -> ConfirmScreen:
    screen = app.screen
    assert isinstance(screen, ConfirmScreen), type(screen).__name__
    return screen


def reasons(app: IvyApp) -> ReasonsScreen:
    screen = app.screen
    assert isinstance(screen, ReasonsScreen), type(screen).__name__
    return screen


def body_text(screen: ConfirmScreen) -> str:
    """Everything the body shows, as plain text."""
    return "\n".join(str(getattr(screen.plan, name)) for name in ("diff", "kubectl", "sql", "yaml"))


async def open_confirm(pilot: Pilot[Any], app: IvyApp, key: str) -> ConfirmScreen:
    await pilot.press(key)
    await until(
        pilot, f"the confirm modal after {key}", lambda: isinstance(app.screen, ConfirmScreen)
    )
    await settle(pilot)
    return confirm(app)


async def test_every_action_of_the_table_is_one_binding_with_its_words() -> None:
    app, _ = frozen_app(catching_up())
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        bound = {b.id: b for b in IvyApp.BINDINGS if not isinstance(b, tuple)}
        for spec in ACTIONS:
            binding = bound[spec.id]
            assert binding.key == spec.key
            assert binding.action == f"act('{spec.id}')"
            assert (binding.description, binding.tooltip) == (spec.label, spec.help)
        assert {spec.key: spec.id for spec in ACTIONS} == STEP_KEYS
        # in DRIVER mode every one of them is in the footer and enabled
        shown = {ab.binding.id for ab in app.screen.active_bindings.values() if ab.enabled}
        assert {*STEP_KEYS.values(), "take-over"} <= shown
        # the runbook shows which key acts on which step
        table = app.main.runbook.steps_table
        keys = {row: table.get_row(row)[1].plain for row in ("1", "3", "4", "5", "6", "7")}
        assert keys == {"1": "c", "3": "f", "4": "s", "5": "o", "6": "g", "7": "x"}
        assert table.get_row("2")[1].plain == ""


async def test_c_shows_the_standby_yaml_and_y_creates_it() -> None:
    app, hub = frozen_app(df.preflight())
    ex = hub.executor
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        screen = await open_confirm(pilot, app, "c")
        assert screen.plan.key == "create-standby"
        assert "kind: IvoryCluster" in screen.plan.yaml and "enabled: true" in screen.plan.yaml
        assert "+ IvoryCluster hippo" in screen.plan.diff
        assert "kubectl apply" in screen.plan.kubectl
        for secret in S3_KEYS.values():
            assert secret not in body_text(screen)
        # focus starts on No; enter there answers no
        assert app.focused is screen.query_one("#confirm-button-no", Button)
        await pilot.press("c")
        await settle(pilot)
        assert app.clipboard == screen.plan.yaml
        await pilot.press("y")
        await until(pilot, "the action ran", lambda: ex.executed and app.running is None)
        await settle(pilot)
        assert ex.executed == [("create-standby", "", "")]
        assert on_top(app) is app.main
        progress = app.main.progress
        assert progress.display and "✓ create the v5 standby" in progress.markup_text
        assert any("create the v5 standby: server-side dry run" in e.text for e in app.log_entries)


async def test_enter_on_no_and_escape_send_nothing() -> None:
    app, hub = frozen_app(df.down())
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        screen = await open_confirm(pilot, app, "o")
        assert screen.plan.destructive
        assert "spec.standby.enabled: false" in screen.plan.diff.replace('"', "")
        assert screen.plan.kubectl.startswith("kubectl patch ivoryclusters.")
        await pilot.press("enter")
        await settle(pilot)
        assert on_top(app) is app.main
        await open_confirm(pilot, app, "o")
        await pilot.press("escape")
        await settle(pilot)
        assert on_top(app) is app.main
        assert hub.executor.executed == []


async def test_a_blocked_step_lists_its_reasons_and_plans_nothing() -> None:
    app, hub = frozen_app(catching_up())
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        await pilot.press("o")
        await settle(pilot)
        screen = reasons(app)
        assert screen.title_text == "step 5 · Promote v5 is blocked"
        texts = " | ".join(screen.texts)
        assert "not 'pgcluster Shutdown'" in texts
        assert "still answers" in texts
        await pilot.press("escape")
        await settle(pilot)
        for key in ("x", "g", "c"):
            await pilot.press(key)
            await settle(pilot)
            assert isinstance(app.screen, ReasonsScreen), key
            await pilot.press("escape")
            await settle(pilot)
        assert hub.executor.planned == []
        assert hub.executor.executed == []


async def test_retire_needs_the_typed_name() -> None:
    app, hub = frozen_app(df.granted())
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        screen = await open_confirm(pilot, app, "x")
        field = screen.query_one("#confirm-name", Input)
        yes = screen.query_one("#confirm-button-yes", Button)
        assert app.focused is field
        assert yes.disabled
        assert "- Pgcluster hippo" in screen.plan.diff
        await pilot.press("y", "enter")
        await settle(pilot)
        assert app.screen is screen and field.value == "y"
        assert "type the cluster name hippo first" in screen.note.markup_text
        field.value = ""
        await pilot.press(*"hippo")
        await settle(pilot)
        assert not yes.disabled
        await pilot.press("enter")
        await until(pilot, "the action ran", lambda: hub.executor.executed and app.running is None)
        assert hub.executor.executed == [("retire-v4", "hippo", "")]


async def test_shutdown_before_the_switch_shows_the_override_and_refuses_without_it() -> None:
    app, hub = frozen_app(catching_up())
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        screen = await open_confirm(pilot, app, "s")
        assert screen.plan.override_needed
        checks = screen.query_one("#confirm-checks-list", Line).markup_text
        assert checks.startswith("[b]Refused without the override, because:[/]")
        assert "✗[/] [$error]step 3 (Freeze and final WAL switch) is not done" in checks
        assert "spec.shutdown: true" in screen.plan.diff
        assert screen.query_one("#confirm-button-yes", Button).disabled
        await pilot.press("escape")
        await settle(pilot)
        assert hub.executor.executed == []

        screen = await open_confirm(pilot, app, "s")
        await pilot.press(*"hippo", "enter")
        await until(pilot, "the action ran", lambda: hub.executor.executed and app.running is None)
        assert hub.executor.executed == [("shutdown-v4", "", "hippo")]
        shown = hub.executor.shown[-1]
        assert shown is not None and shown.override and not shown.ok


async def test_freeze_can_end_the_sessions_and_shows_the_sql() -> None:
    app, hub = frozen_app(catching_up())
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        screen = await open_confirm(pilot, app, "f")
        assert "default_transaction_read_only = on" in screen.plan.sql
        assert "pg_switch_wal()" in screen.plan.sql
        assert "pg_terminate_backend" not in screen.plan.sql
        # a plan that cannot be built again leaves the box as the shown plan does
        real_plan = hub.executor.plan

        async def failing(key: str, *, terminate_sessions: bool = False) -> Any:
            raise KubeError("the API server did not answer")

        hub.executor.plan = failing  # type: ignore[method-assign]
        await pilot.press("t")
        await until(pilot, "the failure shown", lambda: "did not answer" in screen.note.markup_text)
        assert not screen.query_one(Checkbox).value
        assert "pg_terminate_backend" not in screen.plan.sql
        hub.executor.plan = real_plan  # type: ignore[method-assign]
        await pilot.press("t")
        await until(
            pilot, "the plan built again", lambda: "pg_terminate_backend" in screen.plan.sql
        )
        assert screen.query_one(Checkbox).value
        assert screen.plan.options["terminate_sessions"] is True
        await pilot.press("y")
        await until(pilot, "the action ran", lambda: hub.executor.executed and app.running is None)
        assert hub.executor.plans[-1].options["terminate_sessions"] is True


async def test_e_edits_the_yaml_and_validates_it_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    editor = tmp_path / "editor.sh"
    editor.write_text('#!/bin/sh\nsed -i "$(cat "$0.sed")" "$1"\n')
    editor.chmod(editor.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("EDITOR", str(editor))
    monkeypatch.delenv("VISUAL", raising=False)
    app, hub = frozen_app(df.preflight())
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        screen = await open_confirm(pilot, app, "c")
        Path(f"{editor}.sed").write_text("s/storage: 20Gi/storage: 50Gi/")
        await pilot.press("e")
        await settle(pilot)
        assert "storage: 50Gi" in screen.plan.yaml
        assert "the edited manifest is valid" in screen.note.markup_text

        Path(f"{editor}.sed").write_text("s/enabled: true/enabled: false/")
        await pilot.press("e")
        await settle(pilot)
        note = screen.note.markup_text
        assert "✗ standby manifest:" in note and "\n" not in note
        assert "storage: 50Gi" in screen.plan.yaml and "enabled: true" in screen.plan.yaml

        await pilot.press("y")
        await until(pilot, "the action ran", lambda: hub.executor.executed and app.running is None)
        sent = hub.executor.plans[-1]
        assert sent.manifest is not None
        assert (
            sent.manifest.cluster["spec"]["instances"][0]["dataVolumeClaimSpec"]["resources"][
                "requests"
            ]["storage"]
            == "50Gi"
        )
        # the Secret still holds v4's values, never shown
        assert S3_KEYS["aws-s3-key-secret"] in str(sent.manifest.secret)


async def test_a_refusal_at_acting_time_shows_the_checks() -> None:
    app, hub = frozen_app(df.down())
    hub.executor.fail_with = GuardRefused(
        "promote v5 refused: the repo is still growing",
        ("the repo is still growing on timeline 1", "v5 replayed to 0/5000000, short"),
    )
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        await open_confirm(pilot, app, "o")
        await pilot.press("y")
        await until(pilot, "the error shown", lambda: isinstance(app.screen, ReasonsScreen))
        screen = reasons(app)
        assert screen.title_text == "promote v5: refused"
        assert screen.reasons == (
            "the repo is still growing on timeline 1",
            "v5 replayed to 0/5000000, short",
        )
        assert "✗ promote v5 — refused" in app.main.progress.markup_text
        assert app.running is None


async def test_a_conflict_says_re_read_and_try_again() -> None:
    app, hub = frozen_app(df.frozen())
    hub.executor.fail_with = ConflictError(
        "patch Pgcluster hippo: the object changed since it was read; re-read and try again"
    )
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        await open_confirm(pilot, app, "s")
        await pilot.press("y")
        await until(pilot, "the error shown", lambda: isinstance(app.screen, ReasonsScreen))
        screen = reasons(app)
        assert screen.title_text == "shut down v4: conflict"
        assert "re-read and try again" in screen.message
        assert "Nothing was changed" in screen.query_one("#reasons-hint", Line).markup_text
        assert hub.calls.count("refresh") >= 1


async def test_while_an_action_runs_the_screen_stays_live_and_quitting_asks() -> None:
    app, hub = frozen_app(df.frozen())
    hold = asyncio.Event()
    hub.executor.hold = hold
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        await open_confirm(pilot, app, "s")
        await pilot.press("y")
        await until(pilot, "the action running", lambda: hub.executor.busy is not None)
        await settle(pilot)
        progress = app.main.progress.markup_text
        assert "… shut down v4" in progress and "waiting: the clusters" in progress
        # the screen still answers keys; another action waits
        await pilot.press("tab")
        await pilot.press("o")
        await settle(pilot)
        assert on_top(app) is app.main
        assert hub.executor.planned == ["shutdown-v4"]
        # q asks first; n keeps going
        await pilot.press("q")
        await settle(pilot)
        question = confirm(app)
        assert question.plan.title == "an action is running: quit anyway?"
        assert "the cluster" in question.plan.summary
        assert app.focused is question.query_one("#confirm-button-no", Button)
        await pilot.press("n")
        await settle(pilot)
        assert on_top(app) is app.main and app.is_running
        # ctrl+c asks too, and a second ctrl+c quits
        await pilot.press("ctrl+c")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("ctrl+c")
        await settle(pilot)
    assert hub.executor.closed
    assert "stop" in hub.calls


async def test_quit_anyway_with_y() -> None:
    app, hub = frozen_app(df.frozen())
    hub.executor.hold = asyncio.Event()
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        await open_confirm(pilot, app, "s")
        await pilot.press("y")
        await until(pilot, "the action running", lambda: hub.executor.busy is not None)
        await pilot.press("q")
        await settle(pilot)
        await pilot.press("y")
        await settle(pilot)
    assert app.return_value == 0
    assert hub.executor.closed


async def test_enter_in_the_runbook_acts_on_the_selected_step(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app, _ = frozen_app(catching_up())
    said: list[str] = []
    monkeypatch.setattr(app, "notify", lambda message, **_: said.append(str(message)))
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        await pilot.press("4")
        await settle(pilot)
        assert app.main.runbook.selected_step is not None
        assert app.main.runbook.selected_step.number == 3
        screen = await open_confirm(pilot, app, "enter")
        assert screen.plan.key == "freeze"
        await pilot.press("escape", "up")
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        assert on_top(app) is app.main
        assert any("Catch-up has nothing to press" in text for text in said)
        await pilot.press("up", "enter")
        await settle(pilot)
        assert reasons(app).title_text == "step 1 · Create the standby is done"


async def test_thaw_and_abort_say_when_there_is_nothing_to_undo() -> None:
    app, _ = frozen_app(df.preflight())
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        await pilot.press("u")
        await settle(pilot)
        assert reasons(app).title_text == "thaw v4"
        assert reasons(app).reasons == (
            "v4 is not frozen (default_transaction_read_only is off, no role blocked)",
        )
        await pilot.press("escape", "a")
        await settle(pilot)
        assert reasons(app).title_text == "nothing to abort"
        assert "nothing to undo" in reasons(app).texts[0]
    frozen, hub2 = frozen_app(df.frozen())
    async with frozen.run_test(size=WIDE) as pilot:
        await settle(pilot)
        screen = await open_confirm(pilot, frozen, "u")
        assert "default_transaction_read_only" in screen.plan.sql
        await pilot.press("y")
        await until(pilot, "thawed", lambda: hub2.executor.executed and frozen.running is None)
        assert hub2.executor.executed == [("thaw", "", "")]


async def test_abort_after_promotion_names_the_two_writers() -> None:
    app, hub = frozen_app(df.promoted())
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        await pilot.press("a")
        await settle(pilot)
        screen = reasons(app)
        assert screen.title_text == "abort refused"
        assert "v5 is promoted: restarting v4 would put two writers on one repo" in screen.texts
        assert any(text.startswith("the v5 spec says promoted") for text in screen.texts)
        assert hub.executor.planned == []


def test_the_quit_question_says_the_cluster_is_the_state() -> None:
    question = quit_question(Running("promote", "promote v5", 100.0, "waiting: v5"), 112.0)
    assert "12 s" in question.summary and "waiting: v5" in question.summary
    assert "rolled back" in question.summary and "read from the cluster" in question.summary


async def test_read_only_dims_every_step_key_and_sends_nothing() -> None:
    app, hub = frozen_app(df.down(), config=replace(CONFIG, read_only=True), read_only=True)
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        for spec in ACTIONS:
            assert spec.mutates
            assert app.check_action("act", (spec.id,)) is None, spec.id
        assert app.check_action("act_on_step", ()) is None
        assert app.check_action("take_over", ()) is None
        dimmed = {ab.binding.id for ab in app.screen.active_bindings.values() if not ab.enabled}
        assert {*STEP_KEYS.values(), "take-over"} <= dimmed
        for key in (*STEP_KEYS, "T", "4", "enter"):
            await pilot.press(key)
            await settle(pilot, 2)
            assert isinstance(on_top(app), type(app.main)), key
        assert hub.executor.planned == [] and hub.executor.executed == []
        assert hub.executor.took_over == []


async def test_a_new_alarm_rings_the_bell_once(monkeypatch: pytest.MonkeyPatch) -> None:
    app, hub = frozen_app(catching_up())
    rings: list[int] = []
    monkeypatch.setattr(app, "bell", lambda: rings.append(1))
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        assert rings == []
        hub.emit(make_view(stale_repo_with_alarm()))
        await settle(pilot)
        assert len(rings) == 1
        assert app.main.alarms.display and "Split-brain" in app.main.alarms.markup_text
        hub.emit(make_view(stale_repo_with_alarm()))
        await settle(pilot)
        assert len(rings) == 1


async def test_the_executor_is_closed_on_exit() -> None:
    app, hub = frozen_app(catching_up())
    async with app.run_test(size=NARROW) as pilot:
        await settle(pilot)
        assert app.executor is hub.executor
        await pilot.press("q")
        await settle(pilot)
    assert hub.executor.closed


async def test_the_confirm_lists_the_checks_it_passed_and_the_executor_gets_that_verdict() -> None:
    app, hub = frozen_app(df.down())
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        screen = await open_confirm(pilot, app, "o")
        view = hub.view
        verdict = check("promote", view.snapshot, view.steps)
        assert verdict.ok and len(verdict.checks) > 1
        assert screen.verdict == verdict
        shown = screen.query_one("#confirm-checks-list", Line).markup_text.splitlines()
        assert shown[0].startswith("[b]Checked when the key was pressed[/]")
        assert len(shown) == 1 + len(verdict.checks)
        assert all(line.startswith("[$success]✓[/] ") for line in shown[1:])
        await pilot.press("y")
        await until(pilot, "the action ran", lambda: hub.executor.executed and app.running is None)
        assert hub.executor.shown == [verdict]


async def test_a_refusal_that_carries_checks_shows_each_in_its_colour() -> None:
    app, hub = frozen_app(df.down())
    hub.executor.fail_with = GuardRefused(
        "promote v5 refused: the repo is still growing",
        cast(
            Any,
            (Check(True, "v4 is proven down"), Check(False, "the repo is still growing")),
        ),
    )
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        await open_confirm(pilot, app, "o")
        await pilot.press("y")
        await until(pilot, "the error shown", lambda: isinstance(app.screen, ReasonsScreen))
        listed = reasons(app).query_one("#reasons-list", Line).markup_text.splitlines()
        assert listed == [
            "[$success]✓[/] v4 is proven down",
            "[$error]✗[/] [$error]the repo is still growing[/]",
        ]


async def test_actions_left_without_an_outcome_are_said_once_at_start() -> None:
    app, hub = frozen_app(catching_up())
    sentence = "step 3 freeze started 04:12 UTC by alice@bastion (pid 4242), no outcome recorded"
    hub.executor.unfinished = (sentence,)
    async with app.run_test(size=WIDE) as pilot:
        await until(pilot, "the notice", lambda: app.main.progress.display)
        errors = [e.text for e in app.log_entries if e.level == "error"]
        assert f"interrupted: {sentence}" in errors
        notice = app.main.progress.markup_text
        assert notice.startswith("[$error]⚠ interrupted:[/] step 3 freeze started 04:12 UTC")
        assert notice.endswith("— the cluster now shows: step 3 is [b]ready[/]")
        # the notice follows the cluster; the journal is read only once
        hub.emit(make_view(df.frozen()))
        await settle(pilot)
        assert "the cluster now shows: step 3 is [b]done[/]" in app.main.progress.markup_text
        assert hub.executor.interrupted_asked == 1
        # the console's own action replaces the notice
        await open_confirm(pilot, app, "s")
        await pilot.press("y")
        await until(pilot, "the action ran", lambda: hub.executor.executed and app.running is None)
        assert app.main.progress.markup_text.startswith("[$success]✓ shut down v4")


async def test_no_notice_when_nothing_was_left_unfinished() -> None:
    app, hub = frozen_app(catching_up())
    async with app.run_test(size=WIDE) as pilot:
        await until(pilot, "the journal read", lambda: hub.executor.interrupted_asked == 1)
        await settle(pilot)
        assert not app.main.progress.display
        assert not any(e.text.startswith("interrupted") for e in app.log_entries)


async def test_t_takes_over_the_driver_lease_once_the_cluster_name_is_typed() -> None:
    app, hub = frozen_app(catching_up(), driver="alice@laptop (pid 77, 1c2d) since 04:10 UTC")
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        await pilot.press("T")
        await settle(pilot)
        screen = confirm(app)
        assert screen.plan.key == "take-over" and screen.plan.typed_name == "hippo"
        assert "alice@laptop" in screen.plan.summary and hub.executor.holder in screen.plan.summary
        yes = screen.query_one("#confirm-button-yes", Button)
        assert app.focused is screen.query_one("#confirm-name", Input)
        await pilot.press(*"hipp", "enter")
        await settle(pilot)
        assert app.screen is screen and yes.disabled
        await pilot.press("escape")
        await settle(pilot)
        assert hub.executor.took_over == []

        await pilot.press("T")
        await settle(pilot)
        await pilot.press(*"hippo", "enter")
        await until(pilot, "taken over", lambda: app.last_ended is not None)
        assert hub.executor.took_over == ["hippo"]
        assert hub.executor.executed == []
        assert app.main.progress.markup_text == (
            "[$success]✓ take over driving[/]: took the driver lease from alice@laptop "
            "(pid 77, 1c2d)"
        )


async def test_a_refused_takeover_says_why() -> None:
    app, hub = frozen_app(catching_up())
    hub.executor.fail_with = GuardRefused(
        "the driver Lease hippo-ivytui-driver could not be taken: it changed since it was read",
        ("alice@laptop renewed it 2 s ago",),
    )
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        await pilot.press("T")
        await settle(pilot)
        await pilot.press(*"hippo", "enter")
        await until(pilot, "the refusal", lambda: isinstance(app.screen, ReasonsScreen))
        screen = reasons(app)
        assert screen.title_text == "take over driving: refused"
        assert "it changed since it was read" in screen.message
        assert screen.reasons == ("alice@laptop renewed it 2 s ago",)
        assert app.running is None
