"""What a pgBackRest repo holds: ``archive.info``, ``backup.info``, timeline history files and
the names of the objects under ``archive/<stanza>/``.

The info files are INI files whose values are JSON, with a ``[backrest]`` section at the top and
again at the very end (holding ``backrest-checksum``, a SHA-1 over the rest). They are read line
by line here, so that a damaged file is reported with the line at fault, and the checksum is
checked, so that a file cut short at a line boundary is not taken for a whole one. Unknown
sections and keys are ignored.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ivytui.domain.lsn import DEFAULT_SEGMENT_SIZE, Lsn, LsnError
from ivytui.domain.walname import WalSegment
from ivytui.errors import IvyError

DEFAULT_STANZA = "db"
COMPRESSION_EXTENSIONS = ("gz", "bz2", "lz4", "zst", "xz")


class RepoFormatError(IvyError):
    """A repo file that is not what pgBackRest writes; the message names the file and line."""

    title = "pgBackRest repo"

    def __init__(self, path: str, line: int, reason: str) -> None:
        super().__init__(f"{path} line {line}: {reason}")
        self.path = path
        self.line = line
        self.reason = reason


# --------------------------------------------------------------------------------------------
# The INI-with-JSON container


@dataclass(frozen=True, slots=True)
class InfoValue:
    """One ``key=value`` line: the raw JSON text and where it was."""

    raw: str
    line: int


@dataclass(frozen=True, slots=True)
class InfoFile:
    """An info file split into sections (a repeated section is merged, as configparser does)."""

    path: str
    sections: Mapping[str, Mapping[str, InfoValue]]
    section_lines: Mapping[str, int]
    line_count: int

    def decode(self, section: str, key: str) -> Any:
        """The JSON value of ``section``/``key``; raises :class:`RepoFormatError` if not JSON."""
        value = self.sections[section][key]
        try:
            return json.loads(value.raw)
        except ValueError:
            shown = value.raw if len(value.raw) <= 40 else value.raw[:37] + "..."
            raise RepoFormatError(
                self.path, value.line, f"value for {key} is not JSON: {shown}"
            ) from None


_SECTION_RE = re.compile(r"\[([^\[\]]+)\]")


def read_info_file(text: str, path: str, *, verify_checksum: bool = True) -> InfoFile:
    """Split an info file into sections; check ``backrest-checksum`` unless told not to."""
    sections: dict[str, dict[str, InfoValue]] = {}
    section_lines: dict[str, int] = {}
    current: str | None = None
    lines = text.splitlines()
    for number, raw_line in enumerate(lines, start=1):
        line = raw_line.strip()
        if not line or line[0] in "#;":
            continue
        header = _SECTION_RE.fullmatch(line)
        if header is not None:
            current = header.group(1)
            sections.setdefault(current, {})
            section_lines.setdefault(current, number)
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            shown = line if len(line) <= 40 else line[:37] + "..."
            raise RepoFormatError(path, number, f"expected [section] or key=value, found {shown!r}")
        if current is None:
            raise RepoFormatError(path, number, f"{key.strip()}= comes before any [section]")
        sections[current][key.strip()] = InfoValue(value.strip(), number)
    if not sections:
        raise RepoFormatError(path, max(len(lines), 1), "the file is empty")
    info = InfoFile(path, sections, section_lines, len(lines))
    for section, keys in sections.items():
        for key in keys:
            info.decode(section, key)
    if verify_checksum:
        _verify_checksum(info)
    return info


def info_checksum(sections: Mapping[str, Mapping[str, str]]) -> str:
    """pgBackRest's ``backrest-checksum``: SHA-1 of ``{"section":{"key":value,...},...}``.

    ``sections`` maps section → key → the value's JSON text, without the checksum itself;
    sections and keys are taken in sorted order, as pgBackRest writes them.
    """
    parts = []
    for section in sorted(sections):
        items = ",".join(
            f"{json.dumps(key)}:{sections[section][key]}"
            for key in sorted(sections[section])
            if not (section == "backrest" and key == "backrest-checksum")
        )
        parts.append(f"{json.dumps(section)}:{{{items}}}")
    return hashlib.sha1(("{" + ",".join(parts) + "}").encode()).hexdigest()


def _verify_checksum(info: InfoFile) -> None:
    backrest = info.sections.get("backrest", {})
    stored = backrest.get("backrest-checksum")
    if stored is None:
        raise RepoFormatError(
            info.path,
            info.line_count,
            "no backrest-checksum at the end: the file is truncated",
        )
    raw = {s: {k: v.raw for k, v in keys.items()} for s, keys in info.sections.items()}
    computed = info_checksum(raw)
    wanted = info.decode("backrest", "backrest-checksum")
    if wanted != computed:
        raise RepoFormatError(
            info.path,
            stored.line,
            f"backrest-checksum {wanted} does not match the contents (computed {computed}): "
            "the file was changed or damaged",
        )


def render_info(sections: Mapping[str, Mapping[str, object]]) -> str:
    """Write an info file as pgBackRest 2.x does, ending with its ``backrest-checksum``.

    Values are Python objects (rendered as compact JSON with sorted keys); a ``backrest``
    section, if given, comes first like every other section in sorted order.
    """
    encoded = {
        section: {
            key: json.dumps(value, separators=(",", ":"), sort_keys=True)
            for key, value in keys.items()
        }
        for section, keys in sections.items()
    }
    blocks = []
    for section in sorted(encoded):
        lines = [f"[{section}]"]
        lines += [f"{key}={encoded[section][key]}" for key in sorted(encoded[section])]
        blocks.append("\n".join(lines))
    checksum = info_checksum(encoded)
    blocks.append(f'[backrest]\nbackrest-checksum="{checksum}"')
    return "\n\n".join(blocks) + "\n"


# --------------------------------------------------------------------------------------------
# Typed reading of values


class _Reader:
    """Typed access to one section, with errors that name the line."""

    def __init__(self, info: InfoFile, section: str) -> None:
        if section not in info.sections:
            raise RepoFormatError(
                info.path, info.line_count, f"no [{section}] section before the end of the file"
            )
        self.info = info
        self.section = section

    def line_of(self, key: str) -> int:
        value = self.info.sections[self.section].get(key)
        return value.line if value is not None else self.info.section_lines[self.section]

    def get(self, key: str) -> Any:
        if key not in self.info.sections[self.section]:
            raise RepoFormatError(
                self.info.path, self.line_of(key), f"[{self.section}] has no {key}"
            )
        return self.info.decode(self.section, key)

    def integer(self, key: str) -> int:
        return _as_int(self.get(key), self.info.path, self.line_of(key), key)

    def string(self, key: str) -> str:
        return _as_str(self.get(key), self.info.path, self.line_of(key), key)

    def optional(self, key: str) -> Any:
        if key not in self.info.sections[self.section]:
            return None
        return self.info.decode(self.section, key)

    def items(self) -> list[tuple[str, Any, int]]:
        return [
            (key, self.info.decode(self.section, key), value.line)
            for key, value in self.info.sections[self.section].items()
        ]


def _as_int(value: Any, path: str, line: int, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RepoFormatError(path, line, f"{key} is {json.dumps(value)}, expected an integer")
    return value


def _as_str(value: Any, path: str, line: int, key: str) -> str:
    if not isinstance(value, str):
        raise RepoFormatError(path, line, f"{key} is {json.dumps(value)}, expected a string")
    return value


def _as_object(value: Any, path: str, line: int, key: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RepoFormatError(path, line, f"{key} is {json.dumps(value)}, expected an object")
    return value


def _field(obj: Mapping[str, Any], name: str, kind: type, path: str, line: int, owner: str) -> Any:
    """A required field of a JSON object value."""
    if name not in obj:
        raise RepoFormatError(path, line, f"{owner} has no {name}")
    return _optional_field(obj, name, kind, path, line, owner)


def _optional_field(
    obj: Mapping[str, Any], name: str, kind: type, path: str, line: int, owner: str
) -> Any:
    value = obj.get(name)
    if value is None:
        return None
    if kind is int:
        return _as_int(value, path, line, f"{owner} {name}")
    if kind is str:
        return _as_str(value, path, line, f"{owner} {name}")
    if kind is bool and not isinstance(value, bool):
        raise RepoFormatError(
            path, line, f"{owner} {name} is {json.dumps(value)}, expected true or false"
        )
    return value


def _optional_lsn(
    obj: Mapping[str, Any], name: str, path: str, line: int, owner: str
) -> Lsn | None:
    text = _optional_field(obj, name, str, path, line, owner)
    if text is None:
        return None
    try:
        return Lsn.parse(text)
    except LsnError:
        raise RepoFormatError(path, line, f"{owner} {name} {text!r} is not an LSN") from None


# --------------------------------------------------------------------------------------------
# archive.info


@dataclass(frozen=True, slots=True)
class DbHistory:
    """One ``[db:history]`` entry: a PostgreSQL cluster the stanza has served."""

    history_id: int
    system_id: int
    version: str
    catalog_version: int | None = None
    control_version: int | None = None


@dataclass(frozen=True, slots=True)
class ArchiveInfo:
    """``archive/<stanza>/archive.info``."""

    db_id: int
    system_id: int
    version: str
    history: tuple[DbHistory, ...] = ()
    backrest_format: int | None = None
    backrest_version: str | None = None

    @property
    def archive_id(self) -> str:
        """The directory WAL goes to for the current database, e.g. ``15-1``."""
        return f"{self.version}-{self.db_id}"


def _history(info: InfoFile, system_id_key: str) -> tuple[DbHistory, ...]:
    if "db:history" not in info.sections:
        return ()
    entries = []
    for key, value, line in _Reader(info, "db:history").items():
        if not key.isdigit():
            raise RepoFormatError(info.path, line, f"[db:history] key {key!r} is not a number")
        owner = f"[db:history] {key}"
        obj = _as_object(value, info.path, line, owner)
        entries.append(
            DbHistory(
                history_id=int(key),
                system_id=_field(obj, system_id_key, int, info.path, line, owner),
                version=_field(obj, "db-version", str, info.path, line, owner),
                catalog_version=_optional_field(
                    obj, "db-catalog-version", int, info.path, line, owner
                ),
                control_version=_optional_field(
                    obj, "db-control-version", int, info.path, line, owner
                ),
            )
        )
    return tuple(sorted(entries, key=lambda entry: entry.history_id))


def _backrest_header(info: InfoFile) -> tuple[int | None, str | None]:
    if "backrest" not in info.sections:
        return None, None
    reader = _Reader(info, "backrest")
    fmt = reader.optional("backrest-format")
    version = reader.optional("backrest-version")
    return (
        fmt if isinstance(fmt, int) and not isinstance(fmt, bool) else None,
        version if isinstance(version, str) else None,
    )


def parse_archive_info(
    text: str, path: str = "archive.info", *, verify_checksum: bool = True
) -> ArchiveInfo:
    """Read ``archive.info``; a damaged file raises :class:`RepoFormatError`."""
    info = read_info_file(text, path, verify_checksum=verify_checksum)
    db = _Reader(info, "db")
    fmt, version = _backrest_header(info)
    # In archive.info's history, "db-id" holds the system identifier (a pgBackRest legacy).
    return ArchiveInfo(
        db_id=db.integer("db-id"),
        system_id=db.integer("db-system-id"),
        version=db.string("db-version"),
        history=_history(info, "db-id"),
        backrest_format=fmt,
        backrest_version=version,
    )


# --------------------------------------------------------------------------------------------
# backup.info


@dataclass(frozen=True, slots=True)
class Backup:
    """One backup in ``[backup:current]``."""

    label: str
    type: str
    timestamp_start: int
    timestamp_stop: int
    archive_start: str | None = None
    archive_stop: str | None = None
    lsn_start: Lsn | None = None
    lsn_stop: Lsn | None = None
    prior: str | None = None
    reference: tuple[str, ...] = ()
    database_size: int | None = None
    database_size_delta: int | None = None
    repo_size: int | None = None
    repo_size_delta: int | None = None
    error: bool | None = None
    db_id: int | None = None
    backrest_version: str | None = None

    @property
    def duration(self) -> int:
        return self.timestamp_stop - self.timestamp_start


@dataclass(frozen=True, slots=True)
class BackupInfo:
    """``backup/<stanza>/backup.info``."""

    db_id: int
    system_id: int
    version: str
    backups: tuple[Backup, ...] = ()
    catalog_version: int | None = None
    control_version: int | None = None
    history: tuple[DbHistory, ...] = ()
    backrest_format: int | None = None
    backrest_version: str | None = None

    @property
    def latest(self) -> Backup | None:
        """The backup that finished last."""
        if not self.backups:
            return None
        return max(self.backups, key=lambda backup: (backup.timestamp_stop, backup.label))

    @property
    def latest_full(self) -> Backup | None:
        fulls = [backup for backup in self.backups if backup.type == "full"]
        return max(fulls, key=lambda b: (b.timestamp_stop, b.label)) if fulls else None


def _backup(label: str, value: Any, path: str, line: int) -> Backup:
    owner = f"backup {label}"
    obj = _as_object(value, path, line, owner)
    reference = obj.get("backup-reference") or ()
    if not isinstance(reference, list | tuple) or not all(isinstance(r, str) for r in reference):
        raise RepoFormatError(path, line, f"{owner} backup-reference is not a list of labels")

    def opt_int(name: str) -> int | None:
        result: int | None = _optional_field(obj, name, int, path, line, owner)
        return result

    def opt_str(name: str) -> str | None:
        result: str | None = _optional_field(obj, name, str, path, line, owner)
        return result

    return Backup(
        label=label,
        type=_field(obj, "backup-type", str, path, line, owner),
        timestamp_start=_field(obj, "backup-timestamp-start", int, path, line, owner),
        timestamp_stop=_field(obj, "backup-timestamp-stop", int, path, line, owner),
        archive_start=opt_str("backup-archive-start"),
        archive_stop=opt_str("backup-archive-stop"),
        lsn_start=_optional_lsn(obj, "backup-lsn-start", path, line, owner),
        lsn_stop=_optional_lsn(obj, "backup-lsn-stop", path, line, owner),
        prior=opt_str("backup-prior"),
        reference=tuple(reference),
        database_size=opt_int("backup-info-size"),
        database_size_delta=opt_int("backup-info-size-delta"),
        repo_size=opt_int("backup-info-repo-size"),
        repo_size_delta=opt_int("backup-info-repo-size-delta"),
        error=_optional_field(obj, "backup-error", bool, path, line, owner),
        db_id=opt_int("db-id"),
        backrest_version=opt_str("backrest-version"),
    )


def parse_backup_info(
    text: str, path: str = "backup.info", *, verify_checksum: bool = True
) -> BackupInfo:
    """Read ``backup.info``; a damaged file raises :class:`RepoFormatError`."""
    info = read_info_file(text, path, verify_checksum=verify_checksum)
    db = _Reader(info, "db")
    backups: tuple[Backup, ...] = ()
    if "backup:current" in info.sections:
        backups = tuple(
            _backup(label, value, path, line)
            for label, value, line in _Reader(info, "backup:current").items()
        )
    catalog = db.optional("db-catalog-version")
    control = db.optional("db-control-version")
    fmt, version = _backrest_header(info)
    return BackupInfo(
        db_id=db.integer("db-id"),
        system_id=db.integer("db-system-id"),
        version=db.string("db-version"),
        backups=tuple(sorted(backups, key=lambda backup: backup.label)),
        catalog_version=None
        if catalog is None
        else _as_int(catalog, path, db.line_of("db-catalog-version"), "db-catalog-version"),
        control_version=None
        if control is None
        else _as_int(control, path, db.line_of("db-control-version"), "db-control-version"),
        history=_history(info, "db-system-id"),
        backrest_format=fmt,
        backrest_version=version,
    )


# --------------------------------------------------------------------------------------------
# Timeline history files (00000002.history)


@dataclass(frozen=True, slots=True)
class TimelineSwitch:
    """One line of a timeline history file: the parent timeline ended at ``switch_lsn``."""

    parent_timeline: int
    switch_lsn: Lsn
    reason: str


def parse_timeline_history(text: str, path: str = "history") -> tuple[TimelineSwitch, ...]:
    """Read ``NNNNNNNN.history`` (``1<TAB>0/7000000<TAB>no recovery target specified``)."""
    switches = []
    for number, raw_line in enumerate(text.splitlines(), start=1):
        line = raw_line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split(None, 2)
        if len(fields) < 2 or not fields[0].isdigit():
            raise RepoFormatError(path, number, f"expected '<timeline> <lsn> <reason>': {line!r}")
        try:
            lsn = Lsn.parse(fields[1])
        except LsnError:
            raise RepoFormatError(path, number, f"{fields[1]!r} is not an LSN") from None
        switches.append(TimelineSwitch(int(fields[0]), lsn, fields[2] if len(fields) > 2 else ""))
    return tuple(switches)


# --------------------------------------------------------------------------------------------
# Object keys under archive/<stanza>/


@dataclass(frozen=True, slots=True)
class RepoLayout:
    """Where things are in the bucket for one repo path and stanza (keys: no leading slash)."""

    repo_path: str
    stanza: str = DEFAULT_STANZA

    @property
    def root(self) -> str:
        stripped = self.repo_path.strip("/")
        return f"{stripped}/" if stripped else ""

    @property
    def archive_prefix(self) -> str:
        """``backrestrepo/hippo-backrest-shared-repo/archive/db/``."""
        return f"{self.root}archive/{self.stanza}/"

    @property
    def backup_prefix(self) -> str:
        return f"{self.root}backup/{self.stanza}/"

    @property
    def archive_info_key(self) -> str:
        return f"{self.archive_prefix}archive.info"

    @property
    def backup_info_key(self) -> str:
        return f"{self.backup_prefix}backup.info"

    def timeline_prefix(self, archive_id: str, timeline: int, log: int = 0) -> str:
        """The folder of one timeline and log id, e.g. ``…/archive/db/15-1/0000000100000000/``."""
        return f"{self.archive_prefix}{archive_id}/{timeline:08X}{log:08X}/"


@dataclass(frozen=True, slots=True)
class SegmentKey:
    """A WAL segment (or a ``.partial`` one) stored in the archive."""

    key: str
    archive_id: str
    segment: WalSegment
    checksum: str
    compression: str | None
    partial: bool = False

    kind: Literal["segment"] = "segment"

    @property
    def name(self) -> str:
        return self.segment.name

    @property
    def timeline(self) -> int:
        return self.segment.timeline


@dataclass(frozen=True, slots=True)
class BackupLabelKey:
    """A backup history file, ``<segment>.<offset 8 hex>.backup``."""

    key: str
    archive_id: str
    segment: WalSegment
    offset: int

    kind: Literal["backup-label"] = "backup-label"

    @property
    def start_lsn(self) -> Lsn:
        return self.segment.start.advance(self.offset)


@dataclass(frozen=True, slots=True)
class HistoryKey:
    """A timeline history file, ``NNNNNNNN.history``: proof that timeline N was created."""

    key: str
    archive_id: str
    timeline: int

    kind: Literal["history"] = "history"


@dataclass(frozen=True, slots=True)
class InfoKey:
    """``archive.info`` or its ``.copy``."""

    key: str
    copy: bool

    kind: Literal["info"] = "info"


ArchiveKey = SegmentKey | BackupLabelKey | HistoryKey | InfoKey

_ARCHIVE_ID = r"(?P<aid>\d+(?:\.\d+)?-\d+)"
_EXT = r"(?:\.(?P<ext>" + "|".join(COMPRESSION_EXTENSIONS) + r"))?"
_SEGMENT_KEY_RE = re.compile(
    _ARCHIVE_ID + r"/(?P<dir>[0-9A-F]{16})/(?P<name>[0-9A-F]{24})"
    r"(?P<partial>\.partial)?-(?P<sha>[0-9a-f]{40})" + _EXT
)
_BACKUP_KEY_RE = re.compile(
    _ARCHIVE_ID + r"/(?P<dir>[0-9A-F]{16})/(?P<name>[0-9A-F]{24})\.(?P<off>[0-9A-F]{8})\.backup"
)
_HISTORY_KEY_RE = re.compile(_ARCHIVE_ID + r"/(?P<tl>[0-9A-F]{8})\.history")


def parse_archive_key(
    key: str, archive_prefix: str, segment_size: int = DEFAULT_SEGMENT_SIZE
) -> ArchiveKey | None:
    """What an object key under ``archive_prefix`` is; ``None`` for anything else."""
    if not key.startswith(archive_prefix):
        return None
    rest = key[len(archive_prefix) :]
    if rest in ("archive.info", "archive.info.copy"):
        return InfoKey(key, rest.endswith(".copy"))
    try:
        match = _SEGMENT_KEY_RE.fullmatch(rest)
        if match is not None and match["dir"] == match["name"][:16]:
            return SegmentKey(
                key=key,
                archive_id=match["aid"],
                segment=WalSegment.parse(match["name"], segment_size),
                checksum=match["sha"],
                compression=match["ext"],
                partial=match["partial"] is not None,
            )
        match = _BACKUP_KEY_RE.fullmatch(rest)
        if match is not None and match["dir"] == match["name"][:16]:
            return BackupLabelKey(
                key=key,
                archive_id=match["aid"],
                segment=WalSegment.parse(match["name"], segment_size),
                offset=int(match["off"], 16),
            )
    except LsnError:
        return None
    match = _HISTORY_KEY_RE.fullmatch(rest)
    if match is not None and int(match["tl"], 16) > 0:
        return HistoryKey(key=key, archive_id=match["aid"], timeline=int(match["tl"], 16))
    return None
