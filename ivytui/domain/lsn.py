"""Write-ahead log positions (LSNs) and the segment arithmetic PostgreSQL does on them.

An :class:`Lsn` is an ``int`` (asyncpg decodes ``pg_lsn`` as one), printed and parsed in
PostgreSQL's ``X/Y`` form. Subtracting two LSNs gives a plain ``int``: a distance in bytes.

Two segment numbers exist for one position, and they differ only at an exact boundary:

- :meth:`Lsn.segno` is the segment that *contains* the byte at the position (``0/5000000`` is
  the first byte of segment 5);
- :meth:`Lsn.pg_walfile_segno` is what ``pg_walfile_name()`` names: the segment that holds the
  byte *before* the position, so ``0/5000000`` (where segment 4 ended) names segment 4.
"""

from __future__ import annotations

import re

from ivytui.errors import IvyError

DEFAULT_SEGMENT_SIZE = 16 * 1024 * 1024
"""PostgreSQL's default ``wal_segment_size``: 16 MiB."""

MAX_LSN = 2**64 - 1

_LSN_RE = re.compile(r"([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})")


class LsnError(IvyError, ValueError):
    """An LSN, a WAL file name or a segment size that cannot be what it claims to be."""

    title = "WAL position"


def check_segment_size(segment_size: int) -> int:
    """Return ``segment_size`` if PostgreSQL allows it (a power of two, 1 MiB to 1 GiB)."""
    if (
        segment_size < 1024 * 1024
        or segment_size > 1024 * 1024 * 1024
        or segment_size & (segment_size - 1)
    ):
        raise LsnError(
            f"WAL segment size {segment_size} is not a power of two between 1 MiB and 1 GiB"
        )
    return segment_size


class Lsn(int):
    """A position in the write-ahead log, 0 to 2**64-1 bytes."""

    __slots__ = ()

    def __new__(cls, value: int) -> Lsn:
        number = int(value)
        if not 0 <= number <= MAX_LSN:
            raise LsnError(f"LSN {value} is outside 0 .. 2**64-1")
        return super().__new__(cls, number)

    @classmethod
    def parse(cls, text: str) -> Lsn:
        """Read PostgreSQL's ``X/Y`` form, e.g. ``"16/B374D848"``."""
        match = _LSN_RE.fullmatch(text.strip())
        if match is None:
            raise LsnError(f"{text!r} is not an LSN (expected hex X/Y such as 16/B374D848)")
        return cls((int(match.group(1), 16) << 32) | int(match.group(2), 16))

    @classmethod
    def coerce(cls, value: Lsn | int | str | None) -> Lsn | None:
        """An :class:`Lsn` from an int (asyncpg), an ``X/Y`` string, or ``None``."""
        if value is None:
            return None
        if isinstance(value, str):
            return cls.parse(value)
        return cls(value)

    def __str__(self) -> str:
        return f"{int(self) >> 32:X}/{int(self) & 0xFFFFFFFF:X}"

    def __repr__(self) -> str:
        return f"Lsn('{self}')"

    def __format__(self, spec: str) -> str:
        if spec and spec[-1] in "bcdoxXn":
            return int.__format__(self, spec)
        return format(str(self), spec)

    def advance(self, nbytes: int) -> Lsn:
        """The position ``nbytes`` further on (or back, if negative)."""
        return Lsn(int(self) + nbytes)

    def segno(self, segment_size: int = DEFAULT_SEGMENT_SIZE) -> int:
        """Number of the segment that contains the byte at this position."""
        return int(self) // segment_size

    def pg_walfile_segno(self, segment_size: int = DEFAULT_SEGMENT_SIZE) -> int:
        """Number of the segment ``pg_walfile_name()`` names: the one holding the byte before.

        Like PostgreSQL, ``0/0`` wraps around to the last possible segment.
        """
        return ((int(self) - 1) % (MAX_LSN + 1)) // segment_size

    def segment_offset(self, segment_size: int = DEFAULT_SEGMENT_SIZE) -> int:
        """Bytes from the start of the containing segment to this position."""
        return int(self) % segment_size

    def segment_start(self, segment_size: int = DEFAULT_SEGMENT_SIZE) -> Lsn:
        """First byte of the containing segment."""
        return Lsn(int(self) - int(self) % segment_size)

    def segment_end(self, segment_size: int = DEFAULT_SEGMENT_SIZE) -> Lsn:
        """The position just after the containing segment (the start of the next one).

        The end of the last possible segment is clamped to 2**64-1.
        """
        return Lsn(min(int(self.segment_start(segment_size)) + segment_size, MAX_LSN))


def segment_start_lsn(segno: int, segment_size: int = DEFAULT_SEGMENT_SIZE) -> Lsn:
    """The first byte of segment ``segno``."""
    return Lsn(segno * segment_size)


def segment_end_lsn(segno: int, segment_size: int = DEFAULT_SEGMENT_SIZE) -> Lsn:
    """The position just after segment ``segno`` (clamped to 2**64-1 for the very last one)."""
    return Lsn(min((segno + 1) * segment_size, MAX_LSN))
