"""The keys that drive the move: which executor action each key runs, whether the step can be
acted on now (and if not, the reasons in words), and the words of the progress line.

Pure: reads a view, returns values. The executor checks the same guards again at the moment it
acts; what is decided here only chooses between the confirm modal and the list of reasons.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from textual.binding import Binding, BindingType
from textual.markup import escape

from ivytui.domain.runbook import StepStatus, check_v4_restart
from ivytui.tui.protocols import HubViewLike


@dataclass(frozen=True, slots=True)
class StepAction:
    """One key of the move: the app's action, the executor's action key, the runbook step."""

    action: str
    key: str
    step: int
    title: str


STEP_ACTIONS: tuple[StepAction, ...] = (
    StepAction("create_standby", "create-standby", 1, "create the v5 standby"),
    StepAction("freeze", "freeze", 3, "freeze v4 and switch WAL"),
    StepAction("thaw", "thaw", 3, "thaw v4 (undo the freeze)"),
    StepAction("shutdown_v4", "shutdown-v4", 4, "shut down v4"),
    StepAction("promote", "promote", 5, "promote v5"),
    StepAction("grants", "grants", 6, "grant the replication role"),
    StepAction("retire_v4", "retire-v4", 7, "retire v4"),
    StepAction("abort", "abort", 0, "abort the move"),
)
BY_KEY: Mapping[str, StepAction] = {a.key: a for a in STEP_ACTIONS}
ACTION_OF_STEP: Mapping[int, str] = {
    1: "create-standby",
    3: "freeze",
    4: "shutdown-v4",
    5: "promote",
    6: "grants",
    7: "retire-v4",
}
"""The executor action behind each runbook step that has one (``enter`` in the runbook)."""

NO_ACTION: Mapping[int, str] = {
    0: "Preflight has nothing to press: its checks are listed beside the steps.",
    2: "Catch-up has nothing to press: v5 replays the repo by itself, and the step turns done "
    "when it is ready, in recovery and within the lag threshold.",
}


def step_keys(bindings: Iterable[BindingType]) -> dict[int, str]:
    """The key of each runbook step that has an action, from the app's bindings."""
    action_step = {BY_KEY[key].action: step for step, key in ACTION_OF_STEP.items()}
    found: dict[int, str] = {}
    for binding in bindings:
        if isinstance(binding, Binding) and binding.action in action_step:
            found.setdefault(action_step[binding.action], binding.key_display or binding.key)
    return found


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a key does nothing now: shown instead of a confirm modal."""

    title: str
    summary: str
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class Question:
    """A yes/no question in the confirm modal that is not an action's plan (quit while an
    action runs). Has the fields of a plan so the one confirm modal shows both."""

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


def _step(view: HubViewLike, number: int) -> StepStatus | None:
    return next((s for s in view.steps if s.number == number), None)


def _failing(step: StepStatus) -> tuple[str, ...]:
    return tuple(c.text for c in step.failing)


def refusal(view: HubViewLike, key: str) -> Refusal | None:
    """``None`` when the action ``key`` may be planned and confirmed now (step 4 before step 3
    included: its confirm modal asks for the override); else the reasons, from the view."""
    snap = view.snapshot
    if key == "thaw":
        step4 = _step(view, 4)
        if (step4 is not None and step4.state == "done") or not snap.v4db.reachable:
            return Refusal(
                "nothing to thaw",
                "the undo of the freeze works while v4 runs",
                ("v4 is shut down or unreachable: there is nothing to thaw",),
            )
        if snap.v4db.read_only is not True:
            return Refusal(
                "nothing to thaw",
                "v4 accepts writes already",
                ("v4 is not frozen (default_transaction_read_only is off)",),
            )
        return None
    if key == "abort":
        step5 = _step(view, 5)
        promoted = (step5 is not None and step5.state in ("done", "running")) or (
            snap.v5db.reachable and snap.v5db.in_recovery is False
        )
        if promoted:
            return Refusal(
                "abort refused",
                "after promotion v4 must stay down",
                (
                    "v5 is promoted: restarting v4 would put two writers on one repo",
                    check_v4_restart(snap).text,
                ),
            )
        if not snap.v4.shutdown and not snap.v5.exists:
            return Refusal(
                "nothing to abort",
                "the move has not changed anything yet",
                ("v4 runs and there is no standby: there is nothing to undo",),
            )
        return None
    action = BY_KEY.get(key)
    if action is None:
        return Refusal("unknown action", key, (f"there is no action {key!r}",))
    step = _step(view, action.step)
    if step is None:
        return Refusal(
            f"step {action.step} is not known yet",
            "waiting for the first snapshot",
            ("the sources have not answered yet",),
        )
    label = f"step {step.number} · {step.title}"
    if step.state == "ready":
        return None
    if key == "shutdown-v4" and step.state == "blocked" and step.overridable:
        return None
    if step.state == "done":
        return Refusal(f"{label} is done", step.summary, (f"{step.summary}: nothing to do",))
    if step.state == "running":
        return Refusal(
            f"{label} is under way",
            step.summary,
            _failing(step) or ("the clusters have not finished reacting yet",),
        )
    return Refusal(f"{label} is blocked", step.summary, _failing(step) or (step.summary,))


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
