"""The header says who drives the move, from the driver Lease."""

from __future__ import annotations

from ivytui.config import Config
from ivytui.tui.panes.header import header_text
from tests.tui.tui_fakes import catching_up, make_view


def test_the_header_names_the_driver_when_one_holds_the_lease() -> None:
    cfg = Config()
    view = make_view(catching_up(), driver="alice@bastion drives since 15:20 UTC")
    text = header_text(
        config=cfg, view=view, now=view.snapshot.now, read_only=True, paused=False, interval=2.0
    )
    assert "alice@bastion drives since 15:20 UTC" in text
    assert "MONITOR" in text
    nobody = make_view(catching_up())
    assert "drives" not in header_text(
        config=cfg,
        view=nobody,
        now=nobody.snapshot.now,
        read_only=False,
        paused=False,
        interval=2.0,
    )
