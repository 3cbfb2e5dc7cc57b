"""The domain layer is on the path to the first frame: stdlib only, nothing that does I/O."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import ivytui.domain

FORBIDDEN = ("textual", "kubernetes_asyncio", "aioboto3", "botocore", "asyncpg", "asyncio", "yaml")


def test_domain_modules_import_nothing_heavy() -> None:
    modules = sorted(m.name for m in pkgutil.iter_modules(ivytui.domain.__path__, "ivytui.domain."))
    assert "ivytui.domain.runbook" in modules
    script = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(json.dumps(sorted(m for m in {FORBIDDEN!r} if m in sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert json.loads(done.stdout) == []
