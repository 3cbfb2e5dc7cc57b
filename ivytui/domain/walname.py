"""WAL file names: ``TTTTTTTTLLLLLLLLSSSSSSSS`` (timeline, log id, segment within the log id)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ivytui.domain.lsn import (
    DEFAULT_SEGMENT_SIZE,
    Lsn,
    LsnError,
    check_segment_size,
    segment_end_lsn,
    segment_start_lsn,
)

_WALNAME_RE = re.compile(r"[0-9A-F]{24}")


def segments_per_xlogid(segment_size: int = DEFAULT_SEGMENT_SIZE) -> int:
    """How many segments one 4 GiB log id holds (256 for 16 MiB segments)."""
    return 0x1_0000_0000 // segment_size


def segment_name(timeline: int, segno: int, segment_size: int = DEFAULT_SEGMENT_SIZE) -> str:
    """The 24-hex file name of segment ``segno`` on ``timeline``."""
    per_id = segments_per_xlogid(segment_size)
    return f"{timeline:08X}{segno // per_id:08X}{segno % per_id:08X}"


def walfile_name(timeline: int, lsn: Lsn, segment_size: int = DEFAULT_SEGMENT_SIZE) -> str:
    """The name ``pg_walfile_name(lsn)`` returns on ``timeline``.

    At an exact segment boundary this is the *previous* segment (the one that ends there):
    ``walfile_name(1, Lsn.parse("0/5000000"))`` is ``000000010000000000000004``.
    """
    return segment_name(timeline, lsn.pg_walfile_segno(segment_size), segment_size)


def walfile_name_containing(
    timeline: int, lsn: Lsn, segment_size: int = DEFAULT_SEGMENT_SIZE
) -> str:
    """The name of the segment that contains the byte at ``lsn`` (``0/5000000`` → …05)."""
    return segment_name(timeline, lsn.segno(segment_size), segment_size)


@dataclass(frozen=True, slots=True, order=True)
class WalSegment:
    """One WAL segment: a timeline and a segment number, for a given segment size."""

    timeline: int
    segno: int
    segment_size: int = DEFAULT_SEGMENT_SIZE

    @classmethod
    def parse(cls, name: str, segment_size: int = DEFAULT_SEGMENT_SIZE) -> WalSegment:
        """Read a 24-hex WAL file name such as ``0000000100000016000000B3``."""
        check_segment_size(segment_size)
        if _WALNAME_RE.fullmatch(name) is None:
            raise LsnError(f"{name!r} is not a WAL file name (24 upper-case hex digits)")
        timeline = int(name[0:8], 16)
        log = int(name[8:16], 16)
        seg = int(name[16:24], 16)
        per_id = segments_per_xlogid(segment_size)
        if timeline == 0:
            raise LsnError(f"WAL file name {name} has timeline 0")
        if seg >= per_id:
            raise LsnError(
                f"WAL file name {name}: segment {seg:X} does not exist with "
                f"{segment_size // (1024 * 1024)} MiB segments"
            )
        return cls(timeline, log * per_id + seg, segment_size)

    @classmethod
    def containing(
        cls, timeline: int, lsn: Lsn, segment_size: int = DEFAULT_SEGMENT_SIZE
    ) -> WalSegment:
        """The segment holding the byte at ``lsn``."""
        return cls(timeline, lsn.segno(segment_size), segment_size)

    @property
    def name(self) -> str:
        return segment_name(self.timeline, self.segno, self.segment_size)

    @property
    def start(self) -> Lsn:
        """First byte of the segment."""
        return segment_start_lsn(self.segno, self.segment_size)

    @property
    def end(self) -> Lsn:
        """The position just after the segment: where replay stands once it is all applied."""
        return segment_end_lsn(self.segno, self.segment_size)

    def next(self) -> WalSegment:
        return WalSegment(self.timeline, self.segno + 1, self.segment_size)

    def __str__(self) -> str:
        return self.name


def parse_walfile_name(name: str, segment_size: int = DEFAULT_SEGMENT_SIZE) -> tuple[int, int]:
    """``(timeline, segno)`` of a 24-hex WAL file name."""
    segment = WalSegment.parse(name, segment_size)
    return segment.timeline, segment.segno
