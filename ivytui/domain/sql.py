"""The SQL ivytui shows before it runs it: step 6's grants and their check, step 3's freeze,
final WAL switch and thaw.

Only text is made here; the executor runs it. Every identifier goes through
:func:`quote_ident` and every string through :func:`quote_literal`, so a role name from the
configuration cannot change what a statement does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from ivytui.domain.flavor import GRANTED_FUNCTIONS, Flavor
from ivytui.errors import IvyError

NAMEDATALEN = 64
"""PostgreSQL cuts identifiers to ``NAMEDATALEN - 1`` bytes."""

# SELECT word FROM pg_get_keywords() WHERE catcode <> 'U' (PostgreSQL 15): the keywords that
# cannot stand unquoted as a role name, which quote_ident() therefore quotes.
_KEYWORDS = frozenset(
    """
    all analyse analyze and any array as asc asymmetric authorization between bigint binary bit
    boolean both case cast char character check coalesce collate collation column concurrently
    constraint create cross current_catalog current_date current_role current_schema
    current_time current_timestamp current_user dec decimal default deferrable desc distinct do
    else end except exists extract false fetch float for foreign freeze from full grant
    greatest group grouping having ilike in initially inner inout int integer intersect
    interval into is isnull join lateral leading least left like limit localtime
    localtimestamp national natural nchar none normalize not notnull null nullif numeric offset
    on only or order out outer overlaps overlay placing position precision primary real
    references returning right row select session_user setof similar smallint some substring
    symmetric table tablesample then time timestamp to trailing treat trim true union unique
    user using values varchar variadic verbose when where window with xmlattributes xmlconcat
    xmlelement xmlexists xmlforest xmlnamespaces xmlparse xmlpi xmlroot xmlserialize xmltable
    """.split()
)
_PLAIN_IDENT = re.compile(r"[a-z_][a-z0-9_]*")
_SIGNATURE = re.compile(r"(?:\w+\.)?(\w+)\(([^)]*)\)")


class SqlError(IvyError):
    """A name that cannot be written into the SQL safely."""

    title = "sql"


def quote_ident(name: str) -> str:
    """``name`` as an SQL identifier, quoted only when needed (as PostgreSQL's
    ``quote_ident()``): ``_ivoryrepl`` stays as it is, ``Repl`` becomes ``"Repl"``, ``user``
    becomes ``"user"``, and a ``"`` inside is doubled."""
    if not name:
        raise SqlError("an SQL identifier cannot be empty")
    if "\x00" in name:
        raise SqlError(f"the SQL identifier {name!r} holds a NUL character")
    if _PLAIN_IDENT.fullmatch(name) and name not in _KEYWORDS:
        return name
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    """``value`` as an SQL string literal (as PostgreSQL's ``quote_literal()``): quotes are
    doubled, and a value with a backslash is written ``E'…'`` with the backslashes doubled."""
    if "\x00" in value:
        raise SqlError(f"the SQL string {value!r} holds a NUL character")
    body = value.replace("'", "''")
    if "\\" in value:
        return "E'" + body.replace("\\", "\\\\") + "'"
    return f"'{body}'"


def _role(flavor: Flavor) -> str:
    role = flavor.replication_role
    if not role:
        raise SqlError(f"the {flavor.title} flavor names no replication role")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in role):
        raise SqlError(f"the replication role name {role!r} holds a control character")
    if len(role.encode()) >= NAMEDATALEN:
        raise SqlError(
            f"the replication role name {role!r} is longer than {NAMEDATALEN - 1} bytes: "
            "PostgreSQL would cut it short"
        )
    return role


def _dollar_quote(body: str) -> str:
    tag = "$$"
    counter = 0
    while tag in body:
        counter += 1
        tag = f"$ivytui{counter}$"
    return f"{tag}\n{body}{tag}"


# --------------------------------------------------------------------------------------------
# Step 6: the replication role and its grants


def grants_statements(flavor: Flavor) -> tuple[str, ...]:
    """Step 6 as separate statements, to run in this order inside ONE transaction (``BEGIN``
    and ``COMMIT`` are the executor's) as a superuser on v5.

    The first creates the flavor's replication role ``WITH LOGIN REPLICATION`` only if no role
    of that name exists; the others grant ``EXECUTE`` on the four functions pg_rewind needs.
    Running them again changes nothing.
    """
    role = _role(flavor)
    ident = quote_ident(role)
    create = _dollar_quote(
        "BEGIN\n"
        f"  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {quote_literal(role)}) THEN\n"
        f"    CREATE ROLE {ident} WITH LOGIN REPLICATION;\n"
        "  END IF;\n"
        "END\n"
    )
    grants = tuple(
        f"GRANT EXECUTE ON FUNCTION {function} TO {ident};" for function in GRANTED_FUNCTIONS
    )
    return (f"DO {create};", *grants)


def grants_sql(flavor: Flavor) -> str:
    """:func:`grants_statements` as one reviewable text, with a comment before each part.

    It does not begin or commit a transaction: the executor wraps it in one.
    """
    role = quote_ident(_role(flavor))
    create, *grants = grants_statements(flavor)
    return (
        f"-- the replication role of {flavor.title}, created only if it is missing\n"
        f"{create}\n"
        "\n"
        f"-- the functions {role} runs when rewinding a former primary (pg_rewind)\n"
        + "".join(f"{grant}\n" for grant in grants)
    )


def _column(signature: str) -> str:
    """``pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean)`` →
    ``pg_read_binary_file_text_bigint_bigint_boolean``."""
    match = _SIGNATURE.fullmatch(signature.strip())
    if match is None:
        raise SqlError(f"{signature!r} is not a function signature")
    args = [arg.strip().replace(" ", "_") for arg in match.group(2).split(",") if arg.strip()]
    return "_".join([match.group(1), *args])


ROLE_EXISTS_COLUMN = "role_exists"
GRANT_COLUMNS: tuple[tuple[str, str], ...] = tuple(
    (_column(signature), signature) for signature in GRANTED_FUNCTIONS
)
"""The columns of :func:`verify_grants_sql` after ``role_exists``: (column, function)."""


def verify_grants_sql(flavor: Flavor) -> str:
    """One row: ``role_exists``, then one boolean per function of :data:`GRANT_COLUMNS` —
    whether the replication role may execute it (``has_function_privilege``).

    When the role does not exist every column is false: ``has_function_privilege`` is only
    asked about a role that exists (it raises an error for an unknown name).
    """
    role = quote_literal(_role(flavor))
    checks = "".join(
        f",\n  CASE WHEN r.oid IS NULL THEN false"
        f" ELSE has_function_privilege(r.oid, {quote_literal(signature)}, 'EXECUTE')"
        f" END AS {quote_ident(column)}"
        for column, signature in GRANT_COLUMNS
    )
    return (
        f"SELECT\n  r.oid IS NOT NULL AS {ROLE_EXISTS_COLUMN}{checks}\n"
        f"FROM (SELECT) AS one\n"
        f"LEFT JOIN pg_roles AS r ON r.rolname = {role};"
    )


def grant_problems(flavor: Flavor, row: Mapping[str, object]) -> tuple[str, ...]:
    """What the row of :func:`verify_grants_sql` says is missing, in words; empty when the
    role exists and holds all four grants."""
    role = flavor.replication_role
    if row.get(ROLE_EXISTS_COLUMN) is not True:
        return (f"the replication role {role} does not exist",)
    return tuple(
        f"{role} may not execute {signature}"
        for column, signature in GRANT_COLUMNS
        if row.get(column) is not True
    )


# --------------------------------------------------------------------------------------------
# Step 3: freeze, final WAL switch, thaw


SPARED_APPLICATIONS: tuple[str, ...] = ("ivytui-monitor", "ivytui-driver")
"""The sessions a freeze never ends: ivytui's own (the read-only monitors and the driver)."""


def blockable_roles_sql(spare_roles: Sequence[str] = ()) -> str:
    """The login roles a freeze blocks, with their connection limit now: every role that may
    log in and is not a superuser (a connection limit does not hold a superuser back), except
    the session's own role, PostgreSQL's ``pg_*`` roles and ``spare_roles``."""
    spared = ""
    if spare_roles:
        spared = " AND rolname NOT IN (" + ", ".join(quote_literal(r) for r in spare_roles) + ")"
    return (
        "SELECT rolname, rolconnlimit FROM pg_roles\n"
        "WHERE rolcanlogin AND NOT rolsuper AND rolname <> current_user\n"
        f"  AND rolname !~ '^pg_'{spared}\n"
        "ORDER BY rolname;"
    )


def block_role_statement(role: str) -> str:
    """No new session of ``role`` can start (its open sessions are ended separately)."""
    return f"ALTER ROLE {quote_ident(role)} CONNECTION LIMIT 0;"


def restore_role_statement(role: str, limit: int) -> str:
    """``role``'s connection limit as it was before the freeze (-1: no limit)."""
    return f"ALTER ROLE {quote_ident(role)} CONNECTION LIMIT {int(limit)};"


def terminate_sessions_sql(
    roles: Sequence[str] | None, *, spare_applications: Sequence[str] = SPARED_APPLICATIONS
) -> str:
    """End client sessions, one row per session: those of ``roles`` (``None``: every client
    session but this one), except ``spare_applications``."""
    who = ""
    if roles is not None:
        names = ", ".join(quote_literal(r) for r in roles) or "NULL"
        who = f"\n  AND usename IN ({names})"
    spared = ""
    if spare_applications:
        names = ", ".join(quote_literal(name) for name in spare_applications)
        spared = f"\n  AND application_name NOT IN ({names})"
    return (
        "SELECT pid, usename, application_name, pg_terminate_backend(pid) AS terminated\n"
        "FROM pg_stat_activity\n"
        "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
        f" AND datname IS NOT NULL{who}{spared};"
    )


def freeze_statements(
    terminate_sessions: bool,
    roles: Sequence[str],
    *,
    spare_applications: Sequence[str] = SPARED_APPLICATIONS,
) -> tuple[str, ...]:
    """Step 3's freeze of v4, one statement each, in the order they run (see
    :func:`freeze_sql`). The same call makes the preview and the run."""
    statements = [block_role_statement(role) for role in roles]
    if roles:
        statements.append(terminate_sessions_sql(roles, spare_applications=spare_applications))
    if terminate_sessions:
        statements.append(terminate_sessions_sql(None, spare_applications=spare_applications))
    # Last, as it makes this session read-only too (ALTER ROLE would then be refused).
    statements += [
        "ALTER SYSTEM SET default_transaction_read_only = on;",
        "SELECT pg_reload_conf();",
    ]
    return tuple(statements)


def freeze_sql(
    terminate_sessions: bool,
    roles: Sequence[str],
    *,
    spare_applications: Sequence[str] = SPARED_APPLICATIONS,
) -> str:
    """Make v4 refuse writes, and keep it so.

    ``default_transaction_read_only`` is only a default: a client may ``SET`` it off in its own
    session or ask for ``BEGIN READ WRITE``. So every login role that is not a superuser (and
    not ivytui's own) gets ``CONNECTION LIMIT 0`` — no new session of theirs can start — and
    their open sessions are ended; with ``terminate_sessions`` every other client session is
    ended too (superusers' included; ``spare_applications`` — ivytui's own — are left alone).

    ``ALTER SYSTEM`` cannot run inside a transaction block — nor in a string of several
    statements sent at once, which PostgreSQL also runs as one block — so the executor sends
    the statements of :func:`freeze_statements` one by one, outside any transaction.
    """
    return "\n".join(
        freeze_statements(terminate_sessions, roles, spare_applications=spare_applications)
    )


def thaw_statements(frozen_roles: Sequence[tuple[str, int]] = ()) -> tuple[str, ...]:
    """Undo the freeze, one statement each (see :func:`thaw_sql`): the setting reset and each
    blocked role's connection limit put back as it was."""
    return (
        "ALTER SYSTEM RESET default_transaction_read_only;",
        "SELECT pg_reload_conf();",
        *(restore_role_statement(role, limit) for role, limit in frozen_roles),
    )


def thaw_sql(frozen_roles: Sequence[tuple[str, int]] = ()) -> str:
    """Let v4 take writes again (before step 4 only).

    ``ALTER SYSTEM`` cannot run inside a transaction block: the executor sends the statements
    of :func:`thaw_statements` one by one. They work from a session that the freeze made
    read-only.
    """
    return "\n".join(thaw_statements(frozen_roles))


HORIZON_COLUMN = "xid_horizon"
IN_PROGRESS_COLUMN = "xids_in_progress"


def xids_in_progress_sql(snapshot: str) -> str:
    """How many transaction ids are assigned and not finished, given a ``txid_snapshot``
    expression. The snapshot's xip list holds only the xids below its xmax (one past the newest
    *finished* one), so a writing transaction newer than every finished one is not in it;
    ``pg_stat_activity.backend_xid`` (every session's, to a superuser or ``pg_monitor``) and
    ``pg_prepared_xacts`` name those. The xip entries are 64-bit (epoch and xid), the others
    32-bit: compared on the low 32 bits."""
    return (
        "(SELECT count(*) FROM (\n"
        f"    SELECT (i % 4294967296)::text FROM txid_snapshot_xip({snapshot}) AS i\n"
        "    UNION SELECT backend_xid::text FROM pg_stat_activity WHERE backend_xid IS NOT NULL\n"
        "    UNION SELECT transaction::text FROM pg_prepared_xacts) AS u)::int"
    )


def horizon_sql() -> str:
    """One row: v4's transaction id horizon (one past the newest finished xid), how many xids
    are in progress, and the current LSN. The horizon moves only when a transaction that wrote
    ends: background WAL (running-xacts, checkpoints) leaves it where it is."""
    return (
        f"SELECT txid_snapshot_xmax(s)::text AS {HORIZON_COLUMN},\n"
        f"  {xids_in_progress_sql('s')} AS {IN_PROGRESS_COLUMN},\n"
        "  pg_current_wal_lsn()::text AS lsn\n"
        "FROM txid_current_snapshot() AS s;"
    )


SWITCH_LSN_COLUMN = "switch_lsn"
SWITCH_WALFILE_COLUMN = "walfile"


def switch_statements() -> tuple[str, ...]:
    """The final WAL switch, one statement each (see :func:`switch_sql`)."""
    return (
        "CHECKPOINT;",
        f"SELECT s.lsn::text AS {SWITCH_LSN_COLUMN}, pg_walfile_name(s.lsn) AS "
        f"{SWITCH_WALFILE_COLUMN},\n"
        f"  txid_snapshot_xmax(x)::text AS {HORIZON_COLUMN},\n"
        f"  {xids_in_progress_sql('x')} AS {IN_PROGRESS_COLUMN}\n"
        "FROM pg_switch_wal() AS s(lsn), txid_current_snapshot() AS x;",
    )


def switch_sql() -> str:
    """``CHECKPOINT``, then close the current WAL segment so that v4 archives it.

    The second statement returns one row: ``switch_lsn`` (the end of the switch, as text) and
    ``walfile``, the segment it closed — the one the repo must hold before promotion — and the
    transaction id horizon of the statement's snapshot (taken before the switch, so any commit
    after the switch moves the live horizon past it) with the xids then in progress. Both run
    in a read-only session; ``CHECKPOINT`` needs a superuser (or ``pg_checkpoint`` on
    PostgreSQL 15 and later). Send them one by one.
    """
    return "\n".join(switch_statements())
