"""The v4 pane: the Pgcluster, its pods, and its primary's position and archiver."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from ivytui.domain.lsn import LsnError
from ivytui.domain.model import SourceName, V4Database, V4State
from ivytui.domain.walname import WalSegment
from ivytui.tui.panes.base import ClusterPane
from ivytui.tui.protocols import HubViewLike
from ivytui.tui.text import ago, error, muted, rate, value, warn
from ivytui.tui.widgets import FieldSpec

V4_FIELDS: tuple[FieldSpec, ...] = (
    ("state", "state", False),
    ("shutdown", "shutdown", False),
    ("storage", "storage", False),
    ("region", "region", False),
    ("bucket", "bucket", False),
    ("endpoint", "endpoint", False),
    ("repo_path", "repo path", True),
    ("pg", "PostgreSQL", True),
    ("database", "database", True),
    ("lsn", "current LSN", False),
    ("timeline", "timeline", False),
    ("walfile", "WAL file", False),
    ("system_id", "system id", False),
    ("write_rate", "write rate", False),
    ("backlog", "backlog", False),
    ("archived", "archived", True),
    ("failures", "failures", True),
)


def _segment(name: str | None, segment_size: int) -> WalSegment | None:
    if not name or len(name) < 24:
        return None
    try:
        return WalSegment.parse(name[:24], segment_size)
    except LsnError:
        return None


def v4_object_values(v4: V4State) -> dict[str, str]:
    """The Pgcluster's fields as markup, keyed like :data:`V4_FIELDS`."""
    if v4.observed_at <= 0:
        return {}
    if not v4.exists:
        where = f" in {v4.namespace}" if v4.namespace else ""
        return {"state": error(f"no Pgcluster {v4.name}{where}")}
    storage = ", ".join(v4.storage_types) or "posix"
    if v4.object_storage is None:
        storage = error(f"{storage} (no object storage: s3 or gcs needed)")
    else:
        storage = value(storage)
    image = f" (image {v4.image_tag})" if v4.image_tag else ""
    state = value(v4.state)
    if v4.deleting:
        state += " " + warn("(deleting)")
    return {
        "state": state,
        "shutdown": warn("true") if v4.shutdown else "false",
        "storage": storage,
        "bucket": value(v4.bucket),
        "endpoint": value(v4.endpoint),
        "region": value(v4.region),
        "repo_path": value(v4.repo_path) + ("" if v4.repo_path_spec else " " + muted("(default)")),
        "pg": value(f"{v4.pg_major}{image}" if v4.pg_major is not None else v4.image_tag),
    }


def v4_database_values(
    db: V4Database, *, now: float, segment_size: int, write_rate: float | None
) -> dict[str, str]:
    """The primary's fields as markup, keyed like :data:`V4_FIELDS`."""
    if db.observed_at <= 0:
        return {}
    values: dict[str, str] = {"write_rate": rate(write_rate)}
    if not db.reachable:
        reason = f" — {db.unreachable_reason}" if db.unreachable_reason else ""
        values["database"] = warn(f"unreachable{reason}")
        return values
    role = "in recovery" if db.in_recovery else "primary"
    parts = [warn(role) if db.in_recovery else role]
    if db.client_sessions is not None:
        word = "client session" if db.client_sessions == 1 else "client sessions"
        parts.append(f"{db.client_sessions} {word}")
    if db.read_only:
        parts.append(warn("read-only (frozen)"))
    values["database"] = ", ".join(parts)
    values["lsn"] = value(db.current_lsn)
    values["walfile"] = value(db.walfile)
    values["timeline"] = value(db.timeline)
    values["system_id"] = value(db.system_id)
    arch = db.archiver
    if arch is None:
        return values
    if arch.last_archived_wal:
        values["archived"] = (
            f"{value(arch.last_archived_wal)} · {ago(arch.last_archived_time, now)}"
        )
    else:
        values["archived"] = muted("nothing archived yet")
    failing = arch.last_failed_time is not None and (
        arch.last_archived_time is None or arch.last_failed_time >= arch.last_archived_time
    )
    failures = str(arch.failed_count)
    if arch.last_failed_wal:
        last = f" (last {arch.last_failed_wal}, {ago(arch.last_failed_time, now)})"
        failures = error(failures + last + " — failing") if failing else failures + muted(last)
    values["failures"] = failures
    if db.current_lsn is not None and db.timeline is not None:
        current = WalSegment.containing(db.timeline, db.current_lsn, segment_size)
        last_seg = _segment(arch.last_archived_wal, segment_size)
        backlog = current.segno if last_seg is None else max(0, current.segno - last_seg.segno - 1)
        word = "segment" if backlog == 1 else "segments"
        values["backlog"] = f"{backlog} {word}" if backlog <= 1 else warn(f"{backlog} {word}")
    return values


class V4Pane(ClusterPane):
    SOURCES: ClassVar[tuple[SourceName, ...]] = ("v4", "v4db")
    SHORT: ClassVar[str] = "v4"
    FIELDS: ClassVar[Sequence[FieldSpec]] = V4_FIELDS

    def on_mount(self) -> None:
        self.set_title("v4 · Pgcluster")

    def render_view(self, view: HubViewLike, now: float) -> None:
        snap = view.snapshot
        v4, db = snap.v4, snap.v4db
        self.set_title(f"v4 · Pgcluster {v4.name or view.cluster}")
        values = v4_object_values(v4)
        values.update(
            v4_database_values(
                db, now=now, segment_size=snap.segment_size, write_rate=view.write_rate
            )
        )
        self.show_cluster(values, v4.pods)
