"""The object store's fault stage (``/_sandbox/faults/s3``), seen with boto3, aioboto3, raw
HTTPS and pgBackRest: each fault's answer, its end by count or duration, clear, and that the
stored objects stay intact.

Every test works on keys under its own prefix (``sandbox-faults/<test>/``) so the world's own
traffic (pgBackRest pushing WAL, reading ``archive.info``) never takes a fault meant for the
test, except the archive-push test, which aims at that traffic on purpose.
"""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import re
import ssl
import time
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from ivytui.errors import SandboxError
from ivytui.sandbox import control
from tests.conftest import RunningWorld, start_world

pytestmark = pytest.mark.world

NO_RETRIES = {"total_max_attempts": 1, "mode": "standard"}
WAIT = 60.0  # the bound on waiting for a condition


@pytest.fixture(scope="module")
def fw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningWorld]:
    directory = tmp_path_factory.mktemp("storage-faults")
    w = start_world(directory, with_standby=False)
    try:
        yield w
    finally:
        control.down(directory)


@pytest.fixture(autouse=True)
def cleared(fw: RunningWorld) -> Iterator[None]:
    control.storage_fault_clear(fw.dir)
    yield
    control.storage_fault_clear(fw.dir)


@pytest.fixture
def prefix(request: pytest.FixtureRequest) -> str:
    return "sandbox-faults/" + re.sub(r"[^A-Za-z0-9_-]+", "-", request.node.name) + "/"


def s3(w: RunningWorld, retries: dict[str, Any] | None = None) -> Any:
    """A boto3 client that shows each answer as it is (no retries), unless told otherwise."""
    import boto3

    s = w.state["s3"]
    return boto3.client(
        "s3",
        endpoint_url=s["endpoint"],
        aws_access_key_id=s["access_key"],
        aws_secret_access_key=s["secret_key"],
        region_name=s["region"],
        verify=False,
        config=Config(retries=retries or NO_RETRIES),
    )


def aio_s3(w: RunningWorld) -> Any:
    import aioboto3
    from aiobotocore.config import AioConfig

    s = w.state["s3"]
    return aioboto3.Session().client(
        "s3",
        endpoint_url=s["endpoint"],
        aws_access_key_id=s["access_key"],
        aws_secret_access_key=s["secret_key"],
        region_name=s["region"],
        verify=False,
        config=AioConfig(retries=NO_RETRIES),
    )


def bucket(w: RunningWorld) -> str:
    return str(w.state["s3"]["bucket"])


def error_of(exc: pytest.ExceptionInfo[ClientError]) -> tuple[int, str, str]:
    r = exc.value.response
    return r["ResponseMetadata"]["HTTPStatusCode"], r["Error"]["Code"], r["Error"]["Message"]


def copy_in(w: RunningWorld, client: Any, repo_key: str, to: str) -> bytes:
    """Copy a repo object (``archive/db/archive.info``…) to ``to``; its bytes."""
    client.copy_object(
        Bucket=bucket(w),
        Key=to,
        CopySource={"Bucket": bucket(w), "Key": w.repo_prefix() + repo_key},
    )
    data: bytes = client.get_object(Bucket=bucket(w), Key=to)["Body"].read()
    assert data
    return data


def fault_by_id(w: RunningWorld, fid: str) -> dict[str, Any]:
    (found,) = [f for f in control.storage_faults(w.dir) if f["id"] == fid]
    return found


def injected_by(w: RunningWorld, fid: str, since: int = 0) -> list[dict[str, Any]]:
    entries = control.storage_log(w.dir, since=since, injected_only=True)["entries"]
    return [
        e
        for e in entries
        if (e["injected"] or {}).get("id") == fid or fid in (e["delayed"] or {}).get("ids", [])
    ]


def wait_for(what: str, check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not check():
        assert time.monotonic() < deadline, f"{what}: not within {WAIT:.0f} s"
        time.sleep(0.1)


async def await_for(what: str, check: Callable[[], Awaitable[bool]]) -> None:
    deadline = time.monotonic() + WAIT
    while not await check():
        assert time.monotonic() < deadline, f"{what}: not within {WAIT:.0f} s"
        await asyncio.sleep(0.1)


def raw_request(w: RunningWorld, method: str, path: str, body: bytes = b"") -> tuple[Any, bytes]:
    """One unsigned HTTPS request: the fault stage answers before S3 looks at the signature."""
    url = urllib.parse.urlsplit(w.state["s3"]["endpoint"])
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    conn = http.client.HTTPSConnection(url.hostname or "127.0.0.1", url.port, context=ctx)
    try:
        conn.request(method, path, body=body or None)
        resp = conn.getresponse()
        return resp, resp.read()
    finally:
        conn.close()


# --------------------------------------------------------------------------- error answers


@pytest.mark.parametrize(
    ("fault", "method", "status", "reason", "code", "message"),
    [
        ("slowdown", "PUT", 503, "Slow Down", "SlowDown", "Please reduce your request rate."),
        (
            "internal_error",
            "GET",
            500,
            "Internal Server Error",
            "InternalError",
            "We encountered an internal error. Please try again.",
        ),
        ("access_denied", "LIST", 403, "Forbidden", "AccessDenied", "Access Denied"),
    ],
)
def test_error_answers_carry_s3s_xml_body_and_headers(
    fw: RunningWorld,
    prefix: str,
    fault: str,
    method: str,
    status: int,
    reason: str,
    code: str,
    message: str,
) -> None:
    armed = control.storage_fault_arm(fw.dir, fault=fault, method=method, prefix=prefix, count=1)
    assert armed["active"] and armed["remaining"] == 1 and armed["method"] == method
    if method == "LIST":
        path = f"/{bucket(fw)}?list-type=2&prefix={urllib.parse.quote(prefix)}"
        resp, body = raw_request(fw, "GET", path)
    else:
        resp, body = raw_request(fw, method, f"/{bucket(fw)}/{prefix}raw", b"x" * 4096)
    assert (resp.status, resp.reason) == (status, reason)
    assert resp.getheader("Content-Type") == "application/xml"
    assert int(resp.getheader("Content-Length")) == len(body)
    assert body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<Error>')
    root = ET.fromstring(body)
    assert root.tag == "Error"
    assert [child.tag for child in root] == ["Code", "Message", "RequestId", "HostId"]
    assert root.findtext("Code") == code
    assert root.findtext("Message") == message
    assert root.findtext("RequestId") == resp.getheader("x-amz-request-id")
    assert re.fullmatch(r"[0-9A-F]{16}", root.findtext("RequestId") or "")
    assert root.findtext("HostId") == resp.getheader("x-amz-id-2")
    (entry,) = injected_by(fw, armed["id"])
    assert entry["status"] == status and entry["op"] == method
    assert entry["injected"] == {"id": armed["id"], "fault": fault, "code": code}
    assert fault_by_id(fw, armed["id"])["ended"] == "count"


def test_slowdown_on_the_next_puts_of_a_prefix_then_they_pass(
    fw: RunningWorld, prefix: str
) -> None:
    c = s3(fw)
    c.put_object(Bucket=bucket(fw), Key=prefix + "old", Body=b"old")
    armed = control.storage_fault_arm(
        fw.dir, fault="slowdown", method="PUT", prefix=prefix, count=2
    )
    assert c.get_object(Bucket=bucket(fw), Key=prefix + "old")["Body"].read() == b"old"  # a GET
    c.put_object(Bucket=bucket(fw), Key="sandbox-faults/elsewhere", Body=b"x")  # another prefix
    for body in (b"one", b"two"):
        with pytest.raises(ClientError) as exc:
            c.put_object(Bucket=bucket(fw), Key=prefix + "new", Body=body)
        assert error_of(exc) == (503, "SlowDown", "Please reduce your request rate.")
        meta = exc.value.response["ResponseMetadata"]
        assert re.fullmatch(r"[0-9A-F]{16}", meta["RequestId"])
        assert meta["HostId"]
        with pytest.raises(ClientError) as missing:  # nothing was stored
            c.head_object(Bucket=bucket(fw), Key=prefix + "new")
        assert error_of(missing)[0] == 404
    c.put_object(Bucket=bucket(fw), Key=prefix + "new", Body=b"three")
    assert c.get_object(Bucket=bucket(fw), Key=prefix + "new")["Body"].read() == b"three"
    ended = fault_by_id(fw, armed["id"])
    assert (ended["fired"], ended["active"], ended["ended"], ended["remaining"]) == (
        2,
        False,
        "count",
        0,
    )
    assert [(e["op"], e["key"], e["status"]) for e in injected_by(fw, armed["id"])] == [
        ("PUT", prefix + "new", 503)
    ] * 2


def test_internal_error_on_a_get_of_archive_info_then_the_object_is_intact(
    fw: RunningWorld, prefix: str
) -> None:
    c = s3(fw)
    key = prefix + "archive/db/archive.info"
    original = copy_in(fw, c, "archive/db/archive.info", key)
    armed = control.storage_fault_arm(
        fw.dir, fault="internal_error", method="GET", suffix=key, count=1
    )
    assert c.head_object(Bucket=bucket(fw), Key=key)["ContentLength"] == len(original)  # a HEAD
    with pytest.raises(ClientError) as exc:
        c.get_object(Bucket=bucket(fw), Key=key)
    assert error_of(exc) == (
        500,
        "InternalError",
        "We encountered an internal error. Please try again.",
    )
    assert c.get_object(Bucket=bucket(fw), Key=key)["Body"].read() == original
    assert fault_by_id(fw, armed["id"])["ended"] == "count"


def test_a_failed_head_has_the_status_and_no_body(fw: RunningWorld, prefix: str) -> None:
    c = s3(fw)
    c.put_object(Bucket=bucket(fw), Key=prefix + "o", Body=b"o")
    control.storage_fault_arm(fw.dir, fault="slowdown", method="HEAD", prefix=prefix, count=1)
    resp, body = raw_request(fw, "HEAD", f"/{bucket(fw)}/{prefix}o")
    assert (resp.status, body) == (503, b"")
    assert resp.getheader("x-amz-request-id")
    assert c.head_object(Bucket=bucket(fw), Key=prefix + "o")["ContentLength"] == 1


def test_boto3_retries_ride_through_internal_errors(fw: RunningWorld, prefix: str) -> None:
    c = s3(fw, retries={"total_max_attempts": 4, "mode": "standard"})
    c.put_object(Bucket=bucket(fw), Key=prefix + "o", Body=b"payload")
    armed = control.storage_fault_arm(
        fw.dir, fault="internal_error", method="GET", prefix=prefix, count=2
    )
    got = c.get_object(Bucket=bucket(fw), Key=prefix + "o")
    assert got["Body"].read() == b"payload"
    assert got["ResponseMetadata"]["RetryAttempts"] == 2
    assert [e["status"] for e in injected_by(fw, armed["id"])] == [500, 500]


# --------------------------------------------------------------------------- listings


def test_access_denied_on_listings_for_a_count(fw: RunningWorld, prefix: str) -> None:
    c = s3(fw)
    c.put_object(Bucket=bucket(fw), Key=prefix + "a", Body=b"a")
    armed = control.storage_fault_arm(fw.dir, fault="access_denied", prefix=prefix, count=2)
    assert armed["method"] == "LIST"
    assert c.get_object(Bucket=bucket(fw), Key=prefix + "a")["Body"].read() == b"a"  # not a list
    other = c.list_objects_v2(Bucket=bucket(fw), Prefix=fw.repo_prefix(), Delimiter="/")
    assert other["ResponseMetadata"]["HTTPStatusCode"] == 200  # another prefix
    for _ in range(2):
        with pytest.raises(ClientError) as exc:
            c.list_objects_v2(Bucket=bucket(fw), Prefix=prefix)
        assert error_of(exc) == (403, "AccessDenied", "Access Denied")
    listed = c.list_objects_v2(Bucket=bucket(fw), Prefix=prefix)
    assert [o["Key"] for o in listed["Contents"]] == [prefix + "a"]
    assert fault_by_id(fw, armed["id"])["ended"] == "count"


async def test_access_denied_on_listings_for_a_duration(fw: RunningWorld, prefix: str) -> None:
    async with aio_s3(fw) as c:
        await c.put_object(Bucket=bucket(fw), Key=prefix + "a", Body=b"a")
        armed = control.storage_fault_arm(fw.dir, fault="access_denied", prefix=prefix, duration=5)
        assert armed["count"] is None and armed["seconds_left"] == pytest.approx(5, abs=1)
        denied: list[tuple[int, str, str]] = []

        async def listed() -> bool:
            try:
                got = await c.list_objects_v2(Bucket=bucket(fw), Prefix=prefix)
            except ClientError as exc:
                r = exc.response
                denied.append(
                    (
                        r["ResponseMetadata"]["HTTPStatusCode"],
                        r["Error"]["Code"],
                        r["Error"]["Message"],
                    )
                )
                return False
            assert [o["Key"] for o in got["Contents"]] == [prefix + "a"]
            return True

        assert not await listed()
        await await_for("a listing after the fault's duration", listed)
    assert set(denied) == {(403, "AccessDenied", "Access Denied")}
    ended = fault_by_id(fw, armed["id"])
    assert (ended["active"], ended["ended"], ended["fired"]) == (False, "duration", len(denied))


# --------------------------------------------------------------------------- spoiled bodies


def test_truncated_archive_info_and_its_copy_then_whole_again(
    fw: RunningWorld, prefix: str
) -> None:
    c = s3(fw)
    names = ["archive/db/archive.info", "archive/db/archive.info.copy"]
    keys = [prefix + name for name in names]
    originals = [copy_in(fw, c, name, prefix + name) for name in names]
    armed = control.storage_fault_arm(
        fw.dir, fault="truncate", prefix=prefix, suffix="archive.info", copy=True, count=2, keep=40
    )
    assert (armed["method"], armed["keep"]) == ("GET", 40)
    for key, original in zip(keys, originals, strict=True):
        got = c.get_object(Bucket=bucket(fw), Key=key)
        sent = got["Body"].read()
        assert sent == original[:40]
        assert got["ContentLength"] == len(sent) == 40
        assert got["ETag"] == f'"{hashlib.md5(sent).hexdigest()}"'  # consistent with what is sent
        head = c.head_object(Bucket=bucket(fw), Key=key)  # HEAD shows the stored object
        assert head["ContentLength"] == len(original)
        assert head["ETag"] == f'"{hashlib.md5(original).hexdigest()}"'
    for key, original in zip(keys, originals, strict=True):
        got = c.get_object(Bucket=bucket(fw), Key=key)
        assert got["Body"].read() == original
        assert got["ETag"] == f'"{hashlib.md5(original).hexdigest()}"'
    listed = {o["Key"]: o for o in c.list_objects_v2(Bucket=bucket(fw), Prefix=prefix)["Contents"]}
    for key, original in zip(keys, originals, strict=True):
        assert listed[key]["Size"] == len(original)
    assert [e["key"] for e in injected_by(fw, armed["id"])] == keys


async def test_corrupted_backup_info_for_a_duration_keeps_the_stored_object(
    fw: RunningWorld, prefix: str
) -> None:
    key = prefix + "backup/db/backup.info"
    original = copy_in(fw, s3(fw), "backup/db/backup.info", key)
    stored_etag = f'"{hashlib.md5(original).hexdigest()}"'
    armed = control.storage_fault_arm(
        fw.dir, fault="corrupt", prefix=prefix, suffix="backup.info", duration=5, flip=4
    )
    async with aio_s3(fw) as c:
        got = await c.get_object(Bucket=bucket(fw), Key=key)
        async with got["Body"] as stream:
            sent = await stream.read()
        assert len(sent) == len(original) == got["ContentLength"]
        flipped = [i for i, (a, b) in enumerate(zip(sent, original, strict=True)) if a != b]
        assert len(flipped) == 4
        assert all(sent[i] == original[i] ^ 0xFF for i in flipped)
        assert got["ETag"] == f'"{hashlib.md5(sent).hexdigest()}"' != stored_etag
        head = await c.head_object(Bucket=bucket(fw), Key=key)
        assert head["ETag"] == stored_etag

        async def whole() -> bool:
            got = await c.get_object(Bucket=bucket(fw), Key=key)
            async with got["Body"] as stream:
                data: bytes = await stream.read()
            return data == original and got["ETag"] == stored_etag

        await await_for("backup.info served whole after the fault's duration", whole)
        listed = await c.list_objects_v2(Bucket=bucket(fw), Prefix=prefix)
        assert [(o["Key"], o["ETag"]) for o in listed["Contents"]] == [(key, stored_etag)]
    ended = fault_by_id(fw, armed["id"])
    assert (ended["ended"], ended["flip"]) == ("duration", 4)
    assert ended["fired"] >= 1


# --------------------------------------------------------------------------- delays


def test_delay_holds_the_next_requests_then_ends(fw: RunningWorld, prefix: str) -> None:
    c = s3(fw)
    c.put_object(Bucket=bucket(fw), Key=prefix + "o", Body=b"o")
    since = control.storage_log(fw.dir)["next"]
    armed = control.storage_fault_arm(
        fw.dir, fault="delay", delay=1.0, method="HEAD", prefix=prefix, count=2
    )
    for _ in range(2):
        started = time.monotonic()
        assert c.head_object(Bucket=bucket(fw), Key=prefix + "o")["ContentLength"] == 1
        assert time.monotonic() - started >= 1.0  # held at least the delay
    c.head_object(Bucket=bucket(fw), Key=prefix + "o")
    heads = [
        e
        for e in control.storage_log(fw.dir, since=since)["entries"]
        if e["op"] == "HEAD" and e["key"] == prefix + "o"
    ]
    assert [e["delayed"] for e in heads] == [{"ids": [armed["id"]], "seconds": 1.0}] * 2 + [None]
    assert [(e["status"], e["injected"]) for e in heads] == [(200, None)] * 3
    assert fault_by_id(fw, armed["id"])["ended"] == "count"


async def test_clear_releases_a_delayed_request_and_drops_the_faults(
    fw: RunningWorld, prefix: str
) -> None:
    async with aio_s3(fw) as c:
        await c.put_object(Bucket=bucket(fw), Key=prefix + "o", Body=b"o")
        armed = control.storage_fault_arm(
            fw.dir, fault="delay", delay=300, method="GET", prefix=prefix, duration=600
        )
        assert armed["delay"] == 300

        async def read() -> bytes:
            got = await c.get_object(Bucket=bucket(fw), Key=prefix + "o")
            async with got["Body"] as stream:
                data: bytes = await stream.read()
            return data

        task = asyncio.ensure_future(read())

        async def held() -> bool:
            return bool(fault_by_id(fw, armed["id"])["fired"])

        await await_for("the GET held by the delay", held)
        assert not task.done()
        assert control.storage_fault_clear(fw.dir) == {"cleared": 1}
        assert await asyncio.wait_for(task, WAIT) == b"o"
    assert control.storage_faults(fw.dir) == []
    (entry,) = injected_by(fw, armed["id"])
    assert (entry["status"], entry["delayed"]["seconds"]) == (200, 300)


def test_clear_drops_every_armed_fault(fw: RunningWorld, prefix: str) -> None:
    c = s3(fw)
    ids = {
        control.storage_fault_arm(fw.dir, fault="slowdown", prefix=prefix, count=1000)["id"],
        control.storage_fault_arm(fw.dir, fault="access_denied", prefix=prefix, duration=600)["id"],
        control.storage_fault_arm(fw.dir, fault="corrupt", suffix="backup.info", count=1000)["id"],
    }
    assert {f["id"] for f in control.storage_faults(fw.dir) if f["active"]} == ids
    assert control.storage_fault_clear(fw.dir) == {"cleared": 3}
    assert control.storage_faults(fw.dir) == []
    c.put_object(Bucket=bucket(fw), Key=prefix + "o", Body=b"o")
    assert [o["Key"] for o in c.list_objects_v2(Bucket=bucket(fw), Prefix=prefix)["Contents"]] == [
        prefix + "o"
    ]


@pytest.mark.parametrize(
    ("form", "words"),
    [
        ({"fault": "slowdown"}, "give count"),
        ({"fault": "brownout", "count": 1}, "fault='brownout'"),
        ({"fault": "access_denied", "method": "PUT", "count": 1}, "LIST requests only"),
        ({"fault": "delay", "count": 1}, "needs delay"),
        ({"fault": "slowdown", "count": 1, "sufix": "x"}, "unknown field(s) sufix"),
        ({"fault": "corrupt", "count": 0}, "count=0"),
        ({"fault": "truncate", "count": 1, "copy": True}, "give a suffix"),
        ({"fault": "internal_error", "method": "PATCH", "count": 1}, "method='PATCH'"),
    ],
)
def test_bad_forms_are_refused(fw: RunningWorld, form: dict[str, Any], words: str) -> None:
    with pytest.raises(SandboxError, match="400") as exc:
        control.storage_fault_arm(fw.dir, **form)
    assert words in str(exc.value)
    assert control.storage_faults(fw.dir) == []


# --------------------------------------------------------------------------- pgBackRest


async def test_archive_push_retries_through_slowdown(fw: RunningWorld) -> None:
    conn = await asyncpg.connect(fw.v4_dsn)
    try:
        before = await conn.fetchrow("SELECT failed_count FROM pg_stat_archiver")
        since = control.storage_log(fw.dir)["next"]
        armed = control.storage_fault_arm(
            fw.dir,
            fault="slowdown",
            method="PUT",
            prefix=fw.repo_prefix() + "archive/db/",
            suffix=".gz",
            count=2,
        )
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS storage_fault_probe (x int);"
            " INSERT INTO storage_fault_probe VALUES (1)"
        )
        segment = await conn.fetchval("SELECT pg_walfile_name(pg_switch_wal())")

        async def archived() -> bool:
            last = await conn.fetchval("SELECT last_archived_wal FROM pg_stat_archiver")
            return last is not None and last[:24] >= segment

        await await_for(f"v4 archiving {segment}", archived)
        after = await conn.fetchrow("SELECT failed_count FROM pg_stat_archiver")
    finally:
        await conn.close()
    hit = injected_by(fw, armed["id"], since)
    assert [(e["op"], e["status"]) for e in hit] == [("PUT", 503)] * 2
    entries = control.storage_log(fw.dir, since=since)["entries"]
    for e in hit:
        assert Path(e["key"]).name.endswith(".gz")
        later = [x for x in entries if x["seq"] > e["seq"] and x["key"] == e["key"]]
        assert any(x["op"] == "PUT" and x["status"] == 200 for x in later), e["key"]
    # pgBackRest retried inside archive-push: PostgreSQL never saw the command fail.
    assert after["failed_count"] == before["failed_count"]
    assert fault_by_id(fw, armed["id"])["ended"] == "count"


# --------------------------------------------------------------------------- stop and start


def test_faults_are_armed_while_s3_is_stopped_and_apply_once_it_is_back(
    fw: RunningWorld, prefix: str
) -> None:
    c = s3(fw)
    c.put_object(Bucket=bucket(fw), Key=prefix + "o", Body=b"o")
    control.supervisor_request(fw.dir, "POST", "/_sandbox/faults/s3/stop")
    try:
        armed = control.storage_fault_arm(
            fw.dir, fault="internal_error", method="GET", prefix=prefix, count=1
        )
        assert fault_by_id(fw, armed["id"])["active"]
    finally:
        control.supervisor_request(fw.dir, "POST", "/_sandbox/faults/s3/start")
    with pytest.raises(ClientError) as exc:
        c.get_object(Bucket=bucket(fw), Key=prefix + "o")
    assert error_of(exc)[:2] == (500, "InternalError")
    assert c.get_object(Bucket=bucket(fw), Key=prefix + "o")["Body"].read() == b"o"
