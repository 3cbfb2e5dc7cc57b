"""The real chain: a v4 primary archives into an S3 bucket, a v5 standby replays from it.

Runs twice: with real pgBackRest (skipped when it is not installed) and with the built-in repo
writer. Everything is real: PostgreSQL servers, the S3 server process, asyncpg and boto3 clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import json
import os
import re
import shutil
import socket
import ssl
import stat
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import boto3
import pytest
import pytest_asyncio
from botocore.config import Config

from ivytui.errors import SandboxError
from ivytui.sandbox import backrest as br
from ivytui.sandbox.pg import (
    PgServer,
    find_pg_bindir,
    free_port,
    make_pg_root,
    pid_alive,
    processes_using,
    run_command,
)
from ivytui.sandbox.s3server import S3ServerProcess, start_s3_server

pytestmark = [
    pytest.mark.world,
    pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning"),
]

PASSWORD = "chain-secret"
WAL_SEGMENT_SIZE = 16 * 1024 * 1024

KEY_PATTERNS = [
    br.ARCHIVE_INFO_KEY_RE,
    br.BACKUP_INFO_KEY_RE,
    br.WAL_KEY_RE,
    br.HISTORY_KEY_RE,
    br.BACKUP_HISTORY_KEY_RE,
    # Only real pgBackRest writes the backup itself and its manifest history.
    re.compile(r"^backup/db/\d{8}-\d{6}F/"),
    re.compile(r"^backup/db/backup\.history/\d{4}/\d{8}-\d{6}F\.manifest\.gz$"),
]


@dataclass
class Chain:
    mode: str
    root: Path
    s3: S3ServerProcess
    target: br.RepoTarget
    primary: PgServer
    standby: PgServer
    configs: dict[str, Path] = field(default_factory=dict)
    archivers: list[br.BuiltinArchiver] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    pids: list[int] = field(default_factory=list)

    def s3_client(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.target.endpoint_url,
            region_name=self.target.region,
            aws_access_key_id=self.target.access_key,
            aws_secret_access_key=self.target.secret_key,
            verify=False,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
        )

    def keys_sync(self) -> list[str]:
        client = self.s3_client()
        pages = client.get_paginator("list_objects_v2").paginate(
            Bucket=self.target.bucket, Prefix=self.target.prefix
        )
        return [o["Key"] for page in pages for o in page.get("Contents", [])]

    async def keys(self) -> list[str]:
        return await asyncio.to_thread(self.keys_sync)

    async def get(self, key: str) -> bytes:
        def fetch() -> bytes:
            body: bytes = (
                self.s3_client().get_object(Bucket=self.target.bucket, Key=key)["Body"].read()
            )
            return body

        return await asyncio.to_thread(fetch)


class Timer:
    def __init__(self, timings: dict[str, float], name: str) -> None:
        self.timings, self.name = timings, name

    def __enter__(self) -> None:
        self.t0 = time.monotonic()

    def __exit__(self, *exc: object) -> None:
        self.timings[self.name] = round(time.monotonic() - self.t0, 2)


async def _build(chain: Chain) -> None:
    t = chain.timings
    primary, standby, target = chain.primary, chain.standby, chain.target
    if chain.mode == "pgbackrest":
        for name, server in (("v4", primary), ("v5", standby)):
            base = chain.root / name
            chain.configs[name] = br.write_config(
                base / "pgbackrest.conf",
                target,
                pg_path=server.data_dir,
                pg_port=server.port,
                pg_socket_dir=server.sock_dir,
                log_path=base / "backrest-log",
                lock_path=base / "backrest-lock",
                spool_path=base / "backrest-spool",
            )
        with Timer(t, "initdb+start"):
            await primary.initdb(PASSWORD)
            await primary.configure({"archive_command": br.archive_command(chain.configs["v4"])})
            await primary.start()
        with Timer(t, "stanza-create"):
            await br.stanza_create(chain.configs["v4"])
        with Timer(t, "backup"):
            await br.backup(chain.configs["v4"])
        with Timer(t, "restore"):
            await br.restore_standby(chain.configs["v5"], standby.data_dir)
        await standby.configure(
            {"port": standby.port, "archive_command": br.archive_command(chain.configs["v5"])}
        )
    else:
        a4 = br.BuiltinArchiver(target, chain.root / "v4" / "spool")
        a5 = br.BuiltinArchiver(target, chain.root / "v5" / "spool")
        chain.archivers += [a4, a5]
        await a4.start()
        await a5.start()
        with Timer(t, "initdb+start"):
            await primary.initdb(PASSWORD)
            await primary.configure({"archive_command": a4.archive_command})
            await primary.start()
        with Timer(t, "stanza-create"):
            await br.stanza_create_builtin(primary, target)
        with Timer(t, "backup+restore (pg_basebackup seed)"):
            await br.seed_standby_builtin(primary, standby, a5, target)
    with Timer(t, "standby start"):
        await standby.start()
    chain.pids += [p for p in (primary.pid, standby.pid) if p is not None]


async def _teardown(chain: Chain) -> None:
    for server in (chain.standby, chain.primary):
        with contextlib.suppress(SandboxError):
            await server.stop("immediate", timeout=30)
        if server.is_running():
            await server.kill()
    for archiver in chain.archivers:
        await archiver.stop()
    await chain.s3.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="session", params=["pgbackrest", "builtin"])
async def chain(request: pytest.FixtureRequest) -> AsyncIterator[Chain]:
    mode = str(request.param)
    if mode == "pgbackrest" and br.have_pgbackrest() is None:
        pytest.skip("pgbackrest is not installed")
    bindir = find_pg_bindir()
    root = make_pg_root()
    timings: dict[str, float] = {}
    with Timer(timings, "s3 up"):
        s3 = await start_s3_server(root / "s3")
    target = br.RepoTarget("127.0.0.1", s3.port)
    primary = PgServer(
        "v4", root / "v4" / "data", port=free_port(), bindir=bindir, run_dir=root / "v4" / "run"
    )
    standby = PgServer(
        "v5",
        root / "v5" / "data",
        port=free_port(),
        bindir=bindir,
        run_dir=root / "v5" / "run",
        superuser_password=PASSWORD,
    )
    chain = Chain(mode, root, s3, target, primary, standby, timings=timings)
    chain.pids.append(s3.pid)
    try:
        await _build(chain)
        yield chain
    finally:
        await _teardown(chain)
        print(f"\n[{mode}] timings (s): {json.dumps(chain.timings)}")
        leftovers = processes_using([root])
        alive = [pid for pid in chain.pids if pid_alive(pid)]
        shutil.rmtree(root, ignore_errors=True)
        assert leftovers == [], f"processes left behind: {leftovers}"
        assert alive == [], f"postmaster or s3server still alive: {alive}"


async def _wait_for_row(standby: PgServer, marker: str, within: float = 45) -> float:
    t0 = time.monotonic()
    conn = await asyncpg.connect(standby.dsn())
    try:
        while time.monotonic() - t0 < within:
            with contextlib.suppress(asyncpg.UndefinedTableError):
                if await conn.fetchval("SELECT count(*) FROM chain WHERE marker = $1", marker):
                    return time.monotonic() - t0
            await asyncio.sleep(0.1)
    finally:
        await conn.close()
    raise AssertionError(f"row {marker!r} did not reach the standby within {within} s")


async def _write_row(primary: PgServer, marker: str, *, switch: bool = True) -> None:
    conn = await asyncpg.connect(primary.dsn())
    try:
        await conn.execute("CREATE TABLE IF NOT EXISTS chain (marker text, at timestamptz)")
        await conn.execute("INSERT INTO chain VALUES ($1, now())", marker)
        if switch:
            await conn.execute("SELECT pg_switch_wal()")
    finally:
        await conn.close()


# --------------------------------------------------------------------------- the chain


async def test_row_reaches_standby_through_the_bucket(chain: Chain) -> None:
    await _write_row(chain.primary, "first")
    latency = await _wait_for_row(chain.standby, "first")
    chain.timings["row-to-standby"] = round(latency, 2)

    conn = await asyncpg.connect(chain.standby.dsn())
    try:
        assert await conn.fetchval("SELECT pg_is_in_recovery()") is True
        assert await conn.fetchval("SELECT pg_last_wal_receive_lsn()") is None
        assert await conn.fetchval("SHOW primary_conninfo") == ""
        assert await conn.fetchval("SELECT count(*) FROM pg_stat_wal_receiver") == 0
    finally:
        await conn.close()


async def test_bucket_holds_the_pgbackrest_layout(chain: Chain) -> None:
    keys = await chain.keys()
    rel = [k[len(chain.target.prefix) :] for k in keys]
    assert all(k.startswith(chain.target.prefix) for k in keys)
    unexpected = [k for k in rel if not any(p.search(k) for p in KEY_PATTERNS)]
    assert unexpected == []
    for name in ("archive.info", "archive.info.copy"):
        assert f"archive/db/{name}" in rel
    for name in ("backup.info", "backup.info.copy"):
        assert f"backup/db/{name}" in rel
    wal = [k for k in rel if br.WAL_KEY_RE.match(k)]
    assert len(wal) >= 2
    assert any(br.BACKUP_HISTORY_KEY_RE.match(k) for k in rel)

    archive_text = (await chain.get(chain.target.key("archive/db/archive.info"))).decode()
    assert br.verify_info_checksum(archive_text)
    archive_info = br.parse_info(archive_text)
    assert str(archive_info["db"]["db-system-id"]) == await chain.primary.system_identifier()
    assert archive_info["db"]["db-version"] == "15" or archive_info["db"]["db-version"].isdigit()
    assert (await chain.get(chain.target.key("archive/db/archive.info.copy"))).decode() == (
        archive_text
    )

    backup_text = (await chain.get(chain.target.key("backup/db/backup.info"))).decode()
    assert br.verify_info_checksum(backup_text)
    for text in (archive_text, backup_text):
        # Byte for byte as pgBackRest writes it: sorted sections and keys, JSON values.
        sections = br.parse_info(text)
        sections["backrest"].pop("backrest-checksum")
        assert br.render_info(sections) == text
    current = br.parse_info(backup_text)["backup:current"]
    assert len(current) == 1
    (label, record) = next(iter(current.items()))
    assert re.fullmatch(r"\d{8}-\d{6}F", label)
    assert record["backup-type"] == "full"
    assert record["backup-archive-start"] <= record["backup-archive-stop"]

    segment_key = chain.target.key(sorted(wal)[-1])
    data = gzip.decompress(await chain.get(segment_key))
    assert len(data) == WAL_SEGMENT_SIZE
    assert segment_key.endswith(f"-{hashlib.sha1(data).hexdigest()}.gz")

    if br.have_pgbackrest() is not None:
        # pgBackRest itself reads the repo (the built-in one too) and accepts its checksums.
        config = chain.configs.get("v4") or br.write_config(
            chain.root / "info.conf",
            chain.target,
            pg_path=chain.primary.data_dir,
            pg_port=chain.primary.port,
            pg_socket_dir=chain.primary.sock_dir,
            log_path=chain.root / "info-log",
            lock_path=chain.root / "info-lock",
            spool_path=chain.root / "info-spool",
        )
        info = json.loads(await br.info(config))[0]
        assert info["status"]["code"] == 0, info["status"]
        assert [b["label"] for b in info["backup"]] == [label]
        assert info["archive"][0]["id"] == f"{archive_info['db']['db-version']}-1"


async def test_s3_goes_down_and_comes_back_with_objects(chain: Chain) -> None:
    before = set(await chain.keys())
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    idle = ctx.wrap_socket(socket.create_connection(("127.0.0.1", chain.s3.port), timeout=5))
    await chain.s3.go_down()
    try:
        # An open keep-alive connection is dropped too.
        with contextlib.suppress(ssl.SSLError, ConnectionError):
            assert await asyncio.to_thread(idle.recv, 1) == b""
    finally:
        idle.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", chain.s3.port), timeout=2).close()
    await _write_row(chain.primary, "during-outage")
    await asyncio.sleep(1.5)
    standby = await asyncpg.connect(chain.standby.dsn())
    try:
        seen = await standby.fetchval("SELECT count(*) FROM chain WHERE marker = 'during-outage'")
    finally:
        await standby.close()
    assert seen == 0, "the row reached the standby while the bucket was down"
    await chain.s3.come_back()
    after = set(await chain.keys())
    assert before <= after

    # Archiving resumes: the row written while the bucket was down reaches the standby.
    t0 = time.monotonic()
    waiter = asyncio.create_task(_wait_for_row(chain.standby, "during-outage", within=60))
    n = 0
    while not waiter.done():
        n += 1
        await _write_row(chain.primary, f"nudge-{n}")
        await asyncio.wait({waiter}, timeout=3)
    await waiter
    chain.timings["catch-up after S3 back"] = round(time.monotonic() - t0, 2)


async def test_promotion_moves_the_standby_to_timeline_2(chain: Chain) -> None:
    with Timer(chain.timings, "promote"):
        await chain.standby.promote()
    conn = await asyncpg.connect(chain.standby.dsn())
    try:
        assert await conn.fetchval("SELECT pg_is_in_recovery()") is False
        walfile = await conn.fetchval("SELECT pg_walfile_name(pg_current_wal_lsn())")
        assert walfile.startswith("00000002")
        await conn.execute("INSERT INTO chain VALUES ('after-promotion', now())")
    finally:
        await conn.close()

    db_version = br.parse_info(
        (await chain.get(chain.target.key("archive/db/archive.info"))).decode()
    )["db"]["db-version"]
    history_key = chain.target.key(f"archive/db/{db_version}-1/00000002.history")
    t0 = time.monotonic()
    while history_key not in await chain.keys():
        assert time.monotonic() - t0 < 30, "00000002.history never reached the repo"
        await asyncio.sleep(0.2)
    chain.timings["history in repo after promote"] = round(time.monotonic() - t0, 2)
    history = (await chain.get(history_key)).decode()
    assert re.match(r"^1\t[0-9A-F]+/[0-9A-F]+\t", history)


# --------------------------------------------------------------------------- failures


async def test_start_on_a_taken_port_says_so() -> None:
    root = make_pg_root()
    squatter = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    squatter.bind(("127.0.0.1", 0))
    squatter.listen(1)
    port = squatter.getsockname()[1]
    server = PgServer(
        "blocked", root / "data", port=port, bindir=find_pg_bindir(), run_dir=root / "run"
    )
    try:
        await server.initdb(PASSWORD)
        with pytest.raises(SandboxError) as err:
            await server.start(timeout=20)
        message = str(err.value)
        assert "\n" not in message
        assert f"port {port}" in message
        assert "Address already in use" in message
        assert str(server.log_file) in message
        assert not server.is_running()
    finally:
        squatter.close()
        await server.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


def test_find_pg_bindir_without_any_postgresql(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    wrapper = fake_bin / "pg_ctl"  # a lone wrapper script: not a server installation
    wrapper.write_text("#!/bin/sh\nexit 1\n")
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", str(fake_bin))
    monkeypatch.delenv("IVYTUI_PG_BINDIR", raising=False)
    with pytest.raises(SandboxError) as err:
        find_pg_bindir(dist_patterns=[str(tmp_path / "nowhere" / "*" / "bin")], try_pgserver=False)
    assert str(err.value) == (
        "no PostgreSQL server binaries found (initdb, pg_ctl, postgres): install PostgreSQL "
        "(apt-get install postgresql) or `pip install pgserver`, or set IVYTUI_PG_BINDIR"
    )

    monkeypatch.setenv("IVYTUI_PG_BINDIR", str(tmp_path / "nowhere"))
    with pytest.raises(SandboxError) as err:
        find_pg_bindir(dist_patterns=[], try_pgserver=False)
    assert "IVYTUI_PG_BINDIR" in str(err.value)
    assert str(tmp_path / "nowhere") in str(err.value)


def test_find_pg_bindir_resolves_symlinks_on_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    real = find_pg_bindir()
    links = tmp_path / "links"
    links.mkdir()
    (links / "pg_ctl").symlink_to(real / "pg_ctl")
    monkeypatch.setenv("PATH", str(links))
    monkeypatch.delenv("IVYTUI_PG_BINDIR", raising=False)
    assert find_pg_bindir(dist_patterns=[], try_pgserver=False) == real.resolve()
    assert os.access(real / "initdb", os.X_OK)


async def test_s3server_on_a_taken_port_exits_with_one_line(tmp_path: Path) -> None:
    from ivytui.sandbox.s3server import make_tls

    cert, key = make_tls(tmp_path / "tls")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen(1)
        port = squatter.getsockname()[1]
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ivytui.sandbox.s3server", "--port", str(port),
            "--cert", str(cert), "--key", str(key), "--bucket", "hippo",
            "--ready-file", str(tmp_path / "ready.json"),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 1
    lines = err.decode().strip().splitlines()
    assert len(lines) == 1
    assert f"127.0.0.1:{port}" in lines[0] and "in use" in lines[0]
    assert not (tmp_path / "ready.json").exists()


async def test_builtin_scripts_give_up_at_once_without_a_running_archiver() -> None:
    root = make_pg_root()
    try:
        archiver = br.BuiltinArchiver(br.RepoTarget("127.0.0.1", free_port()), root / "spool")
        wal = root / "000000010000000000000001"
        wal.write_bytes(b"\0" * 8192)
        wal.chmod(0o644)
        push: list[str | Path] = ["/bin/sh", archiver.push_script, wal, wal.name]

        t0 = time.monotonic()
        res = await run_command(push, timeout=30, cwd=root)
        assert res.returncode == 1
        assert "archiver is not running" in res.stderr
        assert time.monotonic() - t0 < 5

        await archiver.start()
        archiver.paused = True
        try:
            res = await run_command(push, timeout=30, cwd=root)
        finally:
            await archiver.stop()
        assert res.returncode == 1
        assert "unreachable" in res.stderr
        assert not (root / "spool" / "service.pid").exists()

        get: list[str | Path] = ["/bin/sh", archiver.get_script, wal.name, "pg_wal/RECOVERYXLOG"]
        res = await run_command(get, timeout=30, cwd=root)
        assert res.returncode == 1
    finally:
        shutil.rmtree(root, ignore_errors=True)
