"""The fault and crash matrix on a fresh world: a representative subset of its cells (every
cell with ``IVYTUI_FAULTS=all``; ``python benchmarks/faults.py`` prints the whole table)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from ivytui.sandbox import control
from tests.conftest import start_world
from tests.faults.matrix import SUBSET, Matrix, World, run_flavor

pytestmark = pytest.mark.world

FLAVORS = ["ivyo", "pgo"] if os.environ.get("IVYTUI_FAULTS") == "all" else ["ivyo"]


@pytest.fixture(params=FLAVORS)
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    directory = tmp_path_factory.mktemp(f"faults-{request.param}")
    w = start_world(directory, flavor=request.param, with_standby=True, archive_timeout=5)
    try:
        yield World(w.dir, w.state)
    finally:
        control.down(directory)


@pytest.mark.timeout(1800)
async def test_every_cell_ends_done_or_stopped_cleanly(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IVYTUI_STATE_DIR", str(tmp_path / "state"))
    matrix = Matrix()
    subset = None if os.environ.get("IVYTUI_FAULTS") == "all" else SUBSET
    try:
        await run_flavor(matrix, world, tmp_path / "state", subset=subset)
    finally:
        print("\n" + matrix.table())
    totals = matrix.totals()
    assert totals["crashes"] == 0, matrix.table()
    assert totals["unsafe writes"] == 0, matrix.table()
    assert totals["rows lost"] == 0, matrix.table()
    assert totals["survived"] == totals["cells run"], matrix.table()
    assert totals["cells run"] >= 10
