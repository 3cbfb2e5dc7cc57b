"""The header line (who, where, which mode, how fresh) and the alarm bar."""

from __future__ import annotations

from collections.abc import Sequence

from textual.markup import escape

from ivytui.config import Config
from ivytui.domain.runbook import Alarm
from ivytui.tui.protocols import HubViewLike
from ivytui.tui.text import coarse_age
from ivytui.tui.widgets import Line


def _interval(seconds: float) -> str:
    return f"{seconds:g} s"


def header_text(
    *,
    config: Config,
    view: HubViewLike | None,
    now: float,
    read_only: bool,
    paused: bool,
    interval: float,
    compact: bool = False,
) -> str:
    """``ivytui │ ctx prod │ ns pgo │ hippo → hippo (IvoryCluster) │ IVYO │ DRIVER │ data <5 s
    old │ every 2 s``; ``compact`` (80 columns) leaves out the name of the tool, the v5 kind
    and the interval."""
    if view is not None:
        context, namespace = view.context, view.namespace
        v4_name, v5_name, flavor = view.cluster, view.v5_name, view.flavor
        kind = view.snapshot.v5.kind or view.snapshot.flavor.v5.kind
    else:
        context, namespace = config.context, config.namespace
        v4_name, v5_name, flavor = config.cluster, config.standby_name, config.flavor
        kind = ""
    mode = "[reverse $warning] MONITOR [/]" if read_only else "[reverse $accent] DRIVER [/]"
    names = f"[b]{escape(v4_name)}[/] → [b]{escape(v5_name or v4_name)}[/]"
    if kind and not compact:
        names += f" [$text-muted]({escape(kind)})[/]"
    parts = [
        "" if compact else "[b]ivytui[/]",
        names if compact else "",
        f"[$text-muted]ctx[/] {escape(context or 'current')}",
        f"[$text-muted]ns[/] {escape(namespace or 'default')}",
        "" if compact else names,
        escape(flavor.upper()),
        mode,
    ]
    if view is None or view.freshest_at is None:
        parts.append("[$text-muted]no data yet[/]")
    else:
        age = coarse_age(now - view.freshest_at)
        parts.append(f"data {age}" if compact else f"data {age} old")
    driver = str(getattr(view, "driver", "") or "") if view is not None else ""
    if driver and not compact:
        parts.append(f"[$text-muted]{escape(driver)}[/]")
    if paused:
        parts.append("[reverse $warning] ⏸ PAUSED [/]")
    elif not compact:
        parts.append(f"[$text-muted]every {_interval(interval)}[/]")
    return " │ ".join(part for part in parts if part)


def alarm_text(alarms: Sequence[Alarm]) -> str:
    return "\n".join(f"⚠ [b]{escape(a.title)}[/]: {escape(a.text)}" for a in alarms)


class HeaderBar(Line):
    """One line; repainted only when its words change (the age moves in coarse steps)."""


class AlarmBar(Line):
    """Alarms that must be seen whatever the step; hidden when there are none."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id)
        self.display = False

    def show_alarms(self, alarms: Sequence[Alarm]) -> None:
        self.show(alarm_text(alarms))
        self.display = bool(alarms)
