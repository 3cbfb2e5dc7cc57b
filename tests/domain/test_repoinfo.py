"""The sample files in data/ were written by pgBackRest 2.45 with PostgreSQL 15 (a full backup,
a promotion to timeline 2, then a differential backup)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ivytui.domain.lsn import Lsn
from ivytui.domain.repoinfo import (
    BackupLabelKey,
    HistoryKey,
    InfoKey,
    RepoFormatError,
    RepoLayout,
    SegmentKey,
    info_checksum,
    parse_archive_info,
    parse_archive_key,
    parse_backup_info,
    parse_timeline_history,
    read_info_file,
    render_info,
)
from ivytui.errors import IvyError

DATA = Path(__file__).parent / "data"
ARCHIVE_INFO = (DATA / "archive.info").read_text()
BACKUP_INFO = (DATA / "backup.info").read_text()
SYSTEM_ID = 7712122409858461008
LAYOUT = RepoLayout("/backrestrepo/hippo-backrest-shared-repo")


def sections_of(text: str) -> dict[str, dict[str, object]]:
    info = read_info_file(text, "x")
    return {
        section: {
            key: json.loads(value.raw) for key, value in keys.items() if key != "backrest-checksum"
        }
        for section, keys in info.sections.items()
    }


def test_archive_info() -> None:
    info = parse_archive_info(ARCHIVE_INFO)
    assert info.db_id == 1
    assert info.system_id == SYSTEM_ID
    assert info.version == "15"
    assert info.archive_id == "15-1"
    assert info.backrest_format == 5
    assert info.backrest_version == "2.45"
    assert [(h.history_id, h.system_id, h.version) for h in info.history] == [(1, SYSTEM_ID, "15")]


def test_backup_info() -> None:
    info = parse_backup_info(BACKUP_INFO)
    assert (info.db_id, info.system_id, info.version) == (1, SYSTEM_ID, "15")
    assert info.catalog_version == 202209061
    assert info.control_version == 1300
    assert [b.label for b in info.backups] == [
        "20261125-145346F",
        "20261125-145346F_20261125-145425D",
    ]
    full, diff = info.backups
    assert full.type == "full"
    assert full.archive_start == full.archive_stop == "000000010000000000000002"
    assert full.lsn_start == Lsn.parse("0/2000028")
    assert full.lsn_stop == Lsn.parse("0/2000100")
    assert (full.timestamp_start, full.timestamp_stop, full.duration) == (1795618426, 1795618429, 3)
    assert full.database_size == 22992586
    assert full.repo_size == 3043472
    assert full.error is False
    assert full.prior is None and full.reference == ()
    assert diff.type == "diff"
    assert diff.prior == "20261125-145346F"
    assert diff.reference == ("20261125-145346F",)
    assert diff.archive_start == "000000020000000000000009"
    assert info.latest == diff
    assert info.latest_full == full
    assert info.history[0].system_id == SYSTEM_ID
    assert info.history[0].catalog_version == 202209061


@pytest.mark.parametrize("text", [ARCHIVE_INFO, BACKUP_INFO])
def test_render_reproduces_pgbackrest_byte_for_byte(text: str) -> None:
    assert render_info(sections_of(text)) == text


def test_checksum_is_pgbackrests() -> None:
    info = read_info_file(ARCHIVE_INFO, "archive.info")
    raw = {s: {k: v.raw for k, v in keys.items()} for s, keys in info.sections.items()}
    assert info_checksum(raw) == "54b78fbda8cd6525e1d28dc6f9aab086664f458d"


def test_unknown_sections_and_keys_are_ignored() -> None:
    sections = sections_of(BACKUP_INFO)
    sections["db"]["db-future-key"] = {"x": 1}
    sections["backup:future"] = {"k": [1, 2]}
    current = sections["backup:current"]
    label = "20261125-145346F"
    entry = current[label]
    assert isinstance(entry, dict)
    current[label] = {**entry, "backup-annotation": {"who": "me"}, "backup-new": True}
    info = parse_backup_info(render_info(sections))
    assert info.backups[0].label == label
    archive = parse_archive_info(
        ARCHIVE_INFO.replace("[db]\n", '[db]\ndb-extra="x"\n'), verify_checksum=False
    )
    assert archive.system_id == SYSTEM_ID


def test_older_backup_without_error_flag_or_lsns() -> None:
    sections = sections_of(BACKUP_INFO)
    current = sections["backup:current"]
    for label, entry in list(current.items()):
        assert isinstance(entry, dict)
        current[label] = {
            k: v
            for k, v in entry.items()
            if k not in ("backup-error", "backup-lsn-start", "backup-lsn-stop")
        }
    info = parse_backup_info(render_info(sections))
    assert info.backups[0].error is None
    assert info.backups[0].lsn_start is None


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_bad_json_value_names_the_line_and_key() -> None:
    broken = ARCHIVE_INFO.replace("db-system-id=7712122409858461008", "db-system-id=77121x")
    with pytest.raises(RepoFormatError) as caught:
        parse_archive_info(broken, verify_checksum=False)
    error = caught.value
    assert error.line == line_of(broken, "db-system-id") == 7
    assert str(error) == "archive.info line 7: value for db-system-id is not JSON: 77121x"
    assert isinstance(error, IvyError)
    assert "\n" not in str(error)


def test_bad_json_is_found_before_the_checksum() -> None:
    broken = ARCHIVE_INFO.replace('db-version="15"', 'db-version="15')
    with pytest.raises(RepoFormatError) as caught:
        parse_archive_info(broken)
    assert "line 8: value for db-version is not JSON" in str(caught.value)


def test_missing_db_section() -> None:
    text = render_info({k: v for k, v in sections_of(ARCHIVE_INFO).items() if k != "db"})
    with pytest.raises(RepoFormatError) as caught:
        parse_archive_info(text)
    assert str(caught.value) == (
        f"archive.info line {len(text.splitlines())}: no [db] section before the end of the file"
    )


def test_missing_key_names_the_section_line() -> None:
    sections = sections_of(ARCHIVE_INFO)
    del sections["db"]["db-system-id"]
    text = render_info(sections)
    with pytest.raises(RepoFormatError) as caught:
        parse_archive_info(text)
    assert (
        str(caught.value) == f"archive.info line {line_of(text, '[db]')}: [db] has no db-system-id"
    )


def test_wrong_type() -> None:
    sections = sections_of(ARCHIVE_INFO)
    sections["db"]["db-system-id"] = "7712"
    with pytest.raises(RepoFormatError) as caught:
        parse_archive_info(render_info(sections))
    assert 'db-system-id is "7712", expected an integer' in str(caught.value)


@pytest.mark.parametrize("keep", range(1, 14))
def test_truncated_at_a_line_boundary(keep: int) -> None:
    text = "\n".join(ARCHIVE_INFO.splitlines()[:keep]) + "\n"
    with pytest.raises(RepoFormatError) as caught:
        parse_archive_info(text)
    assert f"archive.info line {keep}: " in str(caught.value)


def test_truncated_mid_line() -> None:
    cut = BACKUP_INFO.index('"backup-info-size":22992586') + 10
    with pytest.raises(RepoFormatError) as caught:
        parse_backup_info(BACKUP_INFO[:cut])
    assert str(caught.value).startswith(
        "backup.info line 6: value for 20261125-145346F is not JSON"
    )


def test_edited_file_fails_the_checksum() -> None:
    edited = ARCHIVE_INFO.replace('db-version="15"', 'db-version="16"')
    with pytest.raises(RepoFormatError) as caught:
        parse_archive_info(edited)
    assert f"line {line_of(edited, 'backrest-checksum')}: backrest-checksum" in str(caught.value)
    assert "does not match the contents" in str(caught.value)
    assert parse_archive_info(edited, verify_checksum=False).version == "16"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "line 1: the file is empty"),
        ("db-id=1\n", "line 1: db-id= comes before any [section]"),
        ("[db]\nnot a key value\n", "line 2: expected [section] or key=value, found 'not a key"),
        ("<html>oops</html>", "line 1: expected [section] or key=value"),
    ],
)
def test_garbage(text: str, reason: str) -> None:
    with pytest.raises(RepoFormatError) as caught:
        parse_archive_info(text)
    assert reason in str(caught.value)


@given(st.text(max_size=300))
def test_any_text_parses_or_raises_a_repo_format_error(text: str) -> None:
    try:
        parse_backup_info(text, verify_checksum=False)
    except RepoFormatError as error:
        assert str(error).startswith("backup.info line ")
        assert "\n" not in str(error)


@given(st.integers(0, len(BACKUP_INFO) - 2))
def test_any_truncation_is_reported(cut: int) -> None:
    # Everything but the final newline is missing something.
    with pytest.raises(RepoFormatError):
        parse_backup_info(BACKUP_INFO[:cut])


def test_timeline_history() -> None:
    switches = parse_timeline_history((DATA / "00000002.history").read_text())
    assert len(switches) == 1
    assert switches[0].parent_timeline == 1
    assert switches[0].switch_lsn == Lsn.parse("0/6000000")
    assert switches[0].reason == "no recovery target specified"
    with pytest.raises(RepoFormatError) as caught:
        parse_timeline_history("1\t0/6000000\tok\n2\tnope\tbad\n", "00000003.history")
    assert str(caught.value) == "00000003.history line 2: 'nope' is not an LSN"


def test_layout() -> None:
    assert LAYOUT.archive_prefix == "backrestrepo/hippo-backrest-shared-repo/archive/db/"
    assert (
        LAYOUT.archive_info_key == "backrestrepo/hippo-backrest-shared-repo/archive/db/archive.info"
    )
    assert LAYOUT.backup_info_key == "backrestrepo/hippo-backrest-shared-repo/backup/db/backup.info"
    assert LAYOUT.timeline_prefix("15-1", 2) == (
        "backrestrepo/hippo-backrest-shared-repo/archive/db/15-1/0000000200000000/"
    )
    assert RepoLayout("/").archive_prefix == "archive/db/"


def test_keys_from_a_real_listing() -> None:
    keys = (DATA / "repo-keys.txt").read_text().split()
    parsed = [parse_archive_key(key, LAYOUT.archive_prefix) for key in keys]
    segments = [p for p in parsed if isinstance(p, SegmentKey)]
    assert [s.name for s in segments] == [
        "000000010000000000000001",
        "000000010000000000000002",
        "000000010000000000000003",
        "000000010000000000000004",
        "000000010000000000000005",
        "000000020000000000000006",
        "000000020000000000000007",
        "000000020000000000000008",
        "000000020000000000000009",
    ]
    assert all(s.archive_id == "15-1" and s.compression == "gz" and not s.partial for s in segments)
    assert segments[0].checksum == "13853e3b313b4a77cace154465755c509b8f5a96"
    labels = [p for p in parsed if isinstance(p, BackupLabelKey)]
    assert [(b.segment.name, b.offset, str(b.start_lsn)) for b in labels] == [
        ("000000010000000000000002", 0x28, "0/2000028"),
        ("000000020000000000000009", 0x28, "0/9000028"),
    ]
    assert [p.timeline for p in parsed if isinstance(p, HistoryKey)] == [2]
    assert [p.copy for p in parsed if isinstance(p, InfoKey)] == [False, True]
    assert sum(p is None for p in parsed) == 8  # everything under backup/


@pytest.mark.parametrize(
    ("rest", "kind", "detail"),
    [
        (
            "15-1/0000000100000000/000000010000000000000006.partial-" + "b" * 40 + ".zst",
            "segment",
            (True, "zst"),
        ),
        ("15-1/0000000100000000/000000010000000000000006-" + "b" * 40, "segment", (False, None)),
        (
            "9.6-2/0000000300000001/0000000300000001000000FF-" + "c" * 40 + ".lz4",
            "segment",
            (False, "lz4"),
        ),
        ("15-1/0000000A.history", "history", 10),
    ],
)
def test_key_variants(rest: str, kind: str, detail: object) -> None:
    parsed = parse_archive_key(LAYOUT.archive_prefix + rest, LAYOUT.archive_prefix)
    assert parsed is not None and parsed.kind == kind
    if isinstance(parsed, SegmentKey):
        assert (parsed.partial, parsed.compression) == detail
    elif isinstance(parsed, HistoryKey):
        assert parsed.timeline == detail


@pytest.mark.parametrize(
    "rest",
    [
        "15-1/0000000100000000/000000010000000000000006-" + "b" * 39 + ".gz",
        "15-1/0000000100000000/000000010000000000000006-" + "b" * 40 + ".rar",
        "15-1/0000000200000000/000000010000000000000006-" + "b" * 40 + ".gz",
        "15-1/0000000100000000/000000010000000000000100-" + "b" * 40 + ".gz",
        "15-1/00000000.history",
        "15-1/",
        "x-1/00000002.history",
        "archive.info.bak",
        "../backup/db/backup.info",
    ],
)
def test_foreign_keys(rest: str) -> None:
    assert parse_archive_key(LAYOUT.archive_prefix + rest, LAYOUT.archive_prefix) is None


def test_key_outside_the_prefix() -> None:
    key = "other/archive/db/15-1/0000000100000000/000000010000000000000006-" + "b" * 40
    assert parse_archive_key(key, LAYOUT.archive_prefix) is None
