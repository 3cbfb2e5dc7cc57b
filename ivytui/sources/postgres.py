"""PostgreSQL: one read-only asyncpg connection per server, one query per poll.

Where each database is reached:

- **explicit** — ``v4.database`` / ``v5.database`` in the config (a DSN, or host, port, user,
  password, dbname; empty fields are filled from the discovery below when it can be read);
- **v4, discovered** — the address is the v4 primary's Service ``<cluster>`` (its
  ``spec.clusterIP`` and the port named ``postgres``, else its first port, else the Pgcluster's
  ``spec.port``); the credentials come from the Secret ``<cluster>-postgres-secret``
  (``username``, ``password``); the database is ``postgres``;
- **v5, discovered** — the Secret ``<v5>-pguser-postgres`` (``host``, ``port``, ``user``,
  ``password``, ``dbname``), with the Service ``<v5>-primary`` for the address when the Secret
  has none.

- **a monitor role** — ``secret`` in a database target names a Secret holding the password of the
  role to connect as (``password``; ``username`` unless the target gives ``user``), e.g. a role
  with nothing but ``pg_monitor``. The superuser's Secret is then not read at all: v4's address
  comes from its Service ``<cluster>``, v5's from the Service ``<v5>-primary`` (its DNS name
  ``<v5>-primary.<namespace>.svc`` when it is headless), unless the target gives ``host``.

On a real cluster Service addresses are seldom reachable from a laptop or a bastion: there, give
the address (a ``kubectl port-forward`` target, or a DSN) in the config file.

What a ``pg_monitor`` role may read on PostgreSQL 15 (checked against a real server): everything
both queries below ask — ``pg_control_system()``, ``pg_control_checkpoint()``,
``pg_current_wal_lsn()``, ``pg_walfile_name()``, ``pg_stat_archiver``, ``pg_stat_wal``,
``pg_settings`` (``reset_val`` included), ``txid_current_snapshot()``, ``pg_roles``,
``pg_prepared_xacts``, the replay functions, and every session's row of ``pg_stat_activity``
(through ``pg_read_all_stats``). It may not ``CHECKPOINT``, call ``pg_switch_wal()``, create
anything in schema ``public`` or write any table: a monitor cannot drive the move.

Monitor sessions are read-only: right after connecting, the session runs
``SET default_transaction_read_only = on``. It is a session ``SET`` rather than a start-up
parameter so that ``pg_settings.reset_val`` still shows the value the server is configured with
(what step 3's freeze changes), not the session's own.

A database that cannot be reached (connection refused, no answer, starting up or shutting down)
is a fact, reported as ``reachable=False`` with the reason; anything else that fails (the
credentials are refused, a permission is missing, a Secret cannot be read) is a failure of the
source, raised as :class:`PostgresError` so that the hub keeps the last values, marked stale.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from ivytui.config import Config, DatabaseTarget
from ivytui.domain.flavor import GRANTED_FUNCTIONS, Flavor
from ivytui.domain.lsn import Lsn, LsnError
from ivytui.domain.model import ArchiverStats, V4Database, V5Database
from ivytui.domain.sql import xids_in_progress_sql
from ivytui.errors import IvyError, PostgresError

if TYPE_CHECKING:
    import asyncpg

APPLICATION_NAME = "ivytui-monitor"
CONNECT_TIMEOUT = 3.0
STATEMENT_TIMEOUT_MS = 3000
BACKOFF_START = 0.5
BACKOFF_MAX = 10.0

V4_QUERY = f"""
SELECT
  r.in_recovery,
  CASE WHEN r.in_recovery THEN NULL ELSE pg_current_wal_lsn()::text END AS current_lsn,
  CASE WHEN r.in_recovery THEN NULL ELSE pg_walfile_name(pg_current_wal_lsn()) END AS walfile,
  CASE WHEN r.in_recovery
       THEN (SELECT timeline_id FROM pg_control_checkpoint()) END AS recovery_timeline,
  (SELECT system_identifier FROM pg_control_system())::text AS system_id,
  current_setting('server_version_num')::int AS version_num,
  (SELECT setting::bigint * CASE unit WHEN '8kB' THEN 8192 WHEN 'kB' THEN 1024
                                      WHEN 'MB' THEN 1048576 ELSE 1 END
     FROM pg_settings WHERE name = 'wal_segment_size') AS segment_size,
  a.archived_count, a.last_archived_wal,
  extract(epoch FROM a.last_archived_time)::float8 AS last_archived_time,
  a.failed_count, a.last_failed_wal,
  extract(epoch FROM a.last_failed_time)::float8 AS last_failed_time,
  (SELECT count(*) FROM pg_stat_activity
    WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
      AND application_name IS DISTINCT FROM '{APPLICATION_NAME}')::int AS client_sessions,
  (SELECT reset_val FROM pg_settings
    WHERE name = 'default_transaction_read_only') AS configured_read_only,
  {{wal_bytes}} AS wal_bytes,
  txid_snapshot_xmax(x.snap) AS xid_horizon,
  {xids_in_progress_sql("x.snap")} AS xids_in_progress,
  ARRAY(SELECT rolname::text FROM pg_roles
         WHERE rolcanlogin AND rolconnlimit = 0 ORDER BY 1) AS blocked_roles
FROM (SELECT pg_is_in_recovery() AS in_recovery) AS r, pg_stat_archiver AS a,
     (SELECT txid_current_snapshot() AS snap) AS x
"""
# pg_stat_wal exists from PostgreSQL 14 on.
V4_QUERY_14 = V4_QUERY.replace("{wal_bytes}", "(SELECT wal_bytes FROM pg_stat_wal)::bigint")
V4_QUERY = V4_QUERY.replace("{wal_bytes}", "NULL::bigint")

V5_QUERY = """
SELECT
  r.in_recovery,
  pg_last_wal_replay_lsn()::text AS replay_lsn,
  pg_last_wal_receive_lsn()::text AS receive_lsn,
  CASE WHEN r.in_recovery THEN NULL ELSE pg_current_wal_lsn()::text END AS current_lsn,
  extract(epoch FROM pg_last_xact_replay_timestamp())::float8 AS last_replay_time,
  CASE WHEN r.in_recovery THEN (SELECT timeline_id FROM pg_control_checkpoint())
       ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int
  END AS timeline,
  (SELECT system_identifier FROM pg_control_system())::text AS system_id,
  current_setting('server_version_num')::int AS version_num,
  (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS is_superuser,
  COALESCE((SELECT bool_and(has_function_privilege(g.oid, f, 'EXECUTE'))
              FROM pg_roles AS g, unnest($2::text[]) AS f
             WHERE g.rolname = $1), false) AS grants_verified
FROM (SELECT pg_is_in_recovery() AS in_recovery) AS r
"""


@dataclass(frozen=True, slots=True)
class ConnectTarget:
    """Where and as whom to connect; ``origin`` says where it was learned."""

    host: str = ""
    port: int = 5432
    user: str = ""
    password: str = field(default="", repr=False)
    database: str = "postgres"
    dsn: str = field(default="", repr=False)
    origin: str = ""

    @property
    def where(self) -> str:
        if self.dsn:
            parts = urlsplit(self.dsn)
            if parts.hostname:
                return f"{parts.hostname}:{parts.port or 5432}"
            return "the DSN's server"
        return f"{self.host}:{self.port}"


class NotThere(IvyError):
    """The database has no address any more (its Service or Secret is gone): unreachable."""

    title = "postgresql"


Locate = Callable[[], Awaitable[ConnectTarget]]


def target_from_config(db: DatabaseTarget, fallback: ConnectTarget | None = None) -> ConnectTarget:
    """An explicit target, completed from ``fallback`` (the discovered one) where empty."""
    base = fallback or ConnectTarget()
    if db.dsn:
        return ConnectTarget(dsn=db.dsn, origin="the config's DSN")
    return ConnectTarget(
        host=db.host or base.host,
        port=db.port or base.port,
        user=db.user or base.user,
        password=db.password or base.password,
        database=db.dbname or base.database or "postgres",
        origin="the config",
    )


def _reachability_words(exc: BaseException, where: str) -> str | None:
    """Why the server could not be reached, or ``None`` when the failure is something else."""
    import asyncpg

    if isinstance(exc, ConnectionRefusedError):
        return f"connection refused at {where}"
    if isinstance(exc, TimeoutError):
        return f"no answer from {where} within {CONNECT_TIMEOUT:g} s"
    if isinstance(exc, socket.gaierror):
        return f"the name in {where} does not resolve ({exc.strerror})"
    if isinstance(exc, asyncpg.CannotConnectNowError):
        return f"{where} does not accept connections now: {exc}"
    if isinstance(exc, (ConnectionResetError, asyncpg.ConnectionDoesNotExistError)):
        return f"the connection to {where} was closed"
    if isinstance(exc, OSError):
        reason = exc.strerror or str(exc)
        if "Connect call failed" in str(exc) or exc.errno is not None:
            return f"{reason.lower()} at {where}"
        return f"{reason} at {where}"
    if isinstance(exc, asyncpg.exceptions.AdminShutdownError):
        return f"{where} is shutting down"
    if isinstance(exc, asyncpg.exceptions.CrashShutdownError):
        return f"{where} crashed"
    return None


class PgSource:
    """Polls one PostgreSQL server: v4's primary (``role="v4"``) or v5's leader (``"v5"``)."""

    def __init__(
        self,
        role: Literal["v4", "v5"],
        config: Config,
        flavor: Flavor,
        locate: Locate,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.role = role
        self.config = config
        self.flavor = flavor
        self.locate = locate
        self.clock = clock
        self.target: ConnectTarget | None = None
        self._conn: asyncpg.Connection | None = None
        self._backoff = BACKOFF_START
        self._next_attempt = 0.0
        self._last_unreachable: V4Database | V5Database | None = None
        self.last_poll_seconds: float | None = None

    @property
    def where(self) -> str:
        return self.target.where if self.target is not None else "(not located yet)"

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 1.0)
            if not conn.is_closed():
                conn.terminate()

    def _unreachable(self, reason: str) -> V4Database | V5Database:
        now = self.clock()
        state: V4Database | V5Database
        if self.role == "v4":
            state = V4Database(observed_at=now, reachable=False, unreachable_reason=reason)
        else:
            state = V5Database(observed_at=now, reachable=False, unreachable_reason=reason)
        self._last_unreachable = state
        self._next_attempt = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, BACKOFF_MAX)
        return state

    async def _connect(self) -> asyncpg.Connection:
        import asyncpg

        try:
            target = await self.locate()
        except NotThere:
            if self.target is None:
                raise
            target = self.target
        self.target = target
        settings = {
            "application_name": APPLICATION_NAME,
            "statement_timeout": str(STATEMENT_TIMEOUT_MS),
        }
        kwargs: dict[str, Any] = {
            "timeout": CONNECT_TIMEOUT,
            "command_timeout": STATEMENT_TIMEOUT_MS / 1000 + 1,
            "server_settings": settings,
            "statement_cache_size": 4,
        }
        if target.dsn:
            conn = await asyncpg.connect(target.dsn, **kwargs)
        else:
            conn = await asyncpg.connect(
                host=target.host,
                port=target.port,
                user=target.user or None,
                password=target.password or None,
                database=target.database or "postgres",
                **kwargs,
            )
        try:
            await conn.execute("SET default_transaction_read_only = on")
        except BaseException:
            conn.terminate()
            raise
        return conn

    async def poll(self) -> V4Database | V5Database:
        """One observation; raises :class:`PostgresError` when the source itself fails."""
        import asyncpg

        started = time.perf_counter()
        try:
            if self._conn is None or self._conn.is_closed():
                self._conn = None
                if self._last_unreachable is not None and time.monotonic() < self._next_attempt:
                    return self._last_unreachable
                try:
                    self._conn = await self._connect()
                except NotThere as exc:
                    return self._unreachable(str(exc))
                except IvyError as exc:
                    raise PostgresError(str(exc)) from None
                except (
                    OSError,
                    TimeoutError,
                    asyncpg.PostgresError,
                    asyncpg.InterfaceError,
                ) as exc:
                    words = _reachability_words(exc, self.where)
                    if words is not None:
                        return self._unreachable(words)
                    raise PostgresError(
                        f"cannot connect to {self.role}'s database at {self.where}: {exc}"
                    ) from None
            self._backoff = BACKOFF_START
            self._last_unreachable = None
            conn = self._conn
            try:
                if self.role == "v4":
                    newer = conn.get_server_version().major >= 14
                    row = await conn.fetchrow(V4_QUERY_14 if newer else V4_QUERY)
                else:
                    row = await conn.fetchrow(
                        V5_QUERY, self.flavor.replication_role, list(GRANTED_FUNCTIONS)
                    )
            except (
                OSError,
                TimeoutError,
                asyncpg.PostgresError,
                asyncpg.InterfaceError,
                asyncpg.exceptions.InternalClientError,
            ) as exc:
                await self.close()
                words = _reachability_words(exc, self.where)
                if words is not None:
                    return self._unreachable(words)
                raise PostgresError(
                    f"the query on {self.role}'s database at {self.where} failed: {exc}"
                ) from None
            except BaseException:
                # Cancelled mid-query (the hub's time-out) or worse: the connection's protocol
                # state is unknown, so it is never used again; the next poll connects anew.
                conn.terminate()
                self._conn = None
                raise
            if row is None:
                raise PostgresError(f"the query on {self.role}'s database returned no row")
            now = self.clock()
            return self._v4(row, now) if self.role == "v4" else self._v5(row, now)
        finally:
            self.last_poll_seconds = time.perf_counter() - started

    @staticmethod
    def _lsn(value: Any) -> Lsn | None:
        if value is None:
            return None
        try:
            return Lsn.parse(str(value))
        except LsnError:
            return None

    def _v4(self, row: Any, now: float) -> V4Database:
        walfile = row["walfile"]
        timeline = int(walfile[:8], 16) if walfile else row["recovery_timeline"]
        configured = row["configured_read_only"]
        return V4Database(
            observed_at=now,
            reachable=True,
            in_recovery=bool(row["in_recovery"]),
            current_lsn=self._lsn(row["current_lsn"]),
            walfile=walfile,
            timeline=int(timeline) if timeline is not None else None,
            system_id=int(row["system_id"]) if row["system_id"] is not None else None,
            pg_version_num=row["version_num"],
            segment_size=int(row["segment_size"]) if row["segment_size"] else None,
            archiver=ArchiverStats(
                archived_count=int(row["archived_count"] or 0),
                last_archived_wal=row["last_archived_wal"],
                last_archived_time=row["last_archived_time"],
                failed_count=int(row["failed_count"] or 0),
                last_failed_wal=row["last_failed_wal"],
                last_failed_time=row["last_failed_time"],
            ),
            client_sessions=row["client_sessions"],
            read_only=None if configured is None else configured == "on",
            wal_bytes=int(row["wal_bytes"]) if row["wal_bytes"] is not None else None,
            xid_horizon=int(row["xid_horizon"]) if row["xid_horizon"] is not None else None,
            xids_in_progress=row["xids_in_progress"],
            blocked_roles=tuple(sorted(row["blocked_roles"] or ())),
        )

    def _v5(self, row: Any, now: float) -> V5Database:
        return V5Database(
            observed_at=now,
            reachable=True,
            in_recovery=bool(row["in_recovery"]),
            replay_lsn=self._lsn(row["replay_lsn"]),
            receive_lsn=self._lsn(row["receive_lsn"]),
            current_lsn=self._lsn(row["current_lsn"]),
            last_replay_time=row["last_replay_time"],
            timeline=row["timeline"],
            system_id=int(row["system_id"]) if row["system_id"] is not None else None,
            pg_version_num=row["version_num"],
            is_superuser=row["is_superuser"],
            grants_verified=bool(row["grants_verified"]),
        )


# --------------------------------------------------------------------------------------------
# Discovery through the Kubernetes source


def _service_address(
    service: dict[str, Any], fallback_port: int | None, *, headless_dns: str = ""
) -> tuple[str, int]:
    spec = service.get("spec") or {}
    host = str(spec.get("clusterIP") or "")
    if not host or host == "None":
        if not headless_dns:
            raise NotThere(f"Service {service.get('metadata', {}).get('name')} has no cluster IP")
        host = headless_dns
    ports = spec.get("ports") or []
    port: int | None = None
    for item in ports:
        if item.get("name") == "postgres":
            port = int(item.get("port"))
            break
    if port is None and ports:
        port = int(ports[0].get("port"))
    if port is None:
        port = fallback_port or 5432
    return host, port


async def _role_secret(kube: Any, db: DatabaseTarget, found: ConnectTarget) -> ConnectTarget:
    """``found``'s address with the role and password of the Secret ``db.secret``."""
    from ivytui.sources.kube import ObjectMissing

    try:
        secret = await kube.read_secret(db.secret)
    except ObjectMissing as exc:
        # The config names it: a Secret that is not there is a mistake to fix, not a fact.
        raise PostgresError(f"{exc} (named by the config's database secret)") from None
    password = secret.get("password", "")
    user = db.user or secret.get("username", "")
    if not password:
        raise PostgresError(f"Secret {db.secret} has no key password")
    if not user:
        raise PostgresError(f"Secret {db.secret} has no key username: give the user in the config")
    origin = f"{found.origin}, Secret {db.secret}" if found.origin else f"Secret {db.secret}"
    return ConnectTarget(
        host=db.host or found.host,
        port=db.port or found.port,
        user=user,
        password=password,
        database=db.dbname or found.database or "postgres",
        origin=origin,
    )


def v4_locator(config: Config, kube: Any, spec_port: Callable[[], int | None]) -> Locate:
    """Where v4's primary is: the config, else Service ``<c>`` and Secret ``<c>-postgres-secret``
    (or the config's ``secret``)."""
    from ivytui.sources.kube import ObjectMissing

    db = config.v4_database

    async def locate() -> ConnectTarget:
        if db.dsn or (db.host and db.user and db.password):
            return target_from_config(db)
        if kube is None:
            if db.secret:
                raise PostgresError(
                    f"v4's password is in Secret {db.secret}, but Kubernetes is off"
                )
            if db.explicit:
                return target_from_config(db)
            raise PostgresError("v4's database address is not configured and Kubernetes is off")
        found = ConnectTarget(origin="discovered")
        try:
            if not db.host:
                service = await kube.read_service(config.cluster)
                host, port = _service_address(service, spec_port())
                found = ConnectTarget(host=host, port=port, origin=f"Service {config.cluster}")
            else:
                found = ConnectTarget(origin="the config")
            if db.secret:
                return await _role_secret(kube, db, found)
            if not (db.user and db.password):
                secret_name = f"{config.cluster}-postgres-secret"
                secret = await kube.read_secret(secret_name)
                found = ConnectTarget(
                    host=found.host,
                    port=found.port,
                    user=secret.get("username", "postgres"),
                    password=secret.get("password", ""),
                    origin=f"{found.origin}, Secret {secret_name}",
                )
        except ObjectMissing as exc:
            raise NotThere(str(exc)) from None
        return target_from_config(db, found) if db.explicit or db.user else found

    return locate


def v5_locator(config: Config, kube: Any) -> Locate:
    """Where v5's leader is: the config, else Secret ``<v5>-pguser-postgres`` (and Service
    ``<v5>-primary`` when the Secret has no host); with the config's ``secret``, Service
    ``<v5>-primary`` and that Secret only."""
    from ivytui.sources.kube import ObjectMissing

    db = config.v5_database
    name = config.standby_name

    async def locate() -> ConnectTarget:
        if db.dsn or (db.host and db.user and db.password):
            return target_from_config(db)
        if kube is None:
            if db.secret:
                raise PostgresError(
                    f"v5's password is in Secret {db.secret}, but Kubernetes is off"
                )
            if db.explicit:
                return target_from_config(db)
            raise PostgresError("v5's database address is not configured and Kubernetes is off")
        if db.secret:
            found = ConnectTarget(origin="the config")
            if not db.host:
                service_name = f"{name}-primary"
                namespace = getattr(kube, "namespace", "") or config.namespace
                try:
                    service = await kube.read_service(service_name)
                except ObjectMissing as exc:
                    raise NotThere(str(exc)) from None
                host, port = _service_address(
                    service, None, headless_dns=f"{service_name}.{namespace}.svc"
                )
                found = ConnectTarget(host=host, port=port, origin=f"Service {service_name}")
            return await _role_secret(kube, db, found)
        secret_name = f"{name}-pguser-postgres"
        try:
            secret = await kube.read_secret(secret_name)
            host = secret.get("host", "")
            port_text = secret.get("port", "")
            origin = f"Secret {secret_name}"
            if not host and not db.host:
                service = await kube.read_service(f"{name}-primary")
                host, port = _service_address(service, None)
                origin += f", Service {name}-primary"
            else:
                port = int(port_text) if port_text.isdigit() else 5432
        except ObjectMissing as exc:
            raise NotThere(str(exc)) from None
        found = ConnectTarget(
            host=host,
            port=port,
            user=secret.get("user", "postgres"),
            password=secret.get("password", ""),
            database=secret.get("dbname", "postgres") or "postgres",
            origin=origin,
        )
        return target_from_config(db, found) if db.explicit or db.user else found

    return locate
