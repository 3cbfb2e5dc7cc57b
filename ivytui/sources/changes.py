"""What to log when a source's snapshot changes: pure functions from (before, after) to lines.

The hub calls these after each poll and each look at the Kubernetes side, and emits what they
return. Nothing here keeps state, does I/O or reads a clock: the time of each line is given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from ivytui.domain.human import format_duration
from ivytui.domain.model import (
    SOURCE_TITLES,
    Observed,
    PodInfo,
    RepoState,
    SegmentObject,
    SourceName,
    V4Database,
    V4State,
    V5Database,
    V5State,
)

LogSource = Literal["v4", "repo", "v5", "kube", "events"]
LogLevel = Literal["info", "warning", "error"]

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


def entry(name: str, level: LogLevel, text: str, at: float) -> LogEntry:
    """A line about source ``name`` (``v4db`` → the v4 column; unknown names → ``kube``)."""
    return LogEntry(at, _LOG_SOURCE.get(name, "kube"), level, text)


def level_of(text: str) -> LogLevel:
    if text == "warning":
        return "warning"
    if text == "error":
        return "error"
    return "info"


def pod_words(pod: PodInfo) -> str:
    words = [pod.phase, "ready" if pod.ready else "not ready"]
    if pod.role:
        words.insert(0, pod.role)
    if pod.deleting:
        words.append("terminating")
    return ", ".join(words)


# -- polled sources ----------------------------------------------------------------------------


def poll_outcome(
    name: SourceName, previous: Observed, error: str | None, at: float
) -> list[LogEntry]:
    """A poll of ``name`` failed with ``error`` (``None``: it answered)."""
    title = SOURCE_TITLES[name]
    if error is not None:
        if previous.error != error:
            return [entry(name, "error", f"{title} is not answering: {error}", at)]
        return []
    if previous.error is not None:
        since = previous.stale_since
        ago = f" after {format_duration(at - since)}" if since is not None else ""
        return [entry(name, "info", f"{title} answers again{ago}", at)]
    return []


def v4db_changes(previous: V4Database, current: V4Database, at: float) -> list[LogEntry]:
    out: list[LogEntry] = []
    if current.error is not None:
        return out
    fresh = previous.observed_at <= 0 or previous.error is not None
    if current.reachable != previous.reachable or (fresh and not current.reachable):
        if current.reachable:
            out.append(
                entry(
                    "v4db",
                    "info",
                    f"v4's database answers at {current.current_lsn} "
                    f"(timeline {current.timeline}, {current.walfile})",
                    at,
                )
            )
        else:
            out.append(
                entry(
                    "v4db",
                    "warning",
                    f"v4's database does not answer: {current.unreachable_reason}",
                    at,
                )
            )
    if previous.reachable and current.reachable:
        if previous.read_only != current.read_only and current.read_only is not None:
            state = "on (frozen)" if current.read_only else "off (writable)"
            out.append(
                entry("v4db", "info", f"v4 default_transaction_read_only is now {state}", at)
            )
        if previous.timeline != current.timeline:
            out.append(
                entry(
                    "v4db",
                    "warning",
                    f"v4 moved from timeline {previous.timeline} to {current.timeline}",
                    at,
                )
            )
        if previous.in_recovery != current.in_recovery and current.in_recovery:
            out.append(entry("v4db", "warning", "v4's database is in recovery", at))
    return out


def v5db_changes(previous: V5Database, current: V5Database, at: float) -> list[LogEntry]:
    out: list[LogEntry] = []
    if current.error is not None:
        return out
    fresh = previous.observed_at <= 0 or previous.error is not None
    if current.reachable != previous.reachable or (fresh and not current.reachable):
        if current.reachable:
            where = (
                f"in recovery, replayed to {current.replay_lsn}"
                if current.in_recovery
                else f"out of recovery at {current.current_lsn}"
            )
            out.append(entry("v5db", "info", f"v5's database answers: {where}", at))
        else:
            out.append(
                entry(
                    "v5db",
                    "warning",
                    f"v5's database does not answer: {current.unreachable_reason}",
                    at,
                )
            )
    if previous.reachable and current.reachable:
        if previous.in_recovery and current.in_recovery is False:
            out.append(
                entry(
                    "v5db",
                    "warning",
                    f"v5 left recovery: promoted, now on timeline {current.timeline}",
                    at,
                )
            )
        elif previous.timeline != current.timeline and current.timeline is not None:
            out.append(
                entry(
                    "v5db",
                    "info",
                    f"v5 moved from timeline {previous.timeline} to {current.timeline}",
                    at,
                )
            )
    return out


def repo_changes(
    previous: RepoState,
    current: RepoState,
    at: float,
    *,
    first: bool,
    new_segments: Sequence[SegmentObject],
    count_complete: bool,
) -> list[LogEntry]:
    """``first``: the first reading of the repo; ``new_segments``: what the poll listed that
    the previous one had not (oldest first)."""
    out: list[LogEntry] = []
    if current.error is not None:
        return out
    if not current.reachable:
        if previous.reachable or first or previous.unreachable_reason != current.unreachable_reason:
            out.append(
                entry(
                    "repo",
                    "error",
                    f"the repo {current.url} cannot be read: {current.unreachable_reason}",
                    at,
                )
            )
        return out
    if first or not previous.reachable:
        info = current.archive_info
        what = (
            f"system id {info.system_id}, PostgreSQL {info.version}"
            if info is not None
            else "no readable archive.info"
        )
        newest_all = max(current.newest_segments, key=lambda s: s.name, default=None)
        out.append(
            entry(
                "repo",
                "info",
                f"repo {current.url}: {what}; newest segment "
                f"{newest_all.name if newest_all else 'none'}; {current.segment_count} segments"
                + ("" if count_complete else " counted so far"),
                at,
            )
        )
    else:
        new = new_segments
        if 0 < len(new) <= 3:
            for seg in new:
                out.append(
                    entry("repo", "info", f"new segment {seg.name} (timeline {seg.timeline})", at)
                )
        elif new:
            out.append(entry("repo", "info", f"{len(new)} new segments, newest {new[-1].name}", at))
    if current.info_error != previous.info_error and current.info_error is not None:
        out.append(entry("repo", "error", f"archive.info cannot be read: {current.info_error}", at))
    for tl in sorted(set(current.history_timelines) - set(previous.history_timelines)):
        if not first:
            out.append(entry("repo", "warning", f"{tl:08X}.history appeared in the repo", at))
    return out


# -- the Kubernetes side -----------------------------------------------------------------------


def watch_error(
    key: Literal["v4", "v5"], error: str | None, before: str | None, at: float
) -> list[LogEntry]:
    """The ``key`` watch's error went from ``before`` to ``error``."""
    if error == before:
        return []
    if error is not None:
        return [LogEntry(at, "kube", "error", f"{key} watch: {error}")]
    if before is not None:
        return [LogEntry(at, "kube", "info", f"{key} watch recovered")]
    return []


def kube_changes(
    old: tuple[V4State, V5State] | None,
    v4: V4State,
    v5: V5State,
    at: float,
    *,
    crd_name: str,
) -> list[LogEntry]:
    """What changed on the Kubernetes side since ``old`` (``None``: the first look)."""
    if old is None:
        return _initial_kube(v4, v5, at, crd_name=crd_name)
    out: list[LogEntry] = []
    old_v4, old_v5 = old
    out += diff_pods("v4", old_v4.pods, v4.pods, at)
    out += diff_pods("v5", old_v5.pods, v5.pods, at)
    if old_v4.exists != v4.exists:
        out.append(
            entry(
                "v4",
                "warning" if not v4.exists else "info",
                f"v4 Pgcluster {v4.name} " + ("appeared" if v4.exists else "is gone"),
                at,
            )
        )
    elif v4.exists:
        if old_v4.state != v4.state:
            out.append(entry("v4", "info", f"v4 {v4.name}: {old_v4.state} → {v4.state}", at))
        if old_v4.shutdown != v4.shutdown:
            out.append(
                entry("v4", "warning", f"v4 {v4.name}: spec.shutdown is now {v4.shutdown}", at)
            )
        if old_v4.deleting != v4.deleting and v4.deleting:
            out.append(entry("v4", "warning", f"v4 {v4.name} is being deleted", at))
    if set(old_v4.backup_schedules) != set(v4.backup_schedules):
        schedules = ", ".join(v4.backup_schedules) or "none"
        out.append(entry("v4", "info", f"v4 backup schedules: {schedules}", at))
    if old_v5.crd_installed != v5.crd_installed and v5.crd_installed is not None:
        installed = "installed" if v5.crd_installed else "not installed"
        out.append(entry("v5", "info", f"the CRD {crd_name} is {installed}", at))
    if old_v5.exists != v5.exists:
        out.append(
            entry(
                "v5",
                "info",
                f"{v5.kind} {v5.name} " + ("appeared" if v5.exists else "is gone"),
                at,
            )
        )
    elif v5.exists:
        if old_v5.standby_enabled != v5.standby_enabled:
            out.append(
                entry(
                    "v5",
                    "warning",
                    f"{v5.kind} {v5.name}: spec.standby.enabled is now {v5.standby_enabled}",
                    at,
                )
            )
        old_conditions = {c.type: c for c in old_v5.conditions}
        for condition in v5.conditions:
            before = old_conditions.get(condition.type)
            if before is None or before.status != condition.status:
                level: LogLevel = "info" if condition.status == "True" else "warning"
                out.append(
                    entry(
                        "v5",
                        level,
                        f"{v5.kind} {v5.name} condition {condition.type}={condition.status}"
                        + (f" ({condition.reason})" if condition.reason else ""),
                        at,
                    )
                )
    return out


def _initial_kube(v4: V4State, v5: V5State, at: float, *, crd_name: str) -> list[LogEntry]:
    out: list[LogEntry] = []
    if v4.error is None:
        if v4.exists:
            pods = ", ".join(p.name for p in v4.pods) or "no pods"
            out.append(entry("v4", "info", f"v4 Pgcluster {v4.name} is {v4.state}; {pods}", at))
        else:
            out.append(
                entry(
                    "v4",
                    "warning",
                    f"v4 Pgcluster {v4.name} not found in namespace {v4.namespace}",
                    at,
                )
            )
    if v5.error is None:
        if v5.exists:
            pods = ", ".join(p.name for p in v5.pods) or "no pods"
            out.append(entry("v5", "info", f"{v5.kind} {v5.name} exists; {pods}", at))
        elif v5.crd_installed is False:
            out.append(entry("v5", "warning", f"the CRD {crd_name} is not installed", at))
        else:
            out.append(entry("v5", "info", f"{v5.kind} {v5.name} does not exist yet", at))
    return out


def diff_pods(
    side: Literal["v4", "v5"], old: Sequence[PodInfo], new: Sequence[PodInfo], at: float
) -> list[LogEntry]:
    out: list[LogEntry] = []
    before = {p.name: p for p in old}
    after = {p.name: p for p in new}
    for name, pod in after.items():
        prior = before.get(name)
        if prior is None:
            out.append(entry(side, "info", f"{side} pod {name} appeared ({pod_words(pod)})", at))
        elif (prior.phase, prior.ready, prior.role, prior.deleting) != (
            pod.phase,
            pod.ready,
            pod.role,
            pod.deleting,
        ):
            out.append(
                entry(side, "info", f"{side} pod {name}: {pod_words(prior)} → {pod_words(pod)}", at)
            )
    for name in before.keys() - after.keys():
        out.append(entry(side, "info", f"{side} pod {name} is gone", at))
    return out
