"""Committed writes: the records a watch replays, the bounded history, watchers and subscribers."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from dataclasses import dataclass

from ivytui.sandbox.kubeapi.common import Obj, copy_json
from ivytui.sandbox.kubeapi.errors import gone

Event = tuple[str, str, Obj]


@dataclass(frozen=True, slots=True)
class Record:
    """One committed write: its resourceVersion, event type, resource key, object and predecessor."""

    rv: int
    type: str
    key: str
    obj: Obj
    prev: Obj | None


RecordList = list[Record]


class Watcher:
    """An HTTP watch stream's queue of records; `None` ends the stream."""

    __slots__ = ("key", "queue")

    def __init__(self, key: str) -> None:
        self.key = key
        self.queue: asyncio.Queue[Record | None] = asyncio.Queue()


class EventLog:
    """Fans each committed record out, in commit order, to the HTTP watchers of its resource and
    to in-process subscribers, and keeps the last `size` records for watches that resume."""

    def __init__(self, size: int, oldest: int) -> None:
        self._size = max(0, size)
        self._history: deque[Record] = deque()
        self.oldest = oldest
        self._subscribers: list[asyncio.Queue[Event]] = []
        self._watchers: set[Watcher] = set()

    def commit(self, rec: Record) -> None:
        self._history.append(rec)
        while len(self._history) > self._size:
            self.oldest = self._history.popleft().rv
        for w in list(self._watchers):
            if w.key == rec.key:
                w.queue.put_nowait(rec)
        for q in list(self._subscribers):
            q.put_nowait((rec.type, rec.key, copy_json(rec.obj)))

    def compact(self, resource_version: int) -> None:
        self._history.clear()
        self.oldest = resource_version

    def since(self, key: str, since: int) -> RecordList:
        """The records of `key` after `since`; a 410 ApiError if the history no longer has them."""
        if since < self.oldest:
            raise gone(since, self.oldest + 1)
        return [r for r in self._history if r.rv > since and r.key == key]

    def add_watcher(self, key: str) -> Watcher:
        w = Watcher(key)
        self._watchers.add(w)
        return w

    def remove_watcher(self, w: Watcher) -> None:
        self._watchers.discard(w)

    def end_watchers(self, key: str) -> None:
        """End every watch stream of `key` (its type is no longer served)."""
        for w in list(self._watchers):
            if w.key == key:
                w.queue.put_nowait(None)

    @property
    def watchers(self) -> int:
        return len(self._watchers)

    def subscribe(self) -> asyncio.Queue[Event]:
        q: asyncio.Queue[Event] = asyncio.Queue()
        self._subscribers.append(q)
        return q

    def unsubscribe(self, q: asyncio.Queue[Event]) -> None:
        with contextlib.suppress(ValueError):
            self._subscribers.remove(q)
