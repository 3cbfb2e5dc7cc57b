"""Alarms (split-brain, v4 restarted after promotion) and the guard on restarting v4."""

from __future__ import annotations

from ivytui.domain.model import Snapshot, SourceName
from ivytui.domain.runbook.checks import Alarm, Check, pod_sentence
from ivytui.domain.runbook.v5 import V5Facts


def alarms(snapshot: Snapshot) -> tuple[Alarm, ...]:
    """Conditions to show at once: split-brain risks, and v4 restarted after promotion."""
    s = snapshot
    found: list[Alarm] = []
    v5_promoted = (s.available("v5") and s.v5.exists and s.v5.standby_enabled is False) or (
        s.available("v5db") and s.v5db.reachable and s.v5db.in_recovery is False
    )
    v4_pods = s.v4.database_pods if s.available("v4") else ()
    if v5_promoted and v4_pods:
        found.append(
            Alarm(
                "split-brain-pod",
                "Split-brain risk",
                pod_sentence("v4", v4_pods) + " after v5 was promoted: two writers on one repo",
            )
        )
    v4_primary = (
        s.available("v4db")
        and s.v4db.reachable
        and s.v4db.in_recovery is not True
        and s.v4db.current_lsn is not None
    )
    v5_primary = s.available("v5db") and s.v5db.reachable and s.v5db.in_recovery is False
    if v4_primary and v5_primary:
        found.append(
            Alarm(
                "split-brain-primaries",
                "Split-brain",
                f"v4 ({s.v4db.current_lsn}, timeline {s.v4db.timeline}) and v5 "
                f"({s.v5db.current_lsn}, timeline {s.v5db.timeline}) are both out of recovery",
            )
        )
    if v5_promoted and s.available("v4") and s.v4.exists and not s.v4.shutdown:
        found.append(
            Alarm(
                "v4-restarted",
                "v4 restarted after promotion",
                f"v4 {s.v4.name} has spec.shutdown: false after v5 was promoted: it would "
                "archive into the same repo on its old timeline",
            )
        )
    return tuple(found)


def check_v4_restart(snapshot: Snapshot) -> Check:
    """May v4 be started again (``spec.shutdown: false``, the undo of step 4)?

    Only while v5 is provably still a standby: after promotion two writers would share the repo.
    """
    e = V5Facts(snapshot)
    if (c := e.unknown("v5", "v5db")) is not None:
        return c
    v5, v5db = snapshot.v5, snapshot.v5db
    sources: tuple[SourceName, ...] = ("v5", "v5db")
    if v5.exists and v5.standby_enabled is False:
        return Check(False, f"{e.v5_label} has been promoted: v4 must stay shut down", sources)
    if v5db.reachable and v5db.in_recovery is False:
        return Check(False, "v5 is out of recovery: v4 must stay shut down", sources)
    if v5.exists and not v5db.reachable:
        return Check(
            False, "v5's database does not answer: cannot prove it is still a standby", sources
        )
    return Check(True, "v5 is still a standby: v4 may be started again", sources)
