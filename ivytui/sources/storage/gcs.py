"""The repo on Google Cloud Storage (or an emulator), through gcloud-aio-storage's JSON API: an
object's generation stands for S3's ETag."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from typing import Any

from ivytui.sources.storage.base import (
    CONNECT_TIMEOUT,
    PAGE_SIZE,
    READ_TIMEOUT,
    RepoTarget,
    _endpoint_url,
    _Got,
    _Missing,
    _Obj,
    _Page,
    _Refused,
    _timestamp,
    _Unreachable,
)

GCS_API_ROOT = "https://storage.googleapis.com"


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
