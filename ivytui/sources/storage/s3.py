"""The repo on S3 or an S3-compatible store, through aioboto3: one attempt per request, each
counted, and every failure sorted into refused, missing or unreachable."""

from __future__ import annotations

import contextlib
import os
import tempfile
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
