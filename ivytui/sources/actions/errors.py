"""The errors an action ends with, each with the words the screen shows."""

from __future__ import annotations

from ivytui.errors import IvyError


class GuardRefused(IvyError):
    """Nothing was sent: a guard (or the mode, or the driver Lease) said no."""

    title = "refused"

    def __init__(self, message: str, checks: tuple[str, ...] = (), *, holder: str = "") -> None:
        super().__init__(message)
        self.checks = checks
        self.holder = holder
        """Who drives, when the refusal is the driver Lease's."""


class ActionFailed(IvyError):
    """The action stopped part-way; the message says what was changed and what to do."""

    title = "failed"


class Stopped(IvyError):
    """The action stopped before changing anything more, because what it depends on changed
    under it (a 409 that re-reading did not clear, a guard that no longer holds)."""

    title = "stopped"

    def __init__(self, message: str, checks: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.checks = checks
