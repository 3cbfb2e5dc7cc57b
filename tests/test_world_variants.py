"""The other worlds: a GCS repo (fake-gcs-server, real pgBackRest) and the built-in archiver on S3."""

from __future__ import annotations

import asyncio
import json
import re
import ssl
import time
import urllib.parse
import urllib.request
from pathlib import Path

import asyncpg
import pytest

from ivytui.sandbox import backrest, control
from tests.conftest import RunningWorld, start_world

pytestmark = pytest.mark.world

WAL = re.compile(r"archive/db/\d+-1/[0-9A-F]{16}/[0-9A-F]{24}-[0-9a-f]{40}\.gz$")


def repo_names(w: RunningWorld) -> list[str]:
    prefix = w.repo_prefix()
    if w.state["s3"]["storage"] == "gcs":
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        url = f"{w.state['s3']['endpoint']}/storage/v1/b/hippo/o?" + urllib.parse.urlencode(
            {"prefix": prefix, "fields": "items(name)"}
        )
        with urllib.request.urlopen(url, context=ctx, timeout=5) as resp:
            items = json.load(resp).get("items", [])
        return [i["name"][len(prefix) :] for i in items]
    out = w.s3_client().list_objects_v2(Bucket="hippo", Prefix=prefix)
    return [o["Key"][len(prefix) :] for o in out.get("Contents", [])]


async def row_reaches_v5(w: RunningWorld) -> None:
    v4 = await asyncpg.connect(w.v4_dsn)
    v5 = await asyncpg.connect(w.v5_dsn())
    try:
        marker = f"variant-{time.time()}"
        await v4.execute("CREATE TABLE IF NOT EXISTS probe (v text)")
        await v4.execute("INSERT INTO probe VALUES ($1)", marker)
        await v4.execute("SELECT pg_switch_wal()")
        assert await v5.fetchval("SELECT pg_last_wal_receive_lsn()") is None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if await v5.fetchval("SELECT count(*) FROM probe WHERE v = $1", marker):
                    return
            except asyncpg.UndefinedTableError:
                pass
            await asyncio.sleep(0.5)
        raise AssertionError("the row did not reach v5 through the repo within 30 s")
    finally:
        await v4.close()
        await v5.close()


@pytest.mark.parametrize(
    "storage,mode",
    [("gcs", "pgbackrest"), ("s3", "builtin")],
    ids=["gcs-pgbackrest", "s3-builtin"],
)
async def test_variant_world_carries_wal_through_the_repo(
    tmp_path: Path, storage: str, mode: str
) -> None:
    if mode == "pgbackrest" and backrest.have_pgbackrest() is None:
        pytest.skip("pgbackrest is not installed")
    w = await asyncio.to_thread(
        start_world, tmp_path, storage=storage, backrest=mode, with_standby=True, archive_timeout=5
    )
    try:
        assert w.state["backrest"] == mode
        assert w.state["s3"]["storage"] == storage
        await row_reaches_v5(w)
        names = await asyncio.to_thread(repo_names, w)
        assert "archive/db/archive.info" in names
        assert "backup/db/backup.info" in names
        assert any(WAL.match(n) for n in names), names[:10]
        # A storage fault keeps the repo: stop, start, and the objects are all there.
        before = set(names)
        for action in ("stop", "start"):
            req = urllib.request.Request(
                f"{w.kube_url}/_sandbox/faults/s3/{action}", method="POST", data=b""
            )
            await asyncio.to_thread(urllib.request.urlopen, req, None, 20)
        after = set(await asyncio.to_thread(repo_names, w))
        assert before <= after
    finally:
        await asyncio.to_thread(control.down, tmp_path)
