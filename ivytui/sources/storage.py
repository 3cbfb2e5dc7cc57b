"""The pgBackRest repo in object storage (S3, S3-compatible, GCS), read incrementally.

Where the repo is: the config's ``repo`` section wins field by field over the v4 ``Pgcluster``
(``backrestS3Bucket``/``Endpoint``/``Region``/``URIStyle``/``VerifyTLS``, ``backrestRepoPath``,
``backrestGCS*``); once v4 is gone, the v5 object's standby repo is used instead. Credentials
come from v4's ``<cluster>-backrest-repo-config`` Secret (``aws-s3-key``, ``aws-s3-key-secret``,
``aws-s3-ca.crt``, ``gcs-key``), else from v5's pgBackRest configuration Secrets
(``repo1-s3-key=`` lines), else from the usual AWS environment and profiles (or, for GCS,
``GOOGLE_APPLICATION_CREDENTIALS``). A GCS emulator is reached through
``STORAGE_EMULATOR_HOST`` or an endpoint with an ``http://`` scheme.

How it stays cheap — per poll, a small constant number of requests whatever the archive's size:

1. ``archive.info`` and ``backup.info`` are fetched only when they changed (S3: ``If-None-Match``
   with the last ETag, a 304 keeps the parsed value; GCS: the object's generation);
2. the archive ids (``archive/db/15-1/``…) are listed with a delimiter once, and again only when
   ``archive.info`` changes or every few minutes;
3. the first time, each archive id is listed with a delimiter (its ``TTTTTTTTLLLLLLLL/`` folders
   and ``.history`` files) and only the newest folder of each timeline is listed in full;
4. after that, one listing per timeline returns only keys after the newest one seen
   (``StartAfter``; the newest timeline's listing also catches new timelines and history files);
5. the older folders are counted in the background, at most :data:`COUNT_PAGES_PER_POLL` pages a
   poll, so ``segment_count`` becomes exact without ever making a poll long.

Every HTTP request is counted (``last_poll_requests``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from ivytui.config import Config
from ivytui.domain.lsn import DEFAULT_SEGMENT_SIZE
from ivytui.domain.model import RepoState, SegmentObject, V4State, V5State, repo_url
from ivytui.domain.repoinfo import (
    DEFAULT_STANZA,
    ArchiveInfo,
    BackupInfo,
    HistoryKey,
    RepoFormatError,
    RepoLayout,
    SegmentKey,
    parse_archive_info,
    parse_archive_key,
    parse_backup_info,
)
from ivytui.errors import KubeError, StorageError

COUNT_PAGES_PER_POLL = 2
GCS_API_ROOT = "https://storage.googleapis.com"
ARCHIVE_IDS_REFRESH = 300.0
SECRET_REFRESH = 300.0
PAGE_SIZE = 1000
CONNECT_TIMEOUT = 3.0
READ_TIMEOUT = 5.0

_DIR_RE = re.compile(r"([0-9A-F]{8})([0-9A-F]{8})/")


class _Refused(Exception):
    """The store answered, and said no (no such bucket, access denied): a fact."""


class _Missing(Exception):
    """No such key."""


class _Unreachable(Exception):
    """The store did not answer."""


@dataclass(frozen=True, slots=True)
class _Obj:
    key: str
    size: int | None
    modified: float | None


@dataclass(frozen=True, slots=True)
class _Page:
    objects: tuple[_Obj, ...]
    prefixes: tuple[str, ...]
    token: str | None


@dataclass(frozen=True, slots=True)
class _Got:
    body: bytes | None
    """``None``: unchanged since ``tag``."""
    tag: str | None


@dataclass(frozen=True, slots=True)
class RepoTarget:
    """Where the repo is and how to read it."""

    storage: Literal["s3", "gcs"]
    bucket: str
    path: str
    endpoint: str | None = None
    region: str | None = None
    uri_style: str | None = None
    verify: bool | str | None = None
    """False: do not check TLS; a path: that CA bundle; None: the client's default."""
    ca_pem: str = field(default="", repr=False)
    access_key: str = field(default="", repr=False)
    secret_key: str = field(default="", repr=False)
    gcs_key: str = field(default="", repr=False)
    gcs_key_type: str | None = None
    origin: str = ""
    credentials_origin: str = ""

    @property
    def url(self) -> str:
        return repo_url(self.storage, self.bucket, self.path) or f"{self.storage}://{self.bucket}"

    @property
    def layout(self) -> RepoLayout:
        return RepoLayout(self.path, DEFAULT_STANZA)


def _endpoint_url(endpoint: str | None) -> str | None:
    """``host[:port]`` (pgBackRest style, no scheme) → ``https://host[:port]``."""
    if not endpoint:
        return None
    if "://" in endpoint:
        return endpoint.rstrip("/")
    return f"https://{endpoint.strip('/')}"


def _timestamp(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    return None


# --------------------------------------------------------------------------------------------
# S3


class _S3Store:
    def __init__(self, target: RepoTarget) -> None:
        self.target = target
        self.requests = 0
        self._stack = contextlib.AsyncExitStack()
        self._client: Any = None
        self._ca_file: str | None = None

    async def open(self) -> None:
        import aioboto3
        from botocore.config import Config as BotoConfig

        t = self.target
        verify: bool | str | None = t.verify
        if verify is not False and t.ca_pem.strip():
            handle = tempfile.NamedTemporaryFile(
                "w", prefix="ivytui-s3-ca-", suffix=".pem", delete=False
            )
            with handle:
                handle.write(t.ca_pem)
            self._ca_file = handle.name
            verify = handle.name
        style = {"path": "path", "host": "virtual"}.get((t.uri_style or "").lower(), "auto")
        session = aioboto3.Session()
        kwargs: dict[str, Any] = {
            "endpoint_url": _endpoint_url(t.endpoint),
            "region_name": t.region or None,
            "verify": verify,
            "config": BotoConfig(
                s3={"addressing_style": style},
                connect_timeout=CONNECT_TIMEOUT,
                read_timeout=READ_TIMEOUT,
                retries={"max_attempts": 1, "mode": "standard"},
            ),
        }
        if t.access_key and t.secret_key:
            kwargs["aws_access_key_id"] = t.access_key
            kwargs["aws_secret_access_key"] = t.secret_key
        self._client = await self._stack.enter_async_context(session.client("s3", **kwargs))
        self._client.meta.events.register("before-send.s3", self._count)

    def _count(self, **_: Any) -> None:
        self.requests += 1

    async def close(self) -> None:
        await self._stack.aclose()
        self._client = None
        if self._ca_file is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._ca_file)
            self._ca_file = None

    def _fail(self, exc: BaseException, what: str) -> Exception:
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            NoCredentialsError,
            PartialCredentialsError,
        )

        t = self.target
        if isinstance(exc, ClientError):
            err = exc.response.get("Error", {})
            code = str(err.get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code == "NoSuchBucket":
                return _Refused(f"bucket {t.bucket} does not exist (NoSuchBucket)")
            if code in ("NoSuchKey", "404", "NotFound"):
                return _Missing(what)
            if code in (
                "AccessDenied",
                "403",
                "InvalidAccessKeyId",
                "SignatureDoesNotMatch",
                "Forbidden",
                "AllAccessDisabled",
            ):
                creds = t.credentials_origin or "the AWS environment"
                return _Refused(
                    f"access denied ({code or status}) to bucket {t.bucket} with the keys from "
                    f"{creds}"
                )
            if code in ("PermanentRedirect", "301", "AuthorizationHeaderMalformed"):
                return _Refused(
                    f"bucket {t.bucket} is in another region or at another endpoint ({code})"
                )
            message = err.get("Message") or code
            if isinstance(status, int) and status >= 500:
                return _Unreachable(f"{what}: the store failed ({status} {message})")
            return _Refused(f"{what}: {message} ({code or status})")
        if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
            return _Refused(
                "no credentials for the bucket: the repo-config Secret gave none and the AWS "
                "environment has none"
            )
        if isinstance(exc, BotoCoreError):
            text = str(exc)
            if "Could not connect" in text or "Connect timeout" in text:
                return _Unreachable(f"cannot connect to {_endpoint_url(t.endpoint) or 'S3'}")
            if "SSL" in text or "certificate" in text.lower():
                return _Refused(f"TLS failed with {_endpoint_url(t.endpoint) or 'S3'}: {text}")
            return _Unreachable(f"{what}: {text}")
        if isinstance(exc, (OSError, TimeoutError)):
            return _Unreachable(f"cannot connect to {_endpoint_url(t.endpoint) or 'S3'}: {exc}")
        raise exc

    async def get(self, key: str, tag: str | None) -> _Got:
        from botocore.exceptions import BotoCoreError, ClientError

        kwargs: dict[str, Any] = {"Bucket": self.target.bucket, "Key": key}
        if tag:
            kwargs["IfNoneMatch"] = tag
        try:
            resp = await self._client.get_object(**kwargs)
            async with resp["Body"] as body:
                data = await body.read()
            return _Got(bytes(data), resp.get("ETag"))
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("304", "NotModified"):
                return _Got(None, tag)
            raise self._fail(exc, key) from None
        except (BotoCoreError, OSError, TimeoutError) as exc:
            raise self._fail(exc, key) from None

    async def list(
        self,
        prefix: str,
        *,
        start_after: str | None = None,
        delimiter: str | None = None,
        token: str | None = None,
    ) -> _Page:
        from botocore.exceptions import BotoCoreError, ClientError

        kwargs: dict[str, Any] = {
            "Bucket": self.target.bucket,
            "Prefix": prefix,
            "MaxKeys": PAGE_SIZE,
        }
        if delimiter:
            kwargs["Delimiter"] = delimiter
        if token:
            kwargs["ContinuationToken"] = token
        elif start_after:
            kwargs["StartAfter"] = start_after
        try:
            resp = await self._client.list_objects_v2(**kwargs)
        except (ClientError, BotoCoreError, OSError, TimeoutError) as exc:
            raise self._fail(exc, f"listing {prefix}") from None
        objects = tuple(
            _Obj(
                key=str(item["Key"]),
                size=item.get("Size"),
                modified=_timestamp(item.get("LastModified")),
            )
            for item in resp.get("Contents") or ()
        )
        prefixes = tuple(str(p["Prefix"]) for p in resp.get("CommonPrefixes") or ())
        next_token = resp.get("NextContinuationToken") if resp.get("IsTruncated") else None
        return _Page(objects, prefixes, next_token)


# --------------------------------------------------------------------------------------------
# GCS


def gcs_api_root(endpoint: str | None) -> tuple[str | None, bool]:
    """The JSON API root and whether it is an emulator (no authentication).

    ``STORAGE_EMULATOR_HOST`` wins; an endpoint with ``http://`` is an emulator; a bare
    ``host[:port]`` is reached over HTTPS; nothing means Google's own.
    """
    emulator = os.environ.get("STORAGE_EMULATOR_HOST", "")
    if emulator:
        if "://" not in emulator:
            emulator = f"http://{emulator}"
        return emulator.rstrip("/"), True
    if not endpoint:
        return None, False
    url = _endpoint_url(endpoint) or ""
    return url, url.startswith("http://")


def _static_token(key: str, key_type: str | None) -> str | None:
    """A bearer token given as is: key type ``token``, or a key file that carries one."""
    if not key.strip():
        return None
    if (key_type or "").lower() == "token":
        return key.strip()
    try:
        data = json.loads(key)
    except ValueError:
        return None
    token = data.get("token") if isinstance(data, dict) else None
    return str(token) if token else None


class _GcsStore:
    def __init__(self, target: RepoTarget) -> None:
        self.target = target
        self.requests = 0
        self._storage: Any = None
        self._session: Any = None
        self._headers: dict[str, str] = {}

    async def open(self) -> None:
        import ssl

        import aiohttp
        from gcloud.aio.storage import Storage

        t = self.target
        api_root, emulator = gcs_api_root(t.endpoint)
        ssl_arg: Any = None
        if t.verify is False:
            ssl_arg = False
        elif t.ca_pem.strip():
            ssl_arg = ssl.create_default_context(cadata=t.ca_pem)
        elif isinstance(t.verify, str):
            ssl_arg = ssl.create_default_context(cafile=t.verify)
        elif os.environ.get("IVYTUI_GCS_CA_FILE"):
            ssl_arg = ssl.create_default_context(cafile=os.environ["IVYTUI_GCS_CA_FILE"])
        connector = aiohttp.TCPConnector(ssl=ssl_arg) if ssl_arg is not None else None
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=READ_TIMEOUT + CONNECT_TIMEOUT),
        )
        kwargs: dict[str, Any] = {
            "session": self._session,
            "api_root": api_root or GCS_API_ROOT,
            "api_is_dev": True,
        }
        token = _static_token(t.gcs_key, t.gcs_key_type)
        if token is not None:
            self._headers = {"Authorization": f"Bearer {token}"}
        elif t.gcs_key and not emulator:
            import io

            from gcloud.aio.auth import Token

            kwargs["api_is_dev"] = False
            kwargs["token"] = Token(
                service_file=io.StringIO(t.gcs_key),
                session=self._session,
                scopes=["https://www.googleapis.com/auth/devstorage.read_only"],
            )
        elif not emulator:
            kwargs["api_is_dev"] = False
        self._storage = Storage(**kwargs)

    async def close(self) -> None:
        if self._storage is not None:
            with contextlib.suppress(Exception):
                await self._storage.close()
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._storage = None
        self._session = None

    def _fail(self, exc: BaseException, what: str, *, listing: bool) -> Exception:
        import aiohttp

        t = self.target
        if isinstance(exc, aiohttp.ClientResponseError):
            if exc.status == 404:
                if listing:
                    return _Refused(f"bucket {t.bucket} does not exist (404)")
                return _Missing(what)
            if exc.status in (401, 403):
                creds = t.credentials_origin or "the environment"
                return _Refused(
                    f"access denied ({exc.status}) to bucket {t.bucket} with the key from {creds}"
                )
            if exc.status >= 500:
                return _Unreachable(f"{what}: the store failed ({exc.status})")
            return _Refused(f"{what}: {exc.message} ({exc.status})")
        if isinstance(exc, (aiohttp.ClientError, OSError, TimeoutError)):
            root, _ = gcs_api_root(t.endpoint)
            return _Unreachable(f"cannot connect to {root or 'GCS'}: {exc or type(exc).__name__}")
        if isinstance(exc, (ValueError, KeyError)):
            return _Refused(f"{what}: the answer is not what GCS sends ({exc})")
        raise exc

    async def get(self, key: str, tag: str | None) -> _Got:
        import aiohttp

        try:
            self.requests += 1
            meta = await self._storage.download_metadata(
                self.target.bucket, key, headers=dict(self._headers)
            )
            generation = str(meta.get("generation") or meta.get("md5Hash") or meta.get("etag"))
            if tag is not None and generation == tag:
                return _Got(None, tag)
            self.requests += 1
            data = await self._storage.download(
                self.target.bucket, key, headers=dict(self._headers)
            )
            return _Got(bytes(data), generation)
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError, KeyError) as exc:
            raise self._fail(exc, key, listing=False) from None

    async def list(
        self,
        prefix: str,
        *,
        start_after: str | None = None,
        delimiter: str | None = None,
        token: str | None = None,
    ) -> _Page:
        import aiohttp

        params: dict[str, str] = {"prefix": prefix, "maxResults": str(PAGE_SIZE)}
        if delimiter:
            params["delimiter"] = delimiter
        if start_after:
            params["startOffset"] = start_after
        if token:
            params["pageToken"] = token
        try:
            self.requests += 1
            resp = await self._storage.list_objects(
                self.target.bucket, params=params, headers=dict(self._headers)
            )
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
            raise self._fail(exc, f"listing {prefix}", listing=True) from None
        if not isinstance(resp, Mapping):
            raise _Refused(f"listing {prefix}: the answer is not what GCS sends")
        if "error" in resp:
            error = resp.get("error") or {}
            code = int(error.get("code") or 0) if isinstance(error, Mapping) else 0
            if code == 404:
                raise _Refused(f"bucket {self.target.bucket} does not exist (404)")
            raise _Refused(f"listing {prefix}: {error}")
        objects = tuple(
            _Obj(
                key=str(item["name"]),
                size=int(item["size"]) if item.get("size") is not None else None,
                modified=_timestamp(item.get("updated") or item.get("timeCreated")),
            )
            for item in resp.get("items") or ()
            if not start_after or str(item["name"]) > start_after
        )
        prefixes = tuple(str(p) for p in resp.get("prefixes") or ())
        return _Page(objects, prefixes, resp.get("nextPageToken") or None)


_Store = _S3Store | _GcsStore


# --------------------------------------------------------------------------------------------
# Finding the repo


Locate = Callable[[], Awaitable[RepoTarget]]


def _parse_conf_keys(text: str, repo: str) -> tuple[str, str]:
    """``repo1-s3-key=`` and ``repo1-s3-key-secret=`` from a pgBackRest ``s3.conf``."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, value = line.strip().partition("=")
        if sep:
            found[name.strip()] = value.strip()
    return found.get(f"{repo}-s3-key", ""), found.get(f"{repo}-s3-key-secret", "")


def repo_locator(
    config: Config,
    kube: Any,
    v4_state: Callable[[], V4State | None],
    v5_state: Callable[[], V5State | None],
) -> Locate:
    """Where the repo is: the config's overrides over v4's spec (or v5's once v4 is gone)."""
    from ivytui.sources.kube import ObjectMissing

    ov = config.repo
    secrets: dict[str, tuple[float, dict[str, str] | None]] = {}
    remembered: list[RepoTarget] = []

    async def secret(name: str) -> dict[str, str] | None:
        """A Secret, read again every :data:`SECRET_REFRESH` seconds (keys get rotated)."""
        cached = secrets.get(name)
        if cached is None or time.monotonic() - cached[0] > SECRET_REFRESH:
            try:
                value: dict[str, str] | None = await kube.read_secret(name)
            except ObjectMissing:
                value = None
            secrets[name] = (time.monotonic(), value)
        return secrets[name][1]

    async def locate() -> RepoTarget:
        v4 = v4_state()
        v5 = v5_state()
        storage: str | None = None
        bucket = endpoint = region = uri_style = path = key_type = None
        verify: bool | None = None
        origin = ""
        if v4 is not None and v4.exists and v4.object_storage is not None:
            storage, bucket, endpoint = v4.object_storage, v4.bucket, v4.endpoint
            region, uri_style, verify = v4.region, v4.uri_style, v4.verify_tls
            path, key_type = v4.repo_path, v4.gcs_key_type
            origin = f"v4 {v4.name}"
        elif v5 is not None and v5.exists and v5.standby_repo is not None:
            repo = v5.standby_repo
            if repo.type in ("s3", "gcs"):
                storage, bucket, endpoint, region = (
                    repo.type,
                    repo.bucket,
                    repo.endpoint,
                    repo.region,
                )
                path = v5.repo1_path or f"/pgbackrest/{repo.name}"
                raw = kube.v5_object() if kube is not None else None
                opts = (
                    (raw or {})
                    .get("spec", {})
                    .get("backups", {})
                    .get("pgbackrest", {})
                    .get("global", {})
                )
                uri_style = opts.get(f"{repo.name}-s3-uri-style")
                tls = str(opts.get(f"{repo.name}-storage-verify-tls", "")).lower()
                verify = False if tls in ("n", "false", "0", "no") else None
                origin = f"v5 {v5.name}"
        if ov.storage:
            storage = ov.storage
        elif storage is None and ov.bucket:
            storage = "s3"
        bucket = ov.bucket or bucket
        endpoint = ov.endpoint or endpoint
        region = ov.region or region
        path = ov.path or path
        uri_style = ov.uri_style or uri_style
        if ov.verify_tls is not None:
            verify = ov.verify_tls
        if ov.bucket or ov.path:
            origin = "the config" + (f" and {origin}" if origin else "")
        if storage not in ("s3", "gcs") or not bucket or path is None:
            if remembered:
                return remembered[-1]
            if v4 is None:
                raise StorageError(
                    "where the repo is is not known yet: the v4 object has not been read"
                )
            if not v4.exists:
                raise StorageError(
                    f"where the repo is is not known: v4 {v4.name} does not exist, v5 names no "
                    "object-storage repo, and the config gives no repo bucket"
                )
            types = ", ".join(v4.storage_types) or "no storage type"
            raise StorageError(
                f"v4 {v4.name} keeps its repo in {types} and the config gives no bucket: "
                "a repo-based standby needs s3 or gcs"
            )
        target = RepoTarget(
            storage="gcs" if storage == "gcs" else "s3",
            bucket=bucket,
            path=path,
            endpoint=endpoint,
            region=region,
            uri_style=uri_style,
            verify=False if verify is False else (ov.ca_file or None),
            gcs_key_type=key_type,
            origin=origin,
        )
        target = await _with_credentials(target, config, kube, v4, secret)
        remembered[:] = [target]
        return target

    return locate


async def _with_credentials(
    target: RepoTarget,
    config: Config,
    kube: Any,
    v4: V4State | None,
    secret: Callable[[str], Awaitable[dict[str, str] | None]],
) -> RepoTarget:
    from dataclasses import replace

    if kube is None:
        return replace(target, credentials_origin="the environment")
    names: list[str] = []
    if v4 is not None and v4.exists:
        names.append(f"{config.cluster}-backrest-repo-config")
    raw = kube.v5_object()
    if raw is not None:
        for item in (
            raw.get("spec", {}).get("backups", {}).get("pgbackrest", {}).get("configuration") or ()
        ):
            name = (item.get("secret") or {}).get("name") if isinstance(item, Mapping) else None
            if name:
                names.append(str(name))
    for name in names:
        try:
            data = await secret(name)
        except KubeError:
            continue
        if not data:
            continue
        if target.storage == "s3":
            key, key_secret = data.get("aws-s3-key", ""), data.get("aws-s3-key-secret", "")
            if not key:
                for text in data.values():
                    key, key_secret = _parse_conf_keys(text, "repo1")
                    if key:
                        break
            if key and key_secret:
                return replace(
                    target,
                    access_key=key,
                    secret_key=key_secret,
                    ca_pem="" if target.verify is False else data.get("aws-s3-ca.crt", ""),
                    credentials_origin=f"Secret {name}",
                )
        elif data.get("gcs-key"):
            return replace(
                target,
                gcs_key=data["gcs-key"],
                ca_pem="" if target.verify is False else data.get("aws-s3-ca.crt", ""),
                credentials_origin=f"Secret {name}",
            )
    return replace(target, credentials_origin="the environment")


# --------------------------------------------------------------------------------------------
# The incremental reader


@dataclass
class _Info:
    tag: str | None = None
    text: str | None = None
    parsed: ArchiveInfo | BackupInfo | None = None
    error: str | None = None
    missing: bool = False
    from_copy: bool = False


@dataclass
class _CountJob:
    prefix: str
    end: str
    cursor: str | None = None
    token: str | None = None


@dataclass
class _Archive:
    """What is known of one archive id (``15-1``)."""

    prefix: str
    initialized: bool = False
    newest: dict[int, SegmentObject] = field(default_factory=dict)
    after: dict[int, str] = field(default_factory=dict)
    history: set[int] = field(default_factory=set)
    count: int = 0
    jobs: list[_CountJob] = field(default_factory=list)


class RepoSource:
    """Reads the repo's state; every call of :meth:`poll` costs a few requests at most."""

    def __init__(
        self,
        locate: Locate,
        *,
        clock: Callable[[], float] = time.time,
        segment_size: Callable[[], int] = lambda: DEFAULT_SEGMENT_SIZE,
    ) -> None:
        self.locate = locate
        self.clock = clock
        self.segment_size = segment_size
        self.target: RepoTarget | None = None
        self.last_poll_requests = 0
        self.last_poll_seconds: float | None = None
        self.backup_info_error: str | None = None
        self.new_segments: tuple[SegmentObject, ...] = ()
        self.count_complete = False
        self._store: _Store | None = None
        self._archive_info = _Info()
        self._backup_info = _Info()
        self._ids: tuple[str, ...] | None = None
        self._ids_at = 0.0
        self._ids_tag: str | None = None
        self._archives: dict[str, _Archive] = {}

    @property
    def archive_info_text(self) -> str | None:
        return self._archive_info.text

    @property
    def backup_info_text(self) -> str | None:
        return self._backup_info.text

    async def close(self) -> None:
        store, self._store = self._store, None
        if store is not None:
            await store.close()

    def _reset(self) -> None:
        self._archive_info = _Info()
        self._backup_info = _Info()
        self._ids = None
        self._ids_tag = None
        self._archives = {}
        self.backup_info_error = None
        self.count_complete = False

    async def _ensure_store(self) -> tuple[RepoTarget, _Store]:
        target = await self.locate()
        if target != self.target or self._store is None:
            await self.close()
            self._reset()
            store: _Store = _S3Store(target) if target.storage == "s3" else _GcsStore(target)
            await store.open()
            self._store = store
            self.target = target
        return target, self._store

    async def poll(self) -> RepoState:
        """One observation; raises :class:`StorageError` when the store does not answer."""
        started = time.perf_counter()
        target, store = await self._ensure_store()
        before = store.requests
        self.new_segments = ()
        try:
            return await self._poll(target, store)
        except _Unreachable as exc:
            raise StorageError(str(exc)) from None
        except _Refused as exc:
            return RepoState(
                observed_at=self.clock(),
                url=target.url,
                reachable=False,
                unreachable_reason=str(exc),
            )
        finally:
            self.last_poll_requests = store.requests - before
            self.last_poll_seconds = time.perf_counter() - started

    async def _fetch_info(self, store: _Store, info: _Info, key: str, label: str) -> None:
        """Fetch an info file if it changed; pgBackRest's ``.copy`` stands in for a missing one."""
        keys = (key, key + ".copy")
        first = keys[1] if info.from_copy else keys[0]
        try:
            got = await store.get(first, info.tag)
            served = first
        except _Missing:
            if info.missing and not info.from_copy:
                return
            other = keys[0] if info.from_copy else keys[1]
            try:
                got = await store.get(other, None)
                served = other
            except _Missing:
                info.tag = info.text = info.parsed = info.error = None
                info.missing = True
                info.from_copy = False
                return
        info.from_copy = served == keys[1]
        info.missing = False
        if got.body is None:
            return
        info.tag = got.tag
        text = got.body.decode("utf-8", "replace")
        info.text = text
        path = f"{label}"
        try:
            if label.endswith("archive.info"):
                info.parsed = parse_archive_info(text, path)
            else:
                info.parsed = parse_backup_info(text, path)
            info.error = None
        except RepoFormatError as exc:
            info.parsed = None
            info.error = str(exc)

    async def _poll(self, target: RepoTarget, store: _Store) -> RepoState:
        layout = target.layout
        await self._fetch_info(
            store, self._archive_info, layout.archive_info_key, "archive/db/archive.info"
        )
        if self._archive_info.missing:
            # A listing tells a missing bucket (refused, with words) from a wrong path.
            await store.list(layout.archive_prefix, delimiter="/")
            return RepoState(
                observed_at=self.clock(),
                url=target.url,
                reachable=False,
                unreachable_reason=(
                    f"the bucket answers but holds no archive/db/archive.info under "
                    f"{target.url}: wrong repo path, or no stanza db"
                ),
            )
        await self._fetch_info(
            store, self._backup_info, layout.backup_info_key, "backup/db/backup.info"
        )
        self.backup_info_error = self._backup_info.error
        archive_info = self._archive_info.parsed
        assert archive_info is None or isinstance(archive_info, ArchiveInfo)
        backup_info = self._backup_info.parsed
        assert backup_info is None or isinstance(backup_info, BackupInfo)

        ids = await self._archive_ids(store, layout)
        tracked = list(ids)
        if archive_info is not None and archive_info.archive_id in ids:
            tracked = [archive_info.archive_id]
        new: list[SegmentObject] = []
        for aid in tracked:
            archive = self._archives.setdefault(
                aid, _Archive(prefix=f"{layout.archive_prefix}{aid}/")
            )
            await self._scan(store, layout, archive, new)
        budget = COUNT_PAGES_PER_POLL
        for aid in tracked:
            budget = await self._count(store, layout, self._archives[aid], budget)
        self.count_complete = all(not self._archives[aid].jobs for aid in tracked)
        self.new_segments = tuple(sorted(new, key=lambda seg: seg.name))

        newest: dict[int, SegmentObject] = {}
        history: set[int] = set()
        count = 0
        for aid in tracked:
            archive = self._archives[aid]
            for tl, seg in archive.newest.items():
                if tl not in newest or seg.name > newest[tl].name:
                    newest[tl] = seg
            history |= archive.history
            count += archive.count
        return RepoState(
            observed_at=self.clock(),
            url=target.url,
            reachable=True,
            archive_info=archive_info,
            backup_info=backup_info,
            info_error=self._archive_info.error,
            newest_segments=tuple(newest[tl] for tl in sorted(newest)),
            history_timelines=tuple(sorted(history)),
            segment_count=count,
        )

    async def _list_all(
        self,
        store: _Store,
        prefix: str,
        *,
        start_after: str | None = None,
        delimiter: str | None = None,
    ) -> tuple[list[_Obj], list[str]]:
        objects: list[_Obj] = []
        prefixes: list[str] = []
        token: str | None = None
        while True:
            page = await store.list(
                prefix, start_after=start_after, delimiter=delimiter, token=token
            )
            objects.extend(page.objects)
            prefixes.extend(page.prefixes)
            token = page.token
            if not token:
                return objects, prefixes

    async def _archive_ids(self, store: _Store, layout: RepoLayout) -> tuple[str, ...]:
        stale = time.monotonic() - self._ids_at > ARCHIVE_IDS_REFRESH
        if self._ids is None or stale or self._ids_tag != self._archive_info.tag:
            _, prefixes = await self._list_all(store, layout.archive_prefix, delimiter="/")
            found = []
            for prefix in prefixes:
                name = prefix[len(layout.archive_prefix) :].rstrip("/")
                if re.fullmatch(r"\d+(?:\.\d+)?-\d+", name):
                    found.append(name)
            self._ids = tuple(sorted(found))
            self._ids_at = time.monotonic()
            self._ids_tag = self._archive_info.tag
        return self._ids

    def _take(
        self, layout: RepoLayout, archive: _Archive, obj: _Obj, new: list[SegmentObject] | None
    ) -> None:
        rest = obj.key[len(archive.prefix) :]
        match = _DIR_RE.match(rest)
        if match is not None:
            timeline = int(match.group(1), 16)
            if obj.key > archive.after.get(timeline, ""):
                archive.after[timeline] = obj.key
        parsed = parse_archive_key(obj.key, layout.archive_prefix, self.segment_size())
        if isinstance(parsed, HistoryKey):
            archive.history.add(parsed.timeline)
            return
        if not isinstance(parsed, SegmentKey) or parsed.partial:
            return
        archive.count += 1
        current = archive.newest.get(parsed.timeline)
        if current is None or parsed.name > current.name:
            seg = SegmentObject(
                name=parsed.name, key=obj.key, size=obj.size, last_modified=obj.modified
            )
            archive.newest[parsed.timeline] = seg
            if new is not None:
                new.append(seg)

    async def _scan(
        self, store: _Store, layout: RepoLayout, archive: _Archive, new: list[SegmentObject]
    ) -> None:
        if not archive.initialized:
            await self._first_scan(store, layout, archive)
            return
        timelines = sorted(archive.after)
        highest = timelines[-1] if timelines else None
        for timeline in timelines[:-1]:
            objects, _ = await self._list_all(
                store, f"{archive.prefix}{timeline:08X}", start_after=archive.after[timeline]
            )
            for obj in objects:
                self._take(layout, archive, obj, new)
        start = archive.after.get(highest) if highest is not None else None
        objects, _ = await self._list_all(store, archive.prefix, start_after=start)
        for obj in objects:
            self._take(layout, archive, obj, new)

    async def _first_scan(self, store: _Store, layout: RepoLayout, archive: _Archive) -> None:
        objects, prefixes = await self._list_all(store, archive.prefix, delimiter="/")
        for obj in objects:
            self._take(layout, archive, obj, None)
        dirs: dict[int, list[str]] = {}
        for prefix in prefixes:
            match = _DIR_RE.fullmatch(prefix[len(archive.prefix) :])
            if match is not None:
                dirs.setdefault(int(match.group(1), 16), []).append(prefix)
        for timeline, folders in sorted(dirs.items()):
            folders.sort()
            listed = len(folders)
            while listed > 0:
                listed -= 1
                found, _ = await self._list_all(store, folders[listed])
                for obj in found:
                    self._take(layout, archive, obj, None)
                if timeline in archive.newest:
                    break
            if listed > 0:
                archive.jobs.append(
                    _CountJob(prefix=f"{archive.prefix}{timeline:08X}", end=folders[listed])
                )
        archive.initialized = True

    async def _count(
        self, store: _Store, layout: RepoLayout, archive: _Archive, budget: int
    ) -> int:
        while budget > 0 and archive.jobs:
            job = archive.jobs[0]
            page = await store.list(job.prefix, start_after=job.cursor, token=job.token)
            budget -= 1
            done = page.token is None
            for obj in page.objects:
                if obj.key >= job.end:
                    done = True
                    break
                parsed = parse_archive_key(obj.key, layout.archive_prefix, self.segment_size())
                if isinstance(parsed, SegmentKey) and not parsed.partial:
                    archive.count += 1
                job.cursor = obj.key
            job.token = page.token
            if done:
                archive.jobs.pop(0)
        return budget
