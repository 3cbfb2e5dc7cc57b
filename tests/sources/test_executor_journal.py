"""The journal tells the whole story: "started" before the first write, and exactly one outcome
for it whatever ends the action — an ivytui error, a database error, a timeout, a cancellation
(the console quit while the action ran). The hub, the Lease and the guard are stand-ins here:
what is under test is the executor's bookkeeping, and the file it writes."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import asyncpg
import pytest

from ivytui.config import Config
from ivytui.domain.actions import Verdict
from ivytui.domain.model import Snapshot
from ivytui.errors import IvyError
from ivytui.sources.actions import ActionFailed, Executor, Plan
from ivytui.sources.actions import executor as executor_module
from ivytui.sources.journal import Journal, interrupted_records


class _Session:
    holder = "alice@bastion pid 1 #abcd"
    name = "hippo-ivytui-driver"

    async def ensure(self, action: str = "") -> None:
        return None

    async def release(self) -> None:
        return None


class _Writer:
    async def get_configmap_object(self, name: str) -> Any:
        raise IvyError("the API server is away")

    async def get_configmap(self, name: str) -> Any:
        raise IvyError("the API server is away")

    async def close(self) -> None:
        return None


def _executor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Executor:
    view = SimpleNamespace(
        namespace="pgo", context="sandbox", snapshot=Snapshot(now=1.0), steps=(), objects={}
    )

    async def refresh() -> None:
        return None

    hub: Any = SimpleNamespace(
        config=Config(cluster="hippo", namespace="pgo"),
        flavor=SimpleNamespace(v5=SimpleNamespace(kind="IvoryCluster")),
        view=view,
        refresh=refresh,
        kube=None,
    )
    ex = Executor(hub, journal=Journal(tmp_path / "journal.jsonl"), writer=_Writer())  # type: ignore[arg-type]
    ex.session = _Session()  # type: ignore[assignment]
    monkeypatch.setattr(executor_module, "check", lambda *_: Verdict("ok", "ok"))
    return ex


PLAN = Plan(key="grants", step=6, title="grant the replication role", summary="")


def _assert_one_outcome(ex: Executor, outcome: str) -> dict[str, Any]:
    records = ex.journal.records()
    started = [r for r in records if r["outcome"] == "started"]
    ended = [r for r in records if r["outcome"] != "started"]
    assert len(started) == 1 and len(ended) == 1, records
    assert started[0]["attempt"] == ended[0]["attempt"] != ""
    assert ended[0]["outcome"] == outcome
    assert interrupted_records(records) == []
    return ended[0]


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (IvyError("the grants did not verify"), "failed"),
        (asyncpg.exceptions.ReadOnlySQLTransactionError("read-only transaction"), "failed"),
        (TimeoutError("no answer"), "failed"),
        (RuntimeError("a bug"), "failed"),
    ],
    ids=["ivy-error", "asyncpg-error", "timeout", "unexpected"],
)
async def test_every_error_gets_one_outcome(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: BaseException, outcome: str
) -> None:
    ex = _executor(tmp_path, monkeypatch)

    async def run(plan: Plan, act: Any, say: Any) -> str:
        act.changed("role created", key="v5/grants", before=False, after=True)
        raise error

    ex._run_grants = run  # type: ignore[method-assign]
    with pytest.raises(ActionFailed) as failed:
        await ex.execute(PLAN)
    assert "changed so far: role created" in failed.value.message
    ended = _assert_one_outcome(ex, outcome)
    assert ended["before"] == {"v5/grants": False}
    assert ended["after"] == {"v5/grants": True}
    assert ex.busy is None


async def test_a_cancelled_action_gets_its_outcome(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ex = _executor(tmp_path, monkeypatch)
    entered = asyncio.Event()

    async def run(plan: Plan, act: Any, say: Any) -> str:
        entered.set()
        await asyncio.Event().wait()
        return "never"

    ex._run_grants = run  # type: ignore[method-assign]
    task = asyncio.create_task(ex.execute(PLAN))
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    ended = _assert_one_outcome(ex, "cancelled")
    assert "nothing was changed" in ended["detail"]


async def test_a_started_action_without_outcome_is_shown_as_interrupted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ex = _executor(tmp_path, monkeypatch)
    ex._record(PLAN, "started", attempt="0001")  # a console killed right after this line
    ex._record(PLAN, "started", attempt="0002")
    ex._record(PLAN, "done", attempt="0002")
    found = await ex.interrupted()
    assert len(found) == 1
    assert found[0].startswith("step 6 grants started ")
    assert "by alice@bastion pid 1 #abcd, no outcome recorded" in found[0]


async def test_one_action_at_a_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ex = _executor(tmp_path, monkeypatch)
    gate, entered = asyncio.Event(), asyncio.Event()

    async def run(plan: Plan, act: Any, say: Any) -> str:
        entered.set()
        await gate.wait()
        return "granted"

    ex._run_grants = run  # type: ignore[method-assign]
    first = asyncio.create_task(ex.execute(PLAN))
    await entered.wait()
    from ivytui.sources.actions import GuardRefused

    with pytest.raises(GuardRefused, match="still running"):
        await ex.execute(PLAN)
    gate.set()
    assert (await first).text == "granted"


async def test_a_refusal_says_why_it_differs_from_the_screen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ivytui.domain.runbook import Check
    from ivytui.sources.actions import GuardRefused

    ex = _executor(tmp_path, monkeypatch)
    fresh = Verdict(
        "step 3",
        "in progress",
        (Check(False, "v5 replay is not advancing: it stays at 0/5000000"),),
    )
    monkeypatch.setattr(executor_module, "check", lambda *_: fresh)
    with pytest.raises(GuardRefused) as refused:
        await ex.execute(PLAN, shown=Verdict("step 3", "ready", (Check(True, "v5 replays"),)))
    assert refused.value.checks[0] == "v5 replay is not advancing: it stays at 0/5000000"
    assert refused.value.checks[-1] == (
        "the screen showed it possible, but the reading made at the moment of acting found: "
        "v5 replay is not advancing: it stays at 0/5000000"
    )
    records = ex.journal.records()
    assert [r["outcome"] for r in records] == ["refused"]


async def test_read_only_refuses_a_database_connection_of_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ivytui.sources.kube_write import ReadOnlyRefused

    ex = _executor(tmp_path, monkeypatch)
    ex.config = Config(cluster="hippo", namespace="pgo", read_only=True)
    with pytest.raises(ReadOnlyRefused):
        await ex._pg("v4")
    with pytest.raises(ReadOnlyRefused):
        await ex.execute(PLAN)
    assert [r["outcome"] for r in ex.journal.records()] == ["refused"]


def test_a_patch_already_applied_is_recognised() -> None:
    from ivytui.sources.actions.executor import _applied

    obj = {
        "metadata": {"resourceVersion": "42", "annotations": {"ivytui/runbook-marks": "{}"}},
        "spec": {"shutdown": True, "port": "5432"},
    }
    assert _applied(obj, {"spec": {"shutdown": True}})
    assert _applied(
        obj, {"metadata": {"resourceVersion": "7", "annotations": {"ivytui/runbook-marks": "{}"}}}
    )
    assert not _applied(obj, {"spec": {"shutdown": False}})
    assert not _applied(obj, {"spec": {"standby": {"enabled": False}}})
