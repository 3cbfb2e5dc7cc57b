"""The user's keymap: a remapped key shows in the footer, the help and the runbook, and answers;
the old key no longer does; a bad file is one line on stderr and exit 2 before the screen."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.screen import Screen
from textual.widgets._footer import FooterKey
from tui_fakes import catching_up, frozen_app

from ivytui import cli
from ivytui.errors import ConfigError
from ivytui.tui.app import IvyApp
from ivytui.tui.keymap import default_path, load_keymap
from ivytui.tui.screens.confirm import ConfirmScreen
from ivytui.tui.screens.modals import HelpScreen

WIDE = (160, 48)


async def settle(pilot: Pilot[Any], times: int = 4) -> None:
    for _ in range(times):
        await pilot.pause()


async def until(pilot: Pilot[Any], what: str, check: Any, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        await pilot.pause(0.05)


def on_top(app: IvyApp) -> Screen[Any]:
    return app.screen


def footer_keys(app: IvyApp) -> dict[str, str]:
    """description → key as the footer shows it."""
    return {key.description: key.key_display for key in app.screen.query(FooterKey)}


def keymap_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "keymap.yaml"
    path.write_text(text)
    return path


async def test_a_remapped_key_shows_everywhere_and_the_old_one_is_gone(tmp_path: Path) -> None:
    keymap = load_keymap(keymap_file(tmp_path, "freeze: F\n"), IvyApp.declared_bindings())
    assert keymap == {"freeze": "F"}
    app, hub = frozen_app(catching_up(), keymap=keymap)
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        # the footer
        shown = footer_keys(app)
        assert shown["Freeze"] == "F"
        assert shown["Shutdown"] == "s"
        # the runbook's key column
        table = app.main.runbook.steps_table
        assert table.get_row("3")[1].plain == "F"
        assert table.get_row("4")[1].plain == "s"
        # the binding
        active = app.screen.active_bindings
        assert active["F"].binding.id == "freeze" and active["F"].enabled
        assert "f" not in active
        # the help
        await pilot.press("question_mark")
        await settle(pilot)
        assert isinstance(app.screen, HelpScreen)
        keys = dict(app.screen.keys)
        assert keys["F"].startswith("Step 3:")
        assert "f" not in keys
        await pilot.press("escape")
        await settle(pilot)

        # the old key does nothing
        await pilot.press("f")
        await settle(pilot)
        assert on_top(app) is app.main
        assert hub.executor.planned == []
        # the new one opens the freeze
        await pilot.press("F")
        await until(pilot, "the confirm modal", lambda: isinstance(app.screen, ConfirmScreen))
        screen = app.screen
        assert isinstance(screen, ConfirmScreen) and screen.plan.key == "freeze"
        assert hub.executor.planned == ["freeze"]


async def test_a_keymap_set_while_running_moves_the_runbook_column() -> None:
    app, _ = frozen_app(catching_up())
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        table = app.main.runbook.steps_table
        assert table.get_row("7")[1].plain == "x"
        app.set_keymap({"retire-v4": "ctrl+x"})
        await settle(pilot)
        assert table.get_row("7")[1].plain == "^x"
        assert footer_keys(app)["Retire"] == "^x"


def test_the_default_file_is_under_xdg_config_home(tmp_path: Path) -> None:
    env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg"), "HOME": str(tmp_path / "home")}
    assert default_path(env) == tmp_path / "xdg" / "ivytui" / "keymap.yaml"
    assert default_path({"HOME": str(tmp_path / "home")}) == (
        tmp_path / "home" / ".config" / "ivytui" / "keymap.yaml"
    )
    bindings = IvyApp.declared_bindings()
    assert load_keymap(None, bindings, env=env) == {}
    default_path(env).parent.mkdir(parents=True)
    default_path(env).write_text("take-over: ctrl+t\nquit: Q\n")
    assert load_keymap(None, bindings, env=env) == {"take-over": "ctrl+t", "quit": "Q"}


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("frezze: F\n", "unknown binding id 'frezze' (did you mean 'freeze'?)"),
        ("launch: F\n", "unknown binding id 'launch' (known ids: abort, act-on-step,"),
        ("thaw: on\n", "the key of 'thaw' must be a string, not True (quote it in the file)"),
        ("pane-v4: 1\n", "the key of 'pane-v4' must be a string, not 1 (quote it in the file)"),
        ("freeze: [F, G]\n", "the key of 'freeze' must be a string, not ['F', 'G']"),
        ("freeze: F\n  promote: P\n", "not valid YAML: "),
        ("- freeze\n", "must map binding ids to keys (e.g. `freeze: F`), not hold a list"),
        ("freeze: s\n", "the key 's' would be bound to both 'freeze' and 'shutdown-v4'"),
    ],
)
def test_a_bad_keymap_is_one_line_naming_the_file_and_exit_2(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    text: str,
    says: str,
) -> None:
    path = keymap_file(tmp_path, text)

    def no_screen(self: IvyApp, *args: Any, **kwargs: Any) -> int:
        raise AssertionError("the screen started despite a bad keymap")

    monkeypatch.setattr(IvyApp, "run", no_screen)
    code = cli.main(["hippo", "--keymap", str(path)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1, err
    assert err.startswith(f"ivytui: keymap {path}: ")
    assert says in err
    with pytest.raises(ConfigError):
        load_keymap(path, IvyApp.declared_bindings())


def test_a_missing_keymap_file_given_on_the_command_line_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nowhere.yaml"
    assert cli.main(["hippo", "--keymap", str(missing)]) == 2
    assert capsys.readouterr().err == f"ivytui: keymap {missing}: no such file\n"


def test_the_command_line_hands_the_keymap_to_the_app(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = keymap_file(tmp_path, "freeze: F\nhelp: h\n")
    started: list[IvyApp] = []

    def run(self: IvyApp, *args: Any, **kwargs: Any) -> int:
        started.append(self)
        return 0

    monkeypatch.setattr(IvyApp, "run", run)
    assert cli.main(["hippo", "--keymap", str(path)]) == 0
    (app,) = started
    assert app.step_keys()[3] == "F"
    assert dict(app.key_help())["h"] == "Help"
