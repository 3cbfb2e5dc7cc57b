"""The storage pane: the pgBackRest repo in the bucket, as v4 writes it and v5 reads it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from textual.markup import escape
from textual.widget import Widget

from ivytui.domain.model import RepoState, Snapshot, SourceName
from ivytui.tui.panes.base import Pane
from ivytui.tui.protocols import HubViewLike
from ivytui.tui.text import BAD, DASH, OK, ago, error, muted, rate, short_utc, size, value
from ivytui.tui.widgets import FieldList, FieldSpec, KeyedTable

STORAGE_FIELDS: tuple[FieldSpec, ...] = (
    ("url", "repo", True),
    ("reachable", "reachable", True),
    ("system_id", "system id", True),
    ("version", "version", True),
    ("newest", "newest", True),
    ("arrival", "arrival", False),
    ("segments", "segments", False),
    ("history", "history", True),
)

BACKUP_COLUMNS = (
    ("label", "backup"),
    ("type", "type"),
    ("finished", "finished UTC"),
    ("size", "size"),
)


def _compare(ours: object, theirs: object | None, who: str) -> str:
    """``✓ v4`` when equal, ``✗ v4 has X`` when not, nothing when ``theirs`` is unknown."""
    if theirs is None:
        return ""
    if str(ours) == str(theirs):
        return f"{OK} {who}"
    return f"{BAD} [$error]{who} has {escape(str(theirs))}[/]"


def identity_values(snap: Snapshot) -> dict[str, str]:
    """archive.info's system id and version, each checked against v4 and v5."""
    repo = snap.repo
    if repo.info_error is not None:
        text = error(f"archive.info unreadable — {repo.info_error}")
        return {"system_id": text, "version": DASH}
    info = repo.archive_info
    if info is None:
        if repo.observed_at > 0 and repo.reachable:
            return {"system_id": error("no archive.info for stanza db"), "version": DASH}
        return {}
    v4_sysid = snap.v4db.system_id if snap.v4db.reachable else None
    if v4_sysid is None and snap.marks.v4_last_seen is not None:
        v4_sysid = snap.marks.v4_last_seen.system_id
    v5_sysid = snap.v5db.system_id if snap.v5db.reachable else None
    v4_version = snap.v4db.pg_major if snap.v4db.reachable else None
    if v4_version is None and snap.v4.pg_major is not None:
        v4_version = str(snap.v4.pg_major)
    v5_version: str | None = None
    if snap.v5.exists and snap.v5.postgres_version is not None:
        v5_version = str(snap.v5.postgres_version)
    elif snap.v5db.reachable:
        v5_version = snap.v5db.pg_major
    sysid_marks = [
        _compare(info.system_id, v4_sysid, "v4"),
        _compare(info.system_id, v5_sysid, "v5"),
    ]
    version_marks = [
        _compare(info.version, v4_version, "v4"),
        _compare(info.version, v5_version, "v5"),
    ]
    return {
        "system_id": " ".join([value(info.system_id), *filter(None, sysid_marks)]),
        "version": " ".join([f"PostgreSQL {value(info.version)}", *filter(None, version_marks)]),
    }


def repo_values(repo: RepoState, *, now: float, arrival_rate: float | None) -> dict[str, str]:
    if repo.observed_at <= 0 and repo.error is None:
        return {"url": value(repo.url or None)}
    values: dict[str, str] = {"url": value(repo.url or None)}
    if repo.reachable:
        values["reachable"] = f"{OK} yes, with the credentials in use"
    elif repo.observed_at > 0:
        reason = f" — {repo.unreachable_reason}" if repo.unreachable_reason else ""
        values["reachable"] = f"{BAD} " + error(f"no{reason}")
    lines = []
    for timeline in repo.timelines:
        seg = repo.newest_on(timeline)
        if seg is not None:
            lines.append(f"TL {timeline}  {escape(seg.name)} · {ago(seg.last_modified, now)}")
    values["newest"] = "\n".join(lines) if lines else muted("no WAL segment yet")
    values["arrival"] = rate(arrival_rate)
    values["segments"] = str(repo.segment_count)
    if repo.history_timelines:
        values["history"] = ", ".join(f"{tl:08X}.history" for tl in repo.history_timelines)
    else:
        values["history"] = muted("none (no promotion yet)")
    return values


def backup_rows(repo: RepoState) -> list[tuple[str, list[str]]]:
    info = repo.backup_info
    if info is None:
        return []
    rows: list[tuple[str, list[str]]] = []
    for backup in sorted(info.backups, key=lambda b: (b.timestamp_stop, b.label), reverse=True):
        kind = escape(backup.type) + (" [$error]error[/]" if backup.error else "")
        rows.append(
            (
                backup.label,
                [
                    escape(backup.label.rsplit("_", 1)[-1]),
                    kind,
                    short_utc(backup.timestamp_stop),
                    size(
                        backup.repo_size if backup.repo_size is not None else backup.database_size
                    ),
                ],
            )
        )
    return rows


class StoragePane(Pane):
    SOURCES: ClassVar[tuple[SourceName, ...]] = ("repo",)
    SHORT: ClassVar[str] = "repo"

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.fields = FieldList(STORAGE_FIELDS, label_width=11, id="repo-fields")
        self.backups = KeyedTable(BACKUP_COLUMNS, flex="label", id="repo-backups")

    def compose(self) -> Iterable[Widget]:
        yield self.stale_line
        yield self.fields
        yield self.backups

    def on_mount(self) -> None:
        self.set_title("repo")

    def render_view(self, view: HubViewLike, now: float) -> None:
        snap = view.snapshot
        repo = snap.repo
        scheme = repo.url.split("://", 1)[0] if "://" in repo.url else ""
        self.set_title(f"repo · {scheme}" if scheme else "repo")
        values = dict.fromkeys(self.fields.fields, DASH)
        values.update(repo_values(repo, now=now, arrival_rate=view.arrival_rate))
        values.update(identity_values(snap))
        self.fields.set_values(values)
        self.backups.sync(backup_rows(repo))

    @property
    def focus_target(self) -> Widget:
        return self.backups

    def object_key(self) -> str | None:
        if self.backups.has_focus and self.backups.selected_key is not None:
            return "repo/backup.info"
        return "repo/archive.info"
