"""Real PostgreSQL servers for the sandbox, driven with asyncio subprocesses.

PostgreSQL refuses to run as root. When the sandbox runs as root, every server (and every tool
that writes into its files: initdb, pg_ctl, pg_basebackup, pgBackRest) runs as the ``postgres``
OS user (or a system user ``ivytui-pg`` made on demand), and everything it writes must belong to
that user. Directories such as pytest's ``tmp_path`` are 0700 root, which that user cannot
traverse: put data and run directories under :func:`make_pg_root` (a 0711 directory in /tmp).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import glob
import importlib.util
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ivytui.errors import SandboxError

REQUIRED_BINARIES = ("initdb", "pg_ctl", "postgres")
DIST_PATTERNS: tuple[str, ...] = ("/usr/lib/postgresql/*/bin", "/usr/pgsql-*/bin")
FALLBACK_USER = "ivytui-pg"
CONF_FILE = "ivytui.conf"

_NOT_FOUND = (
    "no PostgreSQL server binaries found (initdb, pg_ctl, postgres): install PostgreSQL "
    "(apt-get install postgresql) or `pip install pgserver`, or set IVYTUI_PG_BINDIR"
)

# Settings every sandbox server gets. fsync=off (and initdb --no-sync) is safe here because a
# sandbox never survives a machine crash: its data is thrown away with the rehearsal, and it
# makes checkpoints, backups and restores several times faster.
SANDBOX_SETTINGS: dict[str, str | int] = {
    "wal_level": "replica",
    "archive_mode": "on",
    "archive_timeout": 60,
    "max_wal_senders": 5,
    "wal_retrieve_retry_interval": "1s",
    "hot_standby": "on",
    "shared_buffers": "16MB",
    "max_connections": 40,
    "fsync": "off",
    # On, and nearly free with fsync off (a commit waits for a write(), not for the disk): a
    # commit the server acknowledged is in the kernel before the client hears of it, so it
    # survives the postmaster being killed (the sandbox's kill fault, the v4 operator's shutdown).
    "synchronous_commit": "on",
    "full_page_writes": "on",
    "max_wal_size": "256MB",
    "min_wal_size": "80MB",
    "log_destination": "stderr",
    "logging_collector": "off",
    "log_line_prefix": "%m [%p] ",
    "log_timezone": "UTC",
    "timezone": "UTC",
}


# --------------------------------------------------------------------------- binaries


def _has_server_binaries(d: Path) -> bool:
    return all(os.access(d / b, os.X_OK) and (d / b).is_file() for b in REQUIRED_BINARIES)


def _major_key(d: Path) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", str(d))) or (0,)


def find_pg_bindir(
    *,
    environ: Mapping[str, str] | None = None,
    dist_patterns: Sequence[str] = DIST_PATTERNS,
    try_pgserver: bool = True,
) -> Path:
    """The directory holding initdb, pg_ctl and postgres.

    Looked up in order: ``IVYTUI_PG_BINDIR``; ``pg_ctl``/``initdb``/``postgres`` on PATH (symlinks
    resolved, the directory must hold all three); ``pg_config --bindir``; the distribution
    directories in ``dist_patterns`` (highest major first); the ``pgserver`` package.
    """
    env = os.environ if environ is None else environ
    explicit = env.get("IVYTUI_PG_BINDIR")
    if explicit:
        d = Path(explicit)
        if _has_server_binaries(d):
            return d
        raise SandboxError(
            f"IVYTUI_PG_BINDIR={explicit} does not hold initdb, pg_ctl and postgres: "
            "point it at PostgreSQL's bin directory or unset it"
        )
    search_path = env.get("PATH", "")
    for name in REQUIRED_BINARIES:
        found = shutil.which(name, path=search_path)
        if found is None:
            continue
        for candidate in (Path(found).resolve().parent, Path(found).parent):
            if _has_server_binaries(candidate):
                return candidate
    pg_config = shutil.which("pg_config", path=search_path)
    if pg_config is not None:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
            if out and _has_server_binaries(Path(out)):
                return Path(out)
    candidates = [Path(p) for pattern in dist_patterns for p in glob.glob(pattern)]
    for candidate in sorted(candidates, key=_major_key, reverse=True):
        if _has_server_binaries(candidate):
            return candidate
    if try_pgserver:
        with contextlib.suppress(ImportError, ValueError):
            spec = importlib.util.find_spec("pgserver")
            if spec is not None and spec.submodule_search_locations:
                for loc in spec.submodule_search_locations:
                    candidate = Path(loc) / "pginstall" / "bin"
                    if _has_server_binaries(candidate):
                        return candidate
    raise SandboxError(_NOT_FOUND)


@functools.cache
def pg_major(bindir: Path) -> int:
    """PostgreSQL major version of the server in bindir (e.g. 15; 9 for 9.6)."""
    try:
        out = subprocess.run(
            [str(bindir / "postgres"), "--version"],
            capture_output=True, text=True, timeout=20, check=True,
        ).stdout  # fmt: skip
    except (OSError, subprocess.SubprocessError) as exc:
        raise SandboxError(
            f"cannot run {bindir / 'postgres'} --version ({exc}): check IVYTUI_PG_BINDIR"
        ) from exc
    m = re.search(r"\)\s*(\d+)", out) or re.search(r"(\d+)\.\d+", out)
    if m is None:
        raise SandboxError(f"cannot read the PostgreSQL version from {out.strip()!r}")
    return int(m.group(1))


# --------------------------------------------------------------------------- OS user


@functools.cache
def run_as() -> tuple[int, int] | None:
    """None when not root; as root the (uid, gid) PostgreSQL runs as (postgres, or ivytui-pg)."""
    if os.geteuid() != 0:
        return None
    for user in ("postgres", FALLBACK_USER):
        with contextlib.suppress(KeyError):
            pw = pwd.getpwnam(user)
            return pw.pw_uid, pw.pw_gid
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    try:
        subprocess.run(
            [useradd, "--system", "--user-group", "--no-create-home",
             "--shell", "/usr/sbin/nologin", FALLBACK_USER],
            capture_output=True, text=True, timeout=30, check=True,
        )  # fmt: skip
        pw = pwd.getpwnam(FALLBACK_USER)
    except (OSError, subprocess.SubprocessError, KeyError) as exc:
        raise SandboxError(
            f"PostgreSQL cannot run as root and no `postgres` user exists; creating "
            f"`{FALLBACK_USER}` failed ({exc}): create a `postgres` user or run as non-root"
        ) from exc
    return pw.pw_uid, pw.pw_gid


def chown_to_pg(*paths: Path) -> None:
    """Give paths to the run-as user (no-op when not root)."""
    ids = run_as()
    if ids is None:
        return
    for p in paths:
        os.chown(p, *ids)


def make_pg_dir(path: Path, mode: int = 0o700) -> Path:
    """mkdir -p path, owned by the run-as user with the given mode."""
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, mode)
    chown_to_pg(path)
    return path


def make_pg_root(prefix: str = "ivytui-pg-") -> Path:
    """A fresh directory in /tmp that the run-as user can traverse (0711, owned by it).

    Put every data directory, run directory and pgBackRest path under it.
    """
    root = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    os.chmod(root, 0o711)
    chown_to_pg(root)
    return root


def write_pg_file(path: Path, text: str, mode: int = 0o600) -> None:
    """Write a file that the run-as user owns."""
    tmp = path.with_name(path.name + ".ivytui-tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.chmod(tmp, mode)
    chown_to_pg(tmp)
    os.replace(tmp, path)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- processes


@dataclass(frozen=True)
class CommandResult:
    returncode: int
    stdout: str
    stderr: str


def _clean_env(extra: Mapping[str, str] | None, home: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.setdefault("LANG", "C.UTF-8")
    if home is not None:
        env["HOME"] = str(home)
    if extra:
        env.update(extra)
    return env


async def run_command(
    args: Sequence[str | Path],
    *,
    timeout: float,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    as_pg: bool = True,
    input: bytes | None = None,
) -> CommandResult:
    """Run a program (as the run-as user when root) and collect its output; never blocks the loop.

    Raises SandboxError when it does not finish within timeout (the process group is killed).
    """
    ids = run_as() if as_pg else None
    argv = [str(a) for a in args]
    workdir = cwd if cwd is not None else Path("/tmp")
    try:
        if ids is not None:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE if input is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd=workdir,
                env=_clean_env(env, workdir),
                user=ids[0],
                group=ids[1],
                extra_groups=[],
                start_new_session=True,
            )
        else:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE if input is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd=workdir,
                env=_clean_env(env, None),
                start_new_session=True,
            )
    except OSError as exc:
        raise SandboxError(f"cannot run {argv[0]}: {exc.strerror or exc}") from exc
    try:
        out, err = await asyncio.wait_for(proc.communicate(input), timeout)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
        raise SandboxError(
            f"{Path(argv[0]).name} {' '.join(argv[1:3])} did not finish within {timeout:.0f} s:"
            " the sandbox machine may be overloaded; retry"
        ) from None
    return CommandResult(
        proc.returncode if proc.returncode is not None else -1,
        out.decode(errors="replace"),
        err.decode(errors="replace"),
    )


def _proc_state(pid: int) -> str | None:
    """The /proc state letter of pid, or None when it does not exist."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return "S"
        return "S"
    return stat.rsplit(")", 1)[1].split()[0]


def pid_alive(pid: int) -> bool:
    """True when pid exists and is not a zombie."""
    return _proc_state(pid) not in (None, "Z", "X")


def _live_processes_where(field: int, value: int) -> list[int]:
    """The live processes whose ``/proc/<pid>/stat`` field (counted after the command name:
    1 the parent, 2 the process group) equals ``value``."""
    found: list[int] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[field]) == value and fields[0] not in ("Z", "X"):
            found.append(int(entry))
    return found


def _group_members(pgid: int) -> list[int]:
    return _live_processes_where(2, pgid)


def _children(pid: int) -> list[int]:
    """The live processes whose parent is pid."""
    return _live_processes_where(1, pid)


def _signal_group(pid: int, sig: signal.Signals) -> bool:
    """Signal pid's process group when pid leads one (PostgreSQL's processes all do), else pid;
    False when it is gone."""
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        return False
    return True


def pg_quote(value: str | int | bool) -> str:
    """A value as written in postgresql.conf."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, int):
        return str(value)
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def _tail(path: Path, since: int, n: int = 3) -> list[str]:
    try:
        with open(path, "rb") as f:
            f.seek(since)
            text = f.read().decode(errors="replace")
    except OSError:
        return []
    return [ln.strip() for ln in text.splitlines() if ln.strip()][-n:]


_LOG_PREFIX = re.compile(r"^\S+ \S+ \S+ \[\d+\] ")


# --------------------------------------------------------------------------- server


class PgServer:
    """One PostgreSQL server: data_dir, and run_dir for its socket directory and log file.

    Both must live where the run-as user can reach them (under :func:`make_pg_root`).
    """

    def __init__(
        self,
        name: str,
        data_dir: Path,
        *,
        port: int,
        bindir: Path,
        run_dir: Path,
        superuser_password: str | None = None,
    ) -> None:
        self.name = name
        self.data_dir = data_dir
        self.port = port
        self.bindir = bindir
        self.run_dir = run_dir
        self.sock_dir = run_dir / "sock"
        self.log_file = run_dir / f"{name}.log"
        self.superuser_password = superuser_password
        self.frozen = False

    @property
    def socket_dir(self) -> Path:
        """Same as sock_dir: the unix_socket_directories of this server."""
        return self.sock_dir

    def __repr__(self) -> str:
        return f"PgServer({self.name!r}, port={self.port}, data_dir={str(self.data_dir)!r})"

    # ----------------------------------------------------------------- helpers

    def _bin(self, name: str) -> str:
        return str(self.bindir / name)

    def prepare_dirs(self) -> None:
        """Create run_dir, its socket directory and the log file, owned by the run-as user."""
        make_pg_dir(self.run_dir, 0o711)
        make_pg_dir(self.sock_dir, 0o755)
        if not self.log_file.exists():
            write_pg_file(self.log_file, "", 0o640)

    async def _run(
        self,
        *args: str | Path,
        timeout: float,
        input: bytes | None = None,
    ) -> CommandResult:
        return await run_command(args, timeout=timeout, cwd=self.run_dir, input=input)

    def _fail(self, what: str, res: CommandResult) -> SandboxError:
        lines = [ln.strip() for ln in (res.stderr + "\n" + res.stdout).splitlines() if ln.strip()]
        detail = lines[-1] if lines else f"exit code {res.returncode}"
        return SandboxError(f"PostgreSQL '{self.name}': {what} failed: {detail}")

    # ----------------------------------------------------------------- life cycle

    async def initdb(self, superuser_password: str, *, timeout: float = 120) -> None:
        """initdb -U postgres with trust on the socket and scram-sha-256 on 127.0.0.1."""
        self.prepare_dirs()
        make_pg_dir(self.data_dir, 0o700)
        if any(self.data_dir.iterdir()):
            raise SandboxError(
                f"PostgreSQL '{self.name}': {self.data_dir} is not empty: use a fresh directory"
            )
        pwfile = self.run_dir / "initdb.pw"
        write_pg_file(pwfile, superuser_password + "\n")
        try:
            res = await self._run(
                self._bin("initdb"), "-D", self.data_dir, "-U", "postgres",
                f"--pwfile={pwfile}", "--auth-local=trust", "--auth-host=scram-sha-256",
                "--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions",
                timeout=timeout,
            )  # fmt: skip
        finally:
            pwfile.unlink(missing_ok=True)
        if res.returncode != 0:
            raise self._fail("initdb", res)
        self.superuser_password = superuser_password
        write_pg_file(
            self.data_dir / "pg_hba.conf",
            "# TYPE  DATABASE     USER  ADDRESS        METHOD\n"
            "local   all          all                  trust\n"
            "local   replication  all                  trust\n"
            "host    all          all   127.0.0.1/32   scram-sha-256\n"
            "host    replication  all   127.0.0.1/32   scram-sha-256\n",
        )
        conf = self.data_dir / "postgresql.conf"
        text = conf.read_text()
        if CONF_FILE not in text:
            write_pg_file(conf, text + f"\ninclude_if_exists = '{CONF_FILE}'\n")
        await self.configure(SANDBOX_SETTINGS)

    def read_settings(self) -> dict[str, str]:
        """The settings in the sandbox include file, as written (values still quoted)."""
        path = self.data_dir / CONF_FILE
        settings: dict[str, str] = {}
        with contextlib.suppress(FileNotFoundError):
            for line in path.read_text().splitlines():
                if "=" in line and not line.lstrip().startswith("#"):
                    k, v = line.split("=", 1)
                    settings[k.strip()] = v.strip()
        return settings

    async def configure(self, settings: Mapping[str, str | int | bool]) -> None:
        """Merge settings into the include file (ivytui.conf) read after postgresql.conf.

        Takes effect at the next start or reload (see :meth:`reload`).
        """
        merged = self.read_settings()
        for key, value in settings.items():
            merged[key] = pg_quote(value)
        conf = self.data_dir / "postgresql.conf"
        if conf.exists() and CONF_FILE not in conf.read_text():
            write_pg_file(conf, conf.read_text() + f"\ninclude_if_exists = '{CONF_FILE}'\n")
        body = "".join(f"{k} = {v}\n" for k, v in merged.items())
        write_pg_file(self.data_dir / CONF_FILE, "# written by the ivytui sandbox\n" + body)

    async def start(self, timeout: float = 30) -> None:
        """pg_ctl start -w on 127.0.0.1:port with its socket in run_dir/sock."""
        self.prepare_dirs()
        if self.is_running():
            return
        self._clear_zombie_locks()
        since = self.log_file.stat().st_size if self.log_file.exists() else 0
        opts = " ".join(
            [
                "-c listen_addresses=127.0.0.1",
                f"-c port={self.port}",
                "-c " + shlex.quote(f"unix_socket_directories={self.sock_dir}"),
            ]
        )
        res = await self._run(
            self._bin("pg_ctl"), "start", "-D", self.data_dir, "-w", "-t", str(int(timeout)),
            "-l", self.log_file, "-o", opts,
            timeout=timeout + 15,
        )  # fmt: skip
        if res.returncode == 0:
            return
        lines = [
            " ".join(_LOG_PREFIX.sub("", ln).split()) for ln in _tail(self.log_file, since, 30)
        ]
        reason = next((ln for ln in lines if "could not bind" in ln), None)
        if reason is None:
            fatal = [ln for ln in lines if ln.startswith(("FATAL", "PANIC", "ERROR"))]
            reason = fatal[-1] if fatal else (lines[-1] if lines else res.stderr.strip())
        reason = re.sub(r"^(LOG|FATAL|PANIC|ERROR|WARNING): ", "", reason)
        lines = lines[-3:]
        hint = ""
        if "in use" in reason:
            hint = f"; port {self.port} is taken: stop what uses it or choose another port"
        raise SandboxError(
            f"PostgreSQL '{self.name}' did not start on port {self.port}: {reason}{hint}"
            f" (last lines in {self.log_file}: {' | '.join(lines)})"
        )

    def _clear_zombie_locks(self) -> None:
        """Remove lock files left by a killed postmaster that is still an unreaped zombie.

        PostgreSQL tests the pid in a lock file with kill(pid, 0), which succeeds on a zombie.
        """
        for lock in (
            self.data_dir / "postmaster.pid",
            self.sock_dir / f".s.PGSQL.{self.port}.lock",
        ):
            try:
                pid = int(lock.read_text().split("\n", 1)[0].strip())
            except (OSError, ValueError):
                continue
            if _proc_state(pid) == "Z":
                lock.unlink(missing_ok=True)

    async def stop(
        self,
        mode: Literal["fast", "immediate", "smart"] = "fast",
        timeout: float = 60,
    ) -> None:
        """pg_ctl stop -m mode -w (a frozen server is thawed first, or it could not hear it)."""
        if not self.is_running():
            self.frozen = False
            return
        self.thaw()
        res = await self._run(
            self._bin("pg_ctl"), "stop", "-D", self.data_dir, "-m", mode, "-w",
            "-t", str(int(timeout)),
            timeout=timeout + 15,
        )  # fmt: skip
        if res.returncode != 0 and self.is_running():
            raise self._fail(f"stop -m {mode}", res)

    async def kill(self, timeout: float = 15) -> None:
        """SIGKILL the postmaster and all its processes, like a pod killed; waits until gone."""
        pid = self.pid
        if pid is None or not pid_alive(pid):
            return
        # Listed first: once the postmaster is gone its children belong to another parent.
        processes = [pid, *_children(pid)]
        for p in processes:
            _signal_group(p, signal.SIGKILL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not any(pid_alive(p) or _group_members(p) for p in processes):
                self.frozen = False
                return
            await asyncio.sleep(0.05)
        raise SandboxError(f"PostgreSQL '{self.name}' (pid {pid}) survived SIGKILL for {timeout} s")

    def _signal_all(self, sig: signal.Signals) -> None:
        """Send sig to the postmaster, then to each of its children (every one a process group
        leader, with what it runs — an archive_command — in its group)."""
        pid = self.pid
        if pid is None or not pid_alive(pid) or not _signal_group(pid, sig):
            raise SandboxError(f"PostgreSQL '{self.name}' is not running")
        for child in _children(pid):
            _signal_group(child, sig)

    def freeze(self) -> None:
        """SIGSTOP the postmaster and its children: connections and statements hang (the kernel
        still accepts connections into the listen queue); nothing runs until :meth:`thaw`."""
        self._signal_all(signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        """SIGCONT what :meth:`freeze` stopped (nothing when it is not frozen)."""
        if not self.frozen:
            return
        self.frozen = False
        with contextlib.suppress(SandboxError):
            self._signal_all(signal.SIGCONT)

    async def promote(self, timeout: float = 60) -> None:
        """pg_ctl promote -w: end recovery, switch to a new timeline."""
        res = await self._run(
            self._bin("pg_ctl"), "promote", "-D", self.data_dir, "-w", "-t", str(int(timeout)),
            timeout=timeout + 15,
        )  # fmt: skip
        if res.returncode != 0:
            raise self._fail("promote", res)

    async def reload(self) -> None:
        res = await self._run(self._bin("pg_ctl"), "reload", "-D", self.data_dir, timeout=30)
        if res.returncode != 0:
            raise self._fail("reload", res)

    # ----------------------------------------------------------------- pg_hba.conf

    @property
    def hba_file(self) -> Path:
        return self.data_dir / "pg_hba.conf"

    def hba_prepend(self, lines: Sequence[str], marker: str) -> None:
        """Put lines before every rule of pg_hba.conf, each ending with ``# marker`` so that
        :meth:`hba_remove` takes exactly them away. Takes effect at the next reload or start."""
        text = self.hba_file.read_text()
        ours = "".join(f"{line}  # {marker}\n" for line in lines)
        write_pg_file(self.hba_file, ours + text)

    def hba_remove(self, marker: str) -> bool:
        """Take away the lines :meth:`hba_prepend` put with marker; whether there were any."""
        text = self.hba_file.read_text()
        kept = [
            ln for ln in text.splitlines(keepends=True) if not ln.rstrip().endswith(f"# {marker}")
        ]
        if len(kept) == len(text.splitlines(keepends=True)):
            return False
        write_pg_file(self.hba_file, "".join(kept))
        return True

    # ----------------------------------------------------------------- state

    @property
    def pid(self) -> int | None:
        """The postmaster's pid from postmaster.pid (None when there is none)."""
        try:
            first = (self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0]
            return int(first.strip())
        except (OSError, ValueError):
            return None

    def is_running(self) -> bool:
        pid = self.pid
        return pid is not None and pid_alive(pid)

    def dsn(
        self, user: str = "postgres", password: str | None = None, database: str = "postgres"
    ) -> str:
        """A libpq/asyncpg URL over TCP on 127.0.0.1."""
        pw = password if password is not None else self.superuser_password
        auth = urllib.parse.quote(user, safe="")
        if pw:
            auth += ":" + urllib.parse.quote(pw, safe="")
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{database}"

    async def psql(self, sql: str, *, database: str = "postgres", timeout: float = 60) -> str:
        """Run SQL with psql over the socket (trust); returns the unaligned tuples-only output."""
        res = await self._run(
            self._bin("psql"), "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1",
            "-h", self.sock_dir, "-p", str(self.port), "-U", "postgres", "-d", database,
            "-f", "-",
            timeout=timeout, input=sql.encode(),
        )  # fmt: skip
        if res.returncode != 0:
            raise self._fail("psql", res)
        return res.stdout.strip()

    async def system_identifier(self) -> str:
        return await self.psql("SELECT system_identifier FROM pg_control_system()")


def processes_using(paths: Iterable[Path]) -> list[int]:
    """Pids (not zombies) whose command line mentions one of paths: for leak checks in tests."""
    needles = [str(p).encode() for p in paths]
    found: list[int] = []
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if any(n in cmd for n in needles) and pid_alive(int(entry)):
            found.append(int(entry))
    return found
