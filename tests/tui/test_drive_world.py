"""Driving the move with keys alone, on fresh sandbox worlds (IVYO and PGO) with the real hub and
the real executor; the refusals say why and send nothing; in MONITOR mode no key writes.

Between keys the test waits, as an engineer would, until the runbook shows the step ready.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from ivytui.config import Config, Thresholds
from ivytui.domain.actions import ACTIONS
from ivytui.sandbox import control
from ivytui.tui.app import IvyApp, make_app
from ivytui.tui.driving import Ended
from ivytui.tui.panes.runbook import RunbookPane
from ivytui.tui.screens.confirm import ConfirmScreen, ReasonsScreen
from ivytui.tui.screens.main import MainScreen
from tests.conftest import (
    RunningWorld,
    assert_journal_of_the_move,
    assert_moved_without_loss,
    start_world,
)

pytest.importorskip("ivytui.sources.hub", reason="ivytui.sources.hub (the real hub) is not there")

pytestmark = pytest.mark.world

SIZE = (160, 48)


# -- the world from outside ------------------------------------------------------------------


def api(w: RunningWorld, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/merge-patch+json"} if data else {}
    request = urllib.request.Request(w.kube_url + path, data=data, method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"null")


def requests_since(w: RunningWorld, since: int) -> tuple[int, list[dict[str, Any]]]:
    doc = api(w, "GET", f"/_sandbox/requests?since={since}")
    return int(doc["next"]), list(doc["requests"])


def mark(w: RunningWorld) -> int:
    return requests_since(w, 0)[0]


def writes_since(w: RunningWorld, since: int) -> list[str]:
    _, reqs = requests_since(w, since)
    return [f"{r['method']} {r['path']}" for r in reqs if r["method"] not in ("GET", "HEAD")]


def v4_path(w: RunningWorld) -> str:
    return f"/apis/crunchydata.com/v1/namespaces/{w.namespace}/pgclusters/{w.cluster}"


def config_for(w: RunningWorld, **changes: Any) -> Config:
    values: dict[str, Any] = {
        "cluster": w.cluster,
        "namespace": w.namespace,
        "flavor": str(w.state.get("flavor") or "ivyo"),
        "v5_name": w.v5_name,
        "kubeconfig": str(w.kubeconfig),
        "interval": 0.5,
        "source_timeout": 2.0,
        "thresholds": Thresholds(repo_quiet_seconds=5),
    }
    values.update(changes)
    return Config(**values)


# -- the console from outside ----------------------------------------------------------------


def state(app: IvyApp, number: int) -> str:
    view = app.view
    if view is None:
        return "unknown"
    return next((s.state for s in view.steps if s.number == number), "unknown")


def steps_words(app: IvyApp) -> str:
    if app.view is None:
        return "no view"
    return "; ".join(f"{s.number} {s.state}: {[c.text for c in s.failing]}" for s in app.view.steps)


async def until(
    pilot: Pilot[Any], app: IvyApp, what: str, check: Callable[[], bool], timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g} s: {what}; steps: {steps_words(app)}")
        await pilot.pause(0.2)


def ended_after(app: IvyApp, before: Ended | None) -> Callable[[], bool]:
    """Whether an action ended since ``before`` (the app's last ending when the key was pressed)."""
    return lambda: app.last_ended is not before


async def press_step(
    pilot: Pilot[Any], app: IvyApp, key: str, step: int, answer: tuple[str, ...]
) -> str:
    """Wait until ``step`` is ready, press ``key`` at once, answer the confirm modal with
    ``answer``, and wait until the action ends. A step shown ready must accept its key: a
    refusal — at the key or at acting time — fails the test, with what was shown."""
    await until(pilot, app, f"step {step} ready", lambda: state(app, step) == "ready", 90)
    before = app.last_ended
    await pilot.press(key)
    await until(
        pilot,
        app,
        f"the modal of {key}",
        lambda: isinstance(app.screen, ConfirmScreen | ReasonsScreen),
        15,
    )
    if isinstance(app.screen, ReasonsScreen):
        shown = app.screen
        raise AssertionError(f"{key} refused on a ready step: {shown.title_text}: {shown.texts}")
    await pilot.press(*answer)
    await until(pilot, app, f"the action of {key} ended", ended_after(app, before), 150)
    ended = app.last_ended
    assert ended is not None
    if not ended.ok:
        shown = app.screen
        assert isinstance(shown, ReasonsScreen)
        raise AssertionError(f"{shown.title_text}: {shown.message} {shown.reasons}")
    return ended.text


async def blocked_reasons(pilot: Pilot[Any], app: IvyApp, key: str) -> tuple[str, ...]:
    """Press ``key`` on a blocked step: the reasons shown, then close them."""
    await pilot.press(key)
    await until(
        pilot, app, f"the reasons for {key}", lambda: isinstance(app.screen, ReasonsScreen), 10
    )
    shown = app.screen
    assert isinstance(shown, ReasonsScreen)
    await pilot.press("escape")
    await until(pilot, app, "back on the main screen", lambda: app.screen is app.main, 5)
    return shown.texts


# -- the move, for each flavor ---------------------------------------------------------------


@pytest.fixture(scope="module", params=["ivyo", "pgo"])
def fresh(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningWorld]:
    directory = tmp_path_factory.mktemp(f"drive-{request.param}")
    w = start_world(directory, flavor=request.param, with_standby=False, archive_timeout=5)
    try:
        yield w
    finally:
        control.down(directory)


async def test_keys_alone_take_the_move_through_steps_1_to_7(
    fresh: RunningWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = fresh
    state_dir = tmp_path / "state"
    monkeypatch.setenv("IVYTUI_STATE_DIR", str(state_dir))
    acked_file = Path(w.state["load"]["acked_file"])
    app = make_app(config_for(w))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, app, "step 1 ready", lambda: state(app, 1) == "ready", 60)
        await until(pilot, app, "the executor", lambda: app.executor is not None, 10)

        # Promotion while v4 runs: the reasons, and nothing sent.
        since = mark(w)
        reasons = await blocked_reasons(pilot, app, "o")
        assert any("not 'pgcluster Shutdown'" in r for r in reasons), reasons
        assert any("still answers" in r for r in reasons), reasons
        assert writes_since(w, since) == []

        await press_step(pilot, app, "c", 1, ("y",))
        await until(pilot, app, "v5 caught up", lambda: state(app, 2) == "done", 120)

        # Shutdown before the final switch: the modal asks for the override and says why;
        # without it nothing can be confirmed, and nothing is sent.
        await until(pilot, app, "step 3 ready", lambda: state(app, 3) == "ready", 60)
        since = mark(w)
        await pilot.press("s")
        await until(pilot, app, "the override", lambda: isinstance(app.screen, ConfirmScreen), 10)
        screen = app.screen
        assert isinstance(screen, ConfirmScreen) and screen.plan.override_needed
        assert screen.verdict is not None and screen.verdict.override
        assert any(
            "step 3 (Freeze and final WAL switch) is not done" in f for f in screen.verdict.failing
        )
        await pilot.press("y", "enter")
        await pilot.pause(0.3)
        assert not screen.may_confirm and app.screen is screen
        await pilot.press("escape")
        await until(pilot, app, "back", lambda: app.screen is app.main, 5)
        assert writes_since(w, since) == []

        await until(
            pilot,
            app,
            "20 rows acknowledged",
            lambda: len(acked_file.read_text().split()) >= 20,
            60,
        )
        await press_step(pilot, app, "f", 3, ("y",))
        assert state(app, 3) == "done"

        # A stale resourceVersion: another client changes the v4 object's labels between the
        # plan and the yes, and the watch has not delivered it yet. The patch gets 409; the
        # object is read again, its spec is unchanged, so the patch is sent again with the new
        # resourceVersion — and only then is v4 shut down.
        await until(pilot, app, "step 4 ready", lambda: state(app, 4) == "ready", 60)
        await pilot.press("s")
        await until(pilot, app, "the confirm", lambda: isinstance(app.screen, ConfirmScreen), 10)
        kube: Any = getattr(app.hub, "kube", None)
        assert kube is not None
        stale = copy.deepcopy(kube.v4_object())
        api(w, "PATCH", v4_path(w), {"metadata": {"labels": {"touched-by": "someone-else"}}})
        since = mark(w)
        ended = ended_after(app, app.last_ended)
        with pytest.MonkeyPatch.context() as lagging:
            lagging.setattr(kube, "v4_object", lambda: stale)
            await pilot.press("y")
            await until(pilot, app, "the shutdown", ended, 90)
        assert app.last_ended is not None and app.last_ended.ok, app.last_ended
        _, reqs = requests_since(w, since)
        patches = [r["status"] for r in reqs if r["path"] == v4_path(w) and r["method"] == "PATCH"]
        assert patches == [409, 200], patches
        assert api(w, "GET", v4_path(w))["spec"]["shutdown"] is True
        assert state(app, 4) == "done"
        await press_step(pilot, app, "o", 5, ("y",))
        assert state(app, 5) == "done"

        # Retirement before the grants: the reasons, and nothing sent.
        since = mark(w)
        reasons = await blocked_reasons(pilot, app, "x")
        assert any("step 6 (Grants) is not done" in r for r in reasons), reasons
        assert writes_since(w, since) == []

        await press_step(pilot, app, "g", 6, ("y",))
        await press_step(pilot, app, "x", 7, (*w.cluster, "enter"))
        assert state(app, 7) == "done"
        await pilot.press("q")

    # Every acknowledged row is on v5, which is writable on a new timeline with its grants.
    role = "_ivoryrepl" if w.state.get("flavor", "ivyo") == "ivyo" else "_crunchyrepl"
    await assert_moved_without_loss(w, role)
    with pytest.raises(urllib.error.HTTPError) as gone:
        api(w, "GET", v4_path(w))
    assert gone.value.code == 404

    records = [
        json.loads(line) for line in (state_dir / "journal.jsonl").read_text().splitlines() if line
    ]
    assert_journal_of_the_move(w, records)


# -- MONITOR mode on the shared world --------------------------------------------------------


def every_key() -> list[str]:
    """Every key bound by the app, the main screen and the runbook (``q`` and ``ctrl+c``
    last), each once."""
    keys: list[str] = []
    for cls in (IvyApp, MainScreen, RunbookPane):
        for binding in cls.BINDINGS:
            if isinstance(binding, tuple):
                continue
            for key in binding.key.split(","):
                if key not in keys and key not in ("q", "ctrl+c"):
                    keys.append(key)
    return keys


async def test_in_monitor_mode_no_key_writes(
    world: RunningWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state_dir = tmp_path / "state"
    monkeypatch.setenv("IVYTUI_STATE_DIR", str(state_dir))
    v4_before = api(world, "GET", v4_path(world))
    since = mark(world)
    app = make_app(config_for(world, read_only=True))
    async with app.run_test(size=SIZE) as pilot:
        await until(
            pilot,
            app,
            "the sources answer",
            lambda: app.view is not None and app.view.snapshot.v5db.reachable,
            30,
        )
        await until(pilot, app, "the executor", lambda: app.executor is not None, 10)
        for spec in ACTIONS:
            assert app.check_action("act", (spec.id,)) is None, spec.id
        for action in ("act_on_step", "take_over"):
            assert app.check_action(action, ()) is None, action
        pressed = []
        for key in [*every_key(), "4", "enter", "ctrl+p"]:
            await pilot.press(key)
            await pilot.pause(0.1)
            pressed.append(key)
            while app.screen is not app.main:
                assert not isinstance(app.screen, ConfirmScreen | ReasonsScreen), key
                if app.screen.query(Input) and app.screen.focused is not None:
                    app.screen.set_focus(None)
                await pilot.press("escape")
                await pilot.pause(0.1)
        assert {"c", "f", "u", "s", "o", "g", "x", "a", "T", "enter"} <= set(pressed)
        await pilot.pause(1.0)
        await pilot.press("q")
    await asyncio.sleep(0.5)
    _, reqs = requests_since(world, since)
    assert any(r["verb"] == "list" for r in reqs), "the console's own reads are in the log"
    assert {r["method"] for r in reqs} == {"GET"}, [
        f"{r['method']} {r['path']}" for r in reqs if r["method"] != "GET"
    ]
    assert {r["verb"] for r in reqs} <= {"get", "list", "watch", "discovery"}
    v4_after = api(world, "GET", v4_path(world))
    assert v4_after["metadata"]["resourceVersion"] == v4_before["metadata"]["resourceVersion"]
    assert v4_after["spec"] == v4_before["spec"]
    v4 = await asyncpg.connect(world.v4_dsn)
    try:
        assert await v4.fetchval("SHOW default_transaction_read_only") == "off"
    finally:
        await v4.close()
    v5 = await asyncpg.connect(world.v5_dsn())
    try:
        assert await v5.fetchval("SELECT pg_is_in_recovery()")
    finally:
        await v5.close()
    assert not (state_dir / "journal.jsonl").exists()
