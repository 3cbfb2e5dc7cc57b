"""The screen against the sandbox world, with the real hub: what it shows is what PostgreSQL,
the bucket and the Kubernetes API say."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import pytest

from ivytui.config import Config
from ivytui.domain.lsn import Lsn
from ivytui.tui.app import IvyApp, make_app

pytest.importorskip("ivytui.sources.hub", reason="ivytui.sources.hub (the real hub) is not there")

pytestmark = pytest.mark.world

SIZE = (160, 48)
LSN_RE = re.compile(r"[0-9A-F]+/[0-9A-F]+")
SEGMENT_RE = re.compile(r"TL (\d+)\s+([0-9A-F]{24})")


def world_config(world: Any, **changes: Any) -> Config:
    values: dict[str, Any] = {
        "cluster": world.cluster,
        "namespace": world.namespace,
        "flavor": "ivyo",
        "v5_name": world.v5_name,
        "kubeconfig": str(world.kubeconfig),
        "interval": 0.5,
        "source_timeout": 2.0,
    }
    values.update(changes)
    return Config(**values)


def kube(world: Any, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        world.kube_url + path,
        data=data,
        method=method,
        headers={"Content-Type": "application/json"} if data else {},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"null")


def lsn_in(markup: str) -> Lsn | None:
    found = LSN_RE.search(markup)
    return Lsn.parse(found.group(0)) if found else None


async def wait_for(pilot: Any, what: str, predicate: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g} s: {what}")
        await pilot.pause(0.1)


def filled(app: IvyApp) -> bool:
    view = app.view
    if view is None:
        return False
    s = view.snapshot
    return (
        all(
            src.observed_at > 0 and src.error is None
            for src in (s.v4, s.v4db, s.repo, s.v5, s.v5db)
        )
        and bool(s.repo.newest_segments)
        and s.v5db.reachable
    )


@pytest.fixture
async def live(world: Any) -> AsyncIterator[tuple[IvyApp, Any]]:
    app = make_app(world_config(world))
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, "all three panes filled", lambda: filled(app), 30)
        yield app, pilot


async def test_the_screen_shows_what_the_sources_say(live: tuple[IvyApp, Any], world: Any) -> None:
    app, pilot = live
    main = app.main
    await pilot.pause(0.2)
    # read the screen …
    v4_lsn = lsn_in(main.v4.fields.value("lsn"))
    v4_state = main.v4.fields.value("state")
    v4_system_id = main.v4.fields.value("system_id")
    newest = dict(
        (int(tl), name) for tl, name in SEGMENT_RE.findall(main.repo.fields.value("newest"))
    )
    v5_replay = lsn_in(main.v5.fields.value("replay_lsn"))
    v4_pods = set(main.v4.pods.keys)
    v5_pods = set(main.v5.pods.keys)
    # … then ask the sources at once
    v4 = await asyncpg.connect(world.v4_dsn)
    try:
        current = Lsn.parse(await v4.fetchval("SELECT pg_current_wal_lsn()::text"))
        system_id = await v4.fetchval("SELECT system_identifier FROM pg_control_system()")
    finally:
        await v4.close()
    v5 = await asyncpg.connect(world.v5_dsn())
    try:
        replayed = Lsn.parse(await v5.fetchval("SELECT pg_last_wal_replay_lsn()::text"))
    finally:
        await v5.close()
    s3 = world.s3_client()
    prefix = world.repo_prefix() + "archive/db/"
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=world.state["s3"]["bucket"], Prefix=prefix
    ):
        keys.extend(obj["Key"] for obj in page.get("Contents", ()))
    segments = sorted(
        {
            m.group(0)
            for key in keys
            if (m := re.search(r"(?<=/)[0-9A-F]{24}(?=-[0-9a-f]{40})", key)) is not None
        }
    )
    pgcluster = kube(
        world,
        "GET",
        f"/apis/crunchydata.com/v1/namespaces/{world.namespace}/pgclusters/{world.cluster}",
    )
    pods = kube(world, "GET", f"/api/v1/namespaces/{world.namespace}/pods")["items"]

    assert v4_lsn is not None and v5_replay is not None
    # the load writes all the time: the screen may be a poll behind, never ahead
    assert v4_lsn <= current and current - v4_lsn < 16 * 1024 * 1024, (v4_lsn, current)
    assert v5_replay <= replayed and replayed - v5_replay < 2 * 16 * 1024 * 1024
    assert v4_system_id == str(system_id)
    assert v4_state == pgcluster["status"]["state"]
    tl1 = [name for name in segments if name.startswith("00000001")]
    assert newest[1] in tl1[-2:], (newest, tl1[-3:])
    labels = {p["metadata"]["name"]: p["metadata"].get("labels") or {} for p in pods}
    assert v4_pods == {n for n, lab in labels.items() if lab.get("pg-cluster") == world.cluster}
    assert v5_pods == {
        n
        for n, lab in labels.items()
        if lab.get("ivory-operator.ivorysql.org/cluster") == world.v5_name
    }


async def test_a_row_written_on_v4_moves_the_ruler_then_v5(
    live: tuple[IvyApp, Any], world: Any
) -> None:
    app, pilot = live
    ruler = app.main.ruler
    v4 = await asyncpg.connect(world.v4_dsn)
    try:
        await v4.execute("CREATE TABLE IF NOT EXISTS ivytui_screen_probe (at timestamptz)")
        await v4.execute("INSERT INTO ivytui_screen_probe VALUES (now())")
        switched = Lsn.parse(await v4.fetchval("SELECT pg_switch_wal()::text"))
    finally:
        await v4.close()

    def repo_end() -> Lsn | None:
        return lsn_in(ruler.repo.markup_text)

    def v5_position() -> Lsn | None:
        return lsn_in(ruler.v5.markup_text)

    await wait_for(
        pilot,
        f"the ruler's repo position reaches {switched}",
        lambda: (end := repo_end()) is not None and end >= switched,
        30,
    )
    await wait_for(
        pilot,
        f"v5's replay LSN on screen reaches {switched}",
        lambda: (pos := v5_position()) is not None and pos >= switched,
        30,
    )
    replay_field = lsn_in(app.main.v5.fields.value("replay_lsn"))
    assert replay_field is not None and replay_field >= switched


async def test_stopping_s3_marks_only_the_storage_pane_stale_until_it_returns(
    live: tuple[IvyApp, Any], world: Any
) -> None:
    app, pilot = live
    main = app.main

    def stale() -> list[str | None]:
        return [p.id for p in main.panes if p.has_class("-stale")]

    assert stale() == []
    segments_before = main.repo.fields.value("segments")
    try:
        kube(world, "POST", "/_sandbox/faults/s3/stop", {})
        await wait_for(pilot, "the storage pane stale", lambda: stale() == ["repo-pane"], 20)
        assert "stale" in main.repo.stale_line.markup_text
        assert main.repo.stale_line.display
        # the last values stay on screen
        assert main.repo.fields.value("segments") not in ("", "[$text-muted]—[/]")
        assert int(main.repo.fields.value("segments")) >= int(segments_before)
        await pilot.pause(1.5)
        assert stale() == ["repo-pane"]
    finally:
        kube(world, "POST", "/_sandbox/faults/s3/start", {})
    await wait_for(pilot, "the storage pane fresh again", lambda: stale() == [], 30)
    assert not main.repo.stale_line.display


async def test_a_deleted_v5_pod_disappears_from_the_pane(
    live: tuple[IvyApp, Any], world: Any
) -> None:
    app, pilot = live
    table = app.main.v5.pods
    name = f"{world.v5_name}-probe-{int(time.time()) % 100000}"
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": world.namespace,
            "labels": {"ivory-operator.ivorysql.org/cluster": world.v5_name},
        },
        "spec": {"containers": [{"name": "probe", "image": "busybox"}]},
        "status": {"phase": "Running"},
    }
    kube(world, "POST", f"/api/v1/namespaces/{world.namespace}/pods", body)
    try:
        await wait_for(pilot, f"{name} in the v5 pane", lambda: name in table.keys, 10)
    finally:
        kube(world, "DELETE", f"/api/v1/namespaces/{world.namespace}/pods/{name}")
    await wait_for(pilot, f"{name} gone from the v5 pane", lambda: name not in table.keys, 10)
    assert any(entry.text.endswith(f"{name} is gone") for entry in app.log_entries)
