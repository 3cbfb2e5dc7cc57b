"""The two operators, played inside the world: they react to the objects as the real ones do."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ivytui.errors import SandboxError
from ivytui.sandbox import objects as ob
from ivytui.sandbox.kubeapi import ApiError, KubeStore

if TYPE_CHECKING:
    from ivytui.sandbox.world import World

log = logging.getLogger(__name__)

TERMINATING = "sandbox.ivytui/terminating"


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Controller:
    """Shared plumbing: a store subscription and helpers to write objects and events."""

    component = "controller"

    def __init__(self, world: World) -> None:
        self.world = world
        self.store: KubeStore = world.store
        self.ns = world.namespace
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None

    def start(self) -> None:
        queue = self.store.subscribe()
        self._loop_task = asyncio.create_task(self._loop(queue), name=self.component)

    async def stop(self) -> None:
        tasks = [t for t in (self._loop_task, *self._tasks) if t is not None]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t

    async def _loop(self, queue: asyncio.Queue[tuple[str, str, dict[str, Any]]]) -> None:
        try:
            while True:
                etype, key, obj = await queue.get()
                try:
                    await self.handle(etype, key, obj)
                except Exception:
                    log.exception("%s failed on %s %s", self.component, etype, key)
        finally:
            self.store.unsubscribe(queue)

    async def handle(self, etype: str, key: str, obj: dict[str, Any]) -> None:
        raise NotImplementedError

    def spawn(self, coro: Awaitable[None], name: str) -> None:
        async def runner() -> None:
            try:
                await coro
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s: %s failed", self.component, name)

        task = asyncio.create_task(runner(), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---- object helpers -------------------------------------------------------------------

    def put(self, key: str, obj: dict[str, Any]) -> dict[str, Any]:
        name = obj["metadata"]["name"]
        existing = self.store.try_get(key, name, namespace=self.ns)
        if existing is None:
            return self.store.create(key, obj, namespace=self.ns)
        body = dict(obj)
        body["metadata"] = dict(obj["metadata"])
        status = body.pop("status", None)
        updated = self.store.merge_patch(key, name, body, namespace=self.ns)
        if status is not None and self.store.resource_type(key).has_status:
            updated = self.store.merge_patch(
                key, name, {"status": status}, namespace=self.ns, subresource="status"
            )
        return updated

    def remove(self, key: str, name: str) -> None:
        with contextlib.suppress(ApiError):
            self.store.delete(key, name, namespace=self.ns)

    def remove_matching(self, key: str, selector: str) -> None:
        items, _ = self.store.list(key, namespace=self.ns, label_selector=selector)
        for item in items:
            self.remove(key, item["metadata"]["name"])

    def set_status(self, key: str, name: str, status: dict[str, Any]) -> None:
        with contextlib.suppress(ApiError):
            self.store.merge_patch(
                key, name, {"status": status}, namespace=self.ns, subresource="status"
            )

    def event(self, obj: dict[str, Any], reason: str, message: str, kind: str = "Normal") -> None:
        with contextlib.suppress(ApiError):
            self.store.create(
                "events",
                ob.event(
                    self.ns,
                    obj,
                    reason=reason,
                    message=message,
                    kind=kind,
                    component=self.component,
                    timestamp=now_rfc3339(),
                ),
                namespace=self.ns,
            )


class V4Operator(Controller):
    """Plays operator v4: shutdown scales everything to 0 at once and kills PostgreSQL."""

    component = "v4-operator"

    def __init__(self, world: World) -> None:
        super().__init__(world)
        self.shutdown_seen: bool = False
        self._busy = asyncio.Lock()

    @property
    def cluster(self) -> str:
        return self.world.cluster

    def create_objects(self) -> None:
        w = self.world
        c = self.cluster
        settings = w.v4_settings()
        self.put(ob.V4_KEY, ob.pgcluster(settings))
        obj = self.store.get(ob.V4_KEY, c, namespace=self.ns)
        self.set_status(ob.V4_KEY, c, ob.pgcluster(settings)["status"])
        common = {"vendor": "crunchydata", "pg-cluster": c}
        if w.opts.storage == "gcs":
            repo_keys = {
                "gcs-key": json.dumps({"type": "authorized_user", "token": w.objstore.secret_key})
            }
        else:
            repo_keys = {
                "aws-s3-key": w.objstore.access_key,
                "aws-s3-key-secret": w.objstore.secret_key,
            }
        if w.objstore.ca_pem:
            repo_keys["aws-s3-ca.crt"] = w.objstore.ca_pem
        self.put(
            "secrets",
            ob.secret(f"{c}-backrest-repo-config", self.ns, common, repo_keys),
        )
        for user, password in w.v4_users.items():
            self.put(
                "secrets",
                ob.secret(
                    f"{c}-{user}-secret",
                    self.ns,
                    common,
                    {"username": user, "password": password},
                ),
            )
        self.put(
            "services",
            ob.service(
                c, self.ns, common, port=w.v4_port, selector={"pg-cluster": c, "role": "master"}
            ),
        )
        self.put(
            "services",
            ob.service(
                f"{c}-backrest-shared-repo",
                self.ns,
                common,
                port=2022,
                selector={"pg-cluster": c, "pgo-backrest-repo": "true"},
            ),
        )
        self._scale(1)
        self.event(obj, "Initialized", f"pgcluster {c} is initialized")

    def _scale(self, replicas: int) -> None:
        c = self.cluster
        image = f"registry.developers.crunchydata.com/crunchydata/crunchy-postgres-ha:centos8-{self.world.pg_major}.4-4.7.3"
        repo_image = (
            "registry.developers.crunchydata.com/crunchydata/pgo-backrest-repo:centos8-4.7.3"
        )
        for dep in (
            ob.deployment(c, self.ns, ob.v4_primary_labels(c), replicas=replicas, image=image),
            ob.deployment(
                f"{c}-backrest-shared-repo",
                self.ns,
                ob.v4_repo_labels(c),
                replicas=replicas,
                image=repo_image,
            ),
        ):
            self.put("deployments.apps", dep)
            with contextlib.suppress(ApiError):
                self.store.merge_patch(
                    "deployments.apps",
                    dep["metadata"]["name"],
                    {"status": dep["status"]},
                    namespace=self.ns,
                    subresource="status",
                )
        if replicas:
            self.put(
                "pods",
                ob.pod(
                    f"{c}-{ob.random_suffix(9)}-{ob.random_suffix()}",
                    self.ns,
                    ob.v4_primary_labels(c),
                    container="database",
                    image=image,
                ),
            )
            self.put(
                "pods",
                ob.pod(
                    f"{c}-backrest-shared-repo-{ob.random_suffix(9)}-{ob.random_suffix()}",
                    self.ns,
                    ob.v4_repo_labels(c),
                    container="database",
                    image=repo_image,
                ),
            )

    def _pods(self) -> list[dict[str, Any]]:
        items, _ = self.store.list(
            "pods", namespace=self.ns, label_selector=f"pg-cluster={self.cluster}"
        )
        return items

    async def handle(self, etype: str, key: str, obj: dict[str, Any]) -> None:
        if key != ob.V4_KEY or obj["metadata"]["name"] != self.cluster:
            return
        if etype == "DELETED":
            self.spawn(self._delete(), "v4-delete")
            return
        shutdown = bool(obj.get("spec", {}).get("shutdown"))
        state = obj.get("status", {}).get("state", "")
        if shutdown and state != "pgcluster Shutdown":
            # Like the real operator: the state is set first and at once, without waiting for pods.
            self.set_status(
                ob.V4_KEY,
                self.cluster,
                {"state": "pgcluster Shutdown", "message": "Cluster shut down"},
            )
            self.spawn(self._shutdown(obj), "v4-shutdown")
        elif not shutdown and state == "pgcluster Shutdown":
            self.set_status(
                ob.V4_KEY,
                self.cluster,
                {"state": "pgcluster Restoring", "message": "Starting cluster"},
            )
            self.spawn(self._startup(obj), "v4-startup")

    async def _shutdown(self, obj: dict[str, Any]) -> None:
        async with self._busy:
            self.event(
                obj,
                "ClusterShutdown",
                f"shutting down pgcluster {self.cluster}: all deployments scaled to 0",
            )
            for name in (self.cluster, f"{self.cluster}-backrest-shared-repo"):
                with contextlib.suppress(ApiError):
                    self.store.merge_patch(
                        "deployments.apps", name, {"spec": {"replicas": 0}}, namespace=self.ns
                    )
                    self.store.merge_patch(
                        "deployments.apps",
                        name,
                        {"status": {"replicas": 0, "readyReplicas": 0, "availableReplicas": 0}},
                        namespace=self.ns,
                        subresource="status",
                    )
            # The pods are Terminating (deletionTimestamp set) until PostgreSQL is gone.
            for p in self._pods():
                name = p["metadata"]["name"]
                with contextlib.suppress(ApiError):
                    self.store.merge_patch(
                        "pods", name, {"metadata": {"finalizers": [TERMINATING]}}, namespace=self.ns
                    )
                    self.store.delete("pods", name, namespace=self.ns)
            await asyncio.sleep(self.world.v4_kill_delay)
            # A paused Patroni does not stop PostgreSQL cleanly, and the repo host (the only way to
            # the bucket) dies at the same moment: whatever was not archived yet stays behind.
            await self.world.v4_kill()
            await asyncio.sleep(0.5)
            for p in self._pods():
                with contextlib.suppress(ApiError):
                    self.store.merge_patch(
                        "pods",
                        p["metadata"]["name"],
                        {"metadata": {"finalizers": None}},
                        namespace=self.ns,
                    )

    async def _startup(self, obj: dict[str, Any]) -> None:
        async with self._busy:
            await self.world.v4_start()
            self._scale(1)
            self.set_status(
                ob.V4_KEY,
                self.cluster,
                {"state": "pgcluster Initialized", "message": "Cluster has been initialized"},
            )
            self.event(obj, "ClusterStarted", f"pgcluster {self.cluster} started")

    async def _delete(self) -> None:
        async with self._busy:
            await self.world.v4_kill()
            c = self.cluster
            for key in ("pods", "deployments.apps", "services", "secrets", "configmaps"):
                self.remove_matching(key, f"pg-cluster={c}")
            await self.world.v4_remove_data()


class V5Operator(Controller):
    """Plays operator v5 (IVYO or PGO): standby bootstrap from the repo, promotion, deletion."""

    component = "v5-operator"

    def __init__(self, world: World) -> None:
        super().__init__(world)
        self.flavor = world.flavor
        self._state: dict[str, str] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def lock(self, name: str) -> asyncio.Lock:
        return self._locks.setdefault(name, asyncio.Lock())

    def label(self, name: str) -> str:
        return self.flavor.label(name)

    async def handle(self, etype: str, key: str, obj: dict[str, Any]) -> None:
        if key != self.flavor.key:
            return
        name = obj["metadata"]["name"]
        if etype == "DELETED":
            self._state.pop(name, None)
            self.spawn(self._delete(name), f"v5-delete-{name}")
            return
        spec = obj.get("spec", {})
        standby = bool(spec.get("standby", {}).get("enabled"))
        state = self._state.get(name)
        if state is None:
            self._state[name] = "bootstrapping"
            self.spawn(self._bootstrap(obj), f"v5-bootstrap-{name}")
        elif state == "standby" and not standby:
            self._state[name] = "promoting"
            self.spawn(self._promote(obj), f"v5-promote-{name}")

    def _condition(
        self, type_: str, ok: bool, reason: str, message: str, generation: int
    ) -> dict[str, Any]:
        return {
            "type": type_,
            "status": "True" if ok else "False",
            "reason": reason,
            "message": message,
            "lastTransitionTime": now_rfc3339(),
            "observedGeneration": generation,
        }

    def _fail(self, obj: dict[str, Any], reason: str, message: str) -> None:
        name = obj["metadata"]["name"]
        gen = obj["metadata"].get("generation", 1)
        self._state[name] = "failed"
        self.set_status(
            self.flavor.key,
            name,
            {
                "conditions": [
                    self._condition("PGBackRestReplicaRepoReady", False, reason, message, gen),
                    self._condition("PGBackRestReplicaCreate", False, reason, message, gen),
                ],
                "instances": [
                    {"name": "instance1", "replicas": 1, "readyReplicas": 0, "updatedReplicas": 1}
                ],
                "observedGeneration": gen,
            },
        )
        self.event(obj, reason, message, kind="Warning")

    def _instance_pod(self, name: str, ready: bool, role: str) -> dict[str, Any]:
        inst = f"{name}-instance1-{ob.suffix(name, 4)}"
        labels = {
            self.label("cluster"): name,
            self.label("instance-set"): "instance1",
            self.label("instance"): inst,
            self.label("data"): "postgres",
            self.label("role"): role,
            self.label("patroni"): f"{name}-ha",
        }
        return ob.pod(
            f"{inst}-0",
            self.ns,
            labels,
            container="database",
            image=f"{self.flavor.name}-postgres:{self.world.pg_major}",
            ready=ready,
            phase="Running" if ready else "Pending",
        )

    def _repo_pod(self, name: str) -> dict[str, Any]:
        labels = {
            self.label("cluster"): name,
            self.label("pgbackrest"): "",
            self.label("pgbackrest-dedicated"): "",
            self.label("data"): "pgbackrest",
        }
        return ob.pod(
            f"{name}-repo-host-0", self.ns, labels, container="pgbackrest", image="pgbackrest:2.45"
        )

    async def _validate(self, obj: dict[str, Any]) -> tuple[dict[str, str], str] | None:
        """Check the repo settings as the real operator's restore would; None after a failure."""
        spec = obj.get("spec", {})
        backrest = spec.get("backups", {}).get("pgbackrest", {})
        repos = backrest.get("repos") or []
        repo_name = spec.get("standby", {}).get("repoName", "repo1")
        repo = next((r for r in repos if r.get("name") == repo_name), None)
        if repo is None:
            self._fail(
                obj,
                "RepoNotFound",
                f"spec.standby.repoName {repo_name!r} is not one of spec.backups.pgbackrest.repos",
            )
            return None
        s3 = repo.get("s3")
        gcs = repo.get("gcs")
        bucket = (s3 or gcs or {}).get("bucket", "")
        if bucket != self.world.bucket:
            self._fail(obj, "RepoUnreachable", f"bucket {bucket!r} does not exist (NoSuchBucket)")
            return None
        path = backrest.get("global", {}).get(f"{repo_name}-path", "/pgbackrest/repo1")
        creds: dict[str, str] = {}
        for conf in backrest.get("configuration") or []:
            sname = conf.get("secret", {}).get("name")
            if not sname:
                continue
            sec = self.store.try_get("secrets", sname, namespace=self.ns)
            if sec is None:
                self._fail(
                    obj,
                    "SecretNotFound",
                    f"Secret {sname!r} referenced in spec.backups.pgbackrest.configuration not found",
                )
                return None
            creds.update(ob.parse_backrest_conf(sec))
        if not await self.world.repo_has_stanza(path):
            self._fail(
                obj,
                "StanzaNotFound",
                f"unable to find a valid repository: no archive.info for stanza db under {path} in bucket {bucket}",
            )
            return None
        return creds, path

    async def _bootstrap(self, obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        gen = obj["metadata"].get("generation", 1)
        async with self.lock(name):
            standby = bool(obj.get("spec", {}).get("standby", {}).get("enabled"))
            if not standby:
                self._fail(
                    obj,
                    "NotSupported",
                    "the sandbox operator only creates clusters in standby mode",
                )
                return
            self.put("pods", self._instance_pod(name, False, "replica"))
            self.put("pods", self._repo_pod(name))
            self.set_status(
                self.flavor.key,
                name,
                {
                    "instances": [
                        {
                            "name": "instance1",
                            "replicas": 1,
                            "readyReplicas": 0,
                            "updatedReplicas": 1,
                        }
                    ],
                    "conditions": [
                        self._condition(
                            "PGBackRestReplicaCreate",
                            False,
                            "Restoring",
                            "restoring the standby from repo1",
                            gen,
                        )
                    ],
                    "observedGeneration": gen,
                },
            )
            checked = await self._validate(obj)
            if checked is None:
                return
            _, path = checked
            try:
                port = await self.world.v5_bootstrap(name, path)
            except SandboxError as exc:
                self._fail(obj, "RestoreFailed", str(exc))
                return
            self.put("pods", self._instance_pod(name, True, "master"))
            common = {self.label("cluster"): name}
            self.put(
                "services",
                ob.service(
                    f"{name}-primary",
                    self.ns,
                    common,
                    port=port,
                    selector={self.label("cluster"): name, self.label("role"): "master"},
                ),
            )
            self.put(
                "secrets",
                ob.secret(
                    f"{name}-pguser-postgres",
                    self.ns,
                    {**common, self.label("pguser"): "postgres", self.label("role"): "pguser"},
                    {
                        "dbname": "postgres",
                        "host": "127.0.0.1",
                        "port": str(port),
                        "user": "postgres",
                        "password": self.world.superuser_password,
                        "uri": f"postgresql://postgres:{self.world.superuser_password}@127.0.0.1:{port}/postgres",
                    },
                ),
            )
            self.set_status(
                self.flavor.key,
                name,
                {
                    "instances": [
                        {
                            "name": "instance1",
                            "replicas": 1,
                            "readyReplicas": 1,
                            "updatedReplicas": 1,
                        }
                    ],
                    "pgbackrest": {
                        "repos": [
                            {
                                "name": "repo1",
                                "stanzaCreated": False,
                                "repoOptionsHash": ob.suffix(path, 8),
                            }
                        ]
                    },
                    "conditions": [
                        self._condition(
                            "PGBackRestReplicaRepoReady",
                            True,
                            "StanzaExists",
                            "pgBackRest replica create repo is ready for backups",
                            gen,
                        ),
                        self._condition(
                            "PGBackRestReplicaCreate",
                            True,
                            "RepoBackupComplete",
                            "pgBackRest replica creation is now possible",
                            gen,
                        ),
                    ],
                    "observedGeneration": gen,
                },
            )
            self.event(obj, "StandbyReady", f"standby {name} is replaying WAL from repo1 ({path})")
            self._state[name] = "standby"
            latest = self.store.try_get(self.flavor.key, name, namespace=self.ns)
            if latest is not None and not latest.get("spec", {}).get("standby", {}).get("enabled"):
                self._state[name] = "promoting"
                self.spawn(self._promote(latest), f"v5-promote-{name}")

    async def _promote(self, obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        gen = obj["metadata"].get("generation", 1)
        async with self.lock(name):
            try:
                await self.world.v5_promote(name)
            except SandboxError as exc:
                self.event(obj, "PromoteFailed", str(exc), kind="Warning")
                self._state[name] = "standby"
                return
            self._state[name] = "primary"
            self.set_status(
                self.flavor.key,
                name,
                {
                    "pgbackrest": {"repos": [{"name": "repo1", "stanzaCreated": True}]},
                    "conditions": [
                        self._condition(
                            "PGBackRestReplicaRepoReady",
                            True,
                            "StanzaExists",
                            "pgBackRest replica create repo is ready for backups",
                            gen,
                        ),
                        self._condition(
                            "PGBackRestReplicaCreate",
                            True,
                            "RepoBackupComplete",
                            "pgBackRest replica creation is now possible",
                            gen,
                        ),
                    ],
                    "observedGeneration": gen,
                },
            )
            self.event(
                obj,
                "Promoted",
                f"standby {name} promoted: it is now a primary and archives into repo1",
            )

    async def _delete(self, name: str) -> None:
        async with self.lock(name):
            await self.world.v5_remove(name)
            sel = f"{self.label('cluster')}={name}"
            for key in ("pods", "services", "secrets", "configmaps"):
                self.remove_matching(key, sel)


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> Awaitable[None]:
    async def waiter() -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise SandboxError(f"timed out after {timeout:.0f} s waiting for {what}")
            await asyncio.sleep(0.1)

    return waiter()
