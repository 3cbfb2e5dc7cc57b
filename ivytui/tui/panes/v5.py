"""The v5 pane: the standby cluster object, its pods, and its leader's replay."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from textual.markup import escape

from ivytui.domain.model import Snapshot, SourceName, V5Database
from ivytui.tui.panes.base import ClusterPane
from ivytui.tui.protocols import HubViewLike
from ivytui.tui.text import BAD, OK, ago, error, mark, muted, rate, utc_time, value, warn
from ivytui.tui.widgets import FieldSpec

V5_FIELDS: tuple[FieldSpec, ...] = (
    ("crd", "CRD", True),
    ("object", "object", True),
    ("standby", "standby", False),
    ("repo_name", "repoName", False),
    ("repo_path", "repo1-path", True),
    ("conditions", "conditions", True),
    ("database", "database", True),
    ("replay_lsn", "replay LSN", False),
    ("timeline", "timeline", False),
    ("last_replay", "last replay", True),
    ("system_id", "system id", False),
    ("replay_rate", "replay rate", False),
)


def v5_object_values(snap: Snapshot) -> dict[str, str]:
    v5 = snap.v5
    if v5.observed_at <= 0:
        return {}
    crd = snap.flavor.v5.crd_name
    values: dict[str, str] = {}
    if v5.crd_installed is True:
        values["crd"] = f"{mark(True, 'installed')} {muted(crd)}"
    elif v5.crd_installed is False:
        values["crd"] = f"{mark(False, 'not installed')} {muted(crd)}"
    kind = v5.kind or snap.flavor.v5.kind
    if not v5.exists:
        values["object"] = warn(f"{kind} {v5.name} does not exist yet")
        return values
    deleting = " " + warn("(deleting)") if v5.deleting else ""
    values["object"] = mark(True, f"{kind} {v5.name} exists") + deleting
    if v5.standby_enabled:
        values["standby"] = f"{OK} enabled"
    elif v5.standby_enabled is False:
        values["standby"] = warn("disabled (promoted)")
    values["repo_name"] = value(v5.standby_repo_name)
    path = v5.repo1_path
    expected = snap.v4.repo_path if snap.v4.exists else None
    if path is None:
        values["repo_path"] = f"{BAD} " + error("not set")
    elif expected is None:
        values["repo_path"] = value(path)
    elif path.rstrip("/") == expected.rstrip("/"):
        values["repo_path"] = f"{value(path)} {OK} same as v4"
    else:
        values["repo_path"] = f"{value(path)} {BAD} " + error(f"v4 archives to {expected}")
    lines = []
    for cond in v5.conditions:
        colour = {"True": "$success", "False": "$warning"}.get(cond.status, "$text-muted")
        reason = f" {muted(cond.reason)}" if cond.reason else ""
        lines.append(f"[{colour}]{escape(cond.type)}={escape(cond.status)}[/]{reason}")
    values["conditions"] = "\n".join(lines) if lines else muted("none reported")
    return values


def v5_database_values(
    db: V5Database, *, now: float, replay_rate: float | None, v4_system_id: int | None
) -> dict[str, str]:
    if db.observed_at <= 0:
        return {}
    values: dict[str, str] = {"replay_rate": rate(replay_rate)}
    if not db.reachable:
        reason = f" — {db.unreachable_reason}" if db.unreachable_reason else ""
        values["database"] = warn(f"unreachable{reason}")
        return values
    if db.in_recovery:
        values["database"] = "in recovery (standby)"
        values["replay_lsn"] = value(db.replay_lsn)
    elif db.in_recovery is False:
        values["database"] = warn("out of recovery (promoted)") + (
            f", writing at {escape(str(db.current_lsn))}" if db.current_lsn is not None else ""
        )
        values["replay_lsn"] = value(db.replay_lsn)
    values["timeline"] = value(db.timeline)
    if db.last_replay_time is not None:
        values["last_replay"] = (
            f"{utc_time(db.last_replay_time)} · {ago(db.last_replay_time, now)} "
            + muted("(transaction time, not lag)")
        )
    sysid = value(db.system_id)
    if db.system_id is not None and v4_system_id is not None:
        sysid += f" {OK}" if db.system_id == v4_system_id else f" {BAD} " + error("not v4's")
    values["system_id"] = sysid
    return values


class V5Pane(ClusterPane):
    SOURCES: ClassVar[tuple[SourceName, ...]] = ("v5", "v5db")
    SHORT: ClassVar[str] = "v5"
    FIELDS: ClassVar[Sequence[FieldSpec]] = V5_FIELDS

    def on_mount(self) -> None:
        self.set_title("v5")

    def render_view(self, view: HubViewLike, now: float) -> None:
        snap = view.snapshot
        v5 = snap.v5
        kind = v5.kind or snap.flavor.v5.kind
        self.set_title(f"v5 · {kind} {v5.name or view.v5_name}")
        v4_sysid = snap.v4db.system_id if snap.v4db.reachable else None
        if v4_sysid is None and snap.marks.v4_last_seen is not None:
            v4_sysid = snap.marks.v4_last_seen.system_id
        values = v5_object_values(snap)
        values.update(
            v5_database_values(
                snap.v5db, now=now, replay_rate=view.replay_rate, v4_system_id=v4_sysid
            )
        )
        self.show_cluster(values, v5.pods)
