"""A console of its own that runs one action on a sandbox world and exits: what a crash cell of
the fault matrix kills at a named point (``IVYTUI_CRASH_AT``).

    python tests/faults/drive.py WORLD_DIR ACTION
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from ivytui.config import Config, Thresholds
from ivytui.errors import IvyError
from ivytui.sandbox import control
from ivytui.sources.actions import Executor
from ivytui.sources.hub import Hub


async def main(directory: Path, action: str) -> int:
    state = control.read_state(directory)
    if state is None:
        print(f"drive: no world in {directory}", file=sys.stderr)
        return 2
    config = Config(
        cluster=str(state["cluster"]),
        namespace=str(state["namespace"]),
        flavor=str(state["flavor"]),
        v5_name=str(state["v5_name"]),
        kubeconfig=str(directory / "kubeconfig"),
        interval=0.5,
        thresholds=Thresholds(repo_quiet_seconds=5),
    )
    hub = Hub(config)
    await hub.start()
    ex = Executor(hub, wait_timeout=90)
    try:
        # As a person would: the key is pressed once the screen shows the clusters.
        for _ in range(100):
            await hub.refresh()
            snap = hub.view.snapshot
            if all(snap.available(name) for name in ("v4", "v5", "v4db", "repo")):
                break
            await asyncio.sleep(0.2)
        plan = await ex.plan(action)
        out = await ex.execute(plan, typed=config.cluster)
        print(out.text)
        return 0
    except IvyError as exc:
        print(f"{exc.title}: {exc.message}", file=sys.stderr)
        return 1
    finally:
        await ex.close()
        await hub.stop()


if __name__ == "__main__":
    sys.exit(asyncio.run(main(Path(sys.argv[1]), sys.argv[2])))
