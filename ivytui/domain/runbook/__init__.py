"""The runbook: a pure function from a :class:`Snapshot` to the state of each step.

Each step is ``done``, ``ready`` (its action may run now), ``running`` (its action has started
and the clusters have not finished reacting) or ``blocked``, with the checks that make it so.
Every check says what it saw, with names and values. A check that depends on a source that is
not answering is red with ``unknown: …``: nothing is green by default. A step is ``done`` or
``ready`` only when all its checks are green — except a ``redo``: ready because running its
action again is what turns its red checks green.

Done-ness is read from the clusters, never remembered: a second viewer, or the same one after
an SSH drop, evaluates the same snapshot to the same steps.

The facts are layered one module per source, each extending the one before: :mod:`.checks`
(the vocabulary and the base), :mod:`.v4`, :mod:`.repo`, :mod:`.v5`, :mod:`.catchup` (step 2),
:mod:`.switch` (step 3), :mod:`.gate` (step 5), :mod:`.steps`; and :mod:`.alarms`.
"""

from __future__ import annotations

from ivytui.domain.model import Snapshot
from ivytui.domain.runbook.alarms import alarms, check_v4_restart
from ivytui.domain.runbook.checks import STEPS, Alarm, Check, StepInfo, StepState, StepStatus
from ivytui.domain.runbook.steps import Evaluation

__all__ = [
    "STEPS",
    "Alarm",
    "Check",
    "Evaluation",
    "StepInfo",
    "StepState",
    "StepStatus",
    "alarms",
    "check_v4_restart",
    "evaluate",
]


def evaluate(snapshot: Snapshot) -> tuple[StepStatus, ...]:
    """The state of steps 0–7 for ``snapshot``."""
    return Evaluation(snapshot).all_steps()
