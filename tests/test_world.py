"""The sandbox world seen with the real clients: kubectl, kubernetes-asyncio, boto3, asyncpg."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from kubernetes_asyncio import client, config, watch
from kubernetes_asyncio.client.rest import ApiException

from ivytui.sandbox import control
from ivytui.sandbox.load import CarelessWriter
from tests.conftest import RunningWorld

pytestmark = pytest.mark.world

WAL_KEY = re.compile(
    r"^archive/db/(?P<archive_id>\d+-\d+)/(?P<dir>[0-9A-F]{16})/(?P<seg>[0-9A-F]{24})-[0-9a-f]{40}\.gz$"
)


def kubectl(w: RunningWorld, *args: str, timeout: float = 15) -> str:
    out = subprocess.run(
        ["kubectl", "--kubeconfig", str(w.kubeconfig), "-n", w.namespace, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


async def api(w: RunningWorld) -> client.ApiClient:
    cfg = client.Configuration()
    await config.load_kube_config(config_file=str(w.kubeconfig), client_configuration=cfg)
    return client.ApiClient(configuration=cfg)


def test_kubectl_sees_the_v4_cluster_its_pods_and_the_v5_standby(world: RunningWorld) -> None:
    state = kubectl(world, "get", "pgcluster", world.cluster, "-o", "jsonpath={.status.state}")
    assert state == "pgcluster Initialized"
    pods = kubectl(world, "get", "pods", "-l", f"pg-cluster={world.cluster}", "-o", "json")
    names = {p["metadata"]["name"]: p["metadata"]["labels"] for p in json.loads(pods)["items"]}
    assert any(
        lbl.get("role") == "master" and lbl.get("pgo-pg-database") == "true"
        for lbl in names.values()
    )
    assert any(lbl.get("pgo-backrest-repo") == "true" for lbl in names.values())
    spec = json.loads(kubectl(world, "get", "pgcluster", world.cluster, "-o", "json"))["spec"]
    assert spec["backrestStorageTypes"] == ["s3"]
    assert spec["backrestS3Bucket"] == "hippo"
    assert spec["backrestRepoPath"] == "/backrestrepo/hippo-backrest-shared-repo"
    assert spec["backrestS3URIStyle"] == "path"
    assert spec["backrestS3VerifyTLS"] == "false"
    assert spec["ccpimagetag"].split("-")[1].split(".")[0] == str(world.state["pg_major"])
    v5 = json.loads(kubectl(world, "get", "ivoryclusters", world.v5_name, "-o", "json"))
    assert v5["spec"]["standby"] == {"enabled": True, "repoName": "repo1"}
    conds = {c["type"]: c["status"] for c in v5["status"]["conditions"]}
    assert conds["PGBackRestReplicaCreate"] == "True"
    v5pods = json.loads(
        kubectl(
            world,
            "get",
            "pods",
            "-l",
            f"ivory-operator.ivorysql.org/cluster={world.v5_name}",
            "-o",
            "json",
        )
    )["items"]
    leader = [
        p
        for p in v5pods
        if p["metadata"]["labels"].get("ivory-operator.ivorysql.org/role") == "master"
    ]
    assert leader, v5pods
    ready = {c["type"]: c["status"] for c in leader[0]["status"]["conditions"]}
    assert leader[0]["status"]["phase"] == "Running" and ready["Ready"] == "True"
    secrets = kubectl(world, "get", "secrets", "-o", "name")
    for name in ("hippo-backrest-repo-config", "hippo-postgres-secret", "hippo-testuser-secret"):
        assert f"secret/{name}" in secrets


async def test_kubernetes_asyncio_lists_and_watches(world: RunningWorld) -> None:
    async with await api(world) as ac:
        core = client.CoreV1Api(ac)
        pods = await core.list_namespaced_pod(
            world.namespace, label_selector=f"pg-cluster={world.cluster}"
        )
        assert pods.items
        rv = pods.metadata.resource_version
        custom = client.CustomObjectsApi(ac)
        obj = await custom.get_namespaced_custom_object(
            "crunchydata.com", "v1", world.namespace, "pgclusters", world.cluster
        )
        assert obj["status"]["state"] == "pgcluster Initialized"

        async def first_event() -> Any:
            w = watch.Watch()
            async for ev in w.stream(
                core.list_namespaced_config_map,
                world.namespace,
                resource_version=rv,
                timeout_seconds=10,
            ):
                w.stop()
                return ev
            return None

        waiter = asyncio.create_task(first_event())
        await asyncio.sleep(0.3)
        await core.create_namespaced_config_map(
            world.namespace, {"metadata": {"name": "watched"}, "data": {"a": "1"}}
        )
        ev = await asyncio.wait_for(waiter, 10)
        assert ev is not None and ev["type"] == "ADDED"
        assert ev["object"].metadata.name == "watched"
        await core.delete_namespaced_config_map("watched", world.namespace)


async def test_a_stale_resource_version_is_refused(world: RunningWorld) -> None:
    async with await api(world) as ac:
        custom = client.CustomObjectsApi(ac)
        obj = await custom.get_namespaced_custom_object(
            "crunchydata.com", "v1", world.namespace, "pgclusters", world.cluster
        )
        rv = obj["metadata"]["resourceVersion"]
        await custom.patch_namespaced_custom_object(
            "crunchydata.com",
            "v1",
            world.namespace,
            "pgclusters",
            world.cluster,
            {"metadata": {"labels": {"touched": "yes"}}},
            _content_type="application/merge-patch+json",
        )
        with pytest.raises(ApiException) as err:
            await custom.patch_namespaced_custom_object(
                "crunchydata.com",
                "v1",
                world.namespace,
                "pgclusters",
                world.cluster,
                {"metadata": {"resourceVersion": rv, "labels": {"touched": "again"}}},
                _content_type="application/merge-patch+json",
            )
        assert err.value.status == 409
        assert json.loads(err.value.body)["reason"] == "Conflict"


async def test_a_row_written_on_v4_reaches_v5_through_the_repo(world: RunningWorld) -> None:
    v4 = await asyncpg.connect(world.v4_dsn)
    v5 = await asyncpg.connect(world.v5_dsn())
    try:
        assert await v5.fetchval("SELECT pg_is_in_recovery()") is True
        # Fed only from the repo: no WAL receiver, no streaming connection.
        assert await v5.fetchval("SELECT pg_last_wal_receive_lsn()") is None
        assert await v5.fetchval("SHOW primary_conninfo") == ""
        restore = await v5.fetchval("SHOW restore_command")
        assert "archive-get" in restore or "spool" in restore
        marker = f"probe-{time.time()}"
        await v4.execute("CREATE TABLE IF NOT EXISTS probe (v text)")
        await v4.execute("INSERT INTO probe VALUES ($1)", marker)
        await v4.execute("SELECT pg_switch_wal()")
        deadline = time.monotonic() + 30
        found = False
        while time.monotonic() < deadline:
            try:
                found = bool(await v5.fetchval("SELECT count(*) FROM probe WHERE v = $1", marker))
            except asyncpg.UndefinedTableError:
                found = False
            if found:
                break
            await asyncio.sleep(0.5)
        assert found, "the row did not reach v5 within 30 s"
        # The write load keeps running too.
        assert await v4.fetchval("SELECT count(*) FROM ivytui_load") > 0
    finally:
        await v4.close()
        await v5.close()


def test_the_bucket_holds_the_pgbackrest_layout(world: RunningWorld) -> None:
    s3 = world.s3_client()
    prefix = world.repo_prefix()
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket="hippo", Prefix=prefix):
        keys += [o["Key"][len(prefix) :] for o in page.get("Contents", [])]
    assert "archive/db/archive.info" in keys
    assert "archive/db/archive.info.copy" in keys
    assert "backup/db/backup.info" in keys
    assert "backup/db/backup.info.copy" in keys
    wal = [m for k in keys if (m := WAL_KEY.match(k))]
    assert wal, keys[:20]
    major = str(world.state["pg_major"])
    assert {m["archive_id"] for m in wal} == {f"{major}-1"}
    for m in wal:
        assert m["seg"].startswith(m["dir"])
    assert any(re.match(r"^backup/db/\d{8}-\d{6}F/backup\.manifest$", k) for k in keys) or (
        world.state["backrest"] == "builtin"
    )
    info = (
        s3.get_object(Bucket="hippo", Key=prefix + "archive/db/archive.info")["Body"]
        .read()
        .decode()
    )
    assert f'db-version="{major}"' in info
    assert re.search(r"^db-system-id=\d+$", info, re.M)


def test_sandbox_status_says_what_runs_where(world: RunningWorld) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "ivytui", "sandbox", "status", "--dir", str(world.dir)],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    for part in (
        "supervisor",
        "kubernetes api",
        "object storage",
        "v4 postgres",
        f"v5 postgres {world.v5_name}",
    ):
        assert part in out.stdout
    assert " down " not in out.stdout


def test_up_into_a_directory_that_runs_a_world_is_refused(world: RunningWorld) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "ivytui", "sandbox", "up", "--dir", str(world.dir)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "already runs a world" in lines[0], out.stderr
    assert "Traceback" not in out.stderr
    assert world.refresh()["ready"] is True


def test_the_monitor_and_app_roles_exist_and_the_monitor_secret_outlives_v4(
    world: RunningWorld,
) -> None:
    name = f"{world.cluster}-ivytui-monitor"
    assert world.state["monitor"] == {"user": "ivytui_monitor", "secret": name}
    secret = json.loads(kubectl(world, "get", "secret", name, "-o", "json"))
    assert set(secret["data"]) == {"username", "password"}
    # Not the v4 operator's: retiring v4 (which removes pg-cluster=<c>) leaves it.
    assert "pg-cluster" not in (secret["metadata"].get("labels") or {})
    env = (world.dir / "env").read_text()
    assert "export SANDBOX_MONITOR_USER=ivytui_monitor\n" in env
    assert f"export SANDBOX_MONITOR_SECRET={name}\n" in env


async def test_the_roles_were_in_the_backup_the_standby_was_restored_from(
    world: RunningWorld,
) -> None:
    v5 = await asyncpg.connect(world.v5_dsn())
    try:
        rows = await v5.fetch(
            "SELECT rolname, rolsuper, rolcanlogin,"
            " pg_has_role(rolname, 'pg_monitor', 'MEMBER') AS monitor,"
            " has_table_privilege(rolname, 'app_rows', 'INSERT') AS inserts"
            " FROM pg_roles WHERE rolname IN ('ivytui_monitor', 'app') ORDER BY 1"
        )
    finally:
        await v5.close()
    assert [tuple(r) for r in rows] == [
        ("app", False, True, False, True),
        ("ivytui_monitor", False, True, True, False),
    ]


def _app_dsn(w: RunningWorld, port: int | None = None) -> str:
    app = w.state["app"]
    return f"postgresql://{app['user']}:{app['password']}@127.0.0.1:{port or w.state['v4']['port']}/postgres"


async def test_the_careless_writer_writes_through_a_freeze_and_retries_through_errors(
    world: RunningWorld,
) -> None:
    su = await asyncpg.connect(world.v4_dsn)
    await su.execute("SET default_transaction_read_only = off")  # ours, through the freeze
    sessions_sql = "SELECT sessions FROM pg_stat_database WHERE datname = 'postgres'"
    try:
        sessions_before = await su.fetchval(sessions_sql)
        earlier = len(control.read_acked(Path(world.state["careless"]["acked_file"])))
        status = await asyncio.to_thread(control.careless_start, world.dir, 0.05)
        assert status["running"] and status["interval"] == 0.05
        start = time.monotonic()
        while (await asyncio.to_thread(control.careless_status, world.dir))["acked"] < 20:
            assert time.monotonic() - start < 15, "20 rows did not come in 15 s"
            await asyncio.sleep(0.1)
        # The freeze's default is no obstacle: each session turns it off.
        await su.execute("ALTER SYSTEM SET default_transaction_read_only = on")
        await su.execute("SELECT pg_reload_conf()")
        acked = (await asyncio.to_thread(control.careless_status, world.dir))["acked"]
        await asyncio.sleep(0.5)
        assert (await asyncio.to_thread(control.careless_status, world.dir))["acked"] > acked
        # A connection limit is: it is refused, and keeps trying.
        await su.execute("ALTER ROLE app CONNECTION LIMIT 0")
        await asyncio.sleep(0.5)
        blocked = await asyncio.to_thread(control.careless_status, world.dir)
        await asyncio.sleep(0.5)
        still = await asyncio.to_thread(control.careless_status, world.dir)
        assert still["acked"] == blocked["acked"]
        assert still["errors"].get("too_many_connections", 0) > 0
        await su.execute("ALTER ROLE app CONNECTION LIMIT -1")
        await asyncio.sleep(0.5)
        after = await asyncio.to_thread(control.careless_status, world.dir)
        assert after["acked"] > still["acked"] and after["last_error"] is None
        final = await asyncio.to_thread(control.careless_stop, world.dir)
        assert not final["running"]
        # A new session per row, on v4.
        assert await su.fetchval(sessions_sql) - sessions_before >= final["acked"]
        assert final["last_commit"]["target"] == "v4"
    finally:
        await su.execute("ALTER ROLE app CONNECTION LIMIT -1")
        await su.execute("ALTER SYSTEM RESET default_transaction_read_only")
        await su.execute("SELECT pg_reload_conf()")
        await asyncio.to_thread(control.careless_stop, world.dir)
    try:
        ids = control.read_acked(Path(final["acked_file"]))[earlier:]
        commits = control.read_commits(Path(final["commits_file"]))[earlier:]
        assert len(ids) == final["acked"] and ids == sorted(set(ids))
        assert [c[0] for c in commits] == ids
        assert all(b[1] >= a[1] for a, b in itertools.pairwise(commits))
        present = {r["id"] for r in await su.fetch("SELECT id FROM app_rows")}
        assert set(ids) <= present
        # Stopped means stopped.
        count = len(present)
        await asyncio.sleep(0.3)
        assert await su.fetchval("SELECT count(*) FROM app_rows") == count
    finally:
        await su.close()


async def test_the_careless_writer_falls_through_to_the_next_target(
    world: RunningWorld, tmp_path: Path
) -> None:

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = int(sock.getsockname()[1])
    targets = [("nowhere", _app_dsn(world, closed)), ("v4", _app_dsn(world))]
    writer = CarelessWriter(lambda: targets, tmp_path / "acked.txt", interval=0.1)
    assert world.state["app"]["password"] not in repr(writer)
    writer.start()
    try:
        start = time.monotonic()
        while writer.acked < 3:
            assert time.monotonic() - start < 10, writer.status()
            await asyncio.sleep(0.05)
    finally:
        await writer.stop()
    assert not writer.running
    assert writer.errors["connection_refused"] >= 3
    assert {c.target for c in writer.commits} == {"v4"}
    assert control.read_acked(tmp_path / "acked.txt") == [c.id for c in writer.commits]
