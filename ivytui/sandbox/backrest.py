"""The pgBackRest repo in the bucket: real pgBackRest when installed, a built-in writer otherwise.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from ivytui.errors import SandboxError
from ivytui.sandbox.pg import CommandResult, make_pg_dir, run_command, write_pg_file
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
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY
    repo_path: str = DEFAULT_REPO_PATH
    uri_style: str = "path"
    verify_tls: bool | Path = False

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
    text = (
        "[global]\n"
        "repo1-type=s3\n"
        f"repo1-path={target.repo_path}\n"
        f"repo1-s3-bucket={target.bucket}\n"
        f"repo1-s3-endpoint={target.host}\n"
        f"repo1-storage-port={target.port}\n"
        f"repo1-s3-region={target.region}\n"
        f"repo1-s3-key={target.access_key}\n"
        f"repo1-s3-key-secret={target.secret_key}\n"
        f"repo1-s3-uri-style={target.uri_style}\n"
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
    return f"{_bin()} --config={config} --stanza={STANZA} archive-get %f \"%p\""


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

    The restored cluster keeps the primary's configuration: override port and archive_command
    afterwards.
    """
    make_pg_dir(data_dir, 0o700)
    args = ["--type=standby", "--process-max=2", f"--pg1-path={data_dir}"]
    if any(data_dir.iterdir()):
        args.append("--delta")
    await _pgbackrest(config, *args, "restore", timeout=timeout)


async def info(config: Path, *, timeout: float = 60) -> str:
    """`pgbackrest info --output=json`."""
    res = await _pgbackrest(config, "--output=json", "info", timeout=timeout)
    return res.stdout
