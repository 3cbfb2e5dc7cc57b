"""The words of the move: the questions that are not an action's plan (quit while an action
runs, take over the driver Lease), the progress line, and the notice of an interrupted action.

Pure: reads values, returns values. Which key runs which action, and whether it may run now, is
the domain's table of actions (``ivytui.domain.actions``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from textual.markup import escape

from ivytui.domain.runbook import StepStatus


@dataclass(frozen=True)
class Question:
    """A yes/no question in the confirm modal that is not an action's plan (quit while an
    action runs, take over the driver Lease). Has the fields of a plan so the one confirm modal
    shows both; ``typed_name`` asks for the cluster name."""

    title: str
    summary: str
    key: str = "question"
    step: int = -1
    diff: str = ""
    kubectl: str = ""
    sql: str = ""
    yaml: str = ""
    typed_name: str = ""
    override_needed: bool = False
    destructive: bool = True
    options: Mapping[str, Any] = field(default_factory=dict)


# -- the progress line ------------------------------------------------------------------------


@dataclass
class Running:
    """The action under way, for the progress line and the quit question."""

    key: str
    title: str
    started: float
    stage: str = "checking the guards again"


@dataclass(frozen=True, slots=True)
class Ended:
    """How the last action ended: done (``ok``) or refused/failed, with the words shown."""

    title: str
    ok: bool
    text: str
    at: float


def running_markup(running: Running, now: float) -> str:
    seconds = max(0, int(now - running.started))
    return (
        f"[$warning]… {escape(running.title)}[/] — {escape(running.stage)} "
        f"[$text-muted]({seconds} s · the screen stays live · q asks before quitting)[/]"
    )


def done_markup(title: str, text: str) -> str:
    return f"[$success]✓ {escape(title)}[/]: {escape(text)}"


def failed_markup(action: str, title: str, message: str) -> str:
    return f"[$error]✗ {escape(action)} — {escape(title)}[/]: {escape(message)}"


def quit_question(running: Running, now: float) -> Question:
    seconds = max(0, int(now - running.started))
    return Question(
        title="an action is running: quit anyway?",
        summary=(
            f"“{running.title}” has been running for {seconds} s ({running.stage}). "
            "Quitting stops ivytui waiting, not the cluster: what was sent stays applied, "
            "nothing is rolled back half-way, and ivytui keeps no progress of its own. The "
            "runbook is read from the cluster, so a new ivytui shows where the move stands and "
            "the step's key finishes it."
        ),
    )


def conflict_hint() -> str:
    return (
        "Nothing was changed: the object moved on since it was read. The view is re-read now; "
        "check the step and press its key again."
    )


def take_over_question(cluster: str, holder: str, driver: str) -> Question:
    """The typed-name question before this console takes the driver Lease from another."""
    held = f"held by {driver}" if driver else "whoever holds it"
    return Question(
        title="take over driving",
        key="take-over",
        typed_name=cluster,
        summary=(
            f"This console ({holder}) takes the driver Lease {cluster}-ivytui-driver from "
            f"{held}, even if it has not expired. The other console's next change is refused; "
            "whatever it is running now is not stopped. The journal records the takeover."
        ),
    )


_STEP = re.compile(r"\bstep (\d+)\b")


def interrupted_markup(sentences: Sequence[str], steps: Sequence[StepStatus]) -> str:
    """The notice on the progress line when the journal holds actions with no outcome: the
    first one, and what the cluster shows of its step now (the cluster is the state)."""
    if not sentences:
        return ""
    first = sentences[0]
    text = f"[$error]⚠ interrupted:[/] {escape(first)}"
    found = _STEP.search(first)
    if found is not None:
        number = int(found.group(1))
        step = next((s for s in steps if s.number == number), None)
        if step is not None:
            text += f" — the cluster now shows: step {number} is [b]{escape(step.state)}[/]"
    if len(sentences) > 1:
        text += f" [$text-muted](and {len(sentences) - 1} more: see the log)[/]"
    return text
