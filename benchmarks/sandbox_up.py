"""How long `ivytui sandbox up` takes to a replaying standby, and how much memory the world uses.

    python benchmarks/sandbox_up.py [--runs 3] [--storage s3|gcs] [--backrest auto|builtin]

Prints one line per run and a summary. Memory is the resident set of every process of the world
(supervisor, object store, each postmaster and all its children), read from /proc.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import asyncpg

from ivytui.sandbox import control


def rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def world_rss_mib(state: dict[str, object]) -> float:
    pids: set[int] = set()
    for _, pid in control.world_pids(state):  # type: ignore[arg-type]
        pids.update(descendants(pid))
    return sum(rss_kib(p) for p in pids) / 1024


async def replaying(dsn: str, timeout: float = 60) -> float:
    """Seconds until the standby's replay LSN moves."""
    start = time.monotonic()
    conn = await asyncpg.connect(dsn)
    try:
        first = await conn.fetchval("SELECT pg_last_wal_replay_lsn()::text")
        while time.monotonic() - start < timeout:
            now = await conn.fetchval("SELECT pg_last_wal_replay_lsn()::text")
            if now != first:
                return time.monotonic() - start
            await asyncio.sleep(0.1)
    finally:
        await conn.close()
    raise SystemExit("the standby did not replay within 60 s")


def one_run(storage: str, backrest: str) -> tuple[float, float, float]:
    with tempfile.TemporaryDirectory(prefix="ivytui-bench-") as tmp:
        d = Path(tmp)
        t0 = time.monotonic()
        state = control.up(
            d,
            control.UpOptions(
                with_standby=True, storage=storage, backrest=backrest, archive_timeout=2
            ),
        )
        ready = time.monotonic() - t0
        name = str(state["v5_name"])
        port = state["v5"][name]["port"]  # type: ignore[index]
        dsn = f"postgresql://postgres:{state['superuser_password']}@127.0.0.1:{port}/postgres"
        moved = asyncio.run(replaying(dsn))
        time.sleep(5)
        state = control.read_state(d) or state
        mem = world_rss_mib(state)
        control.down(d)
        return ready, ready + moved, mem


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--storage", default="s3", choices=("s3", "gcs"))
    ap.add_argument("--backrest", default="auto", choices=("auto", "pgbackrest", "builtin"))
    args = ap.parse_args()
    rows = []
    for i in range(args.runs):
        ready, replay, mem = one_run(args.storage, args.backrest)
        rows.append((ready, replay, mem))
        print(
            f"run {i + 1}: up returned in {ready:.1f} s, standby replaying at {replay:.1f} s, "
            f"world RSS {mem:.0f} MiB"
        )
    med = [statistics.median(c) for c in zip(*rows, strict=True)]
    print(
        f"median of {args.runs} ({args.storage}, {args.backrest}): up {med[0]:.1f} s, "
        f"replaying {med[1]:.1f} s, world RSS {med[2]:.0f} MiB"
    )


if __name__ == "__main__":
    main()
