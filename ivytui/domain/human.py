"""Numbers as a person reads them at a glance: ``12.3 MiB``, ``2 m 05 s``, ``1.5 MiB/s``."""

from __future__ import annotations

import math

_UNITS = ("KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


def format_bytes(nbytes: float) -> str:
    """Binary units with one decimal: ``512 B``, ``1.5 KiB``, ``16.0 MiB``."""
    if nbytes < 0:
        return "-" + format_bytes(-nbytes)
    if round(nbytes) < 1024:
        return f"{round(nbytes)} B"
    value = float(nbytes)
    for unit in _UNITS:
        value /= 1024
        if round(value, 1) < 1024 or unit == _UNITS[-1]:
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")


def plural(count: int, word: str) -> str:
    """``1 segment``, ``3 segments``."""
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def format_rate(bytes_per_second: float | None) -> str:
    """``1.5 MiB/s``; ``—`` when the rate is not known yet."""
    if bytes_per_second is None or not math.isfinite(bytes_per_second):
        return "—"
    return f"{format_bytes(bytes_per_second)}/s"


def format_duration(seconds: float | None) -> str:
    """``42 s``, ``2 m 05 s``, ``3 h 07 m``, ``2 d 04 h``; ``∞`` for never, ``—`` for unknown."""
    if seconds is None or math.isnan(seconds):
        return "—"
    if math.isinf(seconds):
        return "∞" if seconds > 0 else "-∞"
    if seconds < 0:
        return "-" + format_duration(-seconds)
    total = round(seconds)
    if total < 60:
        return f"{total} s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes} m {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes:02d} m"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours:02d} h"
