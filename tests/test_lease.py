"""One driver at a time: the executor takes a Lease for each action; another holder is refused."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from ivytui.config import Config
from ivytui.sources.kube_write import ConflictError, KubeWriter, take_lease
from tests.conftest import RunningWorld

pytestmark = pytest.mark.world


async def test_a_second_driver_is_refused_until_the_lease_lapses(world: RunningWorld) -> None:
    cfg = Config(cluster=world.cluster, namespace=world.namespace, kubeconfig=str(world.kubeconfig))
    writer = KubeWriter(cfg, namespace=world.namespace, context="")
    name = f"lease-test-{time.time_ns()}"
    try:
        now = time.time()
        await take_lease(writer, name, "alice@bastion", now=now)
        await take_lease(writer, name, "alice@bastion", now=now + 5)  # renewing is fine
        with pytest.raises(ConflictError, match="alice@bastion drives this move"):
            await take_lease(writer, name, "bob@laptop", now=now + 10)
        await take_lease(writer, name, "bob@laptop", now=now + 5 + 121)  # lapsed: taken over
        with pytest.raises(ConflictError, match="bob@laptop"):
            await take_lease(writer, name, "alice@bastion", now=now + 130)
    finally:
        await writer.close()


async def test_read_only_refuses_before_anything_is_sent(world: RunningWorld, tmp_path: Path) -> None:
    cfg = Config(
        cluster=world.cluster, namespace=world.namespace, kubeconfig=str(world.kubeconfig),
        read_only=True,
    )
    writer = KubeWriter(cfg, namespace=world.namespace, context="")
    with pytest.raises(Exception, match="read-only"):
        await take_lease(writer, "x", "alice", now=time.time())


async def test_every_viewer_sees_who_drives(world: RunningWorld) -> None:
    from kubernetes_asyncio import client

    from ivytui.sources.hub import Hub

    cfg = Config(
        cluster=world.cluster, namespace=world.namespace, kubeconfig=str(world.kubeconfig),
        v5_name=world.v5_name, interval=0.5,
    )
    writer = KubeWriter(cfg, namespace=world.namespace, context="")
    hub = Hub(cfg)
    await hub.start()
    name = f"{world.cluster}-ivytui-driver"
    try:
        await take_lease(writer, name, "carol@bastion", now=time.time())
        deadline = time.monotonic() + 5
        while "carol@bastion drives since" not in hub.view.driver:
            assert time.monotonic() < deadline, hub.view.driver
            await hub.refresh()
    finally:
        await hub.stop()
        api = client.CoordinationV1Api(await writer._client())
        await api.delete_namespaced_lease(name, world.namespace)
        await writer.close()
