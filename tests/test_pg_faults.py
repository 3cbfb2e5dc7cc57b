"""The PostgreSQL fault stage (`POST /_sandbox/faults/pg`), seen from outside with plain asyncpg:
kill (and the operator's restart), reject (pg_hba.conf), hang (a lock, or a stopped server)."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest

from ivytui.domain import sql
from ivytui.errors import SandboxError
from ivytui.sandbox import control
from ivytui.sources.postgres import V4_QUERY_14
from tests.conftest import RunningWorld, start_world

pytestmark = pytest.mark.world

T = TypeVar("T")
MONITOR = "ivytui_monitor"


@pytest.fixture(scope="module")
def pgw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningWorld]:
    directory = tmp_path_factory.mktemp("pgfaults")
    w = start_world(directory, with_standby=True, archive_timeout=5)
    try:
        yield w
    finally:
        control.down(directory)


# ---- helpers ---------------------------------------------------------------------------------


async def eventually(
    probe: Callable[[], Awaitable[T | None]], what: str, *, tries: int = 300, pause: float = 0.1
) -> T:
    """The probe's first true answer; fails after `tries` probes."""
    for _ in range(tries):
        value = await probe()
        if value:
            return value
        await asyncio.sleep(pause)
    raise AssertionError(f"never happened: {what}")


def kubectl(w: RunningWorld, *args: str) -> str:
    out = subprocess.run(
        ["kubectl", "--kubeconfig", str(w.kubeconfig), "-n", w.namespace, *args],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def monitor_password(w: RunningWorld) -> str:
    secret = w.state["monitor"]["secret"]
    data = kubectl(w, "get", "secret", secret, "-o", "jsonpath={.data.password}")
    return base64.b64decode(data).decode()


def where(w: RunningWorld, target: str) -> dict[str, Any]:
    state = w.refresh()
    return dict(state["v4"] if target == "v4" else state["v5"][w.v5_name])


def login(w: RunningWorld, target: str, user: str = "postgres") -> dict[str, Any]:
    password = monitor_password(w) if user == MONITOR else w.state["superuser_password"]
    port = where(w, target)["port"]
    return {"host": "127.0.0.1", "port": port, "user": user, "password": password}


async def connect(w: RunningWorld, target: str, user: str = "postgres") -> asyncpg.Connection:
    return await asyncpg.connect(**login(w, target, user), database="postgres", timeout=5)


async def connect_error(params: dict[str, Any]) -> BaseException | None:
    """What connecting raises (None: it connected and answered)."""
    try:
        conn = await asyncpg.connect(**params, database="postgres", timeout=2)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        return exc
    try:
        await conn.fetchval("SELECT 1", timeout=2)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        return exc
    finally:
        conn.terminate()
    return None


async def answers(params: dict[str, Any]) -> bool:
    return await connect_error(params) is None


def fired(w: RunningWorld, fault_id: int) -> dict[str, Any] | None:
    return next((f for f in control.pg_faults(w.dir)["fired"] if f["id"] == fault_id), None)


async def fired_soon(w: RunningWorld, fault_id: int) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        return fired(w, fault_id)

    return await eventually(probe, f"fault {fault_id} fired")


def postmaster_of(pid: int, data_dir_part: str) -> bool:
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    return control.alive(pid) and "postgres" in cmdline and data_dir_part in cmdline


# ---- the body ----------------------------------------------------------------------------------

BAD_BODIES: list[tuple[Any, str]] = [
    ({"kind": "explode", "target": "v4"}, "kind"),
    ({"kind": "kill"}, "target"),
    ({"kind": "kill", "target": "v6"}, "target"),
    ({"kind": "kill", "target": "v4", "restart_after": -1}, "restart_after"),
    ({"kind": "kill", "target": "v4", "restart": "yes"}, "restart"),
    ({"kind": "kill", "target": "v4", "mode": "gentle"}, "mode"),
    ({"kind": "kill", "target": "v4", "name": "hippo"}, "name"),
    ({"kind": "kill", "target": "v4", "seconds": 3}, "unknown field 'seconds'"),
    ({"kind": "reject", "target": "v4"}, "user"),
    ({"kind": "reject", "target": "v5", "user": 'a"b'}, "user"),
    ({"kind": "reject", "target": "v4", "user": "app", "seconds": "5"}, "seconds"),
    ({"kind": "hang", "target": "v4", "seconds": 0}, "seconds"),
    ({"kind": "hang", "target": "v4", "seconds": float("inf")}, "seconds"),
    ({"kind": "hang", "target": "v4", "lock": "pg_authid; DROP TABLE x"}, "lock"),
    ({"kind": "hang", "target": "v4", "how": "stop", "lock": "pg_authid"}, "lock"),
    ({"kind": "hang", "target": "v4", "how": "freeze"}, "how"),
    ([{"kind": "kill", "target": "v4"}], "JSON object"),
]


@pytest.mark.parametrize(
    ("body", "words"), BAD_BODIES, ids=[str(i) for i in range(len(BAD_BODIES))]
)
def test_a_bad_body_gets_a_400_with_one_line(pgw: RunningWorld, body: Any, words: str) -> None:
    url = f"{pgw.kube_url}/_sandbox/faults/pg"
    data = json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="POST")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=30)
    assert err.value.code == 400
    message = json.loads(err.value.read())["error"]
    assert words in message and "\n" not in message
    assert control.pg_faults(pgw.dir)["armed"] == []


def test_not_json_and_impossible_faults(pgw: RunningWorld) -> None:
    req = urllib.request.Request(
        f"{pgw.kube_url}/_sandbox/faults/pg", data=b"kill v4", method="POST"
    )
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=30)
    assert err.value.code == 400
    assert "not JSON" in json.loads(err.value.read())["error"]
    # A standby refuses LOCK … ACCESS EXCLUSIVE: 409, pointing at the other way to hang it.
    with pytest.raises(SandboxError, match=r'409 .*recovery.*"how": "stop"'):
        control.pg_fault_arm(pgw.dir, kind="hang", target="v5", seconds=1)
    with pytest.raises(SandboxError, match=r"409 no v5 instance 'nope'"):
        control.pg_fault_arm(pgw.dir, kind="kill", target="v5", name="nope")
    assert control.pg_faults(pgw.dir)["armed"] == []


# ---- reject ------------------------------------------------------------------------------------


async def test_reject_the_monitor_on_v5_for_a_while(pgw: RunningWorld) -> None:
    monitor, superuser = login(pgw, "v5", MONITOR), login(pgw, "v5")
    assert await answers(monitor)
    fault = control.pg_fault_arm(pgw.dir, kind="reject", target="v5", user=MONITOR, seconds=5)
    assert fault["state"] == "armed" and fault["name"] == pgw.v5_name

    async def rejected() -> bool:
        return isinstance(
            await connect_error(monitor), asyncpg.InvalidAuthorizationSpecificationError
        )

    await eventually(rejected, "the monitor rejected by pg_hba.conf")
    assert await answers(superuser)
    assert [f["id"] for f in control.pg_faults(pgw.dir)["armed"]] == [fault["id"]]
    await eventually(lambda: answers(monitor), "the monitor let in again")
    done = await fired_soon(pgw, fault["id"])
    assert "put back and reloaded" in done["outcome"]


async def test_reject_postgres_on_v4_leaves_the_monitor_in(pgw: RunningWorld) -> None:
    monitor, superuser = login(pgw, "v4", MONITOR), login(pgw, "v4")
    fault = control.pg_fault_arm(pgw.dir, kind="reject", target="v4", user="postgres", seconds=5)

    async def rejected() -> bool:
        error = await connect_error(superuser)
        return isinstance(error, asyncpg.InvalidAuthorizationSpecificationError)

    await eventually(rejected, "postgres rejected by pg_hba.conf")
    assert await answers(monitor)
    await eventually(lambda: answers(superuser), "postgres let in again")
    assert "put back" in (await fired_soon(pgw, fault["id"]))["outcome"]


# ---- hang --------------------------------------------------------------------------------------


async def test_hang_v4_holds_the_poll_and_the_freeze_then_answers(pgw: RunningWorld) -> None:
    # Sessions opened before: a new login would wait too (it reads pg_authid).
    mon = await connect(pgw, "v4", MONITOR)
    su = await connect(pgw, "v4")
    try:
        await mon.execute("SET statement_timeout = '1s'")
        await su.execute("SET statement_timeout = '300ms'")
        assert await mon.fetchrow(V4_QUERY_14) is not None
        fault = control.pg_fault_arm(pgw.dir, kind="hang", target="v4", seconds=6)
        assert fault["lock"] == "pg_catalog.pg_authid"
        with pytest.raises(asyncpg.QueryCanceledError):
            await mon.fetchrow(V4_QUERY_14)
        for statement in (
            sql.blockable_roles_sql(),
            sql.block_role_statement("app"),
            sql.terminate_sessions_sql(["app"]),
        ):
            with pytest.raises(asyncpg.QueryCanceledError):
                await su.execute(statement)
        # What does not touch the roles goes on: the write load's table.
        assert await su.fetchval("SELECT count(*) FROM ivytui_load") > 0

        async def polled() -> bool:
            try:
                return await mon.fetchrow(V4_QUERY_14) is not None
            except asyncpg.QueryCanceledError:
                return False

        await eventually(polled, "the poll answering after the hang")
        assert "released" in (await fired_soon(pgw, fault["id"]))["outcome"]
        assert await su.fetchval("SELECT count(*) FROM pg_roles WHERE rolname = 'app'") == 1
    finally:
        await mon.close()
        await su.close()


async def test_hang_the_v5_standby_by_stopping_it(pgw: RunningWorld) -> None:
    params = login(pgw, "v5")
    conn = await connect(pgw, "v5")
    try:
        fault = control.pg_fault_arm(pgw.dir, kind="hang", target="v5", how="stop", seconds=3)
        assert "lock" not in fault
        with pytest.raises(TimeoutError):
            await conn.fetchval("SELECT pg_is_in_recovery()", timeout=1)
    finally:
        conn.terminate()

    async def in_recovery() -> bool:
        try:
            c = await asyncpg.connect(**params, database="postgres", timeout=2)
        except (OSError, TimeoutError, asyncpg.PostgresError):
            return False
        try:
            return bool(await c.fetchval("SELECT pg_is_in_recovery()", timeout=2))
        except (OSError, TimeoutError, asyncpg.PostgresError):
            return False
        finally:
            c.terminate()

    await eventually(in_recovery, "the standby answering again")
    assert "continued" in (await fired_soon(pgw, fault["id"]))["outcome"]


async def test_delete_undoes_every_fault_now(pgw: RunningWorld) -> None:
    app = {
        "host": "127.0.0.1",
        "port": where(pgw, "v4")["port"],
        "user": pgw.state["app"]["user"],
        "password": pgw.state["app"]["password"],
    }
    su = await connect(pgw, "v4")
    try:
        await su.execute("SET statement_timeout = '1s'")
        reject = control.pg_fault_arm(pgw.dir, kind="reject", target="v4", user="app", seconds=600)
        hang = control.pg_fault_arm(pgw.dir, kind="hang", target="v4", seconds=600)
        with pytest.raises(asyncpg.QueryCanceledError):
            await su.fetchval("SELECT count(*) FROM pg_roles")
        result = control.pg_fault_clear(pgw.dir)
        assert sorted(f["id"] for f in result["cleared"]) == [reject["id"], hang["id"]]
        assert result["armed"] == [] == control.pg_faults(pgw.dir)["armed"]
        assert await su.fetchval("SELECT count(*) FROM pg_roles") > 0
    finally:
        await su.close()
    await eventually(lambda: answers(app), "the app role let in again")
    for fault_id in (reject["id"], hang["id"]):
        assert "undone early" in (fired(pgw, fault_id) or {})["outcome"]


# ---- kill --------------------------------------------------------------------------------------


def acked_ids(w: RunningWorld) -> list[int]:
    return control.read_acked(Path(w.state["load"]["acked_file"]))


async def test_kill_v4_then_restarted_with_a_new_pid_and_no_acked_row_lost(
    pgw: RunningWorld,
) -> None:
    params = login(pgw, "v4")
    before = where(pgw, "v4")["pid"]
    assert before and control.alive(before)
    fault = control.pg_fault_arm(pgw.dir, kind="kill", target="v4", restart_after=2)
    assert fault["state"] == "armed" and fault["mode"] == "immediate"
    assert where(pgw, "v4")["pid"] is None
    assert isinstance(await connect_error(params), OSError)  # connection refused

    async def back() -> int | None:
        pid = where(pgw, "v4")["pid"]
        return pid if pid and await answers(params) else None

    after = await eventually(back, "v4 answering again with a pid in world.json")
    assert after != before and postmaster_of(after, "/v4/")
    assert "restarted" in (await fired_soon(pgw, fault["id"]))["outcome"]
    # The write load reconnects; every row it was told was committed is there.
    seen = len(acked_ids(pgw))

    async def load_moves() -> bool:
        return len(acked_ids(pgw)) > seen + 2

    await eventually(load_moves, "the write load acknowledging rows again")
    acked = acked_ids(pgw)
    conn = await connect(pgw, "v4")
    try:
        present = {r["id"] for r in await conn.fetch("SELECT id FROM ivytui_load")}
    finally:
        await conn.close()
    missing = sorted(set(acked) - present)
    assert not missing, f"{len(missing)} acknowledged rows lost: {missing[:10]}"


async def test_kill_the_v5_standby_left_down_until_delete(pgw: RunningWorld) -> None:
    params = login(pgw, "v5")
    before = where(pgw, "v5")["pid"]
    fault = control.pg_fault_arm(pgw.dir, kind="kill", target="v5", mode="sigkill", restart=False)
    assert fault["state"] == "fired" and "left down" in fault["outcome"]
    assert where(pgw, "v5")["pid"] is None
    assert isinstance(await connect_error(params), OSError)
    assert control.pg_faults(pgw.dir)["armed"] == []
    result = control.pg_fault_clear(pgw.dir)
    assert [f["id"] for f in result["cleared"]] == [fault["id"]]
    assert "restarted" in result["cleared"][0]["outcome"]
    after = where(pgw, "v5")["pid"]
    assert after and after != before and postmaster_of(after, f"/v5-{pgw.v5_name}/")
    await eventually(lambda: answers(params), "the standby answering again")
    conn = await connect(pgw, "v5")
    try:
        assert await conn.fetchval("SELECT pg_is_in_recovery()")
    finally:
        await conn.close()


async def test_v4_shut_down_by_its_operator_is_not_restarted(pgw: RunningWorld) -> None:
    params = login(pgw, "v4")
    fault = control.pg_fault_arm(pgw.dir, kind="kill", target="v4", restart_after=3)
    kubectl(pgw, "patch", "pgcluster", pgw.cluster, "--type", "merge", "-p",
            '{"spec": {"shutdown": true}}')  # fmt: skip
    done = await fired_soon(pgw, fault["id"])
    assert "not restarted: v4 is shut down by its operator" in done["outcome"]
    assert isinstance(await connect_error(params), OSError)
    assert where(pgw, "v4")["pid"] is None
    # The operator starts it when the shutdown is taken back.
    kubectl(pgw, "patch", "pgcluster", pgw.cluster, "--type", "merge", "-p",
            '{"spec": {"shutdown": false}}')  # fmt: skip

    async def back() -> int | None:
        pid = where(pgw, "v4")["pid"]
        return pid if pid and await answers(params) else None

    assert postmaster_of(await eventually(back, "v4 started by its operator"), "/v4/")
