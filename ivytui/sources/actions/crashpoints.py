"""Named points inside each action where a test can kill the console or cancel the executor.

The names are ``<action>:<point>`` with the points of :data:`POINTS` — before the first write,
between two writes, after the last write before the wait, during the wait. A point is armed by
:func:`arm` (in the process; :func:`hook` calls a function there instead, to arm a fault of
the sandbox exactly while an action is under way) or by ``IVYTUI_CRASH_AT=<action>:<point>[=kill|cancel]`` in the
environment (a console started by a test); when nothing is armed, passing one costs a dict
look-up.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from typing import Literal

How = Literal["kill", "cancel"]
POINTS: tuple[str, ...] = (
    "before-first-write",
    "between-writes",
    "after-last-write",
    "during-wait",
)
ENV = "IVYTUI_CRASH_AT"
_armed: dict[str, How] = {}
_hooks: dict[str, Callable[[], None]] = {}


def _from_env() -> None:
    spec = os.environ.get(ENV, "")
    if not spec:
        return
    name, _, how = spec.partition("=")
    _armed[name] = "cancel" if how == "cancel" else "kill"


_from_env()


def arm(name: str, how: How = "kill") -> None:
    _, _, point = name.partition(":")
    if point not in POINTS:
        raise ValueError(f"unknown crash point {name!r}: the points are {', '.join(POINTS)}")
    _armed[name] = how


def disarm() -> None:
    _armed.clear()
    _hooks.clear()


def hook(name: str, call: Callable[[], None]) -> None:
    """Call ``call`` once, in the executor, when it passes ``name`` (a fault armed exactly
    while an action is under way)."""
    _, _, point = name.partition(":")
    if point not in POINTS:
        raise ValueError(f"unknown crash point {name!r}: the points are {', '.join(POINTS)}")
    _hooks[name] = call


def passed(action: str, point: str) -> None:
    """Called by the executor at ``point`` of ``action``: kills this process (SIGKILL, as a
    lost SSH session or an OOM kill would) or cancels the running action, when armed."""
    if not _armed and not _hooks:
        return
    call = _hooks.pop(f"{action}:{point}", None)
    if call is not None:
        call()
    how = _armed.pop(f"{action}:{point}", None)
    if how == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif how == "cancel":
        raise asyncio.CancelledError(f"crash point {action}:{point}")
