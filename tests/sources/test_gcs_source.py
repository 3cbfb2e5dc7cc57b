"""The repo source on GCS, through gcloud-aio-storage, against a small JSON-API stand-in."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp import web

from ivytui.domain.walname import segment_name
from ivytui.sources.storage import RepoSource, RepoTarget, gcs_api_root

ROOT = "backrestrepo/hippo-backrest-shared-repo/"
DATA = Path(__file__).parent.parent / "domain" / "data"


@dataclass
class FakeGcs:
    """Objects in one bucket, served the way the GCS JSON API serves them."""

    bucket: str = "hippo"
    objects: dict[str, tuple[bytes, int]] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    generation: int = 0
    damaged: set[str] = field(default_factory=set)
    """Objects whose next download comes damaged (one byte flipped), the generation unchanged."""

    def put(self, name: str, body: bytes) -> None:
        self.generation += 1
        self.objects[name] = (body, self.generation)

    def _meta(self, name: str) -> dict[str, str]:
        body, generation = self.objects[name]
        return {
            "kind": "storage#object",
            "name": name,
            "bucket": self.bucket,
            "size": str(len(body)),
            "generation": str(generation),
            "updated": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        }

    async def list(self, request: web.Request) -> web.Response:
        self.requests.append(f"list {request.query_string}")
        if request.match_info["bucket"] != self.bucket:
            return web.json_response({"error": {"code": 404, "message": "Not Found"}}, status=404)
        q = request.query
        prefix, delimiter = q.get("prefix", ""), q.get("delimiter")
        start = q.get("pageToken") or q.get("startOffset") or ""
        limit = int(q.get("maxResults", "1000"))
        items: list[dict[str, str]] = []
        prefixes: list[str] = []
        last = ""
        for name in sorted(self.objects):
            if (
                not name.startswith(prefix)
                or name < start
                or (q.get("pageToken") and name == start)
            ):
                continue
            rest = name[len(prefix) :]
            if delimiter and delimiter in rest:
                folder = prefix + rest.split(delimiter, 1)[0] + delimiter
                if folder not in prefixes:
                    prefixes.append(folder)
                last = name
                continue
            if len(items) >= limit:
                return web.json_response(
                    {"items": items, "prefixes": prefixes, "nextPageToken": last}
                )
            items.append(self._meta(name))
            last = name
        return web.json_response({"items": items, "prefixes": prefixes})

    async def get(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        self.requests.append(f"get {name} {request.query.get('alt')}")
        if request.match_info["bucket"] != self.bucket or name not in self.objects:
            return web.json_response(
                {"error": {"code": 404, "message": "No such object"}}, status=404
            )
        if request.query.get("alt") == "media":
            body = self.objects[name][0]
            if name in self.damaged:
                self.damaged.discard(name)
                middle = len(body) // 2
                body = body[:middle] + bytes([body[middle] ^ 0xFF]) + body[middle + 1 :]
            return web.Response(body=body)
        return web.json_response(self._meta(name))


@pytest.fixture
async def fake_gcs(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[FakeGcs, str]]:
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    fake = FakeGcs()
    app = web.Application()
    app.router.add_get("/storage/v1/b/{bucket}/o", fake.list)
    app.router.add_get("/storage/v1/b/{bucket}/o/{name:.+}", fake.get)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield fake, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def _segment(fake: FakeGcs, segno: int, timeline: int = 1) -> str:
    name = segment_name(timeline, segno)
    sha = hashlib.sha1(name.encode()).hexdigest()
    fake.put(f"{ROOT}archive/db/15-1/{name[:16]}/{name}-{sha}.gz", b"wal")
    return name


def _source(endpoint: str, bucket: str = "hippo") -> RepoSource:
    target = RepoTarget(storage="gcs", bucket=bucket, path=f"/{ROOT}", endpoint=endpoint)

    async def locate() -> RepoTarget:
        return target

    return RepoSource(locate)


async def test_gcs_repo_is_read_incrementally(fake_gcs: tuple[FakeGcs, str]) -> None:
    fake, endpoint = fake_gcs
    assert gcs_api_root(endpoint) == (endpoint, True)
    fake.put(f"{ROOT}archive/db/archive.info", (DATA / "archive.info").read_bytes())
    fake.put(f"{ROOT}backup/db/backup.info", (DATA / "backup.info").read_bytes())
    for segno in range(1, 301):
        _segment(fake, segno)
    repo = _source(endpoint)
    try:
        first = await repo.poll()
        assert first.reachable, first.unreachable_reason
        assert first.url == f"gs://hippo/{ROOT.rstrip('/')}"
        assert (
            first.archive_info is not None and first.archive_info.system_id == 7712122409858461008
        )
        assert first.backup_info is not None and first.backup_info.backups
        assert first.newest_on(1) is not None
        assert first.newest_on(1).name == segment_name(1, 300)  # type: ignore[union-attr]
        while not repo.count_complete:
            await repo.poll()
        counted = await repo.poll()
        assert counted.segment_count == 300
        steady = repo.last_poll_requests
        assert steady == 3  # two generation checks and one listing
        newer = _segment(fake, 301)
        fake.put(f"{ROOT}archive/db/15-1/00000002.history", b"1\t0/12D000000\tno recovery target\n")
        promoted = _segment(fake, 302, timeline=2)
        grown = await repo.poll()
        assert grown.newest_on(1).name == newer  # type: ignore[union-attr]
        assert grown.newest_on(2).name == promoted  # type: ignore[union-attr]
        assert grown.history_timelines == (2,)
        assert grown.segment_count == 302
        assert [s.name for s in repo.new_segments] == [newer, promoted]
        # Two timelines now: one listing each, still a constant.
        await repo.poll()
        assert repo.last_poll_requests == 4
    finally:
        await repo.close()


async def test_gcs_wrong_bucket_is_unreachable(fake_gcs: tuple[FakeGcs, str]) -> None:
    _, endpoint = fake_gcs
    repo = _source(endpoint, bucket="nosuch")
    try:
        state = await repo.poll()
    finally:
        await repo.close()
    assert not state.reachable
    assert state.unreachable_reason is not None
    assert state.unreachable_reason == "bucket nosuch does not exist (404)"


@pytest.mark.parametrize("name", ["archive/db/archive.info", "backup/db/backup.info"])
async def test_gcs_damaged_download_is_fetched_again(
    fake_gcs: tuple[FakeGcs, str], name: str
) -> None:
    """The generation does not change when a download comes damaged: the next poll must not
    take it for "unchanged", but download the file again."""
    fake, endpoint = fake_gcs
    fake.put(f"{ROOT}archive/db/archive.info", (DATA / "archive.info").read_bytes())
    fake.put(f"{ROOT}backup/db/backup.info", (DATA / "backup.info").read_bytes())
    _segment(fake, 1)
    fake.damaged.add(ROOT + name)
    repo = _source(endpoint)
    try:
        damaged = await repo.poll()
        error = damaged.info_error if "archive" in name else repo.backup_info_error
        assert error is not None and f"{name} line " in error and "backrest-checksum" in error
        assert (damaged.archive_info if "archive" in name else damaged.backup_info) is None
        fake.requests.clear()
        whole = await repo.poll()
        assert f"get {ROOT}{name} media" in fake.requests
        assert whole.info_error is None and repo.backup_info_error is None
        assert whole.archive_info is not None and whole.backup_info is not None
        fake.requests.clear()
        await repo.poll()
        assert not [r for r in fake.requests if r.endswith(" media")]  # now unchanged
    finally:
        await repo.close()
