"""Helpers shared by the source tests."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import Callable
from typing import Any

from tests.conftest import RunningWorld


def sandbox_get(world: RunningWorld, path: str) -> Any:
    with urllib.request.urlopen(f"{world.kube_url}{path}", timeout=10) as resp:
        return json.loads(resp.read())


def sandbox_post(world: RunningWorld, path: str) -> Any:
    req = urllib.request.Request(f"{world.kube_url}{path}", data=b"{}", method="POST")
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


async def wait_until(
    predicate: Callable[[], bool], within: float, what: str, step: float = 0.05
) -> float:
    """Wait until ``predicate()`` holds; return how long it took."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > within:
            raise AssertionError(f"{what} did not happen within {within} s")
        await asyncio.sleep(step)
    return time.monotonic() - started
