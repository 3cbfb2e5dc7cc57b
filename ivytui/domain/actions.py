"""The table of actions: every key that drives the move, in one place.

Each :class:`ActionSpec` says what an action is (id, default key, runbook step, title, whether it
changes anything, what its preview shows, whether it needs the typed cluster name) and holds its
guard: a pure function of one :class:`Snapshot` that returns a :class:`Verdict` — the checks it
read, green or red, with the reasons in words. The executor, the refusal and confirm modals, the
key bindings, the help screen and the runbook's key column are all derived from this table, and
the guard the modal shows and the guard the executor checks are the same call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ivytui.domain.lag import v4_timeline
from ivytui.domain.model import Snapshot
from ivytui.domain.runbook import Check, StepStatus, evaluate

Preview = Literal["manifest", "sql", "patch", "delete", "plan"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a guard found on one snapshot.

    ``checks`` are every condition read, green or red; the action may run when none is red.
    ``override`` is true when the only red check can be overridden by typing the cluster name
    (step 4 before the final switch): the executor then requires that typed override.
    """

    title: str
    summary: str
    checks: tuple[Check, ...] = ()
    override: bool = False

    @property
    def ok(self) -> bool:
        return not self.failing

    @property
    def failing(self) -> tuple[str, ...]:
        return tuple(check.text for check in self.checks if not check.ok)


Guard = Callable[[Snapshot, Sequence[StepStatus]], Verdict]


@dataclass(frozen=True, slots=True)
class ActionSpec:
    """One action of the move."""

    id: str
    """Stable id: the executor's action, the binding id a keymap remaps, the journal's step."""
    key: str
    """The default key."""
    step: int
    title: str
    label: str
    """Short label for the footer."""
    help: str
    """One line for the help screen and the tooltip."""
    guard: Guard = field(repr=False, compare=False)
    mutates: bool = True
    preview: Preview = "plan"
    typed_name: bool = False
    """The cluster name must be typed to confirm."""
    destructive: bool = False
    """The confirm modal starts on "No"."""

    @property
    def method(self) -> str:
        """The app's action name (``act_freeze``) for this spec."""
        return "act_" + self.id.replace("-", "_")


def _step(steps: Sequence[StepStatus], number: int) -> StepStatus | None:
    return next((s for s in steps if s.number == number), None)


def _step_guard(number: int, *, overridable: bool = False) -> Guard:
    """The guard of an action that is its runbook step's: the step must be ``ready``."""

    def guard(snapshot: Snapshot, steps: Sequence[StepStatus]) -> Verdict:
        step = _step(steps, number)
        if step is None:
            return Verdict(
                f"step {number} is not known yet",
                "waiting for the first snapshot",
                (Check(False, "the sources have not answered yet"),),
            )
        label = f"step {step.number} · {step.title}"
        if step.state == "ready":
            return Verdict(label, step.summary, step.checks)
        if overridable and step.state == "blocked" and step.overridable:
            return Verdict(f"{label} needs an override", step.summary, step.checks, override=True)
        red = step.failing or (Check(False, step.summary),)
        if step.state == "done":
            return Verdict(
                f"{label} is done",
                step.summary,
                (Check(False, f"{step.summary}: nothing to do", step.sources),),
            )
        if step.state == "running":
            return Verdict(f"{label} is under way", step.summary, red)
        return Verdict(f"{label} is blocked", step.summary, red)

    return guard


def _thaw_guard(snapshot: Snapshot, steps: Sequence[StepStatus]) -> Verdict:
    s = snapshot
    checks: list[Check] = []
    if s.problem("v4") is not None:
        checks.append(Check(False, f"unknown: {s.problem('v4')}", ("v4",)))
    elif s.v4.shutdown:
        checks.append(
            Check(False, "v4 is shut down (spec.shutdown): there is nothing to thaw", ("v4",))
        )
    else:
        checks.append(Check(True, "v4 is not shut down", ("v4",)))
    if s.problem("v4db") is not None:
        checks.append(Check(False, f"unknown: {s.problem('v4db')}", ("v4db",)))
    elif not s.v4db.reachable:
        checks.append(Check(False, "v4's database does not answer: nothing to thaw", ("v4db",)))
    else:
        frozen = bool(s.v4db.read_only) or bool(s.v4db.blocked_roles) or bool(s.marks.frozen_roles)
        if frozen:
            checks.append(Check(True, "v4 is frozen", ("v4db", "marks")))
        else:
            checks.append(
                Check(
                    False,
                    "v4 is not frozen (default_transaction_read_only is off, no role blocked)",
                    ("v4db", "marks"),
                )
            )
    return Verdict("thaw v4", "the undo of the freeze works while v4 runs", tuple(checks))


def abort_witnesses(snapshot: Snapshot) -> tuple[Check, Check, Check]:
    """The three independent witnesses that v5 never left recovery: its spec, its database and
    the repo. A witness that cannot answer is not proof."""
    s = snapshot
    if s.problem("v5") is not None:
        spec = Check(False, f"the v5 spec cannot witness: {s.problem('v5')}", ("v5",))
    elif not s.v5.exists:
        spec = Check(False, f"the v5 spec cannot witness: {s.v5.name} does not exist", ("v5",))
    elif s.v5.standby_enabled is True:
        spec = Check(True, f"the v5 spec says standby ({s.v5.name}: standby.enabled)", ("v5",))
    else:
        spec = Check(False, f"the v5 spec says promoted ({s.v5.name}: standby off)", ("v5",))
    if s.problem("v5db") is not None:
        db = Check(False, f"v5's database cannot witness: {s.problem('v5db')}", ("v5db",))
    elif not s.v5db.reachable:
        why = f" ({s.v5db.unreachable_reason})" if s.v5db.unreachable_reason else ""
        db = Check(False, f"v5's database cannot witness: it does not answer{why}", ("v5db",))
    elif s.v5db.in_recovery is True:
        db = Check(True, "v5's database answers in recovery", ("v5db",))
    else:
        db = Check(False, "v5's database answers out of recovery: it was promoted", ("v5db",))
    timeline, tl_sources = v4_timeline(s)
    repo_sources = ("repo", *tl_sources)
    if s.problem("repo") is not None:
        repo = Check(False, f"the repo cannot witness: {s.problem('repo')}", repo_sources)
    elif timeline is None:
        repo = Check(False, "the repo cannot witness: v4's timeline is not known", repo_sources)
    else:
        above = sorted(t for t in s.repo.history_timelines if t > timeline)
        if above:
            repo = Check(
                False,
                f"the repo holds {above[0]:08X}.history: a cluster was promoted above v4's "
                f"timeline {timeline}",
                repo_sources,
            )
        else:
            repo = Check(
                True,
                f"the repo holds no .history file above v4's timeline {timeline}",
                repo_sources,
            )
    return spec, db, repo


def _abort_guard(snapshot: Snapshot, steps: Sequence[StepStatus]) -> Verdict:
    s = snapshot
    nothing = s.available("v4") and s.available("v5") and not s.v4.shutdown and not s.v5.exists
    if nothing:
        return Verdict(
            "nothing to abort",
            "the move has not changed anything yet",
            (Check(False, "v4 runs and there is no standby: there is nothing to undo"),),
        )
    witnesses = abort_witnesses(s)
    checks: list[Check] = []
    step5 = _step(steps, 5)
    if step5 is not None and step5.state in ("done", "running"):
        checks.append(
            Check(False, "v5 is promoted: restarting v4 would put two writers on one repo")
        )
    checks.extend(witnesses)
    if any(not w.ok for w in witnesses):
        return Verdict(
            "abort refused",
            "abort restarts v4 only on proof that v5 never left recovery",
            tuple(checks),
        )
    return Verdict("abort the move", "restart v4 and remove the standby", tuple(checks))


ACTIONS: tuple[ActionSpec, ...] = (
    ActionSpec(
        "create-standby",
        "c",
        1,
        "create the v5 standby",
        "Standby",
        "Step 1: the v5 standby built from v4 (YAML preview, dry run, apply)",
        _step_guard(1),
        preview="manifest",
    ),
    ActionSpec(
        "freeze",
        "f",
        3,
        "freeze v4 and switch WAL",
        "Freeze",
        "Step 3: block v4's writers, final WAL switch, wait until v5 replayed it",
        _step_guard(3),
        preview="sql",
    ),
    ActionSpec(
        "thaw",
        "u",
        3,
        "thaw v4 (undo the freeze)",
        "Thaw",
        "Undo step 3 before step 4: v4 writable again, its roles unblocked",
        _thaw_guard,
        preview="sql",
    ),
    ActionSpec(
        "shutdown-v4",
        "s",
        4,
        "shut down v4",
        "Shutdown",
        "Step 4: spec.shutdown on the v4 cluster, then wait until it is proven down",
        _step_guard(4, overridable=True),
        preview="patch",
        destructive=True,
    ),
    ActionSpec(
        "promote",
        "o",
        5,
        "promote v5",
        "Promote",
        "Step 5: spec.standby.enabled false on v5, once v4 is proven down",
        _step_guard(5),
        preview="patch",
        destructive=True,
    ),
    ActionSpec(
        "grants",
        "g",
        6,
        "grant the replication role",
        "Grants",
        "Step 6: the replication role and its four grants, on v5",
        _step_guard(6),
        preview="sql",
    ),
    ActionSpec(
        "retire-v4",
        "x",
        7,
        "retire v4",
        "Retire",
        "Step 7: export v4's credentials, delete the v4 object (type its name)",
        _step_guard(7),
        preview="delete",
        typed_name=True,
        destructive=True,
    ),
    ActionSpec(
        "abort",
        "a",
        0,
        "abort the move",
        "Abort",
        "Before promotion: restart v4 and remove the standby (type the name)",
        _abort_guard,
        preview="patch",
        typed_name=True,
        destructive=True,
    ),
)

BY_ID: Mapping[str, ActionSpec] = {a.id: a for a in ACTIONS}

ACTION_OF_STEP: Mapping[int, str] = {a.step: a.id for a in ACTIONS if a.id not in ("thaw", "abort")}
"""The action behind each runbook step that has one (``enter`` in the runbook)."""

NO_ACTION: Mapping[int, str] = {
    0: "Preflight has nothing to press: its checks are listed beside the steps.",
    2: "Catch-up has nothing to press: v5 replays the repo by itself, and the step turns done "
    "when it is ready, in recovery and within the lag threshold.",
}


def spec(action_id: str) -> ActionSpec:
    """The spec of ``action_id``; :class:`KeyError` names the known ids."""
    try:
        return BY_ID[action_id]
    except KeyError:
        raise KeyError(f"unknown action {action_id!r} (known: {', '.join(BY_ID)})") from None


def check(action_id: str, snapshot: Snapshot, steps: Sequence[StepStatus] | None = None) -> Verdict:
    """The guard of ``action_id`` on ``snapshot`` (``steps``: its evaluation, if already made)."""
    found = spec(action_id)
    return found.guard(snapshot, evaluate(snapshot) if steps is None else steps)


def step_keys(keymap: Mapping[str, str] | None = None) -> dict[int, str]:
    """The key of each runbook step that has an action, with a keymap (id → key) applied."""
    keys = dict(keymap or {})
    return {
        step: keys.get(action_id, BY_ID[action_id].key)
        for step, action_id in ACTION_OF_STEP.items()
    }


def describe_drift(shown: Verdict, fresh: Verdict) -> str:
    """Why the executor refused although the screen showed the action possible, in words: the
    first check that is red on the reading made at the moment of acting."""
    now_red = [c for c in fresh.checks if not c.ok]
    if not now_red:
        return ""
    if shown.ok:
        return (
            f"the screen showed it possible, but the reading made at the moment of acting "
            f"found: {now_red[0].text}"
        )
    return f"the reading made at the moment of acting found: {now_red[0].text}"


def plain(verdict: Verdict) -> Mapping[str, Any]:
    """The verdict as plain data, for the journal and ``--json``."""
    return {
        "title": verdict.title,
        "ok": verdict.ok,
        "override": verdict.override,
        "checks": [{"ok": c.ok, "text": c.text} for c in verdict.checks],
    }
