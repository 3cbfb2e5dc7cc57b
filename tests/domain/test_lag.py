from __future__ import annotations

from dataclasses import replace

from domain_factory import NOW, down, frozen, standby
from hypothesis import given
from hypothesis import strategies as st

from ivytui.domain.lag import LagHistory, LagReport, RateWindow, lag_from_snapshot, lag_report
from ivytui.domain.lsn import DEFAULT_SEGMENT_SIZE, Lsn

SEG = DEFAULT_SEGMENT_SIZE
positions = st.integers(min_value=0, max_value=2**48).map(Lsn)
segnos = st.integers(min_value=1, max_value=2**20)


def counts(report: LagReport) -> list[int | None]:
    return [
        report.archive_backlog_bytes,
        report.pending_open_bytes,
        report.replay_behind_bytes,
        report.behind_bytes,
        report.total_bytes,
        report.segments_behind,
    ]


@given(positions, segnos, positions)
def test_never_negative(v4: Lsn, repo_segno: int, v5: Lsn) -> None:
    report = lag_report(v4, Lsn(repo_segno * SEG), v5)
    assert all(value is not None and value >= 0 for value in counts(report))


@given(segnos)
def test_zero_when_all_equal_at_a_boundary(segno: int) -> None:
    at = Lsn(segno * SEG)
    report = lag_report(at, at, at)
    assert counts(report) == [0, 0, 0, 0, 0, 0]
    assert report.caught_up is True
    assert report.eta_seconds == 0.0
    assert report.describe() == "caught up"


@given(segnos, st.integers(min_value=1, max_value=SEG - 1))
def test_idle_primary_in_its_open_segment_is_not_lag(segno: int, ahead: int) -> None:
    repo_end = Lsn(segno * SEG)
    report = lag_report(repo_end.advance(ahead), repo_end, repo_end)
    assert report.caught_up is True
    assert report.behind_bytes == 0
    assert report.segments_behind == 0
    assert report.pending_open_bytes == ahead
    assert report.total_bytes == ahead
    assert "pending in v4's open segment" in report.describe()


@given(segnos, st.integers(0, 5), st.integers(0, SEG - 1), st.integers(0, 5 * SEG))
def test_the_parts_add_up(repo_segno: int, closed: int, into_open: int, v5_back: int) -> None:
    repo_end = Lsn(repo_segno * SEG)
    v4 = repo_end.advance(closed * SEG + into_open)
    v5 = Lsn(max(0, repo_end - v5_back))
    report = lag_report(v4, repo_end, v5)
    assert report.archive_backlog_bytes == closed * SEG
    assert report.pending_open_bytes == into_open
    assert report.replay_behind_bytes == repo_end - v5
    assert report.behind_bytes == closed * SEG + (repo_end - v5)
    assert report.total_bytes == v4 - v5
    assert report.v4_to_repo_bytes == closed * SEG + into_open
    assert report.caught_up == (closed == 0 and v5 == repo_end)


def test_a_closed_segment_not_yet_archived_is_lag() -> None:
    repo_end = Lsn.parse("0/5000000")
    report = lag_report(Lsn.parse("0/6000010"), repo_end, repo_end)
    assert report.caught_up is False
    assert report.archive_backlog_bytes == SEG
    assert report.pending_open_bytes == 16
    assert report.segments_behind == 1


def test_eta() -> None:
    repo_end = Lsn.parse("0/8000000")
    v5 = Lsn.parse("0/7000000")
    report = lag_report(repo_end, repo_end, v5, write_bps=1024.0 * 1024, replay_bps=3 * 1024.0**2)
    assert report.eta_seconds == 8.0
    assert report.describe() == "16.0 MiB behind (1 segment), about 8 s at 3.0 MiB/s"
    not_closing = lag_report(repo_end, repo_end, v5, write_bps=2048.0, replay_bps=1024.0)
    assert not_closing.eta_seconds is None
    assert "not closing" in not_closing.describe()
    unknown = lag_report(repo_end, repo_end, v5)
    assert unknown.eta_seconds is None


def test_unknown_positions() -> None:
    report = lag_report(None, None, Lsn(5))
    assert report.behind_bytes is None and report.caught_up is None
    assert report.describe() == "lag unknown"
    v4_down = lag_report(None, Lsn.parse("0/6000000"), Lsn.parse("0/6000000"))
    assert v4_down.caught_up is True and v4_down.behind_bytes == 0


def test_from_snapshots() -> None:
    caught = lag_from_snapshot(standby())
    assert caught.v4_lsn == Lsn.parse("0/5000060")
    assert caught.repo_end == Lsn.parse("0/5000000")
    assert caught.v5_lsn == Lsn.parse("0/5000000")
    assert caught.caught_up is True and caught.pending_open_bytes == 0x60
    behind = standby()
    behind = replace(behind, v5db=replace(behind.v5db, replay_lsn=Lsn.parse("0/4000000")))
    report = lag_from_snapshot(behind)
    assert report.replay_behind_bytes == SEG and not report.caught_up
    assert lag_from_snapshot(frozen()).repo_end == Lsn.parse("0/6000000")
    after_shutdown = lag_from_snapshot(down())
    assert after_shutdown.v4_lsn is None
    assert after_shutdown.repo_end == Lsn.parse("0/6000000")
    s = standby()
    silent = replace(s, v5db=replace(s.v5db, error="timeout"))
    assert lag_from_snapshot(silent).v5_lsn is None


def test_rate_window() -> None:
    window = RateWindow(max_samples=5, max_age=60.0)
    assert window.rate() is None
    for i in range(10):
        window = window.add(NOW + i, 1000 * i)
    assert len(window.samples) == 5
    assert window.rate() == 1000.0
    assert window.latest == (NOW + 9, 9000)
    restarted = window.add(NOW + 10, 5)
    assert restarted.samples == ((NOW + 10, 5),) and restarted.rate() is None
    same_time = window.add(NOW + 9, 9500)
    assert same_time.latest == (NOW + 9, 9500)


def test_rate_window_drops_old_samples_but_keeps_two() -> None:
    window = RateWindow(max_samples=30, max_age=10.0)
    window = window.add(NOW, 0).add(NOW + 100, 1000)
    assert window.rate() == 10.0
    window = window.add(NOW + 101, 1100).add(NOW + 102, 1300)
    assert window.samples[0][0] >= NOW + 100


@given(st.lists(st.tuples(st.floats(0, 5), st.integers(0, 10**9)), max_size=60))
def test_rate_window_is_bounded_and_never_negative(steps: list[tuple[float, int]]) -> None:
    window = RateWindow(max_samples=8, max_age=20.0)
    at, position = NOW, 0
    for dt, grow in steps:
        at, position = at + dt, position + grow
        window = window.add(at, position)
        assert len(window.samples) <= 8
        rate = window.rate()
        assert rate is None or rate >= 0


@given(st.lists(st.integers(0, 10**12), max_size=300))
def test_lag_history_is_bounded(values: list[int]) -> None:
    history = LagHistory(max_points=50)
    for i, value in enumerate(values):
        history = history.add(NOW + i, value)
    assert history.values() == tuple(values[-50:])


@given(positions)
def test_zero_when_all_equal_anywhere(at: Lsn) -> None:
    report = lag_report(at, at, at)
    assert report.caught_up is True
    assert counts(report) == [0, 0, 0, 0, 0, 0]
