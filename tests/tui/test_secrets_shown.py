"""Secrets never printed: not in the traceback Textual prints when the console dies, not on the
screen after a failed poll or a failed action, not in the YAML viewer of a Secret."""

from __future__ import annotations

import io
from typing import Any

import pytest
from rich.console import Console

from ivytui.config import Config, DatabaseTarget
from ivytui.errors import IvyError
from ivytui.tui.driving import Question
from ivytui.tui.objects import object_text
from ivytui.tui.screens.confirm import ReasonsScreen
from tests.tui.tui_fakes import catching_up, frozen_app

PASSWORD = "pw-never-shown-7f3a"
S3_SECRET = "s3-secret-never-shown-91c2"
SIZE = (160, 48)


def _crash_with_secrets_in_scope(config: Config) -> BaseException:
    """An exception raised in a frame whose locals hold every kind of secret."""
    password = PASSWORD
    secret_key = S3_SECRET
    target = config.v4_database
    try:
        raise RuntimeError(f"something broke while connecting to {target.host}")
    except RuntimeError as exc:
        assert password and secret_key
        return exc


async def test_the_traceback_of_a_crash_shows_no_secret() -> None:
    config = Config(
        cluster="hippo",
        namespace="pgo",
        v4_database=DatabaseTarget(host="127.0.0.1", port=5432, user="postgres", password=PASSWORD),
    )
    app, _ = frozen_app(catching_up(), config=config)
    printed = io.StringIO()
    with pytest.raises(RuntimeError):  # the test harness raises what crashed the app, at exit
        async with app.run_test(size=SIZE):
            try:
                raise _crash_with_secrets_in_scope(config)
            except RuntimeError as exc:
                app._handle_exception(exc)
            console = Console(file=printed, width=200, color_system=None)
            for renderable in app._exit_renderables:
                console.print(renderable)
    text = printed.getvalue()
    assert "RuntimeError" in text  # the traceback is printed...
    assert PASSWORD not in text  # ...without the secrets its frames held
    assert S3_SECRET not in text


async def test_a_failed_action_shows_no_secret() -> None:
    app, hub = frozen_app(catching_up())

    async def failing_execute(plan: Any, **_: Any) -> Any:
        raise IvyError(f"connection to postgresql://postgres:{PASSWORD}@10.0.0.1/postgres failed")

    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        hub.executor.execute = failing_execute  # type: ignore[method-assign]
        app.drive.start(Question(title="freeze v4 and switch WAL", summary="", key="freeze"))
        for _ in range(50):
            if isinstance(app.screen, ReasonsScreen):
                break
            await pilot.pause(0.05)
        shown = app.screen
        assert isinstance(shown, ReasonsScreen)
        assert "connection to postgresql://postgres:<redacted>@10.0.0.1/postgres" in shown.message
        assert PASSWORD not in shown.message
        assert app.last_ended is not None and PASSWORD not in app.last_ended.text


def test_the_yaml_viewer_masks_a_secret() -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "hippo-postgres-secret"},
        "data": {"password": "cHctbmV2ZXI=", "username": "cG9zdGdyZXM="},
        "stringData": {"aws-s3-key-secret": S3_SECRET},
    }
    text, language = object_text(secret)
    assert language == "yaml"
    assert "cHctbmV2ZXI=" not in text and S3_SECRET not in text
    assert "password: <masked>" in text and "hippo-postgres-secret" in text
