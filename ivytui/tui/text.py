"""Words and marks for the panes: coarse ages, times, ✓/✗, values or a dash.

Everything here returns Textual markup strings (theme variables only, never colours). Ages are
coarse on purpose: a value shown as ``10 s`` does not change for five seconds, so an idle screen
over SSH is not repainted every second.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from textual.markup import escape

from ivytui.domain.human import format_bytes, format_rate

DASH = "[$text-muted]—[/]"
OK = "[$success]✓[/]"
BAD = "[$error]✗[/]"

_SECOND_BUCKETS = (5, 10, 15, 20, 30, 45)


def coarse_age(seconds: float | None) -> str:
    """``<5 s``, ``5 s``, ``10 s`` … ``45 s``, ``1 min`` … ``59 min``, ``1 h 05 min``, ``2 d``.

    The text changes only when the age crosses a bucket, at most every five seconds.
    """
    if seconds is None:
        return "—"
    if seconds < 0:
        seconds = 0.0
    if seconds < _SECOND_BUCKETS[0]:
        return f"<{_SECOND_BUCKETS[0]} s"
    if seconds < 60:
        bucket = max(b for b in _SECOND_BUCKETS if b <= seconds)
        return f"{bucket} s"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes:02d} min"
    return f"{hours // 24} d {hours % 24:02d} h"


def ago(at: float | None, now: float) -> str:
    """``30 s ago`` from an epoch time; ``—`` when unknown."""
    if at is None or at <= 0:
        return "—"
    return f"{coarse_age(now - at)} ago"


def utc_time(at: float | None) -> str:
    """``12:01:05 UTC`` (times are shown in UTC, as Kubernetes shows them)."""
    if at is None or at <= 0:
        return "—"
    return time.strftime("%H:%M:%S UTC", time.gmtime(at))


def short_utc(at: float | None) -> str:
    """``11-25 14:54`` (month-day hour:minute, UTC)."""
    if at is None or at <= 0:
        return "—"
    return time.strftime("%m-%d %H:%M", time.gmtime(at))


def value(text: object | None) -> str:
    """Escaped text, or a muted dash for a missing value."""
    if text is None or text == "":
        return DASH
    return escape(str(text))


def yes_no(flag: bool | None, *, good: bool | None = None) -> str:
    """``yes``/``no`` (``—`` unknown), green or red when ``good`` says which is wanted."""
    if flag is None:
        return DASH
    word = "yes" if flag else "no"
    if good is None:
        return word
    return f"[$success]{word}[/]" if flag == good else f"[$error]{word}[/]"


def mark(ok: bool, text: str) -> str:
    """``✓ text`` in green or ``✗ text`` in red (``text`` is escaped)."""
    if ok:
        return f"{OK} {escape(text)}"
    return f"{BAD} [$error]{escape(text)}[/]"


def size(nbytes: int | None) -> str:
    return DASH if nbytes is None else format_bytes(nbytes)


def rate(bps: float | None) -> str:
    return DASH if bps is None else format_rate(bps)


def muted(text: str) -> str:
    return f"[$text-muted]{escape(text)}[/]"


def warn(text: str) -> str:
    return f"[$warning]{escape(text)}[/]"


def error(text: str) -> str:
    return f"[$error]{escape(text)}[/]"


def join(parts: Iterable[str], sep: str = " · ") -> str:
    return sep.join(part for part in parts if part)
