"""S3 requests per poll of the repo source, with 100 and with 100,000 WAL segments in the bucket,
beside a naive full listing of the archive on every poll.

    python benchmarks/repo_requests.py [--sizes 100 100000]

The bucket is served over HTTP by moto on loopback; its objects are put straight into moto's
backend (the requests counted are only those of the poll). The poll under test is the real
`RepoSource` talking to that server with aioboto3.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import math
import time
from pathlib import Path

from ivytui.domain.lsn import DEFAULT_SEGMENT_SIZE
from ivytui.domain.walname import segment_name
from ivytui.sources.storage import RepoSource, RepoTarget

DATA = Path(__file__).resolve().parent.parent / "tests" / "domain" / "data"
REPO = "backrestrepo/bench-backrest-shared-repo"


def wal_key(segno: int) -> str:
    name = segment_name(1, segno, DEFAULT_SEGMENT_SIZE)
    sha = hashlib.sha1(name.encode()).hexdigest()
    return f"{REPO}/archive/db/15-1/{name[:16]}/{name}-{sha}.gz"


def fill(backend: object, bucket: str, count: int) -> None:
    backend.create_bucket(bucket, "us-east-1")  # type: ignore[attr-defined]
    archive_info = (DATA / "archive.info").read_bytes()
    backup_info = (DATA / "backup.info").read_bytes()
    for key, body in (
        (f"{REPO}/archive/db/archive.info", archive_info),
        (f"{REPO}/archive/db/archive.info.copy", archive_info),
        (f"{REPO}/backup/db/backup.info", backup_info),
        (f"{REPO}/backup/db/backup.info.copy", backup_info),
    ):
        backend.put_object(bucket, key, body)  # type: ignore[attr-defined]
    for segno in range(1, count + 1):
        backend.put_object(bucket, wal_key(segno), b"wal")  # type: ignore[attr-defined]


async def measure(endpoint: str, bucket: str, backend: object, count: int) -> dict[str, object]:
    target = RepoTarget(
        storage="s3",
        bucket=bucket,
        path="/" + REPO,
        endpoint=endpoint,
        region="us-east-1",
        uri_style="path",
        verify=False,
        access_key="bench",
        secret_key="bench",
    )

    async def locate() -> RepoTarget:
        return target

    src = RepoSource(locate)  # type: ignore[arg-type]
    first = await src.poll()
    first_requests = src.last_poll_requests
    steady = []
    for _ in range(5):
        await src.poll()
        steady.append(src.last_poll_requests)
    for segno in range(count + 1, count + 4):
        backend.put_object(bucket, wal_key(segno), b"wal")  # type: ignore[attr-defined]
    t0 = time.perf_counter()
    state = await src.poll()
    poll_s = time.perf_counter() - t0
    after_new = src.last_poll_requests
    await src.close()
    newest = state.newest_segments[-1].name if state.newest_segments else None
    return {
        "first": first_requests,
        "steady": steady,
        "new": after_new,
        "poll_ms": poll_s * 1000,
        "newest": newest,
        "reachable": first.reachable,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 100_000])
    args = ap.parse_args()
    import logging

    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    print(
        f"{'segments':>9}  {'first poll':>10}  {'steady polls':>16}  {'3 new':>5}  "
        f"{'naive/poll':>10}  {'poll ms':>7}"
    )
    try:
        for count in args.sizes:
            bucket = f"bench-{count}"
            t0 = time.perf_counter()
            fill(backend, bucket, count)
            filled = time.perf_counter() - t0
            res = asyncio.run(measure(endpoint, bucket, backend, count))
            assert res["reachable"], res
            assert res["newest"] == segment_name(1, count + 3, DEFAULT_SEGMENT_SIZE), res
            naive = math.ceil((count + 7) / 1000) + 2  # list every page, get both info files
            steady = ",".join(str(n) for n in res["steady"])  # type: ignore[attr-defined]
            print(
                f"{count:>9}  {res['first']:>10}  {steady:>16}  {res['new']:>5}  {naive:>10}  "
                f"{res['poll_ms']:>7.1f}   (bucket filled in {filled:.0f} s)"
            )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
