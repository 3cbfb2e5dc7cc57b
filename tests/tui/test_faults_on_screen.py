"""The screen under faults: the console stays up, keys answer, and exactly the panes fed by
the failing source are marked stale, with the reason in words — until the fault ends."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from ivytui.sandbox import control
from ivytui.sandbox.kubeapi import faults as kube_faults
from ivytui.tui.app import make_app
from ivytui.tui.screens.modals import HelpScreen
from tests.tui.test_live import SIZE, filled, wait_for, world_config

pytestmark = pytest.mark.world


def _api_stopped(world: Any) -> None:
    kube_faults.arm(world.kube_url, kind="stop", seconds=6)


def _archive_info_corrupted(world: Any) -> None:
    control.storage_fault_arm(
        world.dir, fault="corrupt", suffix="archive.info", copy=True, duration=6
    )


def _v4_hangs(world: Any) -> None:
    control.pg_fault_arm(world.dir, kind="hang", target="v4", how="stop", seconds=6)


FAULTS: list[tuple[str, Callable[[Any], None], list[str]]] = [
    ("v4's database hangs", _v4_hangs, ["v4-pane"]),
    ("the API server is stopped", _api_stopped, ["v4-pane", "v5-pane"]),
]


def _clear(world: Any) -> None:
    import time

    from ivytui.errors import SandboxError

    deadline = time.monotonic() + 30
    while True:  # a stopped API server comes back by itself
        try:
            kube_faults.clear(world.kube_url)
            break
        except (SandboxError, OSError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    control.storage_fault_clear(world.dir)
    control.pg_fault_clear(world.dir)


@pytest.mark.parametrize(("what", "arm", "panes"), FAULTS, ids=[f[0] for f in FAULTS])
async def test_a_fault_marks_only_its_panes_stale_and_keys_answer(
    world: Any, what: str, arm: Callable[[Any], None], panes: list[str]
) -> None:
    app = make_app(world_config(world))
    async with app.run_test(size=SIZE) as pilot:
        main = app.main

        def stale() -> list[str]:
            return sorted(str(p.id) for p in main.panes if p.has_class("-stale"))

        await wait_for(pilot, "all three panes filled", lambda: filled(app), 30)
        assert stale() == []
        try:
            arm(world)
            await wait_for(pilot, f"{what}: {panes} stale", lambda: stale() == sorted(panes), 30)
            for pane in main.panes:
                if pane.id in panes:
                    assert "stale" in pane.stale_line.markup_text  # with the reason in words
            # the console answers keys while the source is away
            await pilot.press("question_mark")
            await wait_for(pilot, "the help", lambda: isinstance(app.screen, HelpScreen), 5)
            await pilot.press("escape")
            await wait_for(pilot, "back", lambda: app.screen is main, 5)
            assert stale() == sorted(panes)
        finally:
            _clear(world)
        await wait_for(pilot, f"{what}: fresh again", lambda: stale() == [], 60)


async def test_a_corrupted_archive_info_is_shown_as_unreadable_until_it_is_whole(
    world: Any,
) -> None:
    """The store answers, with bad bytes: that is the repo's state, not a silent source — the
    storage pane says archive.info is unreadable and why, and shows it again once it is whole
    (the console reads it conditionally: the corrupted answer's ETag is not kept)."""
    _archive_info_corrupted(world)
    app = make_app(world_config(world))
    try:
        async with app.run_test(size=SIZE) as pilot:
            main = app.main

            def system_id() -> str:  # the storage pane's line (once the panes are mounted)
                fields = main.repo.fields
                return fields.value("system_id") if "system_id" in fields.fields else ""

            await wait_for(
                pilot, "archive.info unreadable", lambda: "unreadable" in system_id(), 30
            )
            _clear(world)
            await wait_for(
                pilot,
                "archive.info read again",
                lambda: (
                    re.search(r"\d{15,}", system_id()) is not None
                    and "unreadable" not in system_id()
                ),
                60,
            )
    finally:
        _clear(world)
