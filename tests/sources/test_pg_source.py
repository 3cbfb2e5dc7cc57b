"""The PostgreSQL source against the world's two real servers."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import asyncpg
import pytest

from ivytui.config import Config, DatabaseTarget
from ivytui.domain.flavor import IVYO
from ivytui.domain.lsn import Lsn
from ivytui.domain.model import V4Database, V5Database
from ivytui.errors import PostgresError
from ivytui.sources.kube import KubeSource
from ivytui.sources.postgres import PgSource, v4_locator, v5_locator
from tests.conftest import RunningWorld
from tests.sources.source_helpers import sandbox_post

pytestmark = pytest.mark.world


@pytest.fixture
async def kube(cfg: Config) -> AsyncIterator[KubeSource]:
    source = KubeSource(cfg, IVYO)
    await source.connect()
    await source.list_all()
    try:
        yield source
    finally:
        await source.close()


async def test_v4_values_equal_what_asyncpg_says(
    world: RunningWorld, cfg: Config, kube: KubeSource
) -> None:
    pg = PgSource("v4", cfg, IVYO, v4_locator(cfg, kube, lambda: kube.v4_state().port))
    direct = await asyncpg.connect(world.v4_dsn)
    try:
        before = Lsn.parse(await direct.fetchval("SELECT pg_current_wal_lsn()::text"))
        state = await pg.poll()
        after = Lsn.parse(await direct.fetchval("SELECT pg_current_wal_lsn()::text"))
        row = await direct.fetchrow(
            "SELECT (SELECT system_identifier FROM pg_control_system())::text AS sysid,"
            " current_setting('server_version_num')::int AS version,"
            " (SELECT archived_count FROM pg_stat_archiver) AS archived"
        )
        configured = await direct.fetchval("SHOW default_transaction_read_only")
        assert pg.target is not None
        assert pg.target.origin == "Service hippo, Secret hippo-postgres-secret"
        # The monitor's own session refuses writes.
        assert pg._conn is not None
        with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
            await pg._conn.execute("CREATE TABLE ivytui_monitor_must_not_write (a int)")
    finally:
        await direct.close()
        await pg.close()
    assert isinstance(state, V4Database)
    assert state.reachable and state.error is None and state.in_recovery is False
    assert state.current_lsn is not None and before <= state.current_lsn <= after
    assert state.walfile is not None and state.timeline == int(state.walfile[:8], 16) == 1
    assert state.system_id == int(row["sysid"])
    assert state.pg_version_num == row["version"]
    assert state.segment_size == 16 * 1024 * 1024
    assert state.archiver is not None and 0 < state.archiver.archived_count <= row["archived"]
    assert state.read_only is (configured == "on") is False
    assert state.client_sessions is not None and state.client_sessions >= 1


async def _v4_poll(pg: PgSource) -> V4Database:
    state = await pg.poll()
    assert isinstance(state, V4Database) and state.reachable, state
    return state


async def test_the_xid_horizon_moves_only_when_a_transaction_writes(
    world: RunningWorld, cfg: Config, kube: KubeSource
) -> None:
    pg = PgSource("v4", cfg, IVYO, v4_locator(cfg, kube, lambda: kube.v4_state().port))
    direct = await asyncpg.connect(world.v4_dsn)
    other = await asyncpg.connect(world.v4_dsn)
    await asyncio.to_thread(sandbox_post, world, "/_sandbox/load/pause")
    try:
        # An autovacuum ANALYZE takes a transaction id too: none during the test.
        await direct.execute("ALTER SYSTEM SET autovacuum = off")
        await direct.execute("SELECT pg_reload_conf()")
        await other.execute("CREATE TABLE IF NOT EXISTS horizon_probe (v int)")
        # Wait for the paused load's last row (if one was in flight) to settle.
        quiet = (await _v4_poll(pg)).xid_horizon
        for _ in range(20):
            await asyncio.sleep(0.5)
            now = (await _v4_poll(pg)).xid_horizon
            if now == quiet:
                break
            quiet = now
        before = await _v4_poll(pg)
        assert before.xid_horizon is not None and before.xid_horizon > 3
        assert before.xids_in_progress == 0
        current = await direct.fetchval("SELECT txid_snapshot_xmax(txid_current_snapshot())")
        assert before.xid_horizon == current

        # Background WAL — a checkpoint, a switch, idle time — is no transaction.
        lsn = before.current_lsn
        await direct.execute("CHECKPOINT")
        await direct.execute("SELECT pg_switch_wal()")
        await asyncio.sleep(3)
        idle = await _v4_poll(pg)
        assert idle.current_lsn is not None and lsn is not None and idle.current_lsn > lsn
        assert idle.xid_horizon == before.xid_horizon
        assert idle.xids_in_progress == 0

        # A writing transaction in progress is counted, and the horizon waits for it to end.
        tx = other.transaction()
        await tx.start()
        await other.execute("INSERT INTO horizon_probe VALUES (1)")
        open_ = await _v4_poll(pg)
        assert open_.xids_in_progress == 1
        assert open_.xid_horizon == before.xid_horizon
        await tx.commit()
        after = await _v4_poll(pg)
        assert after.xid_horizon == before.xid_horizon + 1
        assert after.xids_in_progress == 0

        # One more one-row INSERT by another session: one more.
        await other.execute("INSERT INTO horizon_probe VALUES (2)")
        last = await _v4_poll(pg)
        assert last.xid_horizon == before.xid_horizon + 2
    finally:
        await direct.execute("ALTER SYSTEM RESET autovacuum")
        await direct.execute("SELECT pg_reload_conf()")
        await asyncio.to_thread(sandbox_post, world, "/_sandbox/load/resume")
        await other.close()
        await direct.close()
        await pg.close()


async def test_the_roles_that_cannot_connect_are_listed(
    world: RunningWorld, cfg: Config, kube: KubeSource
) -> None:
    pg = PgSource("v4", cfg, IVYO, v4_locator(cfg, kube, lambda: kube.v4_state().port))
    direct = await asyncpg.connect(world.v4_dsn)
    try:
        assert "testuser" not in (await _v4_poll(pg)).blocked_roles
        await direct.execute("ALTER ROLE testuser CONNECTION LIMIT 0")
        await direct.execute("CREATE ROLE zz_blocked_nologin CONNECTION LIMIT 0")
        try:
            blocked = (await _v4_poll(pg)).blocked_roles
        finally:
            await direct.execute("ALTER ROLE testuser CONNECTION LIMIT -1")
            await direct.execute("DROP ROLE zz_blocked_nologin")
        assert "testuser" in blocked
        assert "zz_blocked_nologin" not in blocked  # not a login role
        assert list(blocked) == sorted(blocked)
        assert "testuser" not in (await _v4_poll(pg)).blocked_roles
    finally:
        await direct.close()
        await pg.close()


async def test_v5_values_equal_what_asyncpg_says(
    world: RunningWorld, cfg: Config, kube: KubeSource
) -> None:
    pg = PgSource("v5", cfg, IVYO, v5_locator(cfg, kube))
    direct = await asyncpg.connect(world.v5_dsn())
    try:
        before = Lsn.parse(await direct.fetchval("SELECT pg_last_wal_replay_lsn()::text"))
        state = await pg.poll()
        after = Lsn.parse(await direct.fetchval("SELECT pg_last_wal_replay_lsn()::text"))
        sysid = int(await direct.fetchval("SELECT system_identifier FROM pg_control_system()"))
        role_exists = await direct.fetchval(
            "SELECT count(*) FROM pg_roles WHERE rolname = $1", IVYO.replication_role
        )
    finally:
        await direct.close()
        await pg.close()
    assert isinstance(state, V5Database)
    assert state.reachable and state.in_recovery is True
    assert state.replay_lsn is not None and before <= state.replay_lsn <= after
    assert state.receive_lsn is None  # fed from the repo only
    assert state.timeline == 1 and state.system_id == sysid
    assert state.is_superuser is True
    assert state.grants_verified is bool(role_exists) is False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_a_closed_port_is_unreachable_with_the_reason() -> None:
    port = _free_port()
    cfg = Config(
        v4_database=DatabaseTarget(host="127.0.0.1", port=port, user="postgres", password="x")
    )
    pg = PgSource("v4", cfg, IVYO, v4_locator(cfg, None, lambda: None))
    try:
        state = await pg.poll()
        # Within the back-off the last answer stands, without a new attempt.
        again = await pg.poll()
    finally:
        await pg.close()
    assert not state.reachable and state.error is None
    assert state.unreachable_reason == f"connection refused at 127.0.0.1:{port}"
    assert again is state


async def test_refused_credentials_are_a_source_error_not_a_down_database(
    world: RunningWorld,
) -> None:
    port = int(world.state["v4"]["port"])
    cfg = Config(
        v4_database=DatabaseTarget(host="127.0.0.1", port=port, user="postgres", password="wrong")
    )
    pg = PgSource("v4", cfg, IVYO, v4_locator(cfg, None, lambda: None))
    try:
        with pytest.raises(PostgresError, match="password authentication failed"):
            await pg.poll()
    finally:
        await pg.close()


async def test_a_missing_secret_means_no_address(cfg: Config, kube: KubeSource) -> None:
    other = Config(
        cluster=cfg.cluster,
        namespace=cfg.namespace,
        v5_name="nosuch",
        kubeconfig=cfg.kubeconfig,
    )
    pg = PgSource("v5", other, IVYO, v5_locator(other, kube))
    try:
        state = await pg.poll()
    finally:
        await pg.close()
    assert not state.reachable and state.error is None
    assert (
        state.unreachable_reason == "Secret nosuch-pguser-postgres does not exist in namespace pgo"
    )
