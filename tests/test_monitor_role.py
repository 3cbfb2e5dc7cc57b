"""Monitor mode without a superuser: a ``pg_monitor`` role whose password is in a Secret."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
import pytest

from ivytui.config import Config, DatabaseTarget
from ivytui.errors import PostgresError
from ivytui.sources.hub import Hub
from ivytui.sources.kube import ObjectMissing, SecretMissing
from ivytui.sources.postgres import APPLICATION_NAME, v4_locator, v5_locator
from tests.conftest import RunningWorld

MONITOR = DatabaseTarget(user="ivytui_monitor", secret="hippo-ivytui-monitor")


class FakeKube:
    """Services and Secrets by name; records what was read."""

    namespace = "pgo"

    def __init__(
        self, secrets: dict[str, dict[str, str]], services: dict[str, dict[str, Any]]
    ) -> None:
        self.secrets = secrets
        self.services = services
        self.read: list[str] = []

    async def read_secret(self, name: str) -> dict[str, str]:
        self.read.append(f"secret/{name}")
        if name not in self.secrets:
            raise SecretMissing(f"Secret {name} does not exist in namespace pgo")
        return self.secrets[name]

    async def read_service(self, name: str) -> dict[str, Any]:
        self.read.append(f"service/{name}")
        if name not in self.services:
            raise ObjectMissing(f"Service {name} does not exist in namespace pgo")
        return self.services[name]


def _service(ip: str, port: int) -> dict[str, Any]:
    return {"spec": {"clusterIP": ip, "ports": [{"name": "postgres", "port": port}]}}


def _kube() -> FakeKube:
    return FakeKube(
        {
            "hippo-ivytui-monitor": {"username": "ivytui_monitor", "password": "m0n"},
            "hippo-postgres-secret": {"username": "postgres", "password": "SUPER"},
            "hippo-pguser-postgres": {"host": "h", "port": "5432", "password": "SUPER"},
        },
        {"hippo": _service("10.0.0.4", 5432), "hippo-primary": _service("None", 6432)},
    )


async def test_v4_through_the_monitor_secret_never_reads_the_superusers() -> None:
    kube = _kube()
    cfg = Config(v4_database=MONITOR)
    target = await v4_locator(cfg, kube, lambda: None)()
    assert (target.host, target.port, target.user, target.password) == (
        "10.0.0.4",
        5432,
        "ivytui_monitor",
        "m0n",
    )
    assert target.origin == "Service hippo, Secret hippo-ivytui-monitor"
    assert kube.read == ["service/hippo", "secret/hippo-ivytui-monitor"]


async def test_v5_through_the_monitor_secret_uses_the_primary_service() -> None:
    kube = _kube()
    # No user in the config: the Secret's username; a headless Service: its DNS name.
    cfg = Config(v5_database=DatabaseTarget(secret="hippo-ivytui-monitor"))
    target = await v5_locator(cfg, kube)()
    assert (target.host, target.port, target.user, target.password) == (
        "hippo-primary.pgo.svc",
        6432,
        "ivytui_monitor",
        "m0n",
    )
    assert "secret/hippo-pguser-postgres" not in kube.read
    given = Config(v5_database=DatabaseTarget(host="127.0.0.1", port=7000, secret=MONITOR.secret))
    target = await v5_locator(given, kube)()
    assert (target.host, target.port, target.user) == ("127.0.0.1", 7000, "ivytui_monitor")


async def test_a_missing_or_incomplete_monitor_secret_is_a_source_error() -> None:
    kube = _kube()
    cfg = Config(v4_database=DatabaseTarget(user="m", secret="nosuch"))
    with pytest.raises(PostgresError, match=r"Secret nosuch does not exist.*named by the config"):
        await v4_locator(cfg, kube, lambda: None)()
    kube.secrets["nopw"] = {"username": "m"}
    cfg = Config(v4_database=DatabaseTarget(secret="nopw"))
    with pytest.raises(PostgresError, match="Secret nopw has no key password"):
        await v4_locator(cfg, kube, lambda: None)()
    kube.secrets["nouser"] = {"password": "x"}
    cfg = Config(v5_database=DatabaseTarget(secret="nouser"))
    with pytest.raises(PostgresError, match="no key username: give the user"):
        await v5_locator(cfg, kube)()
    with pytest.raises(PostgresError, match="Kubernetes is off"):
        await v4_locator(Config(v4_database=MONITOR), None, lambda: None)()


# --------------------------------------------------------------------------------------------
# Against the world


async def _wait_view(hub: Hub, within: float) -> Any:
    deadline = time.monotonic() + within
    while True:
        snap = hub.view.snapshot
        v4, v5 = snap.v4db, snap.v5db
        if (
            v4.reachable
            and v4.xid_horizon is not None
            and v4.archiver is not None
            and v5.reachable
            and v5.replay_lsn is not None
        ):
            return snap
        if time.monotonic() > deadline:
            raise AssertionError(f"the hub did not fill v4 and v5 within {within} s: {v4} {v5}")
        await asyncio.sleep(0.1)


@pytest.mark.world
async def test_the_hub_monitors_both_databases_as_the_pg_monitor_role(world: RunningWorld) -> None:
    monitor = world.state["monitor"]
    assert monitor == {"user": "ivytui_monitor", "secret": f"{world.cluster}-ivytui-monitor"}
    target = DatabaseTarget(user=monitor["user"], secret=monitor["secret"])
    cfg = Config(
        cluster=world.cluster,
        namespace=world.namespace,
        v5_name=world.v5_name,
        kubeconfig=str(world.kubeconfig),
        interval=0.3,
        source_timeout=3.0,
        read_only=True,
        v4_database=target,
        v5_database=DatabaseTarget(secret=monitor["secret"]),
    )
    hub = Hub(cfg)
    v4 = await asyncpg.connect(world.v4_dsn)
    v5 = await asyncpg.connect(world.v5_dsn())
    await hub.start()
    try:
        snap = await _wait_view(hub, 30)
        assert hub.kube is not None
        secret = await hub.kube.read_secret(monitor["secret"])
        assert set(secret) == {"username", "password"} and secret["username"] == "ivytui_monitor"

        db4, db5 = snap.v4db, snap.v5db
        assert db4.error is None and db5.error is None
        assert db4.current_lsn is not None and db4.timeline == 1
        assert db4.system_id == int(
            await v4.fetchval("SELECT system_identifier FROM pg_control_system()")
        )
        assert db4.archiver is not None and db4.archiver.archived_count > 0
        assert db4.xid_horizon is not None and db4.xids_in_progress is not None
        assert db4.read_only is False and db4.segment_size == 16 * 1024 * 1024
        assert db5.in_recovery is True and db5.replay_lsn is not None
        assert db5.system_id == db4.system_id and db5.timeline == 1
        assert db5.is_superuser is False

        # The console's sessions, as each server shows them, are the monitor role's.
        sources = {"v4": (hub._v4db, v4), "v5": (hub._v5db, v5)}
        for name, (source, su) in sources.items():
            assert source is not None and source._conn is not None, name
            pid = source._conn.get_server_pid()
            row = await su.fetchrow(
                "SELECT usename, application_name FROM pg_stat_activity WHERE pid = $1", pid
            )
            assert row is not None, name
            assert (row["usename"], row["application_name"]) == ("ivytui_monitor", APPLICATION_NAME)
            users = await su.fetch(
                "SELECT DISTINCT usename FROM pg_stat_activity WHERE application_name = $1",
                APPLICATION_NAME,
            )
            assert "ivytui_monitor" in {r["usename"] for r in users}
    finally:
        await hub.stop()
        await v5.close()

    try:
        role = await v4.fetchrow(
            "SELECT rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls,"
            " ARRAY(SELECT b.rolname::text FROM pg_auth_members m JOIN pg_roles b"
            "       ON b.oid = m.roleid WHERE m.member = r.oid) AS member_of"
            " FROM pg_roles r WHERE rolname = 'ivytui_monitor'"
        )
        assert role is not None
        assert not any(role[k] for k in ("rolsuper", "rolcreaterole", "rolcreatedb"))
        assert not role["rolreplication"] and not role["rolbypassrls"]
        assert role["member_of"] == ["pg_monitor"]
        dsn = (
            f"postgresql://ivytui_monitor:{secret['password']}@127.0.0.1:"
            f"{world.state['v4']['port']}/postgres"
        )
        mon = await asyncpg.connect(dsn)
        try:
            # Even in a read-write session, the role may not create or write anything.
            await mon.execute("SET default_transaction_read_only = off")
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await mon.execute("CREATE TABLE ivytui_monitor_wrote (a int)")
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await mon.execute("INSERT INTO ivytui_load (id, payload) VALUES (-1, 'x')")
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await mon.execute("CHECKPOINT")
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await mon.execute("SELECT pg_switch_wal()")
        finally:
            await mon.close()
    finally:
        await v4.close()
