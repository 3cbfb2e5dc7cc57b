"""The one executor that performs every action of the move.

For each confirmed plan it takes (or renews) the driver Lease, then reads every source afresh
and checks the action's guard from the domain table on that one snapshot — the same call the
confirm modal made — and only then acts. The resourceVersion of every write is the one of that
snapshot's object (never empty); a conflict re-reads the object, and the write is repeated only
when the fields the action depends on are unchanged (an operator's status update), at most a few
times. The journal gets "started" before the first write and exactly one outcome after it,
whatever ends the action (an error of any kind, a cancellation on quit).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ivytui.domain.actions import Verdict, check, describe_drift
from ivytui.domain.flavor import Resource
from ivytui.domain.model import MARKS_ANNOTATION, Marks, Snapshot
from ivytui.domain.runbook import StepStatus
from ivytui.errors import IvyError
from ivytui.sources.actions import crashpoints
from ivytui.sources.actions.errors import ActionFailed, GuardRefused, Stopped
from ivytui.sources.actions.plans import Outcome, Plan
from ivytui.sources.actions.runners import Runners
from ivytui.sources.actions.session import DriverSession
from ivytui.sources.journal import Journal, JournalRecord, interrupted_records, scrub
from ivytui.sources.kube_write import ConflictError, KubeWriter, NotFoundError, ReadOnlyRefused

if TYPE_CHECKING:
    from ivytui.sources.hub import Hub

Progress = Callable[[str], None]
WRITE_ATTEMPTS = 4
AGAIN = (
    "; the runbook shows where the move stands: press the step's key again once the cause is gone"
)
SUMMARY_RECORDS = 30


@dataclass
class Act:
    """One running action: the reading its guard was checked on, and what it has changed."""

    plan: Plan
    snapshot: Snapshot
    objects: dict[str, Mapping[str, Any]]
    before: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)
    changes: list[str] = field(default_factory=list)
    writes: int = 0

    def changed(self, words: str, *, key: str = "", before: Any = None, after: Any = None) -> None:
        self.changes.append(words)
        if key:
            self.before.setdefault(key, before)
            self.after[key] = after

    def changed_words(self) -> str:
        if not self.changes:
            return "nothing was changed"
        return "changed so far: " + "; ".join(self.changes)


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def _applied(obj: Mapping[str, Any], patch: Mapping[str, Any]) -> bool:
    """Whether every value of the merge patch ``patch`` is already in ``obj``."""
    for key, value in patch.items():
        if key == "metadata" and isinstance(value, Mapping):
            value = {k: v for k, v in value.items() if k != "resourceVersion"}
        have = obj.get(key) if isinstance(obj, Mapping) else None
        if isinstance(value, Mapping):
            if not isinstance(have, Mapping) or not _applied(have, value):
                return False
        elif have != value:
            return False
    return True


def _marks_text(obj: Mapping[str, Any]) -> str | None:
    value = (_meta(obj).get("annotations") or {}).get(MARKS_ANNOTATION)
    return str(value) if value is not None else None


class Executor(Runners):
    def __init__(
        self,
        hub: Hub,
        *,
        journal: Journal | None = None,
        writer: KubeWriter | None = None,
        wait_timeout: float = 120.0,
        holder: str | None = None,
    ) -> None:
        self.hub = hub
        self.config = hub.config
        self.flavor = hub.flavor
        self.journal = journal or Journal()
        self._writer = writer
        self.wait_timeout = wait_timeout
        self.busy: str | None = None
        self.session = DriverSession(self.writer, f"{self.cluster}-ivytui-driver", holder=holder)
        self._act: Act | None = None

    # ---- context --------------------------------------------------------------------------

    @property
    def holder(self) -> str:
        return self.session.holder

    @property
    def lease_name(self) -> str:
        return self.session.name

    def writer(self) -> KubeWriter:
        if self._writer is None:
            self._writer = KubeWriter(
                self.config, namespace=self.namespace, context=self.view.context
            )
        return self._writer

    async def close(self) -> None:
        """Release the driver Lease and close the client."""
        if not self.config.read_only:
            await self.session.release()
        if self._writer is not None:
            await self._writer.close()

    def step(self, number: int) -> StepStatus:
        return next(s for s in self.view.steps if s.number == number)

    async def fresh(self) -> tuple[Snapshot, tuple[StepStatus, ...], dict[str, Mapping[str, Any]]]:
        """Every source read now: the snapshot, its steps and the raw objects, of one view."""
        await self.hub.refresh()
        view = self.view
        return view.snapshot, tuple(view.steps), dict(view.objects)

    # ---- the journal ----------------------------------------------------------------------

    def _record(
        self, plan: Plan, outcome: str, detail: str = "", *, attempt: str = "", **extra: Any
    ) -> JournalRecord:
        rec = JournalRecord(
            step=f"{plan.step} {plan.key}",
            action=plan.title,
            outcome=outcome,
            detail=detail,
            context=self.view.context,
            namespace=self.namespace,
            cluster=self.cluster,
            v5_name=self.v5_name,
            attempt=attempt,
            holder=self.holder,
            **extra,
        )
        self.journal.append(rec)
        return rec

    async def _summarise(self, rec: JournalRecord) -> None:
        """Keep the newest records on the cluster (scrubbed), for the other viewers; a failure
        here never hides the action's own outcome."""
        if self.config.read_only:
            return
        name = f"{self.cluster}-ivytui-journal"
        with contextlib.suppress(IvyError, OSError, TimeoutError):
            for _ in range(WRITE_ATTEMPTS):
                current = await self.writer().get_configmap_object(name)
                data = dict((current or {}).get("data") or {})
                lines = [ln for ln in data.get("summary", "").splitlines() if ln.strip()]
                records = [ln for ln in data.get("records", "").splitlines() if ln.strip()]
                new = {
                    "summary": "\n".join([*lines, scrub(rec.summary())][-SUMMARY_RECORDS:]) + "\n",
                    "records": "\n".join([*records, rec.to_json()][-SUMMARY_RECORDS:]) + "\n",
                    "last": scrub(rec.summary()),
                }
                try:
                    await self.writer().put_configmap(
                        name,
                        new,
                        {"app.kubernetes.io/managed-by": "ivytui", "pg-cluster": self.cluster},
                        resource_version=str(_meta(current or {}).get("resourceVersion") or ""),
                    )
                    return
                except ConflictError:
                    continue

    async def interrupted(self) -> tuple[str, ...]:
        """Actions that started and have no outcome, from the local journal and the cluster's
        copy, in words."""
        found: dict[str, Mapping[str, Any]] = {}
        records = list(self.journal.records())
        if not self.config.read_only:
            with contextlib.suppress(IvyError, OSError, TimeoutError, ValueError):
                cm = await self.writer().get_configmap(f"{self.cluster}-ivytui-journal")
                for line in (cm or {}).get("records", "").splitlines():
                    if line.strip():
                        records.append(json.loads(line))
        for rec in interrupted_records(records):
            found.setdefault(str(rec.get("attempt") or id(rec)), rec)
        out = []
        for rec in sorted(found.values(), key=lambda r: float(r.get("at") or 0)):
            stamp = time.strftime("%H:%M UTC", time.gmtime(float(rec.get("at") or 0)))
            who = rec.get("holder") or f"{rec.get('who')}@{rec.get('host')}"
            out.append(f"step {rec.get('step')} started {stamp} by {who}, no outcome recorded")
        return tuple(out)

    # ---- the driver -----------------------------------------------------------------------

    async def take_over(self, typed: str) -> str:
        """Take the driver Lease from another console: only with the cluster name typed."""
        if self.config.read_only:
            raise ReadOnlyRefused("read-only mode: this console only watches")
        if typed != self.cluster:
            raise GuardRefused(f"type the cluster name {self.cluster} to take over")
        state = await self.session.read()
        before = state.holder if state is not None else ""
        await self.session.acquire(take_over=True)
        plan = Plan(key="take-over", step=-1, title="take over the driver lease", summary="")
        detail = f"took the driver lease from {before}" if before else "took the driver lease"
        rec = self._record(
            plan, "done", detail, before={"holder": before}, after={"holder": self.holder}
        )
        await self._summarise(rec)
        return detail

    # ---- execution ------------------------------------------------------------------------

    async def execute(
        self,
        plan: Plan,
        *,
        override: str = "",
        typed: str = "",
        progress: Progress | None = None,
        shown: Verdict | None = None,
    ) -> Outcome:
        if self.busy is not None:
            raise GuardRefused(f"{self.busy} is still running")
        self.busy = plan.title  # set before the first await: one action at a time
        try:
            return await self._execute(
                plan, override=override, typed=typed, say=progress or (lambda _: None), shown=shown
            )
        finally:
            self.busy = None

    def _refuse(self, plan: Plan, failing: tuple[str, ...], *, holder: str = "") -> GuardRefused:
        # A refusal is journaled locally only: nothing at all is sent to the cluster.
        self._record(plan, "refused", "; ".join(failing))
        return GuardRefused(f"{plan.title} refused: {failing[0]}", failing, holder=holder)

    async def _execute(
        self, plan: Plan, *, override: str, typed: str, say: Progress, shown: Verdict | None
    ) -> Outcome:
        if self.config.read_only:
            self._record(plan, "refused", "read-only mode")
            raise ReadOnlyRefused("read-only mode: this console only watches")
        say("taking the driver lease")
        try:
            await self.session.ensure(plan.title)
        except GuardRefused as exc:
            raise self._refuse(plan, exc.checks or (exc.message,), holder=exc.holder) from None
        except IvyError as exc:
            raise self._refuse(plan, (f"the driver lease cannot be taken: {exc}",)) from None
        say("checking the guard on a fresh reading")
        snapshot, steps, objects = await self.fresh()
        verdict = check(plan.key, snapshot, steps)
        failing = verdict.failing
        is_override = False
        if verdict.override:
            if override == self.cluster:
                failing, is_override = (), True
            else:
                failing = (
                    *failing,
                    f"to shut down without the final switch, type the cluster name "
                    f"{self.cluster} as the override",
                )
        if failing:
            drift = describe_drift(shown, verdict) if shown is not None and shown.ok else ""
            raise self._refuse(plan, (*failing, *((drift,) if drift else ())))
        if plan.typed_name and typed != plan.typed_name:
            raise self._refuse(plan, (f"type the cluster name {plan.typed_name} to confirm",))

        act = Act(plan, snapshot, objects)
        self._act = act
        attempt = secrets.token_hex(4)
        started = self._record(plan, "started", attempt=attempt, override=is_override)
        await self._summarise(started)
        outcome, detail = "failed", ""
        try:
            runner = getattr(self, "_run_" + plan.key.replace("-", "_"))
            text: str = await runner(plan, act, say)
            outcome, detail = "done", text
            return Outcome(True, text)
        except asyncio.CancelledError:
            outcome = "cancelled"
            detail = f"the console stopped while the action ran; {act.changed_words()}"
            raise
        except GuardRefused as exc:
            outcome, detail = "refused", f"{exc.message}; {act.changed_words()}"
            raise GuardRefused(detail, exc.checks, holder=exc.holder) from None
        except Stopped as exc:
            outcome, detail = "stopped", f"{exc.message}; {act.changed_words()}{AGAIN}"
            raise Stopped(detail, exc.checks) from None
        except IvyError as exc:
            outcome, detail = "failed", f"{exc.message}; {act.changed_words()}{AGAIN}"
            raise ActionFailed(f"{plan.title} failed: {detail}") from None
        except Exception as exc:
            outcome = "failed"
            detail = f"{type(exc).__name__}: {exc}; {act.changed_words()}{AGAIN}"
            raise ActionFailed(f"{plan.title} failed: {detail}") from None
        finally:
            rec = self._record(
                plan,
                outcome,
                detail,
                attempt=attempt,
                change=dict(plan.options.get("patch") or {}),
                before=act.before,
                after=act.after,
                override=is_override,
            )
            self._act = None
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(self._summarise(rec), 3)

    # ---- writes with a precondition -------------------------------------------------------

    async def _patch(
        self,
        act: Act,
        which: str,
        res: Resource,
        name: str,
        patch: Mapping[str, Any],
        *,
        depends: Callable[[Mapping[str, Any]], Any],
        recheck: bool = False,
    ) -> dict[str, Any]:
        """A merge patch carrying the resourceVersion of ``which`` as the guard read it. On a
        conflict: re-read; repeat only while ``depends`` of the object is unchanged (and, with
        ``recheck``, the action's guard still holds on a fresh reading)."""
        obj = act.objects.get(which) or {}
        rv = str(_meta(obj).get("resourceVersion") or "")
        if not rv:
            raise Stopped(
                f"{res.kind} {name} has no resourceVersion in the reading the guard checked: "
                "nothing is sent without one"
            )
        base = depends(obj)
        self.before_write(act)
        for _ in range(WRITE_ATTEMPTS):
            try:
                result = await self.writer().merge_patch(res, name, patch, resource_version=rv)
            except ConflictError:
                fresh = await self._reread(res, name)
                if _applied(fresh, patch):
                    # An earlier attempt went through although its answer was lost (a 5xx or
                    # no answer, then sent again): the object already holds the change.
                    act.objects[which] = fresh
                    return fresh
                if depends(fresh) != base:
                    raise Stopped(
                        f"{res.kind} {name} changed since the guard read it "
                        f"(resourceVersion {rv} → {_meta(fresh).get('resourceVersion')}): "
                        "the patch was not sent; check the step and press its key again"
                    ) from None
                if recheck:
                    snapshot, steps, _ = await self.fresh()
                    verdict = check(act.plan.key, snapshot, steps)
                    if not verdict.ok and not verdict.override:
                        raise Stopped(
                            f"{act.plan.title}: the guard no longer holds: {verdict.failing[0]}",
                            verdict.failing,
                        ) from None
                rv = str(_meta(fresh).get("resourceVersion") or "")
                continue
            act.objects[which] = result
            return result
        raise Stopped(
            f"{res.kind} {name} kept changing under {WRITE_ATTEMPTS} attempts: the patch was "
            "not sent"
        )

    async def _delete(
        self,
        act: Act,
        which: str,
        res: Resource,
        name: str,
        *,
        depends: Callable[[Mapping[str, Any]], Any],
    ) -> None:
        """Delete with ``preconditions.resourceVersion`` of the object the guard read."""
        obj = act.objects.get(which) or {}
        rv = str(_meta(obj).get("resourceVersion") or "")
        if not rv:
            raise Stopped(
                f"{res.kind} {name} has no resourceVersion in the reading the guard checked: "
                "nothing is deleted without one"
            )
        base = depends(obj)
        self.before_write(act)
        for _ in range(WRITE_ATTEMPTS):
            try:
                await self.writer().delete(res, name, resource_version=rv)
                return
            except ConflictError:
                fresh = await self._reread(res, name)
                if depends(fresh) != base:
                    raise Stopped(
                        f"{res.kind} {name} changed since the guard read it: it was not deleted"
                    ) from None
                rv = str(_meta(fresh).get("resourceVersion") or "")
        raise Stopped(f"{res.kind} {name} kept changing: it was not deleted")

    async def _reread(self, res: Resource, name: str) -> dict[str, Any]:
        try:
            return await self.writer().get(res, name)
        except NotFoundError:
            raise Stopped(f"{res.kind} {name} is gone since the guard read it") from None

    async def _write_marks(self, act: Act, update: Callable[[Marks], Marks]) -> Marks:
        """Change the runbook's marks on the v5 object; a conflict from the v5 operator's
        status updates is retried while the marks themselves are unchanged."""
        obj = act.objects.get("v5") or {}
        if not obj:
            raise Stopped(f"the v5 cluster {self.v5_name} is not there to hold the marks")
        current = Marks.from_json(_marks_text(obj), observed_at=time.time())
        marks = update(current)
        patch = {"metadata": {"annotations": {MARKS_ANNOTATION: marks.to_json()}}}
        await self._patch(act, "v5", self.flavor.v5, self.v5_name, patch, depends=_marks_text)
        return marks

    # ---- waits ----------------------------------------------------------------------------

    def before_write(self, act: Act) -> None:
        """Every write of an action passes here first (the crash points of the fault tests)."""
        crashpoints.passed(act.plan.key, "between-writes" if act.writes else "before-first-write")
        act.writes += 1

    async def _wait(self, what: str, ready: Callable[[], bool], say: Progress) -> None:
        key = self._act.plan.key if self._act is not None else ""
        crashpoints.passed(key, "after-last-write")
        deadline = time.monotonic() + self.wait_timeout
        say(f"waiting: {what}")
        while not ready():
            if time.monotonic() > deadline:
                raise ActionFailed(f"timed out after {self.wait_timeout:.0f} s waiting: {what}")
            await asyncio.sleep(0.5)
            await self.hub.refresh()
            crashpoints.passed(key, "during-wait")

    def marks_after(self, act: Act, **fields: Any) -> Callable[[Marks], Marks]:
        def update(marks: Marks) -> Marks:
            return replace(marks, **fields)

        return update
