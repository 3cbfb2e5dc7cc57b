from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest
from domain_factory import (
    FROZEN_ROLES,
    NOW,
    STAGES,
    SYSTEM_ID,
    V4_PODS,
    V5_PODS,
    catch_up_snapshots,
    down,
    frozen,
    granted,
    preflight,
    promoted,
    retired,
    segment_object,
    shutting_down,
    standby,
    with_source,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from ivytui.domain.flavor import PGO
from ivytui.domain.lag import lag_from_snapshot, newest_segment_on
from ivytui.domain.lsn import Lsn
from ivytui.domain.model import (
    SOURCE_TITLES,
    ArchiverStats,
    Marks,
    PodInfo,
    Snapshot,
    SourceName,
    V4Database,
    V4LastSeen,
)
from ivytui.domain.repoinfo import ArchiveInfo
from ivytui.domain.runbook import (
    STEPS,
    Check,
    StepStatus,
    alarms,
    check_v4_restart,
    evaluate,
)
from ivytui.domain.runbook.steps import Evaluation

SOURCES: tuple[SourceName, ...] = ("v4", "v4db", "repo", "v5", "v5db", "marks")


def states(s: Snapshot) -> str:
    return "".join(step.state[0] for step in evaluate(s))


def step(s: Snapshot, number: int) -> StepStatus:
    return evaluate(s)[number]


def texts(status: StepStatus, *, ok: bool | None = None) -> list[str]:
    return [c.text for c in status.checks if ok is None or c.ok is ok]


# d = done, r = ready (or running), b = blocked
@pytest.mark.parametrize(
    ("stage", "expected"),
    [
        ("preflight", "drbbbbbb"),
        ("standby", "dddrbbbb"),
        ("frozen", "ddddrbbb"),
        ("shutting_down", "ddddrbbb"),
        ("down", "dddddrbb"),
        ("promoted", "ddddddrb"),
        ("granted", "dddddddr"),
        ("retired", "dddddddd"),
    ],
)
def test_stages(stage: str, expected: str) -> None:
    assert states(STAGES[stage]()) == expected


def test_steps_are_numbered_as_the_design() -> None:
    result = evaluate(preflight())
    assert [s.number for s in result] == list(range(8))
    assert [s.key for s in result] == [info.key for info in STEPS]
    assert result[5].title == "Promote v5"


def test_shutdown_is_running_until_the_pods_go() -> None:
    s = shutting_down()
    assert step(s, 4).state == "running"
    assert step(s, 4).summary == (
        "in progress: v4 primary pod hippo-7d9f-abc is still Running (and 1 more pod)"
    )
    promote = step(s, 5)
    assert promote.state == "blocked"
    assert "v4 primary pod hippo-7d9f-abc is still Running (and 1 more pod)" in texts(promote)
    assert "v4's database still answers at 0/6000060" in texts(promote, ok=False)


def test_terminating_pod_still_counts() -> None:
    s = down()
    pod = replace(V4_PODS[0], deleting=True)
    s = replace(s, v4=replace(s.v4, pods=(pod,)))
    assert step(s, 5).state == "blocked"
    assert step(s, 4).state == "running"
    assert "v4 primary pod hippo-7d9f-abc is still Running (terminating)" in texts(step(s, 5))


def test_promotion_waits_for_replay_to_the_end_of_the_newest_segment() -> None:
    s = down()
    s = replace(
        s,
        repo=replace(
            s.repo, newest_segments=(segment_object("000000010000000000000007", stored=NOW - 90),)
        ),
        v5db=replace(s.v5db, replay_lsn=Lsn.parse("0/7000000")),
        marks=replace(
            s.marks,
            v4_last_seen=V4LastSeen(
                lsn=Lsn.parse("0/7FFF000"), timeline=1, system_id=SYSTEM_ID, at=NOW - 30
            ),
        ),
    )
    promote = step(s, 5)
    assert promote.state == "blocked"
    assert promote.summary == (
        "blocked: v5 replayed to 0/7000000, the newest v4 segment in the repo ends at 0/8000000 "
        "(16.0 MiB behind)"
    )


def test_promotion_waits_for_the_repo_to_stop_growing() -> None:
    s = down()
    s = replace(
        s,
        repo=replace(
            s.repo, newest_segments=(segment_object("000000010000000000000005", stored=NOW - 4),)
        ),
    )
    assert step(s, 5).state == "blocked"
    assert step(s, 5).failing[0].text == (
        "the repo is still growing on timeline 1: 000000010000000000000005 stored 4 s ago "
        "(needs 30 s of quiet)"
    )


def test_wal_lost_in_an_unclean_stop_names_the_missing_segments() -> None:
    s = down()
    s = replace(
        s,
        marks=Marks(
            observed_at=NOW - 1,
            v4_last_seen=V4LastSeen(
                lsn=Lsn.parse("0/8000123"), timeline=1, system_id=SYSTEM_ID, at=NOW - 50
            ),
        ),
    )
    promote = step(s, 5)
    assert promote.state == "blocked"
    assert promote.failing[0].text == (
        "v4's last LSN 0/8000123 (seen 50 s ago) is beyond the repo, which ends at 0/6000000: "
        "segments 000000010000000000000006 to 000000010000000000000008 (3) are missing from the "
        "repo (32.0 MiB of v4's WAL)"
    )
    one = replace(
        s,
        marks=replace(
            s.marks,
            v4_last_seen=V4LastSeen(
                lsn=Lsn.parse("0/7000000"), timeline=1, system_id=SYSTEM_ID, at=NOW - 50
            ),
        ),
    )
    assert "segment 000000010000000000000006 is missing from the repo (16.0 MiB of v4's WAL)" in (
        step(one, 5).failing[0].text
    )


def with_last_seen_horizon(s: Snapshot, horizon: int | None) -> Snapshot:
    seen = s.marks.v4_last_seen
    assert seen is not None
    return replace(s, marks=replace(s.marks, v4_last_seen=replace(seen, xid_horizon=horizon)))


def test_background_records_after_the_switch_pass_only_with_an_unchanged_xid_horizon() -> None:
    # v4 went down 96 B past the repo's end: a running-xacts record after the final switch —
    # or a one-row commit (104 B). Only the transaction id horizon tells them apart.
    s = down()
    assert step(s, 5).state == "ready"
    assert (
        "no transaction committed after the final switch at 0/5000168: xid horizon 725 "
        "unchanged; the 96 B past the repo's end 0/6000000 are background records (v4's last "
        "LSN 0/6000060, seen 1 s ago)"
    ) in texts(step(s, 5), ok=True)

    committed = with_last_seen_horizon(s, 726)
    assert step(committed, 5).state == "blocked"
    assert step(committed, 5).summary == (
        "blocked: a transaction committed on v4 after the final switch (xid horizon 725 → 726): "
        "its WAL is not in the repo (96 B past the repo's end 0/6000000: v4's last LSN "
        "0/6000060, seen 1 s ago)"
    )

    not_recorded = replace(s, marks=replace(s.marks, target_xid_horizon=None))
    assert step(not_recorded, 5).state == "blocked"
    assert (
        step(not_recorded, 5)
        .failing[0]
        .text.startswith(
            "whether a transaction committed on v4 after the final switch at 0/5000168 is unknown: "
            "v4's xid horizon at the switch was not recorded"
        )
    )
    never_seen = with_last_seen_horizon(s, None)
    assert step(never_seen, 5).state == "blocked"
    assert "v4's xid horizon was not seen after the switch" in step(never_seen, 5).summary

    # Without a final switch within the repo, the bytes are missing WAL whatever the horizon.
    no_freeze = replace(s, marks=replace(s.marks, target_lsn=None, target_timeline=None))
    assert step(no_freeze, 5).state == "blocked"
    assert "segment 000000010000000000000006 is missing" in step(no_freeze, 5).summary
    next_segment = replace(
        s,
        marks=replace(
            s.marks,
            v4_last_seen=V4LastSeen(
                lsn=Lsn.parse("0/7000060"),
                timeline=1,
                system_id=SYSTEM_ID,
                at=NOW - 5,
                xid_horizon=725,
            ),
        ),
    )
    assert step(next_segment, 5).state == "blocked"
    assert "segments 000000010000000000000006 to 000000010000000000000007 (2) are missing" in (
        step(next_segment, 5).summary
    )


def test_a_commit_seen_live_after_the_switch_blocks_the_gate_too() -> None:
    # v4 still answers (shutting down): the live horizon is the freshest proof.
    s = shutting_down()
    live = replace(s, v4db=replace(s.v4db, xid_horizon=726))
    gate = [c for c in step(live, 5).checks if "xid horizon" in c.text]
    assert [c.ok for c in gate] == [False]
    assert gate[0].text.startswith(
        "a transaction committed on v4 after the final switch (xid horizon 725 → 726)"
    )
    assert "v4db" in gate[0].sources


def test_a_clean_stop_leaves_nothing_behind() -> None:
    s = down()
    clean = replace(
        s,
        marks=Marks(
            observed_at=NOW - 1,
            v4_last_seen=V4LastSeen(
                lsn=Lsn.parse("0/5FFFF00"), timeline=1, system_id=SYSTEM_ID, at=NOW - 50
            ),
        ),
    )
    assert step(clean, 5).state == "ready"
    assert step(clean, 3).state == "blocked"
    assert step(clean, 3).summary == (
        "blocked: v4 went down without a recorded final WAL switch: the promotion gate decides "
        "what reached the repo"
    )


def test_system_ids_must_match() -> None:
    s = down()
    s = replace(s, v5db=replace(s.v5db, system_id=123))
    assert step(s, 5).state == "blocked"
    assert f"system ids differ: v4 {SYSTEM_ID}, repo {SYSTEM_ID}, v5 123" in texts(step(s, 5))
    never = replace(down(), marks=replace(down().marks, v4_last_seen=None))
    assert "unknown: v4's system id was never recorded" in texts(step(never, 5))


def test_v4_deleted_before_promotion_is_not_proof_of_shutdown() -> None:
    s = down()
    s = replace(s, v4=replace(s.v4, exists=False, state=None))
    assert step(s, 5).state == "blocked"
    assert step(s, 5).failing[0].text.startswith("v4 object hippo not found in namespace pgo")


def test_promotion_in_progress_and_done() -> None:
    s = down()
    requested = replace(s, v5=replace(s.v5, standby_enabled=False))
    assert step(requested, 5).state == "running"
    assert step(requested, 5).summary == "in progress: v5 is still in recovery at 0/6000000"
    no_history = replace(promoted(), repo=replace(promoted().repo, history_timelines=()))
    assert step(no_history, 5).state == "running"
    assert "00000002.history is not in the repo yet" in texts(step(no_history, 5))
    assert step(promoted(), 5).state == "done"


def test_unknown_sources_make_checks_red() -> None:
    s = down()
    s = replace(
        s, v4db=replace(s.v4db, error="timeout talking to the port-forward", stale_since=NOW - 40)
    )
    promote = step(s, 5)
    assert promote.state == "blocked"
    assert (
        "unknown: v4's database is not answering (timeout talking to the port-forward, stale 40 s)"
    ) in texts(promote, ok=False)
    assert step(s, 4).state == "running"
    assert step(s, 4).failing[0].text.startswith("unknown: v4's database is not answering")


def test_freeze_in_progress() -> None:
    s = frozen()
    waiting = replace(s, v5db=replace(s.v5db, replay_lsn=Lsn.parse("0/5000000")))
    freeze = step(waiting, 3)
    assert freeze.state == "running"
    assert freeze.summary == (
        "in progress: v5 replayed to 0/5000000, short of the final switch at 0/5000168 "
        "(360 B to go)"
    )
    not_pushed = replace(
        s,
        v4db=replace(
            s.v4db,
            archiver=ArchiverStats(
                last_archived_wal="000000010000000000000004", last_archived_time=NOW - 50
            ),
        ),
        repo=replace(s.repo, newest_segments=(segment_object("000000010000000000000004"),)),
    )
    assert step(not_pushed, 3).state == "running"
    assert (
        "segment 000000010000000000000005 (ending the final switch) is not in the repo yet "
        "(newest: 000000010000000000000004)"
    ) in texts(step(not_pushed, 3))
    thawed = replace(s, v4db=replace(s.v4db, read_only=False))
    assert step(thawed, 3).state == "ready"
    assert step(thawed, 4).state == "blocked"


def test_a_commit_after_the_final_switch_makes_step_3_ready_to_switch_again() -> None:
    s = frozen()
    assert step(s, 3).state == "done"
    assert (
        "no transaction committed on v4 after the final switch at 0/5000168 (xid horizon 725 "
        "unchanged)"
    ) in texts(step(s, 3), ok=True)
    committed = replace(s, v4db=replace(s.v4db, xid_horizon=726))
    freeze = step(committed, 3)
    assert freeze.state == "ready" and freeze.redo
    assert texts(freeze, ok=False) == [
        "a transaction committed on v4 after the final switch (xid horizon 725 → 726): switch again"
    ]
    assert freeze.summary.startswith("ready again: a transaction committed on v4")
    assert step(committed, 4).state == "blocked" and step(committed, 4).overridable
    # The switch ran again and recorded the new horizon: done once more.
    again = replace(committed, marks=replace(committed.marks, target_xid_horizon=726))
    assert step(again, 3).state == "done"
    # An old freeze that recorded no horizon: nothing to compare, the step is judged as before.
    unrecorded = replace(committed, marks=replace(committed.marks, target_xid_horizon=None))
    assert step(unrecorded, 3).state == "done"


def test_the_freeze_must_keep_every_role_it_blocked_out() -> None:
    s = frozen()
    assert "the freeze holds: 2 roles blocked with connection limit 0 (app, reporting)" in texts(
        step(s, 3), ok=True
    )
    loose = replace(s, v4db=replace(s.v4db, blocked_roles=("app",)))
    freeze = step(loose, 3)
    assert freeze.state == "ready" and freeze.redo
    assert texts(freeze, ok=False) == [
        "the freeze no longer holds: role reporting is not blocked (connection limit not 0) "
        "and new sessions can write: freeze again"
    ]
    none = replace(s, v4db=replace(s.v4db, blocked_roles=()))
    assert "roles app, reporting are not blocked" in step(none, 3).summary
    silent_marks = replace(loose, marks=replace(loose.marks, error="boom"))
    assert step(silent_marks, 3).state == "running" and not step(silent_marks, 3).redo


def test_shutdown_override_only_skips_the_freeze() -> None:
    standby_only = step(standby(), 4)
    assert standby_only.state == "blocked" and standby_only.overridable
    assert not step(preflight(), 4).overridable
    assert not step(frozen(), 4).overridable
    broken = replace(standby(), v4=replace(standby().v4, error="boom"))
    assert not step(broken, 4).overridable


def test_grants_and_retirement() -> None:
    p = promoted()
    assert step(p, 6).state == "ready"
    assert (
        "to do: role _ivoryrepl is missing or lacks EXECUTE on pg_ls_dir, "
        "pg_read_binary_file, pg_stat_file" in texts(step(p, 6))
    )
    not_super = replace(p, v5db=replace(p.v5db, is_superuser=False))
    assert step(not_super, 6).state == "blocked"
    g = granted()
    assert step(g, 7).state == "ready"
    scheduled = replace(g, v4=replace(g.v4, backup_schedules=("hippo-full-daily",)))
    assert step(scheduled, 7).state == "blocked"
    assert step(scheduled, 7).failing[0].text == (
        "v4 backup schedule hippo-full-daily still exists and could write into the shared repo"
    )
    deleting = replace(g, v4=replace(g.v4, deleting=True))
    assert step(deleting, 7).state == "running"
    assert step(retired(), 7).state == "done"
    pgo = replace(p, flavor=PGO)
    assert any("_crunchyrepl" in t for t in texts(step(pgo, 6)))


def test_preflight_failures() -> None:
    s = preflight()
    posix = replace(s, v4=replace(s.v4, storage_types=("posix",)))
    assert step(posix, 0).state == "blocked"
    assert "v4 hippo stores its repo in posix: a repo-based standby needs s3 or gcs" in texts(
        step(posix, 0)
    )
    other = replace(
        s, repo=replace(s.repo, archive_info=ArchiveInfo(db_id=1, system_id=42, version="15"))
    )
    assert (
        f"the repo's system id 42 is not v4's {SYSTEM_ID}: the repo belongs to another cluster"
    ) in texts(step(other, 0))
    failing = replace(
        s,
        v4db=replace(
            s.v4db,
            archiver=ArchiverStats(
                archived_count=4,
                last_archived_wal="000000010000000000000004",
                last_archived_time=NOW - 300,
                failed_count=7,
                last_failed_wal="000000010000000000000005",
                last_failed_time=NOW - 5,
            ),
        ),
    )
    assert (
        "v4's archiver is failing: 000000010000000000000005 failed 5 s ago (7 failures), with "
        "no success since"
    ) in texts(step(failing, 0))
    backlog = replace(s, v4db=replace(s.v4db, current_lsn=Lsn.parse("0/9000010")))
    assert (
        "v4 has 4 closed segments waiting to be archived (last archived "
        "000000010000000000000004, writing 000000010000000000000009; limit 1)"
    ) in texts(step(backlog, 0))
    no_crd = replace(s, v5=replace(s.v5, crd_installed=False))
    assert "the v5 CRD ivoryclusters.ivory-operator.ivorysql.org is not installed" in texts(
        step(no_crd, 0)
    )
    bad_info = replace(
        s,
        repo=replace(
            s.repo,
            archive_info=None,
            info_error="archive.info line 7: value for db-system-id is not JSON: 77x",
        ),
    )
    assert (
        "archive.info cannot be read: archive.info line 7: value for db-system-id is not JSON: 77x"
    ) in texts(step(bad_info, 0))
    wrong_repo = replace(s, repo=replace(s.repo, url="s3://other/path"))
    assert step(wrong_repo, 0).state == "blocked"


def test_standby_pointing_elsewhere_blocks_step_1() -> None:
    s = standby()
    s = replace(s, v5=replace(s.v5, repo_paths=(("repo1", "/pgbackrest/repo1"),)))
    assert step(s, 1).state == "blocked"
    assert step(s, 1).failing[0].text == (
        "IvoryCluster hippo repo1 reads s3://hippo-backups/pgbackrest/repo1, but v4 archives to "
        "s3://hippo-backups/backrestrepo/hippo-backrest-shared-repo"
    )
    not_standby = replace(standby(), v5=replace(standby().v5, standby_enabled=False))
    assert step(not_standby, 1).state == "blocked"


def test_catch_up_is_a_watch() -> None:
    s = standby()
    behind = replace(
        s,
        v5db=replace(s.v5db, replay_lsn=Lsn.parse("0/1000000")),
        thresholds=replace(s.thresholds, catch_up_bytes=16 * 1024 * 1024),
    )
    assert step(behind, 2).state == "running"
    assert step(behind, 2).summary.startswith("in progress: v5 lag: 64.0 MiB behind (4 segments)")
    pending = replace(s, v5=replace(s.v5, pods=(replace(V5_PODS[0], ready=False),)))
    assert step(pending, 2).summary == "in progress: v5 pod hippo-00-abcd-0 is Running, not ready"


def test_replay_counts_as_advancing_while_it_moved_within_the_window() -> None:
    s = standby()
    behind = replace(
        s,
        v5db=replace(s.v5db, replay_lsn=Lsn.parse("0/4000000")),
        rates=replace(s.rates, replay_bps=0.0, replay_moved_at=NOW - 2),
    )
    # Between two fetches the replay rate is 0: what counts is when replay last moved.
    assert step(behind, 2).state == "done"
    assert (
        "v5 replay advances: it last moved 2 s ago, to 0/4000000 (16.0 MiB in the repo to replay)"
    ) in texts(step(behind, 2), ok=True)
    stuck = replace(behind, rates=replace(behind.rates, replay_moved_at=NOW - 45))
    assert step(stuck, 2).state == "running"
    assert step(stuck, 2).summary == (
        "in progress: v5 replay is not advancing: it stays at 0/4000000 with 16.0 MiB in the "
        "repo to replay; it last moved 45 s ago (window 30 s)"
    )
    assert step(stuck, 3).state == "blocked"
    never = replace(behind, rates=replace(behind.rates, replay_moved_at=None))
    assert step(never, 2).state == "running"
    assert step(never, 2).summary == (
        "in progress: v5 replay is not advancing: it stays at 0/4000000 with 16.0 MiB in the "
        "repo to replay; it has not been seen to move yet (window 30 s)"
    )
    wider = replace(stuck, thresholds=replace(stuck.thresholds, replay_window_seconds=60.0))
    assert step(wider, 2).state == "done"


def test_a_segment_landing_after_a_quiet_spell_is_not_a_stall() -> None:
    # An idle primary: v5 replayed everything a minute ago; a new segment lands now.
    s = standby()
    landed = replace(
        s,
        repo=replace(
            s.repo, newest_segments=(segment_object("000000010000000000000005", stored=NOW - 1),)
        ),
        v4db=replace(s.v4db, current_lsn=Lsn.parse("0/6000060")),
        rates=replace(s.rates, replay_moved_at=NOW - 70),
    )
    assert step(landed, 2).state == "done"
    assert (
        "v5 replayed all the repo held before 000000010000000000000005, stored 1 s ago; its "
        "replay last moved 1 m 10 s ago"
    ) in texts(step(landed, 2), ok=True)
    # Still not fetched a window later: a stall.
    later = replace(
        landed,
        now=NOW + 30,
        **{name: replace(landed.source(name), observed_at=NOW + 29) for name in SOURCES},
    )
    assert step(later, 2).state == "running"
    assert "v5 replay is not advancing: it stays at 0/5000000" in step(later, 2).summary


def test_fresh_wal_in_transit_is_not_counted_against_the_lag_threshold() -> None:
    s = standby()
    tight = replace(
        s,
        thresholds=replace(s.thresholds, catch_up_bytes=16 * 1024 * 1024),
        repo=replace(
            s.repo, newest_segments=(segment_object("000000010000000000000005", stored=NOW - 1),)
        ),
        # v4 closed 6 (its archiver is pushing it) and writes into 7; v5 is at the end of 4.
        v4db=replace(s.v4db, current_lsn=Lsn.parse("0/7000060")),
    )
    catch_up = step(tight, 2)
    assert catch_up.state == "done"
    assert any(
        t.startswith("v5 lag: 32.0 MiB behind (2 segments)")
        and "32.0 MiB of it in transit (000000010000000000000005 stored 1 s ago; 1 closed "
        "segment v4 is archiving) (threshold 16.0 MiB)"
        in t
        for t in texts(catch_up, ok=True)
    )
    # Two more closed segments than the archiver may hold: real lag beyond the threshold.
    further = replace(tight, v4db=replace(tight.v4db, current_lsn=Lsn.parse("0/9000060")))
    assert step(further, 2).state == "running"
    assert step(further, 2).summary.startswith("in progress: v5 lag: 64.0 MiB behind (4 segments)")
    assert "32.0 MiB of it in transit" in step(further, 2).summary
    # A stalled v5 gets no allowance at all.
    stalled = replace(
        tight,
        v5db=replace(tight.v5db, replay_lsn=Lsn.parse("0/4000000")),
        rates=replace(tight.rates, replay_moved_at=NOW - 300),
        repo=replace(
            tight.repo,
            newest_segments=(segment_object("000000010000000000000005", stored=NOW - 200),),
        ),
    )
    assert step(stalled, 2).state == "running"
    assert not any("in transit" in t for t in texts(step(stalled, 2)))


MIB = 1024 * 1024


@pytest.mark.parametrize(
    ("segment_every", "seconds", "threshold"),
    [
        ((0.7, 1.3), 120.0, 64 * MIB),  # a segment a second, the default threshold
        ((0.7, 1.3), 120.0, 32 * MIB),  # the same under a tighter threshold
        ((45.0, 90.0), 600.0, 64 * MIB),  # an idle primary: a segment a minute or so
    ],
)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_steady_catch_up_never_flips_steps_2_and_3(
    segment_every: tuple[float, float], seconds: float, threshold: int, seed: int
) -> None:
    seen: list[tuple[float, str, str]] = []
    over = quiet = 0
    for s in catch_up_snapshots(seed, seconds=seconds, segment_every=segment_every):
        s = replace(s, thresholds=replace(s.thresholds, catch_up_bytes=threshold))
        result = evaluate(s)
        seen.append((s.now - NOW, result[2].state, result[3].state))
        lag = lag_from_snapshot(s)
        over += lag.behind_bytes is not None and lag.behind_bytes > threshold
        moved = s.rates.replay_moved_at
        quiet += bool(lag.replay_behind_bytes) and (moved is None or s.now - moved > 30.0)
    settled = [(two, three) for at, two, three in seen if at >= 5.0]
    assert len(settled) > seconds * 2
    assert set(settled) == {("done", "ready")}, [x for x in seen if x[1:] != ("done", "ready")]
    # Each run is demanding: the raw lag crossed a tight threshold, or a segment landed after
    # replay had stood still longer than the window — and the steps did not flip.
    if threshold < 64 * MIB:
        assert over > 0
    if segment_every[0] > 30.0:
        assert quiet > 0


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_standby_that_stops_replaying_leaves_catch_up_once_and_for_all(seed: int) -> None:
    states = [
        (s.now - NOW, evaluate(s)[2].state, evaluate(s)[3].state)
        for s in catch_up_snapshots(seed, seconds=120.0, replay_stops_at=60.0)
    ]
    before = {(two, three) for at, two, three in states if 5.0 <= at < 60.0}
    assert before == {("done", "ready")}
    after = [(at, two, three) for at, two, three in states if at >= 60.0]
    left = next(at for at, two, _ in after if two != "done")
    assert 60.0 < left <= 60.0 + 30.0 + 3.0
    assert {(two, three) for at, two, three in after if at >= left} == {("running", "blocked")}


def test_alarms() -> None:
    assert alarms(standby()) == ()
    assert alarms(promoted()) == ()
    p = promoted()
    pod = PodInfo(name="hippo-7d9f-abc", kind="database", role="master", phase="Running")
    revived = replace(p, v4=replace(p.v4, pods=(pod,)))
    keys = [a.key for a in alarms(revived)]
    assert keys == ["split-brain-pod"]
    assert alarms(revived)[0].text == (
        "v4 primary pod hippo-7d9f-abc is still Running after v5 was promoted: two writers on one "
        "repo"
    )
    both = replace(revived, v4db=replace(standby().v4db), v4=replace(p.v4, shutdown=False))
    assert [a.key for a in alarms(both)] == ["split-brain-primaries", "v4-restarted"]


def test_v4_restart_is_refused_after_promotion() -> None:
    assert check_v4_restart(shutting_down()).ok
    assert not check_v4_restart(promoted()).ok
    assert check_v4_restart(promoted()).text == (
        "IvoryCluster hippo has been promoted: v4 must stay shut down"
    )
    requested = replace(down(), v5=replace(down().v5, standby_enabled=False))
    assert not check_v4_restart(requested).ok
    silent = replace(down(), v5db=replace(down().v5db, error="boom"))
    assert not check_v4_restart(silent).ok


# ---------------------------------------------------------------------------------------------
# Properties over generated snapshots: a stage, then a few random changes to its sources.

lsn_near = st.integers(min_value=0x4000000, max_value=0x9000000).map(Lsn)
segment_names = st.sampled_from(
    [f"0000000{tl}00000000000000{n:02X}" for tl in (1, 2) for n in range(3, 10)]
)


pods_v4 = st.lists(st.sampled_from(V4_PODS), max_size=3, unique=True).flatmap(
    lambda pods: st.tuples(
        *[
            st.builds(
                replace,
                st.just(p),
                deleting=st.booleans(),
                phase=st.sampled_from(["Running", "Pending", "Failed"]),
            )
            for p in pods
        ]
    )
)
horizons = st.sampled_from([None, 724, 725, 726])
last_seen = st.none() | st.builds(
    V4LastSeen,
    lsn=lsn_near,
    timeline=st.sampled_from([1, 2]),
    system_id=st.sampled_from([None, SYSTEM_ID]),
    at=st.just(NOW - 10),
    xid_horizon=horizons,
)
maybe_bool = st.sampled_from([None, False, True])

# (source, field, values): one mutation changes one field of one source.
MUTATIONS: list[tuple[SourceName, str, st.SearchStrategy[object]]] = [
    ("v4", "exists", st.booleans()),
    (
        "v4",
        "state",
        st.sampled_from(
            [None, "pgcluster Initialized", "pgcluster Shutdown", "pgcluster Restoring"]
        ),
    ),
    ("v4", "shutdown", st.booleans()),
    ("v4", "deleting", st.booleans()),
    ("v4", "pods", pods_v4),
    ("v4", "backup_schedules", st.sampled_from([(), ("hippo-full",)])),
    ("v4db", "reachable", st.booleans()),
    ("v4db", "in_recovery", maybe_bool),
    ("v4db", "current_lsn", st.none() | lsn_near),
    ("v4db", "timeline", st.sampled_from([None, 1, 2])),
    ("v4db", "system_id", st.sampled_from([None, SYSTEM_ID, 42])),
    ("v4db", "read_only", maybe_bool),
    ("v4db", "archiver", st.sampled_from([None, ArchiverStats()])),
    ("v4db", "xid_horizon", horizons),
    ("v4db", "blocked_roles", st.sampled_from([(), ("app",), FROZEN_ROLES])),
    ("repo", "reachable", st.booleans()),
    (
        "repo",
        "newest_segments",
        st.lists(st.tuples(segment_names, st.floats(0, 200)), max_size=3).map(
            lambda pairs: tuple(segment_object(n, stored=NOW - age) for n, age in pairs)
        ),
    ),
    ("repo", "history_timelines", st.sampled_from([(), (2,)])),
    (
        "repo",
        "archive_info",
        st.sampled_from(
            [
                None,
                ArchiveInfo(db_id=1, system_id=42, version="14"),
                ArchiveInfo(db_id=1, system_id=SYSTEM_ID, version="15"),
            ]
        ),
    ),
    ("v5", "exists", st.booleans()),
    ("v5", "crd_installed", maybe_bool),
    ("v5", "standby_enabled", maybe_bool),
    ("v5", "deleting", st.booleans()),
    ("v5", "pods", st.sampled_from([(), V5_PODS, (replace(V5_PODS[0], ready=False),)])),
    ("v5db", "reachable", st.booleans()),
    ("v5db", "in_recovery", maybe_bool),
    ("v5db", "replay_lsn", st.none() | lsn_near),
    ("v5db", "current_lsn", st.none() | lsn_near),
    ("v5db", "timeline", st.sampled_from([None, 1, 2, 3])),
    ("v5db", "system_id", st.sampled_from([None, SYSTEM_ID, 42])),
    ("v5db", "is_superuser", maybe_bool),
    ("v5db", "grants_verified", maybe_bool),
    ("marks", "target_lsn", st.none() | lsn_near),
    ("marks", "target_timeline", st.sampled_from([None, 1])),
    ("marks", "v4_last_seen", last_seen),
    ("marks", "target_xid_horizon", horizons),
    ("marks", "frozen_roles", st.sampled_from([(), (("app", -1),), (("app", -1), ("x", 3))])),
    *[
        (name, "error", st.sampled_from(["connection refused", "403 Forbidden"]))
        for name in SOURCES
    ],
    *[(name, "stale_since", st.just(NOW - 5)) for name in SOURCES],
    *[(name, "observed_at", st.sampled_from([0.0, NOW - 3600])) for name in SOURCES],
]


@st.composite
def snapshots(draw: st.DrawFn) -> Snapshot:
    """A stage of the migration, then a few random changes to its sources."""
    s = draw(st.sampled_from(list(STAGES.values())))()
    for index in draw(st.lists(st.integers(0, len(MUTATIONS) - 1), max_size=5)):
        name, field, values = MUTATIONS[index]
        s = with_source(s, name, **{field: draw(values)})
    moved = draw(st.sampled_from(["keep", None, NOW - 1, NOW - 29, NOW - 31, NOW - 600]))
    if moved != "keep":
        s = replace(s, rates=replace(s.rates, replay_moved_at=moved))
    return s


def all_checks(result: tuple[StepStatus, ...]) -> list[Check]:
    return [check for status in result for check in status.checks]


@settings(max_examples=300, deadline=None)
@given(snapshots())
def test_no_green_check_rests_on_a_source_that_is_not_answering(s: Snapshot) -> None:
    result = evaluate(s)
    silent = {name for name in SOURCES if not s.available(name)}
    for check in all_checks(result):
        assert check.sources, check
        if check.ok:
            assert not (set(check.sources) & silent), check
        if check.text.startswith("unknown:"):
            assert not check.ok


@settings(max_examples=300, deadline=None)
@given(snapshots())
def test_step_states_agree_with_their_checks(s: Snapshot) -> None:
    result = evaluate(s)
    assert [status.number for status in result] == list(range(8))
    for status in result:
        assert status.checks
        if status.state == "done" or (status.state == "ready" and not status.redo):
            assert not status.failing, status
        elif status.redo:
            # Ready with red checks only when the step's own action is what fixes them.
            assert status.number == 3 and status.state == "ready" and status.failing, status
            assert status.summary == f"ready again: {status.failing[0].text}"
        else:
            assert status.failing, status
        assert status.summary
        if status.overridable:
            assert status.number == 4 and status.state == "blocked"
    assert evaluate(s) == result


@settings(max_examples=600, deadline=None)
@given(snapshots())
def test_promotion_is_never_ready_while_v4_may_be_alive(s: Snapshot) -> None:
    promote = evaluate(s)[5]
    if promote.state != "ready":
        return
    assert s.available("v4") and s.available("v4db")
    assert s.v4.exists and s.v4.state == "pgcluster Shutdown"
    assert not s.v4.database_pods
    assert not s.v4db.reachable
    assert s.available("v5db") and s.v5db.in_recovery is True
    assert s.v5.standby_enabled is True


def seen_horizons(s: Snapshot) -> set[int]:
    seen = s.marks.v4_last_seen if s.available("marks") else None
    live = s.v4db.xid_horizon if s.available("v4db") and s.v4db.reachable else None
    return {h for h in (seen.xid_horizon if seen else None, live) if h is not None}


@settings(max_examples=600, deadline=None)
@given(snapshots())
def test_wal_beyond_the_repo_never_passes_the_gate_on_bytes_alone(s: Snapshot) -> None:
    e = Evaluation(s)
    last, timeline, _, _ = e.v4_last_lsn
    if not e.v4_last_in_repo.ok or last is None or timeline is None:
        return
    newest = newest_segment_on(s, timeline)
    assert newest is not None
    if last > newest.end:
        assert s.marks.target_lsn is not None and s.marks.target_lsn <= newest.end
        # The newest horizon seen (they only grow) is the one recorded at the switch.
        assert seen_horizons(s) and max(seen_horizons(s)) == s.marks.target_xid_horizon


@settings(max_examples=400, deadline=None)
@given(snapshots())
def test_a_commit_after_the_switch_never_leaves_step_3_done(s: Snapshot) -> None:
    freeze = evaluate(s)[3]
    live = s.available("v4db") and s.v4db.reachable and s.v4db.xid_horizon is not None
    recorded = s.available("marks") and s.marks.target_lsn is not None
    at = s.marks.target_xid_horizon
    if not (live and recorded and at is not None and s.v4db.read_only):
        return
    assert s.v4db.xid_horizon is not None
    if s.v4db.xid_horizon > at:
        assert freeze.state == "ready" and freeze.redo, freeze
    if freeze.state == "done":
        assert s.v4db.xid_horizon == at


@settings(max_examples=600, deadline=None)
@given(snapshots())
def test_retiring_v4_is_never_ready_while_v5_is_in_recovery(s: Snapshot) -> None:
    retire = evaluate(s)[7]
    if retire.state == "ready":
        assert s.available("v5db") and s.v5db.reachable and s.v5db.in_recovery is False
        assert s.available("v5") and s.v5.standby_enabled is False
        assert s.v5db.grants_verified is True


@settings(max_examples=200, deadline=None)
@given(snapshots(), st.sampled_from(SOURCES))
def test_an_erroring_source_turns_its_checks_red(s: Snapshot, name: SourceName) -> None:
    broken = with_source(s, name, error="connection reset")
    for check in all_checks(evaluate(broken)):
        if name in check.sources:
            assert not check.ok, check


@settings(max_examples=200, deadline=None)
@given(snapshots())
def test_split_brain_is_always_raised(s: Snapshot) -> None:
    keys = {alarm.key for alarm in alarms(s)}
    v5_promoted = s.available("v5") and s.v5.exists and s.v5.standby_enabled is False
    if v5_promoted and s.available("v4") and s.v4.database_pods:
        assert "split-brain-pod" in keys
    if (
        s.available("v4db")
        and s.v4db.reachable
        and s.v4db.in_recovery is False
        and s.v4db.current_lsn is not None
        and s.available("v5db")
        and s.v5db.reachable
        and s.v5db.in_recovery is False
    ):
        assert "split-brain-primaries" in keys
    if v5_promoted:
        assert not check_v4_restart(s).ok


@pytest.mark.parametrize("factory", list(STAGES.values()))
def test_each_source_error_at_each_stage(factory: Callable[[], Snapshot]) -> None:
    base = factory()
    for name in SOURCES:
        broken = with_source(base, name, error="boom")
        result = evaluate(broken)
        for check in all_checks(result):
            if name in check.sources:
                assert not check.ok
        wanted = f"unknown: {SOURCE_TITLES[name]} is not answering (boom)"
        assert any(check.text == wanted for check in all_checks(result)), (name, factory)


def test_an_empty_snapshot_is_all_unknown() -> None:
    result = evaluate(Snapshot(now=NOW))
    assert [s.state for s in result] == ["blocked"] * 8
    assert all(not c.ok for c in all_checks(result))


def test_v4_database_silent_vs_unreachable() -> None:
    s = down()
    assert step(s, 4).state == "done"
    silent = replace(s, v4db=V4Database(observed_at=NOW - 1, error="no password in secret"))
    assert step(silent, 4).state == "running"
    assert step(silent, 5).state == "blocked"


def test_archiver_statistics_reset_by_a_restart_defer_to_the_repo() -> None:
    """After a crash restart pg_stat_archiver starts empty: the repo holding the final segment
    is what proves it archived; with neither, the step waits."""
    s = frozen()
    reset = replace(
        s, v4db=replace(s.v4db, archiver=replace(s.v4db.archiver, last_archived_wal=None))
    )
    step3 = next(st for st in evaluate(reset) if st.number == 3)
    assert step3.state == "done", [c.text for c in step3.failing]
    assert any("reset by a restart" in c.text for c in step3.checks)
    missing = replace(reset, repo=replace(reset.repo, newest_segments=()))
    step3 = next(st for st in evaluate(missing) if st.number == 3)
    assert step3.state != "done"
    assert any("has not pushed 000000010000000000000005" in c.text for c in step3.failing)
