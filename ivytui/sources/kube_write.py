"""The only Kubernetes client that writes. Every write carries the object's resourceVersion.

It refuses at once in read-only mode (a second guard behind the executor), sends JSON merge
patches with the right content type (kubernetes-asyncio would otherwise send a JSON patch), and
turns a 409 into :class:`ConflictError` — re-read and re-evaluate, never a blind retry.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from ivytui.config import Config
from ivytui.domain.flavor import Resource
from ivytui.errors import KubeError

MERGE = "application/merge-patch+json"
ATTEMPTS = 5
BACKOFF_START = 0.25
BACKOFF_MAX = 2.0
RETRY_AFTER_MAX = 10.0
TRANSIENT = frozenset({429, 500, 502, 503, 504})


def _retry_after(exc: Any) -> float | None:
    """The seconds a 429/503 asks to wait (``Retry-After``, or the Status's
    ``details.retryAfterSeconds``)."""
    headers = getattr(exc, "headers", None) or {}
    value = headers.get("Retry-After") if hasattr(headers, "get") else None
    try:
        if value is not None:
            return max(0.0, float(value))
        body = json.loads(exc.body)
        seconds = (body.get("details") or {}).get("retryAfterSeconds")
        return max(0.0, float(seconds)) if seconds is not None else None
    except (TypeError, ValueError, AttributeError):
        return None


class ReadOnlyRefused(KubeError):
    title = "read-only"


class ConflictError(KubeError):
    title = "conflict"


class NotFoundError(KubeError):
    title = "not found"


def _words(exc: Any) -> str:
    try:
        body = json.loads(exc.body)
        return str(body.get("message") or exc.reason)
    except (TypeError, ValueError, AttributeError):
        return str(getattr(exc, "reason", exc))


class KubeWriter:
    def __init__(self, config: Config, *, namespace: str, context: str) -> None:
        self.config = config
        self.namespace = namespace
        self.context = context
        self._api: Any = None

    async def _client(self) -> Any:
        if self.config.read_only:
            raise ReadOnlyRefused("read-only mode: no change is sent to the cluster")
        if self._api is None:
            from kubernetes_asyncio import client
            from kubernetes_asyncio import config as kconfig

            from ivytui.sources.kube import kubeconfig_path

            cfg = client.Configuration()
            path = kubeconfig_path(self.config)
            await kconfig.load_kube_config(
                config_file=path, context=self.context or None, client_configuration=cfg
            )
            self._api = client.ApiClient(configuration=cfg)
        return self._api

    async def close(self) -> None:
        if self._api is not None:
            await self._api.close()
            self._api = None

    async def _call(self, what: str, request: Callable[[], Awaitable[Any]]) -> Any:
        """Send ``request()``; a 409 is :class:`ConflictError`, a 404 :class:`NotFoundError`.
        An answer that says "try again" — 429, 500, 502, 503, 504, or no answer — is sent again
        after a back-off (or the ``Retry-After`` the server gave), at most
        :data:`ATTEMPTS` times in all: every write carries its precondition, so sending it
        again can change nothing the first one did not."""
        from kubernetes_asyncio.client.rest import ApiException

        delay = BACKOFF_START
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return await request()
            except ApiException as exc:
                if exc.status == 409:
                    raise ConflictError(
                        f"{what}: the object changed since it was read ({_words(exc)}); "
                        "re-read and try again"
                    ) from None
                if exc.status == 404:
                    raise NotFoundError(f"{what}: not found ({_words(exc)})") from None
                if exc.status not in TRANSIENT or attempt == ATTEMPTS:
                    again = f" (after {attempt} attempts)" if attempt > 1 else ""
                    raise KubeError(f"{what}: {exc.status} {_words(exc)}{again}") from None
                wait = _retry_after(exc) or delay
            except (OSError, TimeoutError) as exc:
                if attempt == ATTEMPTS:
                    raise KubeError(
                        f"{what}: the API server did not answer ({exc}) after {attempt} attempts"
                    ) from None
                wait = delay
            await asyncio.sleep(min(wait, RETRY_AFTER_MAX))
            delay = min(delay * 2, BACKOFF_MAX)
        raise AssertionError("unreachable")

    async def custom(self) -> Any:
        from kubernetes_asyncio import client

        return client.CustomObjectsApi(await self._client())

    async def core(self) -> Any:
        from kubernetes_asyncio import client

        return client.CoreV1Api(await self._client())

    async def get(self, res: Resource, name: str) -> dict[str, Any]:
        api = await self.custom()
        return dict(
            await self._call(
                f"get {res.plural}/{name}",
                lambda: api.get_namespaced_custom_object(
                    res.group, res.version, self.namespace, res.plural, name
                ),
            )
        )

    async def merge_patch(
        self, res: Resource, name: str, patch: Mapping[str, Any], *, resource_version: str
    ) -> dict[str, Any]:
        if not resource_version:
            raise KubeError(
                f"patch {res.plural}/{name}: no resourceVersion to send it with (an empty one "
                "would be no precondition at all); nothing was sent"
            )
        body = dict(patch)
        meta = dict(body.get("metadata") or {})
        meta["resourceVersion"] = resource_version
        body["metadata"] = meta
        api = await self.custom()
        return dict(
            await self._call(
                f"patch {res.plural}/{name}",
                lambda: api.patch_namespaced_custom_object(
                    res.group,
                    res.version,
                    self.namespace,
                    res.plural,
                    name,
                    body,
                    _content_type=MERGE,
                ),
            )
        )

    async def create(
        self, res: Resource, body: Mapping[str, Any], *, dry_run: bool = False
    ) -> dict[str, Any]:
        api = await self.custom()
        kwargs: dict[str, Any] = {"dry_run": "All"} if dry_run else {}
        return dict(
            await self._call(
                f"create {res.plural}/{body['metadata']['name']}",
                lambda: api.create_namespaced_custom_object(
                    res.group, res.version, self.namespace, res.plural, dict(body), **kwargs
                ),
            )
        )

    async def delete(self, res: Resource, name: str, *, resource_version: str) -> None:
        from kubernetes_asyncio import client

        if not resource_version:
            raise KubeError(
                f"delete {res.plural}/{name}: no resourceVersion for the precondition; "
                "nothing was deleted"
            )
        api = await self.custom()
        opts = client.V1DeleteOptions(
            preconditions=client.V1Preconditions(resource_version=resource_version)
        )
        await self._call(
            f"delete {res.plural}/{name}",
            lambda: api.delete_namespaced_custom_object(
                res.group, res.version, self.namespace, res.plural, name, body=opts
            ),
        )

    async def create_secret(self, body: Mapping[str, Any], *, dry_run: bool = False) -> None:
        api = await self.core()
        kwargs: dict[str, Any] = {"dry_run": "All"} if dry_run else {}
        await self._call(
            f"create secret {body['metadata']['name']}",
            lambda: api.create_namespaced_secret(self.namespace, dict(body), **kwargs),
        )

    async def secret_metadata(self, name: str) -> dict[str, Any] | None:
        """The Secret's metadata (annotations, resourceVersion) — never its data — or None."""
        api = await self.core()
        try:
            found = await self._call(
                f"get secret {name}", lambda: api.read_namespaced_secret(name, self.namespace)
            )
        except NotFoundError:
            return None
        return {
            "annotations": dict(found.metadata.annotations or {}),
            "resourceVersion": str(found.metadata.resource_version or ""),
        }

    async def replace_secret(
        self, body: Mapping[str, Any], *, resource_version: str, dry_run: bool = False
    ) -> None:
        """Replace the Secret (PUT) as it was read at ``resource_version``."""
        if not resource_version:
            raise KubeError(f"replace secret {body['metadata']['name']}: no resourceVersion")
        api = await self.core()
        name = str(body["metadata"]["name"])
        doc = {**body, "metadata": {**body["metadata"], "resourceVersion": resource_version}}
        kwargs: dict[str, Any] = {"dry_run": "All"} if dry_run else {}
        await self._call(
            f"replace secret {name}",
            lambda: api.replace_namespaced_secret(name, self.namespace, doc, **kwargs),
        )

    async def delete_secret(self, name: str) -> bool:
        """Delete the Secret ``name`` with the resourceVersion it is read at (False: it was
        not there)."""
        from kubernetes_asyncio import client

        api = await self.core()
        try:
            found = await self._call(
                f"get secret {name}", lambda: api.read_namespaced_secret(name, self.namespace)
            )
        except NotFoundError:
            return False
        opts = client.V1DeleteOptions(
            preconditions=client.V1Preconditions(resource_version=found.metadata.resource_version)
        )
        await self._call(
            f"delete secret {name}",
            lambda: api.delete_namespaced_secret(name, self.namespace, body=opts),
        )
        return True

    async def put_configmap(
        self,
        name: str,
        data: Mapping[str, str],
        labels: Mapping[str, str],
        *,
        resource_version: str = "",
    ) -> None:
        """Create the ConfigMap (``resource_version`` empty: it must not exist yet) or replace
        its data with the resourceVersion it was read at (a 409 when it moved on)."""
        api = await self.core()
        if not resource_version:
            body = {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": name, "labels": dict(labels)},
                "data": dict(data),
            }
            await self._call(
                f"create configmap {name}",
                lambda: api.create_namespaced_config_map(self.namespace, body),
            )
            return
        await self._call(
            f"patch configmap {name}",
            lambda: api.patch_namespaced_config_map(
                name,
                self.namespace,
                {"metadata": {"resourceVersion": resource_version}, "data": dict(data)},
                _content_type=MERGE,
            ),
        )

    async def get_configmap_object(self, name: str) -> dict[str, Any] | None:
        """The ConfigMap as a plain object (``metadata`` with its resourceVersion, ``data``)."""
        api = await self.core()
        try:
            cm = await self._call(
                f"get configmap {name}",
                lambda: api.read_namespaced_config_map(name, self.namespace),
            )
        except NotFoundError:
            return None
        return {
            "metadata": {"name": name, "resourceVersion": cm.metadata.resource_version},
            "data": dict(cm.data or {}),
        }

    async def get_configmap(self, name: str) -> dict[str, str] | None:
        api = await self.core()
        try:
            cm = await self._call(
                f"get configmap {name}",
                lambda: api.read_namespaced_config_map(name, self.namespace),
            )
        except NotFoundError:
            return None
        return dict(cm.data or {})
