"""The view the hub builds — everything the screen shows at one instant — and its JSON."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

from ivytui.domain.lag import LagReport
from ivytui.domain.lsn import Lsn
from ivytui.domain.model import Snapshot, SourceName, V5State
from ivytui.domain.runbook import Alarm, StepStatus


@dataclass(frozen=True)
class HubView:
    """Everything the screen shows, at one instant."""

    snapshot: Snapshot
    steps: tuple[StepStatus, ...]
    alarms: tuple[Alarm, ...]
    lag: LagReport
    lag_history: tuple[tuple[float, int], ...]
    """``(time, lag bytes)`` — the lag is :attr:`LagReport.behind_bytes` (v4's open segment,
    which cannot be archived yet, is not counted)."""
    write_rate: float | None
    arrival_rate: float | None
    replay_rate: float | None
    context: str
    namespace: str
    cluster: str
    v5_name: str
    flavor: str
    read_only: bool
    freshest_at: float | None
    paused: bool
    interval: float
    objects: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    driver: str = ""
    """Who drives the move, from the driver Lease ("alice@bastion since 15:20 UTC"), or ""."""


def _jsonable(value: Any) -> Any:
    if isinstance(value, Lsn):
        return str(value)
    if isinstance(value, bool) or value is None or isinstance(value, (str, float)):
        return value
    if isinstance(value, int):
        return int(value)
    if is_dataclass(value) and not isinstance(value, type):
        out = {f.name: _jsonable(getattr(value, f.name)) for f in fields(value)}
        if isinstance(value, StepStatus):
            out["failing"] = len(value.failing)
        return out
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    return str(value)


SOURCE_ORDER: tuple[SourceName, ...] = ("v4", "v4db", "repo", "v5", "v5db", "marks")


def view_to_json(view: HubView) -> dict[str, Any]:
    """A JSON-safe form of ``view``: per source ``{ok, error, problem, …values}``, the steps
    with their checks, the alarms and the lag."""
    snap = view.snapshot
    sources: dict[str, Any] = {}
    for name in SOURCE_ORDER:
        src = snap.source(name)
        values = _jsonable(src)
        assert isinstance(values, dict)
        ok = src.error is None and src.observed_at > 0
        sources[name] = {"ok": ok, "problem": snap.problem(name), **values}
    if isinstance(snap.v5, V5State):
        sources["v5"]["crd"] = snap.flavor.v5.crd_name
    lag = _jsonable(view.lag)
    assert isinstance(lag, dict)
    lag["text"] = view.lag.describe()
    return {
        "ok": all(entry["ok"] for entry in sources.values()),
        "now": snap.now,
        "context": view.context,
        "driver": view.driver,
        "namespace": view.namespace,
        "cluster": view.cluster,
        "v5_name": view.v5_name,
        "flavor": view.flavor,
        "read_only": view.read_only,
        "interval": view.interval,
        "paused": view.paused,
        "freshest_at": view.freshest_at,
        "sources": sources,
        "steps": _jsonable(view.steps),
        "alarms": _jsonable(view.alarms),
        "lag": lag,
        "lag_history": [[at, value] for at, value in view.lag_history],
        "rates": {
            "write_bps": view.write_rate,
            "arrival_bps": view.arrival_rate,
            "replay_bps": view.replay_rate,
            "replay_moved_at": snap.rates.replay_moved_at,
        },
        "segment_size": snap.segment_size,
    }


LAST_ACTION_ANNOTATION = "ivytui/last-action"
"""On the driver Lease: ``{"at": <epoch>, "action": "<title>"}`` of the driver's last change."""


def driver_words(lease: Mapping[str, Any] | None, now: float) -> str:
    """Who drives, since when, and how long ago they last acted, from the driver Lease."""
    import datetime as dt
    import json

    from ivytui.domain.human import format_duration
    from ivytui.sources.kube import parse_time

    spec = (lease or {}).get("spec") or {}
    holder = spec.get("holderIdentity")
    if not holder:
        return ""
    acquired = parse_time(spec.get("acquireTime"))
    renewed = parse_time(spec.get("renewTime"))
    since = dt.datetime.fromtimestamp(acquired, dt.UTC).strftime("%H:%M UTC") if acquired else "?"
    annotations = ((lease or {}).get("metadata") or {}).get("annotations") or {}
    acted = ""
    try:
        last = json.loads(annotations.get(LAST_ACTION_ANNOTATION) or "{}")
        if last.get("at"):
            ago = format_duration(max(0.0, now - float(last["at"])))
            acted = f", last acted {ago} ago ({last.get('action') or 'an action'})"
    except (ValueError, TypeError, AttributeError):
        acted = ""
    if renewed is not None and renewed + float(spec.get("leaseDurationSeconds") or 0) < now:
        return f"last driven by {holder} (since {since}{acted}; the lease has lapsed)"
    return f"{holder} drives since {since}{acted}"
