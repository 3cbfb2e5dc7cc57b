"""Messages from the hub's callbacks and workers to the app: typed, and the view collapses to
the newest when a backlog builds up."""

from __future__ import annotations

from typing import Any

from textual.message import Message

from ivytui.domain.runbook import Check
from ivytui.tui.protocols import HubViewLike, LogEntryLike

Reason = str | Check
"""One reason shown in the list of reasons: a sentence (red), or a check (green or red)."""


class ViewChanged(Message):
    """The hub has a new view; an older one still queued is dropped."""

    def __init__(self, view: HubViewLike) -> None:
        super().__init__()
        self.view = view

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, ViewChanged)


class LogArrived(Message):
    def __init__(self, entry: LogEntryLike) -> None:
        super().__init__()
        self.entry = entry


class HubStarted(Message):
    """``hub.start()`` returned: the sources are running."""

    def __init__(self, hub: Any) -> None:
        super().__init__()
        self.hub = hub


class HubFailed(Message):
    """Starting the hub failed: shown in the UI with the error's title, not as a traceback."""

    def __init__(self, title: str, message: str) -> None:
        super().__init__()
        self.title = title
        self.message = message


class WorldProgress(Message):
    """The sandbox world reported a stage (``progress.jsonl``)."""

    def __init__(self, stage: str, progress: float, at: float) -> None:
        super().__init__()
        self.stage = stage
        self.progress = progress
        self.at = at


class WorldReady(Message):
    def __init__(self, state: dict[str, Any]) -> None:
        super().__init__()
        self.state = state


class WorldFailed(Message):
    def __init__(self, error: str) -> None:
        super().__init__()
        self.error = error


class ActionProgress(Message):
    """The running action reported a stage (the executor's progress callback); an older one
    still queued is dropped."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, ActionProgress)


class ActionDone(Message):
    """The action finished and the clusters reached the state it waits for."""

    def __init__(self, title: str, text: str) -> None:
        super().__init__()
        self.title = title
        self.text = text


class ActionError(Message):
    """The action was refused or failed: the error's title, its message and, for a refusal,
    the checks it carries."""

    def __init__(
        self, action: str, title: str, message: str, checks: tuple[Reason, ...] = ()
    ) -> None:
        from ivytui.sources.journal import scrub

        super().__init__()
        self.action = action
        self.title = title
        self.message = str(scrub(message))
        """Scrubbed: an error's words may carry a DSN with its password."""
        self.checks = checks


class ActionsInterrupted(Message):
    """The executor found actions that started and never recorded an outcome (a console that
    was killed, an SSH drop): one sentence each, read from the journal and the cluster."""

    def __init__(self, sentences: tuple[str, ...]) -> None:
        super().__init__()
        self.sentences = sentences
