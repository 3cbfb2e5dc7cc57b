"""The Kubernetes side: scoped watches of the objects of one migration, and Secrets on demand.

What is watched (list, then watch from the list's ``resourceVersion``; a 410 Gone re-lists,
other failures back off from 0.5 s to 10 s; each watch asks the server to end it after a few
minutes and is then resumed from the last ``resourceVersion`` seen, bookmarks included):

- the v4 ``Pgcluster`` (``fieldSelector=metadata.name=<cluster>``);
- v4 pods (``pg-cluster=<cluster>``) and v4 backup schedules (ConfigMaps labelled
  ``crunchy-scheduler=true,pg-cluster=<cluster>``);
- the v5 object (group, version and plural from the flavor, ``fieldSelector`` by name) and v5
  pods (``<prefix>cluster=<v5 name>``);
- the v5 CRD, by name, to tell "not installed" from "not created yet";
- Events in the namespace, of which only those about these objects are passed on.

The client is read-only by construction: :class:`_ReadOnlyApiClient` refuses any method other
than GET or HEAD before a request is built, so monitor mode holds in this layer too.

``kubernetes_asyncio`` is imported only when :meth:`KubeSource.connect` runs: importing it costs
about half a second, which must stay off the path to the UI's first frame.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ivytui.config import Config
from ivytui.domain.flavor import (
    V4_LABEL_CLUSTER,
    V4_LABEL_SCHEDULER,
    V4_RESOURCE,
    Flavor,
)
from ivytui.domain.kube_objects import (
    v4_pod_info,
    v4_state_from_object,
    v5_pod_info,
    v5_state_from_object,
)
from ivytui.domain.model import V4State, V5State
from ivytui.errors import KubeError

if TYPE_CHECKING:
    from aiohttp import ClientResponse

log = logging.getLogger(__name__)

Obj = dict[str, Any]
EventCallback = Callable[[float, str, str], None]
"""``(at, level, text)`` for a Kubernetes Event about one of our objects."""

WATCH_SECONDS = 240
"""How long the server keeps one watch open before we resume it."""
WATCH_READ_TIMEOUT = 120.0
"""A watch that sends nothing at all (not even a bookmark) for this long is taken as dead."""
BACKOFF_START = 0.5
BACKOFF_MAX = 10.0
REQUEST_TIMEOUT = 10.0
CRD_GROUP_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
_READ_METHODS = frozenset({"GET", "HEAD"})


class _Gone(Exception):
    """The watch's resourceVersion is too old (410): list again."""


class _ApiStatus(Exception):
    """A non-2xx answer, with the Status message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{message} ({status})")
        self.status = status
        self.message = message


def _status_words(status: int) -> str:
    return {
        401: "unauthorized",
        403: "forbidden",
        404: "not found",
        410: "gone",
        429: "too many requests",
        500: "server error",
        503: "service unavailable",
    }.get(status, f"HTTP {status}")


def _transport_words(exc: BaseException) -> str:
    """A connection failure in a few words (``connection refused``)."""
    text = str(exc)
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    if isinstance(exc, ConnectionRefusedError) or "Connect call failed" in text:
        return "connection refused"
    os_error = getattr(exc, "os_error", None)
    if isinstance(os_error, OSError) and os_error.strerror:
        return os_error.strerror.lower()
    return text or type(exc).__name__


def parse_time(value: Any) -> float | None:
    """Epoch seconds of a Kubernetes timestamp (RFC 3339 text, or a client's datetime)."""
    if isinstance(value, datetime):
        return value.timestamp()
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class _Spec:
    """One scoped list/watch."""

    key: str
    path: str
    label_selector: str | None = None
    field_selector: str | None = None
    owner: Literal["v4", "v5", "events"] = "v4"


@dataclass
class _WatchState:
    objects: dict[str, Obj]
    synced: bool = False
    resource_version: str | None = None
    error: str | None = None
    error_since: float | None = None
    healthy_at: float = 0.0
    not_served: str | None = None


def _read_only_api_client_class() -> type[Any]:
    from kubernetes_asyncio.client import ApiClient

    class _ReadOnlyApiClient(ApiClient):
        """An ApiClient that sends nothing but GET and HEAD."""

        def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            verb = str(method).upper()
            if verb not in _READ_METHODS:
                path = url.split("?", 1)[0]
                host = str(getattr(self.configuration, "host", ""))
                if host and path.startswith(host):
                    path = path[len(host) :]
                raise KubeError(f"refused {verb} {path}: the monitor only reads (get, list, watch)")
            return super().request(method, url, *args, **kwargs)

    return _ReadOnlyApiClient


def _in_cluster_namespace() -> str:
    ns_file = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
    try:
        return ns_file.read_text().strip()
    except OSError:
        return ""


def _pick_context(path: str, context: str) -> tuple[str, str]:
    """The context to use (``context`` or the current one) and its namespace."""
    from kubernetes_asyncio import config as kconfig
    from kubernetes_asyncio.config.config_exception import ConfigException

    existing = [p for p in path.split(os.pathsep) if p and Path(p).expanduser().exists()]
    if not existing:
        raise KubeError(f"no kubeconfig: {path} does not exist (set KUBECONFIG or --kubeconfig)")
    try:
        contexts, current = kconfig.list_kube_config_contexts(path)
    except (ConfigException, OSError, ValueError, TypeError, AttributeError) as exc:
        raise KubeError(f"the kubeconfig {path} cannot be read: {exc}") from None
    names = [str(c.get("name")) for c in contexts or () if isinstance(c, Mapping)]
    wanted = context or (current or {}).get("name")
    if not wanted:
        raise KubeError(
            f"the kubeconfig {path} has no current context: pass --context "
            f"(known: {', '.join(names) or 'none'})"
        )
    if wanted not in names:
        raise KubeError(
            f"context {wanted!r} is not in the kubeconfig {path} "
            f"(known: {', '.join(names) or 'none'})"
        )
    chosen = next(c for c in contexts if c.get("name") == wanted)
    return str(wanted), str((chosen.get("context") or {}).get("namespace") or "")


def kubeconfig_path(config: Config) -> str | None:
    """The kubeconfig to read: ``--kubeconfig``, else ``KUBECONFIG``, else ``~/.kube/config``."""
    if config.kubeconfig:
        return config.kubeconfig
    env = os.environ.get("KUBECONFIG", "")
    if env:
        return env
    default = Path("~/.kube/config").expanduser()
    return str(default) if default.exists() else None


class KubeSource:
    """Watches the objects of one migration and reads Secrets and Services on demand."""

    def __init__(
        self,
        config: Config,
        flavor: Flavor,
        *,
        clock: Callable[[], float] = time.time,
        on_change: Callable[[], None] | None = None,
        on_event: EventCallback | None = None,
    ) -> None:
        self.config = config
        self.flavor = flavor
        self.clock = clock
        self.on_change = on_change
        self.on_event = on_event
        self.cluster = config.cluster
        self.v5_name = config.standby_name
        self.context = config.context
        self.namespace = config.namespace
        self.server = ""
        self.api: Any = None
        self.v4_ready = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._crd_changed = asyncio.Event()
        self._specs: list[_Spec] = []
        self._states: dict[str, _WatchState] = {}
        self._crd_reason: str | None = None
        self._seen_events: dict[str, int] = {}
        self._closed = False

    # -- set-up ------------------------------------------------------------------------------

    async def connect(self) -> None:
        """Load the kubeconfig, make the read-only client, check the namespace.

        Raises :class:`KubeError` for a missing kubeconfig, an unknown context or namespace.
        An API server that does not answer is not raised here: the watches report it and
        keep trying.
        """
        from kubernetes_asyncio import config as kconfig
        from kubernetes_asyncio.client import Configuration
        from kubernetes_asyncio.config.config_exception import ConfigException

        configuration = Configuration()
        path = kubeconfig_path(self.config)
        if path is None:
            if not os.environ.get("KUBERNETES_SERVICE_HOST"):
                raise KubeError("no kubeconfig: set KUBECONFIG or --kubeconfig")
            try:
                kconfig.load_incluster_config(  # type: ignore[no-untyped-call]
                    client_configuration=configuration
                )
            except ConfigException as exc:
                raise KubeError(f"in-cluster configuration failed: {exc}") from None
            self.context = "in-cluster"
            self.namespace = self.namespace or _in_cluster_namespace()
        else:
            wanted, context_namespace = _pick_context(path, self.config.context)
            self.context = wanted
            self.namespace = self.namespace or context_namespace or "default"
            try:
                await kconfig.load_kube_config(
                    config_file=path,
                    context=wanted,
                    client_configuration=configuration,
                    persist_config=False,
                )
            except (ConfigException, OSError, ValueError, TypeError, KeyError) as exc:
                raise KubeError(f"context {wanted!r} cannot be used: {exc}") from None
        self.namespace = self.namespace or "default"
        self.server = str(configuration.host)
        self.api = _read_only_api_client_class()(configuration)
        self._make_specs()
        await self._check_namespace()

    def _make_specs(self) -> None:
        ns = self.namespace
        v5 = self.flavor.v5
        self._specs = [
            _Spec(
                "v4",
                f"/apis/{V4_RESOURCE.group}/{V4_RESOURCE.version}/namespaces/{ns}/"
                f"{V4_RESOURCE.plural}",
                field_selector=f"metadata.name={self.cluster}",
            ),
            _Spec(
                "v4-pods",
                f"/api/v1/namespaces/{ns}/pods",
                label_selector=f"{V4_LABEL_CLUSTER}={self.cluster}",
            ),
            _Spec(
                "v4-schedules",
                f"/api/v1/namespaces/{ns}/configmaps",
                label_selector=f"{V4_LABEL_SCHEDULER}=true,{V4_LABEL_CLUSTER}={self.cluster}",
            ),
            _Spec(
                "v5-crd",
                CRD_GROUP_PATH,
                field_selector=f"metadata.name={v5.crd_name}",
                owner="v5",
            ),
            _Spec(
                "v5",
                f"/apis/{v5.group}/{v5.version}/namespaces/{ns}/{v5.plural}",
                field_selector=f"metadata.name={self.v5_name}",
                owner="v5",
            ),
            _Spec(
                "v5-pods",
                f"/api/v1/namespaces/{ns}/pods",
                label_selector=f"{self.flavor.cluster_label}={self.v5_name}",
                owner="v5",
            ),
            _Spec("events", f"/api/v1/namespaces/{ns}/events", owner="events"),
            _Spec(
                "lease",
                f"/apis/coordination.k8s.io/v1/namespaces/{ns}/leases",
                field_selector=f"metadata.name={self.cluster}-ivytui-driver",
                owner="events",
            ),
        ]
        self._states = {spec.key: _WatchState(objects={}) for spec in self._specs}

    async def _check_namespace(self) -> None:
        try:
            await self._get_json(f"/api/v1/namespaces/{self.namespace}", timeout=3.0)
        except _ApiStatus as exc:
            if exc.status == 404:
                raise KubeError(
                    f"namespace {self.namespace!r} does not exist on {self.server} "
                    f"(context {self.context})"
                ) from None
            if exc.status == 401:
                raise KubeError(
                    f"the API server {self.server} refused the credentials of context "
                    f"{self.context} (401 unauthorized)"
                ) from None
            # 403: a monitor may lack get on namespaces; the watches will tell.
        except KubeError:
            raise
        except (OSError, TimeoutError) as exc:
            log.info("API server %s not reachable yet: %s", self.server, exc)
        except Exception as exc:
            if _is_transport_error(exc):
                log.info("API server %s not reachable yet: %s", self.server, exc)
            else:
                raise

    # -- raw requests ------------------------------------------------------------------------

    async def _get(
        self,
        path: str,
        query: list[tuple[str, str]] | None = None,
        *,
        timeout: float | tuple[float, float] = REQUEST_TIMEOUT,
    ) -> ClientResponse:
        if self.api is None:
            raise KubeError("the Kubernetes source is not connected")
        resp: ClientResponse = await self.api.call_api(
            path,
            "GET",
            query_params=query or [],
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
            _preload_content=False,
            _request_timeout=timeout,
        )
        if not 200 <= resp.status <= 299:
            body = await resp.read()
            resp.release()
            message = _status_words(resp.status)
            with contextlib.suppress(ValueError, TypeError, AttributeError):
                status_obj = json.loads(body)
                message = str(status_obj.get("message") or message)
            raise _ApiStatus(resp.status, message)
        return resp

    async def _get_json(
        self,
        path: str,
        query: list[tuple[str, str]] | None = None,
        *,
        timeout: float = REQUEST_TIMEOUT,
    ) -> Obj:
        resp = await self._get(path, query, timeout=timeout)
        try:
            data = await resp.read()
        finally:
            resp.release()
        try:
            result = json.loads(data)
        except ValueError as exc:
            raise KubeError(f"GET {path}: the API server sent something that is not JSON") from exc
        if not isinstance(result, dict):
            raise KubeError(f"GET {path}: the API server sent no object")
        return result

    async def read_secret(self, name: str) -> dict[str, str]:
        """The Secret's data, decoded; :class:`KubeError` with words when it cannot be read."""
        try:
            obj = await self._get_json(f"/api/v1/namespaces/{self.namespace}/secrets/{name}")
        except _ApiStatus as exc:
            if exc.status == 403:
                raise KubeError(
                    f"cannot read Secret {name}: forbidden (403) — the monitor needs get on "
                    "secrets, or give the database address in the config"
                ) from None
            if exc.status == 404:
                raise SecretMissing(
                    f"Secret {name} does not exist in namespace {self.namespace}"
                ) from None
            raise KubeError(f"cannot read Secret {name}: {exc}") from None
        except KubeError:
            raise
        except Exception as exc:
            if _is_transport_error(exc):
                raise KubeError(
                    f"cannot read Secret {name}: the API server {self.server} does not answer "
                    f"({_transport_words(exc)})"
                ) from None
            raise
        decoded: dict[str, str] = {}
        for key, value in (obj.get("data") or {}).items():
            try:
                decoded[str(key)] = base64.b64decode(str(value)).decode("utf-8", "replace")
            except (binascii.Error, ValueError):
                decoded[str(key)] = ""
        for key, value in (obj.get("stringData") or {}).items():
            decoded[str(key)] = str(value)
        return decoded

    async def read_service(self, name: str) -> Obj:
        """The Service ``name``; :class:`SecretMissing`-like :class:`ObjectMissing` if absent."""
        try:
            return await self._get_json(f"/api/v1/namespaces/{self.namespace}/services/{name}")
        except _ApiStatus as exc:
            if exc.status == 404:
                raise ObjectMissing(
                    f"Service {name} does not exist in namespace {self.namespace}"
                ) from None
            if exc.status == 403:
                raise KubeError(
                    f"cannot read Service {name}: forbidden (403) — the monitor needs get on "
                    "services, or give the database address in the config"
                ) from None
            raise KubeError(f"cannot read Service {name}: {exc}") from None
        except KubeError:
            raise
        except Exception as exc:
            if _is_transport_error(exc):
                raise KubeError(
                    f"cannot read Service {name}: the API server {self.server} does not answer "
                    f"({_transport_words(exc)})"
                ) from None
            raise

    async def write_probe(self) -> None:
        """Try a write (a no-op JSON merge patch of the v4 object): it must be refused here."""
        if self.api is None:
            raise KubeError("the Kubernetes source is not connected")
        path = (
            f"/apis/{V4_RESOURCE.group}/{V4_RESOURCE.version}/namespaces/{self.namespace}/"
            f"{V4_RESOURCE.plural}/{self.cluster}"
        )
        await self.api.call_api(
            path,
            "PATCH",
            header_params={"Content-Type": "application/merge-patch+json"},
            body={},
            auth_settings=["BearerToken"],
            _preload_content=False,
        )

    # -- list and watch ----------------------------------------------------------------------

    def _query(self, spec: _Spec) -> list[tuple[str, str]]:
        query = []
        if spec.label_selector:
            query.append(("labelSelector", spec.label_selector))
        if spec.field_selector:
            query.append(("fieldSelector", spec.field_selector))
        return query

    async def _list(self, spec: _Spec) -> None:
        state = self._states[spec.key]
        try:
            data = await self._get_json(spec.path, self._query(spec))
        except _ApiStatus as exc:
            if exc.status == 404 and spec.key == "v5":
                # The v5 resource is not served: its CRD is missing.
                state.objects = {}
                state.synced = True
                state.not_served = f"{self.flavor.v5.crd_name} is not served (404)"
                state.resource_version = None
                self._mark_healthy(state)
                self._changed()
                return
            if exc.status == 404 and spec.key == "v4":
                state.objects = {}
                state.synced = True
                state.not_served = f"{V4_RESOURCE.crd_name} is not served (404)"
                state.resource_version = None
                self._mark_healthy(state)
                self._v4_synced()
                self._changed()
                return
            if exc.status in (403, 404) and spec.key == "v5-crd":
                state.objects = {}
                state.synced = True
                state.not_served = (
                    f"cannot read CRD {self.flavor.v5.crd_name}: "
                    f"{_status_words(exc.status)} ({exc.status})"
                )
                self._crd_reason = state.not_served
                self._mark_healthy(state)
                self._changed()
                return
            raise
        items = data.get("items") or []
        previous = state.objects
        state.objects = {
            str(item.get("metadata", {}).get("name", "")): item
            for item in items
            if isinstance(item, dict)
        }
        state.resource_version = str((data.get("metadata") or {}).get("resourceVersion") or "")
        state.not_served = None
        if spec.key == "v5-crd":
            self._crd_reason = None
        first = not state.synced
        state.synced = True
        self._mark_healthy(state)
        if spec.key == "events":
            self._events_listed(first, previous)
        if spec.key == "v4":
            self._v4_synced()
        if spec.key == "v5-crd":
            self._crd_changed.set()
        self._changed()

    def _v4_synced(self) -> None:
        if not self.v4_ready.is_set():
            self.v4_ready.set()
            if not self._states["v4"].objects:
                self._emit_event(
                    self.clock(),
                    "warning",
                    f"v4 Pgcluster {self.cluster} not found in namespace {self.namespace}",
                )

    def _mark_healthy(self, state: _WatchState) -> None:
        if state.error is not None:
            log.info("watch recovered after: %s", state.error)
        state.error = None
        state.error_since = None
        state.healthy_at = self.clock()

    def _mark_failed(self, spec: _Spec, message: str) -> None:
        state = self._states[spec.key]
        if state.error != message:
            log.info("watch %s failed: %s", spec.key, message)
        state.error = message
        if state.error_since is None:
            state.error_since = self.clock()
        self._changed()

    async def _watch_once(self, spec: _Spec) -> None:
        """Follow one watch until the server ends it; raises :class:`_Gone` on 410."""
        state = self._states[spec.key]
        query = self._query(spec)
        query += [
            ("watch", "true"),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", str(WATCH_SECONDS)),
        ]
        if state.resource_version:
            query.append(("resourceVersion", state.resource_version))
        resp = await self._get(spec.path, query, timeout=(REQUEST_TIMEOUT, WATCH_READ_TIMEOUT))
        try:
            buffer = b""
            async for chunk in resp.content.iter_any():
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        self._apply(spec, line)
            if buffer.strip():
                self._apply(spec, buffer)
        finally:
            resp.release()

    def _apply(self, spec: _Spec, line: bytes) -> None:
        state = self._states[spec.key]
        try:
            event = json.loads(line)
        except ValueError:
            log.warning("watch %s: a line that is not JSON was skipped", spec.key)
            return
        kind = event.get("type")
        obj = event.get("object") or {}
        if kind == "ERROR":
            code = int(obj.get("code") or 0)
            if code == 410:
                raise _Gone()
            raise _ApiStatus(code or 500, str(obj.get("message") or "watch error"))
        metadata = obj.get("metadata") or {}
        rv = metadata.get("resourceVersion")
        if rv:
            state.resource_version = str(rv)
        self._mark_healthy(state)
        if kind == "BOOKMARK":
            return
        name = str(metadata.get("name", ""))
        if kind in ("ADDED", "MODIFIED"):
            previous = state.objects.get(name)
            state.objects[name] = obj
            if spec.key == "events":
                self._event_seen(obj, previous)
        elif kind == "DELETED":
            state.objects.pop(name, None)
        if spec.key == "v5-crd":
            self._crd_changed.set()
        if spec.key != "events":
            self._changed()

    async def _run(self, spec: _Spec) -> None:
        backoff = BACKOFF_START
        need_list = True
        while not self._closed:
            try:
                if need_list:
                    await self._list(spec)
                    need_list = False
                    state = self._states[spec.key]
                    if state.not_served is not None:
                        self._crd_changed.clear()
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(self._crd_changed.wait(), BACKOFF_MAX)
                        need_list = True
                        continue
                await self._watch_once(spec)
                backoff = BACKOFF_START
            except _Gone:
                need_list = True
            except asyncio.CancelledError:
                raise
            except _ApiStatus as exc:
                self._mark_failed(spec, self._describe_status(spec, exc))
                need_list = True
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
            except KubeError as exc:
                self._mark_failed(spec, str(exc))
                need_list = True
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
            except Exception as exc:
                if not _is_transport_error(exc):
                    log.exception("watch %s failed", spec.key)
                self._mark_failed(
                    spec,
                    f"the API server {self.server} does not answer ({_transport_words(exc)})"
                    if _is_transport_error(exc)
                    else f"watch of {spec.key} failed: {exc!r}",
                )
                need_list = True
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)

    def _describe_status(self, spec: _Spec, exc: _ApiStatus) -> str:
        what = {
            "v4": f"{V4_RESOURCE.plural}.{V4_RESOURCE.group}",
            "v4-pods": "pods",
            "v4-schedules": "configmaps",
            "v5": self.flavor.v5.crd_name,
            "v5-pods": "pods",
            "v5-crd": "customresourcedefinitions",
            "events": "events",
        }[spec.key]
        if exc.status in (401, 403):
            return (
                f"cannot watch {what} in namespace {self.namespace}: "
                f"{_status_words(exc.status)} ({exc.status}) — the monitor needs get, list and "
                f"watch on {what}"
            )
        return f"cannot watch {what} in namespace {self.namespace}: {exc.message} ({exc.status})"

    async def start(self) -> None:
        """Start every watch in the background."""
        if self.api is None:
            await self.connect()
        for spec in self._specs:
            self._tasks.append(asyncio.create_task(self._run(spec), name=f"watch-{spec.key}"))

    async def list_all(self) -> None:
        """One list of every scoped resource (no watch): for a single snapshot."""
        if self.api is None:
            await self.connect()

        async def one(spec: _Spec) -> None:
            try:
                await self._list(spec)
            except _ApiStatus as exc:
                self._mark_failed(spec, self._describe_status(spec, exc))
            except KubeError as exc:
                self._mark_failed(spec, str(exc))
            except Exception as exc:
                if not _is_transport_error(exc):
                    raise
                self._mark_failed(
                    spec,
                    f"the API server {self.server} does not answer ({_transport_words(exc)})",
                )

        await asyncio.gather(*(one(spec) for spec in self._specs))
        self.v4_ready.set()

    async def close(self) -> None:
        self._closed = True
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        api, self.api = self.api, None
        if api is not None:
            await api.close()

    # -- events ------------------------------------------------------------------------------

    def _is_ours(self, event: Obj) -> bool:
        involved = event.get("involvedObject") or {}
        kind, name = involved.get("kind"), str(involved.get("name") or "")
        if kind == V4_RESOURCE.kind:
            return name == self.cluster
        if kind == self.flavor.v5.kind:
            return name == self.v5_name
        if kind == "Pod":
            pods = set(self._states["v4-pods"].objects) | set(self._states["v5-pods"].objects)
            return name in pods or name.startswith((f"{self.cluster}-", f"{self.v5_name}-"))
        if kind in ("Deployment", "StatefulSet", "Job", "Service", "PersistentVolumeClaim"):
            return name == self.cluster or name.startswith((f"{self.cluster}-", f"{self.v5_name}-"))
        return False

    def _events_listed(self, first: bool, previous: Mapping[str, Obj]) -> None:
        events = [e for e in self._states["events"].objects.values() if self._is_ours(e)]
        if first:
            events.sort(key=_event_time)
            for event in events[-10:]:
                self._event_seen(event, None, force=True)
            for event in events:
                self._seen_events[_event_id(event)] = int(event.get("count") or 1)
            return
        for event in events:
            self._event_seen(event, previous.get(str(event.get("metadata", {}).get("name", ""))))

    def _event_seen(self, event: Obj, previous: Obj | None, *, force: bool = False) -> None:
        del previous
        if not self._is_ours(event):
            return
        ident = _event_id(event)
        count = int(event.get("count") or 1)
        if not force and self._seen_events.get(ident, 0) >= count:
            return
        self._seen_events[ident] = count
        involved = event.get("involvedObject") or {}
        level = "warning" if event.get("type") == "Warning" else "info"
        times = f" (×{count})" if count > 1 else ""
        text = (
            f"{involved.get('kind', '')} {involved.get('name', '')}: "
            f"{event.get('reason', '')}: {event.get('message', '')}{times}"
        )
        self._emit_event(_event_time(event) or self.clock(), level, text)

    def _emit_event(self, at: float, level: str, text: str) -> None:
        if self.on_event is not None:
            self.on_event(at, level, text)

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    # -- the domain's view -------------------------------------------------------------------

    def _health(self, keys: tuple[str, ...]) -> tuple[float, str | None, float | None]:
        """``(observed_at, error, stale_since)`` of a group of watches."""
        now = self.clock()
        errors = [
            (self._states[k].error, self._states[k].error_since)
            for k in keys
            if self._states[k].error is not None
        ]
        unsynced = [k for k in keys if not self._states[k].synced]
        if errors:
            first_error, since = errors[0]
            healthy = [self._states[k].healthy_at for k in keys]
            observed = min(healthy) if all(healthy) else 0.0
            return observed, first_error, since
        if unsynced:
            return 0.0, None, None
        return now, None, None

    def v4_state(self) -> V4State:
        observed, error, stale = self._health(("v4", "v4-pods", "v4-schedules"))
        v4 = self._states["v4"].objects.get(self.cluster)
        pods = tuple(v4_pod_info(obj) for _, obj in sorted(self._states["v4-pods"].objects.items()))
        schedules = tuple(sorted(self._states["v4-schedules"].objects))
        state = v4_state_from_object(
            v4,
            name=self.cluster,
            namespace=self.namespace,
            observed_at=observed,
            pods=pods,
            backup_schedules=schedules,
        )
        return replace(state, error=error, stale_since=stale)

    def crd_installed(self) -> tuple[bool | None, str | None]:
        """Whether the v5 CRD is installed, and why not when it is not known."""
        crd_state = self._states["v5-crd"]
        v5_state = self._states["v5"]
        if v5_state.synced and v5_state.error is None:
            if v5_state.not_served is None:
                return True, None
            if crd_state.synced and crd_state.not_served is None and crd_state.objects:
                return True, None
            return False, f"the CRD {self.flavor.v5.crd_name} is not installed"
        if crd_state.synced and crd_state.not_served is None:
            if crd_state.objects:
                return True, None
            return False, f"the CRD {self.flavor.v5.crd_name} is not installed"
        return None, self._crd_reason

    def v5_state(self) -> V5State:
        observed, error, stale = self._health(("v5", "v5-pods"))
        installed, _ = self.crd_installed()
        v5 = self._states["v5"].objects.get(self.v5_name)
        pods = tuple(
            v5_pod_info(obj, self.flavor)
            for _, obj in sorted(self._states["v5-pods"].objects.items())
        )
        state = v5_state_from_object(
            v5,
            flavor=self.flavor,
            name=self.v5_name,
            namespace=self.namespace,
            observed_at=observed,
            crd_installed=installed,
            pods=pods,
        )
        return replace(state, error=error, stale_since=stale)

    def v4_object(self) -> Obj | None:
        return self._states["v4"].objects.get(self.cluster)

    def v5_object(self) -> Obj | None:
        return self._states["v5"].objects.get(self.v5_name)

    def driver_lease(self) -> Obj | None:
        """The Lease of the engineer driving the move (``<cluster>-ivytui-driver``), if any."""
        objects = self._states["lease"].objects
        return next(iter(objects.values()), None)

    def raw_objects(self) -> dict[str, Obj]:
        """The raw objects for a YAML view: ``v4``, ``v5``, ``pod/<name>``, ``configmap/<name>``."""
        found: dict[str, Obj] = {}
        v4, v5 = self.v4_object(), self.v5_object()
        if v4 is not None:
            found["v4"] = v4
        if v5 is not None:
            found["v5"] = v5
        for key in ("v4-pods", "v5-pods"):
            for name, obj in sorted(self._states[key].objects.items()):
                found[f"pod/{name}"] = obj
        for name, obj in sorted(self._states["v4-schedules"].objects.items()):
            found[f"configmap/{name}"] = obj
        return found


class ObjectMissing(KubeError):
    """The object asked for does not exist (a fact, not a failure)."""


class SecretMissing(ObjectMissing):
    """The Secret asked for does not exist."""


def _event_id(event: Obj) -> str:
    metadata = event.get("metadata") or {}
    return str(metadata.get("uid") or metadata.get("name") or id(event))


def _event_time(event: Obj) -> float:
    for key in ("lastTimestamp", "eventTime", "firstTimestamp"):
        at = parse_time(event.get(key))
        if at is not None:
            return at
    return parse_time((event.get("metadata") or {}).get("creationTimestamp")) or 0.0


def _is_transport_error(exc: BaseException) -> bool:
    """A failure to reach the API server (not an answer from it)."""
    import aiohttp

    return isinstance(
        exc, (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, OSError, TimeoutError)
    )
