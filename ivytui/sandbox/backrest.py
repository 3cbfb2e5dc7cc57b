"""The pgBackRest repo in the bucket.

Real pgBackRest when it is installed; otherwise a built-in writer of the same objects.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import gzip
import hashlib
import json
import logging
import os
import re
import shlex
import shutil
import struct
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ivytui.errors import SandboxError
from ivytui.sandbox.pg import (
    CommandResult,
    PgServer,
    chown_to_pg,
    make_pg_dir,
    run_command,
    write_pg_file,
)
from ivytui.sandbox.s3server import ACCESS_KEY, REGION, SECRET_KEY

STANZA = "db"
DEFAULT_REPO_PATH = "/backrestrepo/hippo-backrest-shared-repo"


def have_pgbackrest() -> str | None:
    """The path of the pgbackrest binary, or None."""
    return shutil.which("pgbackrest")


@dataclass(frozen=True)
class RepoTarget:
    """Where the repo lives: an S3 (or S3-compatible) bucket and a repo1-path inside it."""

    host: str
    port: int
    bucket: str = "hippo"
    region: str = REGION
    access_key: str = field(default=ACCESS_KEY, repr=False)
    secret_key: str = field(default=SECRET_KEY, repr=False)
    repo_path: str = DEFAULT_REPO_PATH
    uri_style: str = "path"
    verify_tls: bool | Path = False
    storage: str = "s3"

    @property
    def endpoint_url(self) -> str:
        return f"https://{self.host}:{self.port}"

    @property
    def prefix(self) -> str:
        """The repo path as an object key prefix (no leading slash, trailing slash)."""
        return self.repo_path.strip("/") + "/"

    def key(self, relative: str) -> str:
        return self.prefix + relative.lstrip("/")

    def boto_verify(self) -> bool | str:
        return str(self.verify_tls) if isinstance(self.verify_tls, Path) else self.verify_tls


# --------------------------------------------------------------------------- real pgBackRest


def write_config(
    path: Path,
    target: RepoTarget,
    *,
    pg_path: Path,
    pg_port: int,
    pg_socket_dir: Path,
    log_path: Path,
    lock_path: Path,
    spool_path: Path,
) -> Path:
    """Write one pgBackRest config file for one cluster (all clusters share the repo)."""
    for d in (log_path, lock_path, spool_path):
        make_pg_dir(d, 0o750)
    if isinstance(target.verify_tls, Path):
        tls = f"repo1-storage-verify-tls=y\nrepo1-storage-ca-file={target.verify_tls}\n"
    else:
        tls = f"repo1-storage-verify-tls={'y' if target.verify_tls else 'n'}\n"
    if target.storage == "gcs":
        # The port must be inside the endpoint for GCS (pgBackRest 2.45); a token key suits an
        # emulator, a service-account key file suits Google.
        repo = (
            "repo1-type=gcs\n"
            f"repo1-gcs-bucket={target.bucket}\n"
            f"repo1-gcs-endpoint={target.host}:{target.port}\n"
            "repo1-gcs-key-type=token\n"
            f"repo1-gcs-key={target.secret_key}\n"
        )
    else:
        repo = (
            "repo1-type=s3\n"
            f"repo1-s3-bucket={target.bucket}\n"
            f"repo1-s3-endpoint={target.host}\n"
            f"repo1-storage-port={target.port}\n"
            f"repo1-s3-region={target.region}\n"
            f"repo1-s3-key={target.access_key}\n"
            f"repo1-s3-key-secret={target.secret_key}\n"
            f"repo1-s3-uri-style={target.uri_style}\n"
        )
    text = (
        "[global]\n"
        f"repo1-path={target.repo_path}\n"
        f"{repo}"
        f"{tls}"
        "repo1-retention-full=2\n"
        "compress-type=gz\n"
        "compress-level=1\n"
        f"log-path={log_path}\n"
        f"lock-path={lock_path}\n"
        f"spool-path={spool_path}\n"
        "log-level-console=warn\n"
        "log-level-stderr=warn\n"
        "log-level-file=info\n"
        "\n"
        f"[{STANZA}]\n"
        f"pg1-path={pg_path}\n"
        f"pg1-port={pg_port}\n"
        f"pg1-socket-path={pg_socket_dir}\n"
        "pg1-user=postgres\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    write_pg_file(path, text, 0o640)
    return path


def _bin() -> str:
    found = have_pgbackrest()
    if found is None:
        raise SandboxError(
            "pgbackrest is not installed: apt-get install pgbackrest, or use the built-in repo mode"
        )
    return found


def archive_command(config: Path) -> str:
    """archive_command for postgresql.conf that pushes with this config."""
    return f"{_bin()} --config={config} --stanza={STANZA} archive-push %p"


def restore_command(config: Path) -> str:
    return f'{_bin()} --config={config} --stanza={STANZA} archive-get %f "%p"'


def _empty_pg_dir(path: Path) -> bool:
    """Create path for the run-as user if needed; True when it is empty."""
    make_pg_dir(path, 0o700)
    return not any(path.iterdir())


def _error_line(res: CommandResult) -> str:
    lines = [ln.strip() for ln in (res.stderr + "\n" + res.stdout).splitlines() if ln.strip()]
    for ln in lines:
        if "ERROR:" in ln:
            return ln[ln.index("ERROR:") :]
    return lines[-1] if lines else f"exit code {res.returncode}"


async def _pgbackrest(config: Path, *args: str, timeout: float) -> CommandResult:
    res = await run_command(
        [_bin(), f"--config={config}", f"--stanza={STANZA}", *args],
        timeout=timeout,
        cwd=config.parent,
    )
    if res.returncode != 0:
        raise SandboxError(f"pgbackrest {args[-1]} failed: {_error_line(res)}")
    return res


async def stanza_create(config: Path, *, timeout: float = 60) -> None:
    await _pgbackrest(config, "stanza-create", timeout=timeout)


async def backup(config: Path, type: str = "full", *, timeout: float = 300) -> None:
    """A backup with the fastest safe options (checkpoint now, gz level 1, 2 processes, bundles)."""
    await _pgbackrest(
        config,
        f"--type={type}",
        "--start-fast",
        "--compress-type=gz",
        "--compress-level=1",
        "--process-max=2",
        "--repo1-bundle",
        "backup",
        timeout=timeout,
    )


async def restore_standby(config: Path, data_dir: Path, *, timeout: float = 300) -> None:
    """Restore the latest backup into data_dir as a standby (standby.signal, restore_command).

    data_dir must be the config's pg1-path.
    The restored cluster keeps the primary's configuration: override port and archive_command
    afterwards.
    """
    args = ["--type=standby", "--process-max=2"]
    if not _empty_pg_dir(data_dir):
        args.append("--delta")
    await _pgbackrest(config, *args, "restore", timeout=timeout)


async def info(config: Path, *, timeout: float = 60) -> str:
    """`pgbackrest info --output=json`."""
    res = await _pgbackrest(config, "--output=json", "info", timeout=timeout)
    return res.stdout


# --------------------------------------------------------------------------- built-in mode
#
# Used when pgbackrest is not installed: the same objects under the same names, written from
# the sandbox process. PostgreSQL's archive_command/restore_command run as the run-as user,
# which cannot execute the project's Python, so they are small sh scripts that hand files over
# through a spool directory to a root-side asyncio service (BuiltinArchiver) doing the S3 I/O.

BACKREST_VERSION = "2.45"
BACKREST_FORMAT = 5

WAL_SEGMENT_RE = re.compile(r"^[0-9A-F]{24}$")
WAL_PARTIAL_RE = re.compile(r"^[0-9A-F]{24}\.partial$")
HISTORY_RE = re.compile(r"^[0-9A-F]{8}\.history$")
BACKUP_HISTORY_RE = re.compile(r"^[0-9A-F]{24}\.[0-9A-F]{8}\.backup$")

# Object keys relative to the repo prefix.
ARCHIVE_INFO_KEY_RE = re.compile(rf"^archive/{STANZA}/archive\.info(\.copy)?$")
BACKUP_INFO_KEY_RE = re.compile(rf"^backup/{STANZA}/backup\.info(\.copy)?$")
WAL_KEY_RE = re.compile(
    rf"^archive/{STANZA}/\d+(\.\d+)?-\d+/([0-9A-F]{{16}})/\2[0-9A-F]{{8}}(\.partial)?-[0-9a-f]{{40}}\.gz$"
)
HISTORY_KEY_RE = re.compile(rf"^archive/{STANZA}/\d+(\.\d+)?-\d+/[0-9A-F]{{8}}\.history$")
BACKUP_HISTORY_KEY_RE = re.compile(
    rf"^archive/{STANZA}/\d+(\.\d+)?-\d+/([0-9A-F]{{16}})/\2[0-9A-F]{{8}}\.[0-9A-F]{{8}}\.backup$"
)

_WAL_SYSID = struct.Struct("<Q")
_WAL_LONG_HEADER_MAGIC_OFFSET = 0
_WAL_SYSID_OFFSET = 24

log = logging.getLogger(__name__)


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def render_info(sections: Mapping[str, Mapping[str, Any]]) -> str:
    """An info file as pgBackRest writes it, with its backrest-checksum.

    Sections and keys are written sorted; every value is JSON. The checksum is the SHA-1 of the
    content rendered as one JSON object ``{"section":{"key":value,...},...}`` (values as in the
    file, the checksum itself left out), appended in a second ``[backrest]`` section.
    """
    body: list[str] = []
    parts: list[str] = []
    for section in sorted(sections):
        items = sorted(sections[section].items())
        body.append(f"[{section}]\n" + "".join(f"{k}={_json(v)}\n" for k, v in items))
        parts.append(
            _json(section) + ":{" + ",".join(f"{_json(k)}:{_json(v)}" for k, v in items) + "}"
        )
    checksum = hashlib.sha1(("{" + ",".join(parts) + "}").encode()).hexdigest()
    body.append(f'[backrest]\nbackrest-checksum="{checksum}"\n')
    return "\n".join(body)


def parse_info(text: str) -> dict[str, dict[str, Any]]:
    """Sections of an info file with JSON-decoded values (both [backrest] sections merged)."""
    out: dict[str, dict[str, Any]] = {}
    section: dict[str, Any] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("[") and line.endswith("]"):
            section = out.setdefault(line[1:-1], {})
            continue
        if section is None or "=" not in line:
            raise ValueError(f"not a pgBackRest info file line: {line!r}")
        key, value = line.split("=", 1)
        section[key] = json.loads(value)
    return out


def verify_info_checksum(text: str) -> bool:
    sections = parse_info(text)
    stored = sections.get("backrest", {}).pop("backrest-checksum", None)
    rendered = render_info(sections)
    return stored is not None and f'backrest-checksum="{stored}"' in rendered


@dataclass(frozen=True)
class StanzaDb:
    """What a stanza records about its PostgreSQL cluster."""

    system_id: int
    version: str
    catalog_version: int
    control_version: int

    @property
    def archive_id(self) -> str:
        return f"{self.version}-1"


def archive_info_text(db: StanzaDb) -> str:
    return render_info(
        {
            "backrest": {"backrest-format": BACKREST_FORMAT, "backrest-version": BACKREST_VERSION},
            "db": {"db-id": 1, "db-system-id": db.system_id, "db-version": db.version},
            "db:history": {"1": {"db-id": db.system_id, "db-version": db.version}},
        }
    )


def backup_info_text(db: StanzaDb, backups: Mapping[str, Mapping[str, Any]] | None = None) -> str:
    sections: dict[str, Mapping[str, Any]] = {
        "backrest": {"backrest-format": BACKREST_FORMAT, "backrest-version": BACKREST_VERSION},
        "db": {
            "db-catalog-version": db.catalog_version,
            "db-control-version": db.control_version,
            "db-id": 1,
            "db-system-id": db.system_id,
            "db-version": db.version,
        },
        "db:history": {
            "1": {
                "db-catalog-version": db.catalog_version,
                "db-control-version": db.control_version,
                "db-system-id": db.system_id,
                "db-version": db.version,
            }
        },
    }
    if backups:
        sections["backup:current"] = dict(backups)
    return render_info(sections)


def s3_client(target: RepoTarget) -> Any:
    """An aioboto3 S3 client (async context manager); TLS is verified as the target says."""
    import aioboto3
    from aiobotocore.config import AioConfig

    style = "path" if target.uri_style == "path" else "virtual"
    return aioboto3.Session().client(
        "s3",
        endpoint_url=target.endpoint_url,
        region_name=target.region,
        aws_access_key_id=target.access_key,
        aws_secret_access_key=target.secret_key,
        verify=target.boto_verify(),
        config=AioConfig(
            s3={"addressing_style": style},
            retries={"max_attempts": 1, "mode": "standard"},
            connect_timeout=3,
            read_timeout=30,
        ),
    )


def _is_missing(exc: BaseException) -> bool:
    from botocore.exceptions import ClientError

    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        return code in ("NoSuchKey", "404", "NotFound")
    return False


async def _get(s3: Any, target: RepoTarget, key: str) -> bytes | None:
    try:
        resp = await s3.get_object(Bucket=target.bucket, Key=target.key(key))
    except Exception as exc:
        if _is_missing(exc):
            return None
        raise
    async with resp["Body"] as body:
        data: bytes = await body.read()
    return data


async def _put(s3: Any, target: RepoTarget, key: str, data: bytes) -> None:
    await s3.put_object(Bucket=target.bucket, Key=target.key(key), Body=data)


async def _list(s3: Any, target: RepoTarget, prefix: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        kwargs: dict[str, Any] = {"Bucket": target.bucket, "Prefix": target.key(prefix)}
        if token:
            kwargs["ContinuationToken"] = token
        resp = await s3.list_objects_v2(**kwargs)
        out.extend(resp.get("Contents", []))
        if not resp.get("IsTruncated"):
            return out
        token = resp.get("NextContinuationToken")


async def read_stanza_db(server: PgServer) -> StanzaDb:
    """System identifier, major version and catalog/control versions of a running server."""
    row = await server.psql(
        "SELECT system_identifier, pg_control_version, catalog_version_no,"
        " current_setting('server_version_num') FROM pg_control_system()"
    )
    sysid, control, catalog, num = row.split("|")
    n = int(num)
    version = str(n // 10000) if n >= 100000 else f"{n // 10000}.{n // 100 % 100}"
    return StanzaDb(int(sysid), version, int(catalog), int(control))


async def write_stanza_builtin(
    target: RepoTarget, db: StanzaDb, *, backups: Mapping[str, Mapping[str, Any]] | None = None
) -> None:
    """Write archive.info and backup.info (each with its .copy) for stanza db.

    Like stanza-create, refuses a repo whose archive.info names another cluster.
    """
    async with s3_client(target) as s3:
        existing = await _get(s3, target, f"archive/{STANZA}/archive.info")
        if existing is not None:
            current = parse_info(existing.decode()).get("db", {})
            if (
                current.get("db-system-id") != db.system_id
                or current.get("db-version") != db.version
            ):
                other = f"system-id {current.get('db-system-id')}, v{current.get('db-version')}"
                raise SandboxError(
                    f"the repo at s3://{target.bucket}{target.repo_path} belongs to another"
                    f" cluster ({other}): use an empty repo path"
                )
        archive = archive_info_text(db).encode()
        backup_info = backup_info_text(db, backups).encode()
        for key, data in (
            (f"archive/{STANZA}/archive.info", archive),
            (f"archive/{STANZA}/archive.info.copy", archive),
            (f"backup/{STANZA}/backup.info", backup_info),
            (f"backup/{STANZA}/backup.info.copy", backup_info),
        ):
            await _put(s3, target, key, data)


async def stanza_create_builtin(server: PgServer, target: RepoTarget) -> StanzaDb:
    """The built-in stanza-create: the stanza files from a running primary."""
    db = await read_stanza_db(server)
    await write_stanza_builtin(target, db)
    return db


async def add_backup_builtin(
    target: RepoTarget, db: StanzaDb, label: str, record: Mapping[str, Any]
) -> None:
    """Add one [backup:current] entry to backup.info (and its .copy)."""
    async with s3_client(target) as s3:
        existing = await _get(s3, target, f"backup/{STANZA}/backup.info")
        backups: dict[str, Mapping[str, Any]] = {}
        if existing is not None:
            backups.update(parse_info(existing.decode()).get("backup:current", {}))
        backups[label] = record
        data = backup_info_text(db, backups).encode()
        await _put(s3, target, f"backup/{STANZA}/backup.info", data)
        await _put(s3, target, f"backup/{STANZA}/backup.info.copy", data)


_SCRIPT_HEAD = """#!/bin/sh
# ivytui sandbox {what}
spool={spool}
alive() {{
  [ -r "$spool/service.pid" ] && read -r svc < "$spool/service.pid" || return 1
  [ -d /proc/1 ] || return 0  # /proc hides other users' processes: cannot tell
  [ -d "/proc/$svc" ]
}}
"""

_PUSH_SCRIPT = """
p="$1"
f="$2"
if ! alive; then echo "ivytui archive-push: the sandbox archiver is not running" >&2; exit 1; fi
rm -f "$spool/ack/$f" "$spool/err/$f"
cp "$p" "$spool/out/$f.tmp" && mv -f "$spool/out/$f.tmp" "$spool/out/$f" || exit 1
n=0
while [ "$n" -lt {tries} ]; do
  if [ -e "$spool/ack/$f" ]; then rm -f "$spool/ack/$f"; exit 0; fi
  if [ -e "$spool/err/$f" ]; then
    cat "$spool/err/$f" >&2
    rm -f "$spool/err/$f" "$spool/out/$f"
    exit 1
  fi
  if ! alive; then
    echo "ivytui archive-push: the sandbox archiver stopped before $f was stored" >&2
    rm -f "$spool/out/$f"
    exit 1
  fi
  sleep {poll}
  n=$((n + 1))
done
echo "ivytui archive-push: $f was not stored within {wait} s" >&2
rm -f "$spool/out/$f"
exit 1
"""

_GET_SCRIPT = """
f="$1"
p="$2"
if ! alive; then echo "ivytui archive-get: the sandbox archiver is not running" >&2; exit 1; fi
rm -f "$spool/in/$f" "$spool/miss/$f"
: > "$spool/req/$f" || exit 1
n=0
while [ "$n" -lt {tries} ]; do
  if [ -e "$spool/in/$f" ]; then mv -f "$spool/in/$f" "$p" && exit 0; exit 1; fi
  if [ -e "$spool/miss/$f" ]; then rm -f "$spool/miss/$f"; exit 1; fi
  if ! alive; then rm -f "$spool/req/$f"; exit 1; fi
  sleep {poll}
  n=$((n + 1))
done
echo "ivytui archive-get: no answer for $f within {wait} s" >&2
rm -f "$spool/req/$f"
exit 1
"""

_SPOOL_DIRS = ("out", "ack", "err", "req", "in", "miss", "bin")


def _listing(path: Path) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


def _wal_sysid(data: bytes) -> int | None:
    """The system identifier in a WAL segment's long page header (None when not a WAL file)."""
    if len(data) < _WAL_SYSID_OFFSET + 8:
        return None
    info = struct.unpack_from("<H", data, 2)[0]
    if not info & 0x0002:  # XLP_LONG_HEADER
        return None
    return int(_WAL_SYSID.unpack_from(data, _WAL_SYSID_OFFSET)[0])


class BuiltinArchiver:
    """Root-side service between PostgreSQL's archive/restore commands and the bucket.

    archive_command copies ``%p`` to ``spool/out/%f`` and waits for ``spool/ack/%f`` (written once
    the object is in the bucket) or ``spool/err/%f``; restore_command writes ``spool/req/%f`` and
    waits for ``spool/in/%f`` or ``spool/miss/%f``. One spool may serve several clusters (a
    primary pushing, a standby fetching). ``paused`` makes every push fail at once (fetches go on),
    like a repo host that went away; PostgreSQL keeps the WAL and retries.
    """

    def __init__(
        self,
        target: RepoTarget,
        spool: Path,
        *,
        poll: float = 0.05,
        script_wait: float = 60.0,
    ) -> None:
        self.target = target
        self.spool = spool
        self.poll = poll
        self.script_wait = script_wait
        self.pushed: list[str] = []
        self.fetched: list[str] = []
        self.missing = 0
        self.last_error: str | None = None
        self.paused = False
        self._archive: tuple[str, int] | None = None
        self._task: asyncio.Task[None] | None = None
        self.prepare()

    @property
    def push_script(self) -> Path:
        return self.spool / "bin" / "archive-push.sh"

    @property
    def get_script(self) -> Path:
        return self.spool / "bin" / "archive-get.sh"

    @property
    def archive_command(self) -> str:
        return f'/bin/sh {shlex.quote(str(self.push_script))} "%p" "%f"'

    @property
    def restore_command(self) -> str:
        return f'/bin/sh {shlex.quote(str(self.get_script))} "%f" "%p"'

    def prepare(self) -> None:
        """Create the spool (owned by the run-as user) and its two scripts."""
        make_pg_dir(self.spool, 0o700)
        for d in _SPOOL_DIRS:
            make_pg_dir(self.spool / d, 0o700)
        tries = max(1, round(self.script_wait / self.poll))
        fields = {
            "spool": shlex.quote(str(self.spool)),
            "tries": tries,
            "poll": f"{self.poll:g}",
            "wait": f"{self.script_wait:g}",
        }
        push = _SCRIPT_HEAD.format(what="archive-push: store %p in the bucket", **fields)
        get = _SCRIPT_HEAD.format(what="archive-get: fetch %f from the bucket", **fields)
        write_pg_file(self.push_script, push + _PUSH_SCRIPT.format(**fields), 0o755)
        write_pg_file(self.get_script, get + _GET_SCRIPT.format(**fields), 0o755)

    # ----------------------------------------------------------------- life cycle

    async def start(self) -> None:
        """Run the service as a task of the running loop (returns at once)."""
        if self._task is None or self._task.done():
            self._write_pidfile()
            self._task = asyncio.create_task(self.run(), name=f"archiver {self.spool}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        (self.spool / "service.pid").unlink(missing_ok=True)

    async def run(self) -> None:
        """Serve the spool until cancelled.

        While it runs, spool/service.pid names this process; the scripts give up at once when
        it is missing or names a process that is gone, so a PostgreSQL shutdown never waits on
        an archiver that is not there.
        """
        pidfile = self._write_pidfile()
        try:
            async with s3_client(self.target) as s3:
                await asyncio.gather(self._push_loop(s3), self._get_loop(s3))
        finally:
            pidfile.unlink(missing_ok=True)

    def _write_pidfile(self) -> Path:
        pidfile = self.spool / "service.pid"
        write_pg_file(pidfile, f"{os.getpid()}\n", 0o644)
        return pidfile

    async def create_stanza(self, primary: PgServer) -> StanzaDb:
        """The built-in stanza-create for primary (see :func:`stanza_create_builtin`)."""
        self._archive = None
        return await stanza_create_builtin(primary, self.target)

    async def seed_standby(self, primary: PgServer, standby: PgServer) -> SeedBackup:
        """Seed standby from primary; it restores through this archiver's spool."""
        return await seed_standby_builtin(primary, standby, self, self.target)

    # ----------------------------------------------------------------- repo

    async def _archive_id(self, s3: Any) -> tuple[str, int]:
        if self._archive is None:
            data = await _get(s3, self.target, f"archive/{STANZA}/archive.info")
            if data is None:
                raise SandboxError(
                    f"stanza {STANZA} has no archive.info in s3://{self.target.bucket}"
                    f"{self.target.repo_path}: create the stanza first"
                )
            db = parse_info(data.decode())["db"]
            self._archive = (f"{db['db-version']}-{db['db-id']}", int(db["db-system-id"]))
        return self._archive

    # ----------------------------------------------------------------- push

    async def _push_loop(self, s3: Any) -> None:
        out = self.spool / "out"
        while True:
            names = [n for n in _listing(out) if not n.endswith(".tmp")]
            if not names:
                await asyncio.sleep(self.poll)
                continue
            if self.paused:
                for name in names:
                    with contextlib.suppress(OSError):
                        (out / name).unlink(missing_ok=True)
                        self._answer("err", name, "ivytui archive-push: the repo is unreachable\n")
                await asyncio.sleep(self.poll)
                continue
            for name in names:
                try:
                    await self._push(s3, name)
                except SandboxError as exc:
                    self.last_error = exc.message
                    log.warning("archive-push %s: %s", name, exc.message)
                    with contextlib.suppress(OSError):
                        self._answer("err", name, f"ivytui archive-push: {exc.message}\n")
                        (out / name).unlink(missing_ok=True)
                except FileNotFoundError:
                    continue
                except Exception as exc:
                    # The bucket is unreachable or failing: keep the file and retry; the
                    # archive_command keeps waiting, so archiving resumes as soon as S3 is back.
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    await asyncio.sleep(max(self.poll, 0.2))
                    break

    async def _push(self, s3: Any, name: str) -> None:
        path = self.spool / "out" / name
        data = await asyncio.to_thread(path.read_bytes)
        archive_id, system_id = await self._archive_id(s3)
        base = f"archive/{STANZA}/{archive_id}/"
        if WAL_SEGMENT_RE.match(name) or WAL_PARTIAL_RE.match(name):
            sysid = _wal_sysid(data)
            if sysid is not None and sysid != system_id:
                raise SandboxError(
                    f"WAL file {name} is from system-id {sysid} but stanza {STANZA} is for"
                    f" {system_id}: this cluster must not archive into this repo"
                )
            sha1 = hashlib.sha1(data).hexdigest()
            prefix = f"{base}{name[:16]}/{name}-"
            existing = [o["Key"] for o in await _list(s3, self.target, prefix)]
            if existing and not any(sha1 in k for k in existing):
                raise SandboxError(
                    f"WAL file {name} already exists in the repo with a different checksum"
                )
            if not existing:
                body = await asyncio.to_thread(gzip.compress, data, 1, mtime=0)
                await _put(s3, self.target, f"{prefix}{sha1}.gz", body)
        elif HISTORY_RE.match(name):
            key = f"{base}{name}"
            old = await _get(s3, self.target, key)
            if old is not None and old != data:
                raise SandboxError(f"history file {name} already exists with different content")
            if old is None:
                await _put(s3, self.target, key, data)
        elif BACKUP_HISTORY_RE.match(name):
            await _put(s3, self.target, f"{base}{name[:16]}/{name}", data)
        else:
            raise SandboxError(f"{name} is not a WAL, history or backup file")
        path.unlink(missing_ok=True)
        self.pushed.append(name)
        self._answer("ack", name, "")

    def _answer(self, kind: str, name: str, text: str) -> None:
        dest = self.spool / kind / name
        tmp = self.spool / kind / f".{name}.tmp"
        tmp.write_text(text)
        chown_to_pg(tmp)
        os.replace(tmp, dest)

    # ----------------------------------------------------------------- get

    async def _get_loop(self, s3: Any) -> None:
        req = self.spool / "req"
        while True:
            names = _listing(req)
            if not names:
                await asyncio.sleep(self.poll)
                continue
            for name in names:
                (req / name).unlink(missing_ok=True)
                try:
                    data = await self._fetch(s3, name)
                except Exception as exc:
                    self.last_error = f"archive-get {name}: {type(exc).__name__}: {exc}"
                    data = None
                try:
                    if data is None:
                        self.missing += 1
                        self._answer("miss", name, "")
                        continue
                    tmp = self.spool / "in" / f".{name}.tmp"
                    await asyncio.to_thread(tmp.write_bytes, data)
                    chown_to_pg(tmp)
                    os.chmod(tmp, 0o600)
                    os.replace(tmp, self.spool / "in" / name)
                    self.fetched.append(name)
                except OSError as exc:
                    self.last_error = f"archive-get {name}: {exc}"

    async def _fetch(self, s3: Any, name: str) -> bytes | None:
        archive_id, _ = await self._archive_id(s3)
        base = f"archive/{STANZA}/{archive_id}/"
        if HISTORY_RE.match(name):
            return await _get(s3, self.target, f"{base}{name}")
        if not (WAL_SEGMENT_RE.match(name) or WAL_PARTIAL_RE.match(name)):
            return None
        objects = await _list(s3, self.target, f"{base}{name[:16]}/{name}-")
        if not objects:
            return None
        newest = max(objects, key=lambda o: o["LastModified"])
        key = str(newest["Key"])[len(self.target.prefix) :]
        body = await _get(s3, self.target, key)
        if body is None:
            return None
        data = await asyncio.to_thread(gzip.decompress, body) if key.endswith(".gz") else body
        expected = key.rsplit("-", 1)[1].split(".", 1)[0]
        if hashlib.sha1(data).hexdigest() != expected:
            raise SandboxError(f"WAL file {name} in the repo does not match its checksum")
        return data


@dataclass(frozen=True)
class SeedBackup:
    """The base backup that seeded a standby in built-in mode (as recorded in backup.info)."""

    label: str
    start_wal: str
    stop_wal: str
    start_lsn: str
    stop_lsn: str
    start_time: int
    stop_time: int
    size: int


_BACKUP_LINE = re.compile(r"^([A-Z ]+): (.*)$")


def _parse_backup_history(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        m = _BACKUP_LINE.match(line.strip())
        if m:
            out[m.group(1)] = m.group(2)
    return out


def _epoch(stamp: str) -> int:
    """Seconds since the epoch of a backup history time ("2024-01-02 03:04:05 UTC")."""
    try:
        moment = dt.datetime.strptime(stamp[:19], "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return int(time.time())
    zone = stamp[19:].strip()
    m = re.fullmatch(r"([+-])(\d{2}):?(\d{2})?", zone)
    if m:
        sign = 1 if m.group(1) == "+" else -1
        offset = dt.timedelta(hours=int(m.group(2)), minutes=int(m.group(3) or 0))
        return int(moment.replace(tzinfo=dt.timezone(sign * offset)).timestamp())
    return int(moment.replace(tzinfo=dt.UTC).timestamp())


def _dir_size(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, f)).st_size
    return total


async def seed_standby_builtin(
    primary: PgServer,
    standby: PgServer,
    archiver: BuiltinArchiver,
    target: RepoTarget,
    *,
    timeout: float = 180,
) -> SeedBackup:
    """Make standby.data_dir a repo-fed standby of primary without pgBackRest.

    pg_basebackup -X none copies the files only; it returns once the primary has archived the
    backup's last segment and backup history file (so the primary's archiver must be running).
    The standby then gets standby.signal, the built-in restore_command of ``archiver`` and no
    primary_conninfo: every WAL byte after the copy comes from the bucket. The backup is added to
    backup.info. The caller starts the standby.
    """
    standby.prepare_dirs()
    if not _empty_pg_dir(standby.data_dir):
        raise SandboxError(
            f"{standby.data_dir} is not empty: seed a standby into a fresh directory"
        )
    label = f"ivytui seed {int(time.time() * 1000)}"
    res = await run_command(
        [
            standby.bindir / "pg_basebackup", "-D", standby.data_dir,
            "-h", primary.sock_dir, "-p", str(primary.port), "-U", "postgres",
            "-X", "none", "-c", "fast", "--no-sync", "--no-manifest", "-l", label,
        ],
        timeout=timeout,
        cwd=standby.run_dir,
    )  # fmt: skip
    if res.returncode != 0:
        lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
        raise SandboxError(f"pg_basebackup failed: {lines[-1] if lines else res.returncode}")

    history: dict[str, str] | None = None
    deadline = time.monotonic() + 30
    async with s3_client(target) as s3:
        while history is None:
            for obj in await _list(s3, target, f"archive/{STANZA}/"):
                key = str(obj["Key"])
                if not key.endswith(".backup"):
                    continue
                body = await _get(s3, target, key[len(target.prefix) :])
                parsed = _parse_backup_history(body.decode(errors="replace")) if body else {}
                if parsed.get("LABEL") == label:
                    history = parsed
                    break
            if history is None:
                if time.monotonic() > deadline:
                    raise SandboxError(
                        "the base backup's history file never reached the repo: check the"
                        " primary's archiving (archive_command and the archiver service)"
                    )
                await asyncio.sleep(0.2)
    start_lsn, start_wal = re.findall(
        r"([0-9A-F]+/[0-9A-F]+) \(file ([0-9A-F]{24})\)", history["START WAL LOCATION"]
    )[0]
    stop_lsn, stop_wal = re.findall(
        r"([0-9A-F]+/[0-9A-F]+) \(file ([0-9A-F]{24})\)", history["STOP WAL LOCATION"]
    )[0]
    start_time = _epoch(history["START TIME"])
    stop_time = _epoch(history["STOP TIME"])
    size = await asyncio.to_thread(_dir_size, standby.data_dir)
    seed = SeedBackup(
        label=dt.datetime.fromtimestamp(start_time, dt.UTC).strftime("%Y%m%d-%H%M%SF"),
        start_wal=start_wal,
        stop_wal=stop_wal,
        start_lsn=start_lsn,
        stop_lsn=stop_lsn,
        start_time=start_time,
        stop_time=stop_time,
        size=size,
    )

    write_pg_file(standby.data_dir / "standby.signal", "")
    if standby.superuser_password is None:
        standby.superuser_password = primary.superuser_password
    await standby.configure(
        {
            "port": standby.port,
            "restore_command": archiver.restore_command,
            "archive_command": archiver.archive_command,
            "primary_conninfo": "",
            "recovery_target_timeline": "latest",
        }
    )
    db = await read_stanza_db(primary)
    await add_backup_builtin(
        target,
        db,
        seed.label,
        {
            "backrest-format": BACKREST_FORMAT,
            "backrest-version": BACKREST_VERSION,
            "backup-archive-start": seed.start_wal,
            "backup-archive-stop": seed.stop_wal,
            "backup-error": False,
            "backup-info-repo-size": 0,
            "backup-info-repo-size-delta": 0,
            "backup-info-size": seed.size,
            "backup-info-size-delta": seed.size,
            "backup-lsn-start": seed.start_lsn,
            "backup-lsn-stop": seed.stop_lsn,
            "backup-timestamp-start": seed.start_time,
            "backup-timestamp-stop": seed.stop_time,
            "backup-type": "full",
            "db-id": 1,
            "option-archive-check": True,
            "option-archive-copy": False,
            "option-backup-standby": False,
            "option-checksum-page": False,
            "option-compress": True,
            "option-hardlink": False,
            "option-online": True,
        },
    )
    return seed
