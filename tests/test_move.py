"""The whole move, driven by the executor against a fresh sandbox world, for both flavors.

From a fresh world with the write load running: create the standby, catch up, freeze and switch,
shut v4 down, promote, grant, retire v4 — then every row id whose commit v4 acknowledged is on v5.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from ivytui.config import Config, Thresholds
from ivytui.sandbox import control
from ivytui.sources.actions import Executor, GuardRefused
from ivytui.sources.hub import Hub
from ivytui.sources.journal import Journal
from tests.conftest import (
    RunningWorld,
    assert_journal_of_the_move,
    assert_moved_without_loss,
    start_world,
)

pytestmark = pytest.mark.world


def requests_since(w: RunningWorld, since: int) -> tuple[int, list[dict[str, Any]]]:
    with urllib.request.urlopen(f"{w.kube_url}/_sandbox/requests?since={since}", timeout=5) as r:
        doc = json.load(r)
    return int(doc["next"]), list(doc["requests"])


def writes(reqs: list[dict[str, Any]]) -> list[str]:
    """The writes to anything but the driver Lease (taken before a guard is checked)."""
    return [
        f"{r['method']} {r['path']}"
        for r in reqs
        if r["method"] not in ("GET", "HEAD") and "/leases" not in r["path"]
    ]


async def until(hub: Hub, check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            steps = {s.number: (s.state, [c.text for c in s.failing]) for s in hub.view.steps}
            raise AssertionError(f"{what}: not within {timeout} s; steps: {steps}")
        await asyncio.sleep(0.5)
        await hub.refresh()


def state(hub: Hub, number: int) -> str:
    return next(s.state for s in hub.view.steps if s.number == number)


@pytest.fixture(scope="module", params=["ivyo", "pgo"])
def fresh(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningWorld]:
    directory = tmp_path_factory.mktemp(f"move-{request.param}")
    w = start_world(directory, flavor=request.param, with_standby=False, archive_timeout=5)
    try:
        yield w
    finally:
        control.down(directory)


@pytest.fixture
async def driver(
    fresh: RunningWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Hub, Executor]]:
    monkeypatch.setenv("IVYTUI_STATE_DIR", str(tmp_path / "state"))
    config = Config(
        cluster=fresh.cluster,
        namespace=fresh.namespace,
        flavor=str(fresh.state["flavor"]),
        v5_name=fresh.v5_name,
        kubeconfig=str(fresh.kubeconfig),
        interval=0.5,
        thresholds=Thresholds(repo_quiet_seconds=5),
    )
    hub = Hub(config)
    await hub.start()
    ex = Executor(hub, journal=Journal(tmp_path / "state" / "journal.jsonl"), wait_timeout=90)
    try:
        yield hub, ex
    finally:
        await ex.close()
        await hub.stop()


async def test_the_whole_move_loses_no_acknowledged_row(
    fresh: RunningWorld, driver: tuple[Hub, Executor]
) -> None:
    hub, ex = driver
    w = fresh
    await until(hub, lambda: state(hub, 1) == "ready", 30, "step 1 ready")

    # Refused before its time: promotion while v4 runs, with no write sent.
    mark, _ = requests_since(w, 0)
    with pytest.raises(GuardRefused) as refused:
        await ex.execute(await ex.plan("promote"))
    assert refused.value.checks
    _, reqs = requests_since(w, mark)
    assert writes(reqs) == []

    plan = await ex.plan("create-standby")
    assert "standby" in plan.yaml and "enabled: true" in plan.yaml
    assert w.state["s3"]["secret_key"] not in plan.yaml
    await ex.execute(plan)
    await until(hub, lambda: state(hub, 2) == "done", 90, "v5 caught up")

    # Shutdown before the freeze is refused without the override.
    mark, _ = requests_since(w, 0)
    with pytest.raises(GuardRefused):
        await ex.execute(await ex.plan("shutdown-v4"))
    _, reqs = requests_since(w, mark)
    assert not [r for r in writes(reqs) if "pgclusters" in r]

    acked_file = Path(w.state["load"]["acked_file"])
    await until(hub, lambda: len(acked_file.read_text().split()) >= 20, 30, "20 rows written")
    await until(hub, lambda: state(hub, 3) == "ready", 60, "freeze ready")
    await ex.execute(await ex.plan("freeze", terminate_sessions=False))
    assert state(hub, 3) == "done"
    await ex.execute(await ex.plan("shutdown-v4"))
    assert state(hub, 4) == "done"
    await until(hub, lambda: state(hub, 5) == "ready", 60, "promotion ready")
    await ex.execute(await ex.plan("promote"))
    assert state(hub, 5) == "done"

    # Restarting v4 after promotion is refused.
    with pytest.raises(GuardRefused) as two_writers:
        await ex.execute(await ex.plan("abort"), typed=w.cluster)
    assert "two writers" in str(two_writers.value)

    grants = await ex.plan("grants")
    assert ex.flavor.replication_role in grants.sql
    await until(hub, lambda: state(hub, 6) == "ready", 60, "grants ready")
    await ex.execute(grants)
    assert state(hub, 6) == "done"

    await until(hub, lambda: state(hub, 7) == "ready", 60, "retirement ready")
    retire = await ex.plan("retire-v4")
    with pytest.raises(GuardRefused):
        await ex.execute(retire, typed="wrong")
    await ex.execute(retire, typed=w.cluster)
    assert state(hub, 7) == "done"

    await assert_moved_without_loss(w, ex.flavor.replication_role)
    s3 = w.s3_client()
    info = s3.list_objects_v2(Bucket="hippo", Prefix=w.repo_prefix() + "archive/db/archive.info")
    assert info.get("KeyCount", 0) >= 1
    assert_journal_of_the_move(w, ex.journal.records())


@pytest.fixture(scope="module")
def standby_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningWorld]:
    directory = tmp_path_factory.mktemp("move-override")
    w = start_world(directory, with_standby=True, archive_timeout=30)
    try:
        yield w
    finally:
        control.down(directory)


async def test_skipping_the_final_switch_loses_rows_and_the_gate_names_the_missing_wal(
    standby_world: RunningWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = standby_world
    monkeypatch.setenv("IVYTUI_STATE_DIR", str(tmp_path / "state"))
    config = Config(
        cluster=w.cluster,
        namespace=w.namespace,
        v5_name=w.v5_name,
        kubeconfig=str(w.kubeconfig),
        interval=0.5,
        thresholds=Thresholds(repo_quiet_seconds=5),
    )
    hub = Hub(config)
    await hub.start()
    ex = Executor(hub, journal=Journal(tmp_path / "state" / "journal.jsonl"), wait_timeout=60)
    try:
        await until(hub, lambda: state(hub, 2) == "done", 60, "v5 caught up")
        acked_file = Path(w.state["load"]["acked_file"])
        await until(hub, lambda: len(acked_file.read_text().split()) >= 20, 30, "rows written")
        plan = await ex.plan("shutdown-v4")
        assert plan.override_needed
        with pytest.raises(GuardRefused) as refused:
            await ex.execute(plan)
        assert any("override" in c for c in refused.value.checks)
        await ex.execute(plan, override=w.cluster)
        assert state(hub, 4) == "done"
        # The gate: v4 went further than the repo holds, and it says which WAL is missing.
        await asyncio.sleep(6)
        await hub.refresh()
        step5 = next(s for s in hub.view.steps if s.number == 5)
        assert step5.state == "blocked"
        texts = " ".join(c.text for c in step5.failing)
        assert "missing" in texts or "not in the repo" in texts, texts
        mark, _ = requests_since(w, 0)
        with pytest.raises(GuardRefused):
            await ex.execute(await ex.plan("promote"))
        _, reqs = requests_since(w, mark)
        assert writes(reqs) == []
        records = ex.journal.records()
        assert any(r["step"] == "4 shutdown-v4" and r["override"] for r in records)
    finally:
        await ex.close()
        await hub.stop()

    # Promote anyway, behind ivytui's back: the rows written after the last archived segment
    # are gone, which is what the gate was protecting.
    from kubernetes_asyncio import client
    from kubernetes_asyncio import config as kconfig

    cfg = client.Configuration()
    await kconfig.load_kube_config(config_file=str(w.kubeconfig), client_configuration=cfg)
    async with client.ApiClient(configuration=cfg) as api:
        await client.CustomObjectsApi(api).patch_namespaced_custom_object(
            "ivory-operator.ivorysql.org",
            "v1beta1",
            w.namespace,
            "ivoryclusters",
            w.v5_name,
            {"spec": {"standby": {"enabled": False}}},
            _content_type="application/merge-patch+json",
        )
    v5 = await asyncpg.connect(w.v5_dsn())
    try:
        deadline = time.monotonic() + 30
        while await v5.fetchval("SELECT pg_is_in_recovery()"):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.3)
        try:
            present = {r["id"] for r in await v5.fetch("SELECT id FROM ivytui_load")}
        except asyncpg.UndefinedTableError:
            present = set()  # even the table's creation had not reached the repo
    finally:
        await v5.close()
    acked = {int(x) for x in acked_file.read_text().split()}
    assert acked - present, "expected rows lost without the final switch"
