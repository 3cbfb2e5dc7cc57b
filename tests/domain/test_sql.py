"""Step 6's grants and step 3's freeze/switch/thaw SQL: the text (golden files for both
flavors), the quoting, and — on one throwaway PostgreSQL 15 — what the statements do.

Set IVYTUI_UPDATE_GOLDEN=1 to rewrite the expected files from the current output.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio

from ivytui.domain.flavor import GRANTED_FUNCTIONS, IVYO, PGO, Flavor
from ivytui.domain.sql import (
    _KEYWORDS,
    GRANT_COLUMNS,
    HORIZON_COLUMN,
    IN_PROGRESS_COLUMN,
    ROLE_EXISTS_COLUMN,
    SWITCH_LSN_COLUMN,
    SWITCH_WALFILE_COLUMN,
    SqlError,
    blockable_roles_sql,
    freeze_sql,
    freeze_statements,
    grant_problems,
    grants_sql,
    grants_statements,
    horizon_sql,
    quote_ident,
    quote_literal,
    switch_sql,
    switch_statements,
    thaw_sql,
    thaw_statements,
    verify_grants_sql,
)

GOLDEN = Path(__file__).parent / "golden" / "sql"
UPDATE = os.environ.get("IVYTUI_UPDATE_GOLDEN") == "1"
PASSWORD = "sql-test-password"

ODD = IVYO.with_overrides(replication_role='Odd "Repl" $$ it\'s')


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.write_text(text)
    assert text == path.read_text()


# --------------------------------------------------------------------------------------------
# the text


@pytest.mark.parametrize("flavor", [IVYO, PGO], ids=["ivyo", "pgo"])
def test_grants_golden(flavor: Flavor) -> None:
    check_golden(f"grants-{flavor.key}.sql", grants_sql(flavor))
    check_golden(f"verify-{flavor.key}.sql", verify_grants_sql(flavor) + "\n")


def test_grants_follow_the_reference() -> None:
    for flavor, role in ((IVYO, "_ivoryrepl"), (PGO, "_crunchyrepl")):
        statements = grants_statements(flavor)
        assert statements[0] == (
            "DO $$\n"
            "BEGIN\n"
            f"  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN\n"
            f"    CREATE ROLE {role} WITH LOGIN REPLICATION;\n"
            "  END IF;\n"
            "END\n"
            "$$;"
        )
        assert statements[1:] == (
            f"GRANT EXECUTE ON FUNCTION pg_catalog.pg_ls_dir(text, boolean, boolean) TO {role};",
            f"GRANT EXECUTE ON FUNCTION pg_catalog.pg_stat_file(text, boolean) TO {role};",
            f"GRANT EXECUTE ON FUNCTION pg_catalog.pg_read_binary_file(text) TO {role};",
            "GRANT EXECUTE ON FUNCTION "
            f"pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean) TO {role};",
        )
        text = grants_sql(flavor)
        assert all(statement in text for statement in statements)
        for word in ("BEGIN;", "COMMIT", "ROLLBACK"):
            assert word not in text


def test_freeze_switch_thaw_text() -> None:
    assert freeze_sql(False, ()) == (
        "ALTER SYSTEM SET default_transaction_read_only = on;\nSELECT pg_reload_conf();"
    )
    blocking = freeze_statements(False, ("app", "Odd Role"))
    assert blocking[-2:] == freeze_statements(False, ())
    assert blocking[0:2] == (
        "ALTER ROLE app CONNECTION LIMIT 0;",
        'ALTER ROLE "Odd Role" CONNECTION LIMIT 0;',
    )
    # The blocked roles' own sessions are always ended; ivytui's sessions never.
    assert blocking[2] == (
        "SELECT pid, usename, application_name, pg_terminate_backend(pid) AS terminated\n"
        "FROM pg_stat_activity\n"
        "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
        " AND datname IS NOT NULL\n  AND usename IN ('app', 'Odd Role')\n"
        "  AND application_name NOT IN ('ivytui-monitor', 'ivytui-driver');"
    )
    everyone = freeze_statements(True, (), spare_applications=["ivytui-monitor", "o'k"])
    assert everyone[0].endswith("\n  AND application_name NOT IN ('ivytui-monitor', 'o''k');")
    assert "usename IN" not in everyone[0]
    assert freeze_sql(True, ("app",)) == "\n".join(freeze_statements(True, ("app",)))
    assert "rolcanlogin AND NOT rolsuper AND rolname <> current_user" in blockable_roles_sql()
    assert blockable_roles_sql(["mon"]).count("NOT IN ('mon')") == 1
    assert thaw_sql() == (
        "ALTER SYSTEM RESET default_transaction_read_only;\nSELECT pg_reload_conf();"
    )
    assert thaw_statements((("app", -1), ("batch", 5)))[2:] == (
        "ALTER ROLE app CONNECTION LIMIT -1;",
        "ALTER ROLE batch CONNECTION LIMIT 5;",
    )
    assert thaw_statements() == tuple(thaw_sql().split("\n"))
    first, second = switch_statements()
    assert first == "CHECKPOINT;"
    assert second.startswith(
        "SELECT s.lsn::text AS switch_lsn, pg_walfile_name(s.lsn) AS walfile,\n"
        "  txid_snapshot_xmax(x)::text AS xid_horizon,\n"
    )
    assert second.endswith("FROM pg_switch_wal() AS s(lsn), txid_current_snapshot() AS x;")
    assert switch_statements() == tuple(switch_sql().split("\n", 1))


def test_quote_ident() -> None:
    assert quote_ident("_ivoryrepl") == "_ivoryrepl"
    assert quote_ident("_crunchyrepl") == "_crunchyrepl"
    assert quote_ident("abs") == "abs"  # an unreserved keyword
    assert quote_ident("user") == '"user"'
    assert quote_ident("Repl") == '"Repl"'
    assert quote_ident('a"b') == '"a""b"'
    assert quote_ident("1a") == '"1a"'
    assert quote_ident("a$b") == '"a$b"'
    assert quote_ident("été") == '"été"'
    assert quote_ident("a b") == '"a b"'
    for bad in ("", "a\x00b"):
        with pytest.raises(SqlError):
            quote_ident(bad)


def test_quote_literal() -> None:
    assert quote_literal("_ivoryrepl") == "'_ivoryrepl'"
    assert quote_literal("it's") == "'it''s'"
    assert quote_literal("a\\b'c") == "E'a\\\\b''c'"
    with pytest.raises(SqlError):
        quote_literal("a\x00")


def test_odd_role_names_are_quoted_everywhere() -> None:
    create, *grants = grants_statements(ODD)
    ident = '"Odd ""Repl"" $$ it\'s"'
    assert create.startswith("DO $ivytui1$\n")
    assert create.endswith("$ivytui1$;")
    assert "rolname = 'Odd \"Repl\" $$ it''s'" in create
    assert f"CREATE ROLE {ident} WITH LOGIN REPLICATION;" in create
    assert all(grant.endswith(f" TO {ident};") for grant in grants)
    assert "r.rolname = 'Odd \"Repl\" $$ it''s';" in verify_grants_sql(ODD)


def test_unusable_role_names_are_refused() -> None:
    for role, words in [
        ("r" * 64, "longer than 63 bytes"),
        ("a\nb", "control character"),
    ]:
        flavor = IVYO.with_overrides(replication_role=role)
        with pytest.raises(SqlError) as err:
            grants_sql(flavor)
        assert words in str(err.value)
        assert "\n" not in str(err.value)


def test_verify_columns_and_problems() -> None:
    assert [function for _, function in GRANT_COLUMNS] == list(GRANTED_FUNCTIONS)
    assert [column for column, _ in GRANT_COLUMNS] == [
        "pg_ls_dir_text_boolean_boolean",
        "pg_stat_file_text_boolean",
        "pg_read_binary_file_text",
        "pg_read_binary_file_text_bigint_bigint_boolean",
    ]
    good = {ROLE_EXISTS_COLUMN: True, **{column: True for column, _ in GRANT_COLUMNS}}
    assert grant_problems(IVYO, good) == ()
    assert grant_problems(PGO, {**good, ROLE_EXISTS_COLUMN: False}) == (
        "the replication role _crunchyrepl does not exist",
    )
    assert grant_problems(IVYO, {**good, "pg_stat_file_text_boolean": False}) == (
        "_ivoryrepl may not execute pg_catalog.pg_stat_file(text, boolean)",
    )


# --------------------------------------------------------------------------------------------
# on a real PostgreSQL


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def server() -> AsyncIterator[object]:
    from ivytui.sandbox.pg import PgServer, find_pg_bindir, free_port, make_pg_root

    root = make_pg_root("ivytui-sql-")
    pg = PgServer(
        "sql", root / "data", port=free_port(), bindir=find_pg_bindir(), run_dir=root / "run"
    )
    try:
        await pg.initdb(PASSWORD)
        await pg.start()
        yield pg
    finally:
        await pg.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


async def connect(server: object) -> asyncpg.Connection:
    from ivytui.sandbox.pg import PgServer

    assert isinstance(server, PgServer)
    return await asyncpg.connect(server.dsn(), timeout=10)


def _as_user(server: object, user: str) -> str:
    from ivytui.sandbox.pg import PgServer

    assert isinstance(server, PgServer)
    return f"postgresql://{user}:{user}@127.0.0.1:{server.port}/postgres"


async def verify(conn: asyncpg.Connection, flavor: Flavor) -> dict[str, bool]:
    row = await conn.fetchrow(verify_grants_sql(flavor))
    assert row is not None
    return dict(row.items())


@pytest.mark.world
@pytest.mark.parametrize("flavor", [IVYO, PGO, ODD], ids=["ivyo", "pgo", "odd-name"])
async def test_grants_are_idempotent_and_verified(server: object, flavor: Flavor) -> None:
    conn = await connect(server)
    try:
        before = await verify(conn, flavor)
        assert list(before) == [ROLE_EXISTS_COLUMN, *(c for c, _ in GRANT_COLUMNS)]
        assert not any(before.values())
        assert len(grant_problems(flavor, before)) == 1
        for _ in range(2):
            async with conn.transaction():
                for statement in grants_statements(flavor):
                    await conn.execute(statement)
        after = await verify(conn, flavor)
        assert all(value is True for value in after.values())
        assert grant_problems(flavor, after) == ()
        attrs = await conn.fetchrow(
            "SELECT rolcanlogin, rolreplication, rolsuper FROM pg_roles WHERE rolname = $1",
            flavor.replication_role,
        )
        assert attrs is not None and tuple(attrs) == (True, True, False)
        # The reviewable text is the same SQL: it runs as one script too.
        await conn.execute(grants_sql(flavor))
    finally:
        await conn.close()


@pytest.mark.world
async def test_quote_ident_agrees_with_the_server(server: object) -> None:
    conn = await connect(server)
    try:
        keywords = await conn.fetch("SELECT word FROM pg_get_keywords() WHERE catcode <> 'U'")
        assert {r["word"] for r in keywords} == _KEYWORDS
        names = ["_ivoryrepl", "Repl", "user", 'a"b', "1a", "a$b", "été", "abs", "select", "x y"]
        for name in names:
            assert quote_ident(name) == await conn.fetchval("SELECT quote_ident($1)", name)
            assert quote_literal(name) == await conn.fetchval("SELECT quote_literal($1)", name)
        backslash = "a\\b"
        assert await conn.fetchval(f"SELECT {quote_literal(backslash)}") == backslash
    finally:
        await conn.close()


@pytest.mark.world
async def test_freeze_switch_and_thaw(server: object) -> None:
    admin = await connect(server)
    client = await connect(server)
    fresh: list[asyncpg.Connection] = []
    try:
        await admin.execute("CREATE TABLE IF NOT EXISTS rows_t (id int)")
        await admin.execute("INSERT INTO rows_t VALUES (1)")
        client_pid = await client.fetchval("SELECT pg_backend_pid()")

        # As one string the statements form a transaction block, which ALTER SYSTEM refuses.
        with pytest.raises(asyncpg.ActiveSQLTransactionError):
            await admin.execute(freeze_sql(False, ()))

        await admin.execute("DROP ROLE IF EXISTS app_t")
        await admin.execute("CREATE ROLE app_t LOGIN PASSWORD 'app_t'")
        roles = [r["rolname"] for r in await admin.fetch(blockable_roles_sql())]
        assert "app_t" in roles
        ended = []
        for statement in freeze_statements(True, roles):
            rows = await admin.fetch(statement)
            if statement.startswith("SELECT pid"):
                ended += rows
        assert client_pid in [r["pid"] for r in ended]
        assert all(r["terminated"] for r in ended)
        # A blocked role cannot start a session: the freeze holds against a careless client.
        with pytest.raises(asyncpg.TooManyConnectionsError):
            await asyncpg.connect(_as_user(server, "app_t"), timeout=10)
        assert await admin.fetchval("SELECT 1") == 1  # the executor's own session lives on

        frozen = await connect(server)
        fresh.append(frozen)
        assert await frozen.fetchval("SHOW default_transaction_read_only") == "on"
        with pytest.raises(asyncpg.ReadOnlySQLTransactionError) as err:
            await frozen.execute("INSERT INTO rows_t VALUES (2)")
        assert err.value.sqlstate == "25006"

        # The final switch works from a read-only session.
        await frozen.execute(switch_statements()[0])
        row = await frozen.fetchrow(switch_statements()[1])
        assert row is not None
        assert "/" in row[SWITCH_LSN_COLUMN]
        assert len(row[SWITCH_WALFILE_COLUMN]) == 24

        # So does the thaw.
        for statement in thaw_statements():
            await frozen.execute(statement)
        thawed = await connect(server)
        fresh.append(thawed)
        assert await thawed.fetchval("SHOW default_transaction_read_only") == "off"
        await thawed.execute("INSERT INTO rows_t VALUES (3)")
        assert await thawed.fetchval("SELECT count(*) FROM rows_t") == 2
    finally:
        for conn in (admin, client, *fresh):
            with contextlib.suppress(Exception):
                await conn.close(timeout=5)


@pytest.mark.world
async def test_the_horizon_moves_only_when_a_transaction_writes(server: object) -> None:
    admin = await connect(server)
    writer = await connect(server)
    try:
        await admin.execute("CREATE TABLE IF NOT EXISTS horizon_t (id int)")
        before = await admin.fetchrow(horizon_sql())
        for statement in switch_statements():
            await admin.fetchrow(statement)
        await admin.execute("SELECT count(*) FROM horizon_t")  # a read-only transaction
        quiet = await admin.fetchrow(horizon_sql())
        assert quiet[HORIZON_COLUMN] == before[HORIZON_COLUMN]
        assert quiet[IN_PROGRESS_COLUMN] == 0

        transaction = writer.transaction()
        await transaction.start()
        await writer.execute("INSERT INTO horizon_t VALUES (1)")
        open_ = await admin.fetchrow(horizon_sql())
        assert open_[IN_PROGRESS_COLUMN] == 1  # newer than every finished xid, yet counted
        assert open_[HORIZON_COLUMN] == before[HORIZON_COLUMN]
        await transaction.commit()
        after = await admin.fetchrow(horizon_sql())
        assert int(after[HORIZON_COLUMN]) == int(before[HORIZON_COLUMN]) + 1
        assert after[IN_PROGRESS_COLUMN] == 0
    finally:
        await admin.close()
        await writer.close()
