"""One driver at a time, for the whole driving session: the driver Lease, written with its
resourceVersion, held per console (user, host, pid and a random suffix), taken over only when it
lapsed or with the typed name."""

from __future__ import annotations

import asyncio
import re
import time

import pytest

from ivytui.config import Config
from ivytui.sources.actions import DriverSession, GuardRefused, console_identity
from ivytui.sources.kube_write import KubeWriter
from tests.conftest import RunningWorld

pytestmark = pytest.mark.world


def _writer(world: RunningWorld, *, read_only: bool = False) -> KubeWriter:
    cfg = Config(
        cluster=world.cluster,
        namespace=world.namespace,
        kubeconfig=str(world.kubeconfig),
        read_only=read_only,
    )
    return KubeWriter(cfg, namespace=world.namespace, context="")


def test_two_consoles_on_one_account_are_two_drivers() -> None:
    first, second = console_identity(), console_identity()
    assert first != second
    assert first.rsplit(" #", 1)[0] == second.rsplit(" #", 1)[0]  # same user, host and pid


async def test_a_second_driver_is_refused_until_the_lease_lapses(world: RunningWorld) -> None:
    writer = _writer(world)
    name = f"lease-test-{time.time_ns()}"
    now = [time.time()]
    alice = DriverSession(
        lambda: writer, name, holder="alice@bastion pid 1 #aaaa", clock=lambda: now[0]
    )
    bob = DriverSession(
        lambda: writer, name, holder="bob@bastion pid 2 #bbbb", clock=lambda: now[0]
    )
    try:
        await alice.acquire()
        await alice.acquire()  # renewing is fine
        with pytest.raises(
            GuardRefused, match="alice@bastion pid 1 #aaaa drives this move"
        ) as refused:
            await bob.acquire()
        assert refused.value.holder == "alice@bastion pid 1 #aaaa"
        now[0] += 61  # lapsed: taken over without asking
        assert await bob.acquire() is True
        with pytest.raises(GuardRefused, match="bob@bastion"):
            await alice.acquire()
        assert await alice.acquire(take_over=True) is True  # the typed takeover
        state = await alice.read()
        assert state is not None and state.holder == "alice@bastion pid 1 #aaaa"
        await alice.release()
        state = await alice.read()
        assert state is not None and state.holder == ""
        await bob.acquire()  # released: free for the next driver
    finally:
        await alice.release()
        await bob.release()
        await writer.close()


async def test_two_consoles_racing_for_the_lease_one_wins(world: RunningWorld) -> None:
    writer_a, writer_b = _writer(world), _writer(world)
    name = f"lease-race-{time.time_ns()}"
    a = DriverSession(lambda: writer_a, name, holder="a@host pid 1 #0001")
    b = DriverSession(lambda: writer_b, name, holder="b@host pid 2 #0002")
    try:
        results = await asyncio.gather(a.acquire(), b.acquire(), return_exceptions=True)
        refused = [r for r in results if isinstance(r, GuardRefused)]
        assert len(refused) == 1, results
        winner = a if not isinstance(results[0], GuardRefused) else b
        assert refused[0].holder == winner.holder
    finally:
        await a.release()
        await b.release()
        await writer_a.close()
        await writer_b.close()


async def test_read_only_refuses_before_anything_is_sent(world: RunningWorld) -> None:
    writer = _writer(world, read_only=True)
    session = DriverSession(lambda: writer, "x", holder="alice")
    with pytest.raises(Exception, match="read-only"):
        await session.acquire()


async def test_every_viewer_sees_who_drives(world: RunningWorld) -> None:
    from kubernetes_asyncio import client

    from ivytui.sources.hub import Hub

    cfg = Config(
        cluster=world.cluster,
        namespace=world.namespace,
        kubeconfig=str(world.kubeconfig),
        v5_name=world.v5_name,
        interval=0.5,
    )
    writer = KubeWriter(cfg, namespace=world.namespace, context="")
    hub = Hub(cfg)
    await hub.start()
    name = f"{world.cluster}-ivytui-driver"
    session = DriverSession(lambda: writer, name, holder="carol@bastion pid 7 #cccc")
    try:
        await session.acquire(action="freeze v4 and switch WAL")
        deadline = time.monotonic() + 5
        while "carol@bastion pid 7 #cccc drives since" not in hub.view.driver:
            assert time.monotonic() < deadline, hub.view.driver
            await hub.refresh()
        assert re.search(r"last acted \d+ s ago \(freeze v4 and switch WAL\)", hub.view.driver)
    finally:
        await session.release()
        await hub.stop()
        api = client.CoordinationV1Api(await writer._client())
        await api.delete_namespaced_lease(name, world.namespace)
        await writer.close()
