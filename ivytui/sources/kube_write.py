"""The only Kubernetes client that writes. Every write carries the object's resourceVersion.

It refuses at once in read-only mode (a second guard behind the executor), sends JSON merge
patches with the right content type (kubernetes-asyncio would otherwise send a JSON patch), and
turns a 409 into :class:`ConflictError` — re-read and re-evaluate, never a blind retry.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ivytui.config import Config
from ivytui.domain.flavor import Resource
from ivytui.errors import KubeError

MERGE = "application/merge-patch+json"


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

    async def _call(self, what: str, coro: Any) -> Any:
        from kubernetes_asyncio.client.rest import ApiException

        try:
            return await coro
        except ApiException as exc:
            if exc.status == 409:
                raise ConflictError(
                    f"{what}: the object changed since it was read ({_words(exc)}); "
                    "re-read and try again"
                ) from None
            if exc.status == 404:
                raise NotFoundError(f"{what}: not found ({_words(exc)})") from None
            raise KubeError(f"{what}: {exc.status} {_words(exc)}") from None
        except (OSError, TimeoutError) as exc:
            raise KubeError(f"{what}: the API server did not answer ({exc})") from None

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
                api.get_namespaced_custom_object(
                    res.group, res.version, self.namespace, res.plural, name
                ),
            )
        )

    async def merge_patch(
        self, res: Resource, name: str, patch: Mapping[str, Any], *, resource_version: str
    ) -> dict[str, Any]:
        body = dict(patch)
        meta = dict(body.get("metadata") or {})
        meta["resourceVersion"] = resource_version
        body["metadata"] = meta
        api = await self.custom()
        return dict(
            await self._call(
                f"patch {res.plural}/{name}",
                api.patch_namespaced_custom_object(
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
                api.create_namespaced_custom_object(
                    res.group, res.version, self.namespace, res.plural, dict(body), **kwargs
                ),
            )
        )

    async def delete(self, res: Resource, name: str, *, resource_version: str) -> None:
        from kubernetes_asyncio import client

        api = await self.custom()
        opts = client.V1DeleteOptions(
            preconditions=client.V1Preconditions(resource_version=resource_version)
        )
        await self._call(
            f"delete {res.plural}/{name}",
            api.delete_namespaced_custom_object(
                res.group, res.version, self.namespace, res.plural, name, body=opts
            ),
        )

    async def create_secret(self, body: Mapping[str, Any], *, dry_run: bool = False) -> None:
        api = await self.core()
        kwargs: dict[str, Any] = {"dry_run": "All"} if dry_run else {}
        await self._call(
            f"create secret {body['metadata']['name']}",
            api.create_namespaced_secret(self.namespace, dict(body), **kwargs),
        )

    async def put_configmap(
        self, name: str, data: Mapping[str, str], labels: Mapping[str, str]
    ) -> None:
        """Create or update a ConfigMap (used for the journal's summary on the cluster)."""
        api = await self.core()
        body = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "labels": dict(labels)},
            "data": dict(data),
        }
        try:
            await self._call(
                f"create configmap {name}", api.create_namespaced_config_map(self.namespace, body)
            )
        except ConflictError:
            await self._call(
                f"patch configmap {name}",
                api.patch_namespaced_config_map(
                    name, self.namespace, {"data": dict(data)}, _content_type=MERGE
                ),
            )

    async def get_configmap(self, name: str) -> dict[str, str] | None:
        api = await self.core()
        try:
            cm = await self._call(
                f"get configmap {name}", api.read_namespaced_config_map(name, self.namespace)
            )
        except NotFoundError:
            return None
        return dict(cm.data or {})


LEASE_SECONDS = 120


def _rfc3339_micro(t: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def take_lease(writer: KubeWriter, name: str, holder: str, *, now: float) -> None:
    """Take or renew the driver Lease; refuse while another holder's lease has not lapsed."""
    from kubernetes_asyncio import client

    from ivytui.sources.kube import parse_time

    api: Any = client.CoordinationV1Api(await writer._client())
    spec = {
        "holderIdentity": holder,
        "leaseDurationSeconds": LEASE_SECONDS,
        "renewTime": _rfc3339_micro(now),
    }
    try:
        lease = await writer._call(
            f"get lease {name}", api.read_namespaced_lease(name, writer.namespace)
        )
    except NotFoundError:
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "ivytui"}},
            "spec": {**spec, "acquireTime": _rfc3339_micro(now)},
        }
        await writer._call(
            f"create lease {name}", api.create_namespaced_lease(writer.namespace, body)
        )
        return
    current = lease.spec.holder_identity if lease.spec is not None else None
    renewed = parse_time(lease.spec.renew_time) if lease.spec is not None else None
    duration = (lease.spec.lease_duration_seconds if lease.spec is not None else None) or 0
    if current and current != holder and renewed is not None and renewed + duration > now:
        raise ConflictError(
            f"{current} drives this move (lease {name} renewed {now - renewed:.0f} s ago, "
            f"lapses in {renewed + duration - now:.0f} s): one driver at a time"
        )
    if current != holder:
        spec["acquireTime"] = _rfc3339_micro(now)
    await writer._call(
        f"renew lease {name}",
        api.patch_namespaced_lease(
            name,
            writer.namespace,
            {"metadata": {"resourceVersion": lease.metadata.resource_version}, "spec": spec},
            _content_type=MERGE,
        ),
    )
