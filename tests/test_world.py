"""The sandbox world seen with the real clients: kubectl, kubernetes-asyncio, boto3, asyncpg."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
from typing import Any

import asyncpg
import pytest
from kubernetes_asyncio import client, config, watch
from kubernetes_asyncio.client.rest import ApiException

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
        p for p in v5pods if p["metadata"]["labels"].get("ivory-operator.ivorysql.org/role") == "master"
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
