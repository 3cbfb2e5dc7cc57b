"""The repo source against the world's S3 server: true values, few requests, clear failures."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from source_helpers import sandbox_post, wait_until

from ivytui.config import Config
from ivytui.domain.model import RepoState
from ivytui.domain.repoinfo import SegmentKey, parse_archive_key
from ivytui.domain.walname import segment_name
from ivytui.errors import StorageError
from ivytui.sources.hub import Hub
from ivytui.sources.storage import COUNT_PAGES_PER_POLL, RepoSource, RepoTarget
from tests.conftest import RunningWorld

pytestmark = pytest.mark.world


def target(world: RunningWorld, **changes: Any) -> RepoTarget:
    s3 = world.state["s3"]
    fields: dict[str, Any] = {
        "storage": "s3",
        "bucket": s3["bucket"],
        "path": s3["repo_path"],
        "endpoint": s3["endpoint"],
        "region": s3["region"],
        "uri_style": "path",
        "verify": False,
        "access_key": s3["access_key"],
        "secret_key": s3["secret_key"],
        "origin": "the test",
    }
    fields.update(changes)
    return RepoTarget(**fields)


def source(world: RunningWorld, **changes: Any) -> RepoSource:
    fixed = target(world, **changes)

    async def locate() -> RepoTarget:
        return fixed

    return RepoSource(locate)


def segment_keys(world: RunningWorld, prefix: str) -> list[str]:
    s3 = world.s3_client()
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=world.state["s3"]["bucket"], Prefix=prefix
    ):
        keys.extend(item["Key"] for item in page.get("Contents", ()))
    return [
        k
        for k in keys
        if isinstance(p := parse_archive_key(k, prefix), SegmentKey) and not p.partial
    ]


def newest_name(keys: list[str], prefix: str) -> str:
    names = []
    for key in keys:
        parsed = parse_archive_key(key, prefix)
        assert isinstance(parsed, SegmentKey)
        names.append(parsed.name)
    return max(names)


async def test_newest_segment_and_count_equal_a_full_boto3_listing(world: RunningWorld) -> None:
    prefix = world.repo_prefix() + "archive/db/"
    repo = source(world)
    try:
        before = segment_keys(world, prefix)
        state = await repo.poll()
        after = segment_keys(world, prefix)
    finally:
        await repo.close()
    assert state.reachable, state.unreachable_reason
    assert state.error is None and state.info_error is None
    assert state.archive_info is not None and state.archive_info.version == str(
        world.state["pg_major"]
    )
    assert state.backup_info is not None and state.backup_info.backups
    newest = state.newest_on(1)
    assert newest is not None
    # WAL keeps arriving under the load: the source's answer lies between the two listings.
    assert newest_name(before, prefix) <= newest.name <= newest_name(after, prefix)
    assert newest.key in after
    assert len(before) <= state.segment_count <= len(after)
    assert repo.count_complete
    assert repo.archive_info_text is not None and "[db]" in repo.archive_info_text


def _put_all(world: RunningWorld, items: list[tuple[str, bytes]]) -> None:
    s3 = world.s3_client()
    bucket = world.state["s3"]["bucket"]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda kv: s3.put_object(Bucket=bucket, Key=kv[0], Body=kv[1]), items))


def _segment_key(root: str, segno: int, timeline: int = 1) -> str:
    name = segment_name(timeline, segno)
    sha = hashlib.sha1(name.encode()).hexdigest()
    return f"{root}archive/db/15-1/{name[:16]}/{name}-{sha}.gz"


@pytest.fixture(scope="module")
def fake_repos(world: RunningWorld) -> Iterator[dict[str, str]]:
    """Fake repos beside the real one: 100 and 2,000 segments, and a malformed archive.info."""
    s3 = world.s3_client()
    bucket = world.state["s3"]["bucket"]
    real = s3.get_object(Bucket=bucket, Key=world.repo_prefix() + "archive/db/archive.info")
    info = real["Body"].read()
    roots = {
        "small": "ivytui-test/repo-100/",
        "large": "ivytui-test/repo-2000/",
        "malformed": "ivytui-test/repo-malformed/",
    }
    items: list[tuple[str, bytes]] = []
    for root, count in ((roots["small"], 100), (roots["large"], 2000)):
        items.append((f"{root}archive/db/archive.info", info))
        items += [(_segment_key(root, segno), b"") for segno in range(1, count + 1)]
    broken = info.replace(b'db-version="15"', b"db-version=15x").replace(
        b'db-version="16"', b"db-version=16x"
    )
    items.append((f"{roots['malformed']}archive/db/archive.info", broken))
    started = time.monotonic()
    _put_all(world, items)
    print(f"\nput {len(items)} objects in {time.monotonic() - started:.1f} s")
    yield roots


async def _steady(repo: RepoSource, polls: int = 3) -> list[int]:
    counts = []
    for _ in range(polls):
        await repo.poll()
        counts.append(repo.last_poll_requests)
    return counts


async def test_requests_per_poll_do_not_grow_with_the_archive(
    world: RunningWorld, fake_repos: dict[str, str]
) -> None:
    numbers: dict[str, dict[str, Any]] = {}
    for label, size in (("small", 100), ("large", 2000)):
        repo = source(world, path=fake_repos[label])
        try:
            started = time.perf_counter()
            first = await repo.poll()
            first_seconds = time.perf_counter() - started
            first_requests = repo.last_poll_requests
            assert first.reachable, first.unreachable_reason
            assert first.newest_on(1) is not None
            assert first.newest_on(1).name == segment_name(1, size)  # type: ignore[union-attr]
            polls = 0
            while not repo.count_complete:
                await repo.poll()
                assert repo.last_poll_requests <= 3 + COUNT_PAGES_PER_POLL
                polls += 1
                assert polls < 10
            state = await repo.poll()
            assert state.segment_count == size
            started = time.perf_counter()
            steady = await _steady(repo)
            steady_seconds = (time.perf_counter() - started) / len(steady)
            # New segments arrive: only they are listed.
            _put_all(world, [(_segment_key(fake_repos[label], size + i), b"") for i in (1, 2, 3)])
            grown = await repo.poll()
            grown_requests = repo.last_poll_requests
            assert [s.name for s in repo.new_segments] == [
                segment_name(1, size + i) for i in (1, 2, 3)
            ]
            assert grown.newest_on(1).name == segment_name(1, size + 3)  # type: ignore[union-attr]
            assert grown.segment_count == size + 3
        finally:
            await repo.close()
        numbers[label] = {
            "first": first_requests,
            "first_s": round(first_seconds, 3),
            "steady": steady,
            "steady_s": round(steady_seconds, 4),
            "grown": grown_requests,
        }
        assert max(steady) <= 3
        assert grown_requests <= 4
    print(f"\nrequests per poll: {numbers}")
    assert numbers["small"]["steady"] == numbers["large"]["steady"]
    assert numbers["large"]["first"] <= 6 + COUNT_PAGES_PER_POLL


async def test_a_malformed_archive_info_names_its_line(
    world: RunningWorld, fake_repos: dict[str, str]
) -> None:
    repo = source(world, path=fake_repos["malformed"])
    try:
        state = await repo.poll()
        again = await repo.poll()
    finally:
        await repo.close()
    assert state.reachable
    assert state.archive_info is None
    assert state.info_error is not None
    assert "archive.info line " in state.info_error and "db-version" in state.info_error
    assert again.info_error == state.info_error


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"bucket": "no-such-bucket"}, "bucket no-such-bucket does not exist"),
        ({"path": "/ivytui-test/nothing-here"}, "holds no archive/db/archive.info"),
    ],
)
async def test_a_wrong_bucket_or_path_is_unreachable_with_words(
    world: RunningWorld, changes: dict[str, str], words: str
) -> None:
    repo = source(world, **changes)
    try:
        state = await repo.poll()
    finally:
        await repo.close()
    assert not state.reachable
    assert state.error is None
    assert state.unreachable_reason is not None and words in state.unreachable_reason


async def test_a_store_that_does_not_answer_is_a_source_error() -> None:
    async def locate() -> RepoTarget:
        return RepoTarget(
            storage="s3",
            bucket="hippo",
            path="/x",
            endpoint="127.0.0.1:9",
            verify=False,
            access_key="k",
            secret_key="s",
        )

    repo = RepoSource(locate)
    try:
        with pytest.raises(StorageError, match=r"cannot connect to https://127\.0\.0\.1:9"):
            await repo.poll()
    finally:
        await repo.close()


async def test_stopping_s3_marks_only_the_repo_stale_and_it_recovers(
    world: RunningWorld, cfg: Config
) -> None:
    hub = Hub(cfg)
    await hub.start()
    try:
        await wait_until(
            lambda: hub.view.snapshot.repo.reachable and hub.view.snapshot.v4db.reachable,
            15,
            "the first reading of the repo and of v4",
        )
        good: RepoState = hub.view.snapshot.repo
        await asyncio.to_thread(sandbox_post, world, "/_sandbox/faults/s3/stop")
        stopped_at = time.time()
        await wait_until(
            lambda: hub.view.snapshot.repo.error is not None, 15, "the repo's error after the stop"
        )
        stale = hub.view.snapshot.repo
        assert stale.stale_since is not None and stale.stale_since >= stopped_at - 1
        assert stale.newest_segments == good.newest_segments or stale.newest_segments
        assert stale.archive_info == good.archive_info
        assert "repo" in (hub.view.snapshot.problem("repo") or "")
        v4_seen = hub.view.snapshot.v4db.observed_at
        await asyncio.sleep(1.0)
        snap = hub.view.snapshot
        assert snap.v4db.error is None and snap.v4db.observed_at > v4_seen
        assert snap.v5db.error is None and snap.v4.error is None and snap.v5.error is None
        assert snap.repo.error is not None
    finally:
        await asyncio.to_thread(sandbox_post, world, "/_sandbox/faults/s3/start")
    try:
        took = await wait_until(
            lambda: hub.view.snapshot.repo.error is None, 20, "the repo's recovery"
        )
        print(f"\nrepo recovered {took:.1f} s after the S3 server came back")
        recovered = hub.view.snapshot.repo
        assert recovered.reachable and recovered.stale_since is None
        texts = [e.text for e in hub.log_entries if e.source == "repo"]
        assert any("is not answering" in t for t in texts)
        assert any("answers again" in t for t in texts)
    finally:
        await hub.stop()
