"""The PostgreSQL source against the world's two real servers."""

from __future__ import annotations

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
