"""Only ``ivytui.tui`` imports Textual, and the app reaches its first frame without the
Kubernetes, S3 and PostgreSQL clients and without the executor (they are imported by the hub and
next to it, after that frame)."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import ivytui

HEAVY = (
    "kubernetes_asyncio",
    "aioboto3",
    "botocore",
    "asyncpg",
    "ivytui.sources.hub",
    "ivytui.sources.actions",
)


def _imported(modules: list[str], watch: tuple[str, ...]) -> list[str]:
    script = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(json.dumps(sorted(m for m in {watch!r} if m in sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    loaded: list[str] = json.loads(done.stdout)
    return loaded


def test_nothing_outside_ivytui_tui_imports_textual() -> None:
    modules = sorted(
        m.name
        for m in pkgutil.walk_packages(ivytui.__path__, "ivytui.")
        if not m.name.startswith(("ivytui.tui", "ivytui.sandbox")) and m.name != "ivytui.__main__"
    )
    assert "ivytui.cli" in modules
    assert _imported(modules, ("textual",)) == []


def test_the_app_module_leaves_the_heavy_clients_to_the_hub() -> None:
    assert _imported(["ivytui.tui.app", "ivytui.tui.demo"], HEAVY) == []


def test_the_first_frame_is_painted_before_the_hub_is_imported() -> None:
    script = """
import asyncio, json, sys
from ivytui.config import Config
from ivytui.tui.app import make_app

seen = {}

async def main():
    app = make_app(Config(kubeconfig="/nonexistent/kubeconfig"))
    async with app.run_test(size=(80, 24)) as pilot:
        seen["at_first_frame"] = "ivytui.sources.hub" in sys.modules
        seen["executor_at_first_frame"] = "ivytui.sources.actions" in sys.modules
        await app.workers.wait_for_complete()
        await pilot.pause()
        seen["after"] = "ivytui.sources.hub" in sys.modules
        seen["error"] = app.start_error

asyncio.run(main())
print(json.dumps(seen))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["at_first_frame"] is False
    assert seen["executor_at_first_frame"] is False
    assert seen["after"] is True
    # a missing kubeconfig is said in words, with a title, not raised
    assert seen["error"] is not None and seen["error"][0] != "unexpected error"
