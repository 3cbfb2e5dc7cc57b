"""The incremental reader: a few requests a poll, whatever the archive's size (see the package's
docstring for how)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ivytui.domain.lsn import DEFAULT_SEGMENT_SIZE
from ivytui.domain.model import RepoState, SegmentObject
from ivytui.domain.repoinfo import (
    ArchiveInfo,
    BackupInfo,
    HistoryKey,
    RepoFormatError,
    RepoLayout,
    SegmentKey,
    parse_archive_info,
    parse_archive_key,
    parse_backup_info,
)
from ivytui.errors import StorageError
from ivytui.sources.storage.base import (
    Locate,
    RepoTarget,
    _Missing,
    _Obj,
    _Refused,
    _Unreachable,
)
from ivytui.sources.storage.gcs import _GcsStore
from ivytui.sources.storage.s3 import _S3Store

COUNT_PAGES_PER_POLL = 2
ARCHIVE_IDS_REFRESH = 300.0

_DIR_RE = re.compile(r"([0-9A-F]{8})([0-9A-F]{8})/")

_Store = _S3Store | _GcsStore


@dataclass
class _Info:
    """One info file as last read."""

    tag: str | None = None
    """The ETag (GCS: generation) of the last answer, kept only when that answer parsed."""
    text: str | None = None
    parsed: ArchiveInfo | BackupInfo | None = None
    error: str | None = None
    missing: bool = False
    from_copy: bool = False


@dataclass
class _CountJob:
    prefix: str
    end: str
    cursor: str | None = None
    token: str | None = None


@dataclass
class _Archive:
    """What is known of one archive id (``15-1``)."""

    prefix: str
    initialized: bool = False
    newest: dict[int, SegmentObject] = field(default_factory=dict)
    after: dict[int, str] = field(default_factory=dict)
    history: set[int] = field(default_factory=set)
    count: int = 0
    jobs: list[_CountJob] = field(default_factory=list)


class RepoSource:
    """Reads the repo's state; every call of :meth:`poll` costs a few requests at most."""

    def __init__(
        self,
        locate: Locate,
        *,
        clock: Callable[[], float] = time.time,
        segment_size: Callable[[], int] = lambda: DEFAULT_SEGMENT_SIZE,
    ) -> None:
        self.locate = locate
        self.clock = clock
        self.segment_size = segment_size
        self.target: RepoTarget | None = None
        self.last_poll_requests = 0
        self.last_poll_seconds: float | None = None
        self.backup_info_error: str | None = None
        self.new_segments: tuple[SegmentObject, ...] = ()
        self.count_complete = False
        self._store: _Store | None = None
        self._archive_info = _Info()
        self._backup_info = _Info()
        self._ids: tuple[str, ...] | None = None
        self._ids_at = 0.0
        self._ids_tag: str | None = None
        self._archives: dict[str, _Archive] = {}

    @property
    def archive_info_text(self) -> str | None:
        return self._archive_info.text

    @property
    def backup_info_text(self) -> str | None:
        return self._backup_info.text

    async def close(self) -> None:
        store, self._store = self._store, None
        if store is not None:
            await store.close()

    def _reset(self) -> None:
        self._archive_info = _Info()
        self._backup_info = _Info()
        self._ids = None
        self._ids_tag = None
        self._archives = {}
        self.backup_info_error = None
        self.count_complete = False

    async def _ensure_store(self) -> tuple[RepoTarget, _Store]:
        target = await self.locate()
        if target != self.target or self._store is None:
            await self.close()
            self._reset()
            store: _Store = _S3Store(target) if target.storage == "s3" else _GcsStore(target)
            await store.open()
            self._store = store
            self.target = target
        return target, self._store

    async def poll(self) -> RepoState:
        """One observation; raises :class:`StorageError` when the store does not answer."""
        started = time.perf_counter()
        target, store = await self._ensure_store()
        before = store.requests
        self.new_segments = ()
        try:
            return await self._poll(target, store)
        except _Unreachable as exc:
            raise StorageError(str(exc)) from None
        except _Refused as exc:
            return RepoState(
                observed_at=self.clock(),
                url=target.url,
                reachable=False,
                unreachable_reason=str(exc),
            )
        finally:
            self.last_poll_requests = store.requests - before
            self.last_poll_seconds = time.perf_counter() - started

    async def _fetch_info(self, store: _Store, info: _Info, key: str, label: str) -> None:
        """Fetch an info file if it changed; pgBackRest's ``.copy`` stands in for a missing one.

        Only an answer that parses (checksum included) keeps its tag. A damaged one — a proxy,
        bit rot in transit, a body cut short — is shown as unreadable, with the reason, in place
        of any good copy read before, and the next poll GETs the file in full again: were its
        tag kept, the store (or a proxy passing the stored ETag along, or GCS, whose generation
        does not change) would answer "not modified" to every later poll, for ever.
        """
        keys = (key, key + ".copy")
        first = keys[1] if info.from_copy else keys[0]
        try:
            got = await store.get(first, info.tag)
            served = first
        except _Missing:
            if info.missing and not info.from_copy:
                return
            other = keys[0] if info.from_copy else keys[1]
            try:
                got = await store.get(other, None)
                served = other
            except _Missing:
                info.tag = info.text = info.parsed = info.error = None
                info.missing = True
                info.from_copy = False
                return
        info.from_copy = served == keys[1]
        info.missing = False
        if got.body is None:
            return
        text = got.body.decode("utf-8", "replace")
        info.text = text
        parsed: ArchiveInfo | BackupInfo
        try:
            if label.endswith("archive.info"):
                parsed = parse_archive_info(text, label)
            else:
                parsed = parse_backup_info(text, label)
        except RepoFormatError as exc:
            info.tag = None
            info.parsed = None
            info.error = str(exc)
            return
        info.tag = got.tag
        info.parsed = parsed
        info.error = None

    async def _poll(self, target: RepoTarget, store: _Store) -> RepoState:
        layout = target.layout
        await self._fetch_info(
            store, self._archive_info, layout.archive_info_key, "archive/db/archive.info"
        )
        if self._archive_info.missing:
            # A listing tells a missing bucket (refused, with words) from a wrong path.
            await store.list(layout.archive_prefix, delimiter="/")
            return RepoState(
                observed_at=self.clock(),
                url=target.url,
                reachable=False,
                unreachable_reason=(
                    f"the bucket answers but holds no archive/db/archive.info under "
                    f"{target.url}: wrong repo path, or no stanza db"
                ),
            )
        await self._fetch_info(
            store, self._backup_info, layout.backup_info_key, "backup/db/backup.info"
        )
        self.backup_info_error = self._backup_info.error
        archive_info = self._archive_info.parsed
        assert archive_info is None or isinstance(archive_info, ArchiveInfo)
        backup_info = self._backup_info.parsed
        assert backup_info is None or isinstance(backup_info, BackupInfo)

        ids = await self._archive_ids(store, layout)
        tracked = list(ids)
        if archive_info is not None and archive_info.archive_id in ids:
            tracked = [archive_info.archive_id]
        new: list[SegmentObject] = []
        for aid in tracked:
            archive = self._archives.setdefault(
                aid, _Archive(prefix=f"{layout.archive_prefix}{aid}/")
            )
            await self._scan(store, layout, archive, new)
        budget = COUNT_PAGES_PER_POLL
        for aid in tracked:
            budget = await self._count(store, layout, self._archives[aid], budget)
        self.count_complete = all(not self._archives[aid].jobs for aid in tracked)
        self.new_segments = tuple(sorted(new, key=lambda seg: seg.name))

        newest: dict[int, SegmentObject] = {}
        history: set[int] = set()
        count = 0
        for aid in tracked:
            archive = self._archives[aid]
            for tl, seg in archive.newest.items():
                if tl not in newest or seg.name > newest[tl].name:
                    newest[tl] = seg
            history |= archive.history
            count += archive.count
        return RepoState(
            observed_at=self.clock(),
            url=target.url,
            reachable=True,
            archive_info=archive_info,
            backup_info=backup_info,
            info_error=self._archive_info.error,
            newest_segments=tuple(newest[tl] for tl in sorted(newest)),
            history_timelines=tuple(sorted(history)),
            segment_count=count,
        )

    async def _list_all(
        self,
        store: _Store,
        prefix: str,
        *,
        start_after: str | None = None,
        delimiter: str | None = None,
    ) -> tuple[list[_Obj], list[str]]:
        objects: list[_Obj] = []
        prefixes: list[str] = []
        token: str | None = None
        while True:
            page = await store.list(
                prefix, start_after=start_after, delimiter=delimiter, token=token
            )
            objects.extend(page.objects)
            prefixes.extend(page.prefixes)
            token = page.token
            if not token:
                return objects, prefixes

    async def _archive_ids(self, store: _Store, layout: RepoLayout) -> tuple[str, ...]:
        stale = time.monotonic() - self._ids_at > ARCHIVE_IDS_REFRESH
        if self._ids is None or stale or self._ids_tag != self._archive_info.tag:
            _, prefixes = await self._list_all(store, layout.archive_prefix, delimiter="/")
            found = []
            for prefix in prefixes:
                name = prefix[len(layout.archive_prefix) :].rstrip("/")
                if re.fullmatch(r"\d+(?:\.\d+)?-\d+", name):
                    found.append(name)
            self._ids = tuple(sorted(found))
            self._ids_at = time.monotonic()
            self._ids_tag = self._archive_info.tag
        return self._ids

    def _take(
        self, layout: RepoLayout, archive: _Archive, obj: _Obj, new: list[SegmentObject] | None
    ) -> None:
        rest = obj.key[len(archive.prefix) :]
        match = _DIR_RE.match(rest)
        if match is not None:
            timeline = int(match.group(1), 16)
            if obj.key > archive.after.get(timeline, ""):
                archive.after[timeline] = obj.key
        parsed = parse_archive_key(obj.key, layout.archive_prefix, self.segment_size())
        if isinstance(parsed, HistoryKey):
            archive.history.add(parsed.timeline)
            return
        if not isinstance(parsed, SegmentKey) or parsed.partial:
            return
        archive.count += 1
        current = archive.newest.get(parsed.timeline)
        if current is None or parsed.name > current.name:
            seg = SegmentObject(
                name=parsed.name, key=obj.key, size=obj.size, last_modified=obj.modified
            )
            archive.newest[parsed.timeline] = seg
            if new is not None:
                new.append(seg)

    async def _scan(
        self, store: _Store, layout: RepoLayout, archive: _Archive, new: list[SegmentObject]
    ) -> None:
        if not archive.initialized:
            await self._first_scan(store, layout, archive)
            return
        timelines = sorted(archive.after)
        highest = timelines[-1] if timelines else None
        for timeline in timelines[:-1]:
            objects, _ = await self._list_all(
                store, f"{archive.prefix}{timeline:08X}", start_after=archive.after[timeline]
            )
            for obj in objects:
                self._take(layout, archive, obj, new)
        start = archive.after.get(highest) if highest is not None else None
        objects, _ = await self._list_all(store, archive.prefix, start_after=start)
        for obj in objects:
            self._take(layout, archive, obj, new)

    async def _first_scan(self, store: _Store, layout: RepoLayout, archive: _Archive) -> None:
        objects, prefixes = await self._list_all(store, archive.prefix, delimiter="/")
        for obj in objects:
            self._take(layout, archive, obj, None)
        dirs: dict[int, list[str]] = {}
        for prefix in prefixes:
            match = _DIR_RE.fullmatch(prefix[len(archive.prefix) :])
            if match is not None:
                dirs.setdefault(int(match.group(1), 16), []).append(prefix)
        for timeline, folders in sorted(dirs.items()):
            folders.sort()
            listed = len(folders)
            while listed > 0:
                listed -= 1
                found, _ = await self._list_all(store, folders[listed])
                for obj in found:
                    self._take(layout, archive, obj, None)
                if timeline in archive.newest:
                    break
            if listed > 0:
                archive.jobs.append(
                    _CountJob(prefix=f"{archive.prefix}{timeline:08X}", end=folders[listed])
                )
        archive.initialized = True

    async def _count(
        self, store: _Store, layout: RepoLayout, archive: _Archive, budget: int
    ) -> int:
        while budget > 0 and archive.jobs:
            job = archive.jobs[0]
            page = await store.list(job.prefix, start_after=job.cursor, token=job.token)
            budget -= 1
            done = page.token is None
            for obj in page.objects:
                if obj.key >= job.end:
                    done = True
                    break
                parsed = parse_archive_key(obj.key, layout.archive_prefix, self.segment_size())
                if isinstance(parsed, SegmentKey) and not parsed.partial:
                    archive.count += 1
                job.cursor = obj.key
            job.token = page.token
            if done:
                archive.jobs.pop(0)
        return budget
