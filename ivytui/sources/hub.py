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
from dataclasses import dataclass, field, fields, is_dataclass, replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

from ivytui.config import Config
from ivytui.domain.flavor import Flavor, flavor_named
from ivytui.domain.human import format_duration
from ivytui.domain.lag import LagHistory, LagReport, RateWindow, lag_from_snapshot
from ivytui.domain.lsn import DEFAULT_SEGMENT_SIZE, Lsn
from ivytui.domain.model import (
    MARKS_ANNOTATION,
    SOURCE_TITLES,
    Marks,
    MarksFormatError,
    Observed,
    PodInfo,
    Rates,
    RepoState,
    Snapshot,
    SourceName,
    Thresholds,
    V4Database,
    V4State,
    V5Database,
    V5State,
)
from ivytui.domain.runbook import Alarm, StepStatus, alarms, evaluate
from ivytui.errors import IvyError

if TYPE_CHECKING:
    from ivytui.sources.kube import KubeSource
    from ivytui.sources.postgres import PgSource
    from ivytui.sources.storage import RepoSource

log = logging.getLogger(__name__)

LogSource = Literal["v4", "repo", "v5", "kube", "events"]
LogLevel = Literal["info", "warning", "error"]
PolledName = Literal["repo", "v4db", "v5db"]
POLLED: tuple[PolledName, ...] = ("repo", "v4db", "v5db")
MIN_VIEW_GAP = 0.1
"""At most ten views a second; a burst of changes is coalesced into the next one."""
_LOG_SOURCE: Mapping[str, LogSource] = {
    "v4": "v4",
    "v4db": "v4",
    "repo": "repo",
    "v5": "v5",
    "v5db": "v5",
    "marks": "v5",
}


@dataclass(frozen=True)
class LogEntry:
    """One line of the event log."""

    at: float
    source: LogSource
    level: LogLevel
    text: str


@dataclass(frozen=True)
class HubView:
    """Everything the screen shows, at one instant."""

    snapshot: Snapshot
    steps: tuple[StepStatus, ...]
    alarms: tuple[Alarm, ...]
    lag: LagReport
    lag_history: tuple[tuple[float, int], ...]
    """``(time, lag bytes)`` — the lag is :attr:`LagReport.behind_bytes` (v4's open segment,
    which cannot be archived yet, is not counted)."""
    write_rate: float | None
    arrival_rate: float | None
    replay_rate: float | None
    context: str
    namespace: str
    cluster: str
    v5_name: str
    flavor: str
    read_only: bool
    freshest_at: float | None
    paused: bool
    interval: float
    objects: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    driver: str = ""
    """Who drives the move, from the driver Lease ("alice@bastion since 15:20 UTC"), or ""."""


def _driver_words(lease: Mapping[str, Any] | None, now: float) -> str:
    import datetime as dt

    spec = (lease or {}).get("spec") or {}
    holder = spec.get("holderIdentity")
    if not holder:
        return ""

    from ivytui.sources.kube import parse_time

    acquired = parse_time(spec.get("acquireTime"))
    renewed = parse_time(spec.get("renewTime"))
    since = dt.datetime.fromtimestamp(acquired, dt.UTC).strftime("%H:%M UTC") if acquired else "?"
    if renewed is not None and renewed + float(spec.get("leaseDurationSeconds") or 0) < now:
        return f"last driven by {holder} (since {since}; the lease has lapsed)"
    return f"{holder} drives since {since}"


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


def _pod_words(pod: PodInfo) -> str:
    words = [pod.phase, "ready" if pod.ready else "not ready"]
    if pod.role:
        words.insert(0, pod.role)
    if pod.deleting:
        words.append("terminating")
    return ", ".join(words)


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
                error = str(exc)
            except Exception as exc:
                log.exception("polling %s failed", name)
                error = f"internal error: {exc!r}"
            now = self.clock()
            if result is None:
                assert error is not None
                result = replace(
                    previous,
                    error=error,
                    stale_since=previous.stale_since if previous.stale_since is not None else now,
                )
                if previous.error != error:
                    self._log(
                        name,
                        "error",
                        f"{SOURCE_TITLES[name]} is not answering: {error}",
                    )
            elif previous.error is not None:
                since = previous.stale_since
                ago = f" after {format_duration(now - since)}" if since is not None else ""
                self._log(name, "info", f"{SOURCE_TITLES[name]} answers again{ago}")
            self._states[name] = result
            self._after_poll(name, previous, result)
            self._history_due = True
            self._schedule_view()

    def _after_poll(self, name: str, previous: Observed, current: Observed) -> None:
        if isinstance(current, V4Database) and isinstance(previous, V4Database):
            self._after_v4db(previous, current)
        elif isinstance(current, V5Database) and isinstance(previous, V5Database):
            self._after_v5db(previous, current)
        elif isinstance(current, RepoState) and isinstance(previous, RepoState):
            self._after_repo(previous, current)

    def _after_v4db(self, previous: V4Database, current: V4Database) -> None:
        if current.error is not None:
            return
        if current.reachable:
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
        fresh = previous.observed_at <= 0 or previous.error is not None
        if current.reachable != previous.reachable or (fresh and not current.reachable):
            if current.reachable:
                self._log(
                    "v4db",
                    "info",
                    f"v4's database answers at {current.current_lsn} "
                    f"(timeline {current.timeline}, {current.walfile})",
                )
            else:
                self._log(
                    "v4db",
                    "warning",
                    f"v4's database does not answer: {current.unreachable_reason}",
                )
        if previous.reachable and current.reachable:
            if previous.read_only != current.read_only and current.read_only is not None:
                state = "on (frozen)" if current.read_only else "off (writable)"
                self._log("v4db", "info", f"v4 default_transaction_read_only is now {state}")
            if previous.timeline != current.timeline:
                self._log(
                    "v4db",
                    "warning",
                    f"v4 moved from timeline {previous.timeline} to {current.timeline}",
                )
            if previous.in_recovery != current.in_recovery and current.in_recovery:
                self._log("v4db", "warning", "v4's database is in recovery")

    def _after_v5db(self, previous: V5Database, current: V5Database) -> None:
        if current.error is not None:
            return
        position = current.position
        if current.reachable and current.in_recovery and position is not None:
            self._replay = self._replay.add(current.observed_at, int(position))
        fresh = previous.observed_at <= 0 or previous.error is not None
        if current.reachable != previous.reachable or (fresh and not current.reachable):
            if current.reachable:
                where = (
                    f"in recovery, replayed to {current.replay_lsn}"
                    if current.in_recovery
                    else f"out of recovery at {current.current_lsn}"
                )
                self._log("v5db", "info", f"v5's database answers: {where}")
            else:
                self._log(
                    "v5db",
                    "warning",
                    f"v5's database does not answer: {current.unreachable_reason}",
                )
        if previous.reachable and current.reachable:
            if previous.in_recovery and current.in_recovery is False:
                self._log(
                    "v5db",
                    "warning",
                    f"v5 left recovery: promoted, now on timeline {current.timeline}",
                )
            elif previous.timeline != current.timeline and current.timeline is not None:
                self._log(
                    "v5db",
                    "info",
                    f"v5 moved from timeline {previous.timeline} to {current.timeline}",
                )

    def _after_repo(self, previous: RepoState, current: RepoState) -> None:
        assert self._repo is not None
        if current.error is not None:
            return
        timeline = self._v4_timeline(current)
        newest = current.newest_on(timeline) if timeline is not None else None
        if newest is not None:
            with contextlib.suppress(IvyError, ValueError):
                end = newest.segment(self._segment_size).end
                self._arrival = self._arrival.add(current.observed_at, int(end))
        if not current.reachable:
            if (
                previous.reachable
                or self._first_repo
                or (previous.unreachable_reason != current.unreachable_reason)
            ):
                self._log(
                    "repo",
                    "error",
                    f"the repo {current.url} cannot be read: {current.unreachable_reason}",
                )
            self._first_repo = False
            return
        if self._first_repo or not previous.reachable:
            info = current.archive_info
            what = (
                f"system id {info.system_id}, PostgreSQL {info.version}"
                if info is not None
                else "no readable archive.info"
            )
            newest_all = max(current.newest_segments, key=lambda s: s.name, default=None)
            self._log(
                "repo",
                "info",
                f"repo {current.url}: {what}; newest segment "
                f"{newest_all.name if newest_all else 'none'}; {current.segment_count} segments"
                + ("" if self._repo.count_complete else " counted so far"),
            )
        else:
            new = self._repo.new_segments
            if 0 < len(new) <= 3:
                for seg in new:
                    self._log("repo", "info", f"new segment {seg.name} (timeline {seg.timeline})")
            elif new:
                self._log(
                    "repo",
                    "info",
                    f"{len(new)} new segments, newest {new[-1].name}",
                )
        if current.info_error != previous.info_error and current.info_error is not None:
            self._log("repo", "error", f"archive.info cannot be read: {current.info_error}")
        for tl in sorted(set(current.history_timelines) - set(previous.history_timelines)):
            if not self._first_repo:
                self._log("repo", "warning", f"{tl:08X}.history appeared in the repo")
        self._first_repo = False

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
        self._emit_log(LogEntry(at=at, source="events", level=_level(level), text=text))

    def _check_kube(self) -> None:
        """Log what changed on the Kubernetes side since the last look."""
        if self._kube is None or not self._kube.v4_ready.is_set():
            return
        v4, v5 = self._kube.v4_state(), self._kube.v5_state()
        old = self._kube_states
        self._kube_states = (v4, v5)
        for key, state in (("v4", v4), ("v5", v5)):
            if state.error != self._kube_errors[key]:
                if state.error is not None:
                    self._emit_log(
                        LogEntry(self.clock(), "kube", "error", f"{key} watch: {state.error}")
                    )
                elif self._kube_errors[key] is not None:
                    self._emit_log(LogEntry(self.clock(), "kube", "info", f"{key} watch recovered"))
                self._kube_errors[key] = state.error
        if old is None:
            self._initial_kube_log(v4, v5)
            return
        old_v4, old_v5 = old
        self._diff_pods("v4", old_v4.pods, v4.pods)
        self._diff_pods("v5", old_v5.pods, v5.pods)
        if old_v4.exists != v4.exists:
            self._log(
                "v4",
                "warning" if not v4.exists else "info",
                f"v4 Pgcluster {v4.name} " + ("appeared" if v4.exists else "is gone"),
            )
        elif v4.exists:
            if old_v4.state != v4.state:
                self._log("v4", "info", f"v4 {v4.name}: {old_v4.state} → {v4.state}")
            if old_v4.shutdown != v4.shutdown:
                self._log("v4", "warning", f"v4 {v4.name}: spec.shutdown is now {v4.shutdown}")
            if old_v4.deleting != v4.deleting and v4.deleting:
                self._log("v4", "warning", f"v4 {v4.name} is being deleted")
        if set(old_v4.backup_schedules) != set(v4.backup_schedules):
            self._log(
                "v4", "info", f"v4 backup schedules: {', '.join(v4.backup_schedules) or 'none'}"
            )
        if old_v5.crd_installed != v5.crd_installed and v5.crd_installed is not None:
            installed = "installed" if v5.crd_installed else "not installed"
            self._log("v5", "info", f"the CRD {self.flavor.v5.crd_name} is {installed}")
        if old_v5.exists != v5.exists:
            self._log(
                "v5", "info", f"{v5.kind} {v5.name} " + ("appeared" if v5.exists else "is gone")
            )
        elif v5.exists:
            if old_v5.standby_enabled != v5.standby_enabled:
                self._log(
                    "v5",
                    "warning",
                    f"{v5.kind} {v5.name}: spec.standby.enabled is now {v5.standby_enabled}",
                )
            old_conditions = {c.type: c for c in old_v5.conditions}
            for condition in v5.conditions:
                before = old_conditions.get(condition.type)
                if before is None or before.status != condition.status:
                    level: LogLevel = "info" if condition.status == "True" else "warning"
                    self._log(
                        "v5",
                        level,
                        f"{v5.kind} {v5.name} condition {condition.type}={condition.status}"
                        + (f" ({condition.reason})" if condition.reason else ""),
                    )

    def _initial_kube_log(self, v4: V4State, v5: V5State) -> None:
        if v4.error is None:
            if v4.exists:
                pods = ", ".join(p.name for p in v4.pods) or "no pods"
                self._log("v4", "info", f"v4 Pgcluster {v4.name} is {v4.state}; {pods}")
            else:
                self._log(
                    "v4",
                    "warning",
                    f"v4 Pgcluster {v4.name} not found in namespace {v4.namespace}",
                )
        if v5.error is None:
            if v5.exists:
                pods = ", ".join(p.name for p in v5.pods) or "no pods"
                self._log("v5", "info", f"{v5.kind} {v5.name} exists; {pods}")
            elif v5.crd_installed is False:
                self._log("v5", "warning", f"the CRD {self.flavor.v5.crd_name} is not installed")
            else:
                self._log("v5", "info", f"{v5.kind} {v5.name} does not exist yet")

    def _diff_pods(
        self, side: Literal["v4", "v5"], old: tuple[PodInfo, ...], new: tuple[PodInfo, ...]
    ) -> None:
        before = {p.name: p for p in old}
        after = {p.name: p for p in new}
        for name, pod in after.items():
            prior = before.get(name)
            if prior is None:
                self._log(side, "info", f"{side} pod {name} appeared ({_pod_words(pod)})")
            elif (prior.phase, prior.ready, prior.role, prior.deleting) != (
                pod.phase,
                pod.ready,
                pod.role,
                pod.deleting,
            ):
                self._log(
                    side, "info", f"{side} pod {name}: {_pod_words(prior)} → {_pod_words(pod)}"
                )
        for name in before.keys() - after.keys():
            self._log(side, "info", f"{side} pod {name} is gone")

    # -- logging -----------------------------------------------------------------------------

    def _log(self, name: str, level: LogLevel, text: str) -> None:
        self._emit_log(LogEntry(self.clock(), _LOG_SOURCE.get(name, "kube"), level, text))

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
            if stored is None or (seen.timeline, int(seen.lsn)) > (
                stored.timeline,
                int(stored.lsn),
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
            driver=_driver_words(kube.driver_lease() if kube is not None else None, now),
        )


def _level(text: str) -> LogLevel:
    if text == "warning":
        return "warning"
    if text == "error":
        return "error"
    return "info"


# --------------------------------------------------------------------------------------------
# JSON


def _jsonable(value: Any) -> Any:
    if isinstance(value, Lsn):
        return str(value)
    if isinstance(value, bool) or value is None or isinstance(value, (str, float)):
        return value
    if isinstance(value, int):
        return int(value)
    if is_dataclass(value) and not isinstance(value, type):
        out = {f.name: _jsonable(getattr(value, f.name)) for f in fields(value)}
        if isinstance(value, StepStatus):
            out["failing"] = len(value.failing)
        return out
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    return str(value)


SOURCE_ORDER: tuple[SourceName, ...] = ("v4", "v4db", "repo", "v5", "v5db", "marks")


def view_to_json(view: HubView) -> dict[str, Any]:
    """A JSON-safe form of ``view``: per source ``{ok, error, problem, …values}``, the steps
    with their checks, the alarms and the lag."""
    snap = view.snapshot
    sources: dict[str, Any] = {}
    for name in SOURCE_ORDER:
        src = snap.source(name)
        values = _jsonable(src)
        assert isinstance(values, dict)
        ok = src.error is None and src.observed_at > 0
        sources[name] = {"ok": ok, "problem": snap.problem(name), **values}
    if isinstance(snap.v5, V5State):
        sources["v5"]["crd"] = snap.flavor.v5.crd_name
    lag = _jsonable(view.lag)
    assert isinstance(lag, dict)
    lag["text"] = view.lag.describe()
    return {
        "ok": all(entry["ok"] for entry in sources.values()),
        "now": snap.now,
        "context": view.context,
        "driver": view.driver,
        "namespace": view.namespace,
        "cluster": view.cluster,
        "v5_name": view.v5_name,
        "flavor": view.flavor,
        "read_only": view.read_only,
        "interval": view.interval,
        "paused": view.paused,
        "freshest_at": view.freshest_at,
        "sources": sources,
        "steps": _jsonable(view.steps),
        "alarms": _jsonable(view.alarms),
        "lag": lag,
        "lag_history": [[at, value] for at, value in view.lag_history],
        "rates": {
            "write_bps": view.write_rate,
            "arrival_bps": view.arrival_rate,
            "replay_bps": view.replay_rate,
        },
        "segment_size": snap.segment_size,
    }
