"""The fault and crash matrix, every cell, on a fresh world per flavor: prints the table
(step × fault → outcome) and the totals — cells run, survived (done, or stopped with words),
unsafe writes, rows lost, crashes.

    python benchmarks/faults.py [--flavor ivyo|pgo|both] [--subset]

About 3–4 minutes per flavor on 2 cores. ``pytest tests/faults`` plays the representative
subset of the same cells on one flavor.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ivytui.sandbox import control
from tests.faults.matrix import SUBSET, Matrix, World, run_flavor


async def run(flavors: list[str], subset: bool) -> Matrix:
    matrix = Matrix()
    for flavor in flavors:
        with tempfile.TemporaryDirectory(prefix=f"ivytui-faults-{flavor}-") as tmp:
            directory = Path(tmp) / "world"
            opts = control.UpOptions(flavor=flavor, with_standby=True, archive_timeout=5)
            state = control.up(directory, opts, timeout=240)
            try:
                await run_flavor(
                    matrix,
                    World(directory, state),
                    Path(tmp) / "state",
                    subset=SUBSET if subset else None,
                )
            finally:
                control.down(directory)
    return matrix


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flavor", choices=["ivyo", "pgo", "both"], default="both")
    parser.add_argument("--subset", action="store_true", help="only the cells CI plays")
    args = parser.parse_args()
    flavors = ["ivyo", "pgo"] if args.flavor == "both" else [args.flavor]
    matrix = asyncio.run(run(flavors, args.subset))
    print(matrix.table())
    print()
    print(matrix.grid())
    totals = matrix.totals()
    bad = totals["unsafe writes"] or totals["rows lost"] or totals["crashes"]
    return 1 if bad or totals["survived"] != totals["cells run"] else 0


if __name__ == "__main__":
    sys.exit(main())
