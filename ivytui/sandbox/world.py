"""The rehearsal world: API emulator, S3 server, two real PostgreSQL servers, WAL through the repo.

`World` runs inside one supervisor process (see `daemon.py`); PostgreSQL servers and the S3 server
are child processes whose pids are recorded in `world.json`, so that `sandbox down` can stop every
one of them even if the supervisor is gone. Its control endpoints are in `endpoints.py`.

Besides the superuser, v4 gets two roles before the full backup (so that the v5 standby, restored
from it, has them too):

- ``ivytui_monitor`` — ``LOGIN``, ``IN ROLE pg_monitor``, nothing else: what a monitor console
  connects as; its password is in the Secret ``<cluster>-ivytui-monitor`` (``username``,
  ``password``), which is not the v4 operator's (it outlives the v4 cluster);
- ``app`` — an application's role: ``SELECT``, ``INSERT`` on its own table ``app_rows`` and
  ``USAGE`` on schema ``public``; the careless writer (`load.CarelessWriter`) writes as it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ivytui.errors import SandboxError
from ivytui.sandbox import backrest as br
from ivytui.sandbox import objects as ob
from ivytui.sandbox import pg as pgmod
from ivytui.sandbox.endpoints import add_control_routes
from ivytui.sandbox.kubeapi import KubeAPIServer, KubeStore, crd_manifest, write_kubeconfig
from ivytui.sandbox.load import (
    APP_ROLE,
    APP_TABLE,
    MONITOR_ROLE,
    CarelessWriter,
    WriteLoad,
    roles_sql,
    sql_literal,
)
from ivytui.sandbox.objectstore import ObjectStore
from ivytui.sandbox.operators import V4Operator, V5Operator
from ivytui.sandbox.pgfaults import PgFaults

log = logging.getLogger(__name__)

STATE_FILE = "world.json"
PROGRESS_FILE = "progress.jsonl"
ENV_FILE = "env"
KUBECONFIG_FILE = "kubeconfig"
ACKED_FILE = "load-acked.txt"
CARELESS_ACKED_FILE = "careless-acked.txt"
CARELESS_COMMITS_FILE = "careless-commits.tsv"

Progress = Callable[[str, float], None]


@dataclass
class WorldOptions:
    directory: Path
    flavor: str = "ivyo"
    namespace: str = "pgo"
    cluster: str = "hippo"
    v5_name: str = ""
    storage: str = "s3"
    with_standby: bool = False
    load_interval: float = 0.25
    archive_timeout: int = 10
    backrest: str = "auto"  # auto | pgbackrest | builtin
    kube_port: int = 0
    s3_port: int = 0

    @property
    def standby_name(self) -> str:
        return self.v5_name or self.cluster


@dataclass
class _V5Instance:
    name: str
    server: pgmod.PgServer
    config: Path | None
    promoted: bool = False


@dataclass
class World:
    opts: WorldOptions
    progress: Progress = field(default=lambda stage, frac: None)

    def __post_init__(self) -> None:
        self.dir = self.opts.directory.resolve()
        self.namespace = self.opts.namespace
        self.cluster = self.opts.cluster
        self.flavor = ob.FLAVORS[self.opts.flavor]
        self.bucket = self.opts.cluster
        self.repo_path = f"/backrestrepo/{self.cluster}-backrest-shared-repo"
        self.superuser_password = secrets.token_urlsafe(12)
        self.v4_users = {"postgres": self.superuser_password, "testuser": secrets.token_urlsafe(12)}
        self.monitor_password = secrets.token_urlsafe(12)
        self.app_password = secrets.token_urlsafe(12)
        self.objstore = ObjectStore(
            self.dir, storage=self.opts.storage, bucket=self.bucket, port=self.opts.s3_port
        )
        self.store = KubeStore()
        self.api: KubeAPIServer | None = None
        self.pg_root: Path | None = None
        self.bindir: Path | None = None
        self.pg_major = 0
        self.v4: pgmod.PgServer | None = None
        self.v4_config: Path | None = None
        self.v4_port = 0
        self.v4_kill_delay = 1.0
        self.v5: dict[str, _V5Instance] = {}
        self.backrest_bin: str | None = None
        self.archiver: br.BuiltinArchiver | None = None
        self.load: WriteLoad | None = None
        self.careless: CarelessWriter | None = None
        self.v4_operator: V4Operator | None = None
        self.v5_operator: V5Operator | None = None
        self.started_at = time.time()
        self.pg_faults = PgFaults(self)
        self._ready = False
        self._stopping = False

    # ---- start and stop ---------------------------------------------------------------------

    @property
    def s3_endpoint(self) -> str:
        return self.objstore.endpoint

    def target(self) -> br.RepoTarget:
        return br.RepoTarget(
            host="127.0.0.1",
            port=self.objstore.port,
            bucket=self.bucket,
            region=self.objstore.region,
            access_key=self.objstore.access_key,
            secret_key=self.objstore.secret_key,
            repo_path=self.repo_path,
            uri_style="path",
            verify_tls=False,
            storage=self.opts.storage,
        )

    def v4_settings(self) -> ob.V4Settings:
        return ob.V4Settings(
            cluster=self.cluster,
            namespace=self.namespace,
            pg_major=self.pg_major,
            port=self.v4_port,
            bucket=self.bucket,
            endpoint=self.s3_endpoint,
            region=self.objstore.region,
            repo_path=self.repo_path,
            storage=self.opts.storage,
            uri_style="path",
            verify_tls=False,
        )

    async def start(self) -> None:
        steps = 7 + (1 if self.opts.with_standby else 0)
        done = 0

        def step(stage: str) -> None:
            nonlocal done
            self.progress(stage, done / steps)
            done += 1

        try:
            step("looking for PostgreSQL and pgBackRest")
            self.bindir = pgmod.find_pg_bindir()
            self.pg_major = pgmod.pg_major(self.bindir)
            if self.opts.backrest == "builtin":
                self.backrest_bin = None
            else:
                self.backrest_bin = br.have_pgbackrest()
                if self.backrest_bin is None and self.opts.storage == "gcs":
                    raise SandboxError(
                        "--storage gcs needs pgBackRest: apt-get install pgbackrest "
                        "(the built-in archiver speaks S3 only)"
                    )
                if self.backrest_bin is None and self.opts.backrest == "pgbackrest":
                    raise SandboxError(
                        "pgbackrest is not installed: apt-get install pgbackrest, or use --backrest builtin"
                    )
            self.pg_root = pgmod.make_pg_root()
            self._write_state()

            what = "the GCS emulator" if self.objstore.is_gcs else "the S3 server"
            step(f"starting {what} (TLS, bucket {self.bucket})")
            await self.objstore.start()
            self._write_state()

            step("starting the Kubernetes API emulator")
            await self._start_api()
            self._write_state()

            step(f"starting the v4 primary (PostgreSQL {self.pg_major})")
            await self._start_v4()
            self._write_state()

            step("creating the stanza and a full backup in the repo")
            await self._create_repo()

            step("creating the v4 objects and starting the operators")
            self._create_objects()
            self.v4_operator = V4Operator(self)
            self.v4_operator.create_objects()
            self.v4_operator.start()
            self.v5_operator = V5Operator(self)
            self.v5_operator.start()

            step("starting the write load on v4")
            assert self.v4 is not None
            self.load = WriteLoad(
                self.v4_dsn(), self.dir / ACKED_FILE, interval=self.opts.load_interval
            )
            self.load.start()

            if self.opts.with_standby:
                step(
                    f"creating the v5 standby {self.opts.standby_name} and waiting for it to replay"
                )
                self.create_standby_object()
                await self.wait_standby_ready(self.opts.standby_name, timeout=120)
            self._write_state(ready=True)
            self._write_env()
            self.progress("ready", 1.0)
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        await self.pg_faults.close()
        for op in (self.v5_operator, self.v4_operator):
            if op is not None:
                await op.stop()
        if self.load is not None:
            await self.load.stop()
        if self.careless is not None:
            await self.careless.stop()
        for inst in list(self.v5.values()):
            with contextlib.suppress(Exception):
                await inst.server.stop("immediate")
        if self.v4 is not None:
            with contextlib.suppress(Exception):
                await self.v4.stop("immediate")
        if self.archiver is not None:
            with contextlib.suppress(Exception):
                await self.archiver.stop()
        if self.api is not None:
            with contextlib.suppress(Exception):
                await self.api.stop()
        await self.objstore.stop()
        if self.pg_root is not None:
            shutil.rmtree(self.pg_root, ignore_errors=True)
        self._write_state(stopped=True)

    async def _start_api(self) -> None:
        self.api = KubeAPIServer(self.store, port=self.opts.kube_port)
        add_control_routes(self.api.app, self)
        await self.api.start()
        write_kubeconfig(self.dir / KUBECONFIG_FILE, self.api.url, namespace=self.namespace)

    def _create_objects(self) -> None:
        self.store.create(
            "namespaces",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": self.namespace}},
        )
        key = "customresourcedefinitions.apiextensions.k8s.io"
        self.store.create(
            key,
            crd_manifest(
                ob.V4_GROUP, ob.V4_VERSION, ob.V4_PLURAL, ob.V4_KIND, short_names=("pgc",)
            ),
        )
        f = self.flavor
        self.store.create(
            key, crd_manifest(f.group, f.version, f.plural, f.kind, short_names=f.short_names)
        )
        # Not the v4 operator's (no pg-cluster label): it stays when v4 is retired.
        self.store.create(
            "secrets",
            ob.secret(
                self.monitor_secret,
                self.namespace,
                {"app.kubernetes.io/part-of": "ivytui-sandbox"},
                {"username": MONITOR_ROLE, "password": self.monitor_password},
            ),
            namespace=self.namespace,
        )

    # ---- PostgreSQL ---------------------------------------------------------------------------

    def v4_dsn(self) -> str:
        return f"postgresql://postgres:{self.superuser_password}@127.0.0.1:{self.v4_port}/postgres"

    @property
    def monitor_secret(self) -> str:
        return f"{self.cluster}-ivytui-monitor"

    def app_targets(self) -> list[tuple[str, str]]:
        """Where the careless application writes, as role ``app``: v4, then each v5."""
        auth = f"{APP_ROLE}:{self.app_password}"
        out: list[tuple[str, str]] = []
        if self.v4 is not None and self.v4_port:
            out.append(("v4", f"postgresql://{auth}@127.0.0.1:{self.v4_port}/postgres"))
        for name, inst in list(self.v5.items()):
            out.append((f"v5 {name}", f"postgresql://{auth}@127.0.0.1:{inst.server.port}/postgres"))
        return out

    async def careless_start(self, interval: float) -> CarelessWriter:
        """Start the careless writer (again, at this rate, if it runs): ids go on from the file."""
        await self.careless_stop()
        self.careless = CarelessWriter(
            self.app_targets,
            self.dir / CARELESS_ACKED_FILE,
            commits_file=self.dir / CARELESS_COMMITS_FILE,
            interval=interval,
        )
        self.careless.start()
        return self.careless

    async def careless_stop(self) -> CarelessWriter | None:
        if self.careless is not None:
            await self.careless.stop()
        return self.careless

    def _pg_settings(self, *, port: int) -> dict[str, str | int]:
        return {
            "port": port,
            "archive_mode": "on",
            "archive_timeout": self.opts.archive_timeout,
            "wal_retrieve_retry_interval": "1s",
            "max_connections": 40,
        }

    async def _start_v4(self) -> None:
        assert self.pg_root is not None and self.bindir is not None
        self.v4_port = pgmod.free_port()
        base = self.pg_root / "v4"
        self.v4 = pgmod.PgServer(
            "v4", base / "data", port=self.v4_port, bindir=self.bindir, run_dir=base / "run"
        )
        await self.v4.initdb(self.superuser_password)
        settings = self._pg_settings(port=self.v4_port)
        if self.backrest_bin:
            self.v4_config = base / "pgbackrest.conf"
            self._backrest_config(self.v4_config, self.v4, base)
            settings["archive_command"] = br.archive_command(self.v4_config)
        else:
            self.archiver = br.BuiltinArchiver(self.target(), spool=self.pg_root / "spool")
            await self.archiver.start()
            settings["archive_command"] = self.archiver.archive_command
        await self.v4.configure(settings)
        await self.v4.start()
        await self.v4.psql(
            f"CREATE USER testuser PASSWORD {sql_literal(self.v4_users['testuser'])};\n"
            + roles_sql(monitor_password=self.monitor_password, app_password=self.app_password)
        )

    def _backrest_config(self, path: Path, server: pgmod.PgServer, base: Path) -> None:
        br.write_config(
            path,
            self.target(),
            pg_path=server.data_dir,
            pg_port=server.port,
            pg_socket_dir=server.socket_dir,
            log_path=base / "backrest-log",
            lock_path=base / "backrest-lock",
            spool_path=base / "backrest-spool",
        )

    async def _create_repo(self) -> None:
        assert self.v4 is not None
        if self.backrest_bin and self.v4_config is not None:
            await br.stanza_create(self.v4_config)
            await br.backup(self.v4_config)
        else:
            assert self.archiver is not None
            await self.archiver.create_stanza(self.v4)

    async def v4_kill(self) -> None:
        if self.load is not None:
            self.load.last_error = "v4 is shut down"
        if self.v4 is not None and self.v4.is_running():
            await self.v4.kill()
        if self.archiver is not None:
            self.archiver.paused = True
        self._write_state()

    async def v4_start(self) -> None:
        if self.v4 is None:
            raise SandboxError("the v4 data directory is gone")
        if self.archiver is not None:
            self.archiver.paused = False
        if not self.v4.is_running():
            await self.v4.start()
        self._write_state()

    async def v4_remove_data(self) -> None:
        if self.v4 is not None:
            shutil.rmtree(self.v4.data_dir, ignore_errors=True)
            self.v4 = None
        self._write_state()

    async def repo_has_stanza(self, repo_path: str) -> bool:
        return await self.objstore.has_key(f"{repo_path.strip('/')}/archive/db/archive.info")

    async def v5_bootstrap(self, name: str, repo_path: str) -> int:
        assert self.pg_root is not None and self.bindir is not None
        if repo_path.rstrip("/") != self.repo_path:
            raise SandboxError(f"repo path {repo_path} holds no stanza db")
        port = pgmod.free_port()
        base = self.pg_root / f"v5-{name}"
        server = pgmod.PgServer(
            f"v5-{name}", base / "data", port=port, bindir=self.bindir, run_dir=base / "run"
        )
        config: Path | None = None
        settings = self._pg_settings(port=port)
        settings["hot_standby"] = "on"
        if self.backrest_bin:
            config = base / "pgbackrest.conf"
            base.mkdir(parents=True, exist_ok=True)
            self._backrest_config(config, server, base)
            await br.restore_standby(config, server.data_dir)
            settings["archive_command"] = br.archive_command(config)
        else:
            assert self.archiver is not None and self.v4 is not None
            await self.archiver.seed_standby(self.v4, server)
            settings["archive_command"] = self.archiver.archive_command
        await server.configure(settings)
        await server.start()
        self.v5[name] = _V5Instance(name, server, config)
        self._write_state()
        return port

    async def v5_promote(self, name: str) -> None:
        inst = self.v5.get(name)
        if inst is None or not inst.server.is_running():
            raise SandboxError(f"v5 {name} is not running")
        await inst.server.promote()
        inst.promoted = True

    async def v5_remove(self, name: str) -> None:
        inst = self.v5.pop(name, None)
        if inst is not None:
            with contextlib.suppress(Exception):
                await inst.server.stop("fast")
            shutil.rmtree(inst.server.data_dir.parent, ignore_errors=True)
        self._write_state()

    # ---- the v5 object, as an engineer would create it -------------------------------------

    def create_standby_object(
        self, name: str | None = None, *, repo_path: str | None = None, bucket: str | None = None
    ) -> dict[str, Any]:
        name = name or self.opts.standby_name
        secret_name = f"{name}-pgbackrest-secret"
        if self.store.try_get("secrets", secret_name, namespace=self.namespace) is None:
            conf = ob.repo_conf(
                self.opts.storage, self.objstore.access_key, self.objstore.secret_key
            )
            self.store.create(
                "secrets",
                ob.secret(secret_name, self.namespace, {}, conf),
                namespace=self.namespace,
            )
        manifest = ob.v5_standby_manifest(
            self.flavor,
            name=name,
            namespace=self.namespace,
            pg_major=self.pg_major,
            bucket=bucket or self.bucket,
            endpoint=self.s3_endpoint,
            region=self.objstore.region,
            repo_path=repo_path or self.repo_path,
            uri_style="path",
            verify_tls=False,
            config_secret=secret_name,
            storage=self.opts.storage,
        )
        return self.store.create(self.flavor.key, manifest, namespace=self.namespace)

    async def wait_standby_ready(self, name: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            obj = self.store.try_get(self.flavor.key, name, namespace=self.namespace)
            conds = (obj or {}).get("status", {}).get("conditions", [])
            for c in conds:
                if c.get("type") == "PGBackRestReplicaCreate":
                    if c.get("status") == "True":
                        return
                    if c.get("reason") not in ("Restoring",):
                        raise SandboxError(f"the v5 standby failed: {c.get('message')}")
            if time.monotonic() > deadline:
                raise SandboxError(f"the v5 standby was not ready within {timeout:.0f} s")
            await asyncio.sleep(0.2)

    # ---- faults and introspection -------------------------------------------------------------

    def pg_server(self, target: str, name: str) -> tuple[str, pgmod.PgServer]:
        """For the PostgreSQL faults (`pgfaults.FaultWorld`): v4, or a v5 instance (``""``: the
        standby's name, or the only instance)."""
        if target == "v4":
            if self.v4 is None:
                raise SandboxError("v4 has no data directory any more (it was retired)")
            return "", self.v4
        inst = self.v5.get(name or self.opts.standby_name)
        if inst is None and not name and len(self.v5) == 1:
            inst = next(iter(self.v5.values()))
        if inst is None:
            have = ", ".join(self.v5) or "none"
            raise SandboxError(f"no v5 instance {name or self.opts.standby_name!r} (there: {have})")
        return inst.name, inst.server

    def pg_restart_refused(self, target: str, name: str, server: pgmod.PgServer) -> str | None:
        if target == "v4":
            obj = self.store.try_get(ob.V4_KEY, self.cluster, namespace=self.namespace)
            if self.v4 is not server or obj is None:
                return "v4 was deleted by its operator"
            if obj.get("spec", {}).get("shutdown"):
                return "v4 is shut down by its operator (spec.shutdown)"
            return None
        inst = self.v5.get(name)
        return None if inst is not None and inst.server is server else f"v5 {name} was deleted"

    async def pg_restart(self, target: str, name: str) -> None:
        if target == "v4":
            await self.v4_start()
            return
        inst = self.v5.get(name)
        if inst is None:
            raise SandboxError(f"v5 {name} was deleted")
        await inst.server.start()

    def pg_changed(self) -> None:
        self._write_state()

    async def storage_fault(self, up: bool) -> None:
        """Make the object store refuse connections (up=False) or serve again, keeping its data."""
        await self.objstore.fault(up)
        if self.objstore.is_gcs:
            self._write_state(ready=True)  # the emulator's pid changed

    def describe(self) -> dict[str, Any]:
        v5 = {
            name: {"port": inst.server.port, "pid": _pid(inst.server), "promoted": inst.promoted}
            for name, inst in self.v5.items()
        }
        return {
            "supervisor_pid": os.getpid(),
            "started_at": self.started_at,
            "flavor": self.flavor.name,
            "namespace": self.namespace,
            "cluster": self.cluster,
            "v5_name": self.opts.standby_name,
            "storage": self.opts.storage,
            "backrest": "pgbackrest" if self.backrest_bin else "builtin",
            "pg_major": self.pg_major,
            "pg_root": str(self.pg_root) if self.pg_root else None,
            "kube_url": self.api.url if self.api else None,
            "s3": {
                "endpoint": f"https://{self.s3_endpoint}" if self.objstore.port else None,
                "storage": self.opts.storage,
                "pid": self.objstore.pid,
                "port": self.objstore.port,
                "bucket": self.bucket,
                "access_key": self.objstore.access_key,
                "secret_key": self.objstore.secret_key,
                "region": self.objstore.region,
                "repo_path": self.repo_path,
            },
            "v4": {
                "port": self.v4_port,
                "pid": _pid(self.v4),
                "dsn": self.v4_dsn() if self.v4_port else None,
            },
            "v5": v5,
            "superuser_password": self.superuser_password,
            "load": {
                "acked": self.load.acked if self.load else 0,
                "last_error": self.load.last_error if self.load else None,
                "acked_file": str(self.dir / ACKED_FILE),
            },
            "monitor": {"user": MONITOR_ROLE, "secret": self.monitor_secret},
            "app": {"user": APP_ROLE, "password": self.app_password, "table": APP_TABLE},
            "careless": {
                "running": self.careless.running if self.careless else False,
                "acked_file": str(self.dir / CARELESS_ACKED_FILE),
                "commits_file": str(self.dir / CARELESS_COMMITS_FILE),
            },
        }

    def _write_state(self, *, ready: bool = False, stopped: bool = False) -> None:
        self._ready = self._ready or ready
        info = self.describe()
        info["ready"] = self._ready
        info["stopped"] = stopped
        path = self.dir / STATE_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(info, indent=2))
        os.chmod(tmp, 0o600)
        tmp.replace(path)

    def env_lines(self) -> list[str]:
        s3 = f"https://{self.s3_endpoint}"
        return [
            f"export KUBECONFIG={self.dir / KUBECONFIG_FILE}",
            f"export IVYTUI_NAMESPACE={self.namespace}",
            f"export IVYTUI_CLUSTER={self.cluster}",
            f"export IVYTUI_V5_NAME={self.opts.standby_name}",
            f"export IVYTUI_FLAVOR={self.flavor.name}",
            # For a config file's v4_database/v5_database: {user: …, secret: …}; ivytui itself
            # does not read these two.
            f"export SANDBOX_MONITOR_USER={MONITOR_ROLE}",
            f"export SANDBOX_MONITOR_SECRET={self.monitor_secret}",
        ] + (
            [
                f"export STORAGE_EMULATOR_HOST={s3}",
                f"export IVYTUI_GCS_CA_FILE={self.dir / 'tls' / 'cert.pem'}",
            ]
            if self.objstore.is_gcs
            else [
                f"export AWS_ENDPOINT_URL_S3={s3}",
                f"export AWS_ACCESS_KEY_ID={self.objstore.access_key}",
                f"export AWS_SECRET_ACCESS_KEY={self.objstore.secret_key}",
                f"export AWS_DEFAULT_REGION={self.objstore.region}",
                f"export AWS_CA_BUNDLE={self.dir / 'tls' / 'cert.pem'}",
            ]
        )

    def _write_env(self) -> None:
        path = self.dir / ENV_FILE
        path.write_text("\n".join(self.env_lines()) + "\n")
        os.chmod(path, 0o600)


def _pid(server: pgmod.PgServer | None) -> int | None:
    """The postmaster's pid while it runs (a killed one leaves its postmaster.pid behind)."""
    return server.pid if server is not None and server.is_running() else None
