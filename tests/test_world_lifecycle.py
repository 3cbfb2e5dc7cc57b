"""The operators played by the world: shutdown, promotion, deletion, bad repo settings (PGO flavor)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from kubernetes_asyncio import client, config

from ivytui.sandbox import control
from tests.conftest import RunningWorld, start_world

pytestmark = pytest.mark.world

PGO = ("postgres-operator.crunchydata.com", "v1beta1", "postgresclusters")
PREFIX = "postgres-operator.crunchydata.com/"


@pytest.fixture(scope="module")
def pgo_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningWorld]:
    directory = tmp_path_factory.mktemp("pgo-world")
    w = start_world(directory, flavor="pgo", with_standby=True, archive_timeout=5)
    try:
        yield w
    finally:
        control.down(directory)
        state = control.read_state(directory) or {}
        for what, pid in control.world_pids(state):
            assert not control.alive(pid), f"{what} (pid {pid}) still runs after down"
        for what, port in control.world_ports(state):
            assert not control.listening(port), f"{what} still listens on {port} after down"
        assert not Path(str(state.get("pg_root"))).exists()


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout} s (last: {last!r})")


async def apis(w: RunningWorld) -> client.ApiClient:
    cfg = client.Configuration()
    await config.load_kube_config(config_file=str(w.kubeconfig), client_configuration=cfg)
    return client.ApiClient(configuration=cfg)


async def test_wrong_bucket_or_path_leaves_the_standby_failing_with_a_reason(
    pgo_world: RunningWorld,
) -> None:
    async with await apis(pgo_world) as ac:
        custom = client.CustomObjectsApi(ac)
        base = await custom.get_namespaced_custom_object(
            *PGO[:2], pgo_world.namespace, PGO[2], pgo_world.v5_name
        )
        for name, mutate, words in (
            (
                "wrong-path",
                lambda s: s["backups"]["pgbackrest"]["global"].update(
                    {"repo1-path": "/backrestrepo/nope"}
                ),
                "no archive.info",
            ),
            (
                "wrong-bucket",
                lambda s: s["backups"]["pgbackrest"]["repos"][0]["s3"].update({"bucket": "nope"}),
                "NoSuchBucket",
            ),
        ):
            spec = __import__("copy").deepcopy(base["spec"])
            mutate(spec)
            await custom.create_namespaced_custom_object(
                *PGO[:2],
                pgo_world.namespace,
                PGO[2],
                {
                    "apiVersion": f"{PGO[0]}/{PGO[1]}",
                    "kind": "PostgresCluster",
                    "metadata": {"name": name},
                    "spec": spec,
                },
            )

            async def failed(name: str = name) -> Any:
                obj = await custom.get_namespaced_custom_object(
                    *PGO[:2], pgo_world.namespace, PGO[2], name
                )
                for c in obj.get("status", {}).get("conditions", []):
                    if (
                        c["type"] == "PGBackRestReplicaCreate"
                        and c["status"] == "False"
                        and c["reason"] != "Restoring"
                    ):
                        return c
                return None

            cond = await eventually(failed, 20, f"{name} failing")
            assert words in cond["message"]
            await custom.delete_namespaced_custom_object(
                *PGO[:2], pgo_world.namespace, PGO[2], name
            )


async def test_shutdown_promotion_and_deletion(pgo_world: RunningWorld) -> None:
    w = pgo_world
    async with await apis(w) as ac:
        custom = client.CustomObjectsApi(ac)
        core = client.CoreV1Api(ac)
        v4args = ("crunchydata.com", "v1", w.namespace, "pgclusters", w.cluster)
        v5args = (*PGO[:2], w.namespace, PGO[2], w.v5_name)

        # Rows written after the last archived segment: the v4 shutdown will lose them.
        v4 = await asyncpg.connect(w.v4_dsn)
        await v4.execute("CREATE TABLE IF NOT EXISTS marks (v text)")
        await v4.execute("SELECT pg_switch_wal()")
        await asyncio.sleep(3)
        await v4.execute("INSERT INTO marks VALUES ('after-last-switch')")
        await v4.close()

        # Shutdown: the state is set at once, before the pods go.
        await custom.patch_namespaced_custom_object(
            *v4args, {"spec": {"shutdown": True}}, _content_type="application/merge-patch+json"
        )
        obj = await custom.get_namespaced_custom_object(*v4args)
        assert obj["status"]["state"] == "pgcluster Shutdown"
        pods = await core.list_namespaced_pod(w.namespace, label_selector=f"pg-cluster={w.cluster}")
        assert pods.items, "the pods went before the state was set"

        async def v4_gone() -> bool:
            p = await core.list_namespaced_pod(
                w.namespace, label_selector=f"pg-cluster={w.cluster}"
            )
            return not p.items

        await eventually(v4_gone, 15, "v4 pods gone")
        with pytest.raises((OSError, asyncpg.PostgresError)):
            await asyncpg.connect(w.v4_dsn, timeout=2)
        deps = await client.AppsV1Api(ac).list_namespaced_deployment(
            w.namespace, label_selector=f"pg-cluster={w.cluster}"
        )
        assert deps.items and all(d.spec.replicas == 0 for d in deps.items)

        # Promotion: out of recovery, a new timeline, the history file in the repo.
        v5 = await asyncpg.connect(w.v5_dsn())
        await eventually(
            lambda: v5.fetchval("SELECT count(*) FROM ivytui_load"), 20, "v5 replayed the load"
        )
        await custom.patch_namespaced_custom_object(
            *v5args,
            {"spec": {"standby": {"enabled": False}}},
            _content_type="application/merge-patch+json",
        )

        async def promoted() -> bool:
            return await v5.fetchval("SELECT NOT pg_is_in_recovery()")

        await eventually(promoted, 20, "v5 promoted")
        walfile = await v5.fetchval("SELECT pg_walfile_name(pg_current_wal_lsn())")
        assert walfile.startswith("00000002")
        lost = await v5.fetchval("SELECT count(*) FROM marks WHERE v = 'after-last-switch'")
        assert lost == 0, (
            "the v4 shutdown should have lost the row written after the last archived segment"
        )
        await v5.execute("CREATE TABLE after_promotion (id int)")
        await v5.execute("SELECT pg_switch_wal()")
        s3 = w.s3_client()
        prefix = w.repo_prefix() + f"archive/db/{w.state['pg_major']}-1/00000002.history"

        async def history() -> bool:
            r = await asyncio.to_thread(s3.list_objects_v2, Bucket="hippo", Prefix=prefix)
            return r.get("KeyCount", 0) > 0

        await eventually(history, 20, "00000002.history in the repo")
        await v5.close()
        pods5 = await core.list_namespaced_pod(
            w.namespace, label_selector=f"{PREFIX}cluster={w.v5_name}"
        )
        assert any(p.metadata.labels.get(f"{PREFIX}role") == "master" for p in pods5.items)

        # Deletion of v4: its pods, deployments, Services and Secrets go; the bucket stays.
        before = await asyncio.to_thread(s3.list_objects_v2, Bucket="hippo", Prefix=w.repo_prefix())
        await custom.delete_namespaced_custom_object(*v4args)

        async def v4_objects_gone() -> bool:
            sel = f"pg-cluster={w.cluster}"
            svc = await core.list_namespaced_service(w.namespace, label_selector=sel)
            sec = await core.list_namespaced_secret(w.namespace, label_selector=sel)
            dep = await client.AppsV1Api(ac).list_namespaced_deployment(
                w.namespace, label_selector=sel
            )
            return not (svc.items or sec.items or dep.items)

        await eventually(v4_objects_gone, 15, "v4 objects gone")
        after = await asyncio.to_thread(s3.list_objects_v2, Bucket="hippo", Prefix=w.repo_prefix())
        keys_before = {o["Key"] for o in before.get("Contents", [])}
        keys_after = {o["Key"] for o in after.get("Contents", [])}
        assert keys_before <= keys_after

        # Deleting the v5 cluster stops it and removes its pods.
        await custom.delete_namespaced_custom_object(*v5args)

        async def v5_gone() -> bool:
            p = await core.list_namespaced_pod(
                w.namespace, label_selector=f"{PREFIX}cluster={w.v5_name}"
            )
            return not p.items

        await eventually(v5_gone, 20, "v5 pods gone")
        state = w.refresh()
        assert w.v5_name not in state["v5"]
