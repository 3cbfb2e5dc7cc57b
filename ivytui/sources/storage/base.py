"""What the repo is (:class:`RepoTarget`) and what a store answers: the objects, pages and
failures shared by the S3 and GCS clients and the reader."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from ivytui.domain.model import repo_url
from ivytui.domain.repoinfo import DEFAULT_STANZA, RepoLayout

PAGE_SIZE = 1000
CONNECT_TIMEOUT = 3.0
READ_TIMEOUT = 5.0


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


Locate = Callable[[], Awaitable[RepoTarget]]


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
