"""The hub: every source, polled or watched, assembled into one :class:`HubView`.

The UI and ``ivytui status --json`` both use it. Each polled source (the repo, v4's database,
v5's database) has its own loop — poll with its own timeout, then sleep the interval — so a slow
source never holds up another and two polls of one source never overlap. The Kubernetes watches
push their changes at once. A source that fails keeps its last values, with ``error`` and
``stale_since`` set, and recovers by itself on a later poll.

After any change the hub builds a :class:`domain.model.Snapshot`, evaluates the runbook and the
lag, and calls the ``on_view`` callbacks — at most about ten times a second, bursts coalesced.
The ``on_log`` callbacks hear about changes only: pod phases, new segments, Kubernetes events,
source errors and recoveries.

Nothing here imports ``kubernetes_asyncio``, ``aioboto3`` or ``asyncpg`` at module level: they are
imported when :meth:`Hub.start` connects, after the UI's first frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

from ivytui.config import Config
from ivytui.domain.flavor import Flavor, flavor_named
from ivytui.domain.lag import LagHistory, RateWindow, lag_from_snapshot
from ivytui.domain.lsn import DEFAULT_SEGMENT_SIZE, Lsn
from ivytui.domain.model import (
    MARKS_ANNOTATION,
    Marks,
    MarksFormatError,
    Observed,
    Rates,
    RepoState,
    Snapshot,
    Thresholds,
    V4Database,
    V4State,
    V5Database,
    V5State,
)
from ivytui.domain.runbook import alarms, evaluate
from ivytui.errors import IvyError
from ivytui.sources import changes
from ivytui.sources.changes import LogEntry, LogLevel, LogSource
from ivytui.sources.journal import scrub
from ivytui.sources.view import HubView, driver_words, view_to_json

if TYPE_CHECKING:
    from ivytui.sources.kube import KubeSource
    from ivytui.sources.postgres import PgSource
    from ivytui.sources.storage import RepoSource

__all__ = [
    "Hub",
    "HubView",
    "LogEntry",
    "LogLevel",
    "LogSource",
    "flavor_of",
    "view_to_json",
]

log = logging.getLogger(__name__)

PolledName = Literal["repo", "v4db", "v5db"]
POLLED: tuple[PolledName, ...] = ("repo", "v4db", "v5db")
MIN_VIEW_GAP = 0.1
"""At most ten views a second; a burst of changes is coalesced into the next one."""


def flavor_of(config: Config) -> Flavor:
    """The config's flavor with its overrides applied."""
    ov = config.flavor_overrides
    return flavor_named(config.flavor).with_overrides(
        group=ov.group or None,
        version=ov.version or None,
        plural=ov.plural or None,
        kind=ov.kind or None,
        label_prefix=ov.label_prefix or None,
        replication_role=ov.replication_role or None,
    )


class Hub:
    """All sources of one migration, and the view built from them."""

    def __init__(self, config: Config, *, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock
        self.flavor = flavor_of(config)
        self._interval = config.interval
        self._paused = False
        self._started = False
        self._stopping = False
        self._kube: KubeSource | None = None
        self._repo: RepoSource | None = None
        self._v4db: PgSource | None = None
        self._v5db: PgSource | None = None
        self._states: dict[str, Observed] = {
            "repo": RepoState(),
            "v4db": V4Database(),
            "v5db": V5Database(),
        }
        self._kube_states: tuple[V4State, V5State] | None = None
        self._kube_errors: dict[str, str | None] = {"v4": None, "v5": None}
        self._view_cbs: list[Callable[[HubView], None]] = []
        self._log_cbs: list[Callable[[LogEntry], None]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._wake: dict[str, asyncio.Event] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._emit_handle: asyncio.Handle | None = None
        self._last_emit = 0.0
        self._write = RateWindow()
        self._arrival = RateWindow()
        self._replay = RateWindow()
        self._history = LagHistory()
        self._history_due = False
        self._history_at = 0.0
        self._segment_size = DEFAULT_SEGMENT_SIZE
        self._seen = Marks()
        self._first_repo = True
        self._replay_seen: Lsn | None = None
        self._replay_moved_at: float | None = None
        self.log_entries: list[LogEntry] = []
        self.view = self._build_view()

    # -- public API --------------------------------------------------------------------------

    def on_view(self, cb: Callable[[HubView], None]) -> None:
        self._view_cbs.append(cb)

    def on_log(self, cb: Callable[[LogEntry], None]) -> None:
        self._log_cbs.append(cb)

    @property
    def kube(self) -> KubeSource | None:
        """The Kubernetes source (``None`` until :meth:`start`): raw objects and Secrets."""
        return self._kube

    @property
    def interval(self) -> float:
        return self._interval

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def requests_per_poll(self) -> int | None:
        """Requests the repo's last poll made."""
        return self._repo.last_poll_requests if self._repo is not None else None

    async def start(self) -> None:
        """Connect and start watching and polling; raises :class:`IvyError` for bad input."""
        if self._started:
            return
        self._stopping = False
        await self._connect()
        assert self._kube is not None
        await self._kube.start()
        for name in POLLED:
            self._tasks.append(asyncio.create_task(self._poller(name), name=f"poll-{name}"))
        self._started = True

    async def stop(self) -> None:
        """Cancel every task and close every connection."""
        self._stopping = True
        if self._emit_handle is not None:
            self._emit_handle.cancel()
            self._emit_handle = None
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        closers = []
        if self._kube is not None:
            closers.append(self._kube.close())
        for source in (self._repo, self._v4db, self._v5db):
            if source is not None:
                closers.append(source.close())
        self._kube = self._repo = self._v4db = self._v5db = None
        self._kube_states = None
        results = await asyncio.gather(*closers, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
                log.warning("closing a source failed: %r", result)
        self._started = False

    async def refresh(self) -> None:
        """Poll every polled source now (the watches are always current)."""
        await asyncio.gather(*(self._poll_source(name) for name in POLLED))
        self._emit(force=True)

    def pause(self) -> None:
        """Stop polling and freeze the view until :meth:`resume`."""
        if self._paused:
            return
        self._paused = True
        self._emit(force=True)

    def resume(self) -> None:
        if not self._paused:
            return
        self._paused = False
        for event in self._wake.values():
            event.set()
        self._emit(force=True)

    def set_interval(self, seconds: float) -> None:
        self._interval = max(0.2, min(float(seconds), 3600.0))
        for event in self._wake.values():
            event.set()
        self._emit(force=True)

    async def once(self) -> HubView:
        """One full reading of every source, then stop: for ``status --json``."""
        try:
            await self._connect()
            assert self._kube is not None
            try:
                await asyncio.wait_for(self._kube.list_all(), self.config.source_timeout * 2)
            except TimeoutError:
                self._kube_errors["v4"] = self._kube_errors["v5"] = (
                    f"the API server {self._kube.server} did not answer within "
                    f"{self.config.source_timeout * 2:g} s"
                )
            await asyncio.gather(*(self._poll_source(name) for name in POLLED))
            self._check_kube()
            self.view = self._build_view()
            return self.view
        finally:
            await self.stop()

    # -- set-up ------------------------------------------------------------------------------

    async def _connect(self) -> None:
        from ivytui.sources.kube import KubeSource
        from ivytui.sources.postgres import PgSource, v4_locator, v5_locator
        from ivytui.sources.storage import RepoSource, repo_locator

        if self._kube is not None:
            return
        kube = KubeSource(
            self.config,
            self.flavor,
            clock=self.clock,
            on_change=self._kube_changed,
            on_event=self._kube_event,
        )
        try:
            await kube.connect()
        except BaseException:
            await kube.close()
            raise
        self._kube = kube

        def v4_state() -> V4State | None:
            return kube.v4_state() if kube.v4_ready.is_set() else None

        def v5_state() -> V5State | None:
            return kube.v5_state() if kube.v4_ready.is_set() else None

        def v4_port() -> int | None:
            state = v4_state()
            return state.port if state is not None else None

        self._repo = RepoSource(
            repo_locator(self.config, kube, v4_state, v5_state),
            clock=self.clock,
            segment_size=lambda: self._segment_size,
        )
        self._v4db = PgSource(
            "v4", self.config, self.flavor, v4_locator(self.config, kube, v4_port), clock=self.clock
        )
        self._v5db = PgSource(
            "v5", self.config, self.flavor, v5_locator(self.config, kube), clock=self.clock
        )
        for name in POLLED:
            self._wake[name] = asyncio.Event()
            self._locks[name] = asyncio.Lock()
        self._states["repo"] = RepoState()

    # -- polling -----------------------------------------------------------------------------

    async def _poller(self, name: PolledName) -> None:
        if self._kube is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kube.v4_ready.wait(), self.config.source_timeout)
        wake = self._wake[name]
        while not self._stopping:
            if not self._paused:
                await self._poll_source(name)
            timeout = None if self._paused else self._interval
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout)
            wake.clear()

    async def _poll_source(self, name: PolledName) -> None:
        source: Any = {"repo": self._repo, "v4db": self._v4db, "v5db": self._v5db}[name]
        if source is None:
            return
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock:
            previous = self._states[name]
            timeout = self.config.source_timeout
            error: str | None = None
            result: Observed | None = None
            try:
                result = await asyncio.wait_for(source.poll(), timeout)
            except TimeoutError:
                error = f"no answer within {timeout:g} s"
                if name != "repo":
                    await source.close()
            except IvyError as exc:
                error = str(scrub(str(exc)))
            except Exception as exc:
                log.exception("polling %s failed", name)
                error = f"internal error: {scrub(repr(exc))}"
            now = self.clock()
            if result is None:
                assert error is not None
                result = replace(
                    previous,
                    error=error,
                    stale_since=previous.stale_since if previous.stale_since is not None else now,
                )
            self._emit_logs(changes.poll_outcome(name, previous, error, now))
            self._states[name] = result
            self._after_poll(name, previous, result)
            self._history_due = True
            self._schedule_view()

    def _after_poll(self, name: str, previous: Observed, current: Observed) -> None:
        """Keep what the hub must remember across polls, then log what changed."""
        at = self.clock()
        if isinstance(current, V4Database) and isinstance(previous, V4Database):
            self._remember_v4db(current)
            self._emit_logs(changes.v4db_changes(previous, current, at))
        elif isinstance(current, V5Database) and isinstance(previous, V5Database):
            self._remember_v5db(current)
            self._emit_logs(changes.v5db_changes(previous, current, at))
        elif isinstance(current, RepoState) and isinstance(previous, RepoState):
            assert self._repo is not None
            if current.error is not None:
                return
            self._remember_repo(current)
            self._emit_logs(
                changes.repo_changes(
                    previous,
                    current,
                    at,
                    first=self._first_repo,
                    new_segments=self._repo.new_segments,
                    count_complete=self._repo.count_complete,
                )
            )
            self._first_repo = False

    def _remember_v4db(self, current: V4Database) -> None:
        if current.error is not None or not current.reachable:
            return
        if current.segment_size:
            self._segment_size = current.segment_size
        if current.current_lsn is not None:
            # WAL really written: pg_stat_wal's bytes when the server has them, since the LSN
            # jumps to the next segment boundary on every switch (archive_timeout).
            written = (
                current.wal_bytes if current.wal_bytes is not None else int(current.current_lsn)
            )
            self._write = self._write.add(current.observed_at, written)
        self._seen = self._seen.with_v4_seen(current)

    def _remember_v5db(self, current: V5Database) -> None:
        if current.error is not None:
            return
        position = current.position
        if current.reachable and current.in_recovery and position is not None:
            self._replay = self._replay.add(current.observed_at, int(position))
        replay = current.replay_lsn if current.reachable and current.in_recovery else None
        if replay is not None:
            # A repo-fed standby replays in bursts: the runbook asks when replay last moved,
            # not how fast it moves right now (0 between two fetches).
            if self._replay_seen is not None and replay != self._replay_seen:
                self._replay_moved_at = current.observed_at
            self._replay_seen = replay

    def _remember_repo(self, current: RepoState) -> None:
        timeline = self._v4_timeline(current)
        newest = current.newest_on(timeline) if timeline is not None else None
        if newest is not None:
            with contextlib.suppress(IvyError, ValueError):
                end = newest.segment(self._segment_size).end
                self._arrival = self._arrival.add(current.observed_at, int(end))

    def _v4_timeline(self, repo: RepoState) -> int | None:
        v4db = self._states["v4db"]
        if isinstance(v4db, V4Database) and v4db.timeline is not None:
            return v4db.timeline
        seen = self._seen.v4_last_seen
        if seen is not None:
            return seen.timeline
        timelines = repo.timelines
        return timelines[0] if timelines else None

    # -- the Kubernetes side -----------------------------------------------------------------

    def _kube_changed(self) -> None:
        if self._stopping:
            return
        with contextlib.suppress(RuntimeError):
            self._schedule_view()

    def _kube_event(self, at: float, level: str, text: str) -> None:
        self._emit_log(LogEntry(at=at, source="events", level=changes.level_of(level), text=text))

    def _check_kube(self) -> None:
        """Log what changed on the Kubernetes side since the last look."""
        if self._kube is None or not self._kube.v4_ready.is_set():
            return
        v4, v5 = self._kube.v4_state(), self._kube.v5_state()
        old = self._kube_states
        self._kube_states = (v4, v5)
        sides: tuple[tuple[Literal["v4", "v5"], V4State | V5State], ...] = (("v4", v4), ("v5", v5))
        for key, state in sides:
            self._emit_logs(
                changes.watch_error(key, state.error, self._kube_errors[key], self.clock())
            )
            self._kube_errors[key] = state.error
        self._emit_logs(
            changes.kube_changes(old, v4, v5, self.clock(), crd_name=self.flavor.v5.crd_name)
        )

    # -- logging -----------------------------------------------------------------------------

    def _emit_logs(self, entries: list[LogEntry]) -> None:
        for entry in entries:
            self._emit_log(entry)

    def _emit_log(self, entry: LogEntry) -> None:
        self.log_entries.append(entry)
        del self.log_entries[:-500]
        for cb in list(self._log_cbs):
            try:
                cb(entry)
            except Exception:
                log.exception("an on_log callback failed")

    # -- views -------------------------------------------------------------------------------

    def _schedule_view(self) -> None:
        if self._emit_handle is not None or self._stopping:
            return
        loop = asyncio.get_running_loop()
        delay = max(0.0, self._last_emit + MIN_VIEW_GAP - time.monotonic())
        self._emit_handle = loop.call_later(delay, self._emit)

    def _emit(self, *, force: bool = False) -> None:
        if self._emit_handle is not None:
            self._emit_handle.cancel()
            self._emit_handle = None
        if self._stopping:
            return
        self._check_kube()
        if self._paused and not force:
            return
        self._last_emit = time.monotonic()
        self.view = self._build_view()
        for cb in list(self._view_cbs):
            try:
                cb(self.view)
            except Exception:
                log.exception("an on_view callback failed")

    def _thresholds(self) -> Thresholds:
        t = self.config.thresholds
        return Thresholds(
            stale_after=max(t.stale_seconds, 2 * self._interval + self.config.source_timeout),
            catch_up_bytes=t.catch_up_bytes,
            archive_stale_after=t.archive_age_seconds,
            repo_quiet_seconds=t.repo_quiet_seconds,
        )

    def _marks(self, v5: V5State) -> Marks:
        raw = self._kube.v5_object() if self._kube is not None else None
        annotations = ((raw or {}).get("metadata") or {}).get("annotations") or {}
        try:
            marks = Marks.from_json(annotations.get(MARKS_ANNOTATION), observed_at=v5.observed_at)
        except MarksFormatError as exc:
            marks = Marks(observed_at=v5.observed_at, error=str(exc))
        if v5.error is not None:
            marks = replace(marks, error=v5.error, stale_since=v5.stale_since)
        seen = self._seen.v4_last_seen
        if seen is not None and marks.error is None:
            stored = marks.v4_last_seen
            if stored is None or (seen.timeline, int(seen.lsn), seen.xid_horizon or 0) > (
                stored.timeline,
                int(stored.lsn),
                stored.xid_horizon or 0,
            ):
                marks = replace(marks, v4_last_seen=seen)
        return marks

    def _build_view(self) -> HubView:
        now = self.clock()
        kube = self._kube
        namespace = kube.namespace if kube is not None else self.config.namespace
        if kube is not None and kube.v4_ready.is_set():
            v4, v5 = kube.v4_state(), kube.v5_state()
        else:
            v4 = V4State(name=self.config.cluster, namespace=namespace)
            v5 = V5State(
                name=self.config.standby_name, namespace=namespace, kind=self.flavor.v5.kind
            )
        repo = self._states["repo"]
        v4db = self._states["v4db"]
        v5db = self._states["v5db"]
        assert isinstance(repo, RepoState)
        assert isinstance(v4db, V4Database)
        assert isinstance(v5db, V5Database)
        rates = Rates(
            write_bps=self._write.rate(),
            archive_bps=self._arrival.rate(),
            replay_bps=self._replay.rate(),
            replay_moved_at=self._replay_moved_at,
        )
        snapshot = Snapshot(
            now=now,
            v4=v4,
            v4db=v4db,
            repo=repo,
            v5=v5,
            v5db=v5db,
            marks=self._marks(v5),
            rates=rates,
            thresholds=self._thresholds(),
            flavor=self.flavor,
            segment_size=self._segment_size,
        )
        lag = lag_from_snapshot(snapshot)
        gap = max(self._interval / 2, 0.5)
        if self._history_due and lag.behind_bytes is not None and now - self._history_at >= gap:
            self._history = self._history.add(now, lag.behind_bytes)
            self._history_at = now
            self._history_due = False
        objects: dict[str, Mapping[str, Any]] = {}
        if kube is not None:
            objects.update(kube.raw_objects())
        if self._repo is not None:
            if self._repo.archive_info_text is not None:
                objects["repo/archive.info"] = {"text": self._repo.archive_info_text}
            if self._repo.backup_info_text is not None:
                objects["repo/backup.info"] = {"text": self._repo.backup_info_text}
        observed = [
            s.observed_at
            for s in (v4, v4db, repo, v5, v5db)
            if s.observed_at > 0 and s.error is None
        ]
        return HubView(
            snapshot=snapshot,
            steps=evaluate(snapshot),
            alarms=alarms(snapshot),
            lag=lag,
            lag_history=self._history.points,
            write_rate=rates.write_bps,
            arrival_rate=rates.archive_bps,
            replay_rate=rates.replay_bps,
            context=(kube.context if kube is not None else "") or self.config.context,
            namespace=namespace,
            cluster=self.config.cluster,
            v5_name=self.config.standby_name,
            flavor=self.flavor.key,
            read_only=self.config.read_only,
            freshest_at=max(observed) if observed else None,
            paused=self._paused,
            interval=self._interval,
            objects=MappingProxyType(objects),
            driver=driver_words(kube.driver_lease() if kube is not None else None, now),
        )
