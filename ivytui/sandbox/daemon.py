"""The world's supervisor process: `python -m ivytui.sandbox.daemon --dir DIR --options JSON`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

from ivytui.errors import IvyError
from ivytui.sandbox.world import PROGRESS_FILE, World, WorldOptions


def _progress_writer(
    directory: Path,
) -> tuple[Callable[[str, float], None], Callable[[str], None]]:
    path = directory / PROGRESS_FILE
    fh = path.open("a", buffering=1)

    def emit(stage: str, frac: float) -> None:
        fh.write(
            json.dumps({"time": time.time(), "stage": stage, "progress": round(frac, 3)}) + "\n"
        )

    def fail(message: str) -> None:
        fh.write(json.dumps({"time": time.time(), "error": message}) + "\n")

    return emit, fail


async def _serve(world: World, parent_pid: int | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
    await world.start()
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)
        if parent_pid is not None and not _alive(parent_pid):
            logging.getLogger(__name__).warning("parent %s is gone: stopping the world", parent_pid)
            break
    await world.stop()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ivytui-sandbox-daemon")
    parser.add_argument("--dir", required=True, type=Path)
    parser.add_argument("--options", required=True)
    parser.add_argument("--parent-pid", type=int)
    args = parser.parse_args(argv)
    directory: Path = args.dir
    logging.basicConfig(
        filename=directory / "world.log",
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    raw = json.loads(args.options)
    raw["directory"] = directory
    opts = WorldOptions(**raw)
    emit, fail = _progress_writer(directory)
    world = World(opts, progress=emit)
    try:
        asyncio.run(_serve(world, args.parent_pid))
    except IvyError as exc:
        fail(str(exc))
        return 1
    except Exception as exc:
        logging.getLogger(__name__).exception("the world failed")
        fail(f"the sandbox failed: {exc} (see {directory / 'world.log'})")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
