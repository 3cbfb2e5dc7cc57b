"""What the runbook says: checks, step states, alarms — and the base of the evaluation.

:class:`Facts` holds one snapshot and the helpers every fact needs (``unknown``, ``step``,
``after``). The facts themselves are layered on it, one module per source, each class
extending the one before: :mod:`.v4`, :mod:`.repo`, :mod:`.v5`, :mod:`.catchup`,
:mod:`.switch`, :mod:`.gate`, and :mod:`.steps` on top. Every fact is a ``cached_property``,
computed once per snapshot and shared between the steps that read it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from ivytui.domain.human import plural
from ivytui.domain.model import PodInfo, Snapshot, SourceName
from ivytui.domain.walname import WalSegment, segment_name

StepState = Literal["done", "ready", "blocked", "running"]


@dataclass(frozen=True, slots=True)
class Check:
    """One condition, green (``ok``) or red, with the reason in words and the sources read."""

    ok: bool
    text: str
    sources: tuple[SourceName, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class StepStatus:
    number: int
    key: str
    title: str
    state: StepState
    checks: tuple[Check, ...]
    summary: str
    overridable: bool = False
    """Step 4 only: blocked solely because step 3 is not done; an engineer may type an
    override (which the executor journals)."""
    redo: bool = False
    """``ready`` although some checks are red, because running the step's action again is
    what turns them green (step 3: a commit after the final switch — switch again)."""

    @property
    def failing(self) -> tuple[Check, ...]:
        return tuple(check for check in self.checks if not check.ok)

    @property
    def sources(self) -> tuple[SourceName, ...]:
        return union(check.sources for check in self.checks)


@dataclass(frozen=True, slots=True)
class Alarm:
    """A condition that must be seen at once, whatever step is under way."""

    key: str
    title: str
    text: str


@dataclass(frozen=True, slots=True)
class StepInfo:
    number: int
    key: str
    title: str


STEPS: tuple[StepInfo, ...] = (
    StepInfo(0, "preflight", "Preflight"),
    StepInfo(1, "create-standby", "Create the standby"),
    StepInfo(2, "catch-up", "Catch up"),
    StepInfo(3, "freeze", "Freeze and final WAL switch"),
    StepInfo(4, "shutdown-v4", "Shut down v4"),
    StepInfo(5, "promote", "Promote v5"),
    StepInfo(6, "grants", "Grants"),
    StepInfo(7, "retire-v4", "Retire v4"),
)

DONE_TEXT = {
    0: "preflight passed",
    1: "v5 standby exists and reads v4's repo",
    2: "v5 has caught up",
    3: "v4 is frozen and its final WAL is replayed",
    4: "v4 is down",
    5: "v5 is promoted",
    6: "grants verified",
    7: "v4 is retired",
}

READY_TEXT = {
    0: "preflight passed",
    1: "ready to create the v5 standby",
    2: "catching up",
    3: "ready to freeze v4 and switch WAL",
    4: "ready to shut down v4",
    5: "ready to promote v5",
    6: "ready to add the replication role and grants",
    7: "ready to retire v4",
}


def union(groups: Iterable[Iterable[SourceName]]) -> tuple[SourceName, ...]:
    seen: list[SourceName] = []
    for group in groups:
        for name in group:
            if name not in seen:
                seen.append(name)
    return tuple(seen)


def because(reason: str | None) -> str:
    """`` (reason)`` or nothing."""
    return f" ({reason})" if reason else ""


def pod_sentence(prefix: str, pods: Sequence[PodInfo]) -> str:
    """``v4 primary pod hippo-7d9f-abc is still Running`` (+ ``and 2 more``)."""
    first = pods[0]
    role = "primary " if first.is_primary else f"{first.role} " if first.role else ""
    text = f"{prefix} {role}pod {first.name} is still {first.phase}"
    if first.deleting:
        text += " (terminating)"
    if len(pods) > 1:
        text += f" (and {plural(len(pods) - 1, 'more pod')})"
    return text


def segment_range(timeline: int, first: int, last: int, segment_size: int) -> str:
    if first == last:
        return f"segment {segment_name(timeline, first, segment_size)} is"
    count = last - first + 1
    return (
        f"segments {segment_name(timeline, first, segment_size)} to "
        f"{segment_name(timeline, last, segment_size)} ({count}) are"
    )


def segment_or_none(name: str | None, segment_size: int) -> WalSegment | None:
    """The segment a ``pg_stat_archiver`` file name refers to (``.partial``/``.backup``
    suffixes ignored; ``.history`` and junk give ``None``)."""
    if not name or len(name) < 24:
        return None
    try:
        return WalSegment.parse(name[:24], segment_size)
    except ValueError:
        return None


class Facts:
    """Evaluation of one snapshot: the base every layer of facts extends."""

    def __init__(self, snap: Snapshot) -> None:
        self.s = snap
        self.seg = snap.segment_size

    def unknown(self, *sources: SourceName) -> Check | None:
        """A red check if any of ``sources`` cannot be trusted now."""
        for name in sources:
            problem = self.s.problem(name)
            if problem is not None:
                return Check(False, f"unknown: {problem}", tuple(sources))
        return None

    def step(
        self,
        number: int,
        checks: Sequence[Check],
        state: StepState,
        *,
        overridable: bool = False,
        redo: bool = False,
    ) -> StepStatus:
        """The status of step ``number``: ``done``/``ready`` fall to ``blocked`` when a check is
        red — except a ``redo``, ready because its action is what fixes the red checks."""
        info = STEPS[number]
        failing = [check for check in checks if not check.ok]
        redo = redo and state == "ready" and bool(failing)
        if state in ("done", "ready") and failing and not redo:
            state = "blocked"
        if redo:
            summary = f"ready again: {failing[0].text}"
        elif state == "done":
            summary = DONE_TEXT[number]
        elif state == "ready":
            summary = READY_TEXT[number]
        elif state == "running":
            summary = "in progress: " + (failing[0].text if failing else READY_TEXT[number])
        else:
            summary = "blocked: " + (failing[0].text if failing else "waiting")
        return StepStatus(
            number=number,
            key=info.key,
            title=info.title,
            state=state,
            checks=tuple(checks),
            summary=summary,
            overridable=overridable and state == "blocked",
            redo=redo,
        )

    def after(self, status: StepStatus) -> Check:
        """A check that an earlier step is done."""
        label = f"step {status.number} ({status.title})"
        if status.state == "done":
            return Check(True, f"{label} is done", status.sources)
        return Check(False, f"{label} is not done, it is {status.state}", status.sources)
