"""A damaged ``archive.info`` or ``backup.info`` answer, served by the object store's fault stage
(``corrupt``: a proxy that flips a byte of the body): the repo source shows the file unreadable,
with the reason, while the fault lasts, and reads the whole file again once it is over.

The stage fixes up the damaged answer's ETag; a proxy that passes the stored object's ETag along
instead is emulated by re-tagging each answer with the stored ETag (a HEAD). With the source
keeping a damaged answer's tag, that proxy would make every later poll a ``304`` about the
damaged bytes, for ever.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Iterator
from typing import Any

import pytest

from ivytui.domain.model import RepoState
from ivytui.sandbox import control
from ivytui.sources.storage import RepoSource, RepoTarget
from ivytui.sources.storage import s3 as s3_store
from tests.conftest import RunningWorld, start_world

pytestmark = pytest.mark.world

FAULT_SECONDS = 5
WAIT = 30.0  # the bound on waiting for the fault to end
FAKE_ROOT = "ivytui-test/repo-corrupt/"
FILES = ("archive.info", "backup.info")


@pytest.fixture(scope="module")
def cw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningWorld]:
    directory = tmp_path_factory.mktemp("repo-corrupt")
    w = start_world(directory, with_standby=False)
    try:
        yield w
    finally:
        control.down(directory)


@pytest.fixture(autouse=True)
def cleared(cw: RunningWorld) -> Iterator[None]:
    control.storage_fault_clear(cw.dir)
    yield
    control.storage_fault_clear(cw.dir)


def _source(world: RunningWorld, path: str | None = None) -> RepoSource:
    s3 = world.state["s3"]
    target = RepoTarget(
        storage="s3",
        bucket=s3["bucket"],
        path=path or s3["repo_path"],
        endpoint=s3["endpoint"],
        region=s3["region"],
        uri_style="path",
        verify=False,
        access_key=s3["access_key"],
        secret_key=s3["secret_key"],
        origin="the test",
    )

    async def locate() -> RepoTarget:
        return target

    return RepoSource(locate)


def _info_key(world: RunningWorld, name: str, root: str | None = None) -> str:
    folder = "archive" if name == "archive.info" else "backup"
    return f"{root or world.repo_prefix()}{folder}/db/{name}"


def _parsed(state: RepoState, name: str) -> Any:
    return state.archive_info if name == "archive.info" else state.backup_info


def _error(repo: RepoSource, state: RepoState, name: str) -> str | None:
    """The file's error: archive.info's is the state's ``info_error``, backup.info's is kept on
    the source (``RepoState`` has no field for it)."""
    return state.info_error if name == "archive.info" else repo.backup_info_error


def _assert_unreadable(repo: RepoSource, state: RepoState, name: str) -> None:
    assert state.reachable, state.unreachable_reason
    assert _parsed(state, name) is None  # neither the damaged parse nor an older good one
    error = _error(repo, state, name)
    assert error is not None
    assert f"{name} line " in error and "backrest-checksum" in error, error
    if name == "backup.info":
        assert state.info_error is None and state.archive_info is not None


def _assert_good(repo: RepoSource, state: RepoState, name: str, good: Any) -> None:
    assert state.reachable, state.unreachable_reason
    assert _error(repo, state, name) is None
    assert state.info_error is None
    assert _parsed(state, name) == good


def _arm(world: RunningWorld, name: str, **where: Any) -> str:
    armed = control.storage_fault_arm(
        world.dir, fault="corrupt", suffix=name, copy=True, duration=FAULT_SECONDS, **where
    )
    return str(armed["id"])


async def _fault_over(world: RunningWorld, fault_id: str) -> dict[str, Any]:
    """Wait (at most :data:`WAIT` seconds) until the fault has ended; the fault as it ended."""
    deadline = time.monotonic() + WAIT
    while True:
        faults = await asyncio.to_thread(control.storage_faults, world.dir)
        fault = next(f for f in faults if f["id"] == fault_id)
        if not fault["active"]:
            return fault
        assert time.monotonic() < deadline, f"fault {fault_id} still active after {WAIT} s"
        await asyncio.sleep(0.2)


Get = tuple[str, str | None, bool]
"""One GET the source made: the key, the tag it sent, whether a body came back."""


def _record_gets(
    world: RunningWorld, monkeypatch: pytest.MonkeyPatch, *, stored_etag: bool
) -> list[Get]:
    """The source's GETs, recorded; with ``stored_etag``, every answer with a body carries the
    stored object's ETag, as from a proxy that damages the body and passes the origin's headers
    along."""
    client = world.s3_client()
    bucket = world.state["s3"]["bucket"]
    real_get = s3_store._S3Store.get
    gets: list[Get] = []

    async def get(self: Any, key: str, tag: str | None) -> Any:
        got = await real_get(self, key, tag)
        gets.append((key, tag, got.body is not None))
        if got.body is not None and stored_etag:
            head = await asyncio.to_thread(client.head_object, Bucket=bucket, Key=key)
            got = dataclasses.replace(got, tag=head["ETag"])
        return got

    monkeypatch.setattr(s3_store._S3Store, "get", get)
    return gets


def _of(gets: list[Get], key: str) -> list[Get]:
    return [g for g in gets if g[0] in (key, key + ".copy")]


@pytest.mark.parametrize("proxy", ["fresh-etag", "stored-etag"])
@pytest.mark.parametrize("name", FILES)
async def test_a_damaged_answer_is_unreadable_until_the_fault_ends(
    cw: RunningWorld, monkeypatch: pytest.MonkeyPatch, name: str, proxy: str
) -> None:
    reference = _source(cw)
    try:
        good = _parsed(await reference.poll(), name)
    finally:
        await reference.close()
    assert good is not None
    key = _info_key(cw, name)
    gets = _record_gets(cw, monkeypatch, stored_etag=proxy == "stored-etag")

    repo = _source(cw)
    try:
        fault_id = _arm(cw, name)
        during = await repo.poll()
        again = await repo.poll()
        _assert_unreadable(repo, during, name)
        _assert_unreadable(repo, again, name)
        assert _error(repo, again, name) == _error(repo, during, name)
        # A damaged answer keeps no tag: each poll fetches the file in full.
        assert _of(gets, key) == [(key, None, True), (key, None, True)]
        await _fault_over(cw, fault_id)

        gets.clear()
        after = await repo.poll()
        _assert_good(repo, after, name, good)
        assert _of(gets, key) == [(key, None, True)]
        gets.clear()
        steady = await repo.poll()
        _assert_good(repo, steady, name, good)
        [(_, tag, body)] = _of(gets, key)
        assert tag is not None and not body  # a good answer's tag is kept: "not modified"
    finally:
        await repo.close()


@pytest.fixture(scope="module")
def fake_root(cw: RunningWorld) -> str:
    """A repo beside the world's, holding copies of its info files (and nothing else), which
    a test may rewrite, and damage, without disturbing pgBackRest."""
    client = cw.s3_client()
    bucket = cw.state["s3"]["bucket"]
    for name in FILES:
        body = client.get_object(Bucket=bucket, Key=_info_key(cw, name))["Body"].read()
        for suffix in ("", ".copy"):
            key = _info_key(cw, name, FAKE_ROOT) + suffix
            client.put_object(Bucket=bucket, Key=key, Body=body)
    return FAKE_ROOT


@pytest.mark.parametrize("name", FILES)
async def test_a_damaged_answer_does_not_silently_replace_a_good_copy(
    cw: RunningWorld, monkeypatch: pytest.MonkeyPatch, fake_root: str, name: str
) -> None:
    client = cw.s3_client()
    bucket = cw.state["s3"]["bucket"]
    key = _info_key(cw, name, fake_root)
    gets = _record_gets(cw, monkeypatch, stored_etag=False)
    repo = _source(cw, path=f"/{fake_root.rstrip('/')}")
    try:
        first = await repo.poll()
        good = _parsed(first, name)
        assert good is not None and _error(repo, first, name) is None
        # The file changes (one more blank line: the same contents, a new ETag), and the
        # answer that brings the change is damaged.
        body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        client.put_object(Bucket=bucket, Key=key, Body=body + b"\n")
        fault_id = _arm(cw, name, prefix=fake_root)
        during = await repo.poll()
        _assert_unreadable(repo, during, name)
        await _fault_over(cw, fault_id)
        gets.clear()
        after = await repo.poll()
        _assert_good(repo, after, name, good)
        assert _of(gets, key) == [(key, None, True)]
    finally:
        await repo.close()
