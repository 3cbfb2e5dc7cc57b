from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ivytui.domain.human import format_bytes, format_duration, format_rate
from ivytui.domain.lsn import (
    DEFAULT_SEGMENT_SIZE,
    MAX_LSN,
    Lsn,
    LsnError,
    check_segment_size,
    segment_end_lsn,
    segment_start_lsn,
)
from ivytui.domain.walname import (
    WalSegment,
    parse_walfile_name,
    segment_name,
    segments_per_xlogid,
    walfile_name,
    walfile_name_containing,
)

lsns = st.integers(min_value=0, max_value=MAX_LSN).map(Lsn)
segment_sizes = st.sampled_from([2**n for n in range(20, 31)])


def pg_walfile_name_reference(timeline: int, lsn: int, segment_size: int) -> str:
    """PostgreSQL's XLByteToPrevSeg + XLogFileName, transcribed with uint64 wrap-around."""
    segno = ((lsn - 1) & 0xFFFFFFFFFFFFFFFF) // segment_size
    per_id = 0x100000000 // segment_size
    return f"{timeline:08X}{(segno // per_id) & 0xFFFFFFFF:08X}{(segno % per_id) & 0xFFFFFFFF:08X}"


# Pairs answered by PostgreSQL 15's pg_walfile_name() on timeline 1.
PG15_PAIRS = [
    ("0/5000000", "000000010000000000000004"),
    ("0/5000028", "000000010000000000000005"),
    ("16/B374D848", "0000000100000016000000B3"),
    ("0/0", "00000001FFFFFFFF000000FF"),
    ("0/1", "000000010000000000000000"),
    ("1/0", "0000000100000000000000FF"),
    ("0/FFFFFFFF", "0000000100000000000000FF"),
    ("FFFFFFFF/FF000000", "00000001FFFFFFFF000000FE"),
]


@pytest.mark.parametrize(("text", "name"), PG15_PAIRS)
def test_walfile_name_matches_postgresql(text: str, name: str) -> None:
    assert walfile_name(1, Lsn.parse(text)) == name


def test_containing_segment_differs_only_at_a_boundary() -> None:
    assert walfile_name_containing(1, Lsn.parse("0/5000000")) == "000000010000000000000005"
    assert walfile_name_containing(1, Lsn.parse("0/5000028")) == "000000010000000000000005"
    assert walfile_name_containing(1, Lsn.parse("16/B374D848")) == "0000000100000016000000B3"


@given(lsns)
def test_parse_format_round_trip(lsn: Lsn) -> None:
    assert Lsn.parse(str(lsn)) == lsn
    assert Lsn.parse(str(lsn).lower()) == lsn


@given(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1))
def test_format_is_postgresql_style(high: int, low: int) -> None:
    text = str(Lsn((high << 32) | low))
    assert text == f"{high:X}/{low:X}"


@given(st.integers(min_value=1, max_value=2**32 - 1), lsns, segment_sizes)
def test_walfile_name_agrees_with_postgresql_rule(timeline: int, lsn: Lsn, size: int) -> None:
    assert walfile_name(timeline, lsn, size) == pg_walfile_name_reference(timeline, lsn, size)


@given(lsns, segment_sizes)
def test_segment_numbers(lsn: Lsn, size: int) -> None:
    segno = lsn.segno(size)
    assert (
        lsn.segment_start(size) <= lsn < lsn.segment_end(size) or lsn.segment_end(size) == MAX_LSN
    )
    assert lsn.segment_start(size) == segment_start_lsn(segno, size)
    assert lsn.segment_end(size) == segment_end_lsn(segno, size)
    assert lsn.segment_offset(size) == lsn - lsn.segment_start(size)
    if lsn.segment_offset(size) == 0 and lsn > 0:
        assert lsn.pg_walfile_segno(size) == segno - 1
    elif lsn > 0:
        assert lsn.pg_walfile_segno(size) == segno


@given(st.integers(1, 2**32 - 1), st.integers(0, 2**40 - 1), segment_sizes)
def test_segment_name_round_trip(timeline: int, segno: int, size: int) -> None:
    segno %= (2**64) // size
    name = segment_name(timeline, segno, size)
    assert len(name) == 24
    assert parse_walfile_name(name, size) == (timeline, segno)
    segment = WalSegment.parse(name, size)
    assert segment.name == name
    assert segment.start == segno * size
    assert segment.end - segment.start == size or segment.end == MAX_LSN


def test_segment_start_and_end_for_a_known_name() -> None:
    segment = WalSegment.parse("000000010000000000000005")
    assert segment == WalSegment(1, 5)
    assert str(segment.start) == "0/5000000"
    assert str(segment.end) == "0/6000000"
    assert segment.next().name == "000000010000000000000006"
    assert segments_per_xlogid() == 256
    assert WalSegment.containing(2, Lsn.parse("0/60000A8")).name == "000000020000000000000006"


@pytest.mark.parametrize(
    "name",
    [
        "00000001000000000000000",
        "0000000100000000000001000",
        "00000001000000000000010G",
        "000000010000000000000100",
        "000000000000000000000005",
        "00000001000000000000000a",
    ],
)
def test_bad_walfile_names(name: str) -> None:
    with pytest.raises(LsnError):
        WalSegment.parse(name)


@pytest.mark.parametrize("text", ["", "5000000", "0/", "/5", "1/2/3", "G/0", "123456789/0", "x"])
def test_bad_lsns(text: str) -> None:
    with pytest.raises(LsnError) as caught:
        Lsn.parse(text)
    assert "is not an LSN" in str(caught.value)


def test_lsn_range_and_coercion() -> None:
    with pytest.raises(LsnError):
        Lsn(-1)
    with pytest.raises(LsnError):
        Lsn(MAX_LSN + 1)
    assert Lsn.coerce(None) is None
    assert Lsn.coerce("0/10") == 16
    assert Lsn.coerce(16) == Lsn.parse("0/10")
    lsn = Lsn.parse("0/5000028")
    assert lsn - Lsn.parse("0/5000000") == 40
    assert type(lsn - Lsn.parse("0/5000000")) is int
    assert lsn.advance(-40) == Lsn.parse("0/5000000")
    assert repr(lsn) == "Lsn('0/5000028')"
    assert f"[{lsn:>12}]" == "[   0/5000028]"
    assert f"{lsn:x}" == "5000028"


def test_segment_sizes() -> None:
    assert check_segment_size(DEFAULT_SEGMENT_SIZE) == DEFAULT_SEGMENT_SIZE
    for bad in (0, 1000, 3 * 1024 * 1024, 2 * 1024 * 1024 * 1024):
        with pytest.raises(LsnError):
            check_segment_size(bad)
    assert walfile_name(1, Lsn.parse("0/5000000"), 64 * 1024 * 1024) == "000000010000000000000001"


@pytest.mark.parametrize(
    ("nbytes", "text"),
    [
        (0, "0 B"),
        (512, "512 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (16 * 1024 * 1024, "16.0 MiB"),
        (int(12.34 * 1024 * 1024), "12.3 MiB"),
        (1024 * 1024 - 1, "1.0 MiB"),
        (5 * 1024**4, "5.0 TiB"),
        (-2048, "-2.0 KiB"),
    ],
)
def test_format_bytes(nbytes: int, text: str) -> None:
    assert format_bytes(nbytes) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0 s"),
        (0.4, "0 s"),
        (42, "42 s"),
        (59.6, "1 m 00 s"),
        (125, "2 m 05 s"),
        (3600, "1 h 00 m"),
        (3 * 3600 + 7 * 60 + 30, "3 h 07 m"),
        (2 * 86400 + 4 * 3600, "2 d 04 h"),
        (-5, "-5 s"),
        (float("inf"), "∞"),
        (None, "—"),
    ],
)
def test_format_duration(seconds: float | None, text: str) -> None:
    assert format_duration(seconds) == text


def test_format_rate() -> None:
    assert format_rate(None) == "—"
    assert format_rate(1.5 * 1024 * 1024) == "1.5 MiB/s"


@given(st.integers(min_value=0, max_value=2**70))
def test_format_bytes_is_short_and_parsable(nbytes: int) -> None:
    number, unit = format_bytes(nbytes).split(" ")
    assert unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")
    assert float(number) < 1024 or unit == "EiB"
