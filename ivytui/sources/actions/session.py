"""One driver at a time, for the whole driving session: the Lease ``<cluster>-ivytui-driver``.

The Lease is taken when the first change is confirmed (before its guard is checked), renewed
while the console runs, and released when it quits. Its holder names this console alone — user,
host, pid and a random suffix — so two consoles on one bastion account are two drivers. Every
write of the Lease carries its resourceVersion: of two consoles racing for it, one wins and the
other reads back who holds it and is refused with that name. A takeover needs the Lease lapsed or
the cluster name typed (and the executor journals it).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import getpass
import json
import os
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ivytui.sources.actions.errors import GuardRefused
from ivytui.sources.kube_write import ConflictError, KubeWriter, NotFoundError
from ivytui.sources.view import LAST_ACTION_ANNOTATION

LEASE_SECONDS = 60
RENEW_EVERY = 15.0


def console_identity() -> str:
    """``alice@bastion pid 4242 #a1b2``: unique per console."""
    try:
        who = getpass.getuser()
    except (KeyError, OSError):
        who = str(os.getuid())
    return f"{who}@{socket.gethostname()} pid {os.getpid()} #{secrets.token_hex(2)}"


def _stamp(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True, slots=True)
class LeaseState:
    holder: str
    renewed: float | None
    duration: float
    resource_version: str

    def live(self, now: float) -> bool:
        return bool(self.holder) and self.renewed is not None and self.renewed + self.duration > now


class DriverSession:
    """This console's hold on the driver Lease."""

    def __init__(
        self,
        writer: Callable[[], KubeWriter],
        name: str,
        *,
        holder: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._writer = writer
        self.name = name
        self.holder = holder or console_identity()
        self.clock = clock
        self.held = False
        self._renewer: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    async def _api(self) -> Any:
        from kubernetes_asyncio import client

        return client.CoordinationV1Api(await self._writer()._client())

    async def read(self) -> LeaseState | None:
        from ivytui.sources.kube import parse_time

        api = await self._api()
        try:
            lease = await self._writer()._call(
                f"get lease {self.name}",
                lambda: api.read_namespaced_lease(self.name, self._writer().namespace),
            )
        except NotFoundError:
            return None
        spec = lease.spec
        return LeaseState(
            holder=(spec.holder_identity if spec is not None else None) or "",
            renewed=parse_time(spec.renew_time) if spec is not None else None,
            duration=float((spec.lease_duration_seconds if spec is not None else None) or 0),
            resource_version=str(lease.metadata.resource_version or ""),
        )

    def _refusal(self, state: LeaseState) -> GuardRefused:
        now = self.clock()
        ago = now - state.renewed if state.renewed is not None else 0.0
        left = state.duration - ago
        text = (
            f"{state.holder} drives this move (lease {self.name} renewed {ago:.0f} s ago, "
            f"lapses in {left:.0f} s): one driver at a time; to take over, wait for it to lapse "
            "or take over with the cluster name typed"
        )
        return GuardRefused(text, (text,), holder=state.holder)

    async def acquire(self, *, take_over: bool = False, action: str = "") -> bool:
        """Hold the Lease (True when it was newly taken from someone else by ``take_over``);
        :class:`GuardRefused` naming the holder while another console holds it. ``action``:
        the change about to be made, shown to every viewer as the driver's last action."""
        async with self._lock:
            for _ in range(3):
                state = await self.read()
                now = self.clock()
                spec = {
                    "holderIdentity": self.holder,
                    "leaseDurationSeconds": LEASE_SECONDS,
                    "renewTime": _stamp(now),
                }
                annotations = (
                    {LAST_ACTION_ANNOTATION: json.dumps({"at": now, "action": action})}
                    if action
                    else {}
                )
                try:
                    if state is None:
                        await self._create({**spec, "acquireTime": _stamp(now)}, annotations)
                        self._held()
                        return False
                    theirs = state.holder and state.holder != self.holder
                    if theirs and state.live(now) and not take_over:
                        self.held = False
                        raise self._refusal(state)
                    if state.holder != self.holder:
                        spec["acquireTime"] = _stamp(now)
                    await self._patch(spec, state.resource_version, annotations)
                    self._held()
                    return bool(theirs)
                except ConflictError:
                    continue  # someone else wrote it between our read and write: read again
            state = await self.read()
            if state is not None and state.holder != self.holder:
                raise self._refusal(state)
            raise GuardRefused(f"the lease {self.name} kept changing under three attempts")

    def _held(self) -> None:
        self.held = True
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.create_task(self._renew_loop(), name="driver-lease")

    async def _create(self, spec: dict[str, Any], annotations: dict[str, str]) -> None:
        api = await self._api()
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": self.name,
                "labels": {"app.kubernetes.io/managed-by": "ivytui"},
                "annotations": annotations,
            },
            "spec": spec,
        }
        await self._writer()._call(
            f"create lease {self.name}",
            lambda: api.create_namespaced_lease(self._writer().namespace, body),
        )

    async def _patch(
        self,
        spec: dict[str, Any],
        resource_version: str,
        annotations: dict[str, str] | None = None,
    ) -> None:
        from ivytui.sources.kube_write import MERGE

        if not resource_version:
            raise GuardRefused(f"the lease {self.name} has no resourceVersion to write against")
        api = await self._api()
        meta: dict[str, Any] = {"resourceVersion": resource_version}
        if annotations:
            meta["annotations"] = annotations
        await self._writer()._call(
            f"write lease {self.name}",
            lambda: api.patch_namespaced_lease(
                self.name,
                self._writer().namespace,
                {"metadata": meta, "spec": spec},
                _content_type=MERGE,
            ),
        )

    async def ensure(self, action: str = "") -> None:
        """Hold the Lease before a change: renew it now, or refuse naming the holder."""
        await self.acquire(action=action)

    async def _renew_loop(self) -> None:
        while self.held:
            await asyncio.sleep(RENEW_EVERY)
            with contextlib.suppress(Exception):
                async with self._lock:
                    state = await self.read()
                    if state is None or state.holder != self.holder:
                        self.held = False  # taken over: the next change asks again
                        return
                    await self._patch({"renewTime": _stamp(self.clock())}, state.resource_version)

    async def release(self) -> None:
        """Give the Lease up (on quit): its holder emptied, so another console may drive."""
        task, self._renewer = self._renewer, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if not self.held:
            return
        self.held = False
        with contextlib.suppress(Exception):
            state = await self.read()
            if state is not None and state.holder == self.holder:
                await self._patch(
                    {"holderIdentity": "", "leaseDurationSeconds": 1, "renewTime": _stamp(0)},
                    state.resource_version,
                )
