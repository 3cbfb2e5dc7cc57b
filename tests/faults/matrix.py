"""The fault and crash matrix: each step of the move met by a failing API, store or database, or
by the console killed at a named point — on a real sandbox world, checked from outside.

One world per flavor goes through the move; at each step every cell of that step is played in
turn: the fault is armed, the step's key is "pressed" (the executor, as the console runs it),
the outcome is read, the fault is cleared, and the world is brought back to where the next cell
starts (a thaw, v4 restarted before promotion, …). What must hold in every cell:

- the executor ends with done or with an IvyError whose words say what happened (never another
  exception: that would be a crash of the console);
- every write ivytui sent carries a precondition (the request log);
- the journal has exactly one outcome for every "started";
- no split-brain alarm, ever; and at the end, no acknowledged row of the write load missing on v5.

``python benchmarks/faults.py`` plays every cell and prints the table; ``pytest tests/faults``
plays a representative subset (``IVYTUI_FAULTS=all`` plays them all).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import time
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ivytui.config import Config, Thresholds
from ivytui.errors import IvyError
from ivytui.sandbox import control
from ivytui.sandbox.kubeapi import faults as kube_faults
from ivytui.sources.actions import Executor, crashpoints
from ivytui.sources.hub import Hub
from ivytui.sources.journal import Journal, interrupted_records

WRITE_VERBS = ("POST", "PATCH", "PUT", "DELETE")
DRIVE_SCRIPT = Path(__file__).with_name("drive.py")


@dataclass
class World:
    """A started world, as the matrix sees it."""

    dir: Path
    state: dict[str, Any]

    @property
    def kube_url(self) -> str:
        return str(self.state["kube_url"])

    @property
    def flavor(self) -> str:
        return str(self.state["flavor"])

    @property
    def v5_plural(self) -> str:
        return "ivoryclusters" if self.flavor == "ivyo" else "postgresclusters"

    def refresh(self) -> None:
        state = control.read_state(self.dir)
        assert state is not None
        self.state = state

    def requests(self, since: int) -> tuple[int, list[dict[str, Any]]]:
        url = f"{self.kube_url}/_sandbox/requests?since={since}"
        with urllib.request.urlopen(url, timeout=10) as r:
            doc = json.load(r)
        return int(doc["next"]), list(doc["requests"])

    def v5_dsn(self) -> str:
        self.refresh()
        port = self.state["v5"][str(self.state["v5_name"])]["port"]
        password = self.state["superuser_password"]
        return f"postgresql://postgres:{password}@127.0.0.1:{port}/postgres"


@dataclass(frozen=True)
class Fault:
    """A fault to arm before a step (and clear after)."""

    name: str
    arm: Callable[[World], None]
    when: str = ""
    """The crash point of the action at which the fault is armed (while the action is under
    way); empty: before the key is pressed."""


@dataclass
class Row:
    step: str
    fault: str
    outcome: str = ""
    """``done``, ``stopped`` (an IvyError with words), or ``crash``."""
    words: str = ""
    unsafe_writes: int = 0
    journal_ok: bool = True
    alarms: tuple[str, ...] = ()
    seconds: float = 0.0

    @property
    def survived(self) -> bool:
        return (
            self.outcome in ("done", "stopped")
            and self.unsafe_writes == 0
            and self.journal_ok
            and not self.alarms
        )


@dataclass
class Matrix:
    rows: list[Row] = field(default_factory=list)
    rows_lost: dict[str, int] = field(default_factory=dict)

    def totals(self) -> dict[str, int]:
        return {
            "cells run": len(self.rows),
            "survived": sum(r.survived for r in self.rows),
            "unsafe writes": sum(r.unsafe_writes for r in self.rows),
            "rows lost": sum(self.rows_lost.values()),
            "crashes": sum(r.outcome == "crash" for r in self.rows),
        }

    def grid(self) -> str:
        """Fault × step, each cell the outcomes over the flavors (✓ done, ■ stopped with words,
        ✗ not survived), for the README."""
        steps: list[str] = []
        faults: list[str] = []
        cells: dict[tuple[str, str], str] = {}
        for r in self.rows:
            step = r.step.split("·", 1)[-1].strip()
            if step not in steps:
                steps.append(step)
            if r.fault not in faults:
                faults.append(r.fault)
            mark = "✗" if not r.survived else ("✓" if r.outcome == "done" else "■")
            cells[(r.fault, step)] = cells.get((r.fault, step), "") + mark
        lines = [
            "| fault | " + " | ".join(steps) + " |",
            "| --- |" + " :---: |" * len(steps),
        ]
        for fault in faults:
            row = [cells.get((fault, step), "") for step in steps]
            lines.append(f"| {fault} | " + " | ".join(row) + " |")
        totals = self.totals()
        lines.append("")
        lines.append(", ".join(f"{k}: {v}" for k, v in totals.items()))
        return "\n".join(lines)

    def table(self) -> str:
        lines = [
            "| flavor · step | fault | outcome | s | words |",
            "| --- | --- | --- | ---: | --- |",
        ]
        for r in self.rows:
            mark = "" if r.survived else " ✗"
            words = r.words.replace("|", "/")[: 3000 if r.outcome == "stuck" else 110]
            lines.append(
                f"| {r.step} | {r.fault} | {r.outcome}{mark} | {r.seconds:.1f} | {words} |"
            )
        totals = self.totals()
        lines.append("")
        lines.append(", ".join(f"{k}: {v}" for k, v in totals.items()))
        return "\n".join(lines)


# -- faults ------------------------------------------------------------------------------------


def api(kind: str, **spec: Any) -> Callable[[World], None]:
    def arm(w: World) -> None:
        kube_faults.arm(w.kube_url, kind=kind, **spec)

    return arm


def storage(**spec: Any) -> Callable[[World], None]:
    def arm(w: World) -> None:
        control.storage_fault_arm(w.dir, **spec)

    return arm


def pg(**spec: Any) -> Callable[[World], None]:
    def arm(w: World) -> None:
        control.pg_fault_arm(w.dir, **spec)

    return arm


def s3_outage(seconds: float) -> Callable[[World], None]:
    def arm(w: World) -> None:
        control.supervisor_request(w.dir, "POST", "/_sandbox/faults/s3/stop")

        def back() -> None:
            time.sleep(seconds)
            control.supervisor_request(w.dir, "POST", "/_sandbox/faults/s3/start")

        threading.Thread(target=back, name="s3-back", daemon=True).start()

    return arm


def key_of(step: str) -> str:
    """The action id of a row's step label (``3 freeze`` → ``freeze``)."""
    words = step.split("·")[-1].strip()
    return {
        "abort": "abort",
        "1 create the standby": "create-standby",
        "3 freeze": "freeze",
        "4 shut down v4": "shutdown-v4",
        "5 promote v5": "promote",
        "6 grants": "grants",
        "7 retire v4": "retire-v4",
    }[words]


def clear_all(w: World) -> None:
    kube_faults.clear(w.kube_url)
    control.storage_fault_clear(w.dir)
    control.pg_fault_clear(w.dir)


def write_faults(verb: str, resource: str) -> list[Fault]:
    """The API faults on the write a step sends."""
    return [
        Fault("API 500 ×2", api("status", status=500, verb=verb, resource=resource, count=2)),
        Fault(
            "API 503 ×2 (Retry-After 1)",
            api("status", status=503, verb=verb, resource=resource, count=2, retry_after=1),
        ),
        Fault(
            "API 429 ×2 (Retry-After 1)",
            api("status", status=429, verb=verb, resource=resource, count=2, retry_after=1),
        ),
        Fault("API hang 3 s", api("hang", verb=verb, resource=resource, seconds=3, count=1)),
        Fault("API 409 ×1", api("conflict", verb=verb, resource=resource, count=1)),
        Fault("API watch closed", api("close-watch", verb="watch", resource="*", count=3)),
        Fault("API 410 on resume", api("gone", verb="watch", resource="*", count=2)),
        Fault("API server stopped 2 s", api("stop", seconds=2)),
    ]


def hard_write_fault(verb: str, resource: str) -> Fault:
    """More failures than the retries: the step must stop, having sent nothing that stuck."""
    return Fault(
        "API 500 ×12 (beyond retries)",
        api("status", status=500, verb=verb, resource=resource, count=12),
    )


STORE_FAULTS = [
    Fault("S3 outage 4 s", s3_outage(4), when="after-last-write"),
    Fault("S3 503 SlowDown ×3", storage(fault="slowdown", count=3), when="after-last-write"),
    Fault(
        "archive.info corrupted 4 s",
        storage(fault="corrupt", suffix="archive.info", copy=True, duration=4),
        when="after-last-write",
    ),
]
"""Store faults while the step waits for the final segment in the repo."""


def db_faults(target: str, when: str = "after-last-write") -> list[Fault]:
    """The database killed (and restarted as its operator would) while the step is under way."""
    return [
        Fault(
            f"{target} killed, restarted after 2 s",
            pg(kind="kill", target=target, restart_after=2),
            when=when,
        )
    ]


# -- the console ---------------------------------------------------------------------------------


class Console:
    """A hub and an executor on the world, as the console holds them."""

    def __init__(self, w: World, state_dir: Path, *, read_only: bool = False) -> None:
        self.w = w
        config = Config(
            cluster=str(w.state["cluster"]),
            namespace=str(w.state["namespace"]),
            flavor=w.flavor,
            v5_name=str(w.state["v5_name"]),
            kubeconfig=str(w.dir / "kubeconfig"),
            interval=0.5,
            read_only=read_only,
            thresholds=Thresholds(repo_quiet_seconds=5),
        )
        self.config = config
        self.hub = Hub(config)
        self.journal = Journal(
            state_dir / ("journal-monitor.jsonl" if read_only else "journal.jsonl")
        )
        self.ex = Executor(self.hub, journal=self.journal, wait_timeout=90)

    async def __aenter__(self) -> Console:
        await self.hub.start()
        return self

    async def __aexit__(self, *_: Any) -> None:
        await self.ex.close()
        await self.hub.stop()

    def state(self, number: int) -> str:
        return next(s.state for s in self.hub.view.steps if s.number == number)

    def steps_words(self) -> str:
        return "; ".join(
            f"{s.number} {s.state}: " + ", ".join(c.text for c in s.failing[:2])
            for s in self.hub.view.steps
            if s.failing
        )

    async def until(self, check: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                steps = {
                    s.number: (s.state, [c.text for c in s.failing][:2])
                    for s in self.hub.view.steps
                }
                raise AssertionError(f"{what}: not within {timeout} s; steps: {steps}")
            await asyncio.sleep(0.3)
            await self.hub.refresh()

    async def act(self, key: str, **kw: Any) -> tuple[str, str]:
        """Press the key of ``key``: ``("done", text)``, ``("stopped", words)`` or
        ``("crash", what)`` when anything but an IvyError came out."""
        try:
            plan = await self.ex.plan(key)
            out = await self.ex.execute(plan, **kw)
            return "done", out.text
        except IvyError as exc:
            return "stopped", f"{exc.title}: {exc.message}"
        except Exception as exc:
            return "crash", f"{type(exc).__name__}: {exc}"


async def play(
    matrix: Matrix,
    c: Console,
    step: str,
    fault: Fault,
    run: Callable[[], Awaitable[tuple[str, str]]],
) -> Row:
    """One cell: arm, run, read the outcome and the invariants, clear."""
    w = c.w
    mark, _ = w.requests(0)
    started = time.monotonic()
    before = len(interrupted_records(c.journal.records()))
    if fault.when:
        crashpoints.hook(f"{key_of(step)}:{fault.when}", lambda: fault.arm(w))
    else:
        await asyncio.to_thread(fault.arm, w)
    try:
        outcome, words = await run()
    finally:
        crashpoints.disarm()
        await asyncio.to_thread(clear_all, w)
    row = Row(
        f"{w.flavor} · {step}", fault.name, outcome, words, seconds=time.monotonic() - started
    )
    _, reqs = w.requests(mark)
    ours = [
        r
        for r in reqs
        if r["method"] in WRITE_VERBS[1:]
        and not str(r.get("user_agent")).startswith("Python-urllib")
        and "/leases/" not in r["path"]
    ]
    row.unsafe_writes = sum(1 for r in ours if not r.get("precondition"))
    # Every "started" has its outcome — but the one of a console killed on purpose, which a
    # new console must show as interrupted.
    left = len(interrupted_records(c.journal.records())) - before
    row.journal_ok = left == (1 if fault.name.startswith("console killed") else 0)
    await c.hub.refresh()
    row.alarms = tuple(a.key for a in c.hub.view.alarms)
    matrix.rows.append(row)
    return row


async def crash_cell(matrix: Matrix, c: Console, step: str, point: str, env: dict[str, str]) -> Row:
    """The console killed at ``point`` of ``step``'s action; this console takes over."""
    crash = Fault(f"console killed {point}", lambda _w: None)
    row = await play(matrix, c, step, crash, lambda: crash_at(c, key_of(step), point, env))
    await taken_over(c)
    return row


async def crash_at(c: Console, action: str, point: str, env: dict[str, str]) -> tuple[str, str]:
    """Run ``action`` in a console of its own that is killed (SIGKILL) at ``point``; then this
    console reads the journal: the interrupted action is shown, and the step finishes here."""
    await c.ex.session.release()  # the first engineer's console hands over to this one
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(DRIVE_SCRIPT),
        str(c.w.dir),
        action,
        env={**os.environ, **env, "IVYTUI_CRASH_AT": f"{action}:{point}=kill"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 180)
    if proc.returncode != -9:  # SIGKILL
        return (
            "crash",
            f"the console was not killed at {point} (exit {proc.returncode}): {err.decode()[-300:]}",
        )
    shown = await c.ex.interrupted()
    if not shown:
        return "crash", "a new console shows no interrupted action"
    await c.hub.refresh()
    return "stopped", f"killed at {point}; a new console shows: {shown[-1]}"


# -- the scenario --------------------------------------------------------------------------------


def kube_patch(w: World, path: str, body: dict[str, Any]) -> None:
    """A merge patch as an engineer's kubectl would send it (no precondition)."""
    req = urllib.request.Request(
        f"{w.kube_url}{path}",
        method="PATCH",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/merge-patch+json"},
    )
    with urllib.request.urlopen(req, timeout=10):
        pass


def v4_path(w: World) -> str:
    return f"/apis/crunchydata.com/v1/namespaces/{w.state['namespace']}/pgclusters/{w.state['cluster']}"


async def thawed(c: Console) -> None:
    """Back to step 3 ready: thaw if the freeze (or part of it) is in place."""
    await c.until(lambda: c.hub.view.snapshot.v4db.reachable, 60, "v4 answers")
    snap = c.hub.view.snapshot
    if snap.v4db.read_only or snap.v4db.blocked_roles or snap.marks.frozen_roles:
        outcome, words = await c.act("thaw")
        assert outcome == "done", words
    await c.until(lambda: c.state(3) == "ready", 60, "step 3 ready again")


async def frozen(c: Console) -> None:
    """Step 3 done (a clean freeze)."""
    if c.state(3) != "done":
        await c.until(lambda: c.state(3) == "ready", 60, "step 3 ready")
        outcome, words = await c.act("freeze")
        assert outcome == "done", f"{words}; now: {c.steps_words()}"


async def v4_back(c: Console) -> None:
    """Before promotion, v4 started again by hand (kubectl), then thawed: step 3 ready."""
    if c.hub.view.snapshot.v4.shutdown:
        await asyncio.to_thread(kube_patch, c.w, v4_path(c.w), {"spec": {"shutdown": False}})
    await c.until(lambda: c.hub.view.snapshot.v4db.reachable, 90, "v4 started again")
    await thawed(c)


async def taken_over(c: Console) -> None:
    """After a console was killed holding the driver Lease: take over, typed name and all."""
    state = await c.ex.session.read()
    if state is not None and state.holder and state.holder != c.ex.holder:
        await c.ex.take_over(c.config.cluster)


def chosen(cells: list[Any], subset: set[str] | None) -> list[Any]:
    if subset is None:
        return cells
    return [cell for cell in cells if (cell.name if isinstance(cell, Fault) else cell) in subset]


SUBSET = {
    "before-first-write",
    "API 503 ×2 (Retry-After 1)",
    "API 409 ×1",
    "API 500 ×12 (beyond retries)",
    "S3 outage 4 s",
    "v5 killed, restarted after 2 s",
    "between-writes",
    "after-last-write",
}
"""The representative cells ``pytest tests/faults`` plays by default."""


async def run_flavor(
    matrix: Matrix, w: World, state_dir: Path, *, subset: set[str] | None = SUBSET
) -> None:
    """Play the cells of every step on the world ``w`` (fresh, with a replaying standby). When
    the world cannot be brought back to where the next cell starts, that is a row of its own
    (``stuck``, with the runbook's words), and the flavor ends there."""
    try:
        await _scenario(matrix, w, state_dir, subset)
    except AssertionError as exc:
        matrix.rows.append(
            Row(f"{w.flavor} · recovery", "(after the cells above)", "stuck", str(exc))
        )


async def _scenario(matrix: Matrix, w: World, state_dir: Path, subset: set[str] | None) -> None:
    from ivytui.sources.actions.crashpoints import POINTS

    env = {"IVYTUI_STATE_DIR": str(state_dir)}
    target = "pgclusters"
    async with Console(w, state_dir) as c, Console(w, state_dir, read_only=True) as monitor:
        await c.until(lambda: c.state(2) == "done", 120, "v5 caught up")

        # abort and step 1: the standby removed and created again under each fault
        for fault in chosen([*write_faults("delete", w.v5_plural)[:2]], subset):
            row = await play(
                matrix, c, "abort", fault, lambda: c.act("abort", typed=c.config.cluster)
            )
            if row.outcome == "done":
                await c.until(lambda: c.state(1) == "ready", 60, "step 1 ready")
                await play(
                    matrix, c, "1 create the standby", fault, lambda: c.act("create-standby")
                )
            await c.until(lambda: c.state(2) == "done", 180, "v5 caught up again")
        if "between-writes" in (subset or {"between-writes"}):
            # step 1 killed between its two writes (the Secret made, the cluster not): a new
            # console takes over and step 1 finishes, replacing its own Secret.
            outcome, words = await c.act("abort", typed=c.config.cluster)
            assert outcome == "done", words
            await c.until(lambda: c.state(1) == "ready", 60, "step 1 ready")
            await crash_cell(matrix, c, "1 create the standby", "between-writes", env)
            await c.until(lambda: c.state(1) == "ready", 60, "step 1 ready after the kill")
            outcome, words = await c.act("create-standby")
            assert outcome == "done", words
            await c.until(lambda: c.state(2) == "done", 180, "v5 caught up again")

        # step 3: every fault, then the thaw
        freeze_faults = [
            *write_faults("patch", w.v5_plural),
            *STORE_FAULTS,
            *db_faults("v4"),
            *db_faults("v5"),
        ]
        for fault in chosen(freeze_faults, subset):
            await play(matrix, c, "3 freeze", fault, lambda: c.act("freeze"))
            await thawed(c)
        for point in chosen(list(POINTS), subset):
            await crash_cell(matrix, c, "3 freeze", point, env)
            await thawed(c)

        # the monitor under a fault: refused before anything is sent
        fault = Fault(
            "API 503 ×2 (Retry-After 1)",
            api("status", status=503, verb="*", resource="*", count=2, retry_after=1),
        )
        await play(matrix, monitor, "monitor · 3 freeze", fault, lambda: monitor.act("freeze"))

        # step 4: each fault from a clean freeze; v4 started again by hand after each
        shutdown_faults = [
            *write_faults("patch", target),
            hard_write_fault("patch", target),
            *db_faults("v4"),
        ]
        for fault in chosen(shutdown_faults, subset):
            await frozen(c)
            await play(matrix, c, "4 shut down v4", fault, lambda: c.act("shutdown-v4"))
            await v4_back(c)
        for point in chosen(list(POINTS), subset):
            await frozen(c)
            await crash_cell(matrix, c, "4 shut down v4", point, env)
            await v4_back(c)
        await frozen(c)
        outcome, words = await c.act("shutdown-v4")
        assert outcome == "done", words

        # step 5: faults that stop it first, then one it gets through
        await c.until(lambda: c.state(5) == "ready", 120, "promotion ready")
        for fault in chosen([hard_write_fault("patch", w.v5_plural), STORE_FAULTS[2]], subset):
            await play(matrix, c, "5 promote v5", fault, lambda: c.act("promote"))
            await c.until(lambda: c.state(5) in ("ready", "done", "running"), 60, "step 5 again")
        if "before-first-write" in (subset or {"before-first-write"}) and c.state(5) == "ready":
            await crash_cell(matrix, c, "5 promote v5", "before-first-write", env)
            await c.until(lambda: c.state(5) == "ready", 60, "step 5 ready after the kill")
        if c.state(5) == "ready":
            last = write_faults("patch", w.v5_plural)[1]
            await play(matrix, c, "5 promote v5", last, lambda: c.act("promote"))
        await c.until(lambda: c.state(5) == "done", 90, "v5 promoted")

        # step 6: the grants are idempotent: every fault
        for fault in chosen(
            [
                *db_faults("v5", when="before-first-write"),
                Fault(
                    "v5 hangs 4 s",
                    pg(kind="hang", target="v5", seconds=4),
                    when="before-first-write",
                ),
            ],
            subset,
        ):
            await c.until(lambda: c.hub.view.snapshot.v5db.reachable, 60, "v5 answers")
            await play(matrix, c, "6 grants", fault, lambda: c.act("grants"))
        if "before-first-write" in (subset or {"before-first-write"}) and c.state(6) == "ready":
            await crash_cell(matrix, c, "6 grants", "before-first-write", env)
        if c.state(6) != "done":
            await c.until(lambda: c.state(6) == "ready", 60, "grants ready")
            outcome, words = await c.act("grants")
            assert outcome == "done", words

        # step 7: a fault that stops it, then one it gets through
        await c.until(lambda: c.state(7) == "ready", 60, "retirement ready")
        for fault in chosen([hard_write_fault("delete", target)], subset):
            await play(
                matrix, c, "7 retire v4", fault, lambda: c.act("retire-v4", typed=c.config.cluster)
            )
        if "before-first-write" in (subset or {"before-first-write"}) and c.state(7) == "ready":
            await crash_cell(matrix, c, "7 retire v4", "before-first-write", env)
            await c.until(lambda: c.state(7) == "ready", 60, "step 7 ready after the kill")
        if c.state(7) == "ready":
            last = write_faults("delete", target)[0]
            await play(
                matrix, c, "7 retire v4", last, lambda: c.act("retire-v4", typed=c.config.cluster)
            )
        await c.until(lambda: c.state(7) == "done", 60, "v4 retired")

    matrix.rows_lost[w.flavor] = await rows_lost(w)


async def rows_lost(w: World) -> int:
    import asyncpg

    acked = {int(x) for x in Path(w.state["load"]["acked_file"]).read_text().split()}
    conn = await asyncpg.connect(w.v5_dsn())
    try:
        present = {r["id"] for r in await conn.fetch("SELECT id FROM ivytui_load")}
    finally:
        await conn.close()
    return len(acked - present)
