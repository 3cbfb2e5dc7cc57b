"""Only ivytui.tui imports Textual; the domain imports no I/O library at all."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import pytest

import ivytui

HEADLESS = sorted(
    m.name
    for m in pkgutil.walk_packages(ivytui.__path__, "ivytui.")
    if not m.name.startswith("ivytui.tui") and m.name != "ivytui.__main__"
)


def imported_after(module: str) -> set[str]:
    code = f"import sys, {module}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return set(out.stdout.split())


@pytest.mark.parametrize("module", HEADLESS)
def test_headless_modules_do_not_import_textual(module: str) -> None:
    assert "textual" not in imported_after(module)


def test_the_layers_exist() -> None:
    for layer in ("domain", "sources", "sandbox", "tui"):
        assert f"ivytui.{layer}" in {
            m.name for m in pkgutil.walk_packages(ivytui.__path__, "ivytui.")
        }


def test_the_command_line_answers_help_without_heavy_imports() -> None:
    mods = imported_after("ivytui.cli")
    for heavy in ("textual", "kubernetes_asyncio", "aioboto3", "asyncpg", "botocore"):
        assert heavy not in mods, heavy
